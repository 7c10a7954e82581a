//! Record: from the round's interactions and mentions, the item counters are updated, and the
//! recommender is re-fitted on the interaction log every `retrain_every` rounds. (The engine
//! writes the round's outputs after this, in `SimPhase::End`.)
//!
//! Phase: `SimPhase::Record`. Settings: [`RecordSettings`] (`retrain_every`). State:
//! [`ItemStats`] on every item (checkpointed as `item_stats`). Reads: `RoundLog`. Writes:
//! `ItemStats`, `RecState.model`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::ids::ItemId;
use crate::plugin::{Settings, SimApp};
use crate::sim::{RecState, RoundLog, SimPhase, SimTick};
use crate::world::ItemEntities;

/// Retraining settings.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Re-fit the recommender every this many rounds (after the round's interactions are
    /// recorded); 0 = never after the initial fit; 0..=1,000,000. Default 1.
    pub retrain_every: u32,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self { retrain_every: 1 }
    }
}

impl Settings for RecordSettings {
    const SECTION: Option<&'static str> = None;
    fn validate(&self) -> Result<(), (String, String)> {
        if self.retrain_every > 1_000_000 {
            return Err((
                "retrain_every".into(),
                format!(
                    "{} is out of range: allowed 0..=1000000",
                    self.retrain_every
                ),
            ));
        }
        Ok(())
    }
}

/// Per-item counters, updated at the end of each round.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Times shown on a page.
    pub exposures: u64,
    /// Times watched.
    pub watches: u64,
    /// Sum of ratings given.
    pub rating_sum: u64,
    /// Times mentioned in chats and posts.
    pub mentions: u64,
}

/// Registers item counters and retraining.
pub struct RecordPlugin;

impl Plugin for RecordPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<RecordSettings>()
            .add_item_component::<ItemStats>()
            .checkpoint_component::<ItemStats>("item_stats")
            .add_systems(SimTick, record_round.in_set(SimPhase::Record));
    }
}

/// Updates the item counters from the round's interactions and mentions, and re-fits the model.
pub fn record_round(
    clock: Res<SimClock>,
    settings: Res<RecordSettings>,
    catalog: Res<Catalog>,
    items: Res<ItemEntities>,
    log: Res<RoundLog>,
    mut rec: ResMut<RecState>,
    mut item_stats: Query<&mut ItemStats>,
) {
    let mut bump = |id, f: &dyn Fn(&mut ItemStats)| {
        if let Some(mut s) = catalog
            .index_of(id)
            .and_then(|ix| item_stats.get_mut(items.0[ix as usize]).ok())
        {
            f(&mut s);
        }
    };
    for r in log.interactions() {
        bump(ItemId(r.item), &|s| {
            s.exposures += 1;
            if r.label == 1 {
                s.watches += 1;
                s.rating_sum += u64::from(r.rating);
            }
        });
    }
    for &m in &log.mentions {
        bump(m, &|s| s.mentions += 1);
    }
    let rec = &mut *rec;
    if settings.retrain_every > 0 && clock.round.is_multiple_of(settings.retrain_every) {
        rec.model.fit(&rec.log);
    }
}
