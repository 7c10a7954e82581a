//! Record: the round's messages and interactions are appended to the output files and flushed,
//! item counters are updated, and the recommender is re-fitted on the interaction log every
//! `retrain_every` rounds.
//!
//! Phase: `SimPhase::Record`. Writes: `OutputSink`, `ItemStats`, `RecState.model`, `RunStats`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::catalog::Catalog;
use crate::clock::{format_timestamp, SimClock};
use crate::components::ItemStats;
use crate::io::output::OutputSink;
use crate::sim::{OutputError, RecState, RoundLog, RunStats, SimError, SimPhase, SimTick};
use crate::world::ItemEntities;

/// Registers the record system.
pub struct RecordPlugin;

impl Plugin for RecordPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, record_round.in_set(SimPhase::Record));
    }
}

/// Writes the round out and updates counters and the model.
pub fn record_round(
    clock: Res<SimClock>,
    cfg: Res<crate::config::SimConfig>,
    catalog: Res<Catalog>,
    items: Res<ItemEntities>,
    mut log: ResMut<RoundLog>,
    mut sink: ResMut<OutputSink>,
    mut rec: ResMut<RecState>,
    mut stats: ResMut<RunStats>,
    mut error: ResMut<OutputError>,
    mut item_stats: Query<&mut ItemStats>,
) {
    let (messages, interactions) = log.take_sorted();
    let mentions = std::mem::take(&mut log.mentions);
    let time = format_timestamp(clock.now());
    if let Err(e) = sink.write_round(clock.round, &time, &messages, &interactions) {
        error.0 = Some(SimError::File(e));
    }
    let mut bump = |id, f: &dyn Fn(&mut ItemStats)| {
        if let Some(mut s) = catalog.index_of(id).and_then(|ix| item_stats.get_mut(items.0[ix as usize]).ok()) {
            f(&mut s);
        }
    };
    for r in &interactions {
        bump(crate::ids::ItemId(r.item), &|s| {
            s.exposures += 1;
            if r.label == 1 {
                s.watches += 1;
                s.rating_sum += u64::from(r.rating);
            }
        });
    }
    for m in mentions {
        bump(m, &|s| s.mentions += 1);
    }
    let rec = &mut *rec;
    if cfg.retrain_every > 0 && clock.round.is_multiple_of(cfg.retrain_every) {
        rec.model.fit(&rec.log);
    }
    stats.rounds = clock.round;
}
