//! The `offline` behaviour backend: a seeded stochastic user model, no LLM, no network.
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

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    AgentView, Answer, Ask, BackendError, BehaviourBackend, Context, Feeling, PageAction,
    PostDraft, Request, SocialAction, Utterance,
};
use crate::catalog::Catalog;
use crate::components::{FeatureSet, TopAction};
use crate::ids::{ItemId, UserId};
use crate::rng::{stream_rng, unit_hash, Stream};
use crate::social::heard_signal;

/// Parameters of the offline model (`offline:` section of the config). Utilities are in logit
/// units; raising a weight makes its term matter more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineParams {
    /// Softmax temperature `τ` > 0; higher = more random choices.
    pub temperature: f64,
    /// Top level: `U_rec = recommender_bias + feature_weight·(Watcher + 0.5·Explorer)`.
    pub recommender_bias: f64,
    /// Top level: `U_social = social_bias + feature_weight·0.5·(Chatter + Poster) ± 0.5` (+0.5 when the
    /// agent has watched or heard of something or recalls a long-term memory, −0.5 otherwise) `− no_contacts_penalty` without contacts.
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
        if !(self.rating_noise >= 0.0 && self.rating_noise <= 5.0) {
            return Err((
                "rating_noise".into(),
                format!("{} is out of range: allowed 0..=5", self.rating_noise),
            ));
        }
        Ok(())
    }
}

/// The offline backend.
#[derive(Clone, Debug)]
pub struct OfflineBackend {
    /// Model parameters.
    pub params: OfflineParams,
    /// Answer batches on the rayon pool.
    pub parallel: bool,
}

impl BehaviourBackend for OfflineBackend {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn answer_batch(
        &self,
        ctx: &Context<'_>,
        batch: &[Request<'_>],
    ) -> Vec<Result<Answer, BackendError>> {
        if self.parallel && batch.len() > 256 {
            batch.par_iter().map(|r| Ok(self.answer(ctx, r))).collect()
        } else {
            batch.iter().map(|r| Ok(self.answer(ctx, r))).collect()
        }
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
pub fn affinity(liked: crate::catalog::GenreSet, item: crate::catalog::GenreSet) -> f64 {
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

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; u1 in (0, 1] so the log is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn first_name(full: &str) -> &str {
    full.split_whitespace().next().unwrap_or(full)
}

fn opinion(rating: u8) -> &'static str {
    match rating {
        5 => "it was outstanding",
        4 => "I really liked it",
        3 => "it was okay",
        2 => "it was a bit disappointing",
        _ => "I did not like it at all",
    }
}

/// Offline importance of an insight (1..=10).
pub const INSIGHT_IMPORTANCE: u8 = 7;

/// Offline importance (1..=10) of an observed event, after the original's rubric (spec §3.2):
/// entering a system or doing nothing 2; a page shown 4; a search 7 with a hit, else 4; a watch
/// `6 + |rating − 3|` (strong opinions are memorable); a chat 8 when it names an item, else 4; a
/// post sent or read 7 when it names an item, else 3.
pub fn event_importance(e: &crate::components::MemoryRecord) -> u8 {
    use crate::components::ObservationKind as K;
    let named = e.item.is_some();
    match e.kind {
        K::EnteredRecommender | K::EnteredSocial | K::DidNothing => 2,
        K::Shown => 4,
        K::Searched => {
            if named {
                7
            } else {
                4
            }
        }
        K::Watched => 6 + e.value.abs_diff(3).min(4),
        K::Chatted => {
            if named {
                8
            } else {
                4
            }
        }
        K::Posted | K::ReadPost => {
            if named {
                7
            } else {
                3
            }
        }
    }
}

/// One of the agent's liked genres (lower case), drawn from `rng`; "popular" when none.
fn liked_genre(cat: &Catalog, a: &AgentView<'_>, rng: &mut ChaCha8Rng) -> String {
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
fn rating_of(agent: &AgentView<'_>, item: ItemId) -> u8 {
    agent
        .histories
        .watched
        .iter()
        .rev()
        .find(|w| w.0 == item)
        .map_or(0, |w| w.1)
}

impl OfflineBackend {
    fn answer(&self, ctx: &Context<'_>, req: &Request<'_>) -> Answer {
        let mut rng = stream_rng(ctx.seed, Stream::Behaviour, &req.key.as_ids());
        let p = &self.params;
        let a = &req.agent;
        let f = a.profile.features;
        let fw = p.feature_weight;
        let bit = |b: u8| if f.has(b) { 1.0 } else { 0.0 };
        match &req.ask {
            Ask::TopLevel => {
                // Something to talk about: a watched or heard-of item, or a recalled memory.
                let has_topic = !a.histories.watched.is_empty()
                    || !a.histories.heard.is_empty()
                    || !a.memory.state.recalled.is_empty();
                let u = [
                    p.recommender_bias
                        + fw * (bit(FeatureSet::WATCHER) + 0.5 * bit(FeatureSet::EXPLORER)),
                    p.social_bias
                        + fw * 0.5 * (bit(FeatureSet::CHATTER) + bit(FeatureSet::POSTER))
                        + if has_topic { 0.5 } else { -0.5 }
                        - if a.contacts.0.is_empty() {
                            p.no_contacts_penalty
                        } else {
                            0.0
                        },
                    p.nothing_bias,
                ];
                let action = [
                    TopAction::Recommender,
                    TopAction::Social,
                    TopAction::Nothing,
                ][softmax_choice(&u, p.temperature, &mut rng)];
                Answer::Top(action)
            }
            Ask::Page {
                items,
                page,
                steps,
                can_search,
                ..
            } => {
                let cat = ctx.catalog;
                let watched_genres: Vec<_> = a
                    .histories
                    .watched
                    .iter()
                    .filter_map(|w| cat.by_id(w.0).map(|it| it.genres))
                    .collect();
                let mut u: Vec<f64> = items
                    .iter()
                    .map(|&id| {
                        let g = cat.by_id(id).map(|it| it.genres).unwrap_or_default();
                        let sat = if watched_genres.is_empty() {
                            0.0
                        } else {
                            watched_genres
                                .iter()
                                .filter(|w| !w.intersect(g).is_empty())
                                .count() as f64
                                / watched_genres.len() as f64
                        };
                        let heard = a.histories.heard_round(id).map_or(0.0, |r| {
                            heard_signal(r, ctx.clock.round, p.heard_half_life_rounds)
                        });
                        p.affinity_weight * affinity(a.taste.liked, g)
                            + p.idiosyncrasy_weight * idiosyncrasy(ctx.seed, a.id, id)
                            + p.heard_weight * heard
                            - p.satiation_weight * sat
                    })
                    .collect();
                let target = a
                    .histories
                    .heard
                    .iter()
                    .rev()
                    .map(|h| h.0)
                    .find(|h| !a.histories.has_watched(*h) && !items.contains(h));
                u.push(p.next_bias - p.next_page_decay * f64::from(*page));
                u.push(p.leave_bias + p.leave_step_weight * f64::from(*steps));
                u.push(match target {
                    Some(_) if *can_search => {
                        p.search_bias + p.explorer_search_bonus * bit(FeatureSet::EXPLORER)
                    }
                    _ => f64::NEG_INFINITY,
                });
                let n = items.len();
                let c = softmax_choice(&u, p.temperature, &mut rng);
                Answer::Page(if c < n {
                    PageAction::Watch(vec![c as u32])
                } else if c == n {
                    PageAction::Next
                } else if c == n + 1 {
                    PageAction::Leave
                } else {
                    let t = target
                        .and_then(|t| cat.by_id(t))
                        .map(|it| it.title.to_string());
                    t.map_or(PageAction::Leave, PageAction::Search)
                })
            }
            Ask::Feel { item } => {
                let cat = ctx.catalog;
                let it = cat.by_id(*item);
                let g = it.map(|i| i.genres).unwrap_or_default();
                let q = p.rating_intercept
                    + p.rating_affinity * affinity(a.taste.liked, g)
                    + p.rating_idiosyncrasy * idiosyncrasy(ctx.seed, a.id, *item)
                    + p.rating_noise * normal(&mut rng)
                    + p.critic_shift * bit(FeatureSet::CRITIC);
                let rating = q.round().clamp(1.0, 5.0) as u8;
                let title = it.map_or("it", |i| &i.title);
                let genre = cat
                    .index_of(*item)
                    .map_or("", |x| cat.first_genre(x))
                    .to_lowercase();
                Answer::Feel(Feeling {
                    rating,
                    text: feeling_text(rating, title, &genre, f.has(FeatureSet::CRITIC), &mut rng),
                })
            }
            Ask::Social { available } => {
                let u = [
                    if available.is_empty() {
                        f64::NEG_INFINITY
                    } else {
                        p.chat_bias + fw * bit(FeatureSet::CHATTER)
                    },
                    p.post_bias + fw * bit(FeatureSet::POSTER),
                ];
                if softmax_choice(&u, p.temperature, &mut rng) == 0 {
                    // P(partner j) ∝ closeness_j + 0.05 (a stranger, not in `contacts`, has
                    // closeness 0, so it is picked rarely but can be).
                    let w: Vec<f64> = available
                        .iter()
                        .map(|u| {
                            let c = a
                                .contacts
                                .0
                                .binary_search_by_key(u, |c| c.user)
                                .map_or(0.0, |k| a.contacts.0[k].closeness);
                            (f64::from(c) + 0.05).ln()
                        })
                        .collect();
                    let with = available[softmax_choice(&w, 1.0, &mut rng)];
                    // Length among RecAgent's 0.5 / 1 / 2 h: U_h = feature_weight·Chatter·log2(h),
                    // so Chatters prefer long chats and others pick uniformly.
                    const MINUTES: [u32; 3] = [30, 60, 120];
                    let uh: Vec<f64> = MINUTES
                        .iter()
                        .map(|&m| fw * bit(FeatureSet::CHATTER) * (f64::from(m) / 60.0).log2())
                        .collect();
                    let minutes = MINUTES[softmax_choice(&uh, p.temperature, &mut rng)];
                    Answer::Social(SocialAction::Chat { with, minutes })
                } else {
                    Answer::Social(SocialAction::Post)
                }
            }
            Ask::Chat { partner, max_turns } => {
                Answer::Chat(self.dialogue(ctx.catalog, a, partner, *max_turns))
            }
            Ask::Post => Answer::Post(post_text(ctx.catalog, a)),
            Ask::Compress { observations } => Answer::Text(observations.join(" ")),
            Ask::Importance { event, .. } => {
                Answer::Importance(event.map_or(INSIGHT_IMPORTANCE, event_importance))
            }
            Ask::Insight { .. } => {
                let g = liked_genre(ctx.catalog, a, &mut rng);
                Answer::Text(format!(
                    "{} keeps coming back to {g} movies and remembers them well.",
                    first_name(&a.profile.name)
                ))
            }
            Ask::ReflectTopic { .. } => Answer::Topics(vec![format!(
                "What kind of movies does {} enjoy most?",
                first_name(&a.profile.name)
            )]),
            Ask::ReflectInsights { statements, .. } => {
                let g = liked_genre(ctx.catalog, a, &mut rng);
                Answer::Insights(vec![super::Insight {
                    text: format!(
                        "{} seems to prefer {g} movies over others.",
                        first_name(&a.profile.name)
                    ),
                    cites: statements.iter().take(2).map(|s| s.0).collect(),
                }])
            }
        }
    }

    fn dialogue(
        &self,
        cat: &Catalog,
        a: &AgentView<'_>,
        b: &AgentView<'_>,
        max_turns: u32,
    ) -> Vec<Utterance> {
        let turns = max_turns.min(self.params.chat_turns).max(1) as usize;
        let title = |id: ItemId| {
            cat.by_id(id)
                .map_or_else(|| "that movie".to_string(), |i| i.title.to_string())
        };
        let a_watched = a.histories.last_watched().map(|w| w.0);
        let a_heard = a
            .histories
            .heard
            .iter()
            .rev()
            .map(|h| h.0)
            .find(|h| !a.histories.has_watched(*h));
        let b_watched = b
            .histories
            .watched
            .iter()
            .rev()
            .map(|w| w.0)
            .find(|w| Some(*w) != a_watched);
        let mut lines = Vec::with_capacity(turns);
        let mut say = |speaker: UserId, text: String, mentions: Vec<ItemId>| {
            lines.push(Utterance {
                speaker,
                text,
                mentions,
            })
        };
        match (a_watched, a_heard) {
            (Some(x), _) => say(
                a.id,
                format!(
                    "Hi {}! I recently watched <{}> and {}. Have you seen anything good lately?",
                    first_name(&b.profile.name),
                    title(x),
                    opinion(rating_of(a, x).max(1))
                ),
                vec![x],
            ),
            (None, Some(h)) => say(
                a.id,
                format!(
                    "Hi {}! Have you heard about <{}>? People keep talking about it.",
                    first_name(&b.profile.name),
                    title(h)
                ),
                vec![h],
            ),
            (None, None) => say(
                a.id,
                format!(
                    "Hi {}! I am looking for a good movie to watch. Any suggestions?",
                    first_name(&b.profile.name)
                ),
                vec![],
            ),
        }
        match b_watched {
            _ if turns < 2 => {}
            Some(y) => say(
                b.id,
                format!(
                    "I watched <{}> and {}. You might like it too.",
                    title(y),
                    opinion(rating_of(b, y).max(1))
                ),
                vec![y],
            ),
            None => say(
                b.id,
                "Not much lately, but I would like to hear more about it.".to_string(),
                vec![],
            ),
        }
        if turns >= 3 {
            match b_watched {
                Some(y) => say(
                    a.id,
                    format!("Thanks, I will put <{}> on my list!", title(y)),
                    vec![y],
                ),
                None => say(
                    a.id,
                    "Let's watch something together soon.".to_string(),
                    vec![],
                ),
            }
        }
        if turns >= 4 {
            say(b.id, "Sounds good, talk soon!".to_string(), vec![]);
        }
        lines
    }
}

fn feeling_text(
    rating: u8,
    title: &str,
    genre: &str,
    critic: bool,
    rng: &mut ChaCha8Rng,
) -> String {
    let g = if genre.is_empty() {
        "movie".to_string()
    } else {
        format!("{genre} film")
    };
    let options: [String; 2] = match rating {
        5 => [
            format!("I loved <{title}>; a {g} that stayed with me long after it ended."),
            format!("<{title}> was wonderful, one of the best {g}s I have seen in a while."),
        ],
        4 => [
            format!("<{title}> was really enjoyable; I liked it as a {g}."),
            format!("I had a good time with <{title}>, a solid {g}."),
        ],
        3 => [
            format!("<{title}> was fine, a decent {g} but nothing I will remember for long."),
            format!("I found <{title}> okay; some parts worked, others dragged."),
        ],
        2 => [
            format!("I was disappointed by <{title}>; as a {g} it felt flat."),
            format!("<{title}> did not really work for me, it was slow and predictable."),
        ],
        _ => [
            format!("I did not enjoy <{title}> at all; it was a waste of my evening."),
            format!("<{title}> was a poor {g}, I almost stopped watching."),
        ],
    };
    let mut s = options[rng.random_range(0..2)].clone();
    if critic && rating <= 3 {
        let _ = write!(s, " The recommender should do better.");
    }
    s
}

fn post_text(cat: &Catalog, a: &AgentView<'_>) -> PostDraft {
    if let Some((x, r)) = a.histories.last_watched() {
        let t = cat.by_id(x).map_or("a movie", |i| &i.title);
        let text = if r > 0 {
            format!("Just watched <{t}>: {r}/5, {}.", opinion(r))
        } else {
            format!("Just watched <{t}>. Has anyone else seen it?")
        };
        return PostDraft {
            text,
            mentions: vec![x],
        };
    }
    if let Some(&(h, _)) = a.histories.heard.last() {
        let t = cat.by_id(h).map_or("a movie", |i| &i.title);
        return PostDraft {
            text: format!("Has anyone seen <{t}>? I keep hearing about it."),
            mentions: vec![h],
        };
    }
    PostDraft {
        text: "Looking for a good movie to watch tonight. Any suggestions?".into(),
        mentions: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::GenreSet;
    use crate::rng::stream_rng;

    #[test]
    fn event_importance_follows_the_rubric_and_the_gate() {
        use crate::components::{MemoryRecord, ObservationKind as K};
        let ev = |kind, item: Option<u32>, value| MemoryRecord {
            round: 1,
            item: item.map(ItemId),
            other: None,
            kind,
            value,
            text: None,
        };
        let p = crate::memory::MemoryParams::default();
        let cases = [
            (ev(K::EnteredRecommender, None, 0), 2, false),
            (ev(K::Shown, Some(1), 5), 4, false),
            (ev(K::Watched, Some(1), 3), 6, false),
            (ev(K::Watched, Some(1), 4), 7, true),
            (ev(K::Watched, Some(1), 1), 8, true),
            (ev(K::Chatted, None, 0), 4, false),
            (ev(K::Chatted, Some(2), 0), 8, true),
            (ev(K::ReadPost, Some(2), 0), 7, true),
            (ev(K::Searched, None, 0), 4, false),
        ];
        for (e, score, kept) in cases {
            assert_eq!(event_importance(&e), score, "{e:?}");
            // 7 -> 0.63 passes the 0.62 gate, 6 -> 0.54 does not.
            assert_eq!(p.importance_of(score) > p.importance_gate, kept, "{e:?}");
        }
    }

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

    /// The heard-of term: P(watch i) follows the softmax with `heard_weight × 0.5^(age/half-life)`
    /// added to U_i, so hearing raises the choice probability, and less so as it ages.
    #[test]
    fn heard_signal_raises_watch_probability_and_decays() {
        use crate::behaviour::{Phase, RequestKey};
        use crate::clock::{Interval, SimClock};
        use crate::components::{Histories, Memory, Profile, Relationships, Taste};
        use crate::io::data::ItemRecord;
        let cat = Catalog::new(
            (0..2)
                .map(|i| ItemRecord {
                    id: i,
                    title: format!("T{i}"),
                    genres: vec!["Drama".into()],
                    description: String::new(),
                })
                .collect(),
        )
        .unwrap();
        let profile = Profile {
            name: "A".into(),
            gender: "".into(),
            age: 30,
            traits: "".into(),
            status: "".into(),
            interest: "".into(),
            features: FeatureSet(0),
            observations: "".into(),
        };
        let taste = Taste::default();
        let (contacts, memory) = (Relationships::default(), Memory::default());
        let backend = OfflineBackend {
            params: OfflineParams::default(),
            parallel: false,
        };
        let p = &backend.params;
        let start = chrono::NaiveDate::from_ymd_opt(2023, 6, 1)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap();
        let mut clock = SimClock::new(start, Interval::Seconds(3600));
        clock.round = 7;
        let items = [ItemId(0), ItemId(1)];
        let n = 40_000u16;
        // Heard of item 0: never, in round 7 (h = 1), in round 4 (h = 0.5 with half-life 3).
        for (heard, h) in [(None, 0.0), (Some(7), 1.0), (Some(4), 0.5)] {
            let histories = Histories {
                watched: vec![],
                heard: heard.map(|r| (ItemId(0), r)).into_iter().collect(),
            };
            let agent = AgentView {
                id: UserId(3),
                profile: &profile,
                taste: &taste,
                histories: &histories,
                contacts: &contacts,
                memory: &memory,
            };
            let ctx = Context {
                catalog: &cat,
                clock: &clock,
                seed: 5,
            };
            let mut hits = 0u32;
            for step in 0..n {
                let req = Request {
                    key: RequestKey {
                        round: 7,
                        phase: Phase::Watch,
                        user: UserId(3),
                        step,
                    },
                    agent,
                    ask: Ask::Page {
                        items: &items,
                        page: 0,
                        steps: 0,
                        search: None,
                        can_search: false,
                    },
                };
                if backend.answer(&ctx, &req) == Answer::Page(PageAction::Watch(vec![0])) {
                    hits += 1;
                }
            }
            // Softmax by hand (τ = 1; affinity 0 without liked genres; no satiation).
            let u0 =
                p.idiosyncrasy_weight * idiosyncrasy(5, UserId(3), ItemId(0)) + p.heard_weight * h;
            let u1 = p.idiosyncrasy_weight * idiosyncrasy(5, UserId(3), ItemId(1));
            let (un, ul) = (p.next_bias, p.leave_bias);
            let z = u0.exp() + u1.exp() + un.exp() + ul.exp();
            let want = u0.exp() / z;
            let got = f64::from(hits) / f64::from(n);
            let sd = (want * (1.0 - want) / f64::from(n)).sqrt();
            assert!((got - want).abs() < 4.0 * sd, "h = {h}: {got} vs {want}");
        }
    }
}
