//! Content-based recommender: cosine similarity between item feature vectors and the user's
//! profile vector (Pazzani & Billsus 2007, "Content-based recommendation systems", §3).
//!
//! Features are one row per item (genre multi-hot from the catalogue by default; any embedding,
//! e.g. of item text, can be passed instead). Rows are L2-normalised. A user's profile is the mean
//! of the normalised rows of the items they watched, plus an optional prior vector (e.g. from the
//! stated interests) weighted as one watched item. Score = cosine(profile, item); ties go to the
//! more-watched item, then the lower index. Users with neither history nor prior get popularity.

use ndarray::{Array1, Array2};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::train::{top_k_by, Positives};
use super::{InteractionLog, Recommender, Slate};

/// Content-based model (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Content {
    /// Item features, `n_items × f`, rows L2-normalised (all-zero rows stay zero).
    features: Array2<f32>,
    /// Optional per-user prior, `n_users × f` (rows may be zero).
    prior: Option<Array2<f32>>,
    /// User profiles, `n_users × f`, rows L2-normalised.
    profiles: Array2<f32>,
    counts: Vec<u32>,
}

fn normalise_rows(m: &mut Array2<f32>) {
    for mut r in m.rows_mut() {
        let n = r.dot(&r).sqrt();
        if n > 0.0 {
            r /= n;
        }
    }
}

impl Content {
    /// A model over `features` (`n_items × f`) with an optional per-user `prior` (`n_users × f`;
    /// users beyond its rows have none).
    pub fn new(mut features: Array2<f32>, prior: Option<Array2<f32>>) -> Self {
        normalise_rows(&mut features);
        let prior = prior.map(|mut p| {
            normalise_rows(&mut p);
            p
        });
        Self {
            features,
            prior,
            profiles: Array2::zeros((0, 0)),
            counts: Vec::new(),
        }
    }

    /// Fits the profiles on positives.
    pub fn fit_positives(&mut self, pos: &Positives) {
        let f = self.features.ncols();
        let ni = self.features.nrows();
        let mut prof = Array2::<f32>::zeros((pos.n_users(), f));
        for (u, mut row) in prof.rows_mut().into_iter().enumerate() {
            for &i in pos.items_of(u as u32) {
                if (i as usize) < ni {
                    row += &self.features.row(i as usize);
                }
            }
            if let Some(p) = &self.prior {
                if u < p.nrows() {
                    row += &p.row(u);
                }
            }
        }
        normalise_rows(&mut prof);
        self.profiles = prof;
        self.counts = pos.item_counts();
    }

    /// Cosine of `user`'s profile with every item (zeros for an unknown or empty profile).
    pub fn scores(&self, user: u32) -> Array1<f32> {
        match self.profiles.rows().into_iter().nth(user as usize) {
            Some(p) => self.features.dot(&p),
            None => Array1::zeros(self.features.nrows()),
        }
    }
}

impl Recommender for Content {
    crate::model_state_via_serde!();

    fn name(&self) -> &'static str {
        "Content"
    }

    fn fit(&mut self, log: &InteractionLog) {
        self.fit_positives(&Positives::from_log(log));
    }

    fn recommend(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        let s = self.scores(user);
        let count = |i: u32| self.counts.get(i as usize).copied().unwrap_or(0);
        let items = top_k_by(s.len(), k, exclude, |a, b| {
            s[b as usize]
                .total_cmp(&s[a as usize])
                .then(count(b).cmp(&count(a)))
                .then(a.cmp(&b))
        });
        let scores = items.iter().map(|&i| s[i as usize]).collect();
        Slate { items, scores }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream_rng, Stream};
    use ndarray::array;

    #[test]
    fn ranks_by_cosine_to_history_then_popularity() {
        // Genres: [action, comedy]. Items: 0 action, 1 comedy, 2 both, 3 action, 4 none.
        let f = array![[1., 0.], [0., 1.], [1., 1.], [1., 0.], [0., 0.]];
        let mut m = Content::new(f, None);
        // User 0 watched item 0 (action); user 1 watched item 1 twice over two users' counts.
        let pos = Positives::from_lists(&[vec![0], vec![1], vec![1, 3]], 5);
        m.fit_positives(&pos);
        let mut rng = stream_rng(0, Stream::Recommender, &[]);
        let s = m.recommend(0, 4, &|i| i == 0, &mut rng);
        // cos(action, item3) = 1, item2 = 1/√2, item1 = 0 (count 2), item4 = 0 (count 0).
        assert_eq!(s.items, vec![3, 2, 1, 4]);
        assert!((s.scores[1] - 0.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn prior_counts_as_one_watched_item() {
        let f = array![[1., 0.], [0., 1.], [1., 1.]];
        // User 0: no history, prior = comedy. User 1: prior comedy, history two action items.
        let prior = array![[0., 1.], [0., 1.]];
        let mut m = Content::new(f, Some(prior));
        m.fit_positives(&Positives::from_lists(&[vec![], vec![0, 0]], 3));
        let mut rng = stream_rng(0, Stream::Recommender, &[]);
        assert_eq!(m.recommend(0, 3, &|_| false, &mut rng).items, vec![1, 2, 0]);
        // User 1's profile is (1, 1)/√2 after deduplicated history (item 0) + prior: item 2 first
        // (cos 1), then items 0 and 1 tie at 1/√2; item 0 has a watch, so it goes first.
        assert_eq!(m.recommend(1, 3, &|_| false, &mut rng).items, vec![2, 0, 1]);
    }
}
