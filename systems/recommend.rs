//! Recommend: agents entering the recommender get their first page (spec §2.3, §4.2).
//!
//! Phase: `SimPhase::Recommend`. Reads: `Session.action`. Writes: `Session` (opens it),
//! `RecState.log` (exposure), `RoundLog`, `RunStats`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{ObservationKind, Profile, Session, TopAction};
use crate::config::SimConfig;
use crate::ids::{ItemId, UserId};
use crate::recommender::build_page;
use crate::rng::{stream_rng, Stream};
use crate::sim::{ActiveAgents, PendingObservations, RecState, RoundLog, RunStats, SimPhase, SimTick};
use crate::world::Roster;

/// Registers the recommend system.
pub struct RecommendPlugin;

impl Plugin for RecommendPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, serve_first_pages.in_set(SimPhase::Recommend));
    }
}

/// Asks the recommender for the next page for `user` (never an item shown before; with
/// `rec_random_k` tail items mixed in). The page's random stream is keyed by
/// (seed, round, user, page number within the round).
pub fn next_recommended_page(cfg: &SimConfig, rec: &RecState, user_idx: u32, uid: UserId, round: u32, page_no: u32, catalog: &Catalog) -> Vec<ItemId> {
    let mut rng = stream_rng(cfg.seed, Stream::Recommender, &[u64::from(round), u64::from(uid.0), u64::from(page_no)]);
    build_page(rec.model.as_ref(), &rec.log, user_idx, cfg.page_size as usize, cfg.rec_random_k as usize, &mut rng)
        .into_iter()
        .map(|i| catalog.get(i).id)
        .collect()
}

/// Records a page as shown: exposure in the recommender's log and the round's interactions,
/// counters, a memory observation and the `RECOMMENDER` message `"<name> is recommended [...]"`
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
    stats: &mut RunStats,
    obs: &mut PendingObservations,
) {
    for &it in items {
        if let Some(ix) = catalog.index_of(it) {
            rec.log.expose(user_idx, ix);
        }
        log.shown(uid, it);
    }
    stats.pages_shown += 1;
    stats.items_shown += items.len() as u64;
    obs.add(uid, round, ObservationKind::Shown, items.first().copied(), None, items.len().min(255) as u8);
    if log.enabled {
        let titles: Vec<String> = items
            .iter()
            .map(|&i| catalog.by_id(i).map_or_else(|| format!("<item {i}>"), |it| format!("<{}>", it.title)))
            .collect();
        let text = match search {
            None => format!("{name} is recommended [{}].", titles.join(", ")),
            Some(q) => format!("{name} is shown search results for {q}: [{}].", titles.join(", ")),
        };
        log.say(uid, "RECOMMENDER", text);
    }
}

/// Opens a browsing session with the first page for every agent that chose the recommender.
pub fn serve_first_pages(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    active: Res<ActiveAgents>,
    mut rec: ResMut<RecState>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut obs: ResMut<PendingObservations>,
    mut agents: Query<(&UserId, &Profile, &mut Session)>,
) {
    for &e in &active.0 {
        let Ok((&uid, profile, mut s)) = agents.get_mut(e) else { continue };
        if s.action != TopAction::Recommender {
            continue;
        }
        let Some(user_idx) = roster.index_of(uid) else { continue };
        let page = next_recommended_page(&cfg, &rec, user_idx, uid, clock.round, 0, &catalog);
        if page.is_empty() {
            log.say(uid, "RECOMMENDER", format!("No more items. {} leaves the recommender system.", profile.name));
            continue;
        }
        show_page(&page, uid, user_idx, &profile.name, None, clock.round, &catalog, &mut rec, &mut log, &mut stats, &mut obs);
        s.open = true;
        s.page = 0;
        s.page_items = page;
    }
}
