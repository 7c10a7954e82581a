//! Record: from the round's interactions and mentions, the item counters are updated, and the
//! recommender is re-fitted on the interaction log every `retrain_every` rounds. (The engine
//! writes the round's outputs after this, in `SimPhase::End`.)
//!
//! Phase: `SimPhase::Record`. Settings: [`RecordSettings`] (`retrain_every`, `retrain_pairs`). State:
//! [`ItemStats`] on every item (checkpointed as `item_stats`). Reads: `RoundLog`. Writes:
//! `ItemStats`, `RecState.model`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::ids::ItemId;
use crate::plugin::{check_range, Settings, SimApp};
use crate::sim::{RecState, RoundLog, SimPhase, SimTick};
use crate::world::ItemEntities;

/// Retraining settings.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Re-fit the recommender every this many rounds (after the round's interactions are
    /// recorded); 0 = never after the initial fit; 0..=1,000,000. Default 1.
    pub retrain_every: u32,
    /// Most watches one re-fit trains on, for a model that re-fits incrementally (MF): the
    /// watches since its previous fit, then a replayed sample of earlier ones; a log that holds
    /// no more is re-fitted in full. 0 = every re-fit is a full one, whose cost grows with the
    /// log (at a million agents, 10 epochs over every watch so far). 0..=1,000,000,000.
    /// Default 250,000: at a million agents, a bit under half a round's watches, and 10
    /// epochs of it take 2.5-3.3 s on one core (500,000: 5.5-8.1 s).
    pub retrain_pairs: u64,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            retrain_every: 1,
            retrain_pairs: 250_000,
        }
    }
}

impl Settings for RecordSettings {
    const SECTION: Option<&'static str> = None;
    fn validate(&self) -> Result<(), (String, String)> {
        check_range(
            "retrain_every",
            self.retrain_every,
            0..=1_000_000,
            "0..=1000000",
        )?;
        check_range(
            "retrain_pairs",
            self.retrain_pairs,
            0..=1_000_000_000,
            "0..=1000000000",
        )
    }
}

/// Per-item counters, updated at the end of each round.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Rounds in which the item was shown to a user, summed over users (a (user, item) pair
    /// counts once per round however many pages showed it; `items_shown` counts every showing).
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
    mut log: ResMut<RoundLog>,
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
        let budget = usize::try_from(settings.retrain_pairs).unwrap_or(usize::MAX);
        rec.model.refit(&rec.log, budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Script;
    use crate::ids::UserId;
    use crate::rng::{stream_rng, Stream};
    use crate::testing::{tiny, TestSim, HEAT, MATRIX, TOY_STORY};

    fn stats(t: &TestSim) -> Vec<ItemStats> {
        let w = t.world();
        w.resource::<ItemEntities>()
            .0
            .iter()
            .map(|&e| *w.get::<ItemStats>(e).unwrap())
            .collect()
    }

    /// The model's ranking of every item for agent 0 (Popularity: by watches at the last fit).
    fn ranking(t: &TestSim) -> Vec<u32> {
        let mut rng = stream_rng(0, Stream::Recommender, &[]);
        t.rec().model.recommend(0, 3, &|_| false, &mut rng).items
    }

    #[test]
    fn record_round_bumps_item_stats_from_the_round_log() {
        let mut t = tiny(2, &[], "retrain_every: 0\n", Script::new());
        t.at_round(1);
        let toy = t.world().resource::<ItemEntities>().0[0];
        t.world_mut().entity_mut(toy).insert(ItemStats {
            exposures: 10,
            watches: 1,
            rating_sum: 4,
            mentions: 0,
        });
        {
            let mut log = t.world_mut().resource_mut::<RoundLog>();
            // User 0: shown Toy Story twice (one interaction) and The Matrix, watched The
            // Matrix (4 stars). User 1: shown Toy Story, watched Heat (5 stars).
            log.shown(UserId(0), TOY_STORY);
            log.shown(UserId(0), TOY_STORY);
            log.shown(UserId(0), MATRIX);
            log.watched(UserId(0), MATRIX, 4);
            log.shown(UserId(1), TOY_STORY);
            log.watched(UserId(1), HEAT, 0);
            log.watched(UserId(1), HEAT, 5);
            log.mentions = vec![HEAT, HEAT, TOY_STORY, ItemId(99)];
        }

        t.run(record_round);

        assert_eq!(
            stats(&t),
            vec![
                ItemStats {
                    exposures: 12,
                    watches: 1,
                    rating_sum: 4,
                    mentions: 1,
                },
                ItemStats {
                    exposures: 1,
                    watches: 1,
                    rating_sum: 4,
                    mentions: 0,
                },
                ItemStats {
                    exposures: 1,
                    watches: 1,
                    rating_sum: 5,
                    mentions: 2,
                },
            ]
        );
    }

    #[test]
    fn record_round_refits_the_model_every_retrain_every_rounds() {
        let mut t = tiny(1, &[], "retrain_every: 2\n", Script::new());
        // Fitted at build on an empty log: ids in order.
        assert_eq!(ranking(&t), vec![0, 1, 2]);
        let mut after = Vec::new();
        for (round, watch, times) in [(1, 2, 1), (2, 0, 0), (3, 1, 2), (4, 0, 0)] {
            t.at_round(round);
            for _ in 0..times {
                t.rec_mut().log.watch(0, watch, 0, round);
            }
            t.run(record_round);
            after.push(ranking(&t));
        }
        // Round 1: a watch of Heat, not fitted; round 2: fitted (Heat first); round 3: two
        // watches of The Matrix, not fitted; round 4: fitted (The Matrix 2, Heat 1, Toy 0).
        assert_eq!(
            after,
            vec![vec![0, 1, 2], vec![2, 0, 1], vec![2, 0, 1], vec![1, 2, 0]]
        );
    }
}
