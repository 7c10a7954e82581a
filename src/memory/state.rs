//! Memory state and the pure memory operations. See the module docs of [`crate::memory`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Memory parameters (`memory:` config section). Defaults are the original's values (spec §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
    /// Folder for the persisted item embeddings; default: `.recagent-index` beside the item file,
    /// or `<output_dir>/index` when that is not writable.
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

/// A unit vector quantised to `i8` (`q = round(127·x)`): 1 byte per dimension instead of 4.
/// Cosines are computed on the quantised values and renormalised, error ≈ 1e-3.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QVec(pub Box<[i8]>);

impl QVec {
    /// Quantises a (unit) vector.
    pub fn new(v: &[f32]) -> Self {
        Self(
            v.iter()
                .map(|x| (x * 127.0).round().clamp(-127.0, 127.0) as i8)
                .collect(),
        )
    }
    /// Cosine similarity in [−1, 1]; 0 when either vector is zero or lengths differ.
    pub fn cos(&self, o: &QVec) -> f32 {
        if self.0.len() != o.0.len() {
            return 0.0;
        }
        let (mut d, mut na, mut nb) = (0i32, 0i32, 0i32);
        for (&a, &b) in self.0.iter().zip(o.0.iter()) {
            let (a, b) = (i32::from(a), i32::from(b));
            d += a * b;
            na += a * a;
            nb += b * b;
        }
        if na == 0 || nb == 0 {
            0.0
        } else {
            d as f32 / ((na as f32).sqrt() * (nb as f32).sqrt())
        }
    }
}

/// The logistic function `1 / (1 + e^−x)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One short-term entry (spec §3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StmEntry {
    /// One sentence.
    pub text: Arc<str>,
    /// Importance in [0, 1].
    pub importance: f32,
    /// Embedding.
    pub emb: QVec,
    /// Texts that reinforced it, oldest first (its reinforcement count is their number).
    pub enhancers: Vec<Arc<str>>,
}

/// One long-term record (spec §3.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtmRecord {
    /// Stream index: unique per agent, increasing, never reused (the `[n]` of prompts).
    pub idx: u32,
    /// Text.
    pub text: Arc<str>,
    /// Importance in [0, 1].
    pub importance: f32,
    /// Created, simulated hours since the clock's start.
    pub created_hours: f32,
    /// Last accessed, simulated hours since the clock's start.
    pub accessed_hours: f32,
    /// Embedding.
    pub emb: QVec,
}

/// One agent's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryState {
    /// Short-term entries, oldest first.
    pub stm: Vec<StmEntry>,
    /// Long-term records, ascending `idx`.
    pub ltm: Vec<LtmRecord>,
    /// Next stream index.
    pub next_idx: u32,
    /// Importance added to LTM since the last reflection.
    pub aggregate_importance: f32,
    /// Stream indices of the last retrieval made for this agent (what its prompts read).
    pub recalled: Vec<u32>,
}

/// An STM entry moved to long-term memory, with the text that completed its reinforcement.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// The entry (its `enhancers` end with `current`).
    pub entry: StmEntry,
    /// The text being added when the transfer happened.
    pub current: Arc<str>,
}

/// Why a text reaches [`stm_add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StmOp {
    /// A new observation: reinforces, then is appended.
    Add,
    /// A retrieved LTM text: reinforces only.
    Retrieval,
}

/// Adds `text` to short-term memory (spec §3.2 step 2). For each entry `j` (oldest first):
/// `s = cos(new, j) + newest_bonus·[j is newest]`, `p = sigmoid(s)`; when `p ≥ enhance_gate` and
/// a uniform draw `≤ p`, `j` is reinforced. Entries with `enhance_threshold` reinforcements are
/// removed and returned (in STM order). With [`StmOp::Add`] the text is then appended (a text
/// equal to an existing entry's is not duplicated) and, over capacity, the least important entry
/// other than the newest (fewest reinforcements, then oldest, among equals) is discarded and its
/// text is removed from the other entries' reinforcement lists.
///
/// `uniform` is called once per gated entry, in STM order.
pub fn stm_add(
    m: &mut MemoryState,
    p: &MemoryParams,
    text: &Arc<str>,
    importance: f32,
    emb: &QVec,
    op: StmOp,
    uniform: &mut impl FnMut() -> f64,
) -> Vec<Transfer> {
    let n = m.stm.len();
    for (j, e) in m.stm.iter_mut().enumerate() {
        let bonus = if j + 1 == n { p.newest_bonus } else { 0.0 };
        let prob = sigmoid(e.emb.cos(emb) + bonus);
        if prob >= p.enhance_gate && uniform() <= f64::from(prob) {
            e.enhancers.push(text.clone());
        }
    }
    let mut transfers = Vec::new();
    let mut kept = Vec::with_capacity(m.stm.len() + 1);
    for e in m.stm.drain(..) {
        if e.enhancers.len() >= usize::from(p.enhance_threshold) {
            transfers.push(Transfer {
                entry: e,
                current: text.clone(),
            });
        } else {
            kept.push(e);
        }
    }
    m.stm = kept;
    if op == StmOp::Add && !m.stm.iter().any(|e| e.text == *text) {
        m.stm.push(StmEntry {
            text: text.clone(),
            importance,
            emb: emb.clone(),
            enhancers: Vec::new(),
        });
        if m.stm.len() > p.stm_capacity {
            let last = m.stm.len() - 1;
            let (victim, _) = m.stm[..last]
                .iter()
                .enumerate()
                .min_by(|a, b| {
                    (a.1.importance, a.1.enhancers.len())
                        .partial_cmp(&(b.1.importance, b.1.enhancers.len()))
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(a.0.cmp(&b.0))
                })
                .expect("invariant: capacity ≥ 1 so an older entry exists");
            let gone = m.stm.remove(victim);
            for e in &mut m.stm {
                e.enhancers.retain(|t| *t != gone.text);
            }
        }
    }
    transfers
}

/// Appends a long-term record at `now_hours`; adds its importance to the reflection aggregate
/// unless `reflecting`. Returns its stream index.
pub fn ltm_add(
    m: &mut MemoryState,
    text: Arc<str>,
    importance: f32,
    emb: QVec,
    now_hours: f32,
    reflecting: bool,
) -> u32 {
    let idx = m.next_idx;
    m.next_idx += 1;
    m.ltm.push(LtmRecord {
        idx,
        text,
        importance,
        created_hours: now_hours,
        accessed_hours: now_hours,
        emb,
    });
    if !reflecting {
        m.aggregate_importance += importance;
    }
    idx
}

/// True when the importance added since the last reflection passes the threshold (strictly
/// greater, as in the original).
pub fn reflection_due(m: &MemoryState, p: &MemoryParams) -> bool {
    m.aggregate_importance > p.reflection_threshold
}

/// Recency `decay^h` of a record last accessed `h ≥ 0` hours ago (spec §3.6).
pub fn recency(p: &MemoryParams, hours: f32) -> f32 {
    p.recency_decay.powf(hours.max(0.0))
}

/// Retrieval score of one record (spec §3.6, with relevance = cosine, see module docs):
/// `w_rec·decay^(now − accessed) + w_imp·importance + w_rel·cos(query, record)`.
pub fn retrieval_score(p: &MemoryParams, r: &LtmRecord, query: &QVec, now_hours: f32) -> f32 {
    p.recency_weight * recency(p, now_hours - r.accessed_hours)
        + p.importance_score_weight * r.importance
        + p.relevance_weight * r.emb.cos(query)
}

/// The `k` best long-term records for `query` at `now_hours` (positions into `m.ltm`, best
/// first, ties by lower stream index). Exact search over all records; reads only.
pub fn retrieve(
    m: &MemoryState,
    p: &MemoryParams,
    query: &QVec,
    now_hours: f32,
    k: usize,
) -> Vec<usize> {
    let mut s: Vec<(f32, usize)> = m
        .ltm
        .iter()
        .enumerate()
        .map(|(i, r)| (retrieval_score(p, r, query, now_hours), i))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.truncate(k);
    s.into_iter().map(|x| x.1).collect()
}

/// The texts a prompt reads: the recalled LTM records (prefixed `[idx] `) then all STM entries,
/// cut when the word budget `max_words` would be exceeded.
pub fn recalled_texts(m: &MemoryState, p: &MemoryParams) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = 0;
    let ltm = m.recalled.iter().filter_map(|idx| {
        m.ltm
            .binary_search_by_key(idx, |r| r.idx)
            .ok()
            .map(|i| format!("[{idx}] {}", m.ltm[i].text))
    });
    for t in ltm.chain(m.stm.iter().map(|e| e.text.to_string())) {
        let w = t.split_whitespace().count();
        if words + w > p.max_words {
            break;
        }
        words += w;
        out.push(t);
    }
    out
}

/// Forgetting probabilities (spec §3.4) for every record at `now_hours`:
/// `r = decay^h`, `score = max(r^1.5, 0.01)·(importance + r)/2`, `p_i = (1 − score_i)/Σ_j(1 − score_j)`.
/// All zeros when the sum is not positive.
pub fn forget_probabilities(m: &MemoryState, p: &MemoryParams, now_hours: f32) -> Vec<f64> {
    let w: Vec<f64> = m
        .ltm
        .iter()
        .map(|r| {
            let rec = f64::from(recency(p, now_hours - r.accessed_hours));
            let score = rec.powf(1.5).max(0.01) * (f64::from(r.importance) + rec) / 2.0;
            1.0 - score
        })
        .collect();
    let total: f64 = w.iter().sum();
    if total > 0.0 {
        w.iter().map(|x| x / total).collect()
    } else {
        vec![0.0; w.len()]
    }
}

/// The forgetting pass: each record not accessed within `forget_exempt_hours` is removed when a
/// uniform draw is `< p_i` (one draw per such record, in stream order). Returns the removed indices.
pub fn forget(
    m: &mut MemoryState,
    p: &MemoryParams,
    now_hours: f32,
    uniform: &mut impl FnMut() -> f64,
) -> Vec<u32> {
    let probs = forget_probabilities(m, p, now_hours);
    let mut gone = Vec::new();
    let mut i = 0;
    m.ltm.retain(|r| {
        let pi = probs[i];
        i += 1;
        let drop = now_hours - r.accessed_hours > p.forget_exempt_hours && uniform() < pi;
        if drop {
            gone.push(r.idx);
        }
        !drop
    });
    gone
}

/// Evicts records over `ltm_cap`: lowest importance first, oldest (lowest index) among equals.
/// Returns the evicted indices.
pub fn enforce_cap(m: &mut MemoryState, p: &MemoryParams) -> Vec<u32> {
    let over = m.ltm.len().saturating_sub(p.ltm_cap);
    if over == 0 {
        return Vec::new();
    }
    let mut order: Vec<(f32, u32)> = m.ltm.iter().map(|r| (r.importance, r.idx)).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut gone: Vec<u32> = order[..over].iter().map(|x| x.1).collect();
    gone.sort_unstable();
    m.ltm.retain(|r| gone.binary_search(&r.idx).is_err());
    gone
}

/// Reflection's merge (spec §3.5): every cited record whose `sigmoid(cos(record, insight)) ≥
/// merge_gate` is removed (folded into the insight). Returns the mean importance of the cited
/// records that exist (0 when none), taken before removal.
pub fn merge_into(m: &mut MemoryState, p: &MemoryParams, insight: &QVec, cites: &[u32]) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    let mut merged = Vec::new();
    for idx in cites {
        if let Ok(i) = m.ltm.binary_search_by_key(idx, |r| r.idx) {
            let r = &m.ltm[i];
            sum += r.importance;
            n += 1;
            if sigmoid(r.emb.cos(insight)) >= p.merge_gate {
                merged.push(*idx);
            }
        }
    }
    m.ltm.retain(|r| !merged.contains(&r.idx));
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// Marks the records at `positions` as accessed at `now_hours` (the retrieval side effect).
pub fn touch(m: &mut MemoryState, idxs: &[u32], now_hours: f32) {
    for idx in idxs {
        if let Ok(i) = m.ltm.binary_search_by_key(idx, |r| r.idx) {
            m.ltm[i].accessed_hours = now_hours;
        }
    }
}

/// Approximate heap + inline bytes held by one agent's memory (for the size benchmark): the
/// struct, vectors' capacity, embeddings, and text bytes (shared text counted in full).
pub fn approx_bytes(m: &MemoryState) -> usize {
    let text = |t: &Arc<str>| t.len() + 16;
    std::mem::size_of::<MemoryState>()
        + m.stm.capacity() * std::mem::size_of::<StmEntry>()
        + m.stm
            .iter()
            .map(|e| {
                text(&e.text)
                    + e.emb.0.len()
                    + e.enhancers.capacity() * std::mem::size_of::<Arc<str>>()
            })
            .sum::<usize>()
        + m.ltm.capacity() * std::mem::size_of::<LtmRecord>()
        + m.ltm
            .iter()
            .map(|r| text(&r.text) + r.emb.0.len())
            .sum::<usize>()
        + m.recalled.capacity() * 4
}
