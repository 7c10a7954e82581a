//! Watch: browsing. Each open session makes up to `max_session_steps` page decisions (watch,
//! next page, search, leave; spec §2.3), one batch per step across all browsing agents.
//!
//! Phase: `SimPhase::Watch`. Settings: [`WatchSettings`] (`max_session_steps`, `search_k`,
//! `watch_hours`). Reads: agent data, `Browsing`. Writes: `Browsing`, `Engagement` (watching
//! for `watch_hours`), `RecState.log`, `RoundLog`, `PendingObservations`. Counters: `searches`,
//! `watches` (and the pages it shows).

use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::recommend::{next_recommended_page, show_page, Browsing, RecommendSettings};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, ObservationKind};
use crate::config::SimConfig;
use crate::decision::page::{Page, PageAction, PageAsk};
use crate::decision::{Context, Request};
use crate::ids::ItemId;
use crate::plugin::{check_range, Counter, Counters, Settings, SimApp};
use crate::sim::{
    view, ActiveAgents, AgentData, PendingObservations, RecState, RoundLog, SimPhase, SimTick,
};
use crate::world::Roster;

/// Browsing settings.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchSettings {
    /// Most page decisions per recommender session (RecAgent hard-codes 5); 1..=100.
    pub max_session_steps: u32,
    /// Results a title search returns (RecAgent: 50); 1..=1000.
    pub search_k: u32,
    /// Simulated hours an agent is busy watching after a watch (RecAgent: 2); 0..=48.
    pub watch_hours: f64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            max_session_steps: 5,
            search_k: 50,
            watch_hours: 2.0,
        }
    }
}

impl Settings for WatchSettings {
    const SECTION: Option<&'static str> = None;
    fn validate(&self) -> Result<(), (String, String)> {
        check_range(
            "max_session_steps",
            self.max_session_steps,
            1..=100,
            "1..=100",
        )?;
        check_range("watch_hours", self.watch_hours, 0.0..=48.0, "0..=48")?;
        check_range("search_k", self.search_k, 1..=1000, "1..=1000")?;
        Ok(())
    }
}

/// Searches.
pub const SEARCHES: Counter = Counter::new("searches", "searches");
/// Watches.
pub const WATCHES: Counter = Counter::new("watches", "watches");

/// Registers browsing.
pub struct WatchPlugin;

impl Plugin for WatchPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<WatchSettings>()
            .add_decision::<Page>()
            .show_in_progress(WATCHES)
            .add_counters("browsing", &[SEARCHES, WATCHES])
            .add_systems(SimTick, browse.in_set(SimPhase::Watch));
    }
}

/// Runs page decisions until every session is closed.
///
/// - Watch: the chosen items are watched (RecAgent: exactly one), the agent is busy watching for
///   `watch_hours`, the session ends.
/// - Next: the next page (of search results, or from the recommender); none left ends the session.
/// - Search: the title index returns up to `search_k` items, paged like recommendations (one
///   search per session; an empty result keeps the current page).
/// - Leave, or `max_session_steps` decisions made: the session ends.
pub fn browse(
    cfg: Res<SimConfig>,
    settings: Res<WatchSettings>,
    pages: Res<RecommendSettings>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut rec: ResMut<RecState>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    agents: Query<AgentData>,
    mut sessions: Query<&mut Browsing>,
    mut engagement: Query<&mut Engagement>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let ps = pages.page_size as usize;
    let now = (clock.now() - clock.start).num_minutes();
    let watch_until = now + (settings.watch_hours * 60.0).round() as i64;
    // Entities whose session is open, ascending id (ActiveAgents is in id order).
    let mut open: Vec<Entity> = active
        .0
        .iter()
        .copied()
        .filter(|&e| sessions.get(e).is_ok_and(|s| s.open))
        .collect();
    while !open.is_empty() {
        let answers = {
            let sessions = sessions.as_readonly();
            behaviour.ask_each::<Page, Entity>(&ctx, &mut bstats, open.iter().copied(), |&e| {
                let (d, s) = (agents.get(e).ok()?, sessions.get(e).ok()?);
                let ask = PageAsk {
                    items: &s.page_items,
                    page: s.page,
                    steps: s.steps,
                    search: s.search.as_ref().map(|q| &*q.0),
                    can_search: s.search.is_none(),
                };
                Some(Request::new(clock.round, s.steps as u16, view(d), ask))
            })
        };
        // Only answered sessions go on: one that could not be asked ends here.
        open = answers.iter().map(|(e, _)| *e).collect();
        for (e, action) in answers {
            let (Ok(d), Ok(mut s)) = (agents.get(e), sessions.get_mut(e)) else {
                continue;
            };
            let (uid, name) = (*d.0, d.1.name.clone());
            let Some(user_idx) = roster.index_of(uid) else {
                s.open = false;
                continue;
            };
            s.steps += 1;
            match action {
                PageAction::Watch(slots) => {
                    let items: Vec<ItemId> =
                        slots.iter().map(|&k| s.page_items[k as usize]).collect();
                    for &it in &items {
                        let title = catalog.by_id(it).map_or("?", |i| &i.title);
                        log.say(uid, "RECOMMENDER", format!("{name} watches <{title}>."));
                        log.watched(uid, it, 0);
                        if let Some(ix) = catalog.index_of(it) {
                            rec.log.watch(user_idx, ix, 0, clock.round);
                        }
                        counters.add(&WATCHES, 1);
                    }
                    s.watched.extend(items);
                    if let Ok(mut eng) = engagement.get_mut(e) {
                        *eng = Engagement {
                            kind: EngagementKind::Watching,
                            until_minutes: watch_until,
                        };
                    }
                    s.open = false;
                }
                PageAction::Next => {
                    log.say(uid, "RECOMMENDER", format!("{name} looks next page."));
                    s.page += 1;
                    let page: Vec<ItemId> = match &s.search {
                        Some((_, results)) if !results.is_empty() => results
                            .iter()
                            .skip(s.page as usize * ps)
                            .take(ps)
                            .copied()
                            .collect(),
                        _ => next_recommended_page(
                            cfg.seed,
                            &pages,
                            &rec,
                            user_idx,
                            uid,
                            clock.round,
                            s.page,
                            &catalog,
                        ),
                    };
                    if page.is_empty() {
                        log.say(
                            uid,
                            "RECOMMENDER",
                            format!("No more items. {name} leaves the recommender system."),
                        );
                        s.open = false;
                    } else {
                        let q = s
                            .search
                            .as_ref()
                            .filter(|x| !x.1.is_empty())
                            .map(|x| x.0.clone());
                        show_page(
                            &page,
                            uid,
                            user_idx,
                            &name,
                            q.as_deref(),
                            clock.round,
                            &catalog,
                            &mut rec,
                            &mut log,
                            &mut counters,
                            &mut obs,
                        );
                        s.page_items = page;
                    }
                }
                PageAction::Search(q) => {
                    counters.add(&SEARCHES, 1);
                    log.say(uid, "RECOMMENDER", format!("{name} searches {q}."));
                    // Items the agent has already watched (its watched history) are not
                    // offered again.
                    let results: Vec<ItemId> = catalog
                        .search(&q, settings.search_k as usize + d.3.watched.len())
                        .into_iter()
                        .map(|i| catalog.get(i).id)
                        .filter(|id| !d.3.has_watched(*id))
                        .take(settings.search_k as usize)
                        .collect();
                    obs.add(
                        uid,
                        clock.round,
                        ObservationKind::Searched,
                        results.first().copied(),
                        None,
                        0,
                    );
                    if results.is_empty() {
                        log.say(
                            uid,
                            "RECOMMENDER",
                            format!("There are no items related to {q} in the system."),
                        );
                        s.search = Some((Arc::from(q.as_str()), Vec::new()));
                    } else {
                        let page: Vec<ItemId> = results.iter().take(ps).copied().collect();
                        show_page(
                            &page,
                            uid,
                            user_idx,
                            &name,
                            Some(&q),
                            clock.round,
                            &catalog,
                            &mut rec,
                            &mut log,
                            &mut counters,
                            &mut obs,
                        );
                        s.page = 0;
                        s.page_items = page;
                        s.search = Some((Arc::from(q.as_str()), results));
                    }
                }
                PageAction::Leave => {
                    log.say(
                        uid,
                        "RECOMMENDER",
                        format!("{name} leaves the recommender system."),
                    );
                    s.open = false;
                }
            }
            if s.open && s.steps >= settings.max_session_steps {
                log.say(
                    uid,
                    "RECOMMENDER",
                    format!("{name} leaves the recommender system."),
                );
                s.open = false;
            }
        }
        open.retain(|&e| sessions.get(e).is_ok_and(|s| s.open));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::Histories;
    use crate::decision::Script;
    use crate::testing::{obs, tiny, TestSim, HEAT, MATRIX, TOY_STORY};

    /// Opens agent `u`'s session on a first page `[item]`, shown before (as the recommend phase
    /// leaves it).
    fn open_on(t: &mut TestSim, u: u32, item: ItemId) {
        t.set(
            u,
            Browsing {
                open: true,
                page_items: vec![item],
                ..Default::default()
            },
        );
        t.rec_mut().log.expose(u, item.0);
    }

    fn says(lines: &[&str]) -> Vec<(&'static str, String)> {
        lines
            .iter()
            .map(|l| ("RECOMMENDER", (*l).to_string()))
            .collect()
    }

    #[test]
    fn browse_runs_scripted_sessions_to_exact_pages_counters_messages_and_engagement() {
        // One item per page, two decisions per session, 1.5 h of watching.
        let script = Script::new().on::<Page>(|r, _| {
            let search = || PageAction::Search("Heat".into());
            Some(match (r.agent.id.0, r.key.step) {
                (0, 0) => PageAction::Next,
                (0, _) => PageAction::Watch(vec![0]),
                (1, 0) | (4, 0) => search(),
                (1, _) | (4, _) => PageAction::Next,
                (2, _) => PageAction::Leave,
                _ => PageAction::Next,
            })
        });
        let mut t = tiny(
            5,
            &[],
            "page_size: 1\nmax_session_steps: 2\nwatch_hours: 1.5\n",
            script,
        );
        t.at_round(2);
        let now = t.now_minutes();
        assert_eq!(now, 300, "round 2 starts 5 h after the start");
        t.activate(&[0, 1, 2, 3, 4]);
        for u in 0..5 {
            open_on(&mut t, u, TOY_STORY);
        }
        // Agent 4 has watched Heat: its search finds nothing new.
        t.set(
            4,
            Histories {
                watched: vec![(HEAT, 4)],
                heard: vec![],
            },
        );

        t.run(browse);

        // 0: next page (the recommender's next unseen item), then watches it.
        assert_eq!(
            t.messages_of(0),
            says(&[
                "U0 looks next page.",
                "U0 is recommended [<The Matrix>].",
                "U0 watches <The Matrix>.",
            ])
        );
        // 1: search results, then no next page of them.
        assert_eq!(
            t.messages_of(1),
            says(&[
                "U1 searches Heat.",
                "U1 is shown search results for Heat: [<Heat>].",
                "U1 looks next page.",
                "No more items. U1 leaves the recommender system.",
            ])
        );
        assert_eq!(
            t.messages_of(2),
            says(&["U2 leaves the recommender system."])
        );
        // 3: two next pages, then the step limit.
        assert_eq!(
            t.messages_of(3),
            says(&[
                "U3 looks next page.",
                "U3 is recommended [<The Matrix>].",
                "U3 looks next page.",
                "U3 is recommended [<Heat>].",
                "U3 leaves the recommender system.",
            ])
        );
        // 4: an empty search keeps the page; the next page comes from the recommender.
        assert_eq!(
            t.messages_of(4),
            says(&[
                "U4 searches Heat.",
                "There are no items related to Heat in the system.",
                "U4 looks next page.",
                "U4 is recommended [<The Matrix>].",
                "U4 leaves the recommender system.",
            ])
        );

        let pages: Vec<(u32, u32, Vec<ItemId>)> = (0..5)
            .map(|u| {
                let b = t.get::<Browsing>(u);
                assert!(!b.open, "agent {u}'s session is over");
                (b.steps, b.page, b.page_items)
            })
            .collect();
        assert_eq!(
            pages,
            vec![
                (2, 1, vec![MATRIX]),
                (2, 1, vec![HEAT]),
                (1, 0, vec![TOY_STORY]),
                (2, 2, vec![HEAT]),
                (2, 1, vec![MATRIX]),
            ]
        );
        let b1 = t.get::<Browsing>(1);
        assert_eq!(b1.search, Some((Arc::from("Heat"), vec![HEAT])));
        assert_eq!(
            t.get::<Browsing>(4).search,
            Some((Arc::from("Heat"), vec![]))
        );
        assert_eq!(t.get::<Browsing>(0).watched, vec![MATRIX]);
        assert!((1..5).all(|u| t.get::<Browsing>(u).watched.is_empty()));

        // Only the watcher is busy, until now + watch_hours × 60.
        assert_eq!(
            t.get::<Engagement>(0),
            Engagement {
                kind: EngagementKind::Watching,
                until_minutes: now + 90,
            }
        );
        assert!((1..5).all(|u| t.get::<Engagement>(u) == Engagement::default()));

        assert_eq!(t.counter("searches"), 2);
        assert_eq!(t.counter("watches"), 1);
        assert_eq!(t.counter("pages_shown"), 5);
        assert_eq!(t.counter("items_shown"), 5);
        // The pages this phase showed, by step then user (the first pages were the recommend
        // phase's).
        let shown: Vec<(u32, Vec<ItemId>)> = t
            .world()
            .resource::<RoundLog>()
            .pages()
            .map(|(u, p)| (u.0, p.to_vec()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (0, vec![MATRIX]),
                (1, vec![HEAT]),
                (3, vec![MATRIX]),
                (3, vec![HEAT]),
                (4, vec![MATRIX]),
            ]
        );
        assert_eq!(t.requests_and_fallbacks("page"), (2 + 2 + 1 + 2 + 2, 0));
        assert_eq!(t.rec().log.watches(), &[(0, 1, 0, 2)]);
        assert_eq!(
            t.interactions(),
            vec![
                (0, 1, 1, 0),
                (1, 2, 0, 0),
                (3, 1, 0, 0),
                (3, 2, 0, 0),
                (4, 1, 0, 0)
            ]
        );
        use ObservationKind::{Searched, Shown};
        assert_eq!(
            t.pending(),
            vec![
                // Decision 1 of every session, in id order, then decision 2.
                obs(0, 2, Shown, Some(MATRIX), None, 1),
                obs(1, 2, Searched, Some(HEAT), None, 0),
                obs(1, 2, Shown, Some(HEAT), None, 1),
                obs(3, 2, Shown, Some(MATRIX), None, 1),
                obs(4, 2, Searched, None, None, 0),
                obs(3, 2, Shown, Some(HEAT), None, 1),
                obs(4, 2, Shown, Some(MATRIX), None, 1),
            ]
        );
    }

    #[test]
    fn browse_replaces_answers_that_do_not_fit_by_leave() {
        // 0 searches twice (one search per session), 1 watches a slot off its one-item page.
        let script = Script::new().on::<Page>(|r, _| {
            Some(match (r.agent.id.0, r.key.step) {
                (0, 0) => PageAction::Search("Heat".into()),
                (0, _) => PageAction::Search("Toy Story".into()),
                _ => PageAction::Watch(vec![1]),
            })
        });
        let mut t = tiny(2, &[], "page_size: 1\n", script);
        t.at_round(1);
        t.activate(&[0, 1]);
        open_on(&mut t, 0, TOY_STORY);
        open_on(&mut t, 1, TOY_STORY);

        t.run(browse);

        assert_eq!(
            t.messages_of(0),
            says(&[
                "U0 searches Heat.",
                "U0 is shown search results for Heat: [<Heat>].",
                "U0 leaves the recommender system.",
            ])
        );
        assert_eq!(
            t.messages_of(1),
            says(&["U1 leaves the recommender system."])
        );
        assert_eq!(t.requests_and_fallbacks("page"), (3, 2));
        assert_eq!((t.counter("searches"), t.counter("watches")), (1, 0));
        assert_eq!(t.get::<Engagement>(1), Engagement::default());
    }
}
