//! Offline evaluation (Recall@K, NDCG@K) and implicit-feedback files (`user item item ...`).
//!
//! Protocol (the one of NGCF/LightGCN and Agent4Rec): for each user with at least one test item,
//! rank every item except the masked ones (the user's training items, optionally also the
//! validation items), take the top `K`, and average over those users
//! `Recall@K = |top ∩ test| / |test|` and `NDCG@K = DCG@K / IDCG@K` with binary gains,
//! `DCG@K = Σ_{r=1..K} hit_r / log2(r + 1)` and `IDCG@K` the DCG of `min(|test|, K)` hits.

use std::collections::BTreeMap;
use std::path::Path;

use super::train::Positives;
use super::Recommender;
use crate::rng::{stream_rng, Stream};

/// Errors reading an interaction file.
#[derive(Debug, thiserror::Error)]
pub enum RecDataError {
    /// The file could not be read.
    #[error("{path}: cannot read{hint}: {error}", hint = crate::io::data::missing_hint(error))]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A token is not what the format expects.
    #[error("{path}:{line}: {token:?} is not {expected}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The bad token.
        token: String,
        /// What was expected there.
        expected: &'static str,
    },
}

/// Per-user item lists keyed by user id, in file order (a user on two lines gets both lists).
pub type UserLists = BTreeMap<u32, Vec<u32>>;

/// Parses `user item item ...` lines (whitespace-separated ids; blank lines skipped; a user with
/// no items is kept with an empty list).
///
/// # Errors
/// [`RecDataError::Parse`] naming the line and token.
pub fn parse_implicit(text: &str, origin: &str) -> Result<UserLists, RecDataError> {
    let mut out = UserLists::new();
    for (n, line) in text.lines().enumerate() {
        let mut toks = line.split_whitespace();
        let Some(u) = toks.next() else { continue };
        let id = |t: &str| {
            t.parse::<u32>().map_err(|_| RecDataError::Parse {
                path: origin.to_string(),
                line: n + 1,
                token: t.to_string(),
                expected: "a non-negative integer id",
            })
        };
        let u = id(u)?;
        let list = out.entry(u).or_default();
        for t in toks {
            list.push(id(t)?);
        }
    }
    Ok(out)
}

/// Reads and parses an implicit file (see [`parse_implicit`]).
///
/// # Errors
/// [`RecDataError`] for I/O and parse failures.
pub fn load_implicit(path: &Path) -> Result<UserLists, RecDataError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecDataError::Io {
        path: path.display().to_string(),
        error: source,
    })?;
    parse_implicit(&text, &path.display().to_string())
}

/// Dense per-user lists for users `0..n_users` (ids used as indices; ids ≥ `n_users` dropped).
pub fn dense_lists(lists: &UserLists, n_users: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n_users];
    for (&u, l) in lists {
        if let Some(o) = out.get_mut(u as usize) {
            o.extend_from_slice(l);
        }
    }
    out
}

/// Mean Recall@K and NDCG@K over the users scored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Mean Recall@K in [0, 1].
    pub recall: f64,
    /// Mean NDCG@K in [0, 1].
    pub ndcg: f64,
    /// Users with at least one test item.
    pub users: usize,
}

/// Recall@K and NDCG@K of one ranked list against a test set (see the module docs).
pub fn recall_ndcg(ranked: &[u32], test: &[u32], k: usize) -> (f64, f64) {
    if test.is_empty() {
        return (0.0, 0.0);
    }
    let mut t = test.to_vec();
    t.sort_unstable();
    t.dedup();
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (r, i) in ranked.iter().take(k).enumerate() {
        if t.binary_search(i).is_ok() {
            hits += 1;
            dcg += 1.0 / ((r + 2) as f64).log2();
        }
    }
    let idcg: f64 = (0..t.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    (hits as f64 / t.len() as f64, dcg / idcg)
}

/// Scores ranked lists (by user id) against `test`: users with test items and no list count as
/// zero.
pub fn score_lists(lists: &UserLists, test: &UserLists, k: usize) -> Metrics {
    let mut m = Metrics::default();
    for (u, t) in test {
        if t.is_empty() {
            continue;
        }
        let (r, n) = recall_ndcg(lists.get(u).map_or(&[], Vec::as_slice), t, k);
        m.recall += r;
        m.ndcg += n;
        m.users += 1;
    }
    if m.users > 0 {
        m.recall /= m.users as f64;
        m.ndcg /= m.users as f64;
    }
    m
}

/// The top-`k` list of every test user from a fitted `model`, masking `mask`'s items.
pub fn rank_users(
    model: &dyn Recommender,
    mask: &Positives,
    test: &UserLists,
    k: usize,
) -> UserLists {
    let mut out = UserLists::new();
    for &u in test.keys() {
        let mut rng = stream_rng(0, Stream::Recommender, &[u64::from(u)]);
        let s = model.recommend(u, k, &|i| mask.contains(u, i), &mut rng);
        out.insert(u, s.items);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // Hits at ranks 1 and 3 of 3 test items, K = 3.
        let (r, n) = recall_ndcg(&[5, 1, 7], &[7, 5, 9], 3);
        assert!((r - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((n - dcg / idcg).abs() < 1e-12);
        assert_eq!(recall_ndcg(&[1], &[], 20), (0.0, 0.0));
    }

    #[test]
    fn parse_reports_line_and_token() {
        let l = parse_implicit("0 1 2\n\n3\n1 4\n", "f").unwrap();
        assert_eq!(l[&0], vec![1, 2]);
        assert!(l[&3].is_empty());
        let e = parse_implicit("0 1\n1 x\n", "f").unwrap_err().to_string();
        assert_eq!(e, "f:2: \"x\" is not a non-negative integer id");
    }
}

/// An interaction log holding `lists[u]` as user `u`'s initial interactions (unrated).
pub fn log_from_lists(lists: &[Vec<u32>], n_items: usize) -> super::InteractionLog {
    let mut log = super::InteractionLog::new(lists.len(), n_items);
    for (u, l) in lists.iter().enumerate() {
        for &i in l {
            if (i as usize) < n_items {
                log.add_initial(u as u32, i, 0);
            }
        }
    }
    log
}

/// A train/valid/test split of an implicit data set with dense ids (Agent4Rec's `cf_data`).
#[derive(Clone, Debug)]
pub struct Split {
    /// Users `0..n_users` (max user id + 1 over the three files).
    pub n_users: usize,
    /// Items `0..n_items` (max item id + 1 over the three files).
    pub n_items: usize,
    /// Training lists.
    pub train: UserLists,
    /// Validation lists.
    pub valid: UserLists,
    /// Test lists.
    pub test: UserLists,
}

impl Split {
    /// Reads `train.txt`, `valid.txt` (optional: empty when absent) and `test.txt` from `dir`.
    ///
    /// # Errors
    /// [`RecDataError`] for a missing train/test file or a bad line.
    pub fn load(dir: &Path) -> Result<Self, RecDataError> {
        let train = load_implicit(&dir.join("train.txt"))?;
        let valid = if dir.join("valid.txt").exists() {
            load_implicit(&dir.join("valid.txt"))?
        } else {
            UserLists::new()
        };
        let test = load_implicit(&dir.join("test.txt"))?;
        let mut nu = 0;
        let mut ni = 0;
        for l in [&train, &valid, &test] {
            for (&u, items) in l {
                nu = nu.max(u as usize + 1);
                for &i in items {
                    ni = ni.max(i as usize + 1);
                }
            }
        }
        Ok(Self {
            n_users: nu,
            n_items: ni,
            train,
            valid,
            test,
        })
    }

    /// Training positives.
    pub fn train_positives(&self) -> Positives {
        Positives::from_lists(&dense_lists(&self.train, self.n_users), self.n_items)
    }

    /// Items masked from the ranking: train, plus valid when `with_valid`.
    pub fn mask(&self, with_valid: bool) -> Positives {
        let mut l = dense_lists(&self.train, self.n_users);
        if with_valid {
            for (u, v) in dense_lists(&self.valid, self.n_users)
                .into_iter()
                .enumerate()
            {
                l[u].extend(v);
            }
        }
        Positives::from_lists(&l, self.n_items)
    }

    /// Fits `model` on the training lists and scores its top-`k` lists on the test split.
    pub fn evaluate(&self, model: &mut dyn Recommender, with_valid: bool, k: usize) -> Metrics {
        self.fit(model);
        self.score(model, with_valid, k)
    }

    /// Fits `model` on the training lists.
    pub fn fit(&self, model: &mut dyn Recommender) {
        model.fit(&log_from_lists(
            &dense_lists(&self.train, self.n_users),
            self.n_items,
        ));
    }

    /// Scores a fitted `model`'s top-`k` lists on the test split, masking train (and valid when
    /// `with_valid`) items.
    pub fn score(&self, model: &dyn Recommender, with_valid: bool, k: usize) -> Metrics {
        let lists = rank_users(model, &self.mask(with_valid), &self.test, k);
        score_lists(&lists, &self.test, k)
    }
}
