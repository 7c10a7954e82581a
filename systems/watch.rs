//! Watch: browsing. Each open session makes up to `max_session_steps` page decisions (watch,
//! next page, search, leave; spec §2.3), one batch per step across all browsing agents.
//!
//! Phase: `SimPhase::Watch`. Settings: [`WatchSettings`] (`max_session_steps`, `search_k`,
//! `watch_hours`). Reads: agent data, `Browsing`. Writes: `Browsing`, `Engagement` (watching
//! for `watch_hours`), `RecState.log`, `RoundLog`, `PendingObservations`. Counters: `searches`,
//! `watches` (and the pages it shows).

use std::borrow::Cow;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::recommend::{
    next_recommended_page, page_stream, show_page, Browsing, RecommendSettings,
};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, ObservationKind};
use crate::config::SimConfig;
use crate::decision::page::{Page, PageAction, PageAsk};
use crate::decision::{AgentView, Context, Decision, Request};
use crate::ids::{ItemId, UserId};
use crate::plugin::{check_range, Counter, Counters, Settings, SimApp};
use crate::recommender::build_pages;
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
///
/// Each session is a chain of page decisions ([`Behaviour::ask_chains`]): its next request is
/// built from its own state, so with the LLM backend an agent's next page decision is sent as
/// soon as its previous answer arrives. What the sessions do to the world (messages,
/// interactions, the recommender's watch log, observations, counters, engagement) is applied
/// once every session is closed, step by step and in id order within a step, so the outputs are
/// those of step-by-step batches. Pages shown are marked as exposed at once (a set per agent),
/// since the agent's own next page leaves them out.
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
    // Open sessions, ascending id (ActiveAgents is in id order).
    let mut unbuilt = 0u64;
    // Sized up front: grown by doubling, a million sessions were copied some twenty times.
    let mut open: Vec<Session<'_>> = Vec::with_capacity(active.0.len());
    open.extend(active.0.iter().filter_map(|&e| {
        let mut s = sessions.get_mut(e).ok().filter(|s| s.open)?;
        let Ok(d) = agents.get(e) else {
            unbuilt += 1;
            return None;
        };
        // Taken, not copied (its watched items and search results), and put back below.
        let s = std::mem::take(&mut *s);
        Some(Session {
            e,
            agent: view(d),
            user_idx: roster.index_of(*d.0),
            name: d.1.name.clone(),
            says: log.wants(*d.0),
            s,
            effects: Vec::new(),
        })
    }));
    if unbuilt > 0 {
        tracing::error!(
            kind = Page::KIND,
            unbuilt,
            "requests that could not be built (agents without their components) were dropped"
        );
        *bstats.unbuilt.entry(Page::KIND.to_string()).or_default() += unbuilt;
    }
    let round = clock.round;
    let mut chains = {
        let rec = &mut *rec;
        let step = Steps {
            seed: cfg.seed,
            settings: &settings,
            pages: &pages,
            round,
            catalog: &catalog,
        };
        let parallel = behaviour.0.splits_batches();
        behaviour.ask_chains::<Page, Session<'_>, RecState, Prepared>(
            &ctx,
            &mut bstats,
            open,
            rec,
            |x| {
                let s = &x.s;
                s.open.then(|| {
                    let ask = PageAsk {
                        items: Cow::Owned(s.page_items.clone()),
                        page: s.page,
                        steps: s.steps,
                        search: s.search.as_ref().map(|q| Cow::Owned(q.0.to_string())),
                        can_search: s.search.is_none(),
                    };
                    Request::new(round, s.steps as u16, x.agent, ask)
                })
            },
            |rec, wave| step.prepare(rec, wave, parallel),
            |rec, x, action, prepared| step.apply(x, action, prepared, rec),
        )
    };
    // What the sessions did, step by step, in id order within a step (a stable sort of the
    // sessions' own step-ordered effects).
    let mut effects: Vec<(u32, usize, Effect)> = Vec::new();
    for (c, x) in chains.iter_mut().enumerate() {
        effects.extend(x.effects.drain(..).map(|(k, f)| (k, c, f)));
    }
    effects.sort_by_key(|(k, _, _)| *k);
    let watch_until =
        (clock.now() - clock.start).num_minutes() + (settings.watch_hours * 60.0).round() as i64;
    for (_, c, f) in effects {
        let x = &chains[c];
        let uid = x.agent.id;
        match f {
            Effect::Say(text) => log.say(uid, "RECOMMENDER", text),
            Effect::Watch(items) => {
                for &it in &items {
                    let title = catalog.by_id(it).map_or("?", |i| &i.title);
                    log.say_with(uid, "RECOMMENDER", || {
                        format!("{} watches <{title}>.", x.name)
                    });
                    log.watched(uid, it, 0);
                    if let (Some(u), Some(ix)) = (x.user_idx, catalog.index_of(it)) {
                        rec.log.watch(u, ix, 0, round);
                    }
                    counters.add(&WATCHES, 1);
                }
                if let Ok(mut eng) = engagement.get_mut(x.e) {
                    *eng = Engagement {
                        kind: EngagementKind::Watching,
                        until_minutes: watch_until,
                    };
                }
            }
            Effect::Show { items, query } => show_page(
                &items,
                uid,
                x.user_idx.unwrap_or(0),
                &x.name,
                query.as_deref(),
                round,
                &catalog,
                &mut rec,
                &mut log,
                &mut counters,
                &mut obs,
            ),
            Effect::Searched { q, first } => {
                counters.add(&SEARCHES, 1);
                log.say_with(uid, "RECOMMENDER", || format!("{} searches {q}.", x.name));
                obs.add(uid, round, ObservationKind::Searched, first, None, 0);
            }
        }
    }
    for x in chains {
        if let Ok(mut s) = sessions.get_mut(x.e) {
            *s = x.s;
        }
    }
}

/// One open session while its page decisions are asked.
struct Session<'w> {
    e: Entity,
    agent: AgentView<'w>,
    /// The agent's row in the recommender's log (`None`: not in the roster, the session ends
    /// at its first answer).
    user_idx: Option<u32>,
    name: Arc<str>,
    /// Its messages are kept ([`RoundLog::wants`]): the texts of its `Say` effects are built.
    says: bool,
    s: Browsing,
    /// What its answers did, with the step that did it, applied after every session is done.
    effects: Vec<(u32, Effect)>,
}

/// What one page decision does to the world outside its session.
enum Effect {
    /// A `RECOMMENDER` message.
    Say(String),
    /// Watched items: messages, interactions, the recommender's log, engagement.
    Watch(Vec<ItemId>),
    /// A page shown ([`show_page`]), of search results for `query` when given.
    Show {
        items: Vec<ItemId>,
        query: Option<Arc<str>>,
    },
    /// A search: counter, message and observation (its first result).
    Searched { q: String, first: Option<ItemId> },
}

/// What applying a page decision needs beyond the session: computed for a whole step at once
/// ([`Steps::prepare`]), read only.
struct Prepared {
    /// The results of a search ([`Steps::searched`]).
    searched: Option<Vec<ItemId>>,
    /// The next recommended page of a `Next` outside search results.
    page: Option<Vec<ItemId>>,
}

/// What applying a page decision to a session reads.
struct Steps<'a> {
    seed: u64,
    settings: &'a WatchSettings,
    pages: &'a RecommendSettings,
    round: u32,
    catalog: &'a Catalog,
}

impl Steps<'_> {
    /// The results of `action` when it is a search of a session that can go on: up to
    /// `search_k` items for the query, the ones the agent has already watched (its watched
    /// history) left out. Read-only, so a step's searches may run side by side.
    fn searched(&self, x: &Session<'_>, action: &PageAction) -> Option<Vec<ItemId>> {
        let PageAction::Search(q) = action else {
            return None;
        };
        x.user_idx?;
        let histories = x.agent.histories;
        Some(
            self.catalog
                .search(q, self.settings.search_k as usize + histories.watched.len())
                .into_iter()
                .map(|i| self.catalog.get(i).id)
                .filter(|id| !histories.has_watched(*id))
                .take(self.settings.search_k as usize)
                .collect(),
        )
    }

    /// What a step's answers need: each search's results ([`Steps::searched`], side by side
    /// when `parallel`) and the next recommended page of every `Next` outside search results,
    /// all asked of the model in one [`build_pages`] (a factor model scores them in matrix
    /// products), so each page is the one [`next_recommended_page`] builds for it alone: its
    /// stream is keyed by (seed, round, agent, page number) and it leaves out what the agent
    /// was shown, which only the agent's own earlier steps changed.
    fn prepare(
        &self,
        rec: &RecState,
        wave: &[(&Session<'_>, &PageAction)],
        parallel: bool,
    ) -> Vec<Prepared> {
        let searched = crate::sim::map_in_order(parallel, wave, |(x, a)| self.searched(x, a));
        // (position in the wave, user index, agent, page number) of each page to build.
        let asks: Vec<(usize, u32, UserId, u32)> = wave
            .iter()
            .enumerate()
            .filter_map(|(w, (x, a))| {
                let in_results = matches!(&x.s.search, Some((_, r)) if !r.is_empty());
                (matches!(a, PageAction::Next) && !in_results).then_some((
                    w,
                    x.user_idx?,
                    x.agent.id,
                    x.s.page + 1,
                ))
            })
            .collect();
        let mut pages: Vec<Option<Vec<ItemId>>> = vec![None; wave.len()];
        if !asks.is_empty() {
            let users: Vec<u32> = asks.iter().map(|a| a.1).collect();
            let mut rngs: Vec<_> = asks
                .iter()
                .map(|&(_, _, uid, page_no)| page_stream(self.seed, self.round, uid, page_no))
                .collect();
            let built = build_pages(
                rec.model.as_ref(),
                &rec.log,
                &users,
                self.pages.page_size as usize,
                self.pages.rec_random_k as usize,
                &mut rngs,
            );
            for (&(w, ..), page) in asks.iter().zip(built) {
                pages[w] = Some(page.into_iter().map(|i| self.catalog.get(i).id).collect());
            }
        }
        searched
            .into_iter()
            .zip(pages)
            .map(|(searched, page)| Prepared { searched, page })
            .collect()
    }

    /// Applies `action` to session `x`: its state, and its effects for later, with what
    /// [`Steps::prepare`] gave for it. Pages shown are marked exposed in `rec` now (the agent's
    /// next page leaves them out; a set, so the order sessions are stepped in does not matter),
    /// everything else waits in `x.effects`.
    fn apply(
        &self,
        x: &mut Session<'_>,
        action: PageAction,
        prepared: Prepared,
        rec: &mut RecState,
    ) {
        let Prepared { searched, page } = prepared;
        let ps = self.pages.page_size as usize;
        let (uid, k) = (x.agent.id, x.s.steps);
        let Some(user_idx) = x.user_idx else {
            x.s.open = false;
            return;
        };
        let name = x.name.clone();
        let say = |x: &mut Session<'_>, text: &dyn Fn() -> String| {
            if x.says {
                x.effects.push((k, Effect::Say(text())));
            }
        };
        let show = |x: &mut Session<'_>, rec: &mut RecState, items: Vec<ItemId>, query| {
            for &it in &items {
                if let Some(ix) = self.catalog.index_of(it) {
                    rec.log.expose(user_idx, ix);
                }
            }
            x.s.page_items.clone_from(&items);
            x.effects.push((k, Effect::Show { items, query }));
        };
        x.s.steps += 1;
        match action {
            PageAction::Watch(slots) => {
                let items: Vec<ItemId> =
                    slots.iter().map(|&i| x.s.page_items[i as usize]).collect();
                x.s.watched.extend(&items);
                x.effects.push((k, Effect::Watch(items)));
                x.s.open = false;
            }
            PageAction::Next => {
                say(x, &|| format!("{name} looks next page."));
                x.s.page += 1;
                let page: Vec<ItemId> = match &x.s.search {
                    Some((_, results)) if !results.is_empty() => results
                        .iter()
                        .skip(x.s.page as usize * ps)
                        .take(ps)
                        .copied()
                        .collect(),
                    _ => page.unwrap_or_else(|| {
                        next_recommended_page(
                            self.seed,
                            self.pages,
                            rec,
                            user_idx,
                            uid,
                            self.round,
                            x.s.page,
                            self.catalog,
                        )
                    }),
                };
                if page.is_empty() {
                    say(x, &|| {
                        format!("No more items. {name} leaves the recommender system.")
                    });
                    x.s.open = false;
                } else {
                    let q =
                        x.s.search
                            .as_ref()
                            .filter(|s| !s.1.is_empty())
                            .map(|s| s.0.clone());
                    show(x, rec, page, q);
                }
            }
            PageAction::Search(q) => {
                let results = searched.unwrap_or_default();
                x.effects.push((
                    k,
                    Effect::Searched {
                        q: q.clone(),
                        first: results.first().copied(),
                    },
                ));
                let q: Arc<str> = Arc::from(q.as_str());
                if results.is_empty() {
                    say(x, &|| {
                        format!("There are no items related to {q} in the system.")
                    });
                    x.s.search = Some((q, Vec::new()));
                } else {
                    let page: Vec<ItemId> = results.iter().take(ps).copied().collect();
                    show(x, rec, page, Some(q.clone()));
                    x.s.page = 0;
                    x.s.search = Some((q, results));
                }
            }
            PageAction::Leave => {
                say(x, &|| format!("{name} leaves the recommender system."));
                x.s.open = false;
            }
        }
        if x.s.open && x.s.steps >= self.settings.max_session_steps {
            say(x, &|| format!("{name} leaves the recommender system."));
            x.s.open = false;
        }
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
