//! The LLM behaviour backend: agents' typed requests rendered into prompts, sent concurrently to
//! OpenAI-compatible servers (or answered from a recorded transcript), parsed back into typed
//! answers.
//!
//! - [`prompts`]: templates (`config/prompts/*.txt`) and rendering under a token budget;
//! - [`http`]: the HTTP client (hyper directly for plain-http endpoints, reqwest for https and
//!   proxies; chat and plain completions, retries, per-endpoint limits);
//! - [`bridge`]: the [`LlmBackend`] that implements [`BehaviourBackend`](crate::behaviour::BehaviourBackend), owning a tokio runtime;
//! - [`parse`]: tolerant, panic-free parsing of replies;
//! - [`transcript`]: the JSON Lines record of every call, and its replay.
//!
//! # Determinism
//! Answers are applied in request order (the batch order, which systems build in key order),
//! never in completion order. The transcript is written in request order after each batch.
//! With `backend: replay` a recorded run is reproduced byte for byte without a server.
//!
//! # Failures
//! A call that fails after its HTTP retries, or whose answer still does not parse after
//! `llm_options.parse_retries` corrective retries, returns `Err(BackendError)` for that request
//! only; [`crate::behaviour::Behaviour::ask`] then applies its deterministic fallback ("do
//! nothing" / leave / neutral rating), counts it per phase and logs the reason with the raw text.

pub mod bridge;
pub mod cache;
pub mod estimate;
pub mod http;
pub mod parse;
pub mod prompts;
pub mod transcript;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

pub use bridge::LlmBackend;
pub use http::{Protocol, Usage};

/// Settings of the `llm` and `replay` backends (config section `llm_options:`). The model
/// (`llm`), `api_bases`, `api_keys`, `temperature`, `max_token` and `max_retries` are RecAgent's
/// top-level keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

    /// Cost of `u` at the configured prices.
    pub fn cost(&self, u: Usage) -> f64 {
        (u.prompt_tokens as f64 * self.price_prompt_per_mtok
            + u.completion_tokens as f64 * self.price_completion_per_mtok)
            / 1e6
    }

    /// True when prices are set.
    pub fn has_prices(&self) -> bool {
        self.price_prompt_per_mtok > 0.0 || self.price_completion_per_mtok > 0.0
    }
}

/// Token usage and call counters of the LLM backend: per round, per phase and in total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmUsage {
    /// Usage per round (1-based round number).
    pub per_round: BTreeMap<u32, Usage>,
    /// Usage per phase (index = `Phase as usize`).
    pub per_phase: [Usage; 8],
    /// Total usage.
    pub total: Usage,
    /// Calls made (first calls and corrective retries).
    pub calls: u64,
    /// Calls that failed after their HTTP retries (or were recorded as failed, in replay).
    pub failed_calls: u64,
    /// HTTP retries (tries beyond the first), summed.
    pub http_retries: u64,
    /// Answers that did not parse (each counted once per try).
    pub parse_failures: u64,
    /// Corrective retries sent.
    pub corrective_retries: u64,
    /// Calls answered from the response cache (included in `calls`; no tokens counted).
    #[serde(default)]
    pub cache_hits: u64,
    /// Requests that still had no valid answer after the corrective retries.
    pub unparsed_requests: u64,
    /// Prompts over `prompt_token_budget` even without memories.
    pub over_budget: u64,
    /// Replay: requests whose prompt hash differed from the transcript, or were missing.
    pub replay_mismatches: u64,
    /// Replay: the first such key, with the reason.
    pub first_replay_mismatch: Option<String>,
    /// Sum of call latencies, milliseconds (wall-clock: not serialised, so manifests stay
    /// reproducible).
    #[serde(skip)]
    pub latency_ms_sum: u64,
}

/// Shared handle on the backend's [`LlmUsage`], a world resource readable from `Sim`.
#[derive(Resource, Clone, Debug, Default)]
pub struct LlmStats(pub Arc<Mutex<LlmUsage>>);

impl LlmStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> LlmUsage {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Errors building an LLM backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmSetupError {
    /// A prompt template is missing.
    #[error(transparent)]
    Prompt(#[from] prompts::PromptError),
    /// The transcript could not be read.
    #[error(transparent)]
    Transcript(#[from] transcript::TranscriptError),
    /// Runtime, client or transcript file could not be created.
    #[error("{0}")]
    Setup(String),
}

/// The transcript file `transcript_path` names (resolved against the config file), if set.
fn configured_transcript(cfg: &crate::config::SimConfig) -> Option<PathBuf> {
    cfg.transcript_path
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| {
            if cfg.is_embedded() {
                p.to_path_buf()
            } else {
                cfg.resolve(p)
            }
        })
}

/// The transcript an `llm` run with outputs in `output_dir` writes: `transcript_path`, else
/// `<output_dir>/transcript.jsonl`.
pub fn transcript_of(cfg: &crate::config::SimConfig, output_dir: &std::path::Path) -> PathBuf {
    configured_transcript(cfg).unwrap_or_else(|| output_dir.join("transcript.jsonl"))
}

/// The backend `cfg.backend` names, for `Sim::new`: `None` for `offline` (the caller builds
/// the offline model), else the LLM or replay backend and its counters. `names` are the agents'
/// names by id; `output_dir` is where the default transcript goes.
///
/// # Errors
/// [`LlmSetupError`] as in [`LlmBackend::http`] and [`LlmBackend::replay`].
pub fn backend_for(
    cfg: &crate::config::SimConfig,
    names: BTreeMap<crate::ids::UserId, Arc<str>>,
    output_dir: &std::path::Path,
    resume_after: Option<u32>,
) -> Result<Option<(Box<dyn crate::behaviour::BehaviourBackend>, LlmStats)>, LlmSetupError> {
    use crate::config::BackendKind;
    let names = Arc::new(names);
    let transcript = configured_transcript(cfg);
    let b = match cfg.backend {
        BackendKind::Offline => return Ok(None),
        BackendKind::Llm => {
            let t = transcript.unwrap_or_else(|| output_dir.join("transcript.jsonl"));
            let mut b = match resume_after {
                // A resumed run keeps the transcript up to the checkpoint and answers the calls
                // the interrupted run already made from it, so they are not asked (or paid) again.
                Some(round) if t.exists() => {
                    let split = transcript::split_for_resume(&t, round)
                        .map_err(|e| LlmSetupError::Setup(format!("{}: {e}", t.display())))?;
                    LlmBackend::http_resuming(cfg, names, &t, split)?
                }
                _ => LlmBackend::http(cfg, names, Some(&t))?,
            };
            if cfg.llm_options.response_cache {
                let path = match cfg.llm_options.response_cache_path.as_deref() {
                    Some(p) if !p.as_os_str().is_empty() => {
                        if cfg.is_embedded() {
                            p.to_path_buf()
                        } else {
                            cfg.resolve(p)
                        }
                    }
                    _ => output_dir.join("llm-cache.jsonl"),
                };
                b.enable_cache(cfg, &path)?;
            }
            b
        }
        BackendKind::Replay => {
            let t = transcript.ok_or_else(|| {
                LlmSetupError::Setup("backend replay needs transcript_path".into())
            })?;
            LlmBackend::replay(cfg, names, &t)?
        }
    };
    let stats = b.stats();
    Ok(Some((Box::new(b), stats)))
}
