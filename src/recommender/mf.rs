//! Matrix factorisation trained with BPR (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking
//! from Implicit Feedback", eq. 3–4), optimised with lazy Adam.
//!
//! Score `ŷ(u, i) = p_u · q_i`. Loss per triple `(u, i, j)` (i watched, j not):
//! `−ln σ(ŷ(u,i) − ŷ(u,j)) + λ/2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)`, averaged over the batch.

use ndarray::{Array1, Array2};
use rand::seq::{index, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::train::{bpr_triples, dot, normal_init, sigmoid, Adam, Positives, TrainParams};
use super::InteractionLog;
use crate::rng::{stream_rng, Stream};

/// Model tag in the training stream ids.
const MF_TAG: u64 = 1;

/// Last id of the stream that picks an incremental fit's watches (epochs use `0..epochs`).
const SAMPLE_TAG: u64 = u64::MAX;

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
    #[serde(with = "super::train::f32_matrix")]
    user: Array2<f32>,
    /// Item embeddings, `n_items × dim`.
    #[serde(with = "super::train::f32_matrix")]
    item: Array2<f32>,
    adam_user: Adam,
    adam_item: Adam,
    /// Number of completed fits (keys the sampling stream).
    fits: u64,
    /// Mean BPR loss (without the L2 term) of each epoch of the last fit.
    pub epoch_loss: Vec<f32>,
    /// Watches of the log at the last fit (`InteractionLog::watches().len()`): those after it
    /// are new to the model ([`Mf::refit_log`]). 0 in checkpoints written before it was kept.
    #[serde(default)]
    trained: usize,
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
            trained: 0,
        }
    }

    /// Trains on `pos` for `params.epochs` epochs (see the type's docs).
    pub fn fit_positives(&mut self, pos: &Positives) {
        let (nu, ni) = (pos.n_users(), pos.n_items());
        self.shape_for(nu, ni);
        self.run_epochs(|rng| bpr_triples(pos, rng));
    }

    /// `params.epochs` epochs, each over the triples `triples` draws from the epoch's stream
    /// (keyed by the fit and the epoch); records each epoch's loss and counts the fit.
    fn run_epochs(&mut self, mut triples: impl FnMut(&mut ChaCha8Rng) -> Vec<(u32, u32, u32)>) {
        self.epoch_loss.clear();
        let mut grads = self.gradients();
        for epoch in 0..self.params.epochs {
            let mut rng = stream_rng(
                self.params.seed,
                Stream::Training,
                &[MF_TAG, self.fits, u64::from(epoch)],
            );
            let epoch_triples = triples(&mut rng);
            let loss = self.train_epoch(&epoch_triples, &mut grads);
            self.epoch_loss.push(loss);
        }
        self.fits += 1;
    }

    /// Fits on `log` (a full fit, see the type's docs) or, once the log holds more than
    /// `budget` watches (`budget` > 0) and the model was fitted before on it, incrementally:
    /// `params.epochs` epochs over at most `budget` watches, every watch since the previous
    /// fit first (a uniform sample of them when they alone exceed the budget), the rest of the
    /// budget a uniform sample of the earlier ones, which keeps what the model learned of them
    /// from being overwritten by the new ones ("replay"). Each epoch pairs every chosen watch
    /// with a uniform item the user was never shown (as every watched item was shown, never a
    /// positive; a user shown every item gives no triple). The cost is `O(budget · epochs · d)`
    /// whatever the log's length; RecAgent's intent (spec §4.3) is training on each round's new
    /// tuples, and a full re-fit's cost grows with every round.
    pub fn refit_log(&mut self, log: &InteractionLog, budget: usize) {
        let total = log.watches().len();
        let d = self.params.dim.max(1);
        let fitted = self.user.dim() == (log.n_users(), d)
            && self.item.dim() == (log.n_items(), d)
            && self.trained <= total;
        if budget == 0 || total <= budget || !fitted {
            self.fit_positives(&Positives::from_log(log));
            self.trained = total;
            return;
        }
        let mut rng = stream_rng(
            self.params.seed,
            Stream::Training,
            &[MF_TAG, self.fits, SAMPLE_TAG],
        );
        let mut pairs = refit_pairs(log, self.trained, budget, &mut rng);
        self.run_epochs(|rng| {
            pairs.shuffle(rng);
            unseen_negatives(log, &pairs, rng)
        });
        self.trained = total;
    }

    /// Fresh embeddings (N(0, 0.1²)) and optimiser moments unless they already are
    /// `n_users × d` and `n_items × d`.
    fn shape_for(&mut self, nu: usize, ni: usize) {
        let d = self.params.dim.max(1);
        if self.user.dim() != (nu, d) || self.item.dim() != (ni, d) {
            let mut rng = stream_rng(self.params.seed, Stream::Training, &[MF_TAG]);
            self.user = normal_init(nu, d, 0.1, &mut rng);
            self.item = normal_init(ni, d, 0.1, &mut rng);
            self.adam_user = Adam::new(nu, d);
            self.adam_item = Adam::new(ni, d);
        }
    }

    /// Zero gradient buffers: the item gradients (shaped as the item embeddings) and room for
    /// one batch's user gradients, one row per distinct user of the batch (a full user-shaped
    /// buffer was a quarter gigabyte at a million users, each row a cache miss to add to and
    /// another to clear).
    fn gradients(&self) -> Gradients {
        let d = self.user.ncols();
        let batch = self.params.batch.max(1);
        Gradients {
            items: Array2::zeros(self.item.raw_dim()),
            users: vec![0.0; batch * d],
            slots: Slots {
                rows: Vec::with_capacity(batch),
                table: vec![u64::MAX; (2 * batch).next_power_of_two()],
            },
        }
    }

    /// One pass of lazy-Adam steps over `triples`, `params.batch` triples a step (eq. 3–4 of
    /// the module docs, batch means); returns the mean BPR loss without the L2 term. `grads`
    /// are zero on entry and on return.
    fn train_epoch(&mut self, triples: &[(u32, u32, u32)], grads: &mut Gradients) -> f32 {
        let d = self.user.ncols();
        let batch = self.params.batch.max(1);
        let (lr, reg) = (self.params.lr, self.params.reg);
        let mut loss_sum = 0.0f64;
        let mut irows = Vec::with_capacity(2 * batch);
        for chunk in triples.chunks(batch) {
            let scale = 1.0 / chunk.len() as f32;
            irows.clear();
            grads.slots.clear();
            {
                let us = self.user.as_slice().expect("standard layout");
                let is = self.item.as_slice().expect("standard layout");
                let gis = grads.items.as_slice_mut().expect("standard layout");
                for &(u, i, j) in chunk {
                    let slot = grads.slots.slot(u);
                    let gu = &mut grads.users[slot * d..(slot + 1) * d];
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
                        gu[k] += c * (qi[k] - qj[k]) + reg * scale * pu[k];
                        gis[i * d + k] += c * pu[k] + reg * scale * qi[k];
                        gis[j * d + k] += -c * pu[k] + reg * scale * qj[k];
                    }
                    irows.push(i as u32);
                    irows.push(j as u32);
                }
            }
            irows.sort_unstable();
            irows.dedup();
            let n = grads.slots.rows.len();
            self.adam_user.step_listed(
                &mut self.user,
                &grads.slots.rows,
                &grads.users[..n * d],
                lr,
            );
            self.adam_item
                .step_rows(&mut self.item, &grads.items, &irows, lr);
            grads.users[..n * d].fill(0.0);
            zero_rows(&mut grads.items, &irows);
        }
        (loss_sum / triples.len().max(1) as f64) as f32
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

/// The (user, item) pairs of an incremental fit, in log order: of the watches after the first
/// `trained`, all of them when fewer than `budget` and the rest of the budget drawn uniformly
/// (without replacement) from the first `trained`; else `budget` of them drawn uniformly.
/// `trained ≤ watches` is the caller's.
fn refit_pairs(
    log: &InteractionLog,
    trained: usize,
    budget: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(u32, u32)> {
    let watches = log.watches();
    let fresh = watches.len() - trained;
    let mut picks: Vec<usize> = if fresh >= budget {
        index::sample(rng, fresh, budget)
            .into_iter()
            .map(|i| trained + i)
            .collect()
    } else {
        let mut p = index::sample(rng, trained, budget.min(watches.len()) - fresh).into_vec();
        p.extend(trained..watches.len());
        p
    };
    picks.sort_unstable();
    picks
        .into_iter()
        .map(|w| (watches[w].0, watches[w].1))
        .collect()
}

/// One BPR triple per pair: its user, its item and a uniform item the user was never shown
/// (rejection sampling; a user shown every item gives none).
fn unseen_negatives(
    log: &InteractionLog,
    pairs: &[(u32, u32)],
    rng: &mut ChaCha8Rng,
) -> Vec<(u32, u32, u32)> {
    let n_items = log.n_items() as u32;
    pairs
        .iter()
        .filter_map(|&(u, i)| {
            if log.exposed(u).len() >= n_items as usize {
                return None;
            }
            let j = loop {
                let j = rng.random_range(0..n_items);
                if !log.is_exposed(u, j) {
                    break j;
                }
            };
            Some((u, i, j))
        })
        .collect()
}

/// Gradient buffers of [`Mf::train_epoch`].
struct Gradients {
    /// `n_items × d`.
    items: Array2<f32>,
    /// One batch's user gradients, row `s` for user `slots.rows[s]`; `batch × d`.
    users: Vec<f32>,
    /// Which row of `users` is whose.
    slots: Slots,
}

/// The distinct users of one batch and their gradient rows.
struct Slots {
    /// The batch's distinct users, in first-seen order.
    rows: Vec<u32>,
    /// Open-addressing table user → slot (`user << 32 | slot`; `u64::MAX` = empty), at most
    /// half full: a linear search of `rows` for each triple was half of an epoch's time.
    table: Vec<u64>,
}

impl Slots {
    /// The slot of `user`'s gradient in this batch, a new one (zero) the first time.
    fn slot(&mut self, user: u32) -> usize {
        let mask = self.table.len() - 1;
        let mut h = (u64::from(user).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        loop {
            let e = self.table[h];
            if e == u64::MAX {
                let slot = self.rows.len();
                self.rows.push(user);
                self.table[h] = u64::from(user) << 32 | slot as u64;
                return slot;
            }
            if (e >> 32) as u32 == user {
                return (e & 0xFFFF_FFFF) as usize;
            }
            h = (h + 1) & mask;
        }
    }

    /// Forgets the batch's users (their gradient rows are zeroed by the caller).
    fn clear(&mut self) {
        self.rows.clear();
        self.table.fill(u64::MAX);
    }
}

/// Sets the listed rows of `g` to zero.
pub(crate) fn zero_rows(g: &mut Array2<f32>, rows: &[u32]) {
    for &r in rows {
        g.row_mut(r as usize).fill(0.0);
    }
}

crate::scored_recommender!(Mf, "MF", params, factors, incremental);

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

    /// A log of the two-block users ([`crate::recommender::train::two_block_positives`]): each
    /// user's items watched `times` times over, in rounds 1, 2, ...
    fn two_block_log(times: u32) -> InteractionLog {
        let pos = crate::recommender::train::two_block_positives();
        let mut log = InteractionLog::new(8, 8);
        for round in 1..=times {
            for u in 0..8u32 {
                for &i in pos.items_of(u) {
                    log.expose(u, i);
                    log.watch(u, i, 4, round);
                }
            }
        }
        log
    }

    #[test]
    fn an_incremental_fit_takes_every_new_watch_then_a_sample_of_the_old_ones() {
        let log = two_block_log(4); // 24 watches a round, 96 in all
        let mut rng = stream_rng(3, Stream::Training, &[]);
        // 72 trained, 24 new, budget 40: the 24 new ones and 16 distinct old ones.
        let pairs = refit_pairs(&log, 72, 40, &mut rng);
        assert_eq!(pairs.len(), 40);
        let w = log.watches();
        let new: Vec<(u32, u32)> = w[72..].iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(&pairs[16..], &new[..]);
        // The old ones are distinct watches of the first 72 (each pair occurs 3 times there,
        // so a pair may repeat, but never more than 3 times).
        for p in &pairs[..16] {
            assert!(pairs[..16].iter().filter(|q| *q == p).count() <= 3);
        }
        // More new watches than the budget: a sample of the new ones only.
        let pairs = refit_pairs(&log, 24, 10, &mut rng);
        assert_eq!(pairs.len(), 10);
        assert!(pairs.iter().all(|p| new.contains(p)));
        // Negatives are never items the user was shown; user 0 was shown 1, 2, 3 only.
        let mut log = log;
        log.expose(0, 7);
        let t = unseen_negatives(&log, &[(0, 1); 50], &mut rng);
        assert_eq!(t.len(), 50);
        assert!(
            t.iter().all(|&(_, _, j)| [0, 4, 5, 6].contains(&j)),
            "{t:?}"
        );
        // A user shown every item gives no triple.
        for i in 0..8 {
            log.expose(1, i);
        }
        assert!(unseen_negatives(&log, &[(1, 0)], &mut rng).is_empty());
    }

    #[test]
    fn a_bounded_re_fit_learns_and_a_log_within_the_budget_is_fitted_in_full() {
        let params = TrainParams {
            dim: 8,
            lr: 0.05,
            epochs: 60,
            batch: 4,
            ..TrainParams::default()
        };
        let log = two_block_log(4);
        // Within the budget, refit_log is the full fit, bit for bit.
        let mut full = Mf::new(params.clone());
        full.fit_positives(&Positives::from_log(&log));
        let mut within = Mf::new(params.clone());
        within.refit_log(&log, 96);
        assert_eq!(within.user, full.user);
        assert_eq!(within.trained, 96);
        // Fitted on the first round, then re-fitted on 30 of 96 watches for each of three
        // more rounds: it learns the blocks as a full fit does.
        let mut inc = Mf::new(params);
        inc.refit_log(&two_block_log(1), 30);
        assert_eq!(inc.trained, 24);
        let mut losses = vec![inc.epoch_loss[0]];
        for times in 2..=4 {
            let log = two_block_log(times);
            inc.refit_log(&log, 30);
            assert_eq!(inc.trained, log.watches().len());
            losses.push(*inc.epoch_loss.last().unwrap());
        }
        assert_eq!(inc.fits, 4);
        let pos = crate::recommender::train::two_block_positives();
        crate::recommender::train::assert_learned_two_blocks(&inc, &pos, &losses);
        // The same calls give the same embeddings.
        let mut again = Mf::new(inc.params.clone());
        again.refit_log(&two_block_log(1), 30);
        for times in 2..=4 {
            again.refit_log(&two_block_log(times), 30);
        }
        assert_eq!(again.user, inc.user);
        assert_eq!(again.item, inc.item);
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
        assert_eq!(b.trained, a.trained);
        // Another embedding size cannot take the checkpoint's embeddings.
        let mut c = Mf::new(TrainParams { dim: 16, ..trained });
        let e = c.load_state(&state).unwrap_err();
        assert_eq!(
            e,
            "embedding_size is 8 in the checkpoint and 16 now: the embeddings cannot change size"
        );
    }
}
