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
use crate::io::output::{InteractionRecord, MessageRecord, OutputOffsets, OutputPaths, OutputSink};
use crate::recommender::{
    Content, External, InteractionLog, ItemKnn, LightGcn, Mf, Popularity, RandomRec, Recommender,
    TrainParams,
};
use crate::world::{self, LoadReport};
use sha2::Digest as _;

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
    /// Bad initial-interaction file (`rec_init_path`).
    #[error(transparent)]
    RecData(#[from] crate::recommender::eval::RecDataError),
    /// The LLM backend could not be set up.
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmSetupError),
    /// The embedder could not be set up (`memory.embedder: minilm` with a missing model).
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    /// An output could not be written.
    #[error(transparent)]
    File(#[from] crate::io::output::FileError),
    /// Another I/O failure (the manifest).
    #[error("{path}")]
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
#[derive(Resource, Clone, Debug, Default, Serialize, serde::Deserialize)]
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
    /// What the warm start (`rec_init_path`) loaded, if one was configured.
    pub warm_start: Option<crate::recommender::WarmReport>,
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
        Self::build(cfg, outputs, None)
    }

    /// As [`Sim::new`]; with `resume_at`, the output files are reopened and truncated to those
    /// offsets instead of created (see [`crate::checkpoint`]).
    ///
    /// # Errors
    /// [`SimError`] for bad data or an output file that cannot be created or reopened.
    pub fn build(
        cfg: SimConfig,
        outputs: OutputPaths,
        resume_at: Option<OutputOffsets>,
    ) -> Result<Self, SimError> {
        let mut hasher = sha2::Sha256::new();
        let item_path = cfg.resolve(&cfg.item_path);
        let item_src = source(&cfg, &cfg.item_path, &item_path);
        hash_source(&mut hasher, item_src);
        let catalog = Catalog::new(data::load_items(item_src)?)?;
        let user_path = cfg.resolve(&cfg.user_path);
        let user_src = source(&cfg, &cfg.user_path, &user_path);
        hash_source(&mut hasher, user_src);
        let mut users = data::load_users(user_src)?;
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
                let src = source(&cfg, p, &rp);
                hash_source(&mut hasher, src);
                data::load_relationships(src, &users)?
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

        let data_hash: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let llm = crate::llm::backend_for(
            &cfg,
            users
                .iter()
                .map(|u| (UserId(u.id), Arc::from(u.name.as_str())))
                .collect(),
            outputs.manifest.parent().unwrap_or(Path::new(".")),
            resume_at.map(|o| o.round),
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
        let (mut model, log, warm_start) = build_recommender(&cfg, &catalog, world)?;
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
        let out_dir = outputs.manifest.parent().unwrap_or(Path::new("."));
        let mut embed_params = cfg.memory.clone();
        if !cfg.is_embedded() {
            embed_params.embed_model_dir = embed_params.embed_model_dir.map(|d| cfg.resolve(&d));
        }
        let embedder = crate::embed::from_params(&embed_params, out_dir)?;
        let mut catalog = catalog;
        if cfg.memory.item_index {
            let dirs = crate::systems::remember::index_dirs(&cfg, &item_path, out_dir);
            match crate::catalog::ItemIndex::shared(&catalog, embedder.clone(), &dirs) {
                Ok(ix) => catalog.attach_index(ix),
                Err(e) => tracing::warn!("item index not built, using word search: {e}"),
            }
        }
        world.insert_resource(crate::embed::Embeddings(embedder));
        world.insert_resource(RecState {
            model,
            log,
            warm_start,
        });
        world.insert_resource(catalog);
        // Output files are created (or truncated back, on resume) only once everything else is
        // set up, so a failed start never damages an earlier run's outputs.
        let sink = match resume_at {
            None => OutputSink::create(outputs.clone(), cfg.write_messages),
            Some(at) => OutputSink::resume(outputs.clone(), cfg.write_messages, at),
        }?;
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
        world.insert_resource(DataHash(data_hash));
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

    /// The world (for checkpoints and tests).
    pub fn world(&self) -> &World {
        self.app.world()
    }

    /// The world, mutably (for checkpoints and tests).
    pub fn world_mut(&mut self) -> &mut World {
        self.app.world_mut()
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
            "warm_start": w.resource::<RecState>().warm_start,
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
            "base_dir": cfg.base_dir,
            "config": cfg.redacted_json(),
            "parent_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.parent.clone()),
            "last_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.last.clone()),
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
        self.add(user, round, kind, item, other, 0);
        if let Some((_, rec)) = self.0.last_mut() {
            rec.text = Some(text);
        }
    }
}

/// Where this run came from and its latest checkpoint (recorded in the manifest).
#[derive(Resource, Clone, Debug, Default)]
pub struct Lineage {
    /// The checkpoint a branch or resumed run started from.
    pub parent: Option<std::path::PathBuf>,
    /// The latest checkpoint written.
    pub last: Option<std::path::PathBuf>,
}

/// SHA-256 of the input data files (items, users, relationships), hex.
#[derive(Resource, Clone, Debug, Default)]
pub struct DataHash(pub String);

/// SHA-256 (hex) of the input data files `cfg` names, as [`Sim::build`] computes it.
pub fn data_hash(cfg: &SimConfig) -> String {
    let mut h = sha2::Sha256::new();
    let item_path = cfg.resolve(&cfg.item_path);
    hash_source(&mut h, source(cfg, &cfg.item_path, &item_path));
    let user_path = cfg.resolve(&cfg.user_path);
    hash_source(&mut h, source(cfg, &cfg.user_path, &user_path));
    if let Some(p) = cfg
        .relationship_path
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let rp = cfg.resolve(p);
        hash_source(&mut h, source(cfg, p, &rp));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_source(h: &mut sha2::Sha256, src: Source<'_>) {
    match src {
        Source::Path(p) => {
            if let Ok(bytes) = std::fs::read(p) {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
        }
        Source::Text(_, t) => {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
    }
}

/// An output error raised inside the record system, surfaced by [`Sim::step`].
#[derive(Resource, Default)]
pub struct OutputError(pub Option<SimError>);

/// The configured model and its interaction log, warm-started from `rec_init_path` when set
/// (unknown item ids are counted and logged; non-agent users become background users).
fn build_recommender(
    cfg: &SimConfig,
    catalog: &Catalog,
    world: &World,
) -> Result<
    (
        Box<dyn Recommender>,
        InteractionLog,
        Option<crate::recommender::WarmReport>,
    ),
    SimError,
> {
    let roster = world.resource::<world::Roster>();
    let params = TrainParams {
        dim: cfg.embedding_size as usize,
        lr: cfg.lr as f32,
        epochs: cfg.epoch_num,
        batch: cfg.batch_size as usize,
        seed: cfg.seed,
        ..TrainParams::default()
    };
    let model: Box<dyn Recommender> = match cfg.rec_model {
        RecModel::Random => Box::new(RandomRec::default()),
        RecModel::Popularity => Box::new(Popularity::default()),
        RecModel::MF => Box::new(Mf::new(TrainParams {
            reg: crate::recommender::MF_DEFAULT_REG,
            ..params
        })),
        RecModel::LightGCN => Box::new(LightGcn::new(TrainParams {
            reg: crate::recommender::LIGHTGCN_DEFAULT_REG,
            ..params
        })),
        RecModel::ItemKNN => Box::new(ItemKnn::default()),
        RecModel::Content => {
            // Genre multi-hot items; each agent's liked genres (from its profile) as the prior.
            let g = catalog.genre_names().len().max(1);
            let bit = |set: u32, k: usize| f32::from(u8::from((set >> k) & 1 == 1));
            let f = ndarray::Array2::from_shape_fn((catalog.len(), g), |(i, k)| {
                bit(catalog.get(i as u32).genres.0, k)
            });
            let liked: Vec<u32> = roster
                .entities
                .iter()
                .map(|&e| world.get::<Taste>(e).map_or(0, |t| t.liked.0))
                .collect();
            let prior = ndarray::Array2::from_shape_fn((liked.len(), g), |(u, k)| bit(liked[u], k));
            Box::new(Content::new(f, Some(prior)))
        }
        RecModel::External => {
            Box::new(External::new(cfg.rec_external_url.as_deref().unwrap_or("")))
        }
    };
    let n_agents = roster.len();
    let Some(path) = cfg
        .rec_init_path
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok((model, InteractionLog::new(n_agents, catalog.len()), None));
    };
    let records = crate::recommender::load_initial(&cfg.resolve(path))?;
    let warm = crate::recommender::map_initial(
        &records,
        n_agents,
        |u| roster.index_of(UserId(u)),
        |i| catalog.index_of(ItemId(i)),
    );
    if warm.report.unknown_items > 0 {
        tracing::warn!(path = %path.display(), unknown_items = warm.report.unknown_items, "warm start: interactions with item ids not in the catalogue dropped");
    }
    tracing::info!(report = ?warm.report, "warm start loaded");
    let mut log = InteractionLog::new(n_agents + warm.n_background, catalog.len());
    for &(u, i, r) in &warm.pairs {
        log.add_initial(u, i, r);
    }
    Ok((model, log, Some(warm.report)))
}
