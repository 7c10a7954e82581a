//! Feel: after watching, the agent rates the item 1..=5 and says how it felt (spec §2.3 BUY).
//!
//! Phase: `SimPhase::Feel`. Reads: agent data, `Session.watched`. Writes: `Histories.watched`,
//! `RecState.log` (rating), `RoundLog`, `RunStats`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Histories, ObservationKind, Session};
use crate::config::SimConfig;
use crate::ids::ItemId;
use crate::sim::{view, ActiveAgents, AgentData, PendingObservations, RecState, RoundLog, RunStats, SimPhase, SimTick};
use crate::world::Roster;

/// Registers the feel system.
pub struct FeelPlugin;

impl Plugin for FeelPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, form_feelings.in_set(SimPhase::Feel));
    }
}

/// One batch of feelings, one request per watched item; applied in id order.
pub fn form_feelings(
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
    sessions: Query<&Session>,
    mut agents: ParamSet<(Query<AgentData>, Query<&mut Histories>)>,
) {
    let ctx = Context { catalog: &catalog, clock: &clock, seed: cfg.seed };
    let todo: Vec<(Entity, ItemId, u16)> = active
        .0
        .iter()
        .filter_map(|&e| sessions.get(e).ok().map(|s| (e, s)))
        .flat_map(|(e, s)| s.watched.iter().enumerate().map(move |(k, &it)| (e, it, k as u16)))
        .collect();
    if todo.is_empty() {
        return;
    }
    let (answers, names): (Vec<Answer>, Vec<_>) = {
        let q = agents.p0();
        let batch: Vec<Request<'_>> = todo
            .iter()
            .filter_map(|&(e, item, step)| {
                let d = q.get(e).ok()?;
                Some(Request {
                    key: RequestKey { round: clock.round, phase: Phase::Feel, user: *d.0, step },
                    agent: view(d),
                    ask: Ask::Feel { item },
                })
            })
            .collect();
        let names = batch.iter().map(|r| (r.agent.id, r.agent.profile.name.clone())).collect();
        (behaviour.ask(&ctx, &batch, &mut bstats), names)
    };
    let mut hist = agents.p1();
    for ((&(e, item, _), answer), (uid, name)) in todo.iter().zip(answers).zip(names) {
        let Answer::Feel(f) = answer else { continue };
        log.say(uid, "RECOMMENDER", format!("{name} feels: {}", f.text));
        log.watched(uid, item, f.rating);
        if let (Some(u), Some(ix)) = (roster.index_of(uid), catalog.index_of(item)) {
            rec.log.rate(u, ix, f.rating);
        }
        if let Ok(mut h) = hist.get_mut(e) {
            Histories::push(&mut h.watched, (item, f.rating), cfg.history_size as usize, |w| w.0);
        }
        stats.ratings += 1;
        stats.rating_sum += u64::from(f.rating);
        obs.add(uid, clock.round, ObservationKind::Watched, Some(item), None, f.rating);
    }
}
