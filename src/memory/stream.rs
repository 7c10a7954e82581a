//! The memory stream's updates: short-term adds with reinforcement and transfer ([`stm_add`],
//! with [`StmOp`] and [`Transfer`]), long-term appends ([`ltm_add`]), the long-term cap
//! ([`enforce_cap`]) and access marking ([`touch`]).

use std::sync::Arc;

use super::params::MemoryParams;
use super::record::{sigmoid, LtmRecord, MemoryState, StmEntry};
use super::vector::QVec;

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
    // The new vector densified once: each entry's cosine is then a walk over its non-zeros
    // (the same integers as a sparse-sparse merge).
    let dense = (n > 0).then(|| emb.view().densified());
    for (j, e) in m.stm.iter_mut().enumerate() {
        let bonus = if j + 1 == n { p.newest_bonus } else { 0.0 };
        let prob = sigmoid(e.emb.cos(dense.as_ref().unwrap_or(emb)) + bonus);
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

/// Marks the records at `positions` as accessed at `now_hours` (the retrieval side effect).
pub fn touch(m: &mut MemoryState, idxs: &[u32], now_hours: f32) {
    for idx in idxs {
        if let Ok(i) = m.ltm.binary_search_by_key(idx, |r| r.idx) {
            m.ltm[i].accessed_hours = now_hours;
        }
    }
}
