//! The LLM behaviour backend: agents' typed requests rendered into prompts, sent concurrently to
//! OpenAI-compatible servers (or answered from a recorded transcript), parsed back into typed
//! answers.
//!
//! - [`http`]: the HTTP client (hyper directly for plain-http endpoints, reqwest for https and
//!   proxies; chat and plain completions, retries, per-endpoint limits);
//! - [`bridge`]: the [`LlmBackend`] (generic over every decision kind: prompts and parsing are
//!   the kinds' own, [`crate::decision`]) that implements [`BehaviourBackend`](crate::behaviour::BehaviourBackend), owning a tokio runtime;
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
pub mod transcript;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

pub use crate::config::{LlmOptions, Protocol};
pub use bridge::LlmBackend;
pub use http::Usage;

/// Token usage and call counters of the LLM backend: per round, per phase and in total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmUsage {
    /// Usage per round (1-based round number).
    pub per_round: BTreeMap<u32, Usage>,
    /// Usage per decision kind ([`crate::decision::Decision::KIND`]).
    pub per_kind: BTreeMap<String, Usage>,
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
    Prompt(#[from] crate::decision::prompt::PromptError),
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
/// the offline model), else the LLM, replay or hybrid backend and its (LLM) counters; the
/// hybrid backend's decisions come from `offline` (the `offline:` parameters, calibrated model
/// loaded). `names` are the agents'
/// names by id; `output_dir` is where the default transcript goes; `kinds` are the registered
/// decision kinds (their templates, and the phases a transcript's keys resolve to).
///
/// # Errors
/// [`LlmSetupError`] as in [`LlmBackend::http`] and [`LlmBackend::replay`].
pub fn backend_for(
    cfg: &crate::config::SimConfig,
    offline: &crate::decision::offline::OfflineParams,
    names: BTreeMap<crate::ids::UserId, Arc<str>>,
    output_dir: &std::path::Path,
    resume_after: Option<u32>,
    kinds: &crate::decision::DecisionKinds,
) -> Result<Option<(Box<dyn crate::behaviour::BehaviourBackend>, LlmStats)>, LlmSetupError> {
    use crate::config::{BackendKind, TextSource};
    let names = Arc::new(names);
    let transcript = configured_transcript(cfg);
    if cfg.backend == BackendKind::Hybrid {
        let words = if cfg.hybrid.text_share > 0.0 {
            let mut w = match cfg.hybrid.text_source {
                TextSource::Llm => live(cfg, names, output_dir, resume_after, kinds, transcript)?,
                TextSource::Replay => {
                    let t = transcript.ok_or_else(|| {
                        LlmSetupError::Setup(
                            "hybrid.text_source replay needs transcript_path".into(),
                        )
                    })?;
                    LlmBackend::replay(cfg, names, &t, kinds)?
                }
            };
            w.load_words_prompts(cfg, kinds)?;
            Some(w)
        } else {
            None
        };
        let stats = words.as_ref().map(LlmBackend::stats).unwrap_or_default();
        let b = crate::behaviour::hybrid::HybridBackend {
            offline: crate::behaviour::offline::OfflineBackend::for_config(cfg, offline.clone()),
            words,
            text_share: cfg.hybrid.text_share,
        };
        return Ok(Some((Box::new(b), stats)));
    }
    let b = match cfg.backend {
        BackendKind::Offline | BackendKind::Hybrid => return Ok(None),
        BackendKind::Llm => live(cfg, names, output_dir, resume_after, kinds, transcript)?,
        BackendKind::Replay => {
            let t = transcript.ok_or_else(|| {
                LlmSetupError::Setup("backend replay needs transcript_path".into())
            })?;
            LlmBackend::replay(cfg, names, &t, kinds)?
        }
    };
    let stats = b.stats();
    Ok(Some((Box::new(b), stats)))
}

/// The backend asking the configuration's servers, recording to the transcript (resuming it
/// after round `resume_after`), with the response cache when configured.
fn live(
    cfg: &crate::config::SimConfig,
    names: Arc<BTreeMap<crate::ids::UserId, Arc<str>>>,
    output_dir: &std::path::Path,
    resume_after: Option<u32>,
    kinds: &crate::decision::DecisionKinds,
    transcript: Option<PathBuf>,
) -> Result<LlmBackend, LlmSetupError> {
    Ok({
        {
            let t = transcript.unwrap_or_else(|| output_dir.join("transcript.jsonl"));
            let mut b = match resume_after {
                // A resumed run keeps the transcript up to the checkpoint and answers the calls
                // the interrupted run already made from it, so they are not asked (or paid) again.
                Some(round) if t.exists() => {
                    let split = transcript::split_for_resume(&t, round, kinds)
                        .map_err(|e| LlmSetupError::Setup(format!("{}: {e}", t.display())))?;
                    LlmBackend::http_resuming(cfg, names, &t, split, kinds)?
                }
                _ => LlmBackend::http(cfg, names, Some(&t), kinds)?,
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
    })
}
