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
use crate::ids::{ItemId, OffsetTable, PostId, UserId};
use crate::plugin::parts::{decode, encode};
use crate::plugin::{check_range, CheckpointPart, Counter, Counters, Settings, SimApp};
use crate::sim::{
    map_in_order, view, ActiveAgents, AgentData, PendingObservations, RoundLog, SimPhase, SimTick,
};
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
        check_range("post_minutes", self.post_minutes, 0..=1440, "0..=1440")
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
/// decaying `h(u,i)`) and the round's hearings (with the author's rating of the item, if any),
/// and a `POST` message `"<reader> observes that <author> posts: <text>"` is
/// emitted. Then every post of an earlier round is despawned (all its recipients have read it;
/// a post delivered to nobody goes too).
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
    // Keyed once each: a sort that looked the id up in every comparison made some forty
    // random lookups per delivery at a million agents.
    let mut recipients: Vec<(UserId, Entity)> = std::mem::take(&mut board.recipients)
        .into_iter()
        .filter_map(|e| readers.get(e).ok().map(|r| (*r.0, e)))
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    // The live posts by id offset: ids are handed out in order and only older rounds' posts
    // are despawned, so a lookup per delivery is an index instead of a search of the board.
    let live: Vec<(u64, &Post)> = board
        .live
        .iter()
        .filter_map(|(id, pe)| Some((id.0, posts.get(*pe).ok()?)))
        .collect();
    let by_offset = OffsetTable::new(&live, 4);
    let post_of = |pid: PostId| -> Option<&Post> {
        match &by_offset {
            Some(t) => t.get(pid.0),
            None => board.live.get(&pid).and_then(|pe| posts.get(*pe).ok()),
        }
    };
    let mut reads: Vec<(UserId, Entity, Vec<PostId>)> = Vec::with_capacity(recipients.len());
    for (_, e) in recipients {
        if let Ok((&uid, mut inbox, _)) = readers.get_mut(e) {
            reads.push((uid, e, std::mem::take(&mut inbox.0)));
        }
    }
    // What each reader reads, looked up on the pool (read-only: the posts, and the authors'
    // ratings, which reading does not change), then applied in reader id order.
    let read = {
        let (log, readers) = (&*log, &readers);
        map_in_order(cfg.runs_parallel(), &reads, |(uid, e, pids)| {
            let says = log.wants(*uid);
            let reader_name =
                says.then(|| names.get(*e).map(|p| p.name.clone()).unwrap_or_default());
            pids.iter()
                .filter_map(|&pid| {
                    let post = post_of(pid)?;
                    let author_entity = roster.entity(post.author);
                    // The author's rating now: it has not watched anything since it posted
                    // (posts are read before the round's browsing).
                    let history = author_entity.and_then(|a| readers.get(a).ok());
                    let stated: Vec<Option<u8>> = post
                        .mentions
                        .iter()
                        .map(|&m| history.as_ref().and_then(|(_, _, h)| h.rating_of(m)))
                        .collect();
                    let message = reader_name.as_ref().map(|reader| {
                        let author = author_entity
                            .and_then(|a| names.get(a).ok())
                            .map(|p| p.name.clone())
                            .unwrap_or_default();
                        format!("{reader} observes that {author} posts: {}", post.text)
                    });
                    Some((post, stated, message))
                })
                .collect::<Vec<_>>()
        })
    };
    for ((uid, e, _), posts) in reads.iter().zip(read) {
        for (post, stated, message) in posts {
            for (&m, stated) in post.mentions.iter().zip(stated) {
                log.heard(*uid, post.author, m, stated);
                if let Ok((_, _, mut hist)) = readers.get_mut(*e) {
                    hist.hear(m, clock.round, cfg.history_size as usize);
                }
            }
            obs.add_text(
                *uid,
                clock.round,
                ObservationKind::ReadPost,
                post.mentions.first().copied(),
                Some(post.author),
                post.text.clone(),
            );
            if let Some(text) = message {
                log.say(*uid, "POST", text);
            }
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
    // Each draft's mentions (the detector reads a backend's free text), on the pool ahead of
    // the in-order apply.
    let mentions = map_in_order(cfg.runs_parallel(), &answers, |(_, draft)| {
        resolve_mentions(&catalog, &draft.mentions, &draft.text)
    });
    for ((e, draft), mentions) in answers.into_iter().zip(mentions) {
        let Ok(d) = agents.get(e) else { continue };
        let (uid, name) = (*d.0, &d.1.name);
        let id = PostId(board.next_id);
        board.next_id += 1;
        let text: Arc<str> = draft.text.as_str().into();
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
        log.say_with(uid, "POST", || format!("{name} posts: {text}"));
        log.say_with(uid, "POST", || {
            format!("{delivered} contacts get this post.")
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::MemoryRecord;
    use crate::decision::Script;
    use crate::testing::{obs_text, tiny, HEAT, MATRIX};

    #[test]
    fn publish_posts_delivers_to_exactly_the_contacts_and_busies_only_idle_authors() {
        // 0 names <Heat> in its text (detected); 3 gives ids, one not in the catalogue.
        let script = Script::new().on::<PostDecision>(|r, _| {
            Some(if r.agent.id.0 == 0 {
                crate::behaviour::PostDraft {
                    text: "Watch <Heat> tonight!".into(),
                    mentions: vec![],
                }
            } else {
                crate::behaviour::PostDraft {
                    text: "Hello all".into(),
                    mentions: vec![MATRIX, ItemId(99)],
                }
            })
        });
        let mut t = tiny(5, &[(0, 1), (0, 2), (3, 4)], "post_minutes: 10\n", script);
        t.at_round(2);
        let now = t.now_minutes();
        t.world_mut().resource_mut::<PostBoard>().next_id = 7;
        t.activate(&[0, 1, 3]);
        let posting = SocialPlan {
            chat_with: None,
            post: true,
        };
        t.set(0, posting);
        t.set(3, posting);
        // 1 is active but chats; 3 is in a chat, so posting does not change what it does.
        t.set(
            1,
            SocialPlan {
                chat_with: Some(UserId(2)),
                post: false,
            },
        );
        let chatting = Engagement {
            kind: EngagementKind::Chatting,
            until_minutes: now + 60,
        };
        t.set(3, chatting);

        t.run(publish_posts);

        let inboxes: Vec<Vec<PostId>> = (0..5).map(|u| t.get::<Inbox>(u).0).collect();
        assert_eq!(
            inboxes,
            vec![
                vec![],
                vec![PostId(7)],
                vec![PostId(7)],
                vec![],
                vec![PostId(8)]
            ]
        );
        let board = t.world().resource::<PostBoard>().clone();
        assert_eq!(board.next_id, 9);
        assert_eq!(
            board.recipients,
            vec![t.entity(1), t.entity(2), t.entity(4)]
        );
        let posts: Vec<(PostId, UserId, u32, String, Vec<ItemId>)> = board
            .live
            .iter()
            .map(|(&id, &e)| {
                let p = t.world().get::<Post>(e).unwrap();
                assert_eq!(t.world().get::<PostId>(e), Some(&id));
                (
                    id,
                    p.author,
                    p.round,
                    p.text.to_string(),
                    p.mentions.clone(),
                )
            })
            .collect();
        assert_eq!(
            posts,
            vec![
                (
                    PostId(7),
                    UserId(0),
                    2,
                    "Watch <Heat> tonight!".into(),
                    vec![HEAT]
                ),
                (PostId(8), UserId(3), 2, "Hello all".into(), vec![MATRIX]),
            ]
        );
        assert_eq!(t.counter("posts"), 2);
        assert_eq!(t.counter("deliveries"), 3);
        assert_eq!(t.counter("mentions"), 2);
        assert_eq!(t.requests_and_fallbacks("post"), (2, 0));
        assert_eq!(
            t.world().resource::<RoundLog>().mentions,
            vec![HEAT, MATRIX]
        );
        assert_eq!(
            t.messages(),
            vec![
                (0, "POST", "U0 posts: Watch <Heat> tonight!".to_string()),
                (0, "POST", "2 contacts get this post.".to_string()),
                (3, "POST", "U3 posts: Hello all".to_string()),
                (3, "POST", "1 contacts get this post.".to_string()),
            ]
        );
        use ObservationKind::Posted;
        let pending = t.pending();
        assert_eq!(
            pending,
            vec![
                obs_text(0, 2, Posted, Some(HEAT), None, "Watch <Heat> tonight!"),
                obs_text(3, 2, Posted, Some(MATRIX), None, "Hello all"),
            ]
        );
        // The memory record shares the post's text.
        let post_text = &t.world().get::<Post>(board.live[&PostId(7)]).unwrap().text;
        assert!(Arc::ptr_eq(post_text, pending[0].1.text.as_ref().unwrap()));
        assert_eq!(
            t.get::<Engagement>(0),
            Engagement {
                kind: EngagementKind::Posting,
                until_minutes: now + 10,
            }
        );
        assert_eq!(t.get::<Engagement>(3), chatting);
        assert_eq!(t.get::<Engagement>(1), Engagement::default());
    }

    #[test]
    fn read_inbox_reads_in_reader_order_hears_mentions_and_despawns_the_posts() {
        let mut t = tiny(5, &[(0, 1), (0, 2), (3, 2)], "", Script::new());
        t.at_round(3);
        // Last round: 0 posted about Heat (to 1 and 2), 3 posted (to 2), 4 posted to nobody.
        let spawn = |t: &mut crate::testing::TestSim, id: u64, author: u32, text: &str| {
            let mentions = if author == 0 { vec![HEAT] } else { vec![] };
            let text: Arc<str> = text.into();
            let e = t
                .world_mut()
                .spawn((
                    PostId(id),
                    Post {
                        author: UserId(author),
                        round: 2,
                        text: text.clone(),
                        mentions,
                    },
                ))
                .id();
            t.world_mut()
                .resource_mut::<PostBoard>()
                .live
                .insert(PostId(id), e);
            (e, text)
        };
        let (e5, text5) = spawn(&mut t, 5, 0, "See <Heat>!");
        let (e6, _) = spawn(&mut t, 6, 3, "Hello");
        let (e9, _) = spawn(&mut t, 9, 4, "Anyone?");
        t.set(1, Inbox(vec![PostId(5)]));
        t.set(2, Inbox(vec![PostId(5), PostId(6)]));
        // 2 heard of Heat in round 1 and of The Matrix in round 2.
        t.set(
            2,
            Histories {
                watched: vec![],
                heard: vec![(HEAT, 1), (MATRIX, 2)],
            },
        );
        // The author rated Heat 5.
        t.set(
            0,
            Histories {
                watched: vec![(MATRIX, 2), (HEAT, 5)],
                heard: vec![],
            },
        );
        let (e1, e2) = (t.entity(1), t.entity(2));
        t.world_mut().resource_mut::<PostBoard>().recipients = vec![e2, e1, e2];

        t.run(read_inbox);

        use ObservationKind::ReadPost;
        let pending = t.pending();
        assert_eq!(
            pending,
            vec![
                obs_text(1, 3, ReadPost, Some(HEAT), Some(0), "See <Heat>!"),
                obs_text(2, 3, ReadPost, Some(HEAT), Some(0), "See <Heat>!"),
                obs_text(2, 3, ReadPost, None, Some(3), "Hello"),
            ]
        );
        let shared = |r: &MemoryRecord| Arc::ptr_eq(r.text.as_ref().unwrap(), &text5);
        assert!(shared(&pending[0].1) && shared(&pending[1].1));
        assert_eq!(
            t.messages(),
            vec![
                (
                    1,
                    "POST",
                    "U1 observes that U0 posts: See <Heat>!".to_string()
                ),
                (
                    2,
                    "POST",
                    "U2 observes that U0 posts: See <Heat>!".to_string()
                ),
                (2, "POST", "U2 observes that U3 posts: Hello".to_string()),
            ]
        );
        assert_eq!(t.get::<Histories>(1).heard, vec![(HEAT, 3)]);
        assert_eq!(t.get::<Histories>(2).heard, vec![(MATRIX, 2), (HEAT, 3)]);
        // Each reader heard Heat from 0, who rated it 5; the post of 3 names nothing.
        let heard = |u| crate::sim::Hearing {
            listener: UserId(u),
            speaker: UserId(0),
            item: HEAT,
            stated: Some(5),
        };
        assert_eq!(
            t.world().resource::<RoundLog>().hearings(),
            &[heard(1), heard(2)]
        );
        assert!((0..5).all(|u| t.get::<Inbox>(u).0.is_empty()));
        let board = t.world().resource::<PostBoard>();
        assert!(board.live.is_empty() && board.recipients.is_empty());
        for e in [e5, e6, e9] {
            assert!(t.world().get_entity(e).is_err(), "post {e:?} despawned");
        }
    }
}
