//! A new behaviour in one file: **agents rate the posts in their inbox, 1 to 5**, before they
//! read them at the start of a round. Nothing else in the project changes; the plugin is added
//! to the builder with one line (`.plugins(PostRatingPlugin)`).
//!
//! It shows every extension point of the engine:
//! - a decision kind ([`RatePost`]): its question, answer, validation, fallback, prompt template
//!   (for the LLM backend), parser, offline answer (from the reader's closeness to the author
//!   and whether the post names movies of the reader's liked genres) and typical answer length;
//! - settings read from its own config section (`post_ratings:`, [`PostRatingSettings`]);
//! - a component on every agent ([`PostRatings`]), checkpointed as the part `post_ratings`;
//! - counters shown in the manifest's `summary` and in the end-of-run summary;
//! - a system placed between other plugins' systems: in the activate phase, before the shipped
//!   `read_inbox` consumes the posts;
//! - a memory observation (a note) for each rating.
//!
//! Run it on the bundled demo data (offline backend, no key):
//! ```text
//! cargo run --example custom_behaviour            # writes output/custom_behaviour/
//! ```
#![allow(
    dead_code,
    reason = "the integration tests include this file for its plugin, without its main"
)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use recagent::behaviour::{Behaviour, BehaviourStats};
use recagent::catalog::Catalog;
use recagent::clock::SimClock;
use recagent::components::{ObservationKind, Profile, Relationships};
use recagent::config::SimConfig;
use recagent::decision::offline::{normal, Offline};
use recagent::decision::parse::{first_int, ParseError};
use recagent::decision::{Context, Decision, Phase, PromptVars, Request};
use recagent::ids::{ItemId, PostId, UserId};
use recagent::plugin::{check_range, Counter, Counters, Settings, SimApp};
use recagent::sim::{view, AgentData, PendingObservations, RoundLog, SimPhase, SimTick};
use recagent::systems::broadcast::{read_inbox, Inbox, Post, PostBoard};
use recagent::world::Roster;

// ---- the decision kind ----

/// Rating one post of the inbox.
pub struct RatePost;

/// The post to rate, with what the offline model weighs.
#[derive(Clone, Copy, Debug)]
pub struct RatePostAsk<'a> {
    /// The author's name.
    pub author: &'a str,
    /// The post's text.
    pub text: &'a str,
    /// The reader's closeness to the author, in [0, 1] (0 for a stranger).
    pub closeness: f32,
    /// Share of the items the post names that are in the reader's liked genres, in [0, 1]
    /// (0.5 when it names none).
    pub liked_share: f64,
    /// The settings' weights.
    pub settings: &'a PostRatingSettings,
}

impl Decision for RatePost {
    const KIND: &'static str = "rate_post";
    // Codes 0..=6 are the shipped phases.
    const PHASE: Phase = Phase::new("RatePost", 7);
    const TEMPLATE: &'static str = "{context}\n\
        {author} posted on social media: \"{post}\"\n\
        How much does {name} like this post, from 1 to 5?\n\
        Answer with exactly one line:\n\
        RATING: <integer 1-5>";
    const TYPICAL_COMPLETION_TOKENS: u64 = 5;
    type Ask<'a> = RatePostAsk<'a>;
    /// Stars, 1..=5.
    type Answer = u8;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, stars: &u8) -> bool {
        (1..=5).contains(stars)
    }

    fn fallback(_: &Request<'_, Self>) -> u8 {
        3
    }

    /// `q = base + closeness_weight·closeness + mention_weight·liked_share + noise·ε`,
    /// ε ~ N(0, 1); stars = clamp(round(q), 1, 5).
    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> u8 {
        let a = &req.ask;
        let s = a.settings;
        let q = s.base
            + s.closeness_weight * f64::from(a.closeness)
            + s.mention_weight * a.liked_share
            + s.noise * normal(&mut m.rng);
        q.round().clamp(1.0, 5.0) as u8
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        vars.set("author", req.ask.author);
        vars.set("post", req.ask.text);
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<u8, ParseError> {
        match first_int(text) {
            Some(n @ 1..=5) => Ok(n as u8),
            _ => Err(ParseError("expected `RATING: <integer 1-5>`".into())),
        }
    }
}

// ---- settings, state, counters ----

/// `post_ratings:` section of the configuration.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostRatingSettings {
    /// Rating of a stranger's post that names nothing the reader likes; 1..=5.
    pub base: f64,
    /// Stars added at closeness 1; 0..=4.
    pub closeness_weight: f64,
    /// Stars added when every item the post names is in the reader's liked genres; 0..=4.
    pub mention_weight: f64,
    /// Standard deviation of the noise, stars; 0..=2.
    pub noise: f64,
    /// Ratings kept per agent (the latest); 1..=100.
    pub keep: usize,
}

impl Default for PostRatingSettings {
    fn default() -> Self {
        Self {
            base: 1.5,
            closeness_weight: 2.0,
            mention_weight: 1.5,
            noise: 0.5,
            keep: 10,
        }
    }
}

impl Settings for PostRatingSettings {
    const SECTION: Option<&'static str> = Some("post_ratings");
    fn validate(&self) -> Result<(), (String, String)> {
        check_range("base", self.base, 1.0..=5.0, "1..=5")?;
        check_range(
            "closeness_weight",
            self.closeness_weight,
            0.0..=4.0,
            "0..=4",
        )?;
        check_range("mention_weight", self.mention_weight, 0.0..=4.0, "0..=4")?;
        check_range("noise", self.noise, 0.0..=2.0, "0..=2")?;
        check_range("keep", self.keep, 1..=100, "1..=100")
    }
}

/// The posts an agent rated: totals and the latest ratings `(post, author, stars)`.
#[derive(Component, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRatings {
    /// Posts rated.
    pub count: u32,
    /// Sum of the stars given.
    pub stars: u32,
    /// The latest ratings, oldest first (at most `keep`).
    pub latest: Vec<(PostId, UserId, u8)>,
}

/// Posts rated.
pub const POSTS_RATED: Counter = Counter::new("posts_rated", "posts rated");
/// Sum of the stars given to posts.
pub const POST_STARS: Counter = Counter::new("post_stars", "stars");

// ---- the plugin ----

/// Agents rate the posts in their inbox.
pub struct PostRatingPlugin;

impl Plugin for PostRatingPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<PostRatingSettings>()
            .add_decision::<RatePost>()
            .add_agent_component::<PostRatings>()
            .checkpoint_component::<PostRatings>("post_ratings")
            .add_counters("post ratings", &[POSTS_RATED, POST_STARS])
            .add_summary("post ratings", |c| {
                let n = c.get("posts_rated");
                Some(match n {
                    0 => "posts rated 0".to_string(),
                    _ => format!(
                        "posts rated {n} · mean {:.2} stars",
                        c.get("post_stars") as f64 / n as f64
                    ),
                })
            })
            .add_systems(
                SimTick,
                rate_inbox_posts
                    .in_set(SimPhase::Activate)
                    .before(read_inbox),
            );
    }
}

/// Every agent with unread posts rates each of them, in agent-id order and, per agent, in
/// delivery order: one request per post, all in one batch. A `RATE` message, a memory note
/// and the agent's [`PostRatings`] record each rating.
pub fn rate_inbox_posts(
    cfg: Res<SimConfig>,
    settings: Res<PostRatingSettings>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    board: Res<PostBoard>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    posts: Query<&Post>,
    inboxes: Query<&Inbox>,
    names: Query<&Profile>,
    agents: Query<AgentData>,
    mut ratings: Query<&mut PostRatings>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    // (reader, post id, author, step): every unread post of every agent, in id order.
    let mut todo: Vec<(Entity, PostId, UserId, u16)> = Vec::new();
    for &e in &roster.entities {
        let Ok(inbox) = inboxes.get(e) else { continue };
        for (k, &pid) in inbox.0.iter().enumerate() {
            if let Some(post) = board.live.get(&pid).and_then(|pe| posts.get(*pe).ok()) {
                todo.push((e, pid, post.author, k as u16));
            }
        }
    }
    if todo.is_empty() {
        return;
    }
    let author_name = |u: UserId| -> Arc<str> {
        roster
            .entity(u)
            .and_then(|a| names.get(a).ok())
            .map_or_else(|| Arc::from("someone"), |p| p.name.clone())
    };
    let authors: Vec<Arc<str>> = todo.iter().map(|t| author_name(t.2)).collect();
    let liked_share = |reader: &recagent::components::Taste, mentions: &[ItemId]| -> f64 {
        if mentions.is_empty() {
            return 0.5;
        }
        let liked = mentions
            .iter()
            .filter_map(|m| catalog.by_id(*m))
            .filter(|it| !it.genres.intersect(reader.liked).is_empty())
            .count();
        liked as f64 / mentions.len() as f64
    };
    let answers = behaviour.ask_each::<RatePost, _>(
        &ctx,
        &mut bstats,
        todo.iter().enumerate(),
        |&(n, &(e, pid, author, step))| {
            let d = agents.get(e).ok()?;
            let post = posts.get(*board.live.get(&pid)?).ok()?;
            let closeness = closeness_of(d.4, author);
            let ask = RatePostAsk {
                author: &authors[n],
                text: &post.text,
                closeness,
                liked_share: liked_share(d.2, &post.mentions),
                settings: &settings,
            };
            Some(Request::new(clock.round, step, view(d), ask))
        },
    );
    for ((n, &(e, pid, author, _)), stars) in answers {
        let Ok(d) = agents.get(e) else { continue };
        let reader = *d.0;
        let text = format!("{} rates {}'s post {stars} out of 5.", d.1.name, authors[n]);
        log.say(reader, "RATE", text.clone());
        obs.add_text(
            reader,
            clock.round,
            ObservationKind::Note,
            None,
            Some(author),
            text.into(),
        );
        if let Ok(mut r) = ratings.get_mut(e) {
            r.count += 1;
            r.stars += u32::from(stars);
            r.latest.push((pid, author, stars));
            let extra = r.latest.len().saturating_sub(settings.keep);
            r.latest.drain(..extra);
        }
        counters.add(&POSTS_RATED, 1);
        counters.add(&POST_STARS, u64::from(stars));
    }
}

/// The reader's closeness to `author` (0 when not a contact).
fn closeness_of(contacts: &Relationships, author: UserId) -> f32 {
    contacts
        .0
        .binary_search_by_key(&author, |c| c.user)
        .map_or(0.0, |k| contacts.0[k].closeness)
}

// ---- running it ----

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = SimConfig::embedded()?;
    let dir = std::path::Path::new("output/custom_behaviour");
    let mut sim = recagent::sim::SimBuilder::new(cfg)
        .plugins(PostRatingPlugin)
        .outputs(recagent::io::output::OutputPaths::in_dir(dir))
        // The example's own folder: each run of it replaces the last.
        .overwrite(true)
        .build()?;
    let checkpoints = recagent::sim::CheckpointPolicy {
        dir: dir.join("checkpoints"),
        every: 1,
    };
    sim.run_until(&AtomicBool::new(false), &checkpoints, |_| {})?;
    println!(
        "{} rounds on the demo data, outputs in {}",
        sim.round(),
        dir.display()
    );
    for (_, line) in sim.counters().summary() {
        println!("  {line}");
    }
    // The three agents who rated the most posts, with their mean rating.
    let world = sim.world_mut();
    let mut q = world.query::<(&UserId, &Profile, &PostRatings)>();
    let mut top: Vec<(u32, UserId, String, f64)> = q
        .iter(world)
        .filter(|(_, _, r)| r.count > 0)
        .map(|(u, p, r)| {
            let mean = f64::from(r.stars) / f64::from(r.count);
            (r.count, *u, p.name.to_string(), mean)
        })
        .collect();
    top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (count, id, name, mean) in top.iter().take(3) {
        println!("  {name} ({id}) rated {count} posts, {mean:.2} stars on average");
    }
    Ok(())
}
