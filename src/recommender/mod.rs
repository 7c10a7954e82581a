//! Recommenders, pure Rust behind a trait (no ECS imports), fed by the [`InteractionLog`].
//!
//! Items and users are addressed by dense indices: items by catalogue position (`0..n_items`,
//! id order), users by roster position (`0..n_agents`, id order), followed by any background users
//! of a warm start (see [`map_initial`]).
//!
//! Models: [`RandomRec`], [`Popularity`], [`Mf`] (BPR), [`LightGcn`], [`ItemKnn`], [`MultVae`],
//! [`Content`], [`External`] (HTTP). [`eval`] holds the offline metrics; [`train`] the shared training code.

mod content;
pub mod eval;
mod external;
pub mod factors;
mod itemknn;
mod lightgcn;
mod mf;
mod multvae;
mod popularity;
mod random;
pub mod train;
pub mod tune;
mod warm;

pub use content::Content;
pub use external::{
    parse_slate_reply, External, ReplyError, SlateReply, SlateRequest, EXTERNAL_DROPPED,
    EXTERNAL_FAILED,
};
pub use itemknn::{cosine_neighbours, ItemKnn, DEFAULT_NEIGHBOURS};
pub use lightgcn::{LightGcn, NormAdj, LIGHTGCN_DEFAULT_REG};
pub use mf::{Mf, MF_DEFAULT_REG};
pub use multvae::{MultVae, MultVaeParams, VaeNet};
pub use popularity::Popularity;
pub use random::RandomRec;
pub use train::TrainParams;
pub use warm::{load_initial, map_initial, parse_initial, WarmReport, WarmStart};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A ranked list of items for one user: item indices and their scores, best first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slate {
    /// Item indices, best first.
    pub items: Vec<u32>,
    /// Score of each item (model-specific scale; higher is better).
    pub scores: Vec<f32>,
}

/// Every exposure and watch of the run (plus any initial interactions), by dense index.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct InteractionLog {
    /// Per user: items ever shown to the user, sorted ascending (for exclusion).
    exposed: Vec<Vec<u32>>,
    /// Per item: number of watches.
    watch_counts: Vec<u64>,
    /// Every watch in order: (user, item, rating 1..=5 or 0 if unrated, round).
    watches: Vec<(u32, u32, u8, u32)>,
    /// Watches not rated yet: (user, item) -> index in `watches` (ratings arrive in the feel phase).
    unrated: std::collections::BTreeMap<(u32, u32), usize>,
}

impl InteractionLog {
    /// An empty log for `n_users` × `n_items`.
    pub fn new(n_users: usize, n_items: usize) -> Self {
        Self {
            exposed: vec![Vec::new(); n_users],
            watch_counts: vec![0; n_items],
            watches: Vec::new(),
            unrated: std::collections::BTreeMap::new(),
        }
    }
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.exposed.len()
    }
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.watch_counts.len()
    }
    /// Records that `item` was shown to `user`. Returns false if it had been shown before.
    pub fn expose(&mut self, user: u32, item: u32) -> bool {
        let list = &mut self.exposed[user as usize];
        match list.binary_search(&item) {
            Ok(_) => false,
            Err(p) => {
                list.insert(p, item);
                true
            }
        }
    }
    /// True when `item` has been shown to `user`.
    pub fn is_exposed(&self, user: u32, item: u32) -> bool {
        self.exposed[user as usize].binary_search(&item).is_ok()
    }
    /// Items shown to `user`, ascending.
    pub fn exposed(&self, user: u32) -> &[u32] {
        &self.exposed[user as usize]
    }
    /// Records an initial (pre-simulation) interaction: the item counts as shown and watched
    /// (round 0), so it trains the models and is never recommended to the user again.
    pub fn add_initial(&mut self, user: u32, item: u32, rating: u8) {
        self.expose(user, item);
        self.watch(user, item, rating, 0);
    }
    /// Records a watch.
    pub fn watch(&mut self, user: u32, item: u32, rating: u8, round: u32) {
        self.watch_counts[item as usize] += 1;
        if rating == 0 {
            self.unrated.insert((user, item), self.watches.len());
        }
        self.watches.push((user, item, rating, round));
    }
    /// Sets the rating of the latest watch of `item` by `user` (ratings arrive after the watch).
    pub fn rate(&mut self, user: u32, item: u32, rating: u8) {
        if let Some(i) = self.unrated.remove(&(user, item)) {
            self.watches[i].2 = rating;
        }
    }
    /// Watches per item.
    pub fn watch_counts(&self) -> &[u64] {
        &self.watch_counts
    }
    /// Every watch: (user, item, rating or 0, round).
    pub fn watches(&self) -> &[(u32, u32, u8, u32)] {
        &self.watches
    }
}

/// One count a model keeps of its own ([`Recommender::take_counts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelCount {
    /// Counter name in the manifest's `summary` (snake case, unique).
    pub name: &'static str,
    /// Words shown in the end-of-run summary.
    pub label: &'static str,
    /// Events since the last call.
    pub n: u64,
}

/// A recommendation model.
pub trait Recommender: Send + Sync {
    /// Model name as in the config (`Random`, `Popularity`, ...).
    fn name(&self) -> &'static str;
    /// Re-fits the model on the log (called once at start and after every `retrain_every`-th
    /// round). Must be deterministic given the model's seed and the log.
    fn fit(&mut self, log: &InteractionLog);
    /// Re-fits after a round (the record phase's online retraining) on at most `budget` of the
    /// log's watches when the model can train incrementally (0 = every watch, as [`fit`]
    /// does); the default re-fits in full. MF trains on the watches since its previous fit plus
    /// a replayed sample of earlier ones ([`Mf::refit_log`]), so a re-fit's cost stays bounded
    /// however long the run.
    ///
    /// [`fit`]: Recommender::fit
    fn refit(&mut self, log: &InteractionLog, budget: usize) {
        let _ = budget;
        self.fit(log);
    }
    /// Up to `k` items for `user`, best first, none for which `exclude(item)` holds.
    /// `rng` is the (user, round, page) stream; deterministic models ignore it.
    fn recommend(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Slate;
    /// [`Recommender::recommend`] with the interaction log the page is built from, for models
    /// that want the user's history or exposures as lists (a Python model, see the `python/`
    /// crate). Pages are built through this method ([`build_page`]); the default ignores `log`
    /// and calls [`Recommender::recommend`].
    fn recommend_in(
        &self,
        user: u32,
        k: usize,
        log: &InteractionLog,
        exclude: &dyn Fn(u32) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Slate {
        let _ = log;
        self.recommend(user, k, exclude, rng)
    }
    /// The top lists of several pages at once, one per user in `users` (distinct users, each
    /// with its own page stream in `rngs`), none holding an item the user was shown
    /// (`log.is_exposed`). For models with a per-call cost worth sharing (a Python model answers
    /// them in one call); the default asks [`Recommender::recommend_in`] for each, in order, so
    /// a batch gives exactly the pages one-by-one calls give.
    fn recommend_batch_in(
        &self,
        users: &[u32],
        k: usize,
        log: &InteractionLog,
        rngs: &mut [ChaCha8Rng],
    ) -> Vec<Slate> {
        users
            .iter()
            .zip(rngs.iter_mut())
            .map(|(&u, rng)| {
                let exclude = |i: u32| log.is_exposed(u, i);
                self.recommend_in(u, k, log, &exclude, rng)
            })
            .collect()
    }
    /// Tells the model the ids behind the dense indices, once, before its first fit:
    /// `items[i]` is the id (`ItemId.0`) of item index `i` (catalogue order), `users[u]` the id
    /// (`UserId.0`) of user index `u` (the agents, roster order; background users of a warm
    /// start follow them unnamed, at indices `users.len()..`). For models that speak ids (a
    /// Python model); the default ignores them.
    fn bind_ids(&mut self, items: &[u32], users: &[u32]) {
        let _ = (items, users);
    }
    /// The learned state, for checkpoints (`None`: the model is re-fitted from the restored log).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// Events the model counted since the last call (every count it keeps, zeros included),
    /// added to the run's counters after each round (the manifest's `summary`, the end-of-run
    /// summary); e.g. [`External`]'s failed requests. Default: none.
    fn take_counts(&self) -> Vec<ModelCount> {
        Vec::new()
    }
    /// Restores what [`Recommender::save_state`] returned.
    ///
    /// # Errors
    /// A message when the bytes are not this model's state.
    fn load_state(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Err(format!("{} keeps no state", self.name()))
    }
}

/// What [`restore_model`] did with a checkpointed recommender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRestore {
    /// The checkpoint's learned state was loaded: the model continues exactly.
    Restored,
    /// The checkpoint holds another model (a branch that changed `rec_model`): this one was
    /// trained afresh on the restored interactions, as the online retraining would.
    Changed {
        /// The checkpointed model's name.
        from: String,
    },
    /// The model keeps no state, or its state did not load: it was re-fitted on the restored
    /// interactions.
    Refitted {
        /// Why the state was not loaded (`None`: the checkpoint held no state).
        reason: Option<String>,
    },
}

/// Puts a checkpointed recommender back: `saved` is the name of the model that wrote `state`
/// (`None` in checkpoints older than this field: then the state is tried as this model's).
/// When the names differ the state is not even tried (it is another model's): the model is
/// fitted on `log` instead.
pub fn restore_model(
    model: &mut dyn Recommender,
    log: &InteractionLog,
    saved: Option<&str>,
    state: Option<&[u8]>,
) -> ModelRestore {
    if let Some(from) = saved.filter(|n| *n != model.name()) {
        model.fit(log);
        return ModelRestore::Changed {
            from: from.to_string(),
        };
    }
    let reason = match state {
        None => None,
        Some(bytes) => match model.load_state(bytes) {
            Ok(()) => return ModelRestore::Restored,
            Err(e) => Some(e),
        },
    };
    model.fit(log);
    ModelRestore::Refitted { reason }
}

/// Scores a model computes for one user over all items (index = item), for [`scored_recommender!`](crate::scored_recommender).
pub trait ItemScores {
    /// The scores as a slice.
    fn item_scores(&self) -> &[f32];
}

impl ItemScores for Vec<f32> {
    fn item_scores(&self) -> &[f32] {
        self
    }
}

impl ItemScores for ndarray::Array1<f32> {
    fn item_scores(&self) -> &[f32] {
        self.as_slice().unwrap_or(&[])
    }
}

/// Implements [`Recommender`] for a model trained on positives (`fit_positives(&Positives)`) that
/// scores every item for a user (`scores(user)`), ranking by score with the id tie-break of
/// `train::top_k`, and checkpointing its state through serde.
#[macro_export]
macro_rules! scored_recommender {
    ($ty:ty, $name:literal) => {
        $crate::scored_recommender!($ty, $name, {} [] []);
    };
    ($ty:ty, $name:literal, params) => {
        $crate::scored_recommender!($ty, $name, { params } [] []);
    };
    // A factor model (`fn factor_views(&self) -> Option<FactorViews>`, scores `items · p_u`):
    // pages asked together are scored in batches ([`factors::batch_top_k`]), with the same lists.
    ($ty:ty, $name:literal, params, factors) => {
        $crate::scored_recommender!($ty, $name, { params } [factors] []);
    };
    // A factor model that re-fits incrementally (`fn refit_log(&mut self, log, budget)`, a full
    // fit at budget 0).
    ($ty:ty, $name:literal, params, factors, incremental) => {
        $crate::scored_recommender!($ty, $name, { params } [factors] [incremental]);
    };
    ($ty:ty, $name:literal, { $($params:ident)? } [$($factors:ident)?] [$($incremental:ident)?]) => {
        impl $crate::recommender::Recommender for $ty {
            $crate::model_state_via_serde!($($params)?);
            $($crate::factor_batches!($factors);)?
            $crate::model_fits!($($incremental)?);

            fn name(&self) -> &'static str {
                $name
            }

            fn recommend(
                &self,
                user: u32,
                k: usize,
                exclude: &dyn Fn(u32) -> bool,
                _rng: &mut rand_chacha::ChaCha8Rng,
            ) -> $crate::recommender::Slate {
                use $crate::recommender::ItemScores as _;
                $crate::recommender::train::top_k(self.scores(user).item_scores(), k, exclude)
            }
        }
    };
}

/// [`Recommender::fit`] (and, for an `incremental` model, [`Recommender::refit`]) inside a
/// model's `impl Recommender` block: a full fit on the log's positives, or the model's own
/// `refit_log`.
#[macro_export]
macro_rules! model_fits {
    () => {
        fn fit(&mut self, log: &$crate::recommender::InteractionLog) {
            self.fit_positives(&$crate::recommender::train::Positives::from_log(log));
        }
    };
    (incremental) => {
        fn fit(&mut self, log: &$crate::recommender::InteractionLog) {
            self.refit_log(log, 0);
        }
        fn refit(&mut self, log: &$crate::recommender::InteractionLog, budget: usize) {
            self.refit_log(log, budget);
        }
    };
}

/// The batched [`Recommender::recommend_batch_in`] of a factor model (inside its `impl
/// Recommender` block, through [`scored_recommender!`](crate::scored_recommender)'s `factors`):
/// the lists of one-by-one calls, computed [`factors::BATCH`] users per matrix product, the
/// batches on the rayon pool.
#[macro_export]
macro_rules! factor_batches {
    (factors) => {
        fn recommend_batch_in(
            &self,
            users: &[u32],
            k: usize,
            log: &$crate::recommender::InteractionLog,
            _rngs: &mut [rand_chacha::ChaCha8Rng],
        ) -> Vec<$crate::recommender::Slate> {
            match self.factor_views() {
                Some(f) => $crate::recommender::factors::batch_top_k(&f, users, k, log, true),
                None => vec![$crate::recommender::Slate::default(); users.len()],
            }
        }
    };
}

/// Implements [`Recommender::save_state`] / [`Recommender::load_state`] with MessagePack for a
/// model that derives serde (inside its `impl Recommender` block).
#[macro_export]
macro_rules! model_state_via_serde {
    () => {
        fn save_state(&self) -> Option<Vec<u8>> {
            rmp_serde::to_vec_named(self).ok()
        }
        fn load_state(&mut self, bytes: &[u8]) -> Result<(), String> {
            *self = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
            Ok(())
        }
    };
    // A model whose `params` field holds its hyper-parameters: the configured ones (a branch's
    // `--set lr=...`) replace the checkpoint's, see [`ConfiguredParams`].
    ($params:ident) => {
        fn save_state(&self) -> Option<Vec<u8>> {
            rmp_serde::to_vec_named(self).ok()
        }
        fn load_state(&mut self, bytes: &[u8]) -> Result<(), String> {
            let mut restored: Self = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
            $crate::recommender::ConfiguredParams::keep_configured(
                &self.$params,
                &mut restored.$params,
            )?;
            *self = restored;
            Ok(())
        }
    };
}

/// Hyper-parameters of a model restored from a checkpoint. The learned state (embeddings,
/// optimiser moments, fit count) comes from the checkpoint; the hyper-parameters come from the
/// configuration the resumed or branched run was given, so a branch that changes `lr` or
/// `epoch_num` trains on with the new values. Those that shape the learned state (an embedding
/// size) cannot change: the restore then fails and the model is fitted again.
pub trait ConfiguredParams {
    /// Replaces `restored` with `self` (the configured values).
    ///
    /// # Errors
    /// A shape-defining value differs, named with both values.
    fn keep_configured(&self, restored: &mut Self) -> Result<(), String>;
}

/// Builds a page of `page_size` items for `user`: the model's top `page_size - random_k`, plus
/// `random_k` items drawn uniformly from outside the model's top `page_size` (RecAgent's intended
/// `rec_random_k` tail injection, spec §4.6), placed at random positions. Items shown before are
/// never shown again. Fewer items come back when the catalogue runs out.
pub fn build_page(
    model: &dyn Recommender,
    log: &InteractionLog,
    user: u32,
    page_size: usize,
    random_k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let exclude = |i: u32| log.is_exposed(user, i);
    let top = model.recommend_in(user, page_size, log, &exclude, rng);
    finish_page(top, log, user, page_size, random_k, rng)
}

/// [`build_page`] for several users at once (distinct users, one page stream each): the model's
/// top lists come from one [`Recommender::recommend_batch_in`]; each page is then finished as
/// [`build_page`] finishes it, so the pages are the ones one-by-one calls build.
pub fn build_pages(
    model: &dyn Recommender,
    log: &InteractionLog,
    users: &[u32],
    page_size: usize,
    random_k: usize,
    rngs: &mut [ChaCha8Rng],
) -> Vec<Vec<u32>> {
    let tops = model.recommend_batch_in(users, page_size, log, rngs);
    tops.into_iter()
        .zip(users)
        .zip(rngs.iter_mut())
        .map(|((top, &u), rng)| finish_page(top, log, u, page_size, random_k, rng))
        .collect()
}

/// The page from the model's top list: the `rec_random_k` tail injection of [`build_page`].
fn finish_page(
    top: Slate,
    log: &InteractionLog,
    user: u32,
    page_size: usize,
    random_k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let exclude = |i: u32| log.is_exposed(user, i);
    if random_k == 0 {
        return top.items;
    }
    let keep = page_size.saturating_sub(random_k);
    let mut page: Vec<u32> = top.items.iter().copied().take(keep).collect();
    let n = log.n_items() as u32;
    let outside = |i: u32| exclude(i) || top.items.contains(&i) || page.contains(&i);
    let mut injected = Vec::with_capacity(random_k);
    let mut tries = 0;
    while injected.len() < random_k && tries < 64 * random_k && n > 0 {
        tries += 1;
        let c = rng.random_range(0..n);
        if !outside(c) && !injected.contains(&c) {
            injected.push(c);
        }
    }
    if injected.len() < random_k {
        // Dense catalogue: fall back to a deterministic scan from a random offset.
        let start = if n > 0 { rng.random_range(0..n) } else { 0 };
        for off in 0..n {
            let c = (start + off) % n;
            if injected.len() == random_k {
                break;
            }
            if !outside(c) && !injected.contains(&c) {
                injected.push(c);
            }
        }
    }
    for c in injected {
        let pos = rng.random_range(0..=page.len());
        page.insert(pos, c);
    }
    if page.len() < page_size {
        // Not enough tail items: top up from the model's list.
        for &i in top.items.iter().skip(keep) {
            if page.len() == page_size {
                break;
            }
            if !page.contains(&i) {
                page.push(i);
            }
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream_rng, Stream};

    #[test]
    fn log_exposure_is_a_set() {
        let mut log = InteractionLog::new(2, 5);
        assert!(log.expose(0, 3));
        assert!(!log.expose(0, 3));
        assert!(log.expose(0, 1));
        assert_eq!(log.exposed(0), &[1, 3]);
        assert!(!log.is_exposed(1, 3));
        log.watch(0, 3, 0, 1);
        log.rate(0, 3, 4);
        assert_eq!(log.watches(), &[(0, 3, 4, 1)]);
        assert_eq!(log.watch_counts(), &[0, 0, 0, 1, 0]);
    }

    #[test]
    fn random_k_injects_exactly_k_items_outside_the_top_list() {
        let mut log = InteractionLog::new(1, 100);
        for (i, n) in [(7u32, 9u64), (3, 8), (5, 7), (9, 6), (1, 5), (2, 4), (4, 3)] {
            for _ in 0..n {
                log.watch(0, i, 0, 0);
            }
        }
        let mut pop = Popularity::default();
        pop.fit(&log);
        let mut rng = stream_rng(1, Stream::Recommender, &[0]);
        let top = pop.recommend(0, 5, &|_| false, &mut rng).items;
        assert_eq!(top, vec![7, 3, 5, 9, 1]);
        for seed in 0..20 {
            let mut rng = stream_rng(seed, Stream::Recommender, &[0]);
            let page = build_page(&pop, &log, 0, 5, 2, &mut rng);
            assert_eq!(page.len(), 5);
            let from_top: Vec<u32> = page.iter().copied().filter(|i| top.contains(i)).collect();
            assert_eq!(from_top, vec![7, 3, 5], "the top 3 keep their order");
            assert_eq!(page.iter().filter(|i| !top.contains(i)).count(), 2);
        }
    }
}
