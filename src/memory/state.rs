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

/// A unit vector quantised to `i8` (`q = round(127·x)`, clamped to ±127), stored in whichever of
/// two byte layouts is smaller, so the default hashing embedder's sparse vectors (~30 non-zero of
/// 256) take ~60 bytes instead of 256:
///
/// - dense: `dim` bytes, one `i8` per dimension;
/// - sparse: the non-zero dimensions' indices in ascending order (one byte each when `dim ≤ 256`,
///   else two, little-endian `u16`), then their `i8` values in the same order.
///
/// The layout is canonical (sparse exactly when it is strictly smaller than dense), so equal
/// vectors compare equal. Cosines are computed from the same integer dot product and squared norms
/// in either layout, so they are bit-identical to a dense computation; error vs. the unquantised
/// cosine ≈ 1e-3. At most 65,535 dimensions (`embed_dim` is validated ≤ 4096); extra dimensions
/// of a longer input are dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct QVec {
    data: Box<[u8]>,
    dim: u16,
    /// Σ q², cached: ≤ 65,535 × 127², fits an `i32` as in the dense computation.
    norm2: u32,
}

/// A borrowed quantised vector ([`QVec`] layout): the embedding of a [`QVec`] or of an
/// [`LtmRecord`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QRef<'a> {
    data: &'a [u8],
    dim: u16,
    norm2: u32,
}

/// Bytes per sparse index for a dimension: 1 up to 256 dimensions, else 2.
fn index_width(dim: u16) -> usize {
    if dim <= 256 {
        1
    } else {
        2
    }
}

impl QVec {
    /// Quantises a (unit) vector: `round(127·x)` clamped to ±127 (NaN gives 0).
    pub fn new(v: &[f32]) -> Self {
        let q: Vec<i8> = v
            .iter()
            .map(|x| (x * 127.0).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Self::from_i8(&q)
    }

    /// The vector with these quantised components (dense, one per dimension; beyond 65,535 dropped).
    pub fn from_i8(q: &[i8]) -> Self {
        let q = &q[..q.len().min(usize::from(u16::MAX))];
        let dim = q.len() as u16;
        let norm2 = q.iter().map(|&x| i32::from(x) * i32::from(x)).sum::<i32>() as u32;
        let nnz = q.iter().filter(|&&x| x != 0).count();
        let w = index_width(dim);
        let data: Box<[u8]> = if nnz * (w + 1) < q.len() {
            let mut d = Vec::with_capacity(nnz * (w + 1));
            for (i, _) in q.iter().enumerate().filter(|(_, &x)| x != 0) {
                if w == 1 {
                    d.push(i as u8);
                } else {
                    d.extend_from_slice(&(i as u16).to_le_bytes());
                }
            }
            d.extend(q.iter().filter(|&&x| x != 0).map(|&x| x as u8));
            d.into_boxed_slice()
        } else {
            q.iter().map(|&x| x as u8).collect()
        };
        Self { data, dim, norm2 }
    }

    /// Rebuilds a vector from its layout (`dim`, bytes as [`QVec`] describes), as read from a
    /// checkpoint.
    ///
    /// # Errors
    /// A message when the bytes are neither `dim` dense values nor a sparse list with ascending
    /// indices below `dim` and non-zero values.
    pub fn from_parts(dim: u16, data: &[u8]) -> Result<Self, String> {
        if data.len() == usize::from(dim) {
            return Ok(Self::from_i8(
                &data.iter().map(|&b| b as i8).collect::<Vec<_>>(),
            ));
        }
        let w = index_width(dim);
        if !data.len().is_multiple_of(w + 1) {
            return Err(format!(
                "quantised vector: {} bytes fit neither {dim} dense values nor a sparse list",
                data.len()
            ));
        }
        let r = QRef {
            data,
            dim,
            norm2: 0,
        };
        let mut dense = vec![0i8; usize::from(dim)];
        let mut last = None;
        for (i, v) in r.sparse_entries() {
            if last.is_some_and(|l| i <= l) || i >= usize::from(dim) || v == 0 {
                return Err(format!(
                    "quantised vector: sparse entry {i} = {v} is out of order, out of range (dim {dim}) or zero"
                ));
            }
            last = Some(i);
            dense[i] = v;
        }
        Ok(Self::from_i8(&dense))
    }

    /// The borrowed form.
    pub fn view(&self) -> QRef<'_> {
        QRef {
            data: &self.data,
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// Cosine similarity in [−1, 1]; 0 when either vector is zero or the dimensions differ.
    pub fn cos(&self, o: &QVec) -> f32 {
        self.view().cos(o.view())
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        usize::from(self.dim)
    }

    /// Heap bytes held (the layout's length).
    pub fn heap_len(&self) -> usize {
        self.data.len()
    }
}

impl std::fmt::Debug for QVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl<'a> QRef<'a> {
    /// Dimension.
    pub fn dim(self) -> usize {
        usize::from(self.dim)
    }

    /// True when stored one byte per dimension.
    pub fn is_dense(self) -> bool {
        self.data.len() == usize::from(self.dim)
    }

    /// The components, one per dimension.
    pub fn to_i8(self) -> Vec<i8> {
        if self.is_dense() {
            return self.data.iter().map(|&b| b as i8).collect();
        }
        let mut v = vec![0i8; usize::from(self.dim)];
        for (i, x) in self.sparse_entries() {
            if let Some(s) = v.get_mut(i) {
                *s = x;
            }
        }
        v
    }

    /// An owned copy.
    pub fn to_owned(self) -> QVec {
        QVec {
            data: self.data.into(),
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// The same vector in the dense layout (faster as the fixed side of many cosines).
    pub(super) fn densified(self) -> QVec {
        QVec {
            data: self.to_i8().into_iter().map(|x| x as u8).collect(),
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// (index, value) of the non-zero components of a sparse layout, ascending.
    fn sparse_entries(self) -> impl Iterator<Item = (usize, i8)> + 'a {
        let w = index_width(self.dim);
        let nnz = self.data.len() / (w + 1);
        let (idx, vals) = self.data.split_at(nnz * w);
        idx.chunks_exact(w).zip(vals).map(move |(i, &v)| {
            let i = if w == 1 {
                usize::from(i[0])
            } else {
                usize::from(u16::from_le_bytes([i[0], i[1]]))
            };
            (i, v as i8)
        })
    }

    /// Integer dot product of two vectors of the same dimension, in any pair of layouts.
    fn dot(self, o: QRef<'_>) -> i32 {
        let prod = |a: u8, b: u8| i32::from(a as i8) * i32::from(b as i8);
        match (self.is_dense(), o.is_dense()) {
            (true, true) => self
                .data
                .iter()
                .zip(o.data)
                .map(|(&a, &b)| prod(a, b))
                .sum(),
            (false, true) => self
                .sparse_entries()
                .map(|(i, v)| i32::from(v) * o.data.get(i).map_or(0, |&b| i32::from(b as i8)))
                .sum(),
            (true, false) => o.dot(self),
            (false, false) => {
                let (mut a, mut b) = (self.sparse_entries(), o.sparse_entries());
                let (mut x, mut y) = (a.next(), b.next());
                let mut d = 0i32;
                while let (Some((i, u)), Some((j, v))) = (x, y) {
                    match i.cmp(&j) {
                        std::cmp::Ordering::Less => x = a.next(),
                        std::cmp::Ordering::Greater => y = b.next(),
                        std::cmp::Ordering::Equal => {
                            d += i32::from(u) * i32::from(v);
                            x = a.next();
                            y = b.next();
                        }
                    }
                }
                d
            }
        }
    }

    /// Cosine similarity in [−1, 1]; 0 when either vector is zero or the dimensions differ.
    /// `dot / (√‖a‖² · √‖b‖²)` on the integers, as the dense i8 computation did.
    pub fn cos(self, o: QRef<'_>) -> f32 {
        if self.dim != o.dim || self.norm2 == 0 || o.norm2 == 0 {
            return 0.0;
        }
        self.dot(o) as f32 / ((self.norm2 as f32).sqrt() * (o.norm2 as f32).sqrt())
    }
}

impl std::fmt::Debug for QRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nz: Vec<(usize, i8)> = self
            .to_i8()
            .into_iter()
            .enumerate()
            .filter(|x| x.1 != 0)
            .collect();
        write!(f, "QVec(dim {}, {nz:?})", self.dim)
    }
}

/// Serialized as `(dim, bytes)` in the layout described on [`QVec`].
impl Serialize for QRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Bytes<'b>(&'b [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        (self.dim, Bytes(self.data)).serialize(s)
    }
}

impl Serialize for QVec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl<'de> Deserialize<'de> for QVec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ByteBuf(Vec<u8>);
        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<ByteBuf, A::Error> {
                        let mut v = Vec::new();
                        while let Some(b) = a.next_element::<u8>()? {
                            v.push(b);
                        }
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
        let (dim, ByteBuf(data)) = <(u16, ByteBuf)>::deserialize(d)?;
        QVec::from_parts(dim, &data).map_err(serde::de::Error::custom)
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

/// One long-term record (spec §3.3). The text and the embedding share one heap allocation
/// (`[embedding layout][UTF-8 text]`): 40 bytes inline plus the text and ~60 bytes of sparse
/// embedding, where separate `Arc<str>` and dense embedding allocations took ~3× more.
#[derive(Clone, PartialEq)]
pub struct LtmRecord {
    /// Stream index: unique per agent, increasing, never reused (the `[n]` of prompts).
    pub idx: u32,
    /// Importance in [0, 1].
    pub importance: f32,
    /// Created, simulated hours since the clock's start.
    pub created_hours: f32,
    /// Last accessed, simulated hours since the clock's start.
    pub accessed_hours: f32,
    body: Box<[u8]>,
    emb_len: u16,
    dim: u16,
    norm2: u32,
}

impl LtmRecord {
    /// A record with text `text` and embedding `emb` (copied into one allocation).
    pub fn new(
        idx: u32,
        text: &str,
        importance: f32,
        created_hours: f32,
        accessed_hours: f32,
        emb: &QVec,
    ) -> Self {
        let mut body = Vec::with_capacity(emb.data.len() + text.len());
        body.extend_from_slice(&emb.data);
        body.extend_from_slice(text.as_bytes());
        Self {
            idx,
            importance,
            created_hours,
            accessed_hours,
            body: body.into_boxed_slice(),
            // A layout is at most `dim` ≤ u16::MAX bytes.
            emb_len: emb.data.len() as u16,
            dim: emb.dim,
            norm2: emb.norm2,
        }
    }

    /// Text.
    pub fn text(&self) -> &str {
        // Valid by construction (copied from a `&str`); "" would only mean a bug.
        std::str::from_utf8(&self.body[usize::from(self.emb_len)..]).unwrap_or("")
    }

    /// Embedding.
    pub fn emb(&self) -> QRef<'_> {
        QRef {
            data: &self.body[..usize::from(self.emb_len)],
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// Heap bytes held (embedding layout + text).
    pub fn heap_len(&self) -> usize {
        self.body.len()
    }
}

impl std::fmt::Debug for LtmRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LtmRecord")
            .field("idx", &self.idx)
            .field("text", &self.text())
            .field("importance", &self.importance)
            .field("created_hours", &self.created_hours)
            .field("accessed_hours", &self.accessed_hours)
            .field("emb", &self.emb())
            .finish()
    }
}

#[derive(Serialize)]
struct LtmOut<'a> {
    idx: u32,
    text: &'a str,
    importance: f32,
    created_hours: f32,
    accessed_hours: f32,
    emb: QRef<'a>,
}

#[derive(Deserialize)]
struct LtmIn {
    idx: u32,
    text: String,
    importance: f32,
    created_hours: f32,
    accessed_hours: f32,
    emb: QVec,
}

impl Serialize for LtmRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LtmOut {
            idx: self.idx,
            text: self.text(),
            importance: self.importance,
            created_hours: self.created_hours,
            accessed_hours: self.accessed_hours,
            emb: self.emb(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LtmRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = LtmIn::deserialize(d)?;
        Ok(Self::new(
            r.idx,
            &r.text,
            r.importance,
            r.created_hours,
            r.accessed_hours,
            &r.emb,
        ))
    }
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
    text: &str,
    importance: f32,
    emb: &QVec,
    now_hours: f32,
    reflecting: bool,
) -> u32 {
    let idx = m.next_idx;
    m.next_idx += 1;
    // Grow by 1/8 instead of doubling: a million agents' spare capacity would cost gigabytes.
    if m.ltm.len() == m.ltm.capacity() {
        m.ltm.reserve_exact(m.ltm.len() / 8 + 1);
    }
    m.ltm.push(LtmRecord::new(
        idx, text, importance, now_hours, now_hours, emb,
    ));
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
    score_with(p, r, query.view(), now_hours)
}

fn score_with(p: &MemoryParams, r: &LtmRecord, query: QRef<'_>, now_hours: f32) -> f32 {
    p.recency_weight * recency(p, now_hours - r.accessed_hours)
        + p.importance_score_weight * r.importance
        + p.relevance_weight * r.emb().cos(query)
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
    // One dense copy of the query makes each record's dot product a walk over its non-zeros.
    let q = query.view().densified();
    let mut s: Vec<(f32, usize)> = m
        .ltm
        .iter()
        .enumerate()
        .map(|(i, r)| (score_with(p, r, q.view(), now_hours), i))
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
            .map(|i| format!("[{idx}] {}", m.ltm[i].text()))
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
            if sigmoid(r.emb().cos(insight.view())) >= p.merge_gate {
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

/// Bytes a glibc-style allocator takes for an `n`-byte request: `n` + 8 bytes of header rounded
/// up to 16, at least 32; 0 for no allocation.
fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Approximate bytes held by one agent's memory (for the size benchmark): the struct, vectors'
/// capacity, embeddings, and text bytes (shared text counted in full, `Arc` counters included),
/// each heap block rounded as a glibc-style allocator does (request + 8, up to a multiple of 16). The benchmark's RSS
/// measurement checks it.
pub fn approx_bytes(m: &MemoryState) -> usize {
    let text = |t: &Arc<str>| chunk(t.len() + 16);
    std::mem::size_of::<MemoryState>()
        + chunk(m.stm.capacity() * std::mem::size_of::<StmEntry>())
        + m.stm
            .iter()
            .map(|e| {
                text(&e.text)
                    + chunk(e.emb.heap_len())
                    + chunk(e.enhancers.capacity() * std::mem::size_of::<Arc<str>>())
            })
            .sum::<usize>()
        + chunk(m.ltm.capacity() * std::mem::size_of::<LtmRecord>())
        + m.ltm.iter().map(|r| chunk(r.heap_len())).sum::<usize>()
        + chunk(m.recalled.capacity() * 4)
}
