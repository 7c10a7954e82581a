//! The simulation driver: the round schedule, the per-round resources and [`Sim`].
//!
//! One [`Sim::step`] = one round = one run of the [`SimTick`] schedule, whose systems sit in the
//! chained [`SimPhase`] sets: begin → activate → recommend → watch → feel → chat → broadcast →
//! remember → record. The schedule runs on the single-threaded executor with ambiguity detection
//! set to error, so system order is explicit and never depends on insertion order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bevy_app::App;
use bevy_ecs::entity::Entity;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, ScheduleLabel, SingleThreadedExecutor};
use serde::Serialize;

use crate::behaviour::offline::OfflineBackend;
use crate::behaviour::{AgentView, Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::{format_timestamp, SimClock};
use crate::components::{Histories, Memory, Profile, Relationships, Session, Taste};
use crate::config::{ExecutionMode, RecModel, SimConfig};
use crate::ids::{ItemId, PostId, UserId};
use crate::io::data::{self, Source};
use crate::io::output::{InteractionRecord, MessageRecord, OutputPaths, OutputSink};
use crate::recommender::{InteractionLog, Popularity, RandomRec, Recommender};
use crate::world::{self, LoadReport};

/// The schedule label of one round.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SimTick;

/// Fixed order of work inside one round. Every system belongs to exactly one phase.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimPhase {
    /// Clock advance and per-round resets (core).
    Begin,
    /// Inbox reading, activation and the top-level choice.
    Activate,
    /// First pages for agents entering the recommender.
    Recommend,
    /// Browsing: page decisions, next pages, searches, watches.
    Watch,
    /// Feelings and ratings.
    Feel,
    /// Social choice and chats.
    Chat,
    /// Posts and their delivery.
    Broadcast,
    /// Memory writes.
    Remember,
    /// Outputs and model updates.
    Record,
}

/// Errors building or running a simulation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Bad data.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Bad catalogue.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// The LLM backend could not be set up.
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmSetupError),
    /// An output could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Agents active this round, ascending id (filled by activation).
#[derive(Resource, Clone, Debug, Default)]
pub struct ActiveAgents(pub Vec<Entity>);

/// The round's messages and interactions, written out in the record phase.
#[derive(Resource, Clone, Debug, Default)]
pub struct RoundLog {
    /// Messages in the order they happened (phase order, id order within a phase).
    pub messages: Vec<MessageRecord>,
    /// Messages are kept (`write_messages`); when false, [`RoundLog::say`] drops them.
    pub enabled: bool,
    /// Items mentioned in chats and posts this round.
    pub mentions: Vec<ItemId>,
    interactions: Vec<InteractionRecord>,
    index: BTreeMap<(u32, u32), usize>,
}

impl RoundLog {
    /// Adds a message for `agent`.
    pub fn say(&mut self, agent: UserId, action: &'static str, content: String) {
        if !self.enabled {
            return;
        }
        self.messages.push(MessageRecord {
            agent_id: i64::from(agent.0),
            action,
            content,
        });
    }
    /// Records that `item` was shown to `user` (once per round and pair).
    pub fn shown(&mut self, user: UserId, item: ItemId) {
        let n = self.interactions.len();
        self.index.entry((user.0, item.0)).or_insert_with(|| {
            self.interactions.push(InteractionRecord {
                user: user.0,
                item: item.0,
                label: 0,
                rating: 0,
            });
            n
        });
    }
    /// Records a watch (and its rating, 0 until felt).
    pub fn watched(&mut self, user: UserId, item: ItemId, rating: u8) {
        self.shown(user, item);
        let i = self.index[&(user.0, item.0)];
        self.interactions[i].label = 1;
        if rating > 0 {
            self.interactions[i].rating = rating;
        }
    }
    /// Messages grouped by agent id (system first), each agent's in the order they happened;
    /// interactions grouped by user id, each user's in first-shown order. Clears the log.
    pub fn take_sorted(&mut self) -> (Vec<MessageRecord>, Vec<InteractionRecord>) {
        let mut m = std::mem::take(&mut self.messages);
        m.sort_by_key(|x| x.agent_id); // stable
        let mut i = std::mem::take(&mut self.interactions);
        i.sort_by_key(|x| x.user); // stable
        self.index.clear();
        (m, i)
    }
}

/// Cumulative counters for the end-of-run summary.
#[derive(Resource, Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Rounds completed.
    pub rounds: u32,
    /// Agent activations, summed over rounds.
    pub active_agents: u64,
    /// Top-level choices: recommender.
    pub entered_recommender: u64,
    /// Top-level choices: social media.
    pub entered_social: u64,
    /// Top-level choices: nothing.
    pub did_nothing: u64,
    /// Pages shown (recommendation and search-result pages).
    pub pages_shown: u64,
    /// Items shown, summed over pages.
    pub items_shown: u64,
    /// Searches.
    pub searches: u64,
    /// Watches.
    pub watches: u64,
    /// Sum of ratings.
    pub rating_sum: u64,
    /// Ratings given.
    pub ratings: u64,
    /// Chats held.
    pub chats: u64,
    /// Dialogue lines.
    pub chat_lines: u64,
    /// Posts.
    pub posts: u64,
    /// Post deliveries (post × contact).
    pub deliveries: u64,
    /// Item mentions in chats and posts.
    pub mentions: u64,
    /// Social attempts of agents with no contacts.
    pub no_acquaintance: u64,
}

impl RunStats {
    /// Mean rating, if any.
    pub fn mean_rating(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_sum as f64 / self.ratings as f64)
    }
}

/// The recommender model and the interaction log it learns from.
#[derive(Resource)]
pub struct RecState {
    /// The model.
    pub model: Box<dyn Recommender>,
    /// Exposures and watches by dense index.
    pub log: InteractionLog,
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

/// The read-only parts of an agent that decisions see.
pub type AgentData = (
    &'static UserId,
    &'static Profile,
    &'static Taste,
    &'static Histories,
    &'static Relationships,
    &'static Memory,
);

/// A view from an [`AgentData`] query item.
pub fn view<'a>(
    d: (
        &'a UserId,
        &'a Profile,
        &'a Taste,
        &'a Histories,
        &'a Relationships,
        &'a Memory,
    ),
) -> AgentView<'a> {
    AgentView {
        id: *d.0,
        profile: d.1,
        taste: d.2,
        histories: d.3,
        contacts: d.4,
        memory: d.5,
    }
}

fn begin_round(
    mut clock: ResMut<SimClock>,
    mut active: ResMut<ActiveAgents>,
    mut sessions: Query<&mut Session>,
) {
    clock.round += 1;
    for e in active.0.drain(..) {
        if let Ok(mut s) = sessions.get_mut(e) {
            s.reset();
        }
    }
}

/// Embedded demo data (the files under `data/`), for the embedded default configuration.
const EMBEDDED_DATA: [(&str, &str); 3] = [
    ("item.csv", include_str!("../data/item.csv")),
    ("users.csv", include_str!("../data/users.csv")),
    ("relationship.csv", include_str!("../data/relationship.csv")),
];

fn source<'a>(cfg: &SimConfig, p: &'a Path, resolved: &'a Path) -> Source<'a> {
    if cfg.is_embedded() {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some((n, text)) = EMBEDDED_DATA.iter().find(|(n, _)| *n == name) {
            return Source::Text(n, text);
        }
    }
    Source::Path(resolved)
}

/// A simulation: the bevy app holding the world and the round schedule.
pub struct Sim {
    /// The app (world + schedules).
    pub app: App,
}

impl Sim {
    /// Loads the data named by `cfg`, builds the world, creates the output files and registers
    /// every behaviour plugin.
    ///
    /// # Errors
    /// [`SimError`] for bad data or an output file that cannot be created.
    pub fn new(cfg: SimConfig, outputs: OutputPaths) -> Result<Self, SimError> {
        let item_path = cfg.resolve(&cfg.item_path);
        let catalog = Catalog::new(data::load_items(source(&cfg, &cfg.item_path, &item_path))?)?;
        let user_path = cfg.resolve(&cfg.user_path);
        let mut users = data::load_users(source(&cfg, &cfg.user_path, &user_path))?;
        users.sort_by_key(|u| u.id);
        let users_in_file = users.len();
        if let Some(n) = cfg.agent_num {
            if n as usize > users.len() {
                return Err(crate::config::ConfigError::Invalid {
                    origin: "config".into(),
                    line: None,
                    key: "agent_num".into(),
                    message: format!(
                        "{n} is out of range: the user file has {} users (allowed 1..={})",
                        users.len(),
                        users.len()
                    ),
                }
                .into());
            }
        }
        let edges = match &cfg.relationship_path {
            Some(p) if !p.as_os_str().is_empty() => {
                let rp = cfg.resolve(p);
                data::load_relationships(source(&cfg, p, &rp), &users)?
            }
            _ => Vec::new(),
        };
        if let Some(n) = cfg.agent_num {
            users.truncate(n as usize);
        }
        let rewired = cfg.social_random_k != 0;
        let edges = if rewired {
            world::rewire(&users, cfg.social_random_k)
        } else {
            edges
        };

        let sink = OutputSink::create(outputs.clone(), cfg.write_messages).map_err(|source| {
            SimError::Io {
                path: outputs.messages.display().to_string(),
                source,
            }
        })?;

        let llm = crate::llm::backend_for(
            &cfg,
            users
                .iter()
                .map(|u| (UserId(u.id), Arc::from(u.name.as_str())))
                .collect(),
            outputs.manifest.parent().unwrap_or(Path::new(".")),
        )?;

        let mut app = App::empty();
        let world = app.world_mut();
        let report: LoadReport = world::populate(
            world,
            &cfg,
            &catalog,
            &users,
            users_in_file,
            &edges,
            rewired,
        );
        tracing::info!(?report, "world built");
        let mut model: Box<dyn Recommender> = match cfg.rec_model {
            RecModel::Random => Box::new(RandomRec::default()),
            RecModel::Popularity | RecModel::MF => Box::new(Popularity::default()),
        };
        let log = InteractionLog::new(report.agents, catalog.len());
        model.fit(&log);
        let start = cfg.start_datetime().expect("invariant: validated config");
        world.insert_resource(SimClock::new(start, cfg.interval));
        match llm {
            Some((backend, stats)) => {
                world.insert_resource(Behaviour(backend));
                world.insert_resource(stats);
            }
            None => world.insert_resource(Behaviour(Box::new(OfflineBackend {
                params: cfg.offline.clone(),
                parallel: cfg.execution_mode == ExecutionMode::Parallel,
            }))),
        }
        world.insert_resource(BehaviourStats::default());
        world.insert_resource(RecState { model, log });
        world.insert_resource(catalog);
        world.insert_resource(sink);
        world.insert_resource(ActiveAgents::default());
        world.insert_resource(RoundLog {
            enabled: cfg.write_messages,
            ..Default::default()
        });
        world.insert_resource(RunStats::default());
        world.insert_resource(PostBoard::default());
        world.insert_resource(PendingObservations::default());
        world.insert_resource(OutputError::default());
        world.insert_resource(cfg);

        let mut tick = Schedule::new(SimTick);
        tick.set_executor(SingleThreadedExecutor::new());
        tick.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            ..Default::default()
        });
        tick.configure_sets(
            (
                SimPhase::Begin,
                SimPhase::Activate,
                SimPhase::Recommend,
                SimPhase::Watch,
                SimPhase::Feel,
                SimPhase::Chat,
                SimPhase::Broadcast,
                SimPhase::Remember,
                SimPhase::Record,
            )
                .chain(),
        );
        tick.add_systems(begin_round.in_set(SimPhase::Begin));
        app.add_schedule(tick);
        crate::systems::add_behaviours(&mut app);
        app.finish();
        app.cleanup();
        Ok(Self { app })
    }

    /// Runs one round.
    ///
    /// # Errors
    /// An output write failed (the round's data is then lost; earlier rounds are on disk).
    pub fn step(&mut self) -> Result<(), SimError> {
        self.app.world_mut().run_schedule(SimTick);
        if let Some(e) = self.app.world_mut().resource_mut::<OutputError>().0.take() {
            return Err(e);
        }
        Ok(())
    }

    /// The current round (0 before the first step).
    pub fn round(&self) -> u32 {
        self.app.world().resource::<SimClock>().round
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        self.app.world().resource::<SimConfig>()
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &RunStats {
        self.app.world().resource::<RunStats>()
    }

    /// LLM token usage and call counters (`None` with the offline backend).
    pub fn llm_usage(&self) -> Option<crate::llm::LlmUsage> {
        self.app
            .world()
            .get_resource::<crate::llm::LlmStats>()
            .map(crate::llm::LlmStats::snapshot)
    }

    /// What loading did.
    pub fn load_report(&self) -> &LoadReport {
        self.app.world().resource::<LoadReport>()
    }

    /// Writes the manifest (configuration with secrets redacted, seed, version, backend, data
    /// report, counters so far). Deterministic: no wall-clock time.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_manifest(&self, status: &str) -> Result<(), SimError> {
        let w = self.app.world();
        let cfg = w.resource::<SimConfig>();
        let sink = w.resource::<OutputSink>();
        let clock = w.resource::<SimClock>();
        let stats = w.resource::<BehaviourStats>();
        let mut m = serde_json::json!({
            "engine": "recagent",
            "version": env!("CARGO_PKG_VERSION"),
            "status": status,
            "seed": cfg.seed,
            "backend": w.resource::<Behaviour>().0.name(),
            "recommender": w.resource::<RecState>().model.name(),
            "rounds_completed": clock.round,
            "rounds_planned": cfg.round,
            "start_time": cfg.start_time,
            "last_round_start": (clock.round > 0).then(|| format_timestamp(clock.now())),
            "data": w.resource::<LoadReport>(),
            "outputs": &sink.paths,
            "messages_format": "jsonl",
            "summary": w.resource::<RunStats>(),
            "behaviour_requests": stats.requests,
            "behaviour_fallbacks": stats.fallbacks,
            "config": cfg.redacted_json(),
        });
        if let Some(u) = w.get_resource::<crate::llm::LlmStats>() {
            m["llm_usage"] = serde_json::to_value(u.snapshot()).unwrap_or_default();
        }
        let bytes = serde_json::to_vec_pretty(&m).expect("invariant: JSON values serialise");
        crate::io::output::write_atomic(&sink.paths.manifest, &bytes).map_err(|source| {
            SimError::Io {
                path: sink.paths.manifest.display().to_string(),
                source,
            }
        })
    }

    /// Agent names by id (for tests and reports).
    pub fn agent_names(&mut self) -> Vec<(UserId, Arc<str>)> {
        let mut q = self.app.world_mut().query::<(&UserId, &Profile)>();
        let mut v: Vec<_> = q
            .iter(self.app.world())
            .map(|(u, p)| (*u, p.name.clone()))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }
}

/// Observations made this round, written to memory in the remember phase in user-id order.
#[derive(Resource, Clone, Debug, Default)]
pub struct PendingObservations(pub Vec<(UserId, crate::components::MemoryRecord)>);

impl PendingObservations {
    /// Queues an observation for `user`.
    pub fn add(
        &mut self,
        user: UserId,
        round: u32,
        kind: crate::components::ObservationKind,
        item: Option<ItemId>,
        other: Option<UserId>,
        value: u8,
    ) {
        self.0.push((
            user,
            crate::components::MemoryRecord {
                round,
                item,
                other,
                kind,
                value,
                text: None,
            },
        ));
    }

    /// Queues an observation that carries text (a chat transcript, a post).
    pub fn add_text(
        &mut self,
        user: UserId,
        round: u32,
        kind: crate::components::ObservationKind,
        item: Option<ItemId>,
        other: Option<UserId>,
        text: Arc<str>,
    ) {
        self.0.push((
            user,
            crate::components::MemoryRecord {
                round,
                item,
                other,
                kind,
                value: 0,
                text: Some(text),
            },
        ));
    }
}

/// An output error raised inside the record system, surfaced by [`Sim::step`].
#[derive(Resource, Default)]
pub struct OutputError(pub Option<SimError>);
