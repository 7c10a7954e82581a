//! Checkpoints: the whole dynamic simulation state at a round boundary, in a versioned,
//! self-describing file, written atomically (temporary file, fsync, rename).
//!
//! # Format
//! Line 1 is a JSON [`Header`] (format name and version, engine version, round, config and data
//! hashes, output paths and their byte offsets, the registered part names, the resolved
//! configuration with API keys removed), so `head -1 file.ckpt` tells what a checkpoint is. The
//! rest is the [`State`] as one stream (the round, every registered part's bytes in name order,
//! then an index of the parts' names and lengths; parts encode themselves in MessagePack,
//! see [`crate::plugin::CheckpointPart`]), cut in frames of
//! [`FRAME_BYTES`] that are hashed and LZ4-compressed side by side while the parts are still
//! being encoded ([`stream`] has the layout). A write holds a few frames of the uncompressed
//! state at a time, never all of it.
//!
//! What is not in the state is rebuilt from the data files (catalogue, profiles, tastes, the
//! social graph), whose hash must match. Behaviour randomness is keyed by `(seed, round, phase,
//! user, step)` and has no generator position to save. The set of part names is recorded and
//! must equal the resuming simulation's: a checkpoint of a run with a plugin cannot be resumed
//! without it, and the error names the difference.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::world::World;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

mod stream;

pub use stream::FRAME_BYTES;
use stream::{hex, FrameSink};

use crate::config::SimConfig;
use crate::io::output::{absolute, OutputOffsets, OutputPaths, OutputSink};
use crate::plugin::CheckpointParts;
use crate::sim::{DataHash, Sim, SimBuilder, SimError};

/// Format name in every header.
pub const FORMAT: &str = "recagent-checkpoint";
/// Bumped whenever the layout changes; a file of another version is refused.
/// 6: the state is streamed (a trailing part index, frames hashed and compressed on their own,
/// each with its lengths in front; [`stream`]);
/// 5: a component part is a list of pieces, decoded side by side
/// ([`crate::plugin::ComponentPart`]); 4: the header names the run it belongs to (`run_id`);
/// 3: the state is the registered parts by name (2: one fixed structure).
pub const FORMAT_VERSION: u32 = 6;

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
    /// An output file of the run does not end, at the checkpoint's offset, with the bytes the
    /// checkpoint recorded.
    #[error("{path} does not match the checkpoint {checkpoint}: it was written by another run, or changed since; nothing was touched")]
    OutputChanged {
        /// The output file.
        path: String,
        /// The checkpoint.
        checkpoint: String,
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
    /// The run would end before the checkpoint's round (`--rounds` / `round` is the round to
    /// run until, not a count of more rounds).
    #[error(
        "the checkpoint is after round {checkpoint}, so the run cannot end at round {asked}: \
         --rounds (or `round`) is the last round to run, not a number of more rounds; pass a \
         number above {checkpoint}, e.g. --rounds {}",
        checkpoint + 2
    )]
    RoundBehind {
        /// Rounds the checkpoint has completed.
        checkpoint: u32,
        /// The round asked to end at.
        asked: u32,
    },
    /// A setting that cannot change mid-run.
    #[error("--set {key}: cannot change mid-run: {reason}")]
    Setting {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// The checkpoint's parts are not the ones this simulation registers (a behaviour plugin
    /// was added or removed).
    #[error(
        "{path}: the checkpoint's state does not match this simulation's behaviours: {difference}"
    )]
    Parts {
        /// The file.
        path: String,
        /// What differs, in words.
        difference: String,
    },
    /// A part could not be saved or restored.
    #[error("checkpoint part `{part}`: {message}")]
    Part {
        /// The part.
        part: String,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint belongs to another run than the one in the run folder (a later run
    /// replaced it there, or the checkpoint was copied from elsewhere).
    #[error("{path} belongs to run {run_id}, but {manifest} is run {found}: the checkpoint is not of the run in that folder (a later run replaced it, or the checkpoint was copied from another run); resume a checkpoint of that run, or put this one back beside its own run")]
    OtherRun {
        /// The checkpoint.
        path: String,
        /// Its run id.
        run_id: String,
        /// The run folder's manifest.
        manifest: String,
        /// The run id there (`none` when it names none).
        found: String,
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
    /// The run this checkpoint belongs to ([`crate::sim::RunId`], also in its manifest).
    pub run_id: String,
    /// SHA-256 of the configuration (API keys removed), hex.
    pub config_hash: String,
    /// SHA-256 of the input data, hex.
    pub data_hash: String,
    /// The state hash, hex: SHA-256 over the SHA-256 of each frame of the state's stream
    /// ([`state_hash`]).
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
    /// The checkpoint parts, by name (sorted).
    pub parts: Vec<String>,
    /// Directory the configuration's relative paths resolve against.
    pub base_dir: PathBuf,
    /// The resolved configuration (core keys and every plugin's settings), API keys removed.
    pub config: serde_json::Value,
}

/// Everything that changes during a run: the round and every registered part's bytes.
#[derive(Clone, Debug)]
pub struct State {
    /// Rounds completed.
    pub round: u32,
    /// `(name, pieces)` of every part, in name order; a part's bytes are its pieces joined.
    /// A captured part has the pieces its [`CheckpointPart::save_to`] gave; a part read back
    /// has one, a slice of one buffer (a large state is never held twice).
    ///
    /// [`CheckpointPart::save_to`]: crate::plugin::CheckpointPart::save_to
    pub parts: Vec<(String, Vec<bytes::Bytes>)>,
}

impl State {
    /// The part names.
    pub fn names(&self) -> Vec<String> {
        self.parts.iter().map(|(n, _)| n.clone()).collect()
    }
    /// The bytes of part `name` (its pieces joined, borrowed when there is one).
    pub fn part(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let (_, pieces) = self.parts.iter().find(|(n, _)| n == name)?;
        Some(match &pieces[..] {
            [one] => std::borrow::Cow::Borrowed(&one[..]),
            many => std::borrow::Cow::Owned(many.concat()),
        })
    }
}

/// Equal rounds, names and bytes, however the bytes are cut in pieces.
impl PartialEq for State {
    fn eq(&self, o: &Self) -> bool {
        self.round == o.round
            && self.names() == o.names()
            && self.parts.iter().all(|(n, _)| self.part(n) == o.part(n))
    }
}

impl Eq for State {}

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
        h.run_id,
        h.config_hash,
        h.data_hash,
        h.state_hash,
        h.offsets,
        h.tails,
        h.outputs,
        h.base_dir,
        h.parent,
        h.parts
    ]);
    hex(&sha2::Sha256::digest(fields.to_string().as_bytes()))
}

fn config_hash(config: &serde_json::Value) -> String {
    hex(&sha2::Sha256::digest(config.to_string().as_bytes()))
}

/// Streams every registered part of `world`, in name order, to `out` piece by piece, and
/// returns the parts' `(name, byte length)`. An error of `out` is kept in `failed` (and the
/// part's save stops); a part's own error is returned.
fn stream_parts(
    world: &mut World,
    out: &mut dyn FnMut(bytes::Bytes) -> std::io::Result<()>,
    failed: &mut Option<std::io::Error>,
) -> Result<Vec<(String, u64)>, CheckpointError> {
    world.get_resource_or_insert_with(CheckpointParts::default);
    world.resource_scope(
        |world, parts: bevy_ecs::change_detection::Mut<CheckpointParts>| {
            let mut lengths = Vec::new();
            for p in parts.iter() {
                let mut len = 0u64;
                let saved = p.save_to(world, &mut |piece| {
                    len += piece.len() as u64;
                    out(bytes::Bytes::from(piece)).map_err(|e| {
                        let message = format!("writing the checkpoint: {e}");
                        *failed = Some(e);
                        message
                    })
                });
                if failed.is_some() {
                    return Ok(lengths);
                }
                saved.map_err(|message| CheckpointError::Part {
                    part: p.name().to_string(),
                    message,
                })?;
                lengths.push((p.name().to_string(), len));
            }
            Ok(lengths)
        },
    )
}

/// Collects the state of `world`: every registered part, in name order (held in memory: a
/// checkpoint write streams instead, [`save`]).
///
/// # Errors
/// [`CheckpointError::Part`] naming a part that could not be saved.
pub fn capture(world: &mut World) -> Result<State, CheckpointError> {
    let round = world.resource::<crate::clock::SimClock>().round;
    let mut pieces: Vec<bytes::Bytes> = Vec::new();
    let mut failed = None;
    let lengths = stream_parts(
        world,
        &mut |p| {
            if !p.is_empty() {
                pieces.push(p);
            }
            Ok(())
        },
        &mut failed,
    )?;
    let mut pieces = pieces.into_iter();
    let parts = lengths
        .into_iter()
        .map(|(name, len)| {
            let mut mine = Vec::new();
            let mut got = 0u64;
            while got < len {
                let p = pieces
                    .next()
                    .expect("invariant: the pieces add up to the lengths");
                got += p.len() as u64;
                mine.push(p);
            }
            (name, mine)
        })
        .collect();
    Ok(State { round, parts })
}

/// The state hash of `state`: equal hashes mean equal states (however their parts are cut in
/// pieces). SHA-256 over the SHA-256 digests of the stream's frames ([`stream`]).
pub fn state_hash(state: &State) -> String {
    stream::state_hash(state)
}

/// Writes a checkpoint of `sim` to `path` atomically. Returns the header written.
///
/// The parts are encoded, hashed and compressed frame by frame and written as they come (a
/// thread writes the file while the next frames are encoded); the header line, written first
/// with placeholder hashes of the same length, is rewritten once the state hash is known. On
/// any error the temporary file is removed and `path` is left as it was.
///
/// # Errors
/// [`CheckpointError::Io`], or [`CheckpointError::Part`] for a part that could not be saved.
pub fn save(sim: &mut Sim, path: &Path, parent: Option<&Path>) -> Result<Header, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    };
    let world = sim.world_mut();
    let mut offsets = world.resource_mut::<OutputSink>().offsets().map_err(io)?;
    let round = world.resource::<crate::clock::SimClock>().round;
    offsets.round = round;
    let names = world
        .get_resource::<CheckpointParts>()
        .map(CheckpointParts::names)
        .unwrap_or_default();
    let config = crate::sim::manifest::resolved_config(world, false);
    let cfg = world.resource::<SimConfig>();
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
        tail_hash(&outputs.messages_stream(), offsets.messages).map_err(io)?,
        tail_hash(&outputs.interactions, offsets.interactions).map_err(io)?,
    );
    // Placeholders as long as the hashes (64 hex digits), so the line keeps its length.
    let placeholder = "0".repeat(64);
    let mut header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        engine_version: env!("CARGO_PKG_VERSION").into(),
        round,
        run_id: world
            .get_resource::<crate::sim::RunId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        config_hash: config_hash(&config),
        data_hash: world.resource::<DataHash>().0.clone(),
        state_hash: placeholder.clone(),
        parent: parent.map(Path::to_path_buf),
        outputs,
        offsets,
        tails,
        seal: placeholder,
        parts: names,
        base_dir: if cfg.is_embedded() {
            cfg.base_dir.clone()
        } else {
            absolute(&cfg.base_dir)
        },
        config,
    };
    let line = |h: &Header| {
        let mut head = serde_json::to_vec(h).expect("invariant: header serialises");
        head.push(b'\n');
        head
    };
    let head = line(&header);
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
    }
    let tmp = path.with_extension("tmp");
    let written = (|| -> Result<(), CheckpointError> {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&head).map_err(io)?;
        let (hash, file) = stream_to(world, file, path)?;
        header.state_hash = hash;
        header.seal = seal(&header);
        let head2 = line(&header);
        if head2.len() != head.len() {
            return Err(io(std::io::Error::other(
                "invariant: the header changed length when its hashes were filled in",
            )));
        }
        let mut file = file;
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&head2).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| header)
}

/// Streams the state of `world` ([`stream`]) to `file` (positioned after the header line): the
/// frames are compressed on the rayon pool and written by a thread of their own. Returns the
/// state hash and the file. `path` names the file in errors.
fn stream_to(
    world: &mut World,
    file: std::fs::File,
    path: &Path,
) -> Result<(String, std::fs::File), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    };
    std::thread::scope(|s| {
        // A few frames in flight: enough to keep the disk busy, a few dozen MiB at most.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let writer = s.spawn(move || -> std::io::Result<std::fs::File> {
            let mut file = file;
            for frame in rx {
                file.write_all(&frame)?;
            }
            Ok(file)
        });
        let mut send = |frame: Vec<u8>| {
            tx.send(frame)
                .map_err(|_| std::io::Error::other("the checkpoint's writer stopped"))
        };
        let mut sink = FrameSink::new(Some(&mut send));
        let round = world.resource::<crate::clock::SimClock>().round;
        let mut failed = None;
        let streamed = sink
            .push(bytes::Bytes::copy_from_slice(&round.to_le_bytes()))
            .map_err(io)
            .and_then(|()| stream_parts(world, &mut |p| sink.push(p), &mut failed))
            .and_then(|lengths| match failed.take() {
                Some(e) => Err(io(e)),
                None => {
                    let index: Vec<(&str, u64)> =
                        lengths.iter().map(|(n, l)| (n.as_str(), *l)).collect();
                    sink.push(bytes::Bytes::from(stream::index_bytes(&index)))
                        .map_err(io)?;
                    sink.finish().map_err(io)
                }
            });
        drop(tx);
        // The writer's own error says more than "the writer stopped".
        let file = writer
            .join()
            .map_err(|_| io(std::io::Error::other("the checkpoint's writer panicked")))?
            .map_err(io)?;
        Ok((streamed?, file))
    })
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
    from_bytes(&bytes, &p)
}

/// The header line of a checkpoint's bytes (checked for format and version) and the byte
/// offset where the compressed state starts. `origin` names the file in errors.
///
/// # Errors
/// [`CheckpointError::Version`] for another format or engine version;
/// [`CheckpointError::Corrupt`] for bytes that do not start with a checkpoint header.
pub fn read_header(bytes: &[u8], origin: &str) -> Result<(Header, usize), CheckpointError> {
    let p = origin.to_string();
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
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| corrupt("the header has no format_version (was it edited?)".into()))?;
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
    Ok((header, nl + 1))
}

/// As [`load`], from a checkpoint's bytes; `origin` names the file in errors.
///
/// # Errors
/// As [`load`].
pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<(Header, State), CheckpointError> {
    let (header, start) = read_header(bytes, origin)?;
    let state = read_state(&bytes[start..], &header, origin)?;
    Ok((header, state))
}

/// The state of a checkpoint whose header is `header`, from the bytes after the header line:
/// decompressed, checked against the header's state hash, seal, round and part names.
fn read_state(bytes: &[u8], header: &Header, origin: &str) -> Result<State, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: origin.to_string(),
        reason,
    };
    let (body, hash) = stream::read_frames(bytes).map_err(|e| {
        corrupt(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the compressed state ends early: the file is truncated or damaged (an interrupted copy?)"
                .into()
        } else {
            format!("the state is damaged or was changed after it was written: {e}")
        })
    })?;
    if hash != header.state_hash {
        return Err(corrupt(
            "state hash mismatch: the file was changed or damaged after it was written".into(),
        ));
    }
    if seal(header) != header.seal {
        return Err(corrupt("the header was edited (seal mismatch)".into()));
    }
    // The seal covers the configuration's hash; this ties the configuration to it.
    if config_hash(&header.config) != header.config_hash {
        return Err(corrupt(
            "the header was edited: its configuration is not the one it was written with".into(),
        ));
    }
    let state = stream::decode(body.into()).map_err(|e| corrupt(format!("state: {e}")))?;
    if state.round != header.round {
        return Err(corrupt(format!(
            "header round {} but state round {}",
            header.round, state.round
        )));
    }
    if state.names() != header.parts {
        return Err(corrupt("the state's parts are not the header's".into()));
    }
    Ok(state)
}

/// Core settings that may change when branching, and why the others may not (plugins declare
/// theirs: [`crate::plugin::Settings::FIXED`]).
pub fn check_branch_key(key: &str) -> Result<(), CheckpointError> {
    let reason = match key {
        "item_path" | "user_path" | "relationship_path" | "agent_num" => {
            "the population and catalogue are fixed by the checkpoint"
        }
        "social_random_k" => "the social graph is rewired only at the start of a run",
        "interval" | "start_time" => "the simulated clock is part of the checkpoint",
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

/// The difference between two sets of part names, in words (empty when equal).
/// `optional`: parts of `here` a checkpoint may lack.
fn parts_difference(checkpoint: &[String], here: &[String], optional: &[String]) -> String {
    let missing: Vec<&str> = checkpoint
        .iter()
        .filter(|n| !here.contains(n))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = here
        .iter()
        .filter(|n| !checkpoint.contains(n) && !optional.contains(n))
        .map(String::as_str)
        .collect();
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(format!(
            "it holds {} that no plugin of this simulation registers (resume with the plugins of the checkpointed run)",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        out.push(format!(
            "this simulation registers {} that the checkpoint lacks (it was written without that plugin)",
            extra.join(", ")
        ));
    }
    out.join("; ")
}

/// Restores `state` into a freshly built `sim` (same data and plugins).
///
/// # Errors
/// [`CheckpointError::Parts`] when the state's parts are not the ones `sim` registers;
/// [`CheckpointError::Part`] for a part that could not be read.
pub fn restore(sim: &mut Sim, state: State) -> Result<(), CheckpointError> {
    let world = sim.world_mut();
    let (here, optional) = world
        .get_resource::<CheckpointParts>()
        .map(|p| (p.names(), p.optional_names()))
        .unwrap_or_default();
    let difference = parts_difference(&state.names(), &here, &optional);
    if !difference.is_empty() {
        return Err(CheckpointError::Parts {
            path: "checkpoint".into(),
            difference,
        });
    }
    world.resource_scope(
        |world, parts: bevy_ecs::change_detection::Mut<CheckpointParts>| {
            // By name: a part the checkpoint lacks (allowed above) keeps the built state.
            let found: Vec<(
                &dyn crate::plugin::CheckpointPart,
                std::borrow::Cow<'_, [u8]>,
            )> = parts
                .iter()
                .filter_map(|p| Some((p, state.part(p.name())?)))
                .collect();
            // The parts that decode without the world do so side by side; all are then applied
            // in name order, and the first failure in that order is the one reported.
            let decoded: Vec<Result<Option<crate::plugin::Decoded>, String>> = {
                use rayon::prelude::*;
                found.par_iter().map(|(p, bytes)| p.decode(bytes)).collect()
            };
            for ((p, bytes), decoded) in found.into_iter().zip(decoded) {
                let part = |message| CheckpointError::Part {
                    part: p.name().to_string(),
                    message,
                };
                match decoded.map_err(part)? {
                    Some(d) => p.apply(world, d).map_err(part)?,
                    None => p.restore(world, &bytes).map_err(part)?,
                }
            }
            Ok(())
        },
    )
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
    (same(
        &moved.messages_stream(),
        header.offsets.messages,
        &header.tails.0,
    ) && same(
        &moved.interactions,
        header.offsets.interactions,
        &header.tails.1,
    ) && moved.interactions.exists())
    .then_some(moved)
}

/// `outputs` with every path inside `from` moved to the same place inside `to` (paths outside
/// the run folder, such as an `--interaction-file` elsewhere, stay as they are).
fn moved_into(outputs: &OutputPaths, from: &Path, to: &Path) -> OutputPaths {
    let from = absolute(from);
    let map = |p: &Path| match absolute(p).strip_prefix(&from) {
        Ok(rel) => to.join(rel),
        Err(_) => p.to_path_buf(),
    };
    OutputPaths {
        messages: map(&outputs.messages),
        interactions: map(&outputs.interactions),
        manifest: map(&outputs.manifest),
        log: map(&outputs.log),
    }
}

/// The run folder a checkpoint belongs to, found by its run id: the folder the checkpoint sits
/// in (`<run>/round-N.ckpt`), the one above it (`<run>/checkpoints/round-N.ckpt`), then the
/// folder recorded in the header, the first whose manifest names the checkpoint's run. Returns
/// the outputs moved into that folder (so a moved run folder resumes in place, run.log
/// included), or `None` when none of them holds a manifest (a run driven without one).
///
/// # Errors
/// [`CheckpointError::OtherRun`] when a manifest is found but none names the checkpoint's run.
fn locate_run(ckpt: &Path, header: &Header) -> Result<Option<OutputPaths>, CheckpointError> {
    let recorded = header
        .outputs
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = header
        .outputs
        .manifest
        .file_name()
        .map_or_else(|| "manifest.json".into(), std::ffi::OsStr::to_os_string);
    let at = absolute(ckpt);
    let mut candidates: Vec<PathBuf> = at
        .ancestors()
        .skip(1)
        .take(2)
        .map(Path::to_path_buf)
        .collect();
    candidates.push(absolute(&recorded));
    let mut other = None;
    for dir in candidates {
        let manifest = dir.join(&name);
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["run_id"].as_str().map(str::to_string));
        if id.as_deref() == Some(header.run_id.as_str()) {
            return Ok(Some(moved_into(&header.outputs, &recorded, &dir)));
        }
        other.get_or_insert((manifest, id));
    }
    match other {
        Some((manifest, found)) => Err(CheckpointError::OtherRun {
            path: ckpt.display().to_string(),
            run_id: header.run_id.clone(),
            manifest: manifest.display().to_string(),
            found: found.unwrap_or_else(|| "none".into()),
        }),
        None => Ok(None),
    }
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
    resume_with(path, overrides, out_dir, |b| b)
}

/// As [`resume`], with the simulation's plugins (or backend) set by `configure` on the builder,
/// as for the run that wrote the checkpoint (`|b| b.plugins(MyPlugin)`).
///
/// # Errors
/// As [`resume`], and [`CheckpointError::Parts`] when the plugins do not keep the parts the
/// checkpoint holds.
pub fn resume_with(
    path: &Path,
    overrides: &[(String, String)],
    out_dir: Option<&Path>,
    configure: impl FnOnce(SimBuilder) -> SimBuilder,
) -> Result<(Sim, Header), CheckpointError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: origin.clone(),
        source,
    })?;
    let (header, start) = read_header(&bytes, &origin)?;
    for (k, _) in overrides {
        check_branch_key(k)?;
    }
    // Validated after the overrides: a checkpoint keeps no credentials, which the overrides may
    // give again.
    let mut cfg = SimConfig::from_json_unvalidated(header.config.clone(), "checkpoint")
        .map_err(SimError::from)?;
    cfg.base_dir = header.base_dir.clone();
    if cfg.api_keys.is_empty() {
        if let Ok(k) = std::env::var("OPENAI_API_KEY") {
            cfg.api_keys = vec![k];
        }
    }
    let mut cfg = cfg.with_overrides(overrides).map_err(SimError::from)?;
    cfg.validate()
        .map_err(|(key, message)| crate::config::ConfigError::Invalid {
            origin: "checkpoint".into(),
            line: None,
            key,
            message,
        })
        .map_err(SimError::from)?;
    if cfg.round < header.round {
        return Err(CheckpointError::RoundBehind {
            checkpoint: header.round,
            asked: cfg.round,
        });
    }
    // Everything is checked before any file is touched: the state, the plugins' settings and
    // fixed keys, the parts, the data (a damaged state is reported first). The state is read
    // before the data, not beside it: both use the rayon pool, and side by side they took
    // longer than one after the other (at 1M agents 7.2 s against 1.2 + 4.4 s).
    let state = read_state(&bytes[start..], &header, &origin)?;
    drop(bytes);
    let prepared = configure(SimBuilder::new(cfg.clone()).defer_key_check()).prepare()?;
    for (k, _) in overrides {
        if let Some(reason) = prepared.fixed_reason(k) {
            return Err(CheckpointError::Setting {
                key: k.clone(),
                reason,
            });
        }
    }
    let difference = parts_difference(
        &header.parts,
        &prepared.checkpoint_parts(),
        &prepared.optional_checkpoint_parts(),
    );
    if !difference.is_empty() {
        return Err(CheckpointError::Parts {
            path: path.display().to_string(),
            difference,
        });
    }
    prepared.check_keys()?;
    if prepared.data_hash() != header.data_hash {
        return Err(CheckpointError::DataChanged {
            found: prepared.data_hash().to_string(),
            expected: header.data_hash,
        });
    }
    let mut header = header;
    let recorded_dir = header
        .outputs
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if let Some(found) = locate_run(path, &header)? {
        if found != header.outputs {
            tracing::info!(
                "the run was moved or copied: resuming the outputs in {} (recorded in {})",
                found.manifest.parent().unwrap_or(Path::new(".")).display(),
                recorded_dir.display()
            );
            // A transcript inside the run folder moves with it.
            let new_dir = found
                .manifest
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if let Some(t) = cfg.transcript_path.as_deref().filter(|t| t.is_absolute()) {
                if let Ok(rel) = absolute(t).strip_prefix(absolute(&recorded_dir)) {
                    cfg.transcript_path = Some(new_dir.join(rel));
                }
            }
            header.outputs = found;
        }
    } else if let Some(moved) = relocated(path, &header) {
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
            &header.outputs.messages_stream(),
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
            return Err(CheckpointError::OutputChanged {
                path: p.display().to_string(),
                checkpoint: path.display().to_string(),
            });
        }
    }
    let outputs = match out_dir {
        None => header.outputs.clone(),
        Some(dir) => {
            // A parent writing the messages as a JSON document has a branch that does too.
            let messages = match header.outputs.messages_document().and_then(Path::file_name) {
                Some(name) => dir.join(name),
                None => dir.join("messages.jsonl"),
            };
            let o = OutputPaths {
                messages,
                interactions: dir.join("interaction.csv"),
                manifest: dir.join("manifest.json"),
                log: dir.join("run.log"),
            };
            let parent = &header.outputs;
            let (stream, parent_stream) = (o.messages_stream(), parent.messages_stream());
            let clash = [&o.messages, &stream, &o.interactions, &o.manifest, &o.log]
                .into_iter()
                .find(|p| {
                    [
                        &parent.messages,
                        &parent_stream,
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
            // A branch onto an earlier run (or branch) is refused unless told, as a run is.
            let existing = crate::sim::run_files(&o, &dir.join("checkpoints"));
            if !existing.is_empty() {
                if !prepared.overwrites() {
                    return Err(SimError::RunExists {
                        dir: dir.to_path_buf(),
                        files: existing.into_iter().take(6).collect(),
                        flag: "--out",
                    }
                    .into());
                }
                for f in &existing {
                    std::fs::remove_file(f).map_err(|source| CheckpointError::Io {
                        path: f.display().to_string(),
                        source,
                    })?;
                }
            }
            std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let io = |p: &Path| {
                let p = p.display().to_string();
                move |source| CheckpointError::Io { path: p, source }
            };
            if header.offsets.messages > 0 {
                copy_prefix(&parent_stream, &stream, header.offsets.messages)
                    .map_err(io(&stream))?;
            } else if cfg.write_messages {
                std::fs::File::create(&stream).map_err(io(&stream))?;
            }
            copy_prefix(
                &header.outputs.interactions,
                &o.interactions,
                header.offsets.interactions,
            )
            .map_err(io(&o.interactions))?;
            if cfg.backend == crate::config::BackendKind::Llm
                || (cfg.backend == crate::config::BackendKind::Hybrid
                    && cfg.hybrid.text_source == crate::config::TextSource::Llm)
            {
                // The branch's transcript starts with the parent's calls up to the checkpoint
                // and the branch point (round and changed settings), so `recagent replay`
                // reproduces it from round 0; it never writes into the parent's.
                let mut parent_cfg =
                    SimConfig::from_json_unvalidated(header.config.clone(), "checkpoint")
                        .map_err(SimError::from)?;
                parent_cfg.base_dir = header.base_dir.clone();
                let from = crate::llm::transcript_of(
                    &parent_cfg,
                    parent.manifest.parent().unwrap_or(Path::new(".")),
                );
                let to = dir.join("transcript.jsonl");
                if from.exists() {
                    let kinds = prepared.decision_kinds();
                    let keep =
                        crate::llm::transcript::split_for_resume(&from, header.round, &kinds)
                            .map_err(io(&from))?
                            .keep;
                    copy_prefix(&from, &to, keep).map_err(io(&to))?;
                }
                crate::llm::transcript::BranchPoint::new(header.round, overrides)
                    .append_to(&to)
                    .map_err(io(&to))?;
                cfg.transcript_path = Some(absolute(&to));
            }
            o
        }
    };
    let prepared = prepared.with_config(cfg).outputs(outputs);
    // A resumed run stays the same run; a branch is a new one.
    let prepared = match out_dir {
        None => prepared.run_id(crate::sim::RunId(header.run_id.clone())),
        Some(_) => prepared,
    };
    let mut sim = prepared.resume_at(header.offsets).finish()?;
    restore(&mut sim, state).map_err(|e| match e {
        CheckpointError::Parts { difference, .. } => CheckpointError::Parts {
            path: path.display().to_string(),
            difference,
        },
        e => e,
    })?;
    Ok((sim, header))
}

#[cfg(test)]
mod tests {
    use super::parts_difference;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_checkpoint_may_lack_only_the_optional_parts() {
        let ckpt = names(&["clock", "memory"]);
        let here = names(&["clock", "interventions", "memory"]);
        assert_eq!(
            parts_difference(&ckpt, &here, &names(&["interventions"])),
            ""
        );
        assert_eq!(
            parts_difference(&ckpt, &here, &[]),
            "this simulation registers interventions that the checkpoint lacks (it was written without that plugin)"
        );
        // Optional or not, a part the checkpoint holds must be registered here.
        assert_eq!(
            parts_difference(&here, &ckpt, &names(&["interventions"])),
            "it holds interventions that no plugin of this simulation registers (resume with the plugins of the checkpointed run)"
        );
    }
}
