//! Activate: choose this round's active agents and ask each active agent's top-level choice
//! (recommender / social media / nothing; spec §1.5, §2.2).
//!
//! Phase: `SimPhase::Activate`. Settings: [`ActivationSettings`] (RecAgent's flat keys
//! `active_method`, `active_prob`, `active_agent_threshold`). State: [`Activity`] (checkpointed
//! as `activity`) and [`Choice`] on every agent. Reads: `Engagement`, agent data. Writes:
//! `Activity`, `Choice`, `ActiveAgents`, `RoundLog`, `PendingObservations`. Counters:
//! `active_agents`, `entered_recommender`, `entered_social`, `did_nothing`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::behaviour::{Behaviour, BehaviourStats};
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, ObservationKind, Profile};
use crate::config::SimConfig;
use crate::decision::top::{Top, TopAction};
use crate::decision::{Context, Request};
use crate::ids::UserId;
use crate::plugin::{
    check_range, CheckpointPart, ComponentPart, Counter, Counters, Settings, SimApp,
};
use crate::rng::{stream_rng, unit_hash, Stream};
use crate::sim::{
    view, ActiveAgents, AgentData, PendingObservations, RoundLog, SimPhase, SimSetup, SimTick,
};
use crate::world::Roster;

/// How active agents are chosen each round (`active_method`, RecAgent §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveMethod {
    /// Every agent acts with probability `active_prob`.
    Random,
    /// Per-agent activity levels from a Pareto (Lomax) draw with shape `10 × active_prob`,
    /// normalised by the maximum; an agent acts with probability equal to its level.
    Sample,
    /// As `sample`, but the probability grows with the rounds since the agent last acted:
    /// `level × (idle_rounds + 1)` (reset when the agent acts; RecAgent never reset it).
    Marginal,
}

/// Activation settings (RecAgent's top-level keys).
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivationSettings {
    /// `random`, `sample` or `marginal`.
    pub active_method: ActiveMethod,
    /// Activation probability (`random`) or Pareto shape / 10 (`sample`, `marginal`); (0, 1];
    /// default 0.8.
    pub active_prob: f64,
    /// Most agents active in one round (counted per round; empty or 0 = no cap; default 100).
    pub active_agent_threshold: Option<u32>,
}

impl Default for ActivationSettings {
    fn default() -> Self {
        Self {
            active_method: ActiveMethod::Random,
            // RecAgent's defaults are 1 and 100: here four agents in five act in a round.
            active_prob: 0.8,
            active_agent_threshold: Some(100),
        }
    }
}

impl Settings for ActivationSettings {
    const SECTION: Option<&'static str> = None;
    const FIXED: &'static [(&'static str, &'static str)] = &[(
        "active_method",
        "activity levels are drawn at the start of a run",
    )];
    const LIVE: &'static [&'static str] = &["active_prob"];
    /// The agents' activity levels follow the new `active_prob`: every level becomes it
    /// (`random`), or the levels are drawn again with the new shape from the same per-agent
    /// streams (`sample`, `marginal`); the idle counts stay.
    fn on_change(world: &mut World) {
        set_activity_levels(world, false);
    }
    fn validate(&self) -> Result<(), (String, String)> {
        if self.active_prob > 0.0 {
            check_range("active_prob", self.active_prob, ..=1.0, "(0, 1]")
        } else {
            check_range("active_prob", self.active_prob, 1.0.., "(0, 1]")
        }
    }
}

/// Activity level and counters (spec §1.5).
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Base probability of acting in a round, in (0, 1].
    pub level: f32,
    /// Rounds since the agent last acted (drives `marginal`).
    pub idle_rounds: u32,
}

/// This round's top-level choice ([`TopAction::Inactive`] for an agent not active).
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Choice(pub TopAction);

/// Agent activations, summed over rounds.
pub const ACTIVE_AGENTS: Counter = Counter::new("active_agents", "active agents");
/// Top-level choices: recommender.
pub const ENTERED_RECOMMENDER: Counter = Counter::new("entered_recommender", "recommender");
/// Top-level choices: social media.
pub const ENTERED_SOCIAL: Counter = Counter::new("entered_social", "social");
/// Top-level choices: nothing.
pub const DID_NOTHING: Counter = Counter::new("did_nothing", "nothing");

/// Registers activation and the top-level choice.
pub struct ActivatePlugin;

impl Plugin for ActivatePlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<ActivationSettings>()
            .add_decision::<Top>()
            .add_counters(
                "activity",
                &[ACTIVE_AGENTS, ENTERED_RECOMMENDER, ENTERED_SOCIAL, DID_NOTHING],
            )
            .add_summary("activity", |c| {
                Some(format!(
                    "active agents {} (summed over rounds) · recommender {} · social {} · nothing {}",
                    c.get("active_agents"),
                    c.get("entered_recommender"),
                    c.get("entered_social"),
                    c.get("did_nothing")
                ))
            })
            .add_agent_component::<Choice>()
            .add_agent_component::<Activity>()
            .checkpoint_part(ActivityPart(ComponentPart::new("activity")))
            .add_systems(SimSetup, init_activity)
            .add_systems(
                SimTick,
                (activate_agents, choose_top_actions)
                    .chain()
                    .in_set(SimPhase::Activate),
            );
    }
}

/// Lomax (Pareto II) draws with shape `shape`, normalised by their maximum (spec §1.5: numpy's
/// `pareto(shape)` is Lomax: `(1 − U)^(−1/shape) − 1`). One draw per user from its own stream.
pub fn activity_levels(seed: u64, ids: &[UserId], shape: f64) -> Vec<f32> {
    // Lomax draw d = (1 − U)^(−1/shape) − 1 = expm1(t) with t = −ln(1 − U)/shape. For tiny shapes
    // t is huge and d overflows, so the ratio d_i / d_max is taken in log space:
    // ln expm1(t) = t + ln(1 − e^(−t)) for large t.
    let ln_expm1 = |t: f64| {
        if t > 30.0 {
            t + (-(-t).exp()).ln_1p()
        } else {
            t.exp_m1().ln()
        }
    };
    let ts: Vec<f64> = ids
        .iter()
        .map(|u| {
            let mut r = stream_rng(seed, Stream::ActivityLevel, &[u64::from(u.0)]);
            let x: f64 = r.random::<f64>();
            -(1.0 - x).ln() / shape
        })
        .collect();
    let t_max = ts.iter().copied().fold(0.0f64, f64::max);
    if t_max <= 0.0 {
        return vec![1.0; ids.len()];
    }
    let l_max = ln_expm1(t_max);
    ts.iter()
        .map(|&t| {
            if t <= 0.0 {
                0.0
            } else {
                (ln_expm1(t) - l_max).exp() as f32
            }
        })
        .collect()
}

/// Sets every agent's [`Activity`] level: `active_prob` (`random`) or its Pareto level.
fn init_activity(world: &mut World) {
    set_activity_levels(world, true);
}

/// Sets every agent's activity level from the settings; `reset_idle`: the idle counts start at 0.
fn set_activity_levels(world: &mut World, reset_idle: bool) {
    let s = world.resource::<ActivationSettings>().clone();
    let seed = world.resource::<SimConfig>().seed;
    let roster = world.resource::<Roster>().clone();
    let levels = match s.active_method {
        ActiveMethod::Random => vec![s.active_prob as f32; roster.len()],
        ActiveMethod::Sample | ActiveMethod::Marginal => {
            activity_levels(seed, &roster.ids, 10.0 * s.active_prob)
        }
    };
    let mut q = world.query::<&mut Activity>();
    for (&e, level) in roster.entities.iter().zip(levels) {
        if let Ok(mut a) = q.get_mut(world, e) {
            a.level = level;
            if reset_idle {
                a.idle_rounds = 0;
            }
        }
    }
}

/// [`Activity`] in checkpoints; with `active_method: random` the level follows the current
/// `active_prob` (a branch may change it), the idle counts are restored.
struct ActivityPart(ComponentPart<Activity>);

impl CheckpointPart for ActivityPart {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        self.0.save(world)
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        self.0.restore(world, bytes)?;
        let s = world.resource::<ActivationSettings>().clone();
        if s.active_method == ActiveMethod::Random {
            let mut q = world.query::<&mut Activity>();
            for mut a in q.iter_mut(world) {
                a.level = s.active_prob as f32;
            }
        }
        Ok(())
    }
}

/// Activation (spec §1.5, with the per-round threshold and the `marginal` reset fixed).
///
/// In id order: an agent busy watching is inactive (`WATCH` message); with the round's count at
/// `active_agent_threshold` the rest are inactive; otherwise the agent acts when
/// `u ≤ p`, `u` a uniform draw keyed by (seed, round, user) and `p` = `active_prob` (`random`),
/// its Pareto level (`sample`), or `min(1, level × (idle_rounds + 1))` (`marginal`). Last
/// round's choices are cleared first.
pub fn activate_agents(
    cfg: Res<SimConfig>,
    settings: Res<ActivationSettings>,
    clock: Res<SimClock>,
    roster: Res<Roster>,
    mut active: ResMut<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut agents: Query<(&UserId, &Profile, &mut Activity, &Engagement)>,
    mut choices: Query<&mut Choice>,
) {
    for e in active.0.drain(..) {
        if let Ok(mut c) = choices.get_mut(e) {
            c.0 = TopAction::Inactive;
        }
    }
    let now = (clock.now() - clock.start).num_minutes();
    let cap = settings
        .active_agent_threshold
        .filter(|&t| t > 0)
        .map_or(usize::MAX, |t| t as usize);
    for &e in &roster.entities {
        let Ok((&uid, profile, mut act, eng)) = agents.get_mut(e) else {
            continue;
        };
        if eng.at(now) == EngagementKind::Watching {
            log.say_with(uid, "WATCH", || {
                format!("{} is watching a movie.", profile.name)
            });
            continue;
        }
        let p = match settings.active_method {
            ActiveMethod::Random | ActiveMethod::Sample => f64::from(act.level),
            ActiveMethod::Marginal => {
                (f64::from(act.level) * f64::from(act.idle_rounds + 1)).min(1.0)
            }
        };
        let u = unit_hash(
            cfg.seed,
            Stream::Activation,
            &[u64::from(clock.round), u64::from(uid.0)],
        );
        if active.0.len() < cap && u <= p {
            act.idle_rounds = 0;
            active.0.push(e);
        } else {
            act.idle_rounds += 1;
            log.say(uid, "NO_ACTION", "No action.".into());
        }
    }
    counters.add(&ACTIVE_AGENTS, active.0.len() as u64);
}

/// Asks every active agent's top-level choice in one batch and applies the answers in id order.
pub fn choose_top_actions(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<crate::catalog::Catalog>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    agents: Query<AgentData>,
    mut choices: Query<&mut Choice>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let answers =
        behaviour.ask_each::<Top, Entity>(&ctx, &mut bstats, active.0.iter().copied(), |&e| {
            let d = agents.get(e).ok()?;
            Some(Request::new(clock.round, 0, view(d), ()))
        });
    for (e, action) in answers {
        let (Ok(d), Ok(mut c)) = (agents.get(e), choices.get_mut(e)) else {
            continue;
        };
        let (uid, name) = (*d.0, &d.1.name);
        c.0 = action;
        let (kind, tag, text) = match action {
            TopAction::Recommender => {
                counters.add(&ENTERED_RECOMMENDER, 1);
                (
                    ObservationKind::EnteredRecommender,
                    "RECOMMENDER",
                    "enters the recommender system.",
                )
            }
            TopAction::Social => {
                counters.add(&ENTERED_SOCIAL, 1);
                (
                    ObservationKind::EnteredSocial,
                    "SOCIAL",
                    "enters the social media.",
                )
            }
            TopAction::Nothing | TopAction::Inactive => {
                counters.add(&DID_NOTHING, 1);
                (ObservationKind::DidNothing, "LEAVE", "does nothing.")
            }
        };
        log.say_with(uid, tag, || format!("{name} {text}"));
        obs.add(uid, clock.round, kind, None, None, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_levels_are_normalised_and_heavy_tailed() {
        let ids: Vec<UserId> = (0..10_000).map(UserId).collect();
        let l = activity_levels(7, &ids, 10.0);
        let max = l.iter().copied().fold(0.0f32, f32::max);
        assert_eq!(max, 1.0);
        assert!(l.iter().all(|&x| (0.0..=1.0).contains(&x)));
        // Lomax(10): mean 1/9, so the mean level is (1/9) / max; the max of 10,000 draws of
        // Lomax(10) is about 10000^(1/10) − 1 ≈ 1.51, giving a mean level near 0.07.
        let mean = l.iter().map(|&x| f64::from(x)).sum::<f64>() / l.len() as f64;
        assert!((0.04..0.11).contains(&mean), "{mean}");
        assert_eq!(l, activity_levels(7, &ids, 10.0));
    }

    #[test]
    fn tiny_shapes_stay_finite() {
        // shape 1e-29: the raw Lomax draws overflow to infinity; levels must stay in [0, 1].
        let ids: Vec<UserId> = (0..200).map(UserId).collect();
        let l = activity_levels(3, &ids, 1e-29);
        assert!(
            l.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)),
            "{l:?}"
        );
        assert_eq!(l.iter().copied().fold(0.0f32, f32::max), 1.0);
    }
}

#[cfg(test)]
mod system_tests {
    use super::*;
    use crate::components::MemoryRecord;
    use crate::decision::Script;
    use crate::testing::{obs, tiny};

    /// The documented rule: the agent acts when `u ≤ p`, `u = unit_hash(seed, Activation,
    /// [round, user])`.
    fn draw(seed: u64, round: u32, user: u32) -> f64 {
        unit_hash(
            seed,
            Stream::Activation,
            &[u64::from(round), u64::from(user)],
        )
    }

    #[test]
    fn activate_agents_draws_u_le_p_in_id_order_up_to_the_threshold() {
        const WATCHER: u32 = 5;
        let mut t = tiny(
            12,
            &[],
            "active_prob: 0.8\nactive_agent_threshold: 3\n",
            Script::new(),
        );
        t.at_round(2);
        let seed = t.sim.config().seed;
        // Every agent starts at `active_prob` (random method).
        assert_eq!(t.get::<Activity>(4).level, 0.8);
        // One agent is busy watching until a minute from now; last round, agents 0 and 11 were
        // active and chose something.
        let now = t.now_minutes();
        t.set(
            WATCHER,
            Engagement {
                kind: EngagementKind::Watching,
                until_minutes: now + 1,
            },
        );
        t.set(
            WATCHER,
            Activity {
                level: 0.8,
                idle_rounds: 4,
            },
        );
        // An engagement that ends now is over: agent 2 (whose draw passes) acts.
        assert!(draw(seed, 2, 2) <= 0.8);
        t.set(
            2,
            Engagement {
                kind: EngagementKind::Watching,
                until_minutes: now,
            },
        );
        t.activate(&[0, 11]);
        t.set(0, Choice(TopAction::Social));
        t.set(11, Choice(TopAction::Recommender));

        t.run(activate_agents);

        let passing: Vec<u32> = (0..12)
            .filter(|&u| u != WATCHER && draw(seed, 2, u) <= 0.8)
            .collect();
        // Preconditions, so that both rules decide something: the watcher's own draw would
        // have made it active among the first three, and more agents pass than the threshold.
        assert!(
            draw(seed, 2, WATCHER) <= 0.8 && passing.iter().filter(|&&u| u < WATCHER).count() < 3
        );
        assert!(
            passing.len() > 3,
            "the seed must let more agents pass than the threshold: {passing:?}"
        );
        let expected: Vec<u32> = passing[..3].to_vec();
        assert!(expected.contains(&2));
        assert_eq!(t.active_ids(), expected);
        assert_eq!(t.counter("active_agents"), 3);
        for u in 0..12u32 {
            let a = t.get::<Activity>(u);
            let want = if u == WATCHER {
                4 // skipped: neither reset nor counted idle
            } else if expected.contains(&u) {
                0
            } else {
                1
            };
            assert_eq!(a.idle_rounds, want, "agent {u}");
        }
        // Messages in id order: WATCH for the watcher, NO_ACTION for everyone left out.
        let mut want_msgs = Vec::new();
        for u in 0..12u32 {
            if u == WATCHER {
                want_msgs.push((5, "WATCH", "U5 is watching a movie.".to_string()));
            } else if !expected.contains(&u) {
                want_msgs.push((i64::from(u), "NO_ACTION", "No action.".to_string()));
            }
        }
        assert_eq!(t.messages(), want_msgs);
        // Last round's choices were cleared.
        for u in [0, 11] {
            assert_eq!(t.get::<Choice>(u).0, TopAction::Inactive, "agent {u}");
        }
    }

    #[test]
    fn activate_agents_marginal_grows_p_with_idle_rounds() {
        let mut t = tiny(10, &[], "active_prob: 0.5\n", Script::new());
        t.at_round(4);
        let seed = t.sim.config().seed;
        t.world_mut()
            .resource_mut::<ActivationSettings>()
            .active_method = ActiveMethod::Marginal;
        // Levels 0.1 .. 0.4 and idle rounds 0 .. 4: p = min(1, level × (idle + 1)).
        let setup: Vec<(f32, u32)> = (0..10u32)
            .map(|u| (0.1 * (1 + u % 4) as f32, u % 5))
            .collect();
        for (u, &(level, idle_rounds)) in setup.iter().enumerate() {
            t.set(u as u32, Activity { level, idle_rounds });
        }

        t.run(activate_agents);

        let p = |u: usize| {
            let (level, idle) = setup[u];
            (f64::from(level) * f64::from(idle + 1)).min(1.0)
        };
        let expected: Vec<u32> = (0..10u32)
            .filter(|&u| draw(seed, 4, u) <= p(u as usize))
            .collect();
        // The multiplier decides for some agent: its draw is above its level, below its p.
        assert!(
            (0..10).any(|u| {
                let d = draw(seed, 4, u as u32);
                d > f64::from(setup[u].0) && d <= p(u)
            }),
            "no agent is active only because of its idle rounds"
        );
        assert_eq!(t.active_ids(), expected);
        for u in 0..10u32 {
            let want = if expected.contains(&u) {
                0
            } else {
                setup[u as usize].1 + 1
            };
            assert_eq!(t.get::<Activity>(u).idle_rounds, want, "agent {u}");
        }
    }

    #[test]
    fn choose_top_actions_sets_choice_counters_messages_and_observations() {
        // 0 recommender, 1 social, 2 nothing, 3 an answer that does not fit (Inactive: replaced
        // by the fallback, nothing, and counted), 4 unscripted (the fallback, not counted).
        let script = Script::new().on::<Top>(|r, _| match r.agent.id.0 {
            0 => Some(TopAction::Recommender),
            1 => Some(TopAction::Social),
            2 => Some(TopAction::Nothing),
            3 => Some(TopAction::Inactive),
            _ => None,
        });
        let mut t = tiny(6, &[], "", script);
        t.at_round(1);
        t.activate(&[0, 1, 2, 3, 4]);

        t.run(choose_top_actions);

        let choices: Vec<TopAction> = (0..6).map(|u| t.get::<Choice>(u).0).collect();
        assert_eq!(
            choices,
            [
                TopAction::Recommender,
                TopAction::Social,
                TopAction::Nothing,
                TopAction::Nothing,
                TopAction::Nothing,
                TopAction::Inactive, // not active: not asked
            ]
        );
        assert_eq!(t.counter("entered_recommender"), 1);
        assert_eq!(t.counter("entered_social"), 1);
        assert_eq!(t.counter("did_nothing"), 3);
        assert_eq!(t.requests_and_fallbacks("top"), (5, 1));
        assert_eq!(
            t.messages(),
            vec![
                (
                    0,
                    "RECOMMENDER",
                    "U0 enters the recommender system.".to_string()
                ),
                (1, "SOCIAL", "U1 enters the social media.".to_string()),
                (2, "LEAVE", "U2 does nothing.".to_string()),
                (3, "LEAVE", "U3 does nothing.".to_string()),
                (4, "LEAVE", "U4 does nothing.".to_string()),
            ]
        );
        use ObservationKind as K;
        let want: Vec<(UserId, MemoryRecord)> = vec![
            obs(0, 1, K::EnteredRecommender, None, None, 0),
            obs(1, 1, K::EnteredSocial, None, None, 0),
            obs(2, 1, K::DidNothing, None, None, 0),
            obs(3, 1, K::DidNothing, None, None, 0),
            obs(4, 1, K::DidNothing, None, None, 0),
        ];
        assert_eq!(t.pending(), want);
    }
}
