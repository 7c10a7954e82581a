//! Broadcast: agents who chose to post write one post, delivered to every contact's inbox
//! (keyed by id); recipients read it at the start of the next round ([`read_inbox`], in the
//! activate phase before activation).
//!
//! # Fan-out
//! All posts of a round are written in one batch (one request per author). Delivery is then one
//! id push per contact into that contact's [`Inbox`], and the text is one shared `Arc<str>` that
//! every reader's memory record points to, so a post to 500 contacts costs 500 small appends in
//! this round and 500 record appends in the next, with no request per recipient (the original
//! made 2+ LLM calls per recipient, which is why one post to 10 agents took minutes).
//!
//! Phases: `SimPhase::Broadcast` ([`publish_posts`]) and `SimPhase::Activate` ([`read_inbox`]).
//! Settings: [`BroadcastSettings`] (`post_minutes`). State: [`Inbox`] on every agent
//! (checkpointed as `inbox`), [`PostBoard`] and the live [`Post`] entities (checkpointed as
//! `posts`). Reads: agent data, `SocialPlan.post`. Writes: `Inbox`, `Histories.heard`,
//! `Engagement` (posting `post_minutes` when idle), `PendingObservations`, `RoundLog`.
//! Counters: `posts`, `deliveries`, `mentions`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::chat::{SocialPlan, MENTIONS};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, Histories, ObservationKind, Profile};
use crate::config::SimConfig;
use crate::decision::post::Post as PostDecision;
use crate::decision::{Context, Request};
use crate::ids::{ItemId, PostId, UserId};
use crate::plugin::parts::{decode, encode};
use crate::plugin::{CheckpointPart, Counter, Counters, Settings, SimApp};
use crate::sim::{view, ActiveAgents, AgentData, PendingObservations, RoundLog, SimPhase, SimTick};
use crate::social::resolve_mentions;
use crate::world::Roster;

/// Post settings.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BroadcastSettings {
    /// Simulated minutes writing a post keeps an idle author busy (RecAgent: 0.1 h = 6); 0..=1440.
    pub post_minutes: u32,
}

impl Default for BroadcastSettings {
    fn default() -> Self {
        Self { post_minutes: 6 }
    }
}

impl Settings for BroadcastSettings {
    const SECTION: Option<&'static str> = None;
    fn validate(&self) -> Result<(), (String, String)> {
        if self.post_minutes > 1440 {
            return Err((
                "post_minutes".into(),
                format!("{} is out of range: allowed 0..=1440", self.post_minutes),
            ));
        }
        Ok(())
    }
}

/// Posts delivered to the agent and not yet read. Read at the start of the next round.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inbox(pub Vec<PostId>);

/// A broadcast post. Lives from its round until its recipients have read it (next round).
#[derive(Component, Clone, Debug, Serialize, Deserialize)]
pub struct Post {
    /// Author.
    pub author: UserId,
    /// Round it was posted.
    pub round: u32,
    /// Text.
    pub text: Arc<str>,
    /// Items it mentions.
    pub mentions: Vec<ItemId>,
}

/// Posts alive (posted this round or last), by id.
#[derive(Resource, Clone, Debug, Default)]
pub struct PostBoard {
    /// Next post id.
    pub next_id: u64,
    /// Live posts.
    pub live: BTreeMap<PostId, Entity>,
    /// Agents with unread posts (entities; sorted by id when read).
    pub recipients: Vec<Entity>,
}

/// Posts.
pub const POSTS: Counter = Counter::new("posts", "posts");
/// Post deliveries (post × contact).
pub const DELIVERIES: Counter = Counter::new("deliveries", "deliveries");

/// Registers posts and their reading.
pub struct BroadcastPlugin;

impl Plugin for BroadcastPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<BroadcastSettings>()
            .add_decision::<PostDecision>()
            .show_in_progress(POSTS)
            .add_counters("posts", &[POSTS, DELIVERIES, MENTIONS])
            .add_summary("posts", |c| {
                Some(format!(
                    "posts {} ({} deliveries)",
                    c.get("posts"),
                    c.get("deliveries")
                ))
            })
            .init_resource::<PostBoard>()
            .add_agent_component::<Inbox>()
            .checkpoint_component::<Inbox>("inbox")
            .checkpoint_part(PostsPart)
            .add_systems(
                SimTick,
                (
                    read_inbox
                        .in_set(SimPhase::Activate)
                        .before(super::activate::activate_agents),
                    publish_posts.in_set(SimPhase::Broadcast),
                ),
            );
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
        let Ok((&uid, mut inbox, mut hist)) = readers.get_mut(e) else {
            continue;
        };
        let reader_name = names.get(e).map(|p| p.name.clone()).unwrap_or_default();
        for pid in std::mem::take(&mut inbox.0) {
            let Some(post) = board.live.get(&pid).and_then(|pe| posts.get(*pe).ok()) else {
                continue;
            };
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
            let author = roster
                .entity(post.author)
                .and_then(|a| names.get(a).ok())
                .map(|p| p.name.clone())
                .unwrap_or_default();
            log.say(
                uid,
                "POST",
                format!("{reader_name} observes that {author} posts: {}", post.text),
            );
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

/// Writes every planned post in one batch and delivers each to the author's contacts, in author
/// id order. Messages: `POST` `"<name> posts: <text>"` and `"<n> contacts get this post."` (n = the
/// deliveries made). Counts posts, deliveries and mentions (the backend's ids, or those
/// [`crate::social::detect_mentions`] finds in the text).
pub fn publish_posts(
    mut commands: Commands,
    (cfg, settings): (Res<SimConfig>, Res<BroadcastSettings>),
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut board: ResMut<PostBoard>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    plans: Query<&SocialPlan>,
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
        .filter(|&e| plans.get(e).is_ok_and(|s| s.post))
        .collect();
    if authors.is_empty() {
        return;
    }
    let answers = behaviour.ask_each::<PostDecision, Entity>(&ctx, &mut bstats, authors, |&e| {
        let d = agents.get(e).ok()?;
        Some(Request::new(clock.round, 0, view(d), ()))
    });
    for (e, draft) in answers {
        let Ok(d) = agents.get(e) else { continue };
        let (uid, name) = (*d.0, &d.1.name);
        let id = PostId(board.next_id);
        board.next_id += 1;
        let text: Arc<str> = draft.text.as_str().into();
        let mentions = resolve_mentions(&catalog, &draft.mentions, &draft.text);
        let recipients: Vec<Entity> =
            d.4 .0
                .iter()
                .filter_map(|c| roster.entity(c.user))
                .collect();
        let mut delivered = 0u64;
        for &re in &recipients {
            if let Ok(mut inbox) = inboxes.get_mut(re) {
                inbox.0.push(id);
                delivered += 1;
            }
        }
        board.recipients.extend(recipients);
        counters.add(&POSTS, 1);
        counters.add(&DELIVERIES, delivered);
        counters.add(&MENTIONS, mentions.len() as u64);
        log.mentions.extend(mentions.iter().copied());
        log.say(uid, "POST", format!("{name} posts: {text}"));
        log.say(uid, "POST", format!("{delivered} contacts get this post."));
        obs.add_text(
            uid,
            clock.round,
            ObservationKind::Posted,
            mentions.first().copied(),
            None,
            text.clone(),
        );
        if let Ok(mut g) = engagement.get_mut(e) {
            if g.at(now) == EngagementKind::Idle {
                *g = Engagement {
                    kind: EngagementKind::Posting,
                    until_minutes: now + i64::from(settings.post_minutes),
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

/// The live posts, the next post id and who has unread posts; posts are spawned again on
/// restore.
struct PostsPart;

#[derive(Serialize, Deserialize)]
struct PostsState {
    posts: Vec<(PostId, Post)>,
    next_post_id: u64,
    recipients: Vec<UserId>,
}

impl CheckpointPart for PostsPart {
    fn name(&self) -> &str {
        "posts"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        let board = world.resource::<PostBoard>().clone();
        let mut pq = world.query::<&Post>();
        let posts = board
            .live
            .iter()
            .filter_map(|(id, &e)| pq.get(world, e).ok().map(|p| (*id, p.clone())))
            .collect();
        let mut uq = world.query::<&UserId>();
        let mut recipients: Vec<UserId> = board
            .recipients
            .iter()
            .filter_map(|&e| uq.get(world, e).ok().copied())
            .collect();
        recipients.sort();
        recipients.dedup();
        encode(&PostsState {
            posts,
            next_post_id: board.next_id,
            recipients,
        })
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let s: PostsState = decode(bytes)?;
        let roster = world.resource::<Roster>().clone();
        let mut board = PostBoard {
            next_id: s.next_post_id,
            ..Default::default()
        };
        for (id, post) in s.posts {
            let e = world.spawn((id, post)).id();
            board.live.insert(id, e);
        }
        board.recipients = s
            .recipients
            .iter()
            .filter_map(|u| roster.entity(*u))
            .collect();
        world.insert_resource(board);
        Ok(())
    }
}
