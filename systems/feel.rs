//! Feel: after watching, the agent rates the item 1..=5 and says how it felt (spec §2.3 BUY).
//!
//! Phase: `SimPhase::Feel`. Reads: agent data, `Browsing.watched`. Writes: `Histories.watched`,
//! `RecState.log` (rating), `RoundLog`, `PendingObservations`. Counters: `ratings`,
//! `rating_sum`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use super::recommend::Browsing;
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Histories, ObservationKind, Profile};
use crate::config::SimConfig;
use crate::decision::feel::Feel;
use crate::decision::{Context, Request};
use crate::ids::{ItemId, UserId};
use crate::plugin::{Counter, Counters, SimApp};
use crate::sim::{
    view, ActiveAgents, AgentData, PendingObservations, RecState, RoundLog, SimPhase, SimTick,
};
use crate::world::Roster;

/// Ratings given.
pub const RATINGS: Counter = Counter::new("ratings", "ratings");
/// Sum of ratings (with `ratings`, the mean rating).
pub const RATING_SUM: Counter = Counter::new("rating_sum", "rating sum");

/// Registers feelings.
pub struct FeelPlugin;

impl Plugin for FeelPlugin {
    fn build(&self, app: &mut App) {
        app.add_decision::<Feel>()
            .add_counters("ratings", &[RATINGS, RATING_SUM])
            .add_summary("ratings", |c| {
                let n = c.get("ratings");
                Some(if n == 0 {
                    "mean rating -".to_string()
                } else {
                    format!(
                        "mean rating {:.2} ({n} ratings)",
                        c.get("rating_sum") as f64 / n as f64
                    )
                })
            })
            .add_systems(SimTick, form_feelings.in_set(SimPhase::Feel));
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
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    sessions: Query<&Browsing>,
    names: Query<(&UserId, &Profile)>,
    mut agents: ParamSet<(Query<AgentData>, Query<&mut Histories>)>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let todo: Vec<(Entity, ItemId, u16)> = active
        .0
        .iter()
        .filter_map(|&e| sessions.get(e).ok().map(|s| (e, s)))
        .flat_map(|(e, s)| {
            s.watched
                .iter()
                .enumerate()
                .map(move |(k, &it)| (e, it, k as u16))
        })
        .collect();
    if todo.is_empty() {
        return;
    }
    let answers = {
        let q = agents.p0();
        behaviour.ask_each::<Feel, _>(&ctx, &mut bstats, todo, |&(e, item, step)| {
            let d = q.get(e).ok()?;
            Some(Request::new(clock.round, step, view(d), item))
        })
    };
    let history = cfg.history_size as usize;
    let mut hist = agents.p1();
    for ((e, item, _), f) in answers {
        let Ok((&uid, profile)) = names.get(e) else {
            continue;
        };
        log.say_with(uid, "RECOMMENDER", || {
            format!("{} feels: {}", profile.name, f.text)
        });
        log.watched(uid, item, f.rating);
        if let (Some(u), Some(ix)) = (roster.index_of(uid), catalog.index_of(item)) {
            rec.log.rate(u, ix, f.rating);
        }
        if let Ok(mut h) = hist.get_mut(e) {
            Histories::push(&mut h.watched, (item, f.rating), history, |w| w.0);
        }
        counters.add(&RATINGS, 1);
        counters.add(&RATING_SUM, u64::from(f.rating));
        obs.add(
            uid,
            clock.round,
            ObservationKind::Watched,
            Some(item),
            None,
            f.rating,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::Feeling;
    use crate::decision::Script;
    use crate::testing::{obs, tiny, HEAT, MATRIX, TOY_STORY};

    #[test]
    fn form_feelings_rates_each_watch_into_history_log_and_counters() {
        // Stars by item: The Matrix 5, Toy Story 2; Heat 9, off the scale (the fallback: 3).
        let script = Script::new().on::<Feel>(|r, _| {
            let rating = match r.ask {
                MATRIX => 5,
                TOY_STORY => 2,
                _ => 9,
            };
            Some(Feeling {
                rating,
                text: format!("felt {}", r.ask),
            })
        });
        let mut t = tiny(3, &[], "history_size: 2\n", script);
        t.at_round(3);
        t.activate(&[0, 1]);
        let watched = |items: Vec<ItemId>| Browsing {
            watched: items,
            ..Default::default()
        };
        // 0 watched two items this round; its history already holds Heat and Toy Story.
        t.set(0, watched(vec![MATRIX, TOY_STORY]));
        t.set(
            0,
            Histories {
                watched: vec![(HEAT, 4), (TOY_STORY, 5)],
                heard: vec![],
            },
        );
        t.set(1, watched(vec![HEAT]));
        t.set(2, watched(vec![MATRIX])); // not active: not asked
        {
            let mut rec = t.rec_mut();
            for (u, i) in [(0, 1), (0, 0), (1, 2)] {
                rec.log.watch(u, i, 0, 3);
            }
        }

        t.run(form_feelings);

        // Push (Matrix, 5): [Heat, Toy, Matrix] capped at 2 → [Toy, Matrix]; push (Toy, 2):
        // the earlier Toy Story is removed → [Matrix, Toy].
        assert_eq!(
            t.get::<Histories>(0).watched,
            vec![(MATRIX, 5), (TOY_STORY, 2)]
        );
        assert_eq!(t.get::<Histories>(1).watched, vec![(HEAT, 3)]);
        assert!(t.get::<Histories>(2).watched.is_empty());
        assert_eq!(
            t.rec().log.watches(),
            &[(0, 1, 5, 3), (0, 0, 2, 3), (1, 2, 3, 3)]
        );
        assert_eq!(t.counter("ratings"), 3);
        assert_eq!(t.counter("rating_sum"), 5 + 2 + 3);
        assert_eq!(t.requests_and_fallbacks("feel"), (3, 1));
        assert_eq!(
            t.messages(),
            vec![
                (0, "RECOMMENDER", "U0 feels: felt 1".to_string()),
                (0, "RECOMMENDER", "U0 feels: felt 0".to_string()),
                (
                    1,
                    "RECOMMENDER",
                    "U1 feels: I have no strong feelings about it.".to_string()
                ),
            ]
        );
        assert_eq!(
            t.interactions(),
            vec![(0, 1, 1, 5), (0, 0, 1, 2), (1, 2, 1, 3)]
        );
        use ObservationKind::Watched;
        assert_eq!(
            t.pending(),
            vec![
                obs(0, 3, Watched, Some(MATRIX), None, 5),
                obs(0, 3, Watched, Some(TOY_STORY), None, 2),
                obs(1, 3, Watched, Some(HEAT), None, 3),
            ]
        );
    }
}
