//! The core configuration's section and value types: the recommender model, execution mode,
//! backend, and the LLM backend's `llm_options:` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which recommender model serves pages (`rec_model`, RecAgent §4.1).
///
/// Names are read case-insensitively, with the spellings of RecBole and Agent4Rec as aliases
/// (`Pop` = [`RecModel::Popularity`], `BPR` = [`RecModel::MF`], whose loss is BPR); see
/// [`RecModel::from_name`]. They are written back in the canonical spelling (`Popularity`, `MF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RecModel {
    /// Uniformly random unexposed items (seeded per user and round).
    Random,
    /// Most-interacted items first (watches, then ids), from the initial data plus the run so far.
    Popularity,
    /// Matrix factorisation trained with BPR (RecAgent's default; `epoch_num`, `batch_size`,
    /// `embedding_size`, `lr`).
    MF,
    /// Item-based k-nearest-neighbours, cosine similarity.
    ItemKNN,
    /// LightGCN (3 propagation layers), trained with BPR like MF.
    LightGCN,
    /// Variational autoencoder with a multinomial likelihood (Liang et al., WWW 2018).
    MultVAE,
    /// Content-based: genre-vector similarity to the user's liked genres and watch history.
    Content,
    /// Slates from an HTTP endpoint (`rec_external_url`), JSON in and out.
    External,
}

impl RecModel {
    /// Every model with the names it answers to (canonical first), in the order errors list them.
    pub const NAMES: &'static [(RecModel, &'static [&'static str])] = &[
        (RecModel::Random, &["Random"]),
        (RecModel::Popularity, &["Popularity", "Pop"]),
        (RecModel::MF, &["MF", "BPR"]),
        (RecModel::LightGCN, &["LightGCN"]),
        (RecModel::ItemKNN, &["ItemKNN"]),
        (RecModel::MultVAE, &["MultVAE"]),
        (RecModel::Content, &["Content"]),
        (RecModel::External, &["External"]),
    ];

    /// The canonical name (as written in manifests and checkpoints).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("?", |(_, n)| n[0])
    }

    /// The model called `name`, in any case, by its canonical name or an alias (`Pop`, `BPR`;
    /// surrounding blanks ignored).
    ///
    /// # Errors
    /// For an unknown name, a message listing the accepted names and, when one is close
    /// (edit distance ≤ 2, any case), suggesting it: ``unknown recommender `Popp`: accepted ...;
    /// did you mean `Pop`?``.
    pub fn from_name(name: &str) -> Result<Self, String> {
        let wanted = name.trim().to_ascii_lowercase();
        let all = Self::NAMES
            .iter()
            .flat_map(|(m, names)| names.iter().map(move |n| (*m, *n)));
        if let Some((m, _)) = all.clone().find(|(_, n)| n.to_ascii_lowercase() == wanted) {
            return Ok(m);
        }
        let accepted = Self::NAMES
            .iter()
            .map(|(_, names)| match names {
                [one] => (*one).to_string(),
                [first, rest @ ..] => format!("{first} ({})", rest.join(", ")),
                [] => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let near = all
            .map(|(_, n)| (strsim::levenshtein(&n.to_ascii_lowercase(), &wanted), n))
            .filter(|(d, _)| *d <= 2)
            .min();
        let hint = near.map_or_else(String::new, |(_, n)| format!("; did you mean `{n}`?"));
        Err(format!(
            "unknown recommender `{}`: accepted {accepted} (any case){hint}",
            name.trim()
        ))
    }
}

impl std::str::FromStr for RecModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(s)
    }
}

impl<'de> Deserialize<'de> for RecModel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_name(&s).map_err(serde::de::Error::custom)
    }
}

/// `execution_mode`: `parallel` spreads per-agent behaviour work over the cores; `serial` runs it on
/// one thread. Both give byte-identical outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// One thread.
    Serial,
    /// A rayon pool over the cores.
    Parallel,
}

/// Which behaviour backend answers the agents' decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The embedded stochastic user model (no LLM, no network). The default.
    Offline,
    /// OpenAI-compatible LLM servers (`api_bases`, `llm`, `llm_options`; see `src/llm/`).
    Llm,
    /// Answers from a recorded transcript (`transcript_path`), offline and byte for byte.
    Replay,
    /// Every decision from the offline model (as `offline`), the words (feelings, dialogues,
    /// posts) of a share of the agents from an LLM (`hybrid:` section, [`HybridOptions`]; the
    /// servers as for `llm`); see `src/behaviour/hybrid.rs`.
    Hybrid,
}

/// Where the `hybrid` backend's words come from (`hybrid.text_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextSource {
    /// The LLM servers (`api_bases`, `llm`, `llm_options`), recorded to the transcript.
    #[default]
    Llm,
    /// A recorded hybrid run's transcript (`transcript_path`), offline and byte for byte.
    Replay,
}

/// Settings of the `hybrid` backend (config section `hybrid:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// Unknown keys are collected and reported with every other unknown key of the file
// (`SimConfig::check_claimed`), so they are not refused here one at a time.
#[serde(default)]
pub struct HybridOptions {
    /// Share of the agents whose words the LLM writes, [0, 1]: agent `u` writes when a fixed
    /// per-agent draw `unit_hash(seed, u)` is below it (`behaviour::hybrid::writes_words`), so
    /// the set is stable over the run. 1 (the default) = every agent; 0 = none (an offline run).
    pub text_share: f64,
    /// `llm` (ask the servers) or `replay` (answer from `transcript_path`).
    pub text_source: TextSource,
}

impl Default for HybridOptions {
    fn default() -> Self {
        Self {
            text_share: 1.0,
            text_source: TextSource::Llm,
        }
    }
}

impl HybridOptions {
    /// Checks ranges; returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&self.text_share) {
            return Err((
                "text_share".into(),
                format!("{} is out of range: allowed 0..=1", self.text_share),
            ));
        }
        Ok(())
    }
}

/// Which wire protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `POST {base}/chat/completions` with `messages` (instruction-tuned models).
    #[default]
    Chat,
    /// `POST {base}/completions` with one `prompt` string (base models without a chat template).
    Completions,
}

/// `llm_options.structured_output`: whether requests constrain the answer's shape (each
/// decision kind's JSON schema, [`crate::decision::Decision::answer_schema`]). The tolerant
/// parser reads the answer either way; an answer that still does not parse gets the corrective
/// retry and, after it, the fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// No constraint: the prompts' tag formats, read by the tolerant parser.
    #[default]
    Off,
    /// OpenAI-style `response_format: {type: json_schema, json_schema: {name, schema, strict}}`
    /// (OpenAI, vLLM, Ollama, llama.cpp's `llama-server`).
    JsonSchema,
    /// `response_format: {type: json_object, schema}`, the form llama-cpp-python's server takes
    /// on `/chat/completions` (it refuses `json_schema`); `llama-server` takes it too.
    JsonObject,
    /// A GBNF grammar derived from the schema, in the body's `grammar` field (llama.cpp's
    /// servers, `llama-server` and llama-cpp-python).
    Grammar,
}

impl StructuredOutput {
    /// The name as written in the configuration (`off`, `json_schema`, `grammar`).
    pub fn name(self) -> &'static str {
        match self {
            StructuredOutput::Off => "off",
            StructuredOutput::JsonSchema => "json_schema",
            StructuredOutput::JsonObject => "json_object",
            StructuredOutput::Grammar => "grammar",
        }
    }
}

/// Settings of the `llm` and `replay` backends (config section `llm_options:`). The model
/// (`llm`), `api_bases`, `api_keys`, `temperature`, `max_token` and `max_retries` are RecAgent's
/// top-level keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// Unknown keys are collected and reported with every other unknown key of the file
// (`SimConfig::check_claimed`), so they are not refused here one at a time.
#[serde(default)]
pub struct LlmOptions {
    /// `chat` (`/chat/completions`) or `completions` (`/completions`, for base models).
    pub protocol: Protocol,
    /// Model name per entry of `api_bases` (same order); empty or shorter = `llm` for the rest.
    pub models: Vec<String>,
    /// Directory holding the prompt templates (`top.txt`, `page.txt`, ...). Empty = the copies
    /// embedded from `config/prompts/`.
    pub prompt_dir: Option<PathBuf>,
    /// Most estimated tokens (`chars / 4`) per prompt; memories are dropped first to fit;
    /// 100..=1,000,000.
    pub prompt_token_budget: u32,
    /// Whole-request timeout, seconds; (0, 3600].
    pub request_timeout_secs: f64,
    /// TCP connect timeout, seconds; (0, 600].
    pub connect_timeout_secs: f64,
    /// Concurrent requests per endpoint (`api_bases x api_keys`); 1..=65,536.
    pub max_in_flight_per_endpoint: u32,
    /// Corrective retries after an unparseable answer; 0..=5.
    pub parse_retries: u32,
    /// First retry backoff, milliseconds (doubled per retry, with jitter); 0..=600,000.
    pub backoff_base_ms: u64,
    /// Longest wait between tries, milliseconds (also caps `Retry-After`); backoff_base_ms..=600,000.
    pub backoff_max_ms: u64,
    /// Send `seed` (the run's seed) in requests, for servers that take it.
    pub send_seed: bool,
    /// Stop sequences sent with every request (none when empty).
    pub stop: Vec<String>,
    /// Tokio worker threads of the bridge runtime; 0..=64. 0 = a current-thread runtime: the
    /// calls are driven on the simulation thread while the phase waits (least CPU per call,
    /// one core); n >= 1 = n worker threads (parsing then overlaps the network I/O).
    pub worker_threads: u32,
    /// Reuse answers of identical earlier requests (same model, parameters and conversation)
    /// at `temperature: 0`; ignored, with a warning, at other temperatures or when endpoints
    /// serve different models. Hits are marked `cached` in the transcript and cost nothing; a
    /// conversation repeated inside one batch is sent once.
    pub response_cache: bool,
    /// The cache file (JSON Lines, kept between runs that name it; relative to the config file).
    /// Default `<output_dir>/llm-cache.jsonl`.
    pub response_cache_path: Option<PathBuf>,
    /// Price per million prompt tokens (any currency; 0 = no cost report); >= 0.
    pub price_prompt_per_mtok: f64,
    /// Price per million completion tokens; >= 0.
    pub price_completion_per_mtok: f64,
    /// Constrain answers to each decision kind's JSON shape: `off` (default), `json_schema`,
    /// `json_object` or `grammar` ([`StructuredOutput`]). Part of every request's hash, so a replay or the
    /// response cache never mixes answers given under different settings.
    pub structured_output: StructuredOutput,
    /// Send each agent's next request of a multi-step phase (a browsing session's next page
    /// decision) as soon as its previous answer is in, instead of after the whole step's batch
    /// (default true). The requests, answers and outputs are the same either way (issue 16,
    /// item 6); `false` runs the step-by-step batches, for comparison.
    pub chains: bool,
}

impl Default for LlmOptions {
    fn default() -> Self {
        Self {
            protocol: Protocol::Chat,
            models: Vec::new(),
            prompt_dir: None,
            prompt_token_budget: 3000,
            request_timeout_secs: 120.0,
            connect_timeout_secs: 10.0,
            max_in_flight_per_endpoint: 16,
            parse_retries: 1,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            send_seed: true,
            stop: Vec::new(),
            worker_threads: 0,
            response_cache: false,
            response_cache_path: None,
            price_prompt_per_mtok: 0.0,
            price_completion_per_mtok: 0.0,
            structured_output: StructuredOutput::Off,
            chains: true,
        }
    }
}

impl LlmOptions {
    /// Checks ranges. Returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if !(100..=1_000_000).contains(&self.prompt_token_budget) {
            return bad(
                "prompt_token_budget",
                format!(
                    "{} is out of range: allowed 100..=1000000",
                    self.prompt_token_budget
                ),
            );
        }
        if !(self.request_timeout_secs > 0.0 && self.request_timeout_secs <= 3600.0) {
            return bad(
                "request_timeout_secs",
                format!(
                    "{} is out of range: allowed (0, 3600]",
                    self.request_timeout_secs
                ),
            );
        }
        if !(self.connect_timeout_secs > 0.0 && self.connect_timeout_secs <= 600.0) {
            return bad(
                "connect_timeout_secs",
                format!(
                    "{} is out of range: allowed (0, 600]",
                    self.connect_timeout_secs
                ),
            );
        }
        if !(1..=65_536).contains(&self.max_in_flight_per_endpoint) {
            return bad(
                "max_in_flight_per_endpoint",
                format!(
                    "{} is out of range: allowed 1..=65536",
                    self.max_in_flight_per_endpoint
                ),
            );
        }
        if self.parse_retries > 5 {
            return bad(
                "parse_retries",
                format!("{} is out of range: allowed 0..=5", self.parse_retries),
            );
        }
        if self.backoff_base_ms > 600_000 {
            return bad(
                "backoff_base_ms",
                format!(
                    "{} is out of range: allowed 0..=600000",
                    self.backoff_base_ms
                ),
            );
        }
        if !(self.backoff_base_ms..=600_000).contains(&self.backoff_max_ms) {
            return bad(
                "backoff_max_ms",
                format!(
                    "{} is out of range: allowed backoff_base_ms ({})..=600000",
                    self.backoff_max_ms, self.backoff_base_ms
                ),
            );
        }
        if self.worker_threads > 64 {
            return bad(
                "worker_threads",
                format!("{} is out of range: allowed 0..=64", self.worker_threads),
            );
        }
        for (k, v) in [
            ("price_prompt_per_mtok", self.price_prompt_per_mtok),
            ("price_completion_per_mtok", self.price_completion_per_mtok),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, format!("{v} is out of range: allowed >= 0"));
            }
        }
        Ok(())
    }

    /// Cost of `prompt_tokens` and `completion_tokens` at the configured prices.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.price_prompt_per_mtok
            + completion_tokens as f64 * self.price_completion_per_mtok)
            / 1e6
    }

    /// True when prices are set.
    pub fn has_prices(&self) -> bool {
        self.price_prompt_per_mtok > 0.0 || self.price_completion_per_mtok > 0.0
    }
}

/// Which agents' messages are written (config section `message_agents:`), for runs too large
/// to keep every message (a million agents write gigabytes of messages per round). An agent's
/// messages are kept when its id is a multiple of `every` (`every: 1`, the default, keeps
/// every agent; `every: 0` keeps none by stride) or it is listed in `ids`. System messages
/// (`agent_id` -1: interventions) are always kept. Interactions, metrics and counters are
/// never sampled: they cover every agent. `write_messages: false` writes no messages at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageAgents {
    /// Keep one agent in `every`: those whose id is divisible by it; 0..=1,000,000,000
    /// (0 = none by stride, only `ids`).
    pub every: u32,
    /// Agents (data-file ids) whose messages are kept whatever `every` says.
    pub ids: Vec<u32>,
}

impl Default for MessageAgents {
    fn default() -> Self {
        Self {
            every: 1,
            ids: Vec::new(),
        }
    }
}

impl MessageAgents {
    /// True when the messages of agent `id` are kept. `ids` is searched as a sorted list:
    /// call it on [`MessageAgents::sorted`].
    pub fn keeps(&self, id: u32) -> bool {
        (self.every > 0 && id.is_multiple_of(self.every)) || self.ids.binary_search(&id).is_ok()
    }
    /// The same sample with `ids` sorted and deduplicated (what [`MessageAgents::keeps`]
    /// searches).
    pub fn sorted(&self) -> Self {
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids.dedup();
        Self {
            every: self.every,
            ids,
        }
    }
    /// True when every agent's messages are kept (the default).
    pub fn keeps_all(&self) -> bool {
        self.every == 1
    }
    /// Checks ranges; returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        crate::config::validate::check_range(
            "every",
            self.every,
            0..=1_000_000_000,
            "0..=1000000000",
        )
    }
}
