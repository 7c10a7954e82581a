//! The simulation thread: it owns the [`Sim`], runs one loop at most, and takes commands from
//! the HTTP handlers over a channel between two rounds (so every intervention is applied at a
//! round boundary). After each round it publishes a delta (the round's messages, the agents
//! whose state changed, the round's figures) and a fresh snapshot for the GET endpoints.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use super::roleplay::{RolePlay, RolePlayBackend};
use super::view::{self, AgentCard, AgentState, GraphView, StateView, StatsView};
use super::DemoError;
use crate::behaviour::Behaviour;
use crate::config::SimConfig;
use crate::decision::prompt::Prompts;
use crate::decision::DecisionKinds;
use crate::intervention::{Intervention, InterventionError};
use crate::io::output::OutputPaths;
use crate::sim::{Sim, SimBuilder};

/// A control action (`POST /api/control`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Run the remaining rounds (nothing when running).
    Start,
    /// Stop after the current round (nothing when paused).
    Pause,
    /// Run one round (paused only).
    Step,
    /// Rebuild the world from the configuration and the seed.
    Reset,
}

/// The answer to a control action.
#[derive(Clone, Debug, Serialize)]
pub struct ControlReply {
    /// The action.
    pub action: Action,
    /// False when the action changed nothing (a Start while running).
    pub changed: bool,
    /// The state after it.
    pub state: StateView,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The intervention was refused.
    #[error(transparent)]
    Intervention(#[from] InterventionError),
    /// The action does not fit the state (a Step while running, a Step after the last round).
    #[error("{0}")]
    Conflict(String),
    /// The simulation failed (an output could not be written, a Reset could not rebuild).
    #[error("{0}")]
    Failed(String),
}

/// A command for the simulation thread.
pub enum Command {
    /// A control action.
    Control(Action, oneshot::Sender<Result<ControlReply, CommandError>>),
    /// An intervention, applied at once (between two rounds).
    Intervene(
        Intervention,
        oneshot::Sender<Result<Option<String>, CommandError>>,
    ),
    /// Nothing: wakes the thread (after a Pause).
    Wake,
    /// Ends the thread.
    Shutdown,
}

/// The GET endpoints' data, replaced after every round.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The state line (without `running` and `loops`, which are live).
    pub state: StateView,
    /// Every agent's card, ascending id.
    pub cards: Arc<Vec<AgentCard>>,
    /// The graph (built once per world).
    pub graph: Arc<GraphView>,
    /// The statistics.
    pub stats: Arc<StatsView>,
}

/// What the handlers and the thread share.
pub struct Shared {
    /// The run loop runs.
    pub running: AtomicBool,
    /// Run loops started.
    pub loops: AtomicU64,
    /// Rounds run since the server started (every world).
    pub rounds_run: AtomicU64,
    /// The latest snapshot.
    pub snapshot: RwLock<Arc<Snapshot>>,
    /// Server-sent events: `(event name, JSON data)`.
    pub events: broadcast::Sender<Arc<(String, String)>>,
    /// Role play.
    pub roleplay: Arc<RolePlay>,
    /// The resolved configuration, redacted (the live settings as they are now).
    pub config: RwLock<serde_json::Value>,
}

impl Shared {
    /// The state line with the live fields.
    pub fn state(&self) -> StateView {
        let mut s = self.snapshot().state.clone();
        s.running = self.running.load(Ordering::SeqCst);
        s.loops = self.loops.load(Ordering::SeqCst);
        s.roleplay_agent = self.roleplay.agent();
        s
    }
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Sends an event to every connected page (none connected: nothing happens).
    pub fn publish(&self, event: &str, data: &impl Serialize) {
        let json = serde_json::to_string(data).expect("invariant: plain data serialises");
        let _ = self.events.send(Arc::new((event.to_string(), json)));
    }
}

/// How to build (and rebuild) the world.
pub struct Recipe {
    /// The configuration.
    pub cfg: SimConfig,
    /// The outputs.
    pub paths: OutputPaths,
    /// Replace an earlier run in the outputs' folder on the first build.
    pub overwrite: bool,
    /// Role-play answers to fill in again (a replayed session).
    pub replay: Vec<super::roleplay::Played>,
}

impl Recipe {
    fn build(&self, overwrite: bool, roleplay: &Arc<RolePlay>) -> Result<Sim, DemoError> {
        let mut sim = SimBuilder::new(self.cfg.clone())
            .outputs(self.paths.clone())
            .overwrite(overwrite)
            .build()
            .map_err(DemoError::Sim)?;
        let kinds = sim
            .world()
            .get_resource::<DecisionKinds>()
            .cloned()
            .unwrap_or_default();
        let names = Arc::new(sim.agent_names().into_iter().collect());
        let prompts = Prompts::load(
            self.cfg.prompt_dir().as_deref(),
            names,
            self.cfg.llm_options.prompt_token_budget as usize,
            kinds.iter().map(|k| (k.kind, k.template)),
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?;
        let inner = sim
            .world_mut()
            .remove_resource::<Behaviour>()
            .ok_or_else(|| DemoError::Setup("the simulation has no behaviour backend".into()))?;
        let backend =
            RolePlayBackend::new(inner.0, prompts, roleplay.clone()).replaying(self.replay.clone());
        sim.set_backend(Box::new(backend));
        roleplay.clear();
        roleplay.set_log(Some(
            self.paths
                .interactions
                .parent()
                .unwrap_or(std::path::Path::new(""))
                .join(super::roleplay::LOG_FILE),
        ));
        Ok(sim)
    }
}

/// A round's delta (SSE event `round`).
#[derive(Serialize)]
struct RoundDelta<'a> {
    state: StateView,
    messages: Vec<EventMessage>,
    /// `[id, state]` of the agents whose state changed, ascending id.
    states: Vec<(u32, AgentState)>,
    figures: Option<view::RoundFigures>,
    stats: &'a StatsView,
}

/// One line of the messages output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventMessage {
    /// Round.
    pub round: u32,
    /// Agent id (-1: the system).
    pub agent_id: i64,
    /// Action (`WATCH`, `CHAT`, ...).
    pub action: String,
    /// Text.
    pub content: String,
}

/// Reads what the messages output gained since the last read.
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn read(&mut self) -> Vec<EventMessage> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut buf).is_err() {
            return Vec::new();
        }
        // Only whole lines.
        let end = buf.rfind('\n').map_or(0, |i| i + 1);
        self.offset += end as u64;
        buf[..end]
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The thread's state.
pub struct Engine {
    recipe: Recipe,
    sim: Sim,
    shared: Arc<Shared>,
    tail: Tail,
    states: BTreeMap<u32, AgentState>,
    graph: Arc<GraphView>,
}

impl Engine {
    /// Builds the world and the first snapshot.
    ///
    /// # Errors
    /// [`DemoError`] when the world cannot be built.
    pub fn new(recipe: Recipe, shared: Arc<Shared>) -> Result<Self, DemoError> {
        let sim = recipe.build(recipe.overwrite, &shared.roleplay)?;
        let tail = Tail {
            path: recipe.paths.messages_stream(),
            offset: 0,
        };
        let mut e = Self {
            recipe,
            sim,
            shared,
            tail,
            states: BTreeMap::new(),
            graph: Arc::new(GraphView {
                nodes: Vec::new(),
                edges: Vec::new(),
            }),
        };
        e.refresh(true);
        Ok(e)
    }

    fn refresh(&mut self, new_graph: bool) -> Arc<Snapshot> {
        let cards = view::cards(&mut self.sim, &self.states);
        if new_graph {
            self.graph = Arc::new(view::graph(&cards));
        }
        let stats = Arc::new(view::stats(&self.sim, &cards));
        let mut state = view::state(&self.sim);
        state.interactions = stats.interactions;
        let snap = Arc::new(Snapshot {
            state,
            cards: Arc::new(cards),
            graph: self.graph.clone(),
            stats,
        });
        *self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(|p| p.into_inner()) = snap.clone();
        snap
    }

    fn finished(&self) -> bool {
        self.sim.round() >= self.sim.config().round
    }

    fn step(&mut self) -> Result<(), CommandError> {
        if self.finished() {
            return Err(CommandError::Conflict(format!(
                "all {} configured rounds ran: Reset to start again",
                self.sim.config().round
            )));
        }
        self.sim
            .step()
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        self.shared.rounds_run.fetch_add(1, Ordering::SeqCst);
        let messages = self.tail.read();
        let round = self.sim.round();
        let mut now: BTreeMap<u32, AgentState> = BTreeMap::new();
        for m in messages.iter().filter(|m| m.round == round) {
            let Ok(id) = u32::try_from(m.agent_id) else {
                continue;
            };
            if let Some(s) = AgentState::of_message(&m.action, &m.content) {
                let e = now.entry(id).or_default();
                *e = (*e).max(s);
                if s == AgentState::Chatting {
                    if let Some(p) = AgentState::chat_partner(&m.content) {
                        now.insert(p, AgentState::Chatting);
                    }
                }
            }
        }
        let ids: Vec<u32> = self.graph.nodes.iter().map(|n| n.id).collect();
        let mut changed = Vec::new();
        for id in ids {
            let s = now.get(&id).copied().unwrap_or_default();
            if self.states.get(&id).copied().unwrap_or_default() != s {
                changed.push((id, s));
            }
            if s == AgentState::Idle {
                self.states.remove(&id);
            } else {
                self.states.insert(id, s);
            }
        }
        let snap = self.refresh(false);
        let delta = RoundDelta {
            state: self.live_state(&snap),
            messages,
            states: changed,
            figures: snap.stats.rounds.last().cloned(),
            stats: &snap.stats,
        };
        self.shared.publish("round", &delta);
        Ok(())
    }

    fn live_state(&self, snap: &Snapshot) -> StateView {
        let mut s = snap.state.clone();
        s.running = self.shared.running.load(Ordering::SeqCst);
        s.loops = self.shared.loops.load(Ordering::SeqCst);
        s.roleplay_agent = self.shared.roleplay.agent();
        s
    }

    /// `GET /api/config` follows the settings changed mid-run.
    fn sync_config(&self) {
        let v = crate::sim::manifest::resolved_config(self.sim.world(), true);
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = v;
    }

    fn reset(&mut self) -> Result<(), CommandError> {
        self.shared.running.store(false, Ordering::SeqCst);
        // The new world truncates the outputs; the old one is dropped after (its rounds were
        // flushed when they ended).
        let fresh = self
            .recipe
            .build(true, &self.shared.roleplay)
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        drop(std::mem::replace(&mut self.sim, fresh));
        self.sync_config();
        self.tail.offset = 0;
        self.states.clear();
        self.refresh(true);
        self.shared.publish("reset", &self.shared.state());
        Ok(())
    }

    fn control(&mut self, action: Action) -> Result<bool, CommandError> {
        match action {
            Action::Start => {
                if self.shared.running.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                if self.finished() {
                    return Err(CommandError::Conflict(format!(
                        "all {} configured rounds ran: Reset to start again",
                        self.sim.config().round
                    )));
                }
                self.shared.running.store(true, Ordering::SeqCst);
                self.shared.loops.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }
            Action::Pause => Ok(self.shared.running.swap(false, Ordering::SeqCst)),
            Action::Step => {
                if self.shared.running.load(Ordering::SeqCst) {
                    return Err(CommandError::Conflict(
                        "the simulation is running: Pause first, then Step".into(),
                    ));
                }
                self.step().map(|()| true)
            }
            Action::Reset => self.reset().map(|()| true),
        }
    }

    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Control(a, reply) => {
                let r = self.control(a);
                if r.is_ok() && a != Action::Step && a != Action::Reset {
                    self.shared.publish("state", &self.shared.state());
                }
                let _ = reply.send(r.map(|changed| ControlReply {
                    action: a,
                    changed,
                    state: self.shared.state(),
                }));
            }
            Command::Intervene(iv, reply) => {
                let r = self.sim.intervene(iv.clone()).map_err(CommandError::from);
                if r.is_ok() {
                    // The card (profile) changed; the messages come with the next round.
                    self.refresh(false);
                    self.sync_config();
                    self.shared.publish(
                        "intervention",
                        &serde_json::json!({"intervention": iv, "answer": r.as_ref().ok().cloned().flatten(), "before_round": self.sim.round() + 1}),
                    );
                }
                let _ = reply.send(r);
            }
            Command::Wake => {}
            Command::Shutdown => return false,
        }
        true
    }

    /// Runs until [`Command::Shutdown`] or until every sender is gone.
    pub fn run(mut self, rx: mpsc::Receiver<Command>) {
        self.sync_config();
        loop {
            let running = self.shared.running.load(Ordering::SeqCst);
            let cmd = if running {
                match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                }
            };
            if let Some(c) = cmd {
                if !self.handle(c) {
                    return;
                }
                continue;
            }
            if let Err(e) = self.step() {
                self.shared.running.store(false, Ordering::SeqCst);
                if !matches!(e, CommandError::Conflict(_)) {
                    tracing::error!(error = %e, "the simulation stopped");
                    self.shared
                        .publish("error", &serde_json::json!({"error": e.to_string()}));
                }
                self.shared.publish("state", &self.shared.state());
            } else if self.finished() {
                self.shared.running.store(false, Ordering::SeqCst);
                self.shared.publish("state", &self.shared.state());
            }
        }
    }
}
