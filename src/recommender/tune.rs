//! Hyper-parameter selection on the validation split only.
//!
//! Protocol: every candidate trains on `train.txt`; after each of its fits (a fit continues
//! from the previous one, so a candidate trained in `fits` steps of `step` epochs is scored at
//! `step, 2·step, ...` epochs) its top-`K` lists, with the user's training items masked, are
//! scored against `valid.txt` (Recall@K, NDCG@K as in [`super::eval`]). Per model the trial with
//! the highest validation Recall@K wins (ties: higher NDCG@K, then the earlier trial), and its
//! learned state is kept, so the caller can score exactly that model on the test split once.
//!
//! The tuner's only input is a [`TuneSplit`], which holds the training and validation lists and
//! nothing else: the test split cannot influence the choice.

use std::collections::BTreeMap;
use std::path::Path;

use super::eval::{dense_lists, load_implicit, log_from_lists, rank_users, score_lists};
use super::eval::{Metrics, RecDataError, UserLists};
use super::train::Positives;
use super::Recommender;

/// The training and validation lists of a split (no test lists), with dense ids.
#[derive(Clone, Debug)]
pub struct TuneSplit {
    /// Users `0..n_users` (max user id + 1 over both files).
    pub n_users: usize,
    /// Items `0..n_items` (max item id + 1 over both files).
    pub n_items: usize,
    /// Training lists.
    pub train: UserLists,
    /// Validation lists.
    pub valid: UserLists,
}

impl TuneSplit {
    /// Reads `train.txt` and `valid.txt` from `dir` (and no other file).
    ///
    /// # Errors
    /// [`RecDataError`] for a missing or malformed file.
    pub fn load(dir: &Path) -> Result<Self, RecDataError> {
        Ok(Self::new(
            load_implicit(&dir.join("train.txt"))?,
            load_implicit(&dir.join("valid.txt"))?,
        ))
    }

    /// From the two lists; the dimensions are the largest ids + 1.
    pub fn new(train: UserLists, valid: UserLists) -> Self {
        let (mut nu, mut ni) = (0, 0);
        for l in [&train, &valid] {
            for (&u, items) in l {
                nu = nu.max(u as usize + 1);
                for &i in items {
                    ni = ni.max(i as usize + 1);
                }
            }
        }
        Self {
            n_users: nu,
            n_items: ni,
            train,
            valid,
        }
    }

    /// Training lists as a log (unrated initial interactions), what models fit on.
    pub fn train_log(&self) -> super::InteractionLog {
        log_from_lists(&dense_lists(&self.train, self.n_users), self.n_items)
    }

    /// Validation Recall@`k` / NDCG@`k` of a fitted model, masking the training items.
    pub fn score_valid(&self, model: &dyn Recommender, k: usize) -> Metrics {
        let mask = Positives::from_lists(&dense_lists(&self.train, self.n_users), self.n_items);
        score_lists(&rank_users(model, &mask, &self.valid, k), &self.valid, k)
    }
}

/// One configuration to try.
pub struct Candidate {
    /// Model name as `rec_model` spells it (`MF`, ...); the winner is chosen per model.
    pub model: String,
    /// The hyper-parameters in words, for the table (`lr 0.005, λ 0.03`).
    pub label: String,
    /// Builds the untrained model, set to train `step` epochs per fit.
    pub make: Box<dyn Fn() -> Box<dyn Recommender>>,
    /// Epochs per fit (0 for models without epochs).
    pub step: u32,
    /// Fits, each followed by a validation score; ≥ 1.
    pub fits: u32,
}

/// One validation score: a candidate after some epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// Index of the candidate.
    pub candidate: usize,
    /// Model name.
    pub model: String,
    /// The candidate's label.
    pub label: String,
    /// Epochs trained so far (`step` × fits so far).
    pub epochs: u32,
    /// Validation Recall@K / NDCG@K.
    pub valid: Metrics,
}

/// The winner for one model: its trial and its learned state at that point.
pub struct Tuned {
    /// The winning trial.
    pub trial: Trial,
    /// [`Recommender::save_state`] of the model at the trial (`None`: the model keeps no
    /// state; a fresh fit from `make` gives the same model).
    pub state: Option<Vec<u8>>,
}

/// True when `a` is a better validation score than `b` (Recall@K, then NDCG@K).
fn better(a: &Metrics, b: &Metrics) -> bool {
    a.recall > b.recall || (a.recall == b.recall && a.ndcg > b.ndcg)
}

/// Runs every candidate (module docs) and returns every trial, in order, and the winner per
/// model name. `on_trial` sees each trial as it is scored (for progress output and timing:
/// the library reads no clock).
pub fn tune(
    split: &TuneSplit,
    candidates: &[Candidate],
    k: usize,
    mut on_trial: impl FnMut(&Trial),
) -> (Vec<Trial>, BTreeMap<String, Tuned>) {
    let log = split.train_log();
    let mut trials = Vec::new();
    let mut best: BTreeMap<String, Tuned> = BTreeMap::new();
    for (c, cand) in candidates.iter().enumerate() {
        let mut model = (cand.make)();
        for f in 1..=cand.fits.max(1) {
            model.fit(&log);
            let trial = Trial {
                candidate: c,
                model: cand.model.clone(),
                label: cand.label.clone(),
                epochs: cand.step * f,
                valid: split.score_valid(model.as_ref(), k),
            };
            on_trial(&trial);
            let wins = best
                .get(&cand.model)
                .is_none_or(|b| better(&trial.valid, &b.trial.valid));
            if wins {
                best.insert(
                    cand.model.clone(),
                    Tuned {
                        trial: trial.clone(),
                        state: model.save_state(),
                    },
                );
            }
            trials.push(trial);
        }
    }
    (trials, best)
}

/// The winning model of `tuned`, rebuilt from its candidate and restored to the winning state.
///
/// # Errors
/// A message when the saved state does not load into the rebuilt model.
pub fn restore_winner(
    candidates: &[Candidate],
    tuned: &Tuned,
    split: &TuneSplit,
) -> Result<Box<dyn Recommender>, String> {
    let cand = &candidates[tuned.trial.candidate];
    let mut model = (cand.make)();
    match &tuned.state {
        Some(bytes) => model.load_state(bytes)?,
        None => model.fit(&split.train_log()),
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::{ItemKnn, Popularity};

    #[test]
    fn picks_by_validation_recall_and_restores_the_winner() {
        // Train: u0 {0, 1}, u1 {0, 1, 2}, u2 {2, 3}; valid: u0 {2}, u2 {0}.
        // Popularity (counts 0:2, 1:2, 2:2, 3:1) gives u0 item 2 (top unmasked; ties by id)
        // and u2 item 0: Recall@1 = 1 for both users.
        // ItemKNN, 1 neighbour per item: 0↔1 (cosine 1), 2↔3 (0.707). u0's history {0, 1}
        // only scores its own (masked) items, so every other item scores 0 and the id
        // tie-break gives item 2, a hit; u2 likewise gets item 0, a hit: Recall@1 = 1 too.
        // Equal scores after both fits: the first trial stays the winner.
        let mut train = UserLists::new();
        train.insert(0, vec![0, 1]);
        train.insert(1, vec![0, 1, 2]);
        train.insert(2, vec![2, 3]);
        let mut valid = UserLists::new();
        valid.insert(0, vec![2]);
        valid.insert(2, vec![0]);
        let split = TuneSplit::new(train, valid);
        assert_eq!((split.n_users, split.n_items), (3, 4));
        let cands = vec![
            Candidate {
                model: "Popularity".into(),
                label: String::new(),
                make: Box::new(|| Box::new(Popularity::default())),
                step: 0,
                fits: 1,
            },
            Candidate {
                model: "ItemKNN".into(),
                label: "1 neighbour".into(),
                make: Box::new(|| Box::new(ItemKnn::new(1))),
                step: 0,
                fits: 2,
            },
        ];
        let mut seen = 0;
        let (trials, best) = tune(&split, &cands, 1, |_| seen += 1);
        assert_eq!(seen, 3);
        assert_eq!(trials.len(), 3);
        assert_eq!(trials[0].valid.recall, 1.0);
        assert_eq!(trials[0].valid.users, 2);
        let pop = &best["Popularity"];
        assert_eq!(pop.trial.candidate, 0);
        let knn = &best["ItemKNN"];
        // Equal scores: the earlier trial (1 fit) stays the winner.
        assert_eq!((knn.trial.candidate, knn.trial.epochs), (1, 0));
        let m = restore_winner(&cands, pop, &split).unwrap();
        assert_eq!(split.score_valid(m.as_ref(), 1), pop.trial.valid);
    }

    #[test]
    fn a_better_later_trial_wins() {
        let a = Metrics {
            recall: 0.2,
            ndcg: 0.1,
            users: 1,
        };
        let b = Metrics {
            recall: 0.2,
            ndcg: 0.3,
            users: 1,
        };
        assert!(better(&b, &a) && !better(&a, &b) && !better(&a, &a));
    }
}
