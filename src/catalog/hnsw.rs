//! The HNSW graph's distance and parameters, shared by the item index and its store.

/// Cosine distance of unit vectors, `max(0, 1 − a·b)`, in [0, 2]. Our own distance type rather
/// than hnsw_rs's `DistDot`: that one `assert!`s `1 − a·b ≥ 0`, which rounding can break for
/// (near-)duplicates (stack notes §3), and its scalar loop does not vectorise. The dot product
/// here sums 8 interleaved lanes (vectorisable), then the lanes in order: deterministic.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnitDot;

impl hnsw_rs::prelude::Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut d: f32 = acc.iter().sum();
        d += ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>();
        (1.0 - d).max(0.0)
    }
}

/// HNSW parameters: neighbours per node (M), construction breadth, default search breadth.
pub(super) const HNSW_M: usize = 12;
/// Construction breadth.
pub(super) const HNSW_EF_CONSTRUCTION: usize = 48;
/// Default search breadth.
pub(super) const HNSW_EF_SEARCH: usize = 64;
/// Layers of the graph: hnsw_rs's maximum, the only count its dump accepts. Levels are drawn as
/// `floor(−ln u / ln M)`, so a level ≥ 9 (the former `ceil(ln n)` cap for 3,883 items) has
/// probability 12⁻⁹ per item: the graph is the same as with the former cap (tested).
pub(super) const HNSW_LAYERS: usize = 16;
/// The hnsw_rs version whose dump format the persisted graphs use; part of the graph key, so a
/// graph dumped by another version is rebuilt, not handed to this version's loader. Must equal
/// the exact `hnsw_rs` pin in Cargo.toml and the version in Cargo.lock (checked by a test).
pub const HNSW_RS_VERSION: &str = "0.3.5";
