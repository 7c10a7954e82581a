//! Chat: agents who chose social media pick chat or post (spec §2.4); chats are written as one
//! dialogue per pair. A partner must be a contact (keyed by id, never by name) or one of this
//! round's random strangers (`social_random_contacts`), and both agents must be free at the
//! round's time (the original's event state machine, spec §2.6: an agent watching or chatting is
//! unavailable; posting does not block). Conflicts are settled in initiator-id order.
//!
//! # Single call, not turn by turn
//! A dialogue is one request (`Ask::Chat`) that writes every utterance, as the original's
//! `generate_dialogue` does: one LLM call per chat instead of one per turn, and every chat of a
//! round goes out in one concurrent batch (turn by turn would need `chat_max_turns` sequential
//! batches). Both agents' views (profile, histories, memory) are in the request, so the backend
//! sees both sides. `chat_max_turns` caps the utterances (longer answers are cut).
//!
//! Phase: `SimPhase::Chat`. Reads: agent data, `Engagement`. Writes: `Session` (chat / post
//! plan), `Engagement` (chatting for the answer's length, snapped to `chat_hours`),
//! `Histories.heard` (listener), `PendingObservations` (the transcript, to both), `RoundLog`,
//! `RunStats`, `BehaviourStats`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{
    Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey, SocialAction,
};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, Histories, ObservationKind, Session, TopAction};
use crate::config::SimConfig;
use crate::ids::{ItemId, UserId};
use crate::sim::{
    view, ActiveAgents, AgentData, PendingObservations, RoundLog, RunStats, SimPhase, SimTick,
};
use crate::social::{random_strangers, resolve_mentions, snap_chat_minutes, transcript};
use crate::world::Roster;

/// Registers the chat systems.
pub struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            SimTick,
            (choose_social_actions, hold_chats)
                .chain()
                .in_set(SimPhase::Chat),
        );
    }
}

/// True when an agent with this engagement can start a chat now (idle, or only posting).
fn free(kind: EngagementKind) -> bool {
    matches!(kind, EngagementKind::Idle | EngagementKind::Posting)
}

/// Asks each social agent with contacts to chat (with an available contact or stranger) or post,
/// then books the chats in initiator-id order.
///
/// Candidates: the agent's contacts plus `social_random_contacts` random strangers
/// ([`random_strangers`]), kept when free now (not watching, not chatting). An agent itself
/// still chatting (a chat longer than the round interval) gets no candidates, so it posts. An
/// agent with no contacts gets the `SOCIAL` message `"<name> has no acquaintance."` and stops
/// (counted in `RunStats::no_acquaintance`). A chat whose partner was booked by a lower-id
/// initiator in the same batch ends with a `LEAVE` message.
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
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let now = (clock.now() - clock.start).num_minutes();
    let is_free = |u: UserId| {
        roster
            .entity(u)
            .and_then(|e| engagement.get(e).ok())
            .is_some_and(|g| free(g.at(now)))
    };
    let mut social: Vec<(Entity, Vec<UserId>)> = Vec::new();
    for &e in &active.0 {
        let (Ok(d), Ok(s)) = (agents.get(e), sessions.get(e)) else {
            continue;
        };
        if s.action != TopAction::Social {
            continue;
        }
        let (uid, contacts) = (*d.0, d.4);
        if contacts.0.is_empty() {
            log.say(uid, "SOCIAL", format!("{} has no acquaintance.", d.1.name));
            stats.no_acquaintance += 1;
            continue;
        }
        log.say(
            uid,
            "SOCIAL",
            format!("{} is going to social media.", d.1.name),
        );
        let mut candidates: Vec<UserId> = contacts.0.iter().map(|c| c.user).collect();
        if cfg.social_random_contacts > 0 {
            candidates.extend(random_strangers(
                cfg.seed,
                clock.round,
                uid,
                &roster.ids,
                contacts,
                cfg.social_random_contacts as usize,
            ));
            candidates.sort_unstable();
        }
        let available: Vec<UserId> = if is_free(uid) {
            candidates.into_iter().filter(|&c| is_free(c)).collect()
        } else {
            Vec::new()
        };
        social.push((e, available));
    }
    let batch: Vec<Request<'_>> = social
        .iter()
        .filter_map(|(e, avail)| {
            let d = agents.get(*e).ok()?;
            Some(Request {
                key: RequestKey {
                    round: clock.round,
                    phase: Phase::Chat,
                    user: *d.0,
                    step: 0,
                },
                agent: view(d),
                ask: Ask::Social { available: avail },
            })
        })
        .collect();
    let answers = behaviour.ask(&ctx, &batch, &mut bstats);
    drop(batch);
    let mut busy: BTreeSet<UserId> = BTreeSet::new();
    for ((e, _), answer) in social.iter().zip(answers) {
        let (Ok(d), Ok(mut s)) = (agents.get(*e), sessions.get_mut(*e)) else {
            continue;
        };
        let Answer::Social(choice) = answer else {
            continue;
        };
        let (uid, name) = (*d.0, &d.1.name);
        match choice {
            SocialAction::Post => s.post = true,
            SocialAction::Chat { with, minutes } => {
                let pname = roster
                    .entity(with)
                    .and_then(|pe| agents.get(pe).ok())
                    .map(|p| p.1.name.clone())
                    .unwrap_or_default();
                if busy.contains(&uid) || busy.contains(&with) {
                    log.say(
                        uid,
                        "LEAVE",
                        format!(
                            "{name} wants to chat with {pname} ({with}), but one of them is \
                             already chatting. So {name} does nothing."
                        ),
                    );
                    continue;
                }
                let (minutes, allowed) = snap_chat_minutes(minutes, &cfg.chat_hours);
                if !allowed {
                    bstats.fallbacks[Phase::Chat as usize] += 1;
                    tracing::warn!(user = %uid, minutes, "chat length not in chat_hours; snapped");
                }
                busy.insert(uid);
                busy.insert(with);
                s.chat_with = Some(with);
                for pe in [Some(*e), roster.entity(with)].into_iter().flatten() {
                    if let Ok(mut g) = engagement.get_mut(pe) {
                        *g = Engagement {
                            kind: EngagementKind::Chatting,
                            until_minutes: now + i64::from(minutes),
                        };
                    }
                }
            }
        }
    }
}

/// Writes every booked chat in one batch. Lines go to the initiator's messages (`CHAT`
/// `"<speaker> says: <text>"`), items a line mentions (the backend's ids, or those
/// [`crate::social::detect_mentions`] finds in its text) join the listener's heard history and the
/// mention counts, and the transcript (`"[A]: ...\n[B]: ..."`, one shared allocation) is written to
/// both agents' memories.
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
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
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
                    key: RequestKey {
                        round: clock.round,
                        phase: Phase::Chat,
                        user: *da.0,
                        step: 1,
                    },
                    agent: view(da),
                    ask: Ask::Chat {
                        partner: view(db),
                        max_turns: cfg.chat_max_turns,
                    },
                })
            })
            .collect();
        let meta: Vec<_> = batch
            .iter()
            .map(|r| {
                let Ask::Chat { partner, .. } = &r.ask else {
                    unreachable!("built as Chat")
                };
                (
                    (r.agent.id, r.agent.profile.name.clone()),
                    (partner.id, partner.profile.name.clone()),
                )
            })
            .collect();
        (behaviour.ask(&ctx, &batch, &mut bstats), meta)
    };
    let cap = cfg.history_size as usize;
    let mut hist = agents.p1();
    for ((&(ea, eb), answer), ((a, a_name), (b, b_name))) in pairs.iter().zip(answers).zip(meta) {
        let Answer::Chat(mut lines) = answer else {
            continue;
        };
        if lines.len() > cfg.chat_max_turns as usize {
            tracing::info!(user = %a, cut = lines.len() - cfg.chat_max_turns as usize, "dialogue cut to chat_max_turns");
            lines.truncate(cfg.chat_max_turns as usize);
        }
        stats.chats += 1;
        log.say(a, "CHAT", format!("{a_name} is chatting with {b_name} ({b})."));
        let mut first_mention: Option<ItemId> = None;
        for line in &lines {
            stats.chat_lines += 1;
            let speaker_name = if line.speaker == a { &a_name } else { &b_name };
            log.say(a, "CHAT", format!("{speaker_name} says: {}", line.text));
            let listener = if line.speaker == a { eb } else { ea };
            let mentions = resolve_mentions(&catalog, &line.mentions, &line.text);
            for &m in &mentions {
                stats.mentions += 1;
                log.mentions.push(m);
                first_mention.get_or_insert(m);
                if let Ok(mut h) = hist.get_mut(listener) {
                    h.hear(m, clock.round, cap);
                }
            }
        }
        let text: Arc<str> = transcript(lines.iter().map(|l| {
            let who = if l.speaker == a { &*a_name } else { &*b_name };
            (who, l.text.as_str())
        }))
        .into();
        obs.add_text(a, clock.round, ObservationKind::Chatted, first_mention, Some(b), text.clone());
        obs.add_text(b, clock.round, ObservationKind::Chatted, first_mention, Some(a), text);
    }
}
