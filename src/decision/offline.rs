//! The offline user model: a seeded stochastic model of the agents' choices, no LLM, no network.
//! Each decision kind's `offline` answer (in its own file) is built from the terms below; the
//! `offline` backend ([`crate::behaviour::offline`]) only dispatches to them.
//!
//! Every decision is a multinomial logit (softmax) over the options' utilities divided by the
//! temperature `τ` (McFadden 1974; the standard discrete-choice model of user behaviour in
//! recommender simulators, e.g. RecSim's choice models, Ie et al. 2019, §4):
//! `P(option j) = exp(U_j / τ) / Σ_k exp(U_k / τ)`.
//! Each request draws from its own ChaCha8 stream derived from `(seed, round, phase, user, step)`,
//! so answers do not depend on batch order or thread count.
//!
//! Terms used below, for agent `u` and item `i`:
//! - affinity `a(u,i)` ∈ \[0,1\]: 0 when the item shares no genre with the user's liked genres,
//!   else `0.6 + 0.4 × |liked ∩ G_i| / |G_i|`.
//! - idiosyncrasy `ζ(u,i)`: a fixed per-(user,item) taste draw, uniform with mean 0 and variance 1
//!   (`(h − 0.5)·2√3` for a hash `h` of (seed, user, item)), so two users with equal profiles differ.
//! - heard `h(u,i)` ∈ \[0,1\]: social influence of having heard of the item in a chat or a post,
//!   `0.5^(rounds since last heard / heard_half_life_rounds)` (exponential decay, see
//!   [`crate::social::heard_signal`]); 0 when the item is not in the heard history (which keeps the
//!   latest `history_size` items). Bounded: it adds at most `heard_weight` to an item's utility,
//!   however often the item was heard of.
//! - satiation `s(u,i)` ∈ \[0,1\]: share of the watched history that shares a genre with the item.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AgentView, Context, RequestKey};
use crate::calibration::CalibratedModel;
use crate::catalog::Catalog;
use crate::ids::{ItemId, UserId};
use crate::rng::{stream_rng, unit_hash, Stream};

/// What a kind's offline answer draws on: the batch context, the model's parameters and the
/// request's own random stream (seeded by `(seed, round, phase, user, step)`).
pub struct Offline<'a> {
    /// The batch context.
    pub ctx: &'a Context<'a>,
    /// The model's parameters (`offline:` section).
    pub params: &'a OfflineParams,
    /// The request's random stream.
    pub rng: ChaCha8Rng,
}

impl<'a> Offline<'a> {
    /// The calibrated model when `offline.model: calibrated` (loaded), else `None`.
    pub fn calibrated(&self) -> Option<&'a CalibratedModel> {
        match self.params.model {
            OfflineModel::Calibrated => self.params.loaded.as_deref(),
            OfflineModel::Heuristic => None,
        }
    }

    /// The draw for the request keyed `key`.
    pub fn for_key(ctx: &'a Context<'a>, params: &'a OfflineParams, key: &RequestKey) -> Self {
        Self {
            ctx,
            params,
            rng: stream_rng(ctx.seed, Stream::Behaviour, &key.as_ids()),
        }
    }
}

/// Parameters of the offline model (`offline:` section of the config). Utilities are in logit
/// units; raising a weight makes its term matter more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// Unknown keys are collected and reported with every other unknown key of the file
// (`SimConfig::check_claimed`), so they are not refused here one at a time.
#[serde(default)]
pub struct OfflineParams {
    /// Softmax temperature `τ` > 0; higher = more random choices.
    pub temperature: f64,
    /// Top level: `U_rec = recommender_bias + feature_weight·(Watcher + 0.5·Explorer)`.
    pub recommender_bias: f64,
    /// Top level: `U_social = social_bias + feature_weight·0.5·(Chatter + Poster) ± 0.5` (+0.5 when the
    /// agent has watched or heard of something, −0.5 otherwise) `− no_contacts_penalty` without contacts.
    pub social_bias: f64,
    /// Top level: `U_nothing = nothing_bias`.
    pub nothing_bias: f64,
    /// Weight of the profile's feature codes in top-level and social choices.
    pub feature_weight: f64,
    /// Utility removed from `social` for an agent with no contacts.
    pub no_contacts_penalty: f64,
    /// Page: weight of affinity `a(u,i)` in `U_i`.
    pub affinity_weight: f64,
    /// Page: weight of idiosyncrasy `ζ(u,i)` in `U_i`.
    pub idiosyncrasy_weight: f64,
    /// Page: weight of heard-of `h(u,i)` in `U_i` (social influence).
    pub heard_weight: f64,
    /// Page: half-life, in rounds, of the heard-of signal `h(u,i)`; (0, 1000].
    pub heard_half_life_rounds: f64,
    /// Page: weight of satiation `s(u,i)`, subtracted in `U_i`.
    pub satiation_weight: f64,
    /// Page: `U_next = next_bias − next_page_decay × page`.
    pub next_bias: f64,
    /// Page: how fast paging loses appeal.
    pub next_page_decay: f64,
    /// Page: `U_leave = leave_bias + leave_step_weight × steps`.
    pub leave_bias: f64,
    /// Page: how fast leaving gains appeal with each decision.
    pub leave_step_weight: f64,
    /// Page: `U_search = search_bias + explorer_search_bonus × Explorer`, offered only when the agent
    /// heard of an item it has not watched and is not on the page.
    pub search_bias: f64,
    /// Page: search bonus of Explorers.
    pub explorer_search_bonus: f64,
    /// Rating: `q = rating_intercept + rating_affinity·a + rating_idiosyncrasy·ζ + rating_noise·ε
    /// + critic_shift·Critic`, ε ~ N(0,1); stars = clamp(round(q), 1, 5).
    pub rating_intercept: f64,
    /// Rating: weight of affinity.
    pub rating_affinity: f64,
    /// Rating: weight of idiosyncrasy.
    pub rating_idiosyncrasy: f64,
    /// Rating: standard deviation of the noise ε.
    pub rating_noise: f64,
    /// Rating: shift for Critics (negative = harsher).
    pub critic_shift: f64,
    /// Social: `U_chat = chat_bias + feature_weight·Chatter` (needs an available contact).
    pub chat_bias: f64,
    /// Social: `U_post = post_bias + feature_weight·Poster`.
    pub post_bias: f64,
    /// Most lines in an offline dialogue (2..=8).
    pub chat_turns: u32,
    /// Which model answers: `heuristic` (the terms above, the default) or `calibrated` (fitted
    /// on real users by `recagent calibrate`, read from `calibration`; [`crate::calibration`]).
    pub model: OfflineModel,
    /// The calibration file of `model: calibrated` (relative paths from the config's folder).
    pub calibration: Option<String>,
    /// The calibrated model, read from `calibration` when the run is built (never configured).
    #[serde(skip)]
    pub loaded: Option<Arc<CalibratedModel>>,
}

/// `offline.model`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflineModel {
    /// The hand-set model of this module.
    #[default]
    Heuristic,
    /// The model fitted by `recagent calibrate` ([`crate::calibration`]).
    Calibrated,
}

impl Default for OfflineParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            recommender_bias: 1.0,
            social_bias: 0.0,
            nothing_bias: 0.0,
            feature_weight: 1.0,
            no_contacts_penalty: 3.0,
            affinity_weight: 3.0,
            idiosyncrasy_weight: 1.0,
            heard_weight: 2.0,
            heard_half_life_rounds: 3.0,
            satiation_weight: 1.5,
            next_bias: 0.5,
            next_page_decay: 0.3,
            leave_bias: 0.0,
            leave_step_weight: 0.5,
            search_bias: -0.5,
            explorer_search_bonus: 1.5,
            rating_intercept: 1.9,
            rating_affinity: 2.2,
            rating_idiosyncrasy: 0.6,
            rating_noise: 0.6,
            critic_shift: -0.7,
            chat_bias: 0.0,
            post_bias: 0.0,
            chat_turns: 4,
            model: OfflineModel::Heuristic,
            calibration: None,
            loaded: None,
        }
    }
}

impl OfflineParams {
    /// Checks ranges; returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(self.temperature > 0.0 && self.temperature <= 100.0) {
            return Err((
                "temperature".into(),
                format!("{} is out of range: allowed (0, 100]", self.temperature),
            ));
        }
        if !(self.heard_half_life_rounds > 0.0 && self.heard_half_life_rounds <= 1000.0) {
            return Err((
                "heard_half_life_rounds".into(),
                format!(
                    "{} is out of range: allowed (0, 1000]",
                    self.heard_half_life_rounds
                ),
            ));
        }
        if !(2..=8).contains(&self.chat_turns) {
            return Err((
                "chat_turns".into(),
                format!("{} is out of range: allowed 2..=8", self.chat_turns),
            ));
        }
        if self.model == OfflineModel::Calibrated && self.calibration.is_none() {
            return Err((
                "calibration".into(),
                "`model: calibrated` needs `calibration: <file>`, a file made by `recagent calibrate`".into(),
            ));
        }
        if !(self.rating_noise >= 0.0 && self.rating_noise <= 5.0) {
            return Err((
                "rating_noise".into(),
                format!("{} is out of range: allowed 0..=5", self.rating_noise),
            ));
        }
        Ok(())
    }
}

/// Samples an index from utilities with a softmax at temperature `tau` (max-subtracted for
/// numerical safety). `NEG_INFINITY` utilities are never chosen.
pub fn softmax_choice(utilities: &[f64], tau: f64, rng: &mut ChaCha8Rng) -> usize {
    let m = utilities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = utilities
        .iter()
        .map(|u| {
            if u.is_finite() {
                ((u - m) / tau).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = w.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    w.iter().rposition(|&v| v > 0.0).unwrap_or(0)
}

/// Affinity `a(u,i)` (see the module docs).
pub fn affinity(liked: crate::domain::GenreSet, item: crate::domain::GenreSet) -> f64 {
    let both = liked.intersect(item).len();
    if both == 0 || item.is_empty() {
        0.0
    } else {
        0.6 + 0.4 * f64::from(both) / f64::from(item.len())
    }
}

/// Idiosyncrasy `ζ(u,i)`: uniform, mean 0, variance 1, fixed per (seed, user, item).
pub fn idiosyncrasy(seed: u64, user: UserId, item: ItemId) -> f64 {
    (unit_hash(seed, Stream::Taste, &[u64::from(user.0), u64::from(item.0)]) - 0.5)
        * 2.0
        * 3f64.sqrt()
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; u1 in (0, 1] so the log is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The first word of a full name.
pub fn first_name(full: &str) -> &str {
    full.split_whitespace().next().unwrap_or(full)
}

/// A first-person opinion phrase for a 1..=5 rating (below 2 reads as 1).
pub fn opinion(rating: u8) -> &'static str {
    match rating {
        5 => "it was outstanding",
        4 => "I really liked it",
        3 => "it was okay",
        2 => "it was a bit disappointing",
        _ => "I did not like it at all",
    }
}

/// One of the agent's liked genres (lower case), drawn from `rng`; "popular" when none.
pub fn liked_genre(cat: &Catalog, a: &AgentView<'_>, rng: &mut ChaCha8Rng) -> String {
    let liked: Vec<usize> = a.taste.liked.iter().collect();
    if liked.is_empty() {
        return "popular".into();
    }
    let g = liked[rng.random_range(0..liked.len())];
    cat.genre_names()
        .get(g)
        .map_or_else(|| "popular".into(), |n| n.to_lowercase())
}

/// The latest rating the agent gave `item` (0 if never rated).
pub fn rating_of(agent: &AgentView<'_>, item: ItemId) -> u8 {
    agent
        .histories
        .watched
        .iter()
        .rev()
        .find(|w| w.0 == item)
        .map_or(0, |w| w.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GenreSet;

    #[test]
    fn affinity_values() {
        assert_eq!(affinity(GenreSet(0b01), GenreSet(0b10)), 0.0);
        assert!((affinity(GenreSet(0b01), GenreSet(0b01)) - 1.0).abs() < 1e-12);
        assert!((affinity(GenreSet(0b01), GenreSet(0b11)) - 0.8).abs() < 1e-12);
        assert!((affinity(GenreSet(0b001), GenreSet(0b111)) - (0.6 + 0.4 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn softmax_frequencies_match_probabilities() {
        // Utilities ln 1, ln 2, ln 7 at τ = 1 → probabilities 0.1, 0.2, 0.7.
        let u = [0.0, 2f64.ln(), 7f64.ln()];
        let mut rng = stream_rng(3, Stream::Behaviour, &[]);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[softmax_choice(&u, 1.0, &mut rng)] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            let f = f64::from(*c) / 100_000.0;
            assert!((f - p).abs() < 0.006, "{counts:?}");
        }
        // An impossible option is never chosen.
        let u = [f64::NEG_INFINITY, 0.0];
        assert!((0..1000).all(|_| softmax_choice(&u, 1.0, &mut rng) == 1));
    }

    #[test]
    fn idiosyncrasy_has_unit_variance() {
        let xs: Vec<f64> = (0..50_000)
            .map(|i| idiosyncrasy(9, UserId(i % 97), ItemId(i)))
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
        assert_eq!(
            idiosyncrasy(9, UserId(1), ItemId(2)),
            idiosyncrasy(9, UserId(1), ItemId(2))
        );
    }
}
