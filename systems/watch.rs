//! Watch: browsing. Each open session makes up to `max_session_steps` page decisions (watch,
//! next page, search, leave; spec §2.3), one batch per step across all browsing agents.
//!
//! Phase: `SimPhase::Watch`. Reads: agent data, `Session`. Writes: `Session`, `Engagement`
//! (watching for `watch_hours`), `RecState.log`, `RoundLog`, `RunStats`.

use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{Answer, Ask, Behaviour, BehaviourStats, Context, PageAction, Phase, Request, RequestKey};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, ObservationKind, Session};
use crate::config::SimConfig;
use crate::ids::ItemId;
use crate::sim::{view, ActiveAgents, AgentData, PendingObservations, RecState, RoundLog, RunStats, SimPhase, SimTick};
use crate::world::Roster;

use super::recommend::{next_recommended_page, show_page};

/// Registers the browse system.
pub struct WatchPlugin;

impl Plugin for WatchPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, browse.in_set(SimPhase::Watch));
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
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut rec: ResMut<RecState>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut obs: ResMut<PendingObservations>,
    agents: Query<AgentData>,
    mut sessions: Query<&mut Session>,
    mut engagement: Query<&mut Engagement>,
) {
    let ctx = Context { catalog: &catalog, clock: &clock, seed: cfg.seed };
    let ps = cfg.page_size as usize;
    let now = (clock.now() - clock.start).num_minutes();
    let watch_until = now + (cfg.watch_hours * 60.0).round() as i64;
    // Entities whose session is open, ascending id (ActiveAgents is in id order).
    let mut open: Vec<Entity> =
        active.0.iter().copied().filter(|&e| sessions.get(e).is_ok_and(|s| s.open)).collect();
    while !open.is_empty() {
        let batch: Vec<Request<'_>> = open
            .iter()
            .filter_map(|&e| Some((agents.get(e).ok()?, sessions.get(e).ok()?)))
            .map(|(d, s)| Request {
                key: RequestKey { round: clock.round, phase: Phase::Watch, user: *d.0, step: s.steps as u16 },
                agent: view(d),
                ask: Ask::Page {
                    items: &s.page_items,
                    page: s.page,
                    steps: s.steps,
                    search: s.search.as_ref().map(|q| &*q.0),
                    can_search: s.search.is_none(),
                },
            })
            .collect();
        let answers = behaviour.ask(&ctx, &batch, &mut bstats);
        drop(batch);
        for (&e, answer) in open.iter().zip(answers) {
            let (Ok(d), Ok(mut s)) = (agents.get(e), sessions.get_mut(e)) else { continue };
            let Answer::Page(action) = answer else { continue };
            let (uid, name) = (*d.0, d.1.name.clone());
            let Some(user_idx) = roster.index_of(uid) else { continue };
            s.steps += 1;
            match action {
                PageAction::Watch(slots) => {
                    let items: Vec<ItemId> = slots.iter().map(|&k| s.page_items[k as usize]).collect();
                    for &it in &items {
                        let title = catalog.by_id(it).map_or("?", |i| &i.title);
                        log.say(uid, "RECOMMENDER", format!("{name} watches <{title}>."));
                        log.watched(uid, it, 0);
                        if let Some(ix) = catalog.index_of(it) {
                            rec.log.watch(user_idx, ix, 0, clock.round);
                        }
                        stats.watches += 1;
                    }
                    s.watched.extend(items);
                    if let Ok(mut eng) = engagement.get_mut(e) {
                        *eng = Engagement { kind: EngagementKind::Watching, until_minutes: watch_until };
                    }
                    s.open = false;
                }
                PageAction::Next => {
                    log.say(uid, "RECOMMENDER", format!("{name} looks next page."));
                    s.page += 1;
                    let page: Vec<ItemId> = match &s.search {
                        Some((_, results)) if !results.is_empty() => results.iter().skip(s.page as usize * ps).take(ps).copied().collect(),
                        _ => next_recommended_page(&cfg, &rec, user_idx, uid, clock.round, s.page, &catalog),
                    };
                    if page.is_empty() {
                        log.say(uid, "RECOMMENDER", format!("No more items. {name} leaves the recommender system."));
                        s.open = false;
                    } else {
                        let q = s.search.as_ref().filter(|x| !x.1.is_empty()).map(|x| x.0.clone());
                        show_page(&page, uid, user_idx, &name, q.as_deref(), clock.round, &catalog, &mut rec, &mut log, &mut stats, &mut obs);
                        s.page_items = page;
                    }
                }
                PageAction::Search(q) => {
                    stats.searches += 1;
                    log.say(uid, "RECOMMENDER", format!("{name} searches {q}."));
                    // Items the agent has already watched (its watched history) are not offered again.
                    let results: Vec<ItemId> = catalog
                        .search(&q, cfg.search_k as usize + d.3.watched.len())
                        .into_iter()
                        .map(|i| catalog.get(i).id)
                        .filter(|id| !d.3.has_watched(*id))
                        .take(cfg.search_k as usize)
                        .collect();
                    obs.add(uid, clock.round, ObservationKind::Searched, results.first().copied(), None, 0);
                    if results.is_empty() {
                        log.say(uid, "RECOMMENDER", format!("There are no items related to {q} in the system."));
                        s.search = Some((Arc::from(q.as_str()), Vec::new()));
                    } else {
                        let page: Vec<ItemId> = results.iter().take(ps).copied().collect();
                        show_page(&page, uid, user_idx, &name, Some(&q), clock.round, &catalog, &mut rec, &mut log, &mut stats, &mut obs);
                        s.page = 0;
                        s.page_items = page;
                        s.search = Some((Arc::from(q.as_str()), results));
                    }
                }
                PageAction::Leave => {
                    log.say(uid, "RECOMMENDER", format!("{name} leaves the recommender system."));
                    s.open = false;
                }
            }
            if s.open && s.steps >= cfg.max_session_steps {
                log.say(uid, "RECOMMENDER", format!("{name} leaves the recommender system."));
                s.open = false;
            }
        }
        open.retain(|&e| sessions.get(e).is_ok_and(|s| s.open));
    }
}
