//! [`SimBuilder`]: a simulation from a configuration, a set of plugins, a backend and outputs.
//!
//! Building runs in two stages so that a resume can check everything before it touches a
//! file: [`SimBuilder::prepare`] registers the plugins (their settings are read and checked,
//! unknown keys refused) and loads and hashes the data; [`Prepared::finish`] builds the world,
//! the recommender, the item index and the backend, runs the plugins' setup, and creates (or
//! reopens) the output files last, so a failed start never damages an earlier run's outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy_app::{App, Plugins};
use sha2::Digest as _;

use super::{
    ActiveAgents, CorePlugin, DataHash, OutputError, PendingObservations, RecState, RoundLog,
    RunId, Sim, SimError, SimOutputs, SimSetup,
};
use crate::behaviour::offline::OfflineBackend;
use crate::behaviour::{Behaviour, BehaviourBackend};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::Taste;
use crate::config::{RecModel, SimConfig};
use crate::decision::DecisionKinds;
use crate::ids::{ItemId, UserId};
use crate::io::data::{self, EdgeRecord, Source, UserRecord};
use crate::io::output::{OutputOffsets, OutputPaths, OutputSink};
use crate::plugin::{SettingsRegistry, SetupErrors};
use crate::recommender::{
    Content, External, InteractionLog, ItemKnn, LightGcn, Mf, Popularity, RandomRec, Recommender,
    TrainParams,
};
use crate::world::{self, LoadReport, Roster};

/// Embedded demo data (the files under `data/`), for the embedded default configuration.
const EMBEDDED_DATA: [(&str, &str); 3] = [
    ("item.csv", include_str!("../../data/item.csv")),
    ("users.csv", include_str!("../../data/users.csv")),
    (
        "relationship.csv",
        include_str!("../../data/relationship.csv"),
    ),
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
        Source::Bytes(_, b) | Source::File(_, b) => {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
    }
}

/// The input data a configuration names, loaded and hashed once.
pub struct DataSet {
    /// The catalogue.
    pub catalog: Catalog,
    /// The agents' user records, sorted by id, limited to `agent_num`.
    pub users: Vec<UserRecord>,
    /// Users in the user file.
    pub users_in_file: usize,
    /// Social edges (rewired when `social_random_k` != 0).
    pub edges: Vec<EdgeRecord>,
    /// The graph was rewired.
    pub rewired: bool,
    /// SHA-256 (hex) of the item, user and relationship files.
    pub hash: String,
}

impl DataSet {
    /// Loads only the catalogue `cfg` names (`item_path`, resolved against `base_dir`; the
    /// embedded demo catalogue for the embedded configuration), e.g. to name a finished run's
    /// items in a report. Nothing is hashed or indexed.
    ///
    /// # Errors
    /// [`SimError`] for an unreadable or malformed item file (naming the file and line).
    pub fn load_catalog(cfg: &SimConfig) -> Result<Catalog, SimError> {
        let item_path = cfg.resolve(&cfg.item_path);
        let item_src = source(cfg, &cfg.item_path, &item_path);
        Ok(Catalog::new(data::load_items(item_src)?)?)
    }

    /// Loads the items, users and relationships `cfg` names (the embedded demo data for the
    /// embedded configuration).
    ///
    /// # Errors
    /// [`SimError`] for unreadable or malformed data, or `agent_num` beyond the user file.
    pub fn load(cfg: &SimConfig) -> Result<Self, SimError> {
        let item_path = cfg.resolve(&cfg.item_path);
        let item_src = source(cfg, &cfg.item_path, &item_path);
        let catalog = Catalog::new(data::load_items(item_src)?)?;
        let user_path = cfg.resolve(&cfg.user_path);
        let user_src = source(cfg, &cfg.user_path, &user_path);
        let rel_path = cfg
            .relationship_path
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p, cfg.resolve(p)));
        let rel_src = rel_path.as_ref().map(|(p, rp)| source(cfg, p, rp));
        // The two largest files are read once, side by side (a file that cannot be read is left
        // to its loader, which says why).
        let read = |src: Source<'_>| match src {
            Source::Path(p) => std::fs::read(p).ok(),
            _ => None,
        };
        let (user_bytes, rel_bytes) = rayon::join(|| read(user_src), || rel_src.and_then(read));
        let user_src = match (&user_bytes, user_src) {
            (Some(b), Source::Path(p)) => Source::File(p, b),
            (_, src) => src,
        };
        let rel_src = match (&rel_bytes, rel_src) {
            (Some(b), Some(Source::Path(p))) => Some(Source::File(p, b)),
            (_, src) => src,
        };
        // Then hashed and parsed from those bytes side by side: at a million agents they are
        // most of the load time, and neither needs the other until the edges are checked.
        let ((users, hasher), rows) = rayon::join(
            || {
                rayon::join(
                    || data::load_users(user_src),
                    || {
                        let mut h = sha2::Sha256::new();
                        hash_source(&mut h, item_src);
                        hash_source(&mut h, user_src);
                        if let Some(src) = rel_src {
                            hash_source(&mut h, src);
                        }
                        h
                    },
                )
            },
            || rel_src.map(data::read_relationships),
        );
        let mut users = users?;
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
        let edges = match rows {
            Some(rows) => rows.resolve(&users)?,
            None => Vec::new(),
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
        let hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            catalog,
            users,
            users_in_file,
            edges,
            rewired,
            hash,
        })
    }
}

type AddPlugins = Box<dyn FnOnce(&mut App)>;

/// Builds a [`Sim`].
///
/// ```no_run
/// use recagent::config::SimConfig;
/// use recagent::io::output::OutputPaths;
/// use recagent::sim::SimBuilder;
///
/// let cfg = SimConfig::embedded()?;
/// let mut sim = SimBuilder::new(cfg)
///     .outputs(OutputPaths::in_dir("output".as_ref()))
///     .build()?;
/// sim.step()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimBuilder {
    cfg: SimConfig,
    outputs: Option<OutputPaths>,
    default_plugins: bool,
    plugins: Vec<AddPlugins>,
    backend: Option<Box<dyn BehaviourBackend>>,
    resume_at: Option<OutputOffsets>,
    data: Option<DataSet>,
    check_keys: bool,
    run_id: Option<RunId>,
    overwrite: bool,
    checkpoint_dir: Option<PathBuf>,
    model: Option<Box<dyn Recommender>>,
}

impl SimBuilder {
    /// A builder for `cfg` with the shipped plugins ([`crate::SimPlugins`]) and the backend
    /// `cfg.backend` names; outputs in `cfg.output_dir` unless [`SimBuilder::outputs`] is given.
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            cfg,
            outputs: None,
            default_plugins: true,
            plugins: Vec::new(),
            backend: None,
            resume_at: None,
            data: None,
            check_keys: true,
            run_id: None,
            overwrite: false,
            checkpoint_dir: None,
            model: None,
        }
    }

    /// Replaces an earlier run found in the output folder (see [`run_files`]) instead of
    /// refusing to start ([`SimError::RunExists`]). Its files are removed only once the new
    /// run is set up, just before its outputs are created.
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// The folder the run's checkpoints go to, where an earlier run's checkpoints are looked
    /// for (default `<folder of the manifest>/checkpoints`).
    pub fn checkpoint_dir(mut self, dir: PathBuf) -> Self {
        self.checkpoint_dir = Some(dir);
        self
    }

    /// Leaves the check for keys no plugin claims to [`Prepared::check_keys`] (a resume
    /// first compares the checkpoint's parts, the clearer error when a plugin is missing).
    pub(crate) fn defer_key_check(mut self) -> Self {
        self.check_keys = false;
        self
    }

    /// Recommends with `model` instead of the one `rec_model` names (a model of your own, e.g.
    /// the Python bindings' adapter). It is told the ids behind the dense indices
    /// ([`Recommender::bind_ids`]), fitted on the initial log like a configured model, and
    /// re-fitted every `retrain_every` rounds. The manifest names it by
    /// [`Recommender::name`]; its learned state is checkpointed only if it implements
    /// [`Recommender::save_state`] (otherwise a resume re-fits it on the restored log, and a
    /// resume must be given the model again: the configuration still says `rec_model`).
    pub fn recommender(mut self, model: Box<dyn Recommender>) -> Self {
        self.model = Some(model);
        self
    }

    /// Where the outputs go.
    pub fn outputs(mut self, outputs: OutputPaths) -> Self {
        self.outputs = Some(outputs);
        self
    }

    /// Adds plugins (a plugin, a tuple or a group), after the shipped ones.
    pub fn plugins<M>(mut self, plugins: impl Plugins<M> + 'static) -> Self {
        self.plugins.push(Box::new(move |app| {
            app.add_plugins(plugins);
        }));
        self
    }

    /// Leaves out the shipped behaviour plugins (only [`CorePlugin`] and what
    /// [`SimBuilder::plugins`] adds).
    pub fn without_default_plugins(mut self) -> Self {
        self.default_plugins = false;
        self
    }

    /// Answers decisions with `backend` instead of the one the configuration names.
    pub fn backend(mut self, backend: Box<dyn BehaviourBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Reopens the output files and truncates them to `offsets` instead of creating them (a
    /// resumed run; see [`crate::checkpoint`]).
    pub fn resume_at(mut self, offsets: OutputOffsets) -> Self {
        self.resume_at = Some(offsets);
        self
    }

    /// The run's id (a resumed run keeps its own); default a fresh [`RunId`].
    pub fn run_id(mut self, id: RunId) -> Self {
        self.run_id = Some(id);
        self
    }

    /// Uses data already loaded (and hashed) for this configuration.
    pub fn data(mut self, data: DataSet) -> Self {
        self.data = Some(data);
        self
    }

    /// Registers the plugins (reading and checking their settings) and loads the data.
    ///
    /// # Errors
    /// [`SimError::Config`] for a bad setting or a key no plugin claims; [`SimError`] for bad
    /// data.
    pub fn prepare(self) -> Result<Prepared, SimError> {
        let (app, mut builder) = self.register()?;
        let data = match builder.data.take() {
            Some(d) => d,
            None => DataSet::load(&builder.cfg)?,
        };
        Ok(Prepared { app, data, builder })
    }

    /// Checks the configuration against the plugins' settings (their values, and that every
    /// key belongs to the core or a plugin) without loading any data.
    ///
    /// # Errors
    /// [`SimError::Config`] naming the key.
    pub fn check(self) -> Result<(), SimError> {
        self.register().map(|_| ())
    }

    fn register(mut self) -> Result<(App, SimBuilder), SimError> {
        let mut app = App::empty();
        app.world_mut().insert_resource(self.cfg.clone());
        app.add_plugins(CorePlugin);
        if self.default_plugins {
            app.add_plugins(crate::SimPlugins);
        }
        for add in self.plugins.drain(..) {
            add(&mut app);
        }
        let errors = app.world_mut().remove_resource::<SetupErrors>();
        if let Some(e) = errors.and_then(|e| e.0.into_iter().next()) {
            return Err(e.into());
        }
        if self.check_keys {
            check_keys(&app, &self.cfg)?;
        }
        Ok((app, self))
    }

    /// Builds the simulation ([`SimBuilder::prepare`], then [`Prepared::finish`]).
    ///
    /// # Errors
    /// As those two.
    pub fn build(self) -> Result<Sim, SimError> {
        self.prepare()?.finish()
    }
}

fn check_keys(app: &App, cfg: &SimConfig) -> Result<(), SimError> {
    let claimed = app
        .world()
        .get_resource::<SettingsRegistry>()
        .map(SettingsRegistry::claimed)
        .unwrap_or_default();
    Ok(cfg.check_claimed(&claimed)?)
}

/// A builder whose plugins are registered and data loaded: what a resume checks before it
/// touches a file.
pub struct Prepared {
    app: App,
    data: DataSet,
    builder: SimBuilder,
}

impl Prepared {
    /// SHA-256 (hex) of the data files.
    pub fn data_hash(&self) -> &str {
        &self.data.hash
    }

    /// Fails for a configuration key neither the core nor a registered plugin owns.
    ///
    /// # Errors
    /// [`SimError::Config`] naming the key.
    pub fn check_keys(&self) -> Result<(), SimError> {
        check_keys(&self.app, &self.builder.cfg)
    }

    /// Why a plugin's setting `key` cannot change mid-run, if it cannot.
    pub fn fixed_reason(&self, key: &str) -> Option<&'static str> {
        self.app
            .world()
            .get_resource::<SettingsRegistry>()
            .and_then(|r| r.fixed_reason(key))
    }

    /// The names of the checkpoint parts the registered plugins keep.
    pub fn checkpoint_parts(&self) -> Vec<String> {
        self.app
            .world()
            .get_resource::<crate::plugin::CheckpointParts>()
            .map(crate::plugin::CheckpointParts::names)
            .unwrap_or_default()
    }

    /// The names of the checkpoint parts a checkpoint may lack
    /// ([`crate::plugin::CheckpointPart::absent_ok`]).
    pub fn optional_checkpoint_parts(&self) -> Vec<String> {
        self.app
            .world()
            .get_resource::<crate::plugin::CheckpointParts>()
            .map(crate::plugin::CheckpointParts::optional_names)
            .unwrap_or_default()
    }

    /// The registered decision kinds.
    pub fn decision_kinds(&self) -> DecisionKinds {
        self.app
            .world()
            .get_resource::<DecisionKinds>()
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the configuration by `cfg`, for core keys the plugins do not read (a branch's
    /// own transcript path); plugin settings stay as prepared.
    pub fn with_config(mut self, cfg: SimConfig) -> Self {
        self.app.world_mut().insert_resource(cfg.clone());
        self.builder.cfg = cfg;
        self
    }

    /// Where the outputs go.
    pub fn outputs(mut self, outputs: OutputPaths) -> Self {
        self.builder.outputs = Some(outputs);
        self
    }

    /// Reopens the outputs at `offsets` (see [`SimBuilder::resume_at`]).
    pub fn resume_at(mut self, offsets: OutputOffsets) -> Self {
        self.builder.resume_at = Some(offsets);
        self
    }

    /// The run's id (see [`SimBuilder::run_id`]).
    pub fn run_id(mut self, id: RunId) -> Self {
        self.builder.run_id = Some(id);
        self
    }

    /// Whether an earlier run in the output folder is to be replaced ([`SimBuilder::overwrite`]).
    pub fn overwrites(&self) -> bool {
        self.builder.overwrite
    }

    /// Builds the world, the recommender, the item index and the backend, runs the plugins'
    /// setup and creates (or reopens) the outputs.
    ///
    /// # Errors
    /// [`SimError`] for a backend, embedder, warm-start file or output that cannot be set up.
    pub fn finish(self) -> Result<Sim, SimError> {
        let Prepared {
            mut app,
            data,
            builder,
        } = self;
        let cfg = builder.cfg;
        let outputs = builder.outputs.unwrap_or_else(|| default_outputs(&cfg));
        let out_dir = outputs
            .manifest
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        // A fresh run into a folder holding an earlier one is refused before anything is built
        // (a resume or branch checks its own folder, in `checkpoint::resume`).
        let earlier = match builder.resume_at {
            None => {
                let ckpts = builder
                    .checkpoint_dir
                    .clone()
                    .unwrap_or_else(|| out_dir.join("checkpoints"));
                let found = run_files(&outputs, &ckpts);
                if !found.is_empty() && !builder.overwrite {
                    return Err(SimError::RunExists {
                        dir: out_dir,
                        files: found.into_iter().take(6).collect(),
                        flag: "--output-dir",
                    });
                }
                found
            }
            Some(_) => Vec::new(),
        };
        let kinds = app
            .world()
            .get_resource::<DecisionKinds>()
            .cloned()
            .unwrap_or_default();
        let resume = builder.resume_at.map(|o| o.round);
        let (backend, llm_stats) = match builder.backend {
            Some(b) => (b, None),
            None => configured_backend(&cfg, &data, &out_dir, resume, &kinds)?,
        };
        let world = app.world_mut();
        let report: LoadReport = world::populate(
            world,
            &data.catalog,
            &data.users,
            data.users_in_file,
            &data.edges,
            data.rewired,
        );
        tracing::info!(?report, "world built");
        let (mut model, log, warm_start) =
            build_recommender(&cfg, &data.catalog, world, builder.model)?;
        model.fit(&log);
        let start = cfg.start_datetime().expect("invariant: validated config");
        world.insert_resource(SimClock::new(start, cfg.interval));
        world.insert_resource(Behaviour(backend));
        if let Some(stats) = llm_stats {
            world.insert_resource(stats);
        }
        let mut catalog = data.catalog;
        let embedder = embedder_and_index(&cfg, &mut catalog, &out_dir)?;
        world.insert_resource(crate::embed::Embeddings(embedder));
        // The model's own counters (External's failed requests) appear from the start, at 0.
        for c in model.take_counts() {
            world
                .resource_mut::<crate::plugin::Counters>()
                .register("recommender", crate::plugin::Counter::new(c.name, c.label));
        }
        world.insert_resource(RecState {
            model,
            log,
            warm_start,
        });
        world.insert_resource(catalog);
        world.insert_resource(ActiveAgents::default());
        world.insert_resource(RoundLog {
            enabled: cfg.write_messages,
            sample: cfg.message_agents.sorted(),
            ..Default::default()
        });
        world.insert_resource(PendingObservations::default());
        world.insert_resource(OutputError::default());
        world.insert_resource(DataHash(data.hash));
        world.insert_resource(builder.run_id.unwrap_or_else(RunId::fresh));
        world.run_schedule(SimSetup);
        // Output files are created (or truncated back, on resume) only once everything else is
        // set up, so a failed start never damages an earlier run's outputs; the rest of an
        // earlier run being overwritten is removed once they are.
        let created = [
            outputs.messages.clone(),
            outputs.messages_stream(),
            outputs.interactions.clone(),
        ];
        let sink = match builder.resume_at {
            None => OutputSink::create(outputs, cfg.write_messages)?
                .with_parquet(cfg.interactions_parquet, 0),
            Some(at) => OutputSink::resume(outputs, cfg.write_messages, at)?
                .with_parquet(cfg.interactions_parquet, at.round),
        }?;
        let stale: Vec<PathBuf> = earlier
            .into_iter()
            .filter(|f| !created.contains(f))
            .collect();
        remove_run_files(&stale)?;
        // A checkpoint folder the earlier run's checkpoints leave empty goes with them (a run
        // with `checkpoint_every: 0` writes none); `remove_dir` keeps a folder with other files.
        let ckpt_dirs: std::collections::BTreeSet<&Path> = stale
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "ckpt" || e == "tmp"))
            .filter_map(|f| f.parent())
            .collect();
        for d in ckpt_dirs {
            let _ = std::fs::remove_dir(d);
        }
        world.insert_resource(sink);
        world.run_schedule(SimOutputs);
        if let Some(e) = world.resource_mut::<OutputError>().0.take() {
            return Err(e);
        }
        app.finish();
        app.cleanup();
        Ok(Sim { app })
    }
}

/// The files of an earlier run that a run writing `outputs` (checkpoints in `checkpoints`)
/// would replace, those that exist: the manifest, the messages (document and stream), the
/// interactions, `metrics.csv` beside them, the log, `report.html` beside the manifest, and the
/// checkpoints `round-*.ckpt` (and their temporary files). Other files are not the run's.
pub fn run_files(outputs: &OutputPaths, checkpoints: &Path) -> Vec<PathBuf> {
    let dir = outputs.manifest.parent().unwrap_or(Path::new(""));
    let beside_interactions = outputs.interactions.parent().unwrap_or(Path::new(""));
    let mut files = vec![
        outputs.manifest.clone(),
        outputs.messages.clone(),
        outputs.messages_stream(),
        outputs.interactions.clone(),
        beside_interactions.join("metrics.csv"),
        beside_interactions.join(crate::intervention::LOG_FILE),
        outputs.log.clone(),
        dir.join("report.html"),
    ];
    files.extend(recorded_run_files(&outputs.manifest));
    // In that order (the manifest first), each once.
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(f.clone()));
    let mut found: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
    found.extend(
        crate::io::parquet::parts(&crate::io::parquet::parts_dir(&outputs.interactions))
            .into_iter()
            .map(|(_, p)| p),
    );
    if let Ok(entries) = std::fs::read_dir(checkpoints) {
        let mut ckpts: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("round-") && (n.ends_with(".ckpt") || n.ends_with(".tmp"))
                }) && p.is_file()
            })
            .collect();
        ckpts.sort();
        found.extend(ckpts);
    }
    found
}

/// The outputs an earlier run's manifest at `manifest` records beside itself (by file name, in
/// the folder `manifest` is in now): its messages (and stream), interactions and log may have
/// had other names than this run's. Files it recorded elsewhere are never counted, so a moved
/// or copied manifest cannot make a run remove another folder's files.
fn recorded_run_files(manifest: &Path) -> Vec<PathBuf> {
    let Some(m) = std::fs::read_to_string(manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let path = |v: &serde_json::Value| v.as_str().map(PathBuf::from);
    let Some(recorded_dir) = path(&m["outputs"]["manifest"]).map(|p| p.with_file_name("")) else {
        return Vec::new();
    };
    let here = manifest.parent().unwrap_or(Path::new(""));
    [
        &m["outputs"]["messages"],
        &m["messages_stream"],
        &m["outputs"]["interactions"],
        &m["outputs"]["log"],
    ]
    .into_iter()
    .filter_map(path)
    .filter(|p| p.with_file_name("") == recorded_dir)
    .filter_map(|p| p.file_name().map(|n| here.join(n)))
    .collect()
}

/// Removes the files [`run_files`] found.
fn remove_run_files(files: &[PathBuf]) -> Result<(), SimError> {
    for f in files {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SimError::Io {
                    path: f.display().to_string(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// The default outputs: in `output_dir` (`./output` for the embedded configuration).
fn default_outputs(cfg: &SimConfig) -> OutputPaths {
    let dir = if cfg.is_embedded() {
        PathBuf::from("output")
    } else {
        cfg.resolve(&cfg.output_dir)
    };
    OutputPaths::in_dir(&dir)
}

/// The backend `cfg.backend` names: the LLM or replay backend with its counters, else the
/// offline model.
fn configured_backend(
    cfg: &SimConfig,
    data: &DataSet,
    out_dir: &Path,
    resume: Option<u32>,
    kinds: &DecisionKinds,
) -> Result<(Box<dyn BehaviourBackend>, Option<crate::llm::LlmStats>), SimError> {
    let names: BTreeMap<UserId, Arc<str>> = data
        .users
        .iter()
        .map(|u| (UserId(u.id), Arc::from(u.name.as_str())))
        .collect();
    let offline = crate::calibration::load_for(
        &cfg.offline,
        |f| cfg.resolve(Path::new(f)),
        &data.catalog,
        &cfg.item_path.display().to_string(),
    )?;
    Ok(
        match crate::llm::backend_for(cfg, &offline, names, out_dir, resume, kinds)? {
            Some((b, stats)) => (b, Some(stats)),
            None => (Box::new(OfflineBackend::for_config(cfg, offline)), None),
        },
    )
}

/// The memory embedder, and the catalogue's item index (`memory.item_index`), read from and
/// persisted in the folders of [`crate::catalog::index_dirs`] (never beside the input data); a
/// failed index falls back to word search.
fn embedder_and_index(
    cfg: &SimConfig,
    catalog: &mut Catalog,
    out_dir: &Path,
) -> Result<Arc<dyn crate::embed::Embedder>, SimError> {
    let mut embed_params = cfg.memory.clone();
    if !cfg.is_embedded() {
        embed_params.embed_model_dir = embed_params.embed_model_dir.map(|d| cfg.resolve(&d));
    }
    let embedder = crate::embed::from_params(&embed_params, out_dir)?;
    if cfg.memory.item_index {
        let item_path = cfg.resolve(&cfg.item_path);
        let index_dir = cfg.memory.index_dir.as_deref().map(|d| cfg.resolve(d));
        let item_file = (!cfg.is_embedded()).then_some(item_path.as_path());
        let dirs = crate::catalog::index_dirs(index_dir.as_deref(), item_file, out_dir);
        match crate::catalog::ItemIndex::shared(catalog, embedder.clone(), &dirs) {
            Ok(ix) => catalog.attach_index(ix),
            Err(e) => tracing::warn!("item index not built, using word search: {e}"),
        }
    }
    Ok(embedder)
}

/// The configured model (or `given`, told the ids behind the dense indices) and its
/// interaction log, warm-started from `rec_init_path` when set (unknown item ids are counted
/// and logged; non-agent users become background users).
fn build_recommender(
    cfg: &SimConfig,
    catalog: &Catalog,
    world: &bevy_ecs::world::World,
    given: Option<Box<dyn Recommender>>,
) -> Result<
    (
        Box<dyn Recommender>,
        InteractionLog,
        Option<crate::recommender::WarmReport>,
    ),
    SimError,
> {
    let roster = world.resource::<Roster>();
    let model: Box<dyn Recommender> = match given {
        Some(mut m) => {
            let items: Vec<u32> = (0..catalog.len() as u32)
                .map(|i| catalog.get(i).id.0)
                .collect();
            let users: Vec<u32> = roster.ids.iter().map(|u| u.0).collect();
            m.bind_ids(&items, &users);
            m
        }
        None => configured_model(cfg, catalog, world),
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

/// A fresh, unfitted model of the configured `rec_model` with the configured training
/// parameters (the content model's prior from the agents' tastes in `world`).
pub(crate) fn configured_model(
    cfg: &SimConfig,
    catalog: &Catalog,
    world: &bevy_ecs::world::World,
) -> Box<dyn Recommender> {
    let roster = world.resource::<Roster>();
    let params = TrainParams {
        dim: cfg.embedding_size as usize,
        lr: cfg.lr as f32,
        epochs: cfg.epoch_num,
        batch: cfg.batch_size as usize,
        seed: cfg.seed,
        ..TrainParams::default()
    };
    match cfg.rec_model {
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
        RecModel::MultVAE => Box::new(crate::recommender::MultVae::new(
            crate::recommender::MultVaeParams {
                lr: cfg.lr as f32,
                epochs: cfg.epoch_num,
                batch: cfg.batch_size as usize,
                // β reaches its cap at the end of the first fit; later fits keep it there.
                anneal_epochs: cfg.epoch_num,
                seed: cfg.seed,
                ..Default::default()
            },
        )),
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
    }
}
