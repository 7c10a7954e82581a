//! The simulation: the round schedule, the per-round resources, [`Sim`] and its builder.
//!
//! One [`Sim::step`] = one round = one run of the [`SimTick`] schedule, whose systems sit in the
//! chained [`SimPhase`] sets: begin → activate → recommend → watch → feel → chat → broadcast →
//! remember → record → end. The schedule runs on the single-threaded executor with ambiguity
//! detection set to error, so system order is explicit and never depends on insertion order.
//!
//! - [`builder`]: [`SimBuilder`] (configuration, plugins, backend, outputs) and the data set;
//! - [`core`]: [`CorePlugin`], the schedule and the engine's own systems and state;
//! - [`manifest`]: the run manifest;
//! - [`run`]: the run loop with its checkpoint cadence and stop request.

pub mod builder;
pub mod core;
pub mod manifest;
pub mod run;

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_app::App;
use bevy_ecs::entity::Entity;
use bevy_ecs::prelude::*;

use crate::behaviour::{Behaviour, BehaviourBackend};
use crate::clock::SimClock;
use crate::components::{Histories, Memory, Profile, Relationships, Taste};
use crate::config::SimConfig;
use crate::decision::AgentView;
use crate::ids::{ItemId, UserId};
use crate::io::data;
use crate::io::output::{InteractionRecord, MessageRecord};
use crate::plugin::Counters;
use crate::recommender::{InteractionLog, Recommender};
use crate::world::LoadReport;

pub use self::core::CorePlugin;
pub use crate::schedule::{SimOutputs, SimPhase, SimSetup, SimTick};
pub use builder::{run_files, DataSet, Prepared, SimBuilder};
pub use manifest::{InterruptedAt, ManifestGuard};
pub use run::{CheckpointPolicy, RunEnd};

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
    /// The calibrated offline model could not be loaded (`offline.model: calibrated`).
    #[error(transparent)]
    Calibration(#[from] crate::calibration::CalibrationError),
    /// The embedder could not be set up (`memory.embedder: minilm` with a missing model).
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    /// An output could not be written.
    #[error(transparent)]
    File(#[from] crate::io::output::FileError),
    /// The output folder holds an earlier run, and overwriting was not asked for.
    #[error(
        "{} holds an earlier run ({}): pass --overwrite to replace it (that run's manifest, messages, interactions, metrics, log, report and checkpoints are removed; other files stay), or choose another {flag}",
        dir.display(),
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RunExists {
        /// The run folder (where the manifest goes).
        dir: std::path::PathBuf,
        /// The earlier run's files found there (the first few).
        files: Vec<std::path::PathBuf>,
        /// The option that names another folder (`--output-dir`, `--out`).
        flag: &'static str,
    },
    /// Another I/O failure (the manifest).
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Agents active this round, ascending id (filled by activation; read by every phase).
#[derive(Resource, Clone, Debug, Default)]
pub struct ActiveAgents(pub Vec<Entity>);

/// That `listener` heard of `item` from `speaker` (a chat line, a post delivered), with what the
/// speaker had rated the item at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hearing {
    /// Who heard.
    pub listener: UserId,
    /// Who mentioned the item.
    pub speaker: UserId,
    /// The item.
    pub item: ItemId,
    /// The speaker's own rating of the item then (1..=5), `None` when it had not rated it.
    pub stated: Option<u8>,
}

/// The round's events: messages and interactions (written out at the end of the round), and what
/// the record phase measures (the pages shown, who heard of what). Cleared by
/// [`RoundLog::take_sorted`] at the end of the round.
#[derive(Resource, Clone, Debug, Default)]
pub struct RoundLog {
    /// Messages in the order they happened (phase order, id order within a phase).
    pub messages: Vec<MessageRecord>,
    /// Messages are kept (`write_messages`); when false, [`RoundLog::say`] drops them.
    pub enabled: bool,
    /// Whose messages are kept (`message_agents`, ids sorted); the others' are dropped by
    /// [`RoundLog::say`].
    pub sample: crate::config::MessageAgents,
    /// Items mentioned in chats and posts this round.
    pub mentions: Vec<ItemId>,
    /// Every showing and watch as it happened, until [`RoundLog::interactions`] settles them
    /// into one record per (user, item): appending is what phases do millions of times a
    /// round, and settling is one stable sort by user at the end (an index kept up to date on
    /// every showing, a B-tree or a hash map, was a quarter of the first pages' time at 1M).
    interactions: Vec<InteractionRecord>,
    /// `interactions` holds one record per pair, grouped by user.
    settled: bool,
    /// Pages shown: (user, start and length in `page_items`).
    pages: Vec<(UserId, u32, u32)>,
    page_items: Vec<ItemId>,
    hearings: Vec<Hearing>,
}

impl RoundLog {
    /// Adds a message for `agent`.
    pub fn say(&mut self, agent: UserId, action: &'static str, content: String) {
        if !self.wants(agent) {
            return;
        }
        self.messages.push(MessageRecord {
            agent_id: i64::from(agent.0),
            action,
            content,
        });
    }
    /// [`RoundLog::say`] with the text built only when the message is kept: at scale, with
    /// messages off or sampled, formatting millions of dropped sentences a round was a
    /// measurable share of every phase.
    pub fn say_with(
        &mut self,
        agent: UserId,
        action: &'static str,
        content: impl FnOnce() -> String,
    ) {
        if self.wants(agent) {
            self.say(agent, action, content());
        }
    }
    /// True when a message of `agent` would be kept (`write_messages` and `message_agents`):
    /// callers with costly text to build may skip it otherwise.
    pub fn wants(&self, agent: UserId) -> bool {
        self.enabled && self.sample.keeps(agent.0)
    }
    /// Records a system message (`agent_id` -1), e.g. a setting changed between rounds.
    pub fn say_system(&mut self, action: &'static str, content: String) {
        if self.enabled {
            self.messages.push(MessageRecord {
                agent_id: -1,
                action,
                content,
            });
        }
    }
    /// Records that `item` was shown to `user` (one interaction per round and pair, however
    /// often it is shown).
    pub fn shown(&mut self, user: UserId, item: ItemId) {
        self.push(user, item, 0, 0);
    }
    /// Records a watch (and its rating, 0 until felt; a later nonzero rating of the pair
    /// replaces an earlier one).
    pub fn watched(&mut self, user: UserId, item: ItemId, rating: u8) {
        self.push(user, item, 1, rating);
    }
    fn push(&mut self, user: UserId, item: ItemId, label: u8, rating: u8) {
        self.settled = false;
        self.interactions.push(InteractionRecord {
            user: user.0,
            item: item.0,
            label,
            rating,
        });
    }
    /// The round's interactions so far: one per (user, item) pair, grouped by user id
    /// (ascending), each user's in first-shown order; watched (label 1) when any watch of the
    /// pair was recorded, with the last nonzero rating recorded for it.
    pub fn interactions(&mut self) -> &[InteractionRecord] {
        self.settle();
        &self.interactions
    }
    /// Merges the recorded showings and watches into one record per pair (see
    /// [`RoundLog::interactions`]). A user's records stay in the order they were recorded (a
    /// stable sort), so the first of a pair's is where it was first shown.
    fn settle(&mut self) {
        if self.settled {
            return;
        }
        /// A user's records are deduplicated by a linear scan up to this many distinct items,
        /// then through a map (a plugin may show one agent thousands of items).
        const SCAN: usize = 32;
        let v = &mut self.interactions;
        v.sort_by_key(|r| r.user);
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        let (mut out, mut i) = (0, 0);
        while i < v.len() {
            let (user, start) = (v[i].user, out);
            seen.clear();
            while i < v.len() && v[i].user == user {
                let r = v[i];
                let found = if out - start <= SCAN {
                    (start..out).find(|&k| v[k].item == r.item)
                } else {
                    if seen.is_empty() {
                        seen.extend((start..out).map(|k| (v[k].item, k)));
                    }
                    seen.get(&r.item).copied()
                };
                match found {
                    Some(k) => {
                        v[k].label |= r.label;
                        if r.rating > 0 {
                            v[k].rating = r.rating;
                        }
                    }
                    None => {
                        if !seen.is_empty() {
                            seen.insert(r.item, out);
                        }
                        v[out] = r;
                        out += 1;
                    }
                }
                i += 1;
            }
        }
        v.truncate(out);
        self.settled = true;
    }
    /// Records a page of `items` shown to `user` (every showing, in display order). The
    /// interactions are recorded apart, with [`RoundLog::shown`].
    pub fn page_shown(&mut self, user: UserId, items: &[ItemId]) {
        let start = self.page_items.len() as u32;
        self.page_items.extend_from_slice(items);
        self.pages.push((user, start, items.len() as u32));
    }
    /// The pages shown this round, in the order they were shown, as (user, items).
    pub fn pages(&self) -> impl ExactSizeIterator<Item = (UserId, &[ItemId])> + '_ {
        (0..self.pages.len()).map(|i| self.page(i))
    }
    /// The `i`-th page of [`RoundLog::pages`].
    ///
    /// # Panics
    /// When `i` is not below the number of pages.
    pub fn page(&self, i: usize) -> (UserId, &[ItemId]) {
        let (u, start, len) = self.pages[i];
        (u, &self.page_items[start as usize..(start + len) as usize])
    }
    /// Records that `listener` heard of `item` from `speaker`, who had rated it `stated`
    /// (1..=5; `None` or 0 when unrated).
    pub fn heard(&mut self, listener: UserId, speaker: UserId, item: ItemId, stated: Option<u8>) {
        self.hearings.push(Hearing {
            listener,
            speaker,
            item,
            stated: stated.filter(|&r| r > 0),
        });
    }
    /// Who heard of what this round, in the order it happened.
    pub fn hearings(&self) -> &[Hearing] {
        &self.hearings
    }
    /// Messages grouped by agent id (system first), each agent's in the order they happened;
    /// interactions grouped by user id, each user's in first-shown order. Clears the log.
    pub fn take_sorted(&mut self) -> (Vec<MessageRecord>, Vec<InteractionRecord>) {
        let mut m = std::mem::take(&mut self.messages);
        m.sort_by_key(|x| x.agent_id); // stable
        self.settle();
        let i = std::mem::take(&mut self.interactions);
        self.mentions.clear();
        self.pages.clear();
        self.page_items.clear();
        self.hearings.clear();
        (m, i)
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

/// The read-only parts of an agent that decisions see.
pub type AgentData = (
    &'static UserId,
    &'static Profile,
    &'static Taste,
    &'static Histories,
    &'static Relationships,
    &'static Memory,
);

/// `f` of every element of `items`, in their order: on the rayon pool when `parallel`
/// (`execution_mode: parallel`) and there are more than
/// [`PARALLEL_THRESHOLD`](crate::decision::batch::PARALLEL_THRESHOLD) of them, else here. For a
/// phase's read-only per-agent work ahead of its in-order apply: `f` reads shared state only,
/// so both ways give the same results.
pub fn map_in_order<T: Sync, R: Send>(
    parallel: bool,
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if parallel && items.len() > crate::decision::batch::PARALLEL_THRESHOLD {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

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

    /// Queues an observation that carries text (a chat transcript, a post, a plugin's note).
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

/// The run's identity: 32 hex digits drawn from the operating system's randomness when a run
/// (or a branch) starts, kept by resumes; recorded in the manifest and in every checkpoint's
/// header, so a checkpoint is only resumed against the run folder it belongs to. The one value
/// of a run's outputs that is not a function of its configuration.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh id (128 random bits from [`rand::rng`], seeded by the OS).
    pub fn fresh() -> Self {
        let bits: [u8; 16] = rand::random();
        Self(bits.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// SHA-256 of the input data files (items, users, relationships), hex.
#[derive(Resource, Clone, Debug, Default)]
pub struct DataHash(pub String);

/// An output error raised inside a round, surfaced by [`Sim::step`].
#[derive(Resource, Default)]
pub struct OutputError(pub Option<SimError>);

/// A simulation: the bevy app holding the world and the round schedule. Built by
/// [`SimBuilder`] (or [`Sim::new`] with the shipped plugins).
pub struct Sim {
    /// The app (world + schedules).
    pub app: App,
}

impl Sim {
    /// Loads the data named by `cfg`, builds the world with the shipped behaviour plugins
    /// ([`crate::SimPlugins`]) and the backend `cfg` names, and creates the output files.
    ///
    /// # Errors
    /// [`SimError`] for a bad configuration or data, or an output file that cannot be created.
    pub fn new(cfg: SimConfig, outputs: crate::io::output::OutputPaths) -> Result<Self, SimError> {
        SimBuilder::new(cfg).outputs(outputs).build()
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

    /// A plugin's settings.
    ///
    /// # Panics
    /// When no registered plugin has settings of type `S`.
    pub fn settings<S: crate::plugin::Settings>(&self) -> &S {
        self.app.world().resource::<S>()
    }

    /// The run's counters.
    pub fn counters(&self) -> &Counters {
        self.app.world().resource::<Counters>()
    }

    /// Replaces the behaviour backend (for example with a dry-render or scripted one).
    pub fn set_backend(&mut self, backend: Box<dyn BehaviourBackend>) {
        self.app.world_mut().insert_resource(Behaviour(backend));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: u32, item: u32, label: u8, rating: u8) -> InteractionRecord {
        InteractionRecord {
            user,
            item,
            label,
            rating,
        }
    }

    /// Users interleaved, pairs repeated, a watch before and after its showing, ratings 0 then
    /// 3 then 0 (the 3 stays), and one user with 40 distinct items (past the linear scan) shown
    /// twice each: one record per pair, users ascending, each user's in first-shown order.
    #[test]
    fn interactions_merge_each_pair_in_first_shown_order() {
        let mut log = RoundLog::default();
        log.shown(UserId(2), ItemId(10));
        log.shown(UserId(1), ItemId(30));
        log.watched(UserId(2), ItemId(20), 0);
        log.shown(UserId(2), ItemId(10));
        log.shown(UserId(1), ItemId(31));
        log.shown(UserId(2), ItemId(20));
        log.watched(UserId(1), ItemId(30), 3);
        log.watched(UserId(1), ItemId(30), 0);
        for pass in 0..2 {
            for item in (100..140).rev() {
                log.shown(UserId(5), ItemId(item));
                if pass == 1 && item % 10 == 0 {
                    log.watched(UserId(5), ItemId(item), (item / 10 % 5 + 1) as u8);
                }
            }
        }
        let mut want = vec![
            row(1, 30, 1, 3),
            row(1, 31, 0, 0),
            row(2, 10, 0, 0),
            row(2, 20, 1, 0),
        ];
        want.extend((100..140).rev().map(|i| {
            let w = i % 10 == 0;
            row(
                5,
                i,
                u8::from(w),
                if w { (i / 10 % 5 + 1) as u8 } else { 0 },
            )
        }));
        assert_eq!(log.interactions(), &want[..]);
        // Settling twice, and recording after settling, keep the first-shown order.
        log.shown(UserId(1), ItemId(29));
        log.watched(UserId(2), ItemId(10), 5);
        want.insert(2, row(1, 29, 0, 0));
        want[3] = row(2, 10, 1, 5);
        assert_eq!(log.interactions(), &want[..]);
        let (_, taken) = log.take_sorted();
        assert_eq!(taken, want);
        assert!(log.interactions().is_empty());
    }
}
