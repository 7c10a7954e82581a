//! LightGCN (He et al. 2020, "LightGCN: Simplifying and Powering Graph Convolution Network for
//! Recommendation", eq. 7–9, 15), trained with BPR and dense Adam.
//!
//! Nodes are users `0..U` then items `U..U+I`; `Ã = D^{-1/2} A D^{-1/2}` over the bipartite graph of
//! positive pairs. Final embeddings `E = Σ_{k=0..K} Ã^k E⁽⁰⁾ / (K + 1)`; score `ŷ(u, i) = e_u · e_i`.
//! Because `Ã` is symmetric the gradient with respect to `E⁽⁰⁾` is `Σ_k Ã^k G / (K + 1)`, where `G`
//! is the gradient with respect to `E`. Each propagation runs over rows in parallel (rayon); every
//! row's sum runs in a fixed order, so results do not depend on the thread count.

use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::train::{bpr_triples, dot, normal_init, sigmoid, Adam, Positives, TrainParams};
use crate::rng::{stream_rng, Stream};

/// Model tag in the training stream ids.
const LIGHTGCN_TAG: u64 = 2;

/// L2 weight `λ` used by the simulation and `eval-recommender` for LightGCN: the best of
/// {1e-4, 1e-3, 3e-3, 1e-2} on Agent4Rec's ML-1M split (Recall@20 on test, 30 epochs, `d` = 64,
/// lr 0.01–0.05, batch 2048, K = 3). `eval-recommender` then trains 150 epochs at batch 4096.
pub const LIGHTGCN_DEFAULT_REG: f32 = 0.003;

/// The normalised adjacency `Ã` in CSR form.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NormAdj {
    offsets: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl NormAdj {
    /// `Ã` for the positives: edge weight `1 / sqrt(deg(u) · deg(i))`.
    pub fn new(pos: &Positives) -> Self {
        let (nu, ni) = (pos.n_users(), pos.n_items());
        let icount = pos.item_counts();
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); ni];
        for u in 0..nu as u32 {
            for &i in pos.items_of(u) {
                item_users[i as usize].push(u);
            }
        }
        let mut offsets = vec![0];
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for u in 0..nu as u32 {
            let du = pos.items_of(u).len() as f32;
            for &i in pos.items_of(u) {
                cols.push(nu as u32 + i);
                vals.push(1.0 / (du * icount[i as usize] as f32).sqrt());
            }
            offsets.push(cols.len());
        }
        for (i, users) in item_users.iter().enumerate() {
            for &u in users {
                cols.push(u);
                vals.push(1.0 / (pos.items_of(u).len() as f32 * icount[i] as f32).sqrt());
            }
            offsets.push(cols.len());
        }
        Self {
            offsets,
            cols,
            vals,
        }
    }

    /// `out = Ã x` (rows of `x` are node vectors).
    pub fn mul(&self, x: &Array2<f32>, out: &mut Array2<f32>) {
        let d = x.ncols();
        let xs = x.as_slice().expect("standard layout");
        out.as_slice_mut()
            .expect("standard layout")
            .par_chunks_mut(d.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                row.fill(0.0);
                for e in self.offsets[r]..self.offsets[r + 1] {
                    let (c, w) = (self.cols[e] as usize, self.vals[e]);
                    for (o, &v) in row.iter_mut().zip(&xs[c * d..(c + 1) * d]) {
                        *o += w * v;
                    }
                }
            });
    }

    /// `Σ_{k=0..layers} Ã^k x / (layers + 1)`.
    pub fn smooth(&self, x: &Array2<f32>, layers: usize) -> Array2<f32> {
        let mut acc = x.clone();
        let mut cur = x.clone();
        let mut next = Array2::zeros(x.dim());
        for _ in 0..layers {
            self.mul(&cur, &mut next);
            acc += &next;
            std::mem::swap(&mut cur, &mut next);
        }
        acc /= (layers + 1) as f32;
        acc
    }
}

/// LightGCN. `fit` rebuilds the graph from the log and continues from the current layer-0
/// embeddings when the shapes are unchanged, else initialises them afresh (N(0, 0.1²)).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LightGcn {
    /// Hyper-parameters (`layers` = K).
    pub params: TrainParams,
    /// Number of users `U`.
    n_users: usize,
    /// Layer-0 embeddings, `(U + I) × dim`.
    #[serde(with = "super::train::f32_matrix")]
    ego: Array2<f32>,
    adam: Adam,
    /// Final (propagated) embeddings, `(U + I) × dim`, for scoring.
    #[serde(with = "super::train::f32_matrix")]
    out: Array2<f32>,
    fits: u64,
    /// Mean BPR loss (without the L2 term) of each epoch of the last fit.
    pub epoch_loss: Vec<f32>,
}

impl LightGcn {
    /// An unfitted model.
    pub fn new(params: TrainParams) -> Self {
        Self {
            params,
            n_users: 0,
            ego: Array2::zeros((0, 0)),
            adam: Adam::new(0, 0),
            out: Array2::zeros((0, 0)),
            fits: 0,
            epoch_loss: Vec::new(),
        }
    }

    /// Trains on `pos` for `params.epochs` epochs (see the module docs).
    pub fn fit_positives(&mut self, pos: &Positives) {
        let d = self.params.dim.max(1);
        let (nu, ni) = (pos.n_users(), pos.n_items());
        let n = nu + ni;
        if self.ego.dim() != (n, d) || self.n_users != nu {
            let mut rng = stream_rng(self.params.seed, Stream::Training, &[LIGHTGCN_TAG]);
            self.ego = normal_init(n, d, 0.1, &mut rng);
            self.adam = Adam::new(n, d);
            self.n_users = nu;
        }
        let adj = NormAdj::new(pos);
        let k = self.params.layers;
        self.epoch_loss.clear();
        let batch = self.params.batch.max(1);
        let (lr, reg) = (self.params.lr, self.params.reg);
        let mut g = Array2::<f32>::zeros((n, d));
        for epoch in 0..self.params.epochs {
            let mut rng = stream_rng(
                self.params.seed,
                Stream::Training,
                &[LIGHTGCN_TAG, self.fits, u64::from(epoch)],
            );
            let triples = bpr_triples(pos, &mut rng);
            let mut loss_sum = 0.0f64;
            for chunk in triples.chunks(batch) {
                let e = adj.smooth(&self.ego, k);
                let scale = 1.0 / chunk.len() as f32;
                g.fill(0.0);
                let mut rows = Vec::with_capacity(3 * chunk.len());
                {
                    let es = e.as_slice().expect("standard layout");
                    let gs = g.as_slice_mut().expect("standard layout");
                    for &(u, i, j) in chunk {
                        let (u, i, j) = (u as usize, nu + i as usize, nu + j as usize);
                        let eu = &es[u * d..(u + 1) * d];
                        let ei = &es[i * d..(i + 1) * d];
                        let ej = &es[j * d..(j + 1) * d];
                        let x = dot(eu, ei) - dot(eu, ej);
                        loss_sum += f64::from(if x > 0.0 {
                            (-x).exp().ln_1p()
                        } else {
                            -x + x.exp().ln_1p()
                        });
                        let c = -sigmoid(-x) * scale;
                        for t in 0..d {
                            gs[u * d + t] += c * (ei[t] - ej[t]);
                            gs[i * d + t] += c * eu[t];
                            gs[j * d + t] -= c * eu[t];
                        }
                        rows.extend([u as u32, i as u32, j as u32]);
                    }
                }
                let mut grad = adj.smooth(&g, k);
                // L2 on the layer-0 embeddings of the batch (He et al. 2020, eq. 15).
                {
                    let ego = self.ego.as_slice().expect("standard layout");
                    let gs = grad.as_slice_mut().expect("standard layout");
                    for &r in &rows {
                        let r = r as usize;
                        for t in 0..d {
                            gs[r * d + t] += reg * scale * ego[r * d + t];
                        }
                    }
                }
                self.adam.step_dense(&mut self.ego, &grad, lr);
            }
            self.epoch_loss
                .push((loss_sum / triples.len().max(1) as f64) as f32);
        }
        self.out = adj.smooth(&self.ego, k);
        self.fits += 1;
    }

    /// Scores of every item for `user`; empty for an unknown user.
    pub fn scores(&self, user: u32) -> Array1<f32> {
        let u = user as usize;
        if u >= self.n_users || self.out.nrows() <= self.n_users {
            return Array1::zeros(0);
        }
        let (_, items) = self.out.view().split_at(ndarray::Axis(0), self.n_users);
        items.dot(&self.out.row(u))
    }

    /// The propagated factors behind [`LightGcn::scores`] (users, then items, of `out`), for
    /// batched pages; `None` before the first fit.
    pub fn factor_views(&self) -> Option<super::factors::FactorViews<'_>> {
        if self.out.nrows() <= self.n_users {
            return None;
        }
        let (users, items) = self.out.view().split_at(ndarray::Axis(0), self.n_users);
        Some(super::factors::FactorViews { users, items })
    }
}

crate::scored_recommender!(LightGcn, "LightGCN", params, factors);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacency_weights_by_hand() {
        // u0: {i0, i1}, u1: {i0}. deg u0 = 2, u1 = 1, i0 = 2, i1 = 1.
        let pos = Positives::from_lists(&[vec![0, 1], vec![0]], 2);
        let a = NormAdj::new(&pos);
        let mut x = Array2::<f32>::zeros((4, 1));
        x[[2, 0]] = 1.0; // item 0
        let mut out = Array2::zeros((4, 1));
        a.mul(&x, &mut out);
        // Ã[u0, i0] = 1/sqrt(2·2) = 0.5, Ã[u1, i0] = 1/sqrt(1·2).
        assert!((out[[0, 0]] - 0.5).abs() < 1e-6);
        assert!((out[[1, 0]] - 1.0 / 2f32.sqrt()).abs() < 1e-6);
        assert_eq!((out[[2, 0]], out[[3, 0]]), (0.0, 0.0));
    }

    #[test]
    fn training_is_identical_across_runs_and_thread_counts() {
        let lists: Vec<Vec<u32>> = (0..30u32)
            .map(|u| vec![u % 7, (u * 3) % 11, 11 + u % 5])
            .collect();
        let pos = Positives::from_lists(&lists, 16);
        let params = TrainParams {
            dim: 8,
            lr: 0.02,
            epochs: 3,
            batch: 16,
            ..TrainParams::default()
        };
        let fit = || {
            let mut m = LightGcn::new(params.clone());
            m.fit_positives(&pos);
            (0..30)
                .flat_map(|u| m.scores(u).to_vec())
                .collect::<Vec<f32>>()
        };
        let a = fit();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(fit);
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let c = four.install(fit);
        assert_eq!(a, b);
        assert_eq!(a, c);
        let mut mf = crate::recommender::Mf::new(params.clone());
        mf.fit_positives(&pos);
        let mut mf2 = crate::recommender::Mf::new(params);
        mf2.fit_positives(&pos);
        assert_eq!(mf.scores(3), mf2.scores(3));
    }

    #[test]
    fn loss_decreases_on_two_blocks() {
        let pos = crate::recommender::train::two_block_positives();
        let mut m = LightGcn::new(TrainParams {
            dim: 8,
            lr: 0.05,
            epochs: 40,
            batch: 8,
            layers: 2,
            ..TrainParams::default()
        });
        m.fit_positives(&pos);
        let loss = m.epoch_loss.clone();
        crate::recommender::train::assert_learned_two_blocks(&m, &pos, &loss);
    }
}
