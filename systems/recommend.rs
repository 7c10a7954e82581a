//! Recommend: agents entering the recommender get their first page (spec §2.3, §4.2).
//!
//! Phase: `SimPhase::Recommend`. Settings: [`RecommendSettings`] (RecAgent's `page_size`,
//! `rec_random_k`). State: [`Browsing`] on every agent (the session, reset when the agent is
//! active). Reads: `Choice`. Writes: `Browsing`, `RecState.log` (exposure), `RoundLog`,
//! `PendingObservations`. Counters: `pages_shown`, `items_shown`.

use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::activate::Choice;
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{ObservationKind, Profile};
use crate::config::SimConfig;
use crate::decision::top::TopAction;
use crate::ids::{ItemId, UserId};
use crate::plugin::{check_range, Counter, Counters, Settings, SimApp};
use crate::recommender::{build_page, build_pages};
use crate::rng::{stream_rng, Stream};
use crate::sim::{
    map_in_order, ActiveAgents, PendingObservations, RecState, RoundLog, SimPhase, SimTick,
};
use crate::world::Roster;

/// Page settings (RecAgent's top-level keys).
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendSettings {
    /// Items per recommendation page; 1..=50.
    pub page_size: u32,
    /// Random items injected into each page (from outside the model's top list); 0..page_size;
    /// default 1.
    pub rec_random_k: u32,
}

impl Default for RecommendSettings {
    fn default() -> Self {
        Self {
            page_size: 5,
            // One random item per page: pages are not only the model's top list (RecAgent's
            // default is 0, no random items).
            rec_random_k: 1,
        }
    }
}

impl Settings for RecommendSettings {
    const SECTION: Option<&'static str> = None;
    // Read when each page is built.
    const LIVE: &'static [&'static str] = &["page_size", "rec_random_k"];
    fn validate(&self) -> Result<(), (String, String)> {
        check_range("page_size", self.page_size, 1..=50, "1..=50")?;
        if self.rec_random_k >= self.page_size {
            // The default (1) alone refuses pages of one item: say so.
            let hint = if self.rec_random_k == Self::default().rec_random_k {
                format!(
                    " ({} is its default: set `rec_random_k: 0` for pages of {} item)",
                    self.rec_random_k, self.page_size
                )
            } else {
                String::new()
            };
            return Err((
                "rec_random_k".into(),
                format!(
                    "{} is out of range: allowed 0..page_size ({}){hint}",
                    self.rec_random_k, self.page_size
                ),
            ));
        }
        Ok(())
    }
}

/// An agent's browsing session this round. Reset when the agent is active.
#[derive(Component, Clone, Debug, Default)]
pub struct Browsing {
    /// The session is open (the agent is browsing).
    pub open: bool,
    /// Page decisions made so far this session.
    pub steps: u32,
    /// Index of the current page (0-based) within the current list.
    pub page: u32,
    /// Items on the current page, in display order.
    pub page_items: Vec<ItemId>,
    /// Search results being paged through, if the agent searched (with the query).
    pub search: Option<(Arc<str>, Vec<ItemId>)>,
    /// Items watched this round, awaiting a feeling.
    pub watched: Vec<ItemId>,
}

impl Browsing {
    /// Clears the session, keeping allocations.
    pub fn reset(&mut self) {
        self.open = false;
        self.steps = 0;
        self.page = 0;
        self.page_items.clear();
        self.search = None;
        self.watched.clear();
    }
}

/// Pages shown (recommendation and search-result pages).
pub const PAGES_SHOWN: Counter = Counter::new("pages_shown", "pages shown");
/// Items shown, summed over pages.
pub const ITEMS_SHOWN: Counter = Counter::new("items_shown", "items shown");

/// Registers the first pages.
pub struct RecommendPlugin;

impl Plugin for RecommendPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<RecommendSettings>()
            .add_counters("pages", &[PAGES_SHOWN, ITEMS_SHOWN])
            .add_summary("pages", |c| {
                Some(format!(
                    "pages shown {} ({} items)",
                    c.get("pages_shown"),
                    c.get("items_shown")
                ))
            })
            .add_agent_component::<Browsing>()
            .add_systems(SimTick, serve_first_pages.in_set(SimPhase::Recommend));
    }
}

/// Asks the recommender for the next page for `user` (never an item shown before; with
/// `rec_random_k` tail items mixed in). The page's random stream is keyed by
/// (seed, round, user, page number within the round).
pub fn next_recommended_page(
    seed: u64,
    s: &RecommendSettings,
    rec: &RecState,
    user_idx: u32,
    uid: UserId,
    round: u32,
    page_no: u32,
    catalog: &Catalog,
) -> Vec<ItemId> {
    let mut rng = page_stream(seed, round, uid, page_no);
    build_page(
        rec.model.as_ref(),
        &rec.log,
        user_idx,
        s.page_size as usize,
        s.rec_random_k as usize,
        &mut rng,
    )
    .into_iter()
    .map(|i| catalog.get(i).id)
    .collect()
}

/// The random stream of page `page_no` of `uid` in `round`.
pub(crate) fn page_stream(
    seed: u64,
    round: u32,
    uid: UserId,
    page_no: u32,
) -> rand_chacha::ChaCha8Rng {
    stream_rng(
        seed,
        Stream::Recommender,
        &[u64::from(round), u64::from(uid.0), u64::from(page_no)],
    )
}

/// Records a page as shown: exposure in the recommender's log, the round's interactions and
/// pages, counters, a memory observation and the `RECOMMENDER` message `"<name> is recommended [...]"`
/// (or, for search results, `"<name> is shown search results for <q>: [...]"`).
pub fn show_page(
    items: &[ItemId],
    uid: UserId,
    user_idx: u32,
    name: &str,
    search: Option<&str>,
    round: u32,
    catalog: &Catalog,
    rec: &mut RecState,
    log: &mut RoundLog,
    counters: &mut Counters,
    obs: &mut PendingObservations,
) {
    for &it in items {
        if let Some(ix) = catalog.index_of(it) {
            rec.log.expose(user_idx, ix);
        }
        log.shown(uid, it);
    }
    log.page_shown(uid, items);
    counters.add(&PAGES_SHOWN, 1);
    counters.add(&ITEMS_SHOWN, items.len() as u64);
    obs.add(
        uid,
        round,
        ObservationKind::Shown,
        items.first().copied(),
        None,
        items.len().min(255) as u8,
    );
    if log.wants(uid) {
        let titles: Vec<String> = items
            .iter()
            .map(|&i| {
                catalog
                    .by_id(i)
                    .map_or_else(|| format!("<item {i}>"), |it| format!("<{}>", it.title))
            })
            .collect();
        let text = match search {
            None => format!("{name} is recommended [{}].", titles.join(", ")),
            Some(q) => format!(
                "{name} is shown search results for {q}: [{}].",
                titles.join(", ")
            ),
        };
        log.say(uid, "RECOMMENDER", text);
    }
}

/// Resets the session of every active agent and opens one, with the first page, for every
/// agent that chose the recommender.
pub fn serve_first_pages(
    cfg: Res<SimConfig>,
    settings: Res<RecommendSettings>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    active: Res<ActiveAgents>,
    mut rec: ResMut<RecState>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    mut agents: Query<(&UserId, &Profile, &Choice, &mut Browsing)>,
) {
    // Every first page's top list in one batch (pages of different users are independent),
    // then shown in id order as before.
    let mut choosers: Vec<(Entity, UserId, u32)> = Vec::new();
    for &e in &active.0 {
        let Ok((&uid, _, choice, mut s)) = agents.get_mut(e) else {
            continue;
        };
        s.reset();
        if choice.0 != TopAction::Recommender {
            continue;
        }
        if let Some(user_idx) = roster.index_of(uid) {
            choosers.push((e, uid, user_idx));
        }
    }
    let users: Vec<u32> = choosers.iter().map(|c| c.2).collect();
    // A ChaCha stream is 300 bytes keyed through a hash: at a million choosers, building them
    // was a fifth of the phase on one core.
    let mut rngs = map_in_order(cfg.runs_parallel(), &choosers, |&(_, uid, _)| {
        page_stream(cfg.seed, clock.round, uid, 0)
    });
    let pages = build_pages(
        rec.model.as_ref(),
        &rec.log,
        &users,
        settings.page_size as usize,
        settings.rec_random_k as usize,
        &mut rngs,
    );
    for ((e, uid, user_idx), page) in choosers.into_iter().zip(pages) {
        let Ok((_, profile, _, mut s)) = agents.get_mut(e) else {
            continue;
        };
        let page: Vec<ItemId> = page.into_iter().map(|i| catalog.get(i).id).collect();
        if page.is_empty() {
            log.say_with(uid, "RECOMMENDER", || {
                format!(
                    "No more items. {} leaves the recommender system.",
                    profile.name
                )
            });
            continue;
        }
        show_page(
            &page,
            uid,
            user_idx,
            &profile.name,
            None,
            clock.round,
            &catalog,
            &mut rec,
            &mut log,
            &mut counters,
            &mut obs,
        );
        s.open = true;
        s.page = 0;
        s.page_items = page;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Script;
    use crate::testing::{obs, tiny, HEAT, MATRIX, TOY_STORY};

    fn stale() -> Browsing {
        Browsing {
            open: true,
            steps: 2,
            page: 1,
            page_items: vec![HEAT],
            search: Some(("x".into(), vec![HEAT])),
            watched: vec![HEAT],
        }
    }

    #[test]
    fn serve_first_pages_resets_active_sessions_and_opens_one_per_recommender_chooser() {
        // page_size 2; Popularity with no watches ranks the items by id, never showing an item
        // shown before.
        let mut t = tiny(5, &[], "page_size: 2\n", Script::new());
        t.at_round(2);
        t.activate(&[0, 1, 2, 3]);
        for (u, c) in [
            (0, TopAction::Recommender),
            (1, TopAction::Social),
            (2, TopAction::Recommender),
            (3, TopAction::Recommender),
        ] {
            t.set(u, Choice(c));
            t.set(u, stale());
        }
        t.set(4, stale()); // not active: left alone
        {
            let mut rec = t.rec_mut();
            rec.log.expose(2, 0); // agent 2 has seen item 0
            for i in 0..3 {
                rec.log.expose(3, i); // agent 3 has seen everything
            }
        }

        t.run(serve_first_pages);

        let b0 = t.get::<Browsing>(0);
        assert!(b0.open);
        assert_eq!(
            (b0.steps, b0.page, b0.page_items.clone()),
            (0, 0, vec![TOY_STORY, MATRIX])
        );
        assert!(b0.search.is_none() && b0.watched.is_empty());
        let b2 = t.get::<Browsing>(2);
        assert!(b2.open);
        assert_eq!(b2.page_items, vec![MATRIX, HEAT]);
        for u in [1, 3] {
            let b = t.get::<Browsing>(u);
            assert!(!b.open, "agent {u}");
            assert_eq!((b.steps, b.page), (0, 0), "agent {u}");
            assert!(b.page_items.is_empty() && b.search.is_none() && b.watched.is_empty());
        }
        let b4 = t.get::<Browsing>(4);
        assert!(b4.open && b4.steps == 2 && b4.watched == vec![HEAT]);

        assert_eq!(t.rec().log.exposed(0), &[0, 1]);
        assert_eq!(t.rec().log.exposed(1), &[] as &[u32]);
        assert_eq!(t.rec().log.exposed(2), &[0, 1, 2]);
        assert_eq!(t.counter("pages_shown"), 2);
        assert_eq!(t.counter("items_shown"), 4);
        assert_eq!(
            t.interactions(),
            vec![(0, 0, 0, 0), (0, 1, 0, 0), (2, 1, 0, 0), (2, 2, 0, 0)]
        );
        let pages: Vec<(UserId, Vec<ItemId>)> = t
            .world()
            .resource::<RoundLog>()
            .pages()
            .map(|(u, p)| (u, p.to_vec()))
            .collect();
        assert_eq!(
            pages,
            vec![
                (UserId(0), vec![TOY_STORY, MATRIX]),
                (UserId(2), vec![MATRIX, HEAT])
            ]
        );
        assert_eq!(
            t.messages(),
            vec![
                (
                    0,
                    "RECOMMENDER",
                    "U0 is recommended [<Toy Story>, <The Matrix>].".to_string()
                ),
                (
                    2,
                    "RECOMMENDER",
                    "U2 is recommended [<The Matrix>, <Heat>].".to_string()
                ),
                (
                    3,
                    "RECOMMENDER",
                    "No more items. U3 leaves the recommender system.".to_string()
                ),
            ]
        );
        use ObservationKind::Shown;
        assert_eq!(
            t.pending(),
            vec![
                obs(0, 2, Shown, Some(TOY_STORY), None, 2),
                obs(2, 2, Shown, Some(MATRIX), None, 2),
            ]
        );
    }
}
