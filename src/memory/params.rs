//! Memory parameters: [`MemoryParams`], the `memory:` config section, with its defaults, its
//! range checks and the importance of a 1..=10 score.

use serde::{Deserialize, Serialize};

/// Memory parameters (`memory:` config section). Defaults are the original's values (spec §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// Unknown keys are collected and reported with every other unknown key of the file
// (`SimConfig::check_claimed`), so they are not refused here one at a time.
#[serde(default)]
pub struct MemoryParams {
    /// Sensory → STM gate: an observation is kept when `importance > importance_gate`, in [0, 1]
    /// (original 0.62, i.e. a score of 7 or more out of 10).
    pub importance_gate: f32,
    /// Importance = score/10 × this weight, in (0, 1] (original 0.9 for sensory and insights).
    pub importance_weight: f32,
    /// STM capacity in entries, 1..=100 (original 10).
    pub stm_capacity: usize,
    /// Reinforcements that move an STM entry to long-term memory, 1..=20 (original 3).
    pub enhance_threshold: u8,
    /// Cosine bonus of the newest STM entry when comparing, in [0, 1] (original 0.1).
    pub newest_bonus: f32,
    /// Reinforcement gate on sigmoid(cos), in [0.5, 1] (original 0.7, i.e. cos ≥ 0.8473).
    pub enhance_gate: f32,
    /// Summed importance of new LTM records that triggers a reflection, > 0 (original 10).
    pub reflection_threshold: f32,
    /// LTM records a reflection topic is drawn from (the latest ones), 1..=500 (original 50).
    pub reflection_window: usize,
    /// Reflection merge gate on sigmoid(cos) of an insight and a cited record, in [0.5, 1]
    /// (original 0.72, i.e. cos ≥ 0.9445).
    pub merge_gate: f32,
    /// Recency factor per simulated hour since last access, in (0, 1] (original 0.99).
    pub recency_decay: f32,
    /// Records accessed within this many simulated hours are never forgotten, ≥ 0 (original 24).
    pub forget_exempt_hours: f32,
    /// Run the forgetting pass (spec §3.4).
    pub forgetting: bool,
    /// Weight of recency in the retrieval score, ≥ 0 (original 1).
    pub recency_weight: f32,
    /// Weight of importance in the retrieval score, ≥ 0 (original 1).
    pub importance_score_weight: f32,
    /// Weight of relevance (cosine) in the retrieval score, ≥ 0 (original 1).
    pub relevance_weight: f32,
    /// Long-term records returned by a retrieval, 1..=50 (original 5).
    pub top_k: usize,
    /// Word budget of a retrieval's texts (LTM top-k first, then STM), 10..=100000.
    pub max_words: usize,
    /// Cap on long-term records per agent, 1..=100000; beyond it the least important (oldest
    /// first among equals) is evicted. Not in the original (unbounded).
    pub ltm_cap: usize,
    /// Embedding dimension, 16..=4096: of the hashing embedder, or the one the endpoint returns;
    /// must be 384 for `minilm`.
    pub embed_dim: usize,
    /// Embedder: `hash` (offline signed feature hashing, default), `openai` (an
    /// OpenAI-compatible `/v1/embeddings` endpoint) or `minilm` (all-MiniLM-L6-v2 in-process;
    /// needs a build with the `minilm` cargo feature and `embed_model_dir`).
    pub embedder: String,
    /// `openai` embedder: API base including `/v1`.
    pub embed_base_url: String,
    /// `openai` embedder: model name.
    pub embed_model: String,
    /// `openai` embedder: name of the environment variable holding the API key (never the key).
    pub embed_api_key_env: Option<String>,
    /// `openai` embedder: cache folder (relative to the output dir); default `<output_dir>/embed-cache`.
    pub embed_cache_dir: Option<std::path::PathBuf>,
    /// `minilm` embedder: folder holding `config.json`, `tokenizer.json` and `model.safetensors`
    /// (relative to the configuration file; fetch it with `scripts/get-minilm.sh DIR`).
    pub embed_model_dir: Option<std::path::PathBuf>,
    /// `minilm` embedder: texts per forward pass, 1..=1024 (default 32).
    pub embed_batch_size: usize,
    /// Build the HNSW item index for the `search` action (else word overlap only).
    pub item_index: bool,
    /// Folder for the persisted item index (read and written); default: a prebuilt
    /// `.recagent-index` beside the item file is read, and what is built goes to the user cache
    /// (`$XDG_CACHE_HOME/recagent/index`), else `<output_dir>/index`
    /// ([`crate::catalog::index_dirs`]).
    pub index_dir: Option<std::path::PathBuf>,
}

impl Default for MemoryParams {
    fn default() -> Self {
        Self {
            importance_gate: 0.62,
            importance_weight: 0.9,
            stm_capacity: 10,
            enhance_threshold: 3,
            newest_bonus: 0.1,
            enhance_gate: 0.7,
            reflection_threshold: 10.0,
            reflection_window: 50,
            merge_gate: 0.72,
            recency_decay: 0.99,
            forget_exempt_hours: 24.0,
            forgetting: true,
            recency_weight: 1.0,
            importance_score_weight: 1.0,
            relevance_weight: 1.0,
            top_k: 5,
            max_words: 600,
            ltm_cap: 200,
            embed_dim: 256,
            embedder: "hash".into(),
            embed_base_url: "http://127.0.0.1:8080/v1".into(),
            embed_model: "text-embedding-3-small".into(),
            embed_api_key_env: None,
            embed_cache_dir: None,
            embed_model_dir: None,
            embed_batch_size: 32,
            item_index: true,
            index_dir: None,
        }
    }
}

impl MemoryParams {
    /// Checks ranges; returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let unit = |k: &str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err((
                    k.to_string(),
                    format!("{v} is out of range: allowed {lo}..={hi}"),
                ))
            }
        };
        let int = |k: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((
                    k.to_string(),
                    format!("{v} is out of range: allowed {lo}..={hi}"),
                ))
            }
        };
        unit("importance_gate", self.importance_gate, 0.0, 1.0)?;
        unit("importance_weight", self.importance_weight, 0.01, 1.0)?;
        int("stm_capacity", self.stm_capacity, 1, 100)?;
        int("enhance_threshold", self.enhance_threshold.into(), 1, 20)?;
        unit("newest_bonus", self.newest_bonus, 0.0, 1.0)?;
        unit("enhance_gate", self.enhance_gate, 0.5, 1.0)?;
        unit("reflection_threshold", self.reflection_threshold, 0.01, 1e6)?;
        int("reflection_window", self.reflection_window, 1, 500)?;
        unit("merge_gate", self.merge_gate, 0.5, 1.0)?;
        unit("recency_decay", self.recency_decay, 0.01, 1.0)?;
        unit("forget_exempt_hours", self.forget_exempt_hours, 0.0, 1e6)?;
        unit("recency_weight", self.recency_weight, 0.0, 100.0)?;
        unit(
            "importance_score_weight",
            self.importance_score_weight,
            0.0,
            100.0,
        )?;
        unit("relevance_weight", self.relevance_weight, 0.0, 100.0)?;
        int("top_k", self.top_k, 1, 50)?;
        int("max_words", self.max_words, 10, 100_000)?;
        int("ltm_cap", self.ltm_cap, 1, 100_000)?;
        int("embed_dim", self.embed_dim, 16, 4096)?;
        int("embed_batch_size", self.embed_batch_size, 1, 1024)?;
        match self.embedder.as_str() {
            "hash" | "openai" => Ok(()),
            "minilm" => self.validate_minilm(),
            other => Err((
                "embedder".into(),
                format!("{other:?} is not an embedder: allowed hash, openai, minilm"),
            )),
        }
    }

    /// `embedder: minilm`: the build has the feature, the dimension is the model's, a folder is set.
    fn validate_minilm(&self) -> Result<(), (String, String)> {
        if !cfg!(feature = "minilm") {
            return Err((
                "embedder".into(),
                crate::embed::MINILM_NOT_BUILT.to_string(),
            ));
        }
        if self.embed_dim != 384 {
            return Err((
                "embed_dim".into(),
                format!(
                    "{} does not fit the minilm embedder, whose vectors have 384 dimensions: set embed_dim: 384",
                    self.embed_dim
                ),
            ));
        }
        if self
            .embed_model_dir
            .as_ref()
            .is_none_or(|d| d.as_os_str().is_empty())
        {
            return Err((
                "embed_model_dir".into(),
                "the minilm embedder needs the model folder (config.json, tokenizer.json, \
                 model.safetensors; scripts/get-minilm.sh DIR fetches it)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Importance in [0, weight] of a 1..=10 score (clamped; the original did not clamp).
    pub fn importance_of(&self, score: u8) -> f32 {
        f32::from(score.clamp(1, 10)) / 10.0 * self.importance_weight
    }
}
