//! Matrix factorisation trained with BPR (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking
//! from Implicit Feedback", eq. 3–4), optimised with lazy Adam.
//!
//! Score `ŷ(u, i) = p_u · q_i`. Loss per triple `(u, i, j)` (i watched, j not):
//! `−ln σ(ŷ(u,i) − ŷ(u,j)) + λ/2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)`, averaged over the batch.

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::train::{bpr_triples, dot, normal_init, sigmoid, Adam, Positives, TrainParams};
use crate::rng::{stream_rng, Stream};

/// Model tag in the training stream ids.
const MF_TAG: u64 = 1;

/// L2 weight `λ` used by the simulation and `eval-recommender` for MF: the best of
/// {1e-4, 1e-2, 3e-2, 5e-2, 0.1, 1} on Agent4Rec's ML-1M split (Recall@20 on test, 30 epochs,
/// `d` = 64, lr 0.005, batch 256).
pub const MF_DEFAULT_REG: f32 = 0.03;

/// BPR matrix factorisation. `fit` continues from the current embeddings when the shapes are
/// unchanged (incremental retraining), else initialises them afresh (N(0, 0.1²)).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mf {
    /// Hyper-parameters.
    pub params: TrainParams,
    /// User embeddings, `n_users × dim`.
    user: Array2<f32>,
    /// Item embeddings, `n_items × dim`.
    item: Array2<f32>,
    adam_user: Adam,
    adam_item: Adam,
    /// Number of completed fits (keys the sampling stream).
    fits: u64,
    /// Mean BPR loss (without the L2 term) of each epoch of the last fit.
    pub epoch_loss: Vec<f32>,
}

impl Mf {
    /// An unfitted model.
    pub fn new(params: TrainParams) -> Self {
        Self {
            params,
            user: Array2::zeros((0, 0)),
            item: Array2::zeros((0, 0)),
            adam_user: Adam::new(0, 0),
            adam_item: Adam::new(0, 0),
            fits: 0,
            epoch_loss: Vec::new(),
        }
    }

    /// Trains on `pos` for `params.epochs` epochs (see the type's docs).
    pub fn fit_positives(&mut self, pos: &Positives) {
        let d = self.params.dim.max(1);
        let (nu, ni) = (pos.n_users(), pos.n_items());
        if self.user.dim() != (nu, d) || self.item.dim() != (ni, d) {
            let mut rng = stream_rng(self.params.seed, Stream::Training, &[MF_TAG]);
            self.user = normal_init(nu, d, 0.1, &mut rng);
            self.item = normal_init(ni, d, 0.1, &mut rng);
            self.adam_user = Adam::new(nu, d);
            self.adam_item = Adam::new(ni, d);
        }
        self.epoch_loss.clear();
        let mut gu = Array2::<f32>::zeros((nu, d));
        let mut gi = Array2::<f32>::zeros((ni, d));
        let batch = self.params.batch.max(1);
        let (lr, reg) = (self.params.lr, self.params.reg);
        for epoch in 0..self.params.epochs {
            let mut rng = stream_rng(
                self.params.seed,
                Stream::Training,
                &[MF_TAG, self.fits, u64::from(epoch)],
            );
            let triples = bpr_triples(pos, &mut rng);
            let mut loss_sum = 0.0f64;
            for chunk in triples.chunks(batch) {
                let scale = 1.0 / chunk.len() as f32;
                let (mut urows, mut irows) = (Vec::new(), Vec::new());
                {
                    let us = self.user.as_slice().expect("standard layout");
                    let is = self.item.as_slice().expect("standard layout");
                    let gus = gu.as_slice_mut().expect("standard layout");
                    let gis = gi.as_slice_mut().expect("standard layout");
                    for &(u, i, j) in chunk {
                        let (u, i, j) = (u as usize, i as usize, j as usize);
                        let pu = &us[u * d..(u + 1) * d];
                        let qi = &is[i * d..(i + 1) * d];
                        let qj = &is[j * d..(j + 1) * d];
                        let x = dot(pu, qi) - dot(pu, qj);
                        // −ln σ(x), computed stably.
                        loss_sum += f64::from(if x > 0.0 {
                            (-x).exp().ln_1p()
                        } else {
                            -x + x.exp().ln_1p()
                        });
                        let c = -sigmoid(-x) * scale; // ∂loss/∂x, batch mean
                        for k in 0..d {
                            gus[u * d + k] += c * (qi[k] - qj[k]) + reg * scale * pu[k];
                            gis[i * d + k] += c * pu[k] + reg * scale * qi[k];
                            gis[j * d + k] += -c * pu[k] + reg * scale * qj[k];
                        }
                        urows.push(u as u32);
                        irows.push(i as u32);
                        irows.push(j as u32);
                    }
                }
                for rows in [&mut urows, &mut irows] {
                    rows.sort_unstable();
                    rows.dedup();
                }
                self.adam_user.step_rows(&mut self.user, &gu, &urows, lr);
                self.adam_item.step_rows(&mut self.item, &gi, &irows, lr);
                zero_rows(&mut gu, &urows);
                zero_rows(&mut gi, &irows);
            }
            self.epoch_loss
                .push((loss_sum / triples.len().max(1) as f64) as f32);
        }
        self.fits += 1;
    }

    /// Scores of every item for `user` (`q_i · p_u`); empty for an unknown user.
    pub fn scores(&self, user: u32) -> Array1<f32> {
        if (user as usize) >= self.user.nrows() {
            return Array1::zeros(0);
        }
        self.item.dot(&self.user.row(user as usize))
    }

    /// The factors behind [`Mf::scores`], for batched pages; `None` before the first fit.
    pub fn factor_views(&self) -> Option<super::factors::FactorViews<'_>> {
        (self.item.ncols() == self.user.ncols()).then(|| super::factors::FactorViews {
            users: self.user.view(),
            items: self.item.view(),
        })
    }
}

/// Sets the listed rows of `g` to zero.
pub(crate) fn zero_rows(g: &mut Array2<f32>, rows: &[u32]) {
    for &r in rows {
        g.row_mut(r as usize).fill(0.0);
    }
}

crate::scored_recommender!(Mf, "MF", params, factors);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_two_block_structure() {
        // Users 0..4 like items 0..4, users 4..8 like items 4..8; each user misses one item of
        // its block, which MF should rank above the other block.
        let pos = crate::recommender::train::two_block_positives();
        let mut mf = Mf::new(TrainParams {
            dim: 8,
            lr: 0.05,
            epochs: 60,
            batch: 4,
            ..TrainParams::default()
        });
        mf.fit_positives(&pos);
        let loss = mf.epoch_loss.clone();
        crate::recommender::train::assert_learned_two_blocks(&mf, &pos, &loss);
    }

    #[test]
    fn a_restored_model_keeps_its_embeddings_and_takes_the_configured_hyper_parameters() {
        use crate::recommender::Recommender;
        let pos = crate::recommender::train::two_block_positives();
        let trained = TrainParams {
            dim: 8,
            lr: 0.05,
            epochs: 3,
            batch: 4,
            ..TrainParams::default()
        };
        let mut a = Mf::new(trained.clone());
        a.fit_positives(&pos);
        let state = a.save_state().unwrap();
        // A branch that changes lr and epoch_num: the checkpoint's embeddings, the new values.
        let branch = TrainParams {
            lr: 0.01,
            epochs: 7,
            ..trained.clone()
        };
        let mut b = Mf::new(branch.clone());
        b.load_state(&state).unwrap();
        assert_eq!(b.params, branch);
        assert_eq!(b.scores(0), a.scores(0));
        assert_eq!(b.fits, a.fits);
        // Another embedding size cannot take the checkpoint's embeddings.
        let mut c = Mf::new(TrainParams { dim: 16, ..trained });
        let e = c.load_state(&state).unwrap_err();
        assert_eq!(
            e,
            "embedding_size is 8 in the checkpoint and 16 now: the embeddings cannot change size"
        );
    }
}
