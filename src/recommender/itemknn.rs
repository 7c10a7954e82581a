//! Item-based k-nearest-neighbours with cosine similarity (Sarwar et al. 2001, "Item-based
//! collaborative filtering recommendation algorithms", §3.1.1; Deshpande & Karypis 2004).
//!
//! On binary interactions `sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| · |U_j|)`, where `U_i` is the set of
//! users who watched `i`. Each item keeps its `neighbours` most similar items (ties by index).
//! Score `ŷ(u, j) = Σ_{i ∈ I_u} sim(i, j)` over the kept neighbour lists.

use serde::{Deserialize, Serialize};

use super::train::Positives;

/// Neighbours kept per item unless set otherwise.
pub const DEFAULT_NEIGHBOURS: usize = 200;

/// Cosine similarity of every item pair with a common user: per item, `(other, sim)` with
/// `sim ∈ (0, 1]`, sorted by descending similarity then ascending index, at most `keep` long.
/// The item itself is left out.
pub fn cosine_neighbours(pos: &Positives, keep: usize) -> Vec<Vec<(u32, f32)>> {
    let ni = pos.n_items();
    let counts = pos.item_counts();
    let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); ni];
    for u in 0..pos.n_users() as u32 {
        for &i in pos.items_of(u) {
            item_users[i as usize].push(u);
        }
    }
    let mut co = vec![0u32; ni];
    let mut touched = Vec::new();
    let mut out = Vec::with_capacity(ni);
    for i in 0..ni {
        for &u in &item_users[i] {
            for &j in pos.items_of(u) {
                if j as usize != i {
                    if co[j as usize] == 0 {
                        touched.push(j);
                    }
                    co[j as usize] += 1;
                }
            }
        }
        let mut list: Vec<(u32, f32)> = touched
            .iter()
            .map(|&j| {
                let s = co[j as usize] as f32
                    / ((counts[i] as f32) * (counts[j as usize] as f32)).sqrt();
                (j, s)
            })
            .collect();
        list.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list.truncate(keep);
        for &j in &touched {
            co[j as usize] = 0;
        }
        touched.clear();
        out.push(list);
    }
    out
}

/// Item-KNN recommender (see the module docs). Users without history get the most-watched items.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemKnn {
    /// Neighbours kept per item; ≥ 1.
    pub neighbours: usize,
    sims: Vec<Vec<(u32, f32)>>,
    pos: Positives,
    counts: Vec<u32>,
}

impl Default for ItemKnn {
    fn default() -> Self {
        Self::new(DEFAULT_NEIGHBOURS)
    }
}

impl ItemKnn {
    /// An unfitted model keeping `neighbours` per item.
    pub fn new(neighbours: usize) -> Self {
        Self {
            neighbours: neighbours.max(1),
            sims: Vec::new(),
            pos: Positives::default(),
            counts: Vec::new(),
        }
    }

    /// Fits on positives.
    pub fn fit_positives(&mut self, pos: &Positives) {
        self.sims = cosine_neighbours(pos, self.neighbours);
        self.counts = pos.item_counts();
        self.pos = pos.clone();
    }

    /// Kept neighbours of `item` (see [`cosine_neighbours`]).
    pub fn neighbours_of(&self, item: u32) -> &[(u32, f32)] {
        self.sims.get(item as usize).map_or(&[], Vec::as_slice)
    }

    /// Scores of every item for `user`.
    pub fn scores(&self, user: u32) -> Vec<f32> {
        let mut s = vec![0.0f32; self.sims.len()];
        let hist = self.pos.items_of(user);
        if hist.is_empty() {
            // Cold user: popularity, scaled below any similarity-based score.
            let max = self.counts.iter().copied().max().unwrap_or(0).max(1) as f32;
            for (x, &c) in s.iter_mut().zip(&self.counts) {
                *x = c as f32 / max;
            }
            return s;
        }
        for &i in hist {
            for &(j, w) in self.neighbours_of(i) {
                s[j as usize] += w;
            }
        }
        s
    }
}

crate::scored_recommender!(ItemKnn, "ItemKNN");
