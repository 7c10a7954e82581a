//! The fidelity protocol of Agent4Rec (Zhang et al., "On Generative Agents in Recommendation",
//! SIGIR 2024, section 4.1 and Table 1): an agent built from a real user's training data is
//! shown a shuffled list of `k` items the user really interacted with in the held-out test split
//! and `m·k` items the user never interacted with, `k = min(#test items, ⌊20 / (m + 1)⌋)`,
//! and its choices are scored per user with precision, recall, accuracy and F1, averaged over
//! users.
//!
//! What differs here, so what is measured is what a simulation runs:
//! - The agent decides through the simulation's own page decision ([`Page`]), through whatever
//!   behaviour backend it is given. The list is shown in pages of `page_size`, as the simulation
//!   shows pages: each decision sees the current page of what is left; a watch removes that item
//!   and the agent keeps browsing, `NEXT` turns the page, `LEAVE` (or the end of the list) ends
//!   the session. The items watched are its "yes" answers.
//! - Ratings. The shared data holds real ratings only of *train* items (see [`super::data`]), so
//!   the rating check holds out a share of each user's real ratings ([`RATING_HOLDOUT`], at
//!   least one of a user's two or more ratings, chosen with the seed), never shows them (nor
//!   those items) to the agent, asks the agent's rating through the simulation's feel decision
//!   ([`Feel`]), and scores RMSE and MAE against them beside two baselines fitted on the
//!   remaining ratings: the user's mean, and the user's mean plus a damped item bias
//!   `b_i = Σ_u (r_ui − μ_u) / (|R(i)| + λ)`, λ = [`ITEM_BIAS_DAMPING`] (Koren, "Factor in the
//!   neighbors", TKDD 2010, eq. 2).
//!
//! Leakage: an agent is built from [`Training`] only, a type that holds no test, valid or
//! held-out item and no held-out rating; the baselines are fitted from [`Training`] too.

use std::collections::BTreeSet;

use rand::seq::{IndexedRandom, SliceRandom};

use super::data::{age_years, Person, RealUser};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::components::{Histories, Memory, Profile, Relationships, Taste};
use crate::decision::feel::Feel;
use crate::decision::page::{Page, PageAction, PageAsk};
use crate::decision::{AgentView, Context, Request};
use crate::domain::{FeatureSet, GenreSet};
use crate::ids::{ItemId, UserId};
use crate::rng::{stream_rng, Stream};

/// Share of a user's real ratings held out for the rating check.
pub const RATING_HOLDOUT: f64 = 0.2;
/// λ of the damped item bias of the second rating baseline (in ratings).
pub const ITEM_BIAS_DAMPING: f64 = 5.0;
/// List length the protocol aims at: `k = min(#test, ⌊LIST / (m + 1)⌋)`.
pub const LIST: u32 = 20;

/// What an agent may be built from: one user's training data, and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    /// User id.
    pub id: u32,
    /// Demographics and tiers.
    pub person: Person,
    /// Train split items.
    pub train: Vec<u32>,
    /// Real ratings not held out.
    pub ratings: Vec<(u32, u8)>,
}

/// What a user's agent is scored against.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldOut {
    /// Test split items.
    pub test: Vec<u32>,
    /// Every item the user interacted with in any split or rated (never a negative).
    pub interacted: BTreeSet<u32>,
    /// Real ratings held out (item, 1..=5).
    pub ratings: Vec<(u32, u8)>,
}

/// Splits a user into what an agent may see and what it is scored against: the held-out
/// ratings are `round(RATING_HOLDOUT · n)` of its `n` ratings (at least 1 when `n >= 2`, none
/// when `n < 2`), drawn with `seed`; those items leave the training ratings too.
pub fn split_user(u: &RealUser, seed: u64) -> (Training, HeldOut) {
    let n = u.ratings.len();
    let hold = if n < 2 {
        0
    } else {
        ((RATING_HOLDOUT * n as f64).round() as usize).clamp(1, n - 1)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream_rng(
        seed,
        Stream::Fidelity,
        &[u64::from(u.id), 0],
    ));
    let held: BTreeSet<usize> = order[..hold].iter().copied().collect();
    let (mut kept, mut out) = (Vec::new(), Vec::new());
    for (i, r) in u.ratings.iter().enumerate() {
        if held.contains(&i) {
            out.push(*r);
        } else {
            kept.push(*r);
        }
    }
    let interacted: BTreeSet<u32> = u
        .train
        .iter()
        .chain(&u.valid)
        .chain(&u.test)
        .copied()
        .chain(u.ratings.iter().map(|r| r.0))
        .collect();
    (
        Training {
            id: u.id,
            person: u.person.clone(),
            train: u.train.clone(),
            ratings: kept,
        },
        HeldOut {
            test: u.test.clone(),
            interacted,
            ratings: out,
        },
    )
}

/// `k` for ratio `1:m` and a user with `test` held-out items: `min(test, ⌊LIST / (m + 1)⌋)`.
pub fn positives(test: usize, m: u32) -> usize {
    test.min((LIST / (m + 1)) as usize)
}

/// One user's list at ratio `1:m`: items in the order shown and which are positives.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Items, shuffled.
    pub items: Vec<u32>,
    /// `true` for the held-out positives.
    pub positive: Vec<bool>,
}

/// The list for `user` at `1:m` ([module docs](self)): `k` positives drawn from `held.test`,
/// `m·k` negatives drawn uniformly from the `n_items` items outside `held.interacted` (all of
/// them when fewer remain), shuffled; every draw from the stream `(seed, user, m)`.
pub fn sample(user: u32, held: &HeldOut, n_items: u32, m: u32, seed: u64) -> Sample {
    let mut rng = stream_rng(seed, Stream::Fidelity, &[u64::from(user), u64::from(m) + 1]);
    let k = positives(held.test.len(), m);
    let mut pos = held.test.clone();
    pos.shuffle(&mut rng);
    pos.truncate(k);
    let pool: Vec<u32> = (0..n_items)
        .filter(|i| !held.interacted.contains(i))
        .collect();
    let want = (m as usize * k).min(pool.len());
    let neg: Vec<u32> = pool.choose_multiple(&mut rng, want).copied().collect();
    let mut items: Vec<(u32, bool)> = pos
        .into_iter()
        .map(|i| (i, true))
        .chain(neg.into_iter().map(|i| (i, false)))
        .collect();
    items.shuffle(&mut rng);
    Sample {
        items: items.iter().map(|x| x.0).collect(),
        positive: items.iter().map(|x| x.1).collect(),
    }
}

/// An agent's components, built from [`Training`] only.
#[derive(Clone, Debug)]
pub struct BuiltAgent {
    /// Id.
    pub id: UserId,
    /// Profile: `User <id>`, gender, the age bucket's middle, occupation, the tiers as traits,
    /// the liked genres as interests; features `Watcher` for activity tier 3, `Explorer` for
    /// diversity tier 3, `Critic` for a mean training rating below [`CRITIC_MEAN`].
    pub profile: Profile,
    /// The [`LIKED_GENRES`] genres most frequent among the train split's items (ties by the
    /// catalogue's genre order).
    pub taste: Taste,
    /// Watched: the train split's unrated items (rating 0), then the training ratings, in file
    /// order.
    pub histories: Histories,
    /// No contacts.
    pub contacts: Relationships,
    /// Short-term memory: one sentence per training rating, the last [`SEEDED_MEMORIES`]
    /// (`User 7 watched <Heat (1995)> and rated it 4 out of 5.`), which an LLM prompt shows
    /// among the agent's memories; the offline model reads none.
    pub memory: Memory,
}

impl BuiltAgent {
    /// The view a decision reads.
    pub fn view(&self) -> AgentView<'_> {
        AgentView {
            id: self.id,
            profile: &self.profile,
            taste: &self.taste,
            histories: &self.histories,
            contacts: &self.contacts,
            memory: &self.memory,
        }
    }
}

/// Training ratings written into an agent's short-term memory.
pub const SEEDED_MEMORIES: usize = 10;

/// Genres in an agent's taste.
pub const LIKED_GENRES: usize = 3;
/// A user whose mean training rating is below this is a `Critic`.
pub const CRITIC_MEAN: f64 = 3.5;

/// Builds the agent of `t` over `catalog`.
pub fn build_agent(t: &Training, catalog: &Catalog) -> BuiltAgent {
    let names = catalog.genre_names();
    let mut counts = vec![0u32; names.len()];
    for &i in &t.train {
        if let Some(it) = catalog.by_id(ItemId(i)) {
            for g in it.genres.iter() {
                if let Some(c) = counts.get_mut(g) {
                    *c += 1;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..names.len()).filter(|&g| counts[g] > 0).collect();
    order.sort_by_key(|&g| (std::cmp::Reverse(counts[g]), g));
    order.truncate(LIKED_GENRES);
    let liked = GenreSet(order.iter().fold(0, |a, &g| a | (1 << g)));
    let interest: Vec<&str> = order.iter().map(|&g| names[g].as_str()).collect();
    let mean = mean_rating(&t.ratings);
    let mut features = 0u8;
    let [activity, diversity, conformity] = t.person.tiers.unwrap_or([2, 2, 2]);
    if activity == 3 {
        features |= FeatureSet::WATCHER;
    }
    if diversity == 3 {
        features |= FeatureSet::EXPLORER;
    }
    if mean.is_some_and(|m| m < CRITIC_MEAN) {
        features |= FeatureSet::CRITIC;
    }
    let traits = format!(
        "activity tier {activity} of 3, diversity tier {diversity} of 3, conformity tier {conformity} of 3"
    );
    BuiltAgent {
        id: UserId(t.id),
        profile: Profile {
            name: format!("User {}", t.id).into(),
            gender: t.person.gender.as_str().into(),
            age: age_years(&t.person.age).unwrap_or(30),
            traits: traits.into(),
            status: t.person.occupation.as_str().into(),
            interest: interest.join(", ").into(),
            features: FeatureSet(features),
            observations: "".into(),
        },
        taste: Taste { liked },
        histories: Histories {
            watched: watched_history(t),
            heard: Vec::new(),
        },
        contacts: Relationships::default(),
        memory: seeded_memory(t, catalog),
    }
}

/// The train split's items the user did not rate (rating 0, "watched, not rated"), in file
/// order, then the training ratings in file order; no item twice.
fn watched_history(t: &Training) -> Vec<(ItemId, u8)> {
    let rated: BTreeSet<u32> = t.ratings.iter().map(|r| r.0).collect();
    let mut seen = BTreeSet::new();
    t.train
        .iter()
        .filter(|i| !rated.contains(i))
        .map(|&i| (i, 0))
        .chain(t.ratings.iter().copied())
        .filter(|(i, _)| seen.insert(*i))
        .map(|(i, r)| (ItemId(i), r))
        .collect()
}

fn seeded_memory(t: &Training, catalog: &Catalog) -> Memory {
    let from = t.ratings.len().saturating_sub(SEEDED_MEMORIES);
    let stm = t.ratings[from..]
        .iter()
        .map(|&(i, r)| {
            let title = catalog.by_id(ItemId(i)).map_or("?", |it| &it.title);
            crate::memory::StmEntry {
                text: format!("User {} watched <{title}> and rated it {r} out of 5.", t.id).into(),
                importance: 0.5,
                emb: Default::default(),
                enhancers: Vec::new(),
            }
        })
        .collect();
    Memory {
        state: crate::memory::MemoryState {
            stm,
            ..Default::default()
        },
        observed: Vec::new(),
    }
}

fn mean_rating(r: &[(u32, u8)]) -> Option<f64> {
    (!r.is_empty()).then(|| r.iter().map(|x| f64::from(x.1)).sum::<f64>() / r.len() as f64)
}

/// One browsing session over a list.
struct Session {
    remaining: Vec<u32>,
    page: usize,
    steps: u32,
    watched: Vec<u32>,
    open: bool,
}

/// Runs one session per agent over its list (the same index in `lists`), in pages of
/// `page_size`, through `behaviour` ([module docs](self)); all agents decide in one batch per
/// step, in the order given (ascending ids), keyed `(round, user, step)`. Returns the items each
/// agent watched.
pub fn browse(
    behaviour: &Behaviour,
    ctx: &Context<'_>,
    stats: &mut BehaviourStats,
    agents: &[&BuiltAgent],
    lists: &[Vec<u32>],
    page_size: usize,
    round: u32,
) -> Vec<Vec<u32>> {
    let ps = page_size.max(1);
    let mut sessions: Vec<Session> = lists
        .iter()
        .map(|l| Session {
            remaining: l.clone(),
            page: 0,
            steps: 0,
            watched: Vec::new(),
            open: !l.is_empty(),
        })
        .collect();
    loop {
        let open: Vec<usize> = (0..sessions.len()).filter(|&i| sessions[i].open).collect();
        if open.is_empty() {
            break;
        }
        let pages: Vec<Vec<ItemId>> = open
            .iter()
            .map(|&i| {
                let s = &sessions[i];
                let from = (s.page * ps).min(s.remaining.len());
                let to = (from + ps).min(s.remaining.len());
                s.remaining[from..to].iter().map(|&x| ItemId(x)).collect()
            })
            .collect();
        let requests: Vec<Request<'_, Page>> = open
            .iter()
            .zip(&pages)
            .map(|(&i, page)| {
                let s = &sessions[i];
                let ask = PageAsk {
                    items: std::borrow::Cow::Borrowed(page),
                    page: s.page as u32,
                    steps: s.steps,
                    search: None,
                    can_search: false,
                };
                Request::new(round, s.steps as u16, agents[i].view(), ask)
            })
            .collect();
        let answers = behaviour.ask::<Page>(ctx, &requests, stats);
        for ((&i, page), a) in open.iter().zip(&pages).zip(answers) {
            let s = &mut sessions[i];
            s.steps += 1;
            match a {
                PageAction::Watch(slots) => {
                    let picked: BTreeSet<u32> = slots
                        .iter()
                        .filter_map(|&k| page.get(k as usize).map(|x| x.0))
                        .collect();
                    s.watched.extend(picked.iter().copied());
                    s.remaining.retain(|x| !picked.contains(x));
                }
                PageAction::Next => s.page += 1,
                PageAction::Leave | PageAction::Search(_) => s.open = false,
            }
            // Past the end of the list, or a step budget no honest session needs.
            if s.page * ps >= s.remaining.len() || s.steps as usize > 2 * lists[i].len() + 2 {
                s.open = false;
            }
        }
    }
    sessions.into_iter().map(|s| s.watched).collect()
}

/// The ratings `agents` give the items of `items` (the same index), through the feel
/// decision, keyed `(round, user, position)`.
pub fn rate(
    behaviour: &Behaviour,
    ctx: &Context<'_>,
    stats: &mut BehaviourStats,
    agents: &[&BuiltAgent],
    items: &[Vec<u32>],
    round: u32,
) -> Vec<Vec<u8>> {
    let mut requests = Vec::new();
    for (a, list) in agents.iter().zip(items) {
        for (n, &i) in list.iter().enumerate() {
            requests.push(Request::<Feel>::new(round, n as u16, a.view(), ItemId(i)));
        }
    }
    let answers = behaviour.ask::<Feel>(ctx, &requests, stats);
    let mut out: Vec<Vec<u8>> = items.iter().map(|l| Vec::with_capacity(l.len())).collect();
    let mut at = 0;
    for (n, list) in items.iter().enumerate() {
        for _ in list {
            out[n].push(answers[at].rating);
            at += 1;
        }
    }
    debug_assert_eq!(at, answers.len());
    out
}

/// Counts of one user's list: true and false positives and negatives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Positives watched.
    pub tp: u32,
    /// Negatives watched.
    pub fp: u32,
    /// Positives not watched.
    pub fn_: u32,
    /// Negatives not watched.
    pub tn: u32,
}

impl Confusion {
    /// The counts of `sample` given what was `watched`.
    pub fn of(sample: &Sample, watched: &[u32]) -> Self {
        let w: BTreeSet<u32> = watched.iter().copied().collect();
        let mut c = Self::default();
        for (i, &p) in sample.items.iter().zip(&sample.positive) {
            match (p, w.contains(i)) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    /// `tp / (tp + fp)`; 0 when nothing was watched.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// `tp / (tp + fn)`; 0 without positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// `(tp + tn) / all`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.fn_ + self.tn)
    }
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

/// The two rating baselines, fitted on training ratings only.
#[derive(Clone, Debug, PartialEq)]
pub struct Baselines {
    /// Mean of every training rating (for users without one).
    pub global: f64,
    /// Each user's mean training rating, by user id.
    pub user_mean: std::collections::BTreeMap<u32, f64>,
    /// Damped item bias, by item id (items with training ratings).
    pub item_bias: std::collections::BTreeMap<u32, f64>,
}

impl Baselines {
    /// Fits both baselines on `training` ([module docs](self)).
    pub fn fit(training: &[Training]) -> Self {
        let all: Vec<f64> = training
            .iter()
            .flat_map(|t| t.ratings.iter().map(|r| f64::from(r.1)))
            .collect();
        let global = if all.is_empty() {
            3.0
        } else {
            all.iter().sum::<f64>() / all.len() as f64
        };
        let user_mean: std::collections::BTreeMap<u32, f64> = training
            .iter()
            .filter_map(|t| mean_rating(&t.ratings).map(|m| (t.id, m)))
            .collect();
        let mut sums: std::collections::BTreeMap<u32, (f64, u32)> = Default::default();
        for t in training {
            let mu = user_mean.get(&t.id).copied().unwrap_or(global);
            for &(i, r) in &t.ratings {
                let e = sums.entry(i).or_insert((0.0, 0));
                e.0 += f64::from(r) - mu;
                e.1 += 1;
            }
        }
        let item_bias = sums
            .into_iter()
            .map(|(i, (s, n))| (i, s / (f64::from(n) + ITEM_BIAS_DAMPING)))
            .collect();
        Self {
            global,
            user_mean,
            item_bias,
        }
    }

    /// The user-mean prediction.
    pub fn user(&self, u: u32) -> f64 {
        self.user_mean.get(&u).copied().unwrap_or(self.global)
    }

    /// The user-mean-plus-item-bias prediction, clamped to 1..=5.
    pub fn user_item(&self, u: u32, i: u32) -> f64 {
        (self.user(u) + self.item_bias.get(&i).copied().unwrap_or(0.0)).clamp(1.0, 5.0)
    }
}

/// Root-mean-square and mean absolute error of `pred` against `real`; `(NaN, NaN)` when empty.
pub fn rmse_mae(pairs: impl IntoIterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut se, mut ae, mut n) = (0.0, 0.0, 0u64);
    for (p, r) in pairs {
        se += (p - r) * (p - r);
        ae += (p - r).abs();
        n += 1;
    }
    if n == 0 {
        (f64::NAN, f64::NAN)
    } else {
        ((se / n as f64).sqrt(), ae / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::scripted::ScriptedBackend;
    use crate::clock::SimClock;
    use crate::config::SimConfig;
    use crate::decision::batch::Script;
    use crate::io::data::ItemRecord;

    fn catalog(n: u32) -> Catalog {
        let genres = ["Comedy", "Drama", "Horror", "Action"];
        Catalog::new(
            (0..n)
                .map(|i| ItemRecord {
                    id: i,
                    title: format!("Movie {i} (2000)"),
                    genres: vec![genres[(i % 4) as usize].to_string()],
                    description: String::new(),
                })
                .collect(),
        )
        .unwrap()
    }

    fn user() -> RealUser {
        RealUser {
            id: 7,
            person: Person {
                gender: "Female".into(),
                age: "25-34".into(),
                occupation: "writer".into(),
                tiers: Some([3, 1, 2]),
            },
            train: vec![0, 4, 8, 1],
            valid: vec![12, 13],
            test: vec![20, 21, 22, 23, 24, 25, 26],
            ratings: vec![(0, 5), (4, 4), (8, 2), (1, 3), (16, 4)],
        }
    }

    #[test]
    fn lists_follow_the_formula_and_never_hold_an_interacted_negative() {
        let (_, held) = split_user(&user(), 1);
        // 7 test items: k = min(7, ⌊20/(m+1)⌋) = 7, 6, 5, 2 for m = 1, 2, 3, 9.
        for (m, k) in [(1, 7), (2, 6), (3, 5), (9, 2)] {
            assert_eq!(positives(held.test.len(), m), k);
            let s = sample(7, &held, 100, m, 1);
            assert_eq!(s.items.len(), k * (m as usize + 1), "1:{m}");
            let pos: Vec<u32> = s
                .items
                .iter()
                .zip(&s.positive)
                .filter(|x| *x.1)
                .map(|x| *x.0)
                .collect();
            assert_eq!(pos.len(), k);
            assert!(pos.iter().all(|i| held.test.contains(i)));
            let neg: BTreeSet<u32> = s
                .items
                .iter()
                .zip(&s.positive)
                .filter(|x| !*x.1)
                .map(|x| *x.0)
                .collect();
            assert_eq!(neg.len(), m as usize * k, "negatives are distinct");
            assert!(neg.iter().all(|i| !held.interacted.contains(i) && *i < 100));
            assert_eq!(s, sample(7, &held, 100, m, 1), "fixed seed, fixed list");
        }
        assert_ne!(sample(7, &held, 100, 9, 1), sample(7, &held, 100, 9, 2));
        // Items 0..26: 13 of them interacted (0 1 4 8 12 13 16 20..=25), so the 13 others are
        // all the negatives there are at 1:9 (k = 2 wants 18).
        let s = sample(7, &held, 26, 9, 1);
        assert_eq!(s.items.len(), 2 + 13);
    }

    #[test]
    fn held_out_ratings_and_items_never_reach_the_agent_or_the_baselines() {
        let u = user();
        let (t, held) = split_user(&u, 3);
        // 5 ratings: round(0.2 · 5) = 1 held out.
        assert_eq!(held.ratings.len(), 1);
        assert_eq!(t.ratings.len(), 4);
        let cat = catalog(40);
        let agent = build_agent(&t, &cat);
        // Change every held-out thing: other test and valid items, other held-out rating
        // values. What the agent and the baselines are built from must not change.
        let mut v = u.clone();
        v.test = vec![30, 31];
        v.valid = vec![33];
        for r in &mut v.ratings {
            if held.ratings.iter().any(|h| h.0 == r.0) {
                r.1 = if r.1 == 1 { 5 } else { 1 };
            }
        }
        let (t2, held2) = split_user(&v, 3);
        assert_eq!(t, t2);
        assert_ne!(held, held2);
        let agent2 = build_agent(&t2, &cat);
        assert_eq!(agent.histories.watched, agent2.histories.watched);
        assert_eq!(agent.taste, agent2.taste);
        assert_eq!(&*agent.profile.interest, &*agent2.profile.interest);
        assert_eq!(
            Baselines::fit(std::slice::from_ref(&t)),
            Baselines::fit(&[t2])
        );
        let watched: Vec<u32> = agent.histories.watched.iter().map(|w| w.0 .0).collect();
        for (i, _) in &held.ratings {
            // A held-out rating's item may be in the history only as a train interaction,
            // "watched, not rated" (rating 0): the rating itself never reaches the agent.
            for w in agent.histories.watched.iter().filter(|w| w.0 .0 == *i) {
                assert_eq!(w.1, 0, "a held-out rating reached the history");
                assert!(t.train.contains(i));
            }
        }
        for i in &held.test {
            assert!(!watched.contains(i) && !t.train.contains(i));
        }
    }

    #[test]
    fn agents_take_their_taste_tiers_and_ratings_from_training() {
        let (t, _) = split_user(&user(), 3);
        let cat = catalog(40);
        let a = build_agent(&t, &cat);
        // Train items 0, 4, 8 are Comedy (i % 4 == 0), 1 is Drama: Comedy then Drama.
        assert_eq!(&*a.profile.interest, "Comedy, Drama");
        assert_eq!(a.taste.liked, cat.genre_set(&["Comedy", "Drama"]));
        assert_eq!(a.profile.age, 30);
        assert!(
            a.profile.features.has(FeatureSet::WATCHER),
            "activity tier 3"
        );
        assert!(
            !a.profile.features.has(FeatureSet::EXPLORER),
            "diversity tier 1"
        );
        // The train items without a kept rating (rating 0), then the 4 kept ratings.
        let mut want: Vec<(ItemId, u8)> = t
            .train
            .iter()
            .filter(|i| !t.ratings.iter().any(|r| r.0 == **i))
            .map(|&i| (ItemId(i), 0))
            .collect();
        want.extend(t.ratings.iter().map(|&(i, r)| (ItemId(i), r)));
        assert_eq!(t.ratings.len(), 4);
        assert_eq!(a.histories.watched, want);
        let texts = a.memory.recalled(300);
        assert_eq!(texts.len(), 4);
        let (item, r) = t.ratings[0];
        assert_eq!(
            texts[0],
            format!("User 7 watched <Movie {item} (2000)> and rated it {r} out of 5.")
        );
    }

    #[test]
    fn the_confusion_of_two_users_by_hand() {
        let a = Sample {
            items: vec![1, 2, 3, 4],
            positive: vec![true, false, true, false],
        };
        let ca = Confusion::of(&a, &[1, 2]);
        assert_eq!(
            ca,
            Confusion {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
        assert_eq!(
            (ca.precision(), ca.recall(), ca.accuracy(), ca.f1()),
            (0.5, 0.5, 0.5, 0.5)
        );
        let b = Sample {
            items: vec![5, 6, 7],
            positive: vec![true, false, false],
        };
        let cb = Confusion::of(&b, &[]);
        // Nothing watched: precision 0 (defined), recall 0, accuracy 2/3, F1 0.
        assert_eq!(
            (cb.precision(), cb.recall(), cb.accuracy(), cb.f1()),
            (0.0, 0.0, 2.0 / 3.0, 0.0)
        );
        let cc = Confusion::of(&b, &[5, 6]);
        // tp 1, fp 1, fn 0, tn 1: P 1/2, R 1, A 2/3, F1 2/3.
        assert_eq!(cc.f1(), 2.0 * 0.5 / 1.5);
    }

    #[test]
    fn baselines_by_hand() {
        let t = |id, ratings: Vec<(u32, u8)>| Training {
            id,
            person: Person::default(),
            train: Vec::new(),
            ratings,
        };
        let b = Baselines::fit(&[t(0, vec![(1, 4), (2, 2)]), t(1, vec![(1, 5)])]);
        assert_eq!(b.global, 11.0 / 3.0);
        assert_eq!((b.user(0), b.user(1), b.user(9)), (3.0, 5.0, 11.0 / 3.0));
        // Item 1: residuals (4 − 3) + (5 − 5) = 1 over 2 ratings, damped: 1 / (2 + 5).
        assert_eq!(b.item_bias[&1], 1.0 / 7.0);
        assert_eq!(b.item_bias[&2], -1.0 / 6.0);
        assert_eq!(b.user_item(0, 2), 3.0 - 1.0 / 6.0);
        assert_eq!(b.user_item(1, 1), 5.0, "clamped to 5");
        let (rmse, mae) = rmse_mae([(3.0, 4.0), (5.0, 2.0)]);
        assert_eq!((rmse, mae), (5.0f64.sqrt(), 2.0));
    }

    #[test]
    fn a_session_watches_on_turns_pages_and_ends_past_the_last_page() {
        // Page size 3 over 7 items: watch slot 1, next, watch slot 0, next -> ends.
        let script = Script::new().on::<Page>(|req, _| {
            Some(match req.key.step {
                0 => PageAction::Watch(vec![1]),
                1 => PageAction::Next,
                2 => PageAction::Watch(vec![0]),
                _ => PageAction::Next,
            })
        });
        let behaviour = Behaviour(Box::new(ScriptedBackend::new(script)));
        let cat = catalog(40);
        let (t, _) = split_user(&user(), 3);
        let agent = build_agent(&t, &cat);
        let cfg = SimConfig::default();
        let clock = SimClock::new(cfg.start_datetime().unwrap(), cfg.interval);
        let ctx = Context {
            catalog: &cat,
            clock: &clock,
            seed: 1,
        };
        let mut stats = BehaviourStats::default();
        let list = vec![30, 31, 32, 33, 34, 35, 36];
        let got = browse(&behaviour, &ctx, &mut stats, &[&agent], &[list], 3, 1);
        // Step 0 sees [30 31 32] and watches 31; step 1 sees [30 32 33], turns; step 2 sees
        // [34 35 36], watches 34; step 3 sees [35 36], turns past the end.
        assert_eq!(got, vec![vec![31, 34]]);
        assert_eq!(stats.requests_of("page"), 4);
        assert_eq!(stats.fallbacks_of("page"), 0);
    }
}
