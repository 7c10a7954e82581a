//! Memory records and state: short-term entries ([`StmEntry`]), long-term records
//! ([`LtmRecord`], with its serde form), one agent's [`MemoryState`], the [`sigmoid`] gate
//! function, and the [`approx_bytes`] size estimate.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::vector::{QRef, QVec};

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
