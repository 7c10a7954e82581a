//! Chat: agents who chose social media pick chat or post (spec §2.4); chats are written as one
//! dialogue per pair. A partner must be a contact (keyed by id, never by name), idle at the round's
//! time and not already in a chat this round; conflicts are settled in initiator-id order.
//!
//! Phase: `SimPhase::Chat`. Reads: agent data, `Engagement`. Writes: `Session` (chat / post plan),
//! `Engagement` (chatting 1 h), `Histories.heard` (listener), `RoundLog`, `RunStats`.

use std::collections::BTreeSet;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey, SocialAction};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, Histories, ObservationKind, Session, TopAction};
use crate::config::SimConfig;
use crate::ids::UserId;
use crate::sim::{view, ActiveAgents, AgentData, PendingObservations, RoundLog, RunStats, SimPhase, SimTick};
use crate::world::Roster;

/// Simulated minutes a chat keeps both agents busy.
pub const CHAT_MINUTES: i64 = 60;

/// Registers the chat systems.
pub struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, (choose_social_actions, hold_chats).chain().in_set(SimPhase::Chat));
    }
}

/// Asks each social agent with contacts to chat (with an available contact) or post.
pub fn choose_social_actions(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    agents: Query<AgentData>,
    mut sessions: Query<&mut Session>,
    mut engagement: Query<&mut Engagement>,
) {
    let ctx = Context { catalog: &catalog, clock: &clock, seed: cfg.seed };
    let now = (clock.now() - clock.start).num_minutes();
    let mut social: Vec<(Entity, Vec<UserId>)> = Vec::new();
    for &e in &active.0 {
        let (Ok(d), Ok(s)) = (agents.get(e), sessions.get(e)) else { continue };
        if s.action != TopAction::Social {
            continue;
        }
        if d.4 .0.is_empty() {
            log.say(*d.0, "SOCIAL", format!("{} has no acquaintance.", d.1.name));
            stats.no_acquaintance += 1;
            continue;
        }
        log.say(*d.0, "SOCIAL", format!("{} is going to social media.", d.1.name));
        let available: Vec<UserId> = d
            .4
             .0
            .iter()
            .filter(|c| {
                roster.entity(c.user).and_then(|pe| engagement.get(pe).ok()).is_some_and(|g| g.at(now) == EngagementKind::Idle)
            })
            .map(|c| c.user)
            .collect();
        social.push((e, available));
    }
    let batch: Vec<Request<'_>> = social
        .iter()
        .filter_map(|(e, avail)| {
            let d = agents.get(*e).ok()?;
            Some(Request {
                key: RequestKey { round: clock.round, phase: Phase::Chat, user: *d.0, step: 0 },
                agent: view(d),
                ask: Ask::Social { available: avail },
            })
        })
        .collect();
    let answers = behaviour.ask(&ctx, &batch, &mut bstats);
    drop(batch);
    let mut busy: BTreeSet<UserId> = BTreeSet::new();
    for ((e, _), answer) in social.iter().zip(answers) {
        let (Ok(d), Ok(mut s)) = (agents.get(*e), sessions.get_mut(*e)) else { continue };
        let Answer::Social(choice) = answer else { continue };
        let uid = *d.0;
        match choice {
            SocialAction::Post => s.post = true,
            SocialAction::Chat(partner) => {
                let pname = roster.entity(partner).and_then(|pe| agents.get(pe).ok()).map(|p| p.1.name.clone()).unwrap_or_default();
                if busy.contains(&uid) || busy.contains(&partner) {
                    log.say(uid, "LEAVE", format!("{} wants to chat with {pname} ({partner}), but one of them is already chatting. So {} does nothing.", d.1.name, d.1.name));
                    continue;
                }
                busy.insert(uid);
                busy.insert(partner);
                s.chat_with = Some(partner);
                for pe in [Some(*e), roster.entity(partner)].into_iter().flatten() {
                    if let Ok(mut g) = engagement.get_mut(pe) {
                        *g = Engagement { kind: EngagementKind::Chatting, until_minutes: now + CHAT_MINUTES };
                    }
                }
            }
        }
    }
}

/// Writes every planned chat in one batch; the lines go to the initiator's messages, mentioned
/// items join the listener's heard history, and both agents observe the chat.
pub fn hold_chats(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut obs: ResMut<PendingObservations>,
    sessions: Query<&Session>,
    mut agents: ParamSet<(Query<AgentData>, Query<&mut Histories>)>,
) {
    let ctx = Context { catalog: &catalog, clock: &clock, seed: cfg.seed };
    let pairs: Vec<(Entity, Entity)> = active
        .0
        .iter()
        .filter_map(|&e| Some((e, roster.entity(sessions.get(e).ok()?.chat_with?)?)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let (answers, meta) = {
        let q = agents.p0();
        let batch: Vec<Request<'_>> = pairs
            .iter()
            .filter_map(|&(a, b)| {
                let (da, db) = (q.get(a).ok()?, q.get(b).ok()?);
                Some(Request {
                    key: RequestKey { round: clock.round, phase: Phase::Chat, user: *da.0, step: 1 },
                    agent: view(da),
                    ask: Ask::Chat { partner: view(db), max_turns: cfg.offline.chat_turns },
                })
            })
            .collect();
        let meta: Vec<_> = batch
            .iter()
            .map(|r| {
                let Ask::Chat { partner, .. } = &r.ask else { unreachable!("built as Chat") };
                ((r.agent.id, r.agent.profile.name.clone()), (partner.id, partner.profile.name.clone()))
            })
            .collect();
        (behaviour.ask(&ctx, &batch, &mut bstats), meta)
    };
    let mut hist = agents.p1();
    for ((&(ea, eb), answer), ((a, a_name), (b, b_name))) in pairs.iter().zip(answers).zip(meta) {
        let Answer::Chat(lines) = answer else { continue };
        stats.chats += 1;
        log.say(a, "CHAT", format!("{a_name} is chatting with {b_name} ({b})."));
        let mut first_mention = None;
        for line in &lines {
            stats.chat_lines += 1;
            let speaker_name = if line.speaker == a { &a_name } else { &b_name };
            log.say(a, "CHAT", format!("{speaker_name} says: {}", line.text));
            let listener = if line.speaker == a { eb } else { ea };
            for &m in &line.mentions {
                stats.mentions += 1;
                log.mentions.push(m);
                first_mention.get_or_insert(m);
                if let Ok(mut h) = hist.get_mut(listener) {
                    Histories::push(&mut h.heard, m, cfg.history_size as usize, |x| *x);
                }
            }
        }
        obs.add(a, clock.round, ObservationKind::Chatted, first_mention, Some(b), 0);
        obs.add(b, clock.round, ObservationKind::Chatted, first_mention, Some(a), 0);
    }
}
