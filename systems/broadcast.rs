//! Broadcast: agents who chose to post write one post, delivered to every contact's inbox
//! (keyed by id). Recipients read it at the start of the next round (see `activate::read_inbox`).
//!
//! # Fan-out
//! All posts of a round are written in one batch (one request per author). Delivery is then one
//! id push per contact into that contact's `Inbox`, and the text is one shared `Arc<str>` that every
//! reader's memory record points to, so a post to 500 contacts costs 500 small appends in this
//! round and 500 record appends in the next, with no request per recipient (the original made
//! 2+ LLM calls per recipient, which is why one post to 10 agents took minutes).
//!
//! Phase: `SimPhase::Broadcast`. Reads: agent data, `Session.post`. Writes: `Inbox`, `Engagement`
//! (posting `post_minutes` when idle), `PostBoard`, `PendingObservations` (the author's post),
//! `RoundLog`, `RunStats`; spawns `Post` entities.

use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::behaviour::{Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, Inbox, ObservationKind, Post, Session};
use crate::config::SimConfig;
use crate::ids::PostId;
use crate::sim::{
    view, ActiveAgents, AgentData, PendingObservations, PostBoard, RoundLog, RunStats, SimPhase,
    SimTick,
};
use crate::social::resolve_mentions;
use crate::world::Roster;

/// Registers the broadcast system.
pub struct BroadcastPlugin;

impl Plugin for BroadcastPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, publish_posts.in_set(SimPhase::Broadcast));
    }
}

/// Writes every planned post in one batch and delivers each to the author's contacts, in author
/// id order. Messages: `POST` `"<name> posts: <text>"` and `"<n> contacts get this post."` (n = the
/// deliveries made). Counts posts, deliveries and mentions (the backend's ids, or those
/// [`crate::social::detect_mentions`] finds in the text).
pub fn publish_posts(
    mut commands: Commands,
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut board: ResMut<PostBoard>,
    mut log: ResMut<RoundLog>,
    mut stats: ResMut<RunStats>,
    mut obs: ResMut<PendingObservations>,
    sessions: Query<&Session>,
    agents: Query<AgentData>,
    mut inboxes: Query<&mut Inbox>,
    mut engagement: Query<&mut Engagement>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let now = (clock.now() - clock.start).num_minutes();
    let authors: Vec<Entity> = active
        .0
        .iter()
        .copied()
        .filter(|&e| sessions.get(e).is_ok_and(|s| s.post))
        .collect();
    if authors.is_empty() {
        return;
    }
    let batch: Vec<Request<'_>> = authors
        .iter()
        .filter_map(|&e| {
            let d = agents.get(e).ok()?;
            Some(Request {
                key: RequestKey {
                    round: clock.round,
                    phase: Phase::Broadcast,
                    user: *d.0,
                    step: 0,
                },
                agent: view(d),
                ask: Ask::Post,
            })
        })
        .collect();
    let answers = behaviour.ask(&ctx, &batch, &mut bstats);
    drop(batch);
    for (&e, answer) in authors.iter().zip(answers) {
        let Ok(d) = agents.get(e) else { continue };
        let Answer::Post(draft) = answer else {
            continue;
        };
        let (uid, name) = (*d.0, &d.1.name);
        let id = PostId(board.next_id);
        board.next_id += 1;
        let text: Arc<str> = draft.text.as_str().into();
        let mentions = resolve_mentions(&catalog, &draft.mentions, &draft.text);
        let recipients: Vec<Entity> = d.4 .0.iter().filter_map(|c| roster.entity(c.user)).collect();
        let mut delivered = 0u64;
        for &re in &recipients {
            if let Ok(mut inbox) = inboxes.get_mut(re) {
                inbox.0.push(id);
                delivered += 1;
            }
        }
        board.recipients.extend(recipients);
        stats.posts += 1;
        stats.deliveries += delivered;
        stats.mentions += mentions.len() as u64;
        log.mentions.extend(mentions.iter().copied());
        log.say(uid, "POST", format!("{name} posts: {text}"));
        log.say(uid, "POST", format!("{delivered} contacts get this post."));
        obs.add_text(uid, clock.round, ObservationKind::Posted, mentions.first().copied(), None, text.clone());
        if let Ok(mut g) = engagement.get_mut(e) {
            if g.at(now) == EngagementKind::Idle {
                *g = Engagement {
                    kind: EngagementKind::Posting,
                    until_minutes: now + i64::from(cfg.post_minutes),
                };
            }
        }
        let pe = commands
            .spawn((
                id,
                Post {
                    author: uid,
                    round: clock.round,
                    text,
                    mentions,
                },
            ))
            .id();
        board.live.insert(id, pe);
    }
}
