//! Checkpoints: the whole dynamic simulation state at a round boundary, in a versioned,
//! self-describing file, written atomically (temporary file, fsync, rename).
//!
//! # Format
//! Line 1 is a JSON [`Header`] (format name and version, engine version, round, config and data
//! hashes, output paths and their byte offsets, the configuration with API keys removed), so
//! `head -1 file.ckpt` tells what a checkpoint is. The rest is the [`State`] as MessagePack
//! (`rmp-serde`, named fields: self-describing, compact, maintained) compressed with LZ4 frames
//! (`lz4_flex`: pure Rust, no C build, ~GB/s, and a frame checksum that catches a torn file).
//!
//! What is not in the state is rebuilt from the data files (catalogue, profiles, tastes, the
//! social graph), whose hash must match. Behaviour randomness is keyed by `(seed, round, phase,
//! user, step)` and has no generator position to save; recommenders are re-fitted from the
//! restored interaction log (their fit is a pure function of it).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::world::World;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::behaviour::BehaviourStats;
use crate::clock::SimClock;
use crate::components::{
    Activity, Engagement, Histories, Inbox, ItemStats, Memory, Post, Relationships,
};
use crate::config::{ActiveMethod, SimConfig};
use crate::ids::{PostId, UserId};
use crate::io::output::{absolute, OutputOffsets, OutputPaths, OutputSink};
use crate::recommender::InteractionLog;
use crate::sim::{DataHash, PostBoard, RecState, RunStats, Sim, SimError};
use crate::world::{ItemEntities, Roster};

/// Format name in every header.
pub const FORMAT: &str = "recagent-checkpoint";
/// Bumped whenever [`State`] changes shape; a file of another version is refused.
/// 2: memory embeddings as `(dim, bytes)` in the compact dense/sparse layout of
/// [`crate::memory::QVec`] (1: one `i8` per dimension).
pub const FORMAT_VERSION: u32 = 2;

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// I/O.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a checkpoint, or damaged.
    #[error("{path}: not a readable recagent checkpoint: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Written by an incompatible version.
    #[error("{path}: checkpoint format {found_format} from recagent {found_engine} cannot be read by recagent {engine} (format {format})")]
    Version {
        /// The file.
        path: String,
        /// Format version in the file.
        found_format: u32,
        /// Engine version in the file.
        found_engine: String,
        /// This engine's format version.
        format: u32,
        /// This engine's version.
        engine: String,
    },
    /// The data files changed since the checkpoint.
    #[error("the input data changed since the checkpoint (data hash {found}, checkpoint has {expected})")]
    DataChanged {
        /// Hash now.
        found: String,
        /// Hash in the checkpoint.
        expected: String,
    },
    /// A setting that cannot change mid-run.
    #[error("--set {key}: cannot change mid-run: {reason}")]
    Setting {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// Building the simulation failed.
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// The first line of a checkpoint file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Engine version of the writer.
    pub engine_version: String,
    /// Rounds completed.
    pub round: u32,
    /// SHA-256 of the configuration (API keys removed), hex.
    pub config_hash: String,
    /// SHA-256 of the input data, hex.
    pub data_hash: String,
    /// SHA-256 of the encoded state, hex (the state hash).
    pub state_hash: String,
    /// The checkpoint this run was branched from, if any.
    pub parent: Option<PathBuf>,
    /// Output files of the run.
    pub outputs: OutputPaths,
    /// Their lengths at this round boundary.
    pub offsets: OutputOffsets,
    /// SHA-256 of the last (up to) 4 KiB before each offset, (messages, interactions): proves
    /// that the files on disk are the ones this checkpoint describes.
    pub tails: (String, String),
    /// SHA-256 over the state hash and every header field a resume relies on; an edited header
    /// is refused.
    pub seal: String,
    /// Directory the configuration's relative paths resolve against.
    pub base_dir: PathBuf,
    /// The configuration, API keys removed.
    pub config: SimConfig,
}

/// Dynamic state of one agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentState {
    /// Id.
    pub id: UserId,
    /// Memory.
    pub memory: Memory,
    /// Histories.
    pub histories: Histories,
    /// Unread posts.
    pub inbox: Inbox,
    /// Activity level and counters.
    pub activity: Activity,
    /// Engagement.
    pub engagement: Engagement,
    /// Ties.
    pub relationships: Relationships,
}

/// Everything that changes during a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Clock (rounds completed).
    pub clock: SimClock,
    /// Agents in id order.
    pub agents: Vec<AgentState>,
    /// Item counters in catalogue order.
    pub items: Vec<ItemStats>,
    /// Live posts.
    pub posts: Vec<(PostId, Post)>,
    /// Next post id.
    pub next_post_id: u64,
    /// Agents with unread posts, id order.
    pub recipients: Vec<UserId>,
    /// Recommender interaction log.
    pub log: InteractionLog,
    /// The recommender's learned state (`None`: re-fitted from `log` on resume).
    pub model: Option<Vec<u8>>,
    /// Counters.
    pub run_stats: RunStats,
    /// Behaviour counters.
    pub behaviour_stats: BehaviourStats,
    /// LLM call and token counters (`backend: llm`/`replay`), so a resumed run reports the
    /// whole run's usage and cost, not only what it made after the resume.
    #[serde(default)]
    pub llm_usage: Option<crate::llm::LlmUsage>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of the tail hash window.
const TAIL: u64 = 4096;

/// SHA-256 of the `TAIL` bytes before `len` in `path` (empty string for `len == 0`).
fn tail_hash(path: &Path, len: u64) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    if len == 0 {
        return Ok(String::new());
    }
    let mut f = std::fs::File::open(path)?;
    let actual = f.metadata()?.len();
    if actual < len {
        return Err(std::io::Error::other(format!(
            "{actual} bytes, shorter than the checkpoint's {len}"
        )));
    }
    let start = len.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; (len - start) as usize];
    f.read_exact(&mut buf)?;
    Ok(hex(&sha2::Sha256::digest(&buf)))
}

fn seal(h: &Header) -> String {
    let fields = serde_json::json!([
        h.format_version,
        h.engine_version,
        h.round,
        h.config_hash,
        h.data_hash,
        h.state_hash,
        h.offsets,
        h.tails,
        h.outputs,
        h.base_dir,
        h.parent
    ]);
    hex(&sha2::Sha256::digest(fields.to_string().as_bytes()))
}

fn config_hash(cfg: &SimConfig) -> String {
    let c = cfg.without_secrets();
    hex(&sha2::Sha256::digest(
        serde_json::to_vec(&c).unwrap_or_default(),
    ))
}

/// Collects the state of `world` (agents in id order).
pub fn capture(world: &mut World) -> State {
    let roster = world.resource::<Roster>().clone();
    let mut q = world.query::<(
        &UserId,
        &Memory,
        &Histories,
        &Inbox,
        &Activity,
        &Engagement,
        &Relationships,
    )>();
    let agents = roster
        .entities
        .iter()
        .filter_map(|&e| q.get(world, e).ok())
        .map(|(id, m, h, i, a, g, r)| AgentState {
            id: *id,
            memory: m.clone(),
            histories: h.clone(),
            inbox: i.clone(),
            activity: *a,
            engagement: *g,
            relationships: r.clone(),
        })
        .collect();
    let item_entities = world.resource::<ItemEntities>().0.clone();
    let mut iq = world.query::<&ItemStats>();
    let items = item_entities
        .iter()
        .map(|&e| iq.get(world, e).copied().unwrap_or_default())
        .collect();
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
    State {
        clock: world.resource::<SimClock>().clone(),
        agents,
        items,
        posts,
        next_post_id: board.next_id,
        recipients,
        log: world.resource::<RecState>().log.clone(),
        model: world.resource::<RecState>().model.save_state(),
        run_stats: world.resource::<RunStats>().clone(),
        behaviour_stats: world.resource::<BehaviourStats>().clone(),
        llm_usage: world
            .get_resource::<crate::llm::LlmStats>()
            .map(crate::llm::LlmStats::snapshot),
    }
}

/// Encodes a state (MessagePack, named fields).
fn encode(state: &State) -> Vec<u8> {
    rmp_serde::to_vec_named(state).expect("invariant: state serialises")
}

/// SHA-256 of the encoded state: equal hashes mean equal states.
pub fn state_hash(state: &State) -> String {
    hex(&sha2::Sha256::digest(encode(state)))
}

/// Writes a checkpoint of `sim` to `path` atomically. Returns the header written.
///
/// # Errors
/// [`CheckpointError::Io`].
pub fn save(sim: &mut Sim, path: &Path, parent: Option<&Path>) -> Result<Header, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    };
    let world = sim.world_mut();
    let mut offsets = world.resource_mut::<OutputSink>().offsets().map_err(io)?;
    offsets.round = world.resource::<SimClock>().round;
    let state = capture(world);
    let body = encode(&state);
    let cfg = world.resource::<SimConfig>().without_secrets();
    let outputs = {
        let p = &world.resource::<OutputSink>().paths;
        OutputPaths {
            messages: absolute(&p.messages),
            interactions: absolute(&p.interactions),
            manifest: absolute(&p.manifest),
            log: absolute(&p.log),
        }
    };
    let tails = (
        tail_hash(&outputs.messages, offsets.messages).map_err(io)?,
        tail_hash(&outputs.interactions, offsets.interactions).map_err(io)?,
    );
    let mut header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        engine_version: env!("CARGO_PKG_VERSION").into(),
        round: state.clock.round,
        config_hash: config_hash(&cfg),
        data_hash: world.resource::<DataHash>().0.clone(),
        state_hash: hex(&sha2::Sha256::digest(&body)),
        parent: parent.map(Path::to_path_buf),
        outputs,
        offsets,
        tails,
        seal: String::new(),
        base_dir: if cfg.is_embedded() {
            cfg.base_dir.clone()
        } else {
            absolute(&cfg.base_dir)
        },
        config: cfg,
    };
    header.seal = seal(&header);
    let mut bytes = serde_json::to_vec(&header).expect("invariant: header serialises");
    bytes.push(b'\n');
    let mut enc = lz4_flex::frame::FrameEncoder::new(bytes);
    enc.write_all(&body).map_err(io)?;
    let bytes = enc.finish().map_err(|e| io(std::io::Error::other(e)))?;
    crate::io::output::write_atomic(path, &bytes).map_err(io)?;
    Ok(header)
}

/// Reads a checkpoint: the header (checked for format and version) and the state.
///
/// # Errors
/// [`CheckpointError::Version`] for another format or engine version (nothing is loaded);
/// [`CheckpointError::Corrupt`] for a damaged file.
pub fn load(path: &Path) -> Result<(Header, State), CheckpointError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: p.clone(),
        source,
    })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: p.clone(),
        reason,
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line".into()))?;
    let raw: serde_json::Value = serde_json::from_slice(&bytes[..nl])
        .map_err(|e| corrupt(format!("header is not JSON: {e}")))?;
    if raw.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(corrupt(format!(
            "header does not name the format {FORMAT:?}"
        )));
    }
    let found_format = raw
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as u32;
    let found_engine = raw
        .get("engine_version")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    if found_format != FORMAT_VERSION || found_engine != env!("CARGO_PKG_VERSION") {
        return Err(CheckpointError::Version {
            path: p,
            found_format,
            found_engine,
            format: FORMAT_VERSION,
            engine: env!("CARGO_PKG_VERSION").into(),
        });
    }
    let header: Header =
        serde_json::from_value(raw).map_err(|e| corrupt(format!("header: {e}")))?;
    let mut body = Vec::new();
    lz4_flex::frame::FrameDecoder::new(&bytes[nl + 1..])
        .read_to_end(&mut body)
        .map_err(|e| corrupt(format!("body: {e}")))?;
    if hex(&sha2::Sha256::digest(&body)) != header.state_hash {
        return Err(corrupt("state hash mismatch".into()));
    }
    if seal(&header) != header.seal {
        return Err(corrupt("the header was edited (seal mismatch)".into()));
    }
    let state: State = rmp_serde::from_slice(&body).map_err(|e| corrupt(format!("state: {e}")))?;
    if state.clock.round != header.round {
        return Err(corrupt(format!(
            "header round {} but state round {}",
            header.round, state.clock.round
        )));
    }
    Ok((header, state))
}

/// Settings that may change when branching, and why the others may not.
pub fn check_branch_key(key: &str) -> Result<(), CheckpointError> {
    let reason = match key {
        "item_path" | "user_path" | "relationship_path" | "agent_num" => {
            "the population and catalogue are fixed by the checkpoint"
        }
        "social_random_k" => "the social graph is rewired only at the start of a run",
        "interval" | "start_time" => "the simulated clock is part of the checkpoint",
        "active_method" => "activity levels are drawn at the start of a run",
        "output_dir" | "output_file" | "log_file" | "interaction_path" | "simulator_dir"
        | "ckpt_path" => "outputs of a branch go to --out",
        "play_role"
        | "agent_memory"
        | "recagent_memory"
        | "simulator_restore_file_name"
        | "index_name" => "not supported mid-run",
        _ => return Ok(()),
    };
    Err(CheckpointError::Setting {
        key: key.into(),
        reason,
    })
}

/// Restores `state` into a freshly built `sim` (same data) and re-fits the recommender.
pub fn restore(sim: &mut Sim, state: State) {
    let world = sim.world_mut();
    let random_level = {
        let cfg = world.resource::<SimConfig>();
        (cfg.active_method == ActiveMethod::Random).then_some(cfg.active_prob as f32)
    };
    let roster = world.resource::<Roster>().clone();
    for a in state.agents {
        let Some(e) = roster.entity(a.id) else {
            continue;
        };
        let mut activity = a.activity;
        if let Some(l) = random_level {
            activity.level = l;
        }
        world.entity_mut(e).insert((
            a.memory,
            a.histories,
            a.inbox,
            activity,
            a.engagement,
            a.relationships,
        ));
    }
    let items = world.resource::<ItemEntities>().0.clone();
    for (e, s) in items.iter().zip(state.items) {
        world.entity_mut(*e).insert(s);
    }
    let mut board = PostBoard {
        next_id: state.next_post_id,
        ..Default::default()
    };
    for (id, post) in state.posts {
        let e = world.spawn((id, post)).id();
        board.live.insert(id, e);
    }
    board.recipients = state
        .recipients
        .iter()
        .filter_map(|u| roster.entity(*u))
        .collect();
    world.insert_resource(board);
    world.insert_resource(state.clock);
    world.insert_resource(state.run_stats);
    world.insert_resource(state.behaviour_stats);
    if let (Some(u), Some(stats)) = (
        state.llm_usage,
        world.get_resource::<crate::llm::LlmStats>(),
    ) {
        if let Ok(mut g) = stats.0.lock() {
            *g = u;
        }
    }
    let mut rec = world.resource_mut::<RecState>();
    let rec = &mut *rec;
    rec.log = state.log;
    let restored = match &state.model {
        Some(bytes) => rec
            .model
            .load_state(bytes)
            .map_err(|e| tracing::warn!("model state not restored ({e}); re-fitting"))
            .is_ok(),
        None => false,
    };
    if !restored {
        rec.model.fit(&rec.log);
    }
}

/// Copies the first `len` bytes of `from` to `to` (creating its directory).
fn copy_prefix(from: &Path, to: &Path, len: u64) -> std::io::Result<()> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut src = std::fs::File::open(from)?.take(len);
    let mut dst = std::fs::File::create(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// The outputs of a run directory that was moved or copied with its checkpoints: when `ckpt` sits
/// in `<dir>/<checkpoints>/` and `<dir>` is not where the header says the outputs are, but holds
/// output files of the same names whose tails match the header's, those are the run to resume
/// (so a copy is resumed in place, and never writes into the original).
fn relocated(ckpt: &Path, header: &Header) -> Option<OutputPaths> {
    let dir = absolute(ckpt).parent()?.parent()?.to_path_buf();
    let recorded = header.outputs.manifest.parent()?;
    if absolute(recorded) == dir {
        return None;
    }
    let at = |p: &Path| p.file_name().map(|n| dir.join(n));
    let moved = OutputPaths {
        messages: at(&header.outputs.messages)?,
        interactions: at(&header.outputs.interactions)?,
        manifest: at(&header.outputs.manifest)?,
        log: at(&header.outputs.log)?,
    };
    let same = |p: &Path, len: u64, want: &str| tail_hash(p, len).is_ok_and(|h| h == want);
    (same(&moved.messages, header.offsets.messages, &header.tails.0)
        && same(
            &moved.interactions,
            header.offsets.interactions,
            &header.tails.1,
        )
        && moved.interactions.exists())
    .then_some(moved)
}

/// Resumes a run from a checkpoint: rebuilds the simulation from the data (whose hash must match),
/// truncates the outputs to the checkpoint's offsets and restores the state. `overrides` may only
/// name keys [`check_branch_key`] allows. With `out_dir`, this is a branch: the outputs up to the
/// checkpoint are copied into `out_dir` and the new run writes there.
///
/// # Errors
/// [`CheckpointError`] for a bad or incompatible checkpoint, changed data, a refused setting, or I/O.
pub fn resume(
    path: &Path,
    overrides: &[(String, String)],
    out_dir: Option<&Path>,
) -> Result<(Sim, Header), CheckpointError> {
    let (header, state) = load(path)?;
    for (k, _) in overrides {
        check_branch_key(k)?;
    }
    let mut cfg = header.config.clone();
    cfg.base_dir = header.base_dir.clone();
    if cfg.api_keys.is_empty() {
        if let Ok(k) = std::env::var("OPENAI_API_KEY") {
            cfg.api_keys = vec![k];
        }
    }
    let mut cfg = cfg.with_overrides(overrides).map_err(SimError::from)?;
    if cfg.round < header.round {
        return Err(CheckpointError::Setting {
            key: "round".into(),
            reason: "the checkpoint is past that round (rounds can only be extended)",
        });
    }
    // Everything is checked before any file is touched.
    let found = crate::sim::data_hash(&cfg);
    if found != header.data_hash {
        return Err(CheckpointError::DataChanged {
            found,
            expected: header.data_hash,
        });
    }
    let mut header = header;
    if let Some(moved) = relocated(path, &header) {
        tracing::info!(
            "the run was moved or copied: resuming the outputs in {} (recorded in {})",
            moved.manifest.parent().unwrap_or(Path::new(".")).display(),
            header
                .outputs
                .manifest
                .parent()
                .unwrap_or(Path::new("."))
                .display()
        );
        header.outputs = moved;
    }
    for (p, len, want) in [
        (
            &header.outputs.messages,
            header.offsets.messages,
            &header.tails.0,
        ),
        (
            &header.outputs.interactions,
            header.offsets.interactions,
            &header.tails.1,
        ),
    ] {
        let got = tail_hash(p, len).map_err(|source| CheckpointError::Io {
            path: p.display().to_string(),
            source,
        })?;
        if &got != want {
            return Err(CheckpointError::Corrupt {
                path: p.display().to_string(),
                reason: format!(
                    "this output file does not match the checkpoint {} (written by another run, or changed since)",
                    path.display()
                ),
            });
        }
    }
    let outputs = match out_dir {
        None => header.outputs.clone(),
        Some(dir) => {
            let o = OutputPaths {
                messages: dir.join("messages.jsonl"),
                interactions: dir.join("interaction.csv"),
                manifest: dir.join("manifest.json"),
                log: dir.join("run.log"),
            };
            let parent = &header.outputs;
            let clash = [&o.messages, &o.interactions, &o.manifest, &o.log]
                .into_iter()
                .find(|p| {
                    [
                        &parent.messages,
                        &parent.interactions,
                        &parent.manifest,
                        &parent.log,
                    ]
                    .contains(&&absolute(p))
                });
            if let Some(p) = clash {
                return Err(CheckpointError::Io {
                    path: p.display().to_string(),
                    source: std::io::Error::other(
                        "--out would overwrite the parent run's outputs: choose another directory",
                    ),
                });
            }
            let io = |p: &Path| {
                let p = p.display().to_string();
                move |source| CheckpointError::Io { path: p, source }
            };
            if header.offsets.messages > 0 {
                copy_prefix(
                    &header.outputs.messages,
                    &o.messages,
                    header.offsets.messages,
                )
                .map_err(io(&o.messages))?;
            } else if cfg.write_messages {
                std::fs::File::create(&o.messages).map_err(io(&o.messages))?;
            }
            copy_prefix(
                &header.outputs.interactions,
                &o.interactions,
                header.offsets.interactions,
            )
            .map_err(io(&o.interactions))?;
            if cfg.backend == crate::config::BackendKind::Llm {
                // The branch's transcript starts with the parent's calls up to the checkpoint,
                // so it replays on its own; it never writes into the parent's.
                let mut parent_cfg = header.config.clone();
                parent_cfg.base_dir = header.base_dir.clone();
                let from = crate::llm::transcript_of(
                    &parent_cfg,
                    parent.manifest.parent().unwrap_or(Path::new(".")),
                );
                let to = dir.join("transcript.jsonl");
                if from.exists() {
                    let keep = crate::llm::transcript::split_for_resume(&from, header.round)
                        .map_err(io(&from))?
                        .keep;
                    copy_prefix(&from, &to, keep).map_err(io(&to))?;
                }
                cfg.transcript_path = Some(absolute(&to));
            }
            o
        }
    };
    let mut sim = Sim::build(cfg, outputs, Some(header.offsets))?;
    restore(&mut sim, state);
    Ok((sim, header))
}
