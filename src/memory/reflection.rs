//! Forgetting (spec §3.4) and reflection (spec §3.5): when a reflection is due
//! ([`reflection_due`]), the forgetting probabilities and pass ([`forget`]), and the
//! near-duplicate merge ([`merge_into`]).

use super::params::MemoryParams;
use super::record::{sigmoid, MemoryState};
use super::scoring::recency;
use super::vector::QVec;

/// True when the importance added since the last reflection passes the threshold (strictly
/// greater, as in the original).
pub fn reflection_due(m: &MemoryState, p: &MemoryParams) -> bool {
    m.aggregate_importance > p.reflection_threshold
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
