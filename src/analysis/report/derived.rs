//! What a run report computes from `interaction.csv` and the catalogue (the per-round
//! metrics come from `metrics.csv`): the rating histogram, per-item exposure, watches and
//! ratings, the exposure Lorenz curve and Gini, the genre mix of the first and the last
//! round's watches, and each agent's genre entropy over the whole run.

use std::collections::BTreeMap;

use super::data::RunData;
use super::stats::{entropy_bits, gini, lorenz};

/// One catalogue item's totals over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemStat {
    /// Item id.
    pub id: u32,
    /// Title (from the catalogue).
    pub title: String,
    /// Times shown (rows of `interaction.csv`).
    pub exposures: u64,
    /// Times watched (label 1).
    pub watches: u64,
    /// Ratings given.
    pub ratings: u64,
    /// Sum of the stars given.
    pub rating_sum: u64,
}

impl ItemStat {
    /// Mean stars, `None` when never rated.
    pub fn mean_rating(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_sum as f64 / self.ratings as f64)
    }
}

/// The genre mix of one round's watches.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundGenres {
    /// The round.
    pub round: u32,
    /// Watches that round.
    pub watches: u64,
    /// Per catalogue genre (index of [`crate::catalog::Catalog::genre_names`]), how often
    /// it occurs among the watched items (an item counts once for each of its genres).
    pub counts: Vec<u64>,
}

impl RoundGenres {
    /// Each genre's share (0..1) of the genre occurrences, as `counts` / their sum.
    pub fn shares(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().sum();
        self.counts
            .iter()
            .map(|&c| {
                if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                }
            })
            .collect()
    }
}

/// What a run report shows beside `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAnalysis {
    /// Ratings given with 1..=5 stars (index 0 = 1 star).
    pub rating_hist: [u64; 5],
    /// Every catalogue item, in catalogue (id) order.
    pub items: Vec<ItemStat>,
    /// Distinct item ids in `interaction.csv` that the catalogue does not have (left out of
    /// everything but the rating histogram).
    pub unknown_items: usize,
    /// Genre names, indexed as [`RoundGenres::counts`].
    pub genre_names: Vec<String>,
    /// The genre mix of the first round with watches.
    pub first: Option<RoundGenres>,
    /// The genre mix of the last round with watches (`None` when it is the first).
    pub last: Option<RoundGenres>,
    /// `(user id, genre entropy in bits of everything the user watched)` for every user with
    /// at least one watch, ascending id (see [`entropy_bits`]).
    pub agent_entropy: Vec<(u32, f64)>,
    /// Gini coefficient of the exposure counts of all catalogue items (see [`gini`]).
    pub gini_exposure: Option<f64>,
    /// Lorenz curve of the same counts (see [`lorenz`]).
    pub lorenz: Vec<(f64, f64)>,
}

impl RunAnalysis {
    /// Computes the analysis of a loaded run.
    pub fn of(run: &RunData) -> Self {
        let cat = &run.catalog;
        let n_genres = cat.genre_names().len();
        let mut items: Vec<ItemStat> = cat
            .items()
            .iter()
            .map(|it| ItemStat {
                id: it.id.0,
                title: it.title.to_string(),
                exposures: 0,
                watches: 0,
                ratings: 0,
                rating_sum: 0,
            })
            .collect();
        let mut unknown = std::collections::BTreeSet::new();
        let mut rating_hist = [0u64; 5];
        let mut per_round: BTreeMap<u32, RoundGenres> = BTreeMap::new();
        let mut per_user: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for r in &run.interactions {
            if let Some(s) = r.rating {
                rating_hist[usize::from(s) - 1] += 1;
            }
            let Some(idx) = cat.index_of(crate::ids::ItemId(r.item)) else {
                unknown.insert(r.item);
                continue;
            };
            let st = &mut items[idx as usize];
            st.exposures += 1;
            if let Some(s) = r.rating {
                st.ratings += 1;
                st.rating_sum += u64::from(s);
            }
            if !r.watched {
                continue;
            }
            st.watches += 1;
            let genres = cat.get(idx).genres;
            let round = per_round.entry(r.round).or_insert_with(|| RoundGenres {
                round: r.round,
                watches: 0,
                counts: vec![0; n_genres],
            });
            round.watches += 1;
            let user = per_user.entry(r.user).or_insert_with(|| vec![0; n_genres]);
            for g in genres.iter() {
                round.counts[g] += 1;
                user[g] += 1;
            }
        }
        let exposures: Vec<u64> = items.iter().map(|i| i.exposures).collect();
        let first = per_round.values().next().cloned();
        let last = per_round
            .values()
            .next_back()
            .filter(|l| Some(l.round) != first.as_ref().map(|f| f.round))
            .cloned();
        Self {
            rating_hist,
            unknown_items: unknown.len(),
            genre_names: cat.genre_names().to_vec(),
            first,
            last,
            agent_entropy: per_user
                .into_iter()
                .map(|(u, counts)| (u, entropy_bits(&counts)))
                .collect(),
            gini_exposure: gini(&exposures),
            lorenz: lorenz(&exposures),
            items,
        }
    }

    /// The `n` most exposed items (ties: more watches first, then lower id); items never
    /// shown are left out.
    pub fn top_items(&self, n: usize) -> Vec<&ItemStat> {
        let mut v: Vec<&ItemStat> = self.items.iter().filter(|i| i.exposures > 0).collect();
        v.sort_by(|a, b| {
            b.exposures
                .cmp(&a.exposures)
                .then(b.watches.cmp(&a.watches))
                .then(a.id.cmp(&b.id))
        });
        v.truncate(n);
        v
    }

    /// Ratings given in all.
    pub fn ratings(&self) -> u64 {
        self.rating_hist.iter().sum()
    }

    /// Mean stars over all ratings, `None` when there are none.
    pub fn mean_rating(&self) -> Option<f64> {
        let n = self.ratings();
        (n > 0).then(|| {
            self.rating_hist
                .iter()
                .enumerate()
                .map(|(i, c)| (i as u64 + 1) * c)
                .sum::<u64>() as f64
                / n as f64
        })
    }
}
