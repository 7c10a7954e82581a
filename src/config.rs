//! Run configuration (YAML). Accepts every key of RecAgent's `config/config.yaml` (spec §6) plus
//! recagent's own keys. Unknown and duplicate keys are errors naming the key and line; values out
//! of range are errors naming the key, the value and the allowed range.
//!
//! Relative paths in the file resolve against the directory that holds the file.

use std::path::{Path, PathBuf};

use bevy_ecs::resource::Resource;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::behaviour::offline::OfflineParams;
use crate::clock::Interval;

/// Errors from reading, parsing or validating a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML did not parse into a configuration (syntax, unknown or duplicate key, bad type).
    #[error("{origin}: {message}")]
    Parse {
        /// File path or `<embedded>`.
        origin: String,
        /// The parser's message, with the line where the parser reports one.
        message: String,
    },
    /// A value is outside its allowed range or conflicts with another key.
    #[error("{origin}{line}: invalid value for `{key}`: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// File path or `<embedded>`.
        origin: String,
        /// 1-based line of the key in the file, if it is there.
        line: Option<usize>,
        /// The offending key.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `--set key=value` override names an unknown key or has a bad value.
    #[error("override `{0}`: {1}")]
    Override(String, String),
}

/// Which recommender model serves pages (`rec_model`, RecAgent §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecModel {
    /// Uniformly random unexposed items (seeded per user and round).
    Random,
    /// Most-interacted items first (watches, then ids), from the initial data plus the run so far.
    Popularity,
    /// Matrix factorisation trained with BPR (RecAgent's default; `epoch_num`, `batch_size`,
    /// `embedding_size`, `lr`).
    #[serde(alias = "mf")]
    MF,
    /// Item-based k-nearest-neighbours, cosine similarity.
    #[serde(alias = "itemknn")]
    ItemKNN,
    /// LightGCN (3 propagation layers), trained with BPR like MF.
    #[serde(alias = "lightgcn")]
    LightGCN,
    /// Content-based: genre-vector similarity to the user's liked genres and watch history.
    #[serde(alias = "content")]
    Content,
    /// Slates from an HTTP endpoint (`rec_external_url`), JSON in and out.
    #[serde(alias = "external")]
    External,
}

/// How active agents are chosen each round (`active_method`, RecAgent §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveMethod {
    /// Every agent acts with probability `active_prob`.
    Random,
    /// Per-agent activity levels from a Pareto (Lomax) draw with shape `10 × active_prob`,
    /// normalised by the maximum; an agent acts with probability equal to its level.
    Sample,
    /// As `sample`, but the probability grows with the rounds since the agent last acted:
    /// `level × (idle_rounds + 1)` (reset when the agent acts; RecAgent never reset it).
    Marginal,
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
}

/// The whole run configuration. Field names are RecAgent's where RecAgent has the key.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    // ---- RecAgent keys (spec §6) ----
    /// LLM model name (used by the `llm` backend; recorded in the manifest).
    pub llm: String,
    /// Item catalogue: RecAgent `item.csv` (`id,title,genre,description`) or MovieLens `movies.dat`.
    pub item_path: PathBuf,
    /// Users: RecAgent `user_1000.csv`, legacy `user.csv`, or MovieLens `users.dat`.
    pub user_path: PathBuf,
    /// Social edges: `user_1,user_2,relationship,closeness` (ids) or legacy `user_1,user_2,relationship`
    /// (names and `1`). Empty = no social graph.
    pub relationship_path: Option<PathBuf>,
    /// Interaction CSV output (`user_id,item_id,label,rating,round,timestamp`), appended each round.
    /// Default: `<output_dir>/interaction.csv`.
    pub interaction_path: Option<PathBuf>,
    /// RecAgent's model-weights directory. Accepted; checkpoints are a later feature.
    pub ckpt_path: Option<PathBuf>,
    /// RecAgent's title-index directory. Accepted; unused by this version.
    pub index_name: Option<PathBuf>,
    /// RecAgent's checkpoint directory. Accepted; checkpoints are a later feature.
    pub simulator_dir: Option<PathBuf>,
    /// RecAgent's checkpoint to restore. Accepted; must be empty in this version.
    pub simulator_restore_file_name: Option<String>,
    /// Root seed; every random stream is derived from it.
    pub seed: u64,
    /// Recommender model.
    pub rec_model: RecModel,
    /// MF training epochs (RecAgent key; used when MF is available).
    pub epoch_num: u32,
    /// MF mini-batch size (RecAgent key).
    pub batch_size: u32,
    /// MF embedding dimension (RecAgent key).
    pub embedding_size: u32,
    /// MF learning rate (RecAgent key).
    pub lr: f64,
    /// Number of rounds to run; 1..=1,000,000.
    pub round: u32,
    /// Number of agents: the first `agent_num` users by id. Empty = every user in the file.
    pub agent_num: Option<u32>,
    /// Items per recommendation page; 1..=50.
    pub page_size: u32,
    /// LLM sampling temperature; 0..=2.
    pub temperature: f64,
    /// LLM maximum output tokens; 1..=100,000.
    pub max_token: u32,
    /// `serial` or `parallel`; same outputs either way.
    pub execution_mode: ExecutionMode,
    /// Simulated time between rounds (`5h`; units s, m, h, d, M, y).
    pub interval: Interval,
    /// LLM retries per request; 0..=20.
    pub max_retries: u32,
    /// RecAgent key, unused there too.
    pub verbose: bool,
    /// Most agents active in one round (counted per round; empty or 0 = no cap).
    pub active_agent_threshold: Option<u32>,
    /// `random`, `sample` or `marginal`.
    pub active_method: ActiveMethod,
    /// Activation probability (`random`) or Pareto shape / 10 (`sample`, `marginal`); (0, 1].
    pub active_prob: f64,
    /// RecAgent key (unused there); only `recagent` is accepted.
    pub agent_memory: String,
    /// RecAgent CLI key `-m`; only `recagent` is accepted.
    pub recagent_memory: String,
    /// OpenAI-compatible API base URLs (the `llm` backend).
    pub api_bases: Vec<String>,
    /// API keys. Never printed, logged or written to any output.
    pub api_keys: Vec<String>,
    /// Random items injected into each page (from outside the model's top list); 0..page_size.
    pub rec_random_k: u32,
    /// Rewire the social graph at start: `k > 0` links each agent to up to k agents with a
    /// different interest string (heterophily), `k < 0` to |k| with the same one; 0 keeps the file.
    pub social_random_k: i32,
    /// RecAgent's human role agent; must be false in this version.
    pub play_role: bool,
    /// RecAgent CLI key: messages file name. CLI `--output-file` wins.
    pub output_file: Option<PathBuf>,
    /// RecAgent CLI key: log file name. CLI `--log-file` wins.
    pub log_file: Option<PathBuf>,
    /// RecAgent CLI key: logger name. Recorded in the manifest.
    pub log_name: Option<String>,

    // ---- recagent keys ----
    /// Behaviour backend: `offline` (default), `llm`, `replay`.
    pub backend: BackendKind,
    /// Directory for the default output files (messages, interactions, manifest, log).
    pub output_dir: PathBuf,
    /// Start of round 1 (`YYYY-mm-dd HH:MM:SS`; RecAgent starts at 08:00 of the run's day).
    pub start_time: String,
    /// Most page decisions per recommender session (RecAgent hard-codes 5); 1..=100.
    pub max_session_steps: u32,
    /// Simulated hours an agent is busy watching after a watch (RecAgent: 2); 0..=48.
    pub watch_hours: f64,
    /// Length of the watched and heard histories (RecAgent: 10); 1..=1000.
    pub history_size: u32,
    /// Results a title search returns (RecAgent: 50); 1..=1000.
    pub search_k: u32,
    /// Write a checkpoint every this many rounds (0 = never). Into `simulator_dir` when set, else
    /// `<output_dir>/checkpoints`.
    pub checkpoint_every: u32,
    /// Write every message to the messages file (`true`), or only counts (`false`, for huge runs).
    pub write_messages: bool,
    /// Parameters of the offline behaviour model.
    pub offline: OfflineParams,
    /// Random non-contacts ("strangers") added each round to a social agent's chat candidates,
    /// drawn per (round, agent); 0..=100. Posts still go to contacts only. Separate from
    /// `social_random_k`, which keeps RecAgent's meaning (rewire the graph once at start).
    pub social_random_contacts: u32,
    /// Chat durations an answer may choose, in simulated hours (RecAgent: 0.5, 1, 2); 1..=8
    /// values, each in (0, 24]. Other answers snap to the nearest value (counted as a fallback).
    pub chat_hours: Vec<f64>,
    /// Most utterances in one chat (longer dialogues are cut, the cut logged); 1..=50.
    pub chat_max_turns: u32,
    /// Simulated minutes writing a post keeps an idle author busy (RecAgent: 0.1 h = 6); 0..=1440.
    pub post_minutes: u32,
    /// Re-fit the recommender every this many rounds (after the round's interactions are
    /// recorded); 0 = never after the initial fit; 0..=1,000,000. Default 1.
    pub retrain_every: u32,
    /// Warm start: initial interactions (MovieLens `ratings.dat` or implicit `user item item ...`)
    /// loaded before round 1; ids are the data files' user and item ids. Empty = none.
    pub rec_init_path: Option<PathBuf>,
    /// Endpoint of the `External` recommender (`http://host:port/path`).
    pub rec_external_url: Option<String>,
    /// Memory, embedding and item-index parameters (`memory:` section, see
    /// [`crate::memory::MemoryParams`]).
    pub memory: crate::memory::MemoryParams,
    /// LLM transcript (JSON Lines, every call): written by `backend: llm` (default
    /// `<output_dir>/transcript.jsonl`), read by `backend: replay` (required there).
    pub transcript_path: Option<PathBuf>,
    /// Settings of the `llm` / `replay` backends (protocol, prompts, timeouts, limits, prices).
    pub llm_options: crate::llm::LlmOptions,

    /// Directory the relative paths resolve against (the config file's directory). Not a YAML key.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            llm: "gpt-4o-mini".into(),
            item_path: "data/item.csv".into(),
            user_path: "data/users.csv".into(),
            relationship_path: Some("data/relationship.csv".into()),
            interaction_path: None,
            ckpt_path: None,
            index_name: None,
            simulator_dir: None,
            simulator_restore_file_name: None,
            seed: 2023,
            rec_model: RecModel::Popularity,
            epoch_num: 10,
            batch_size: 64,
            embedding_size: 64,
            lr: 0.001,
            round: 5,
            agent_num: None,
            page_size: 5,
            temperature: 0.0,
            max_token: 1500,
            execution_mode: ExecutionMode::Parallel,
            interval: Interval::Seconds(5 * 3600),
            max_retries: 3,
            verbose: false,
            active_agent_threshold: None,
            active_method: ActiveMethod::Random,
            active_prob: 1.0,
            agent_memory: "recagent".into(),
            recagent_memory: "recagent".into(),
            api_bases: Vec::new(),
            api_keys: Vec::new(),
            rec_random_k: 0,
            social_random_k: 0,
            play_role: false,
            output_file: None,
            log_file: None,
            log_name: None,
            backend: BackendKind::Offline,
            output_dir: "output".into(),
            start_time: "2023-06-01 08:00:00".into(),
            max_session_steps: 5,
            watch_hours: 2.0,
            history_size: 10,
            search_k: 50,
            checkpoint_every: 0,
            write_messages: true,
            offline: OfflineParams::default(),
            social_random_contacts: 0,
            chat_hours: vec![0.5, 1.0, 2.0],
            chat_max_turns: 8,
            post_minutes: 6,
            retrain_every: 1,
            rec_init_path: None,
            rec_external_url: None,
            memory: crate::memory::MemoryParams::default(),
            transcript_path: None,
            llm_options: crate::llm::LlmOptions::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// The default configuration file, embedded so `recagent run` works from any directory.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/config.yaml");

/// Marker `base_dir` for a configuration whose paths point into the embedded demo data.
pub const EMBEDDED_BASE: &str = "<embedded>";

impl SimConfig {
    /// Reads, parses and validates a configuration file; relative paths resolve against its directory.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key and (where known) the line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::from_yaml(&text, &path.display().to_string(), base)
    }

    /// The embedded default configuration (bundled demo data, offline backend).
    ///
    /// # Errors
    /// Only if the embedded file is broken (a build defect, covered by a test).
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_yaml(
            EMBEDDED_CONFIG,
            "<embedded config>",
            PathBuf::from(EMBEDDED_BASE),
        )
    }

    /// Parses and validates YAML text. `origin` names the source in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for syntax errors, unknown or duplicate keys and wrong types;
    /// [`ConfigError::Invalid`] for values out of range.
    pub fn from_yaml(text: &str, origin: &str, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let mut cfg: SimConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: name_key_of_bad_value(
                &add_line_to_unknown_field(&tidy_parse_message(&e.to_string(), origin), text),
                text,
            ),
        })?;
        cfg.base_dir = base_dir;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: origin.to_string(),
                line: key_line(text, &key),
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Applies `key=value` overrides (value in YAML syntax), then validates again.
    ///
    /// # Errors
    /// [`ConfigError::Override`] for an unknown key or a value of the wrong type;
    /// [`ConfigError::Invalid`] for a value out of range.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut value = serde_json::to_value(self)
            .map_err(|e| ConfigError::Override(String::new(), e.to_string()))?;
        for (key, raw) in overrides {
            let what = format!("{key}={raw}");
            // Dotted keys reach into sections: `offline.temperature=2`.
            let mut slot = &mut value;
            for part in key.split('.') {
                slot = slot
                    .as_object_mut()
                    .and_then(|o| o.get_mut(part))
                    .ok_or_else(|| {
                        ConfigError::Override(what.clone(), format!("unknown key `{key}`"))
                    })?;
            }
            let v: serde_json::Value = serde_saphyr::from_str(raw).map_err(|e| {
                ConfigError::Override(what.clone(), tidy_parse_message(&e.to_string(), "--set"))
            })?;
            *slot = v;
            // Deserialise after each override so a type error names its key.
            serde_json::from_value::<SimConfig>(value.clone())
                .map_err(|e| ConfigError::Override(what.clone(), e.to_string()))?;
        }
        let mut cfg: SimConfig = serde_json::from_value(value)
            .map_err(|e| ConfigError::Override(String::new(), e.to_string()))?;
        cfg.base_dir = self.base_dir.clone();
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: "command line".into(),
                line: None,
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Checks ranges and cross-field rules. Returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((key.to_string(), msg))
        }
        if !(1..=1_000_000).contains(&self.round) {
            return bad(
                "round",
                format!("{} is out of range: allowed 1..=1000000", self.round),
            );
        }
        if !(1..=50).contains(&self.page_size) {
            return bad(
                "page_size",
                format!("{} is out of range: allowed 1..=50", self.page_size),
            );
        }
        if self.rec_random_k >= self.page_size {
            return bad(
                "rec_random_k",
                format!(
                    "{} is out of range: allowed 0..page_size ({})",
                    self.rec_random_k, self.page_size
                ),
            );
        }
        if let Some(0) = self.agent_num {
            return bad(
                "agent_num",
                "0 is out of range: allowed 1.. (or empty for all users)".into(),
            );
        }
        if !(self.active_prob > 0.0 && self.active_prob <= 1.0) {
            return bad(
                "active_prob",
                format!("{} is out of range: allowed (0, 1]", self.active_prob),
            );
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad(
                "temperature",
                format!("{} is out of range: allowed 0..=2", self.temperature),
            );
        }
        if !(1..=100_000).contains(&self.max_token) {
            return bad(
                "max_token",
                format!("{} is out of range: allowed 1..=100000", self.max_token),
            );
        }
        if self.max_retries > 20 {
            return bad(
                "max_retries",
                format!("{} is out of range: allowed 0..=20", self.max_retries),
            );
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return bad(
                "lr",
                format!("{} is out of range: allowed (0, 10)", self.lr),
            );
        }
        if !(1..=100).contains(&self.max_session_steps) {
            return bad(
                "max_session_steps",
                format!(
                    "{} is out of range: allowed 1..=100",
                    self.max_session_steps
                ),
            );
        }
        if !(0.0..=48.0).contains(&self.watch_hours) {
            return bad(
                "watch_hours",
                format!("{} is out of range: allowed 0..=48", self.watch_hours),
            );
        }
        if !(1..=1000).contains(&self.history_size) {
            return bad(
                "history_size",
                format!("{} is out of range: allowed 1..=1000", self.history_size),
            );
        }
        if !(1..=1000).contains(&self.search_k) {
            return bad(
                "search_k",
                format!("{} is out of range: allowed 1..=1000", self.search_k),
            );
        }
        if self.social_random_contacts > 100 {
            return bad(
                "social_random_contacts",
                format!(
                    "{} is out of range: allowed 0..=100",
                    self.social_random_contacts
                ),
            );
        }
        if self.chat_hours.is_empty()
            || self.chat_hours.len() > 8
            || !self.chat_hours.iter().all(|h| *h > 0.0 && *h <= 24.0)
        {
            return bad(
                "chat_hours",
                format!(
                    "{:?} is out of range: allowed 1..=8 values, each in (0, 24]",
                    self.chat_hours
                ),
            );
        }
        if !(1..=50).contains(&self.chat_max_turns) {
            return bad(
                "chat_max_turns",
                format!("{} is out of range: allowed 1..=50", self.chat_max_turns),
            );
        }
        if self.post_minutes > 1440 {
            return bad(
                "post_minutes",
                format!("{} is out of range: allowed 0..=1440", self.post_minutes),
            );
        }
        if let Some(start) = self.start_datetime() {
            let clock = crate::clock::SimClock::new(start, self.interval);
            if clock.checked_round_start(self.round).is_none() {
                return bad(
                    "interval",
                    format!(
                        "{} × {} rounds from {} runs past the year 9999: use a shorter interval or fewer rounds",
                        self.interval, self.round, self.start_time
                    ),
                );
            }
        }
        if self.start_datetime().is_none() {
            return bad(
                "start_time",
                format!(
                    "{:?} is not a date-time: expected YYYY-mm-dd HH:MM:SS",
                    self.start_time
                ),
            );
        }
        for (key, v) in [
            ("agent_memory", &self.agent_memory),
            ("recagent_memory", &self.recagent_memory),
        ] {
            if v != "recagent" {
                return bad(key, format!("{v:?} is not supported: allowed \"recagent\""));
            }
        }
        if self.play_role {
            return bad(
                "play_role",
                "the human role agent is not available in this version: allowed false".into(),
            );
        }
        if self
            .simulator_restore_file_name
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return bad(
                "simulator_restore_file_name",
                "restoring RecAgent pickles is not supported: leave it empty".into(),
            );
        }
        if self.retrain_every > 1_000_000 {
            return bad(
                "retrain_every",
                format!(
                    "{} is out of range: allowed 0..=1000000",
                    self.retrain_every
                ),
            );
        }
        if !(1..=4096).contains(&self.embedding_size) {
            return bad(
                "embedding_size",
                format!("{} is out of range: allowed 1..=4096", self.embedding_size),
            );
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return bad(
                "batch_size",
                format!("{} is out of range: allowed 1..=1000000", self.batch_size),
            );
        }
        if self.epoch_num > 100_000 {
            return bad(
                "epoch_num",
                format!("{} is out of range: allowed 0..=100000", self.epoch_num),
            );
        }
        if self.rec_model == RecModel::External
            && !self
                .rec_external_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://"))
        {
            return bad(
                "rec_external_url",
                format!(
                    "{:?} is not usable with rec_model External: allowed an http:// URL",
                    self.rec_external_url.as_deref().unwrap_or("")
                ),
            );
        }
        if self.backend == BackendKind::Llm && self.api_bases.iter().all(|b| b.trim().is_empty()) {
            return bad(
                "api_bases",
                "backend llm needs at least one base URL, e.g. [http://127.0.0.1:8080/v1]".into(),
            );
        }
        if self.backend == BackendKind::Llm {
            for b in &self.api_bases {
                if b.contains(&format!("{REDACTED}@")) {
                    return bad(
                        "api_bases",
                        format!(
                            "{b:?}: the credentials of this URL are not kept in checkpoints; give the base again, e.g. --set 'api_bases=[http://user:password@host/v1]'"
                        ),
                    );
                }
                let url = reqwest::Url::parse(b);
                if url
                    .as_ref()
                    .is_ok_and(|u| u.query().is_some() || u.fragment().is_some())
                {
                    return bad(
                        "api_bases",
                        format!(
                            "{:?}: a base URL cannot have a query (?...) or fragment (#...): the request path is appended to it",
                            redact_url(b)
                        ),
                    );
                }
                let ok = (b.starts_with("http://") || b.starts_with("https://"))
                    && url.is_ok_and(|u| u.has_host());
                if !ok {
                    return bad(
                        "api_bases",
                        format!(
                            "{:?} is not a base URL: allowed http:// or https:// URLs, e.g. http://127.0.0.1:8080/v1",
                            redact_url(b)
                        ),
                    );
                }
            }
        }
        if self.backend == BackendKind::Replay
            && self
                .transcript_path
                .as_ref()
                .is_none_or(|p| p.as_os_str().is_empty())
        {
            return bad(
                "transcript_path",
                "backend replay needs the transcript of a recorded run".into(),
            );
        }
        self.llm_options
            .validate()
            .map_err(|(k, m)| (format!("llm_options.{k}"), m))?;
        self.offline
            .validate()
            .map_err(|(k, m)| (format!("offline.{k}"), m))?;
        self.memory
            .validate()
            .map_err(|(k, m)| (format!("memory.{k}"), m))
    }

    /// `start_time` parsed.
    pub fn start_datetime(&self) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(self.start_time.trim(), "%Y-%m-%d %H:%M:%S").ok()
    }

    /// Resolves a path from the file against [`Self::base_dir`].
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// True when the data paths point into the embedded demo data set.
    pub fn is_embedded(&self) -> bool {
        self.base_dir.as_os_str() == EMBEDDED_BASE
    }

    /// The configuration without secrets, as checkpoints keep it: no `api_keys`, and the
    /// credentials of `api_bases` URLs replaced by [`REDACTED`] (see [`redact_url`]).
    pub fn without_secrets(&self) -> SimConfig {
        let mut c = self.clone();
        c.api_keys.clear();
        c.api_bases = c.api_bases.iter().map(|b| redact_url(b)).collect();
        c
    }

    /// The configuration as JSON with secrets redacted (`api_keys` and the credentials of
    /// `api_bases` URLs), for the manifest, the log and `check-config`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(bases) = v.get_mut("api_bases").and_then(|k| k.as_array_mut()) {
            for b in bases.iter_mut() {
                if let Some(s) = b.as_str() {
                    *b = serde_json::Value::String(redact_url(s));
                }
            }
        }
        if let Some(keys) = v.get_mut("api_keys").and_then(|k| k.as_array_mut()) {
            for k in keys.iter_mut() {
                *k = serde_json::Value::String("<redacted>".into());
            }
        }
        v
    }
}

/// What stands in for a removed secret.
pub const REDACTED: &str = "<redacted>";

/// `url` with its user-info part (`user:password@`), if any, replaced by [`REDACTED`]:
/// `http://alice:pw@host/v1` gives `http://<redacted>@host/v1`. Anything else is unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// 1-based line of `key:` at the start of a line (any indentation) in `text`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    // For `section.leaf`, look for `leaf:` indented under the `section:` line.
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_key = |l: &str, k: &str| {
        l.trim_start()
            .strip_prefix(k)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    };
    let mut from = 0;
    let mut min_indent = 0;
    let parts: Vec<&str> = key.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let (i, l) = text
            .lines()
            .enumerate()
            .skip(from)
            .filter(|(_, l)| depth == 0 || indent(l) >= min_indent)
            .find(|(_, l)| is_key(l, part))?;
        if depth + 1 == parts.len() {
            return Some(i + 1);
        }
        from = i + 1;
        min_indent = indent(l) + 1;
    }
    None
}

/// Cleans a YAML parser message: no leading `error:`, the real origin instead of `<input>`, and no
/// advice about parser options.
fn tidy_parse_message(msg: &str, origin: &str) -> String {
    msg.trim_start_matches("error: ")
        .replace("<input>", origin)
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

/// The parser names the line of a bad value but not its key: add the key found on that line.
fn name_key_of_bad_value(msg: &str, text: &str) -> String {
    if msg.contains("unknown field") || msg.contains("duplicate") {
        return msg.to_string();
    }
    let line_no = msg
        .split("line ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let key = line_no
        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
        .and_then(|l| l.split_once(':'))
        .map(|(k, _)| k.trim().trim_start_matches("- ").to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '));
    match key {
        Some(k) => format!("invalid value for `{k}`: {msg}"),
        None => msg.to_string(),
    }
}

/// serde's "unknown field `x`" message carries no position; add the line where `x:` stands.
fn add_line_to_unknown_field(msg: &str, text: &str) -> String {
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        if let Some(key) = rest.split('`').next() {
            if let Some(line) = key_line(text, key) {
                if !msg.contains("line ") {
                    return format!("line {line}: {msg}");
                }
            }
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SimConfig, ConfigError> {
        SimConfig::from_yaml(text, "test.yaml", PathBuf::from("/base"))
    }

    #[test]
    fn embedded_config_is_valid() {
        let c = SimConfig::embedded().unwrap();
        assert_eq!(c.backend, BackendKind::Offline);
        assert!(c.is_embedded());
    }

    #[test]
    fn accepts_recagent_keys() {
        // Every key of RecAgent's shipped config.yaml (spec §6), with MF swapped for Random.
        let text = "llm: gpt-3.5\nitem_path: data/item.csv\nuser_path: data/user_1000.csv\n\
            relationship_path: data/relationship_1000.csv\ninteraction_path: data/interaction.csv\n\
            ckpt_path: data/ckpt\nindex_name: data/faiss_index\nsimulator_dir: data/simulator\n\
            simulator_restore_file_name:\nseed: 2023\nrec_model: Random\nepoch_num: 10\nbatch_size: 64\n\
            embedding_size: 64\nlr: 0.001\nround: 5\nagent_num: 10\npage_size: 5\ntemperature: 0\n\
            max_token: 1500\nexecution_mode: parallel\ninterval: 5h\nmax_retries: 3\nverbose: True\n\
            active_agent_threshold: 100\nactive_method: random\nactive_prob: 1\nagent_memory: recagent\n\
            api_bases: [\"http://\"]\napi_keys: [\"xxx\"]\nrec_random_k: 0\nsocial_random_k: 0\n";
        let c = parse(text).unwrap();
        assert_eq!(c.agent_num, Some(10));
        assert_eq!(c.interval, Interval::Seconds(18_000));
        assert_eq!(
            c.resolve(&c.item_path),
            PathBuf::from("/base/data/item.csv")
        );
        assert_eq!(c.active_agent_threshold, Some(100));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("seed: 1\npage_sise: 5\n").unwrap_err().to_string();
        assert!(err.contains("page_sise"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let err = parse("seed: 1\nround: 2\nseed: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("duplicate"), "{err}");
        assert!(err.contains("seed"), "{err}");
    }

    #[test]
    fn out_of_range_names_key_range_and_line() {
        let err = parse("seed: 1\npage_size: 0\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "test.yaml:2: invalid value for `page_size`: 0 is out of range: allowed 1..=50"
        );
        let err = parse("active_prob: 1.5\n").unwrap_err().to_string();
        assert!(
            err.contains("`active_prob`") && err.contains("(0, 1]"),
            "{err}"
        );
        let err = parse("interval: 1.5h\n").unwrap_err().to_string();
        assert!(err.contains("1.5h") && err.contains("`interval`"), "{err}");
        let err = parse("seed: 1\nround: -5\n").unwrap_err().to_string();
        assert!(err.contains("`round`") && err.contains("line 2"), "{err}");
        let err = parse("page_size: 5\nrec_random_k: 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rec_random_k") && err.contains("0..page_size (5)"),
            "{err}"
        );
    }

    #[test]
    fn overrides_apply_and_validate() {
        let c = parse("seed: 1\n").unwrap();
        let o = c
            .with_overrides(&[("seed".into(), "9".into()), ("round".into(), "3".into())])
            .unwrap();
        assert_eq!((o.seed, o.round), (9, 3));
        assert!(c
            .with_overrides(&[("nope".into(), "1".into())])
            .unwrap_err()
            .to_string()
            .contains("unknown key `nope`"));
        assert!(c
            .with_overrides(&[("page_size".into(), "0".into())])
            .is_err());
    }

    #[test]
    fn url_credentials_are_redacted_and_bases_with_queries_refused() {
        assert_eq!(
            redact_url("http://alice:s3cret@127.0.0.1:8000/v1"),
            "http://<redacted>@127.0.0.1:8000/v1"
        );
        assert_eq!(
            redact_url("https://a:b@[::1]/v1?x=@"),
            "https://<redacted>@[::1]/v1?x=@"
        );
        assert_eq!(
            redact_url("http://127.0.0.1/v1/a@b"),
            "http://127.0.0.1/v1/a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        let c = parse(
            "backend: llm\napi_bases: [http://alice:s3cret@127.0.0.1:8000/v1]\napi_keys: [sk-x]\n",
        )
        .unwrap();
        let s = c.redacted_json().to_string();
        assert!(!s.contains("s3cret") && !s.contains("sk-x"), "{s}");
        assert!(s.contains("http://<redacted>@127.0.0.1:8000/v1"), "{s}");
        // A checkpoint's copy cannot be run as it is: the error says to give the base again.
        let e = c.without_secrets().validate().unwrap_err();
        assert_eq!(e.0, "api_bases");
        assert!(e.1.contains("--set"), "{}", e.1);
        let e = parse("backend: llm\napi_bases: [http://127.0.0.1:8000/v1?api-version=1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("query"), "{e}");
    }

    #[test]
    fn manifest_redacts_keys() {
        let c = parse("api_keys: [sk-secret-1, sk-secret-2]\n").unwrap();
        let s = c.redacted_json().to_string();
        assert!(!s.contains("sk-secret"), "{s}");
        assert!(s.contains("<redacted>"));
    }
}
