//! Scoring and retrieval (spec §3.6): [`recency`], the [`retrieval_score`] of a record, the
//! top-k [`retrieve`], and the texts a prompt reads ([`recalled_texts`]).

use super::params::MemoryParams;
use super::record::{LtmRecord, MemoryState};
use super::vector::{QRef, QVec};

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
