//! Activate: read last round's posts, choose this round's active agents, and ask each active
//! agent's top-level choice (recommender / social media / nothing; spec §1.5, §2.2).
//!
//! Phase: `SimPhase::Activate`. Reads: `Activity`, `Engagement`, agent data. Writes: `Inbox`,
//! `Histories` (heard), `Activity`, `Session.action`, `ActiveAgents`, `RoundLog`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{
    Activity, Engagement, EngagementKind, Histories, Inbox, ObservationKind, Post, Profile, Session, TopAction,
};
use crate::config::{ActiveMethod, SimConfig};
use crate::ids::UserId;
use crate::rng::{unit_hash, Stream};
use crate::sim::{view, ActiveAgents, AgentData, PendingObservations, PostBoard, RoundLog, RunStats, SimPhase, SimTick};
use crate::world::Roster;

/// Registers the activate systems.
pub struct ActivatePlugin;

impl Plugin for ActivatePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, (read_inbox, activate_agents, choose_top_actions).chain().in_set(SimPhase::Activate));
    }
}

/// Recipients read the posts delivered last round, in reader-id order and, per reader, in
/// delivery (author-id) order: each post becomes a memory observation carrying the post's shared
/// text, its mentioned items join the heard history as heard this round (the offline model's
/// decaying `h(u,i)`), and a `POST` message `"<reader> observes that <author> posts: <text>"` is
/// emitted. Read posts are then despawned.
pub fn read_inbox(
    mut commands: Commands,
    mut board: ResMut<PostBoard>,
    clock: Res<SimClock>,
    cfg: Res<SimConfig>,
    mut log: ResMut<RoundLog>,
    mut obs: ResMut<PendingObservations>,
    posts: Query<&Post>,
    names: Query<&Profile>,
    roster: Res<Roster>,
    mut readers: Query<(&UserId, &mut Inbox, &mut Histories)>,
) {
    let mut recipients = std::mem::take(&mut board.recipients);
    recipients.sort_by_key(|e| readers.get(*e).map(|r| *r.0).ok());
    recipients.dedup();
    for e in recipients {
        let Ok((&uid, mut inbox, mut hist)) = readers.get_mut(e) else { continue };
        let reader_name = names.get(e).map(|p| p.name.clone()).unwrap_or_default();
        for pid in std::mem::take(&mut inbox.0) {
            let Some(post) = board.live.get(&pid).and_then(|pe| posts.get(*pe).ok()) else { continue };
            for &m in &post.mentions {
                hist.hear(m, clock.round, cfg.history_size as usize);
            }
            obs.add_text(
                uid,
                clock.round,
                ObservationKind::ReadPost,
                post.mentions.first().copied(),
                Some(post.author),
                post.text.clone(),
            );
            let author = roster.entity(post.author).and_then(|a| names.get(a).ok()).map(|p| p.name.clone()).unwrap_or_default();
            log.say(uid, "POST", format!("{reader_name} observes that {author} posts: {}", post.text));
        }
    }
    // Every recipient has read; posts from earlier rounds are done.
    let round = clock.round;
    let done: Vec<_> = board
        .live
        .iter()
        .filter(|(_, e)| posts.get(**e).is_ok_and(|p| p.round < round))
        .map(|(id, e)| (*id, *e))
        .collect();
    for (id, e) in done {
        board.live.remove(&id);
        commands.entity(e).despawn();
    }
}

/// Activation (spec §1.5, with the per-round threshold and the `marginal` reset fixed).
///
/// In id order: an agent busy watching is inactive (`WATCH` message); with the round's count at
/// `active_agent_threshold` the rest are inactive; otherwise the agent acts when
/// `u ≤ p`, `u` a uniform draw keyed by (seed, round, user) and `p` = `active_prob` (`random`),
/// its Pareto level (`sample`), or `min(1, level × (idle_rounds + 1))` (`marginal`).
pub fn activate_agents(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    roster: Res<Roster>,
    mut active: ResMut<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut agents: Query<(&UserId, &Profile, &mut Activity, &Engagement)>,
) {
    let now = (clock.now() - clock.start).num_minutes();
    let cap = cfg.active_agent_threshold.filter(|&t| t > 0).map_or(usize::MAX, |t| t as usize);
    active.0.clear();
    for &e in &roster.entities {
        let Ok((&uid, profile, mut act, eng)) = agents.get_mut(e) else { continue };
        if eng.at(now) == EngagementKind::Watching {
            log.say(uid, "WATCH", format!("{} is watching a movie.", profile.name));
            continue;
        }
        let p = match cfg.active_method {
            ActiveMethod::Random | ActiveMethod::Sample => f64::from(act.level),
            ActiveMethod::Marginal => (f64::from(act.level) * f64::from(act.idle_rounds + 1)).min(1.0),
        };
        let u = unit_hash(cfg.seed, Stream::Activation, &[u64::from(clock.round), u64::from(uid.0)]);
        if active.0.len() < cap && u <= p {
            act.idle_rounds = 0;
            active.0.push(e);
        } else {
            act.idle_rounds += 1;
            log.say(uid, "NO_ACTION", "No action.".into());
        }
    }
    stats.active_agents += active.0.len() as u64;
}

/// Asks every active agent's top-level choice in one batch and applies the answers in id order.
pub fn choose_top_actions(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut obs: ResMut<PendingObservations>,
    agents: Query<AgentData>,
    mut sessions: Query<&mut Session>,
) {
    let ctx = Context { catalog: &catalog, clock: &clock, seed: cfg.seed };
    let batch: Vec<Request<'_>> = active
        .0
        .iter()
        .filter_map(|&e| agents.get(e).ok())
        .map(|d| Request {
            key: RequestKey { round: clock.round, phase: Phase::Activity, user: *d.0, step: 0 },
            agent: view(d),
            ask: Ask::TopLevel,
        })
        .collect();
    let answers = behaviour.ask(&ctx, &batch, &mut bstats);
    drop(batch);
    for (&e, answer) in active.0.iter().zip(answers) {
        let (Ok(d), Ok(mut s)) = (agents.get(e), sessions.get_mut(e)) else { continue };
        let Answer::Top(action) = answer else { continue };
        let (uid, name) = (*d.0, &d.1.name);
        s.action = action;
        let (kind, text) = match action {
            TopAction::Recommender => {
                stats.entered_recommender += 1;
                (ObservationKind::EnteredRecommender, ("RECOMMENDER", format!("{name} enters the recommender system.")))
            }
            TopAction::Social => {
                stats.entered_social += 1;
                (ObservationKind::EnteredSocial, ("SOCIAL", format!("{name} enters the social media.")))
            }
            TopAction::Nothing | TopAction::Inactive => {
                stats.did_nothing += 1;
                (ObservationKind::DidNothing, ("LEAVE", format!("{name} does nothing.")))
            }
        };
        log.say(uid, text.0, text.1);
        obs.add(uid, clock.round, kind, None, None, 0);
    }
}
