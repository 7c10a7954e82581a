//! Interventions: changes a person makes to a running simulation between two rounds (the web
//! demo's controls, the Python API's `send_message`, `interview`, `edit_profile`, `set`).
//!
//! An [`Intervention`] is applied at a round boundary, before the round it names
//! (`before_round`): [`crate::sim::Sim::intervene`] applies it at once (the caller holds the
//! simulation between two rounds), [`crate::sim::Sim::queue_intervention`] keeps it for the start
//! of the next round. Either way the same function applies it with that round's number, so
//! its messages go into that round's messages output, its memories are written in that round's
//! remember phase, and an interview is a request keyed `(round, Interview, agent, seq)` like any
//! other decision (answered by the behaviour backend, in the transcript, replayed by key).
//!
//! Every applied intervention is kept (checkpoint part `interventions`) and written, in the order
//! applied, to `interventions.jsonl` beside `interaction.csv` (created with the first one). A run configured with
//! `interventions: {replay: <that file>}` applies them again at the same boundaries, so a session
//! is reproduced from its seed, its transcript (for an LLM backend) and its intervention log.
//!
//! What each kind does:
//! - `message`: the text goes into the agent's memory (an observation of importance 8,
//!   `"<name> received a message: <text>"`) and the messages output (action `MESSAGE`).
//! - `interview`: the [`crate::decision::interview`] decision answers; question and answer go into
//!   the agent's memory and the messages output (action `INTERVIEW`); the answer is returned.
//! - `profile`: age, gender, traits, occupation and interests, validated; the liked genres are
//!   derived again from the interests. The name cannot change (chats are parsed by name).
//! - `setting`: a key that may change mid-run: `rec_model` (a fresh model, fitted on the
//!   interactions so far) and every plugin setting marked live
//!   ([`crate::plugin::Settings::LIVE`]: `page_size`, `rec_random_k`, `active_prob`). Any other key
//!   is refused with the reason.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{ObservationKind, Profile};
use crate::config::{ConfigError, RecModel, SimConfig};
use crate::decision::interview::{self, Interview};
use crate::decision::{Context, Request};
use crate::ids::UserId;
use crate::io::output::{write_atomic, FileError, OutputSink};
use crate::plugin::{CheckpointPart, Counter, Settings, SettingsRegistry, SimApp};
use crate::sim::{view, AgentData, OutputError, PendingObservations, RecState, RoundLog, Sim};
use crate::sim::{SimError, SimOutputs, SimPhase, SimTick};
use crate::world::Roster;

/// The intervention log's file name (beside `interaction.csv`).
pub const LOG_FILE: &str = "interventions.jsonl";

/// Longest message or question, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Importance (1..=10) of a message or an interview in the agent's memory: a person spoke to
/// the agent directly, which it remembers better than a page it was shown.
pub const IMPORTANCE: u8 = 8;

/// Interventions applied.
pub const APPLIED: Counter = Counter::new("interventions", "interventions");
/// Replayed interventions that failed (logged).
pub const REPLAY_FAILED: Counter = Counter::new("interventions_replay_failed", "replay failed");

/// The core keys that may change mid-run (the plugins' live keys are theirs).
pub const LIVE_CORE_KEYS: &[&str] = &["rec_model"];

/// One change to a running simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Intervention {
    /// A message to an agent, written to its memory.
    Message {
        /// The agent's user id.
        agent: u32,
        /// The text (1..=2,000 characters, one line).
        text: String,
    },
    /// A question the agent answers through its behaviour backend.
    Interview {
        /// The agent's user id.
        agent: u32,
        /// The question (1..=2,000 characters, one line).
        question: String,
    },
    /// New profile values for an agent.
    Profile {
        /// The agent's user id.
        agent: u32,
        /// The fields to change.
        patch: ProfilePatch,
    },
    /// A setting that may change mid-run.
    Setting {
        /// The configuration key (`page_size`, `rec_model`, ...).
        key: String,
        /// The value as written in a configuration (`3`, `MF`, `0.5`).
        value: String,
    },
}

/// Profile fields to change (absent: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilePatch {
    /// Refused when given: the name cannot change mid-run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Age in years, 1..=120.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u16>,
    /// Gender, 1..=40 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Traits (comma list), at most 500 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traits: Option<String>,
    /// Occupation, at most 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Movie interests (comma list; the liked genres are read from it), at most 500 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interest: Option<String>,
}

/// One applied intervention, as written to `interventions.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The round it was applied before (1 = before the first round).
    pub before_round: u32,
    /// Its position among the interventions applied before that round (0-based).
    pub seq: u32,
    /// What was done.
    pub intervention: Intervention,
    /// The interview's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Why an intervention was not applied (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum InterventionError {
    /// No agent has that id.
    #[error("no agent has id {0}")]
    UnknownAgent(u32),
    /// A field's value is refused.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`text`, `question`, `age`, ...).
        field: String,
        /// What is wrong, with the allowed range.
        message: String,
    },
    /// The setting cannot change mid-run.
    #[error("`{key}` cannot change mid-run: {reason}")]
    Refused {
        /// The key.
        key: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The new value is not valid for the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The intervention log could not be written.
    #[error(transparent)]
    File(#[from] FileError),
}

/// `interventions:` section.
#[derive(Resource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InterventionSettings {
    /// An intervention log (`interventions.jsonl` of an earlier run) to apply again, each entry
    /// before its round. Relative to the configuration file.
    pub replay: Option<PathBuf>,
}

impl Settings for InterventionSettings {
    const SECTION: Option<&'static str> = Some("interventions");
}

/// The applied interventions, those waiting for the next round, and the log to replay.
#[derive(Resource, Debug, Default)]
pub struct InterventionState {
    /// Applied so far, in order.
    pub applied: Vec<Applied>,
    /// Queued for the start of the next round ([`Sim::queue_intervention`]).
    pub queued: VecDeque<Intervention>,
    /// Entries of the replayed log not applied yet, in order.
    pub replay: VecDeque<Applied>,
}

/// Registers interventions: the interview kind, the log, the replay.
pub struct InterventionPlugin;

impl Plugin for InterventionPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<InterventionSettings>()
            .add_counters("interventions", &[APPLIED, REPLAY_FAILED])
            .init_resource::<InterventionState>()
            .checkpoint_part(InterventionPart)
            .add_systems(SimOutputs, (load_replay, write_log_system).chain())
            .add_systems(
                SimTick,
                apply_at_round_start
                    .in_set(SimPhase::Begin)
                    .after(crate::sim::core::begin_round),
            );
    }
}

/// `interventions.jsonl` beside `interaction.csv`.
pub fn log_path(sink: &OutputSink) -> PathBuf {
    sink.paths
        .interactions
        .parent()
        .unwrap_or(Path::new(""))
        .join(LOG_FILE)
}

/// Reads an intervention log (JSON Lines of [`Applied`]).
///
/// # Errors
/// A message naming the file and the line that does not parse.
pub fn read_log(path: &Path) -> Result<Vec<Applied>, String> {
    crate::io::read_jsonl(path)
}

fn load_replay(world: &mut World) {
    let Some(path) = world.resource::<InterventionSettings>().replay.clone() else {
        return;
    };
    let path = world.resource::<SimConfig>().resolve(&path);
    match read_log(&path) {
        Ok(entries) => {
            // A resumed run has applied the earlier ones already.
            let next = world.resource::<SimClock>().round + 1;
            world.resource_mut::<InterventionState>().replay = entries
                .into_iter()
                .filter(|a| a.before_round >= next)
                .collect();
        }
        Err(e) => {
            world.resource_mut::<OutputError>().0 = Some(SimError::Config(ConfigError::Invalid {
                origin: "configuration".into(),
                line: None,
                key: "interventions.replay".into(),
                message: e,
            }));
        }
    }
}

/// Writes the log when the run starts with interventions applied already (a resume); a run
/// without interventions has no log file.
fn write_log_system(world: &mut World) {
    if world.resource::<InterventionState>().applied.is_empty() {
        return;
    }
    if let Err(e) = write_log(world) {
        world.resource_mut::<OutputError>().0 = Some(SimError::File(e));
    }
}

/// Rewrites `interventions.jsonl` with every applied intervention (atomically).
fn write_log(world: &World) -> Result<(), FileError> {
    let Some(sink) = world.get_resource::<OutputSink>() else {
        return Ok(());
    };
    let path = log_path(sink);
    let mut text = String::new();
    for a in &world.resource::<InterventionState>().applied {
        text.push_str(&serde_json::to_string(a).expect("invariant: plain data serialises"));
        text.push('\n');
    }
    write_atomic(&path, text.as_bytes()).map_err(|source| FileError { path, source })
}

/// Applies the queued interventions and the replayed log's entries for this round, in order.
fn apply_at_round_start(world: &mut World) {
    let round = world.resource::<SimClock>().round;
    loop {
        let next = {
            let mut st = world.resource_mut::<InterventionState>();
            // Entries of rounds a resumed run restored from its checkpoint were applied then.
            while st.replay.front().is_some_and(|a| a.before_round < round) {
                st.replay.pop_front();
            }
            if st.replay.front().is_some_and(|a| a.before_round == round) {
                st.replay.pop_front().map(|a| (a.intervention, true))
            } else {
                st.queued.pop_front().map(|i| (i, false))
            }
        };
        let Some((iv, replayed)) = next else { break };
        match apply_and_record(world, round, iv.clone()) {
            Ok(_) => {}
            Err(InterventionError::File(e)) => {
                world.resource_mut::<OutputError>().0 = Some(SimError::File(e));
            }
            Err(e) => {
                tracing::warn!(round, intervention = ?iv, error = %e, replayed, "intervention not applied");
                if replayed {
                    world
                        .resource_mut::<crate::plugin::Counters>()
                        .add(&REPLAY_FAILED, 1);
                }
            }
        }
    }
}

/// Applies `iv` before round `round`, records it and rewrites the log; returns the interview's
/// answer.
///
/// # Errors
/// [`InterventionError`]: the intervention was refused (nothing changed), or the log could
/// not be written (the intervention was applied).
pub fn apply_and_record(
    world: &mut World,
    round: u32,
    iv: Intervention,
) -> Result<Option<String>, InterventionError> {
    let seq = world
        .resource::<InterventionState>()
        .applied
        .iter()
        .filter(|a| a.before_round == round)
        .count() as u32;
    let iv = normalised(iv);
    let answer = apply(world, round, seq, &iv)?;
    world
        .resource_mut::<crate::plugin::Counters>()
        .add(&APPLIED, 1);
    world
        .resource_mut::<InterventionState>()
        .applied
        .push(Applied {
            before_round: round,
            seq,
            intervention: iv,
            answer: answer.clone(),
        });
    write_log(world)?;
    Ok(answer)
}

fn agent_entity(world: &World, agent: u32) -> Result<(UserId, Entity), InterventionError> {
    let id = UserId(agent);
    world
        .resource::<Roster>()
        .entity(id)
        .map(|e| (id, e))
        .ok_or(InterventionError::UnknownAgent(agent))
}

/// `text` on one line: every run of whitespace (newlines included) one space, trimmed; never cut.
fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `iv` as it is applied and recorded: texts on one line, so the log says what the agent got.
fn normalised(iv: Intervention) -> Intervention {
    match iv {
        Intervention::Message { agent, text } => Intervention::Message {
            agent,
            text: single_line(&text),
        },
        Intervention::Interview { agent, question } => Intervention::Interview {
            agent,
            question: single_line(&question),
        },
        Intervention::Setting { key, value } => Intervention::Setting {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        },
        other => other,
    }
}

/// One line of 1..=[`MAX_TEXT_CHARS`] characters.
fn text_field(field: &str, text: &str) -> Result<String, InterventionError> {
    let t = single_line(text);
    let n = t.chars().count();
    if n == 0 || n > MAX_TEXT_CHARS {
        return Err(InterventionError::Invalid {
            field: field.into(),
            message: format!("{n} characters: allowed 1..={MAX_TEXT_CHARS}"),
        });
    }
    Ok(t)
}

fn apply(
    world: &mut World,
    round: u32,
    seq: u32,
    iv: &Intervention,
) -> Result<Option<String>, InterventionError> {
    match iv {
        Intervention::Message { agent, text } => {
            let (id, e) = agent_entity(world, *agent)?;
            let text = text_field("text", text)?;
            let name = world.get::<Profile>(e).map(|p| p.name.clone());
            let name = name.unwrap_or_else(|| Arc::from("The agent"));
            world.resource_mut::<RoundLog>().say(
                id,
                "MESSAGE",
                format!("{name} receives a message: {text}"),
            );
            remember(
                world,
                id,
                round,
                format!("{name} received a message: {text}"),
            );
            Ok(None)
        }
        Intervention::Interview { agent, question } => {
            let (id, e) = agent_entity(world, *agent)?;
            let question = text_field("question", question)?;
            let answer = ask_interview(world, e, round, seq, &question);
            let name = world
                .get::<Profile>(e)
                .map_or_else(|| Arc::from("The agent"), |p| p.name.clone());
            world.resource_mut::<RoundLog>().say(
                id,
                "INTERVIEW",
                format!("{name} is asked: {question} {name} answers: {answer}"),
            );
            remember(
                world,
                id,
                round,
                format!("{name} was interviewed. Question: {question} Answer: {answer}"),
            );
            Ok(Some(answer))
        }
        Intervention::Profile { agent, patch } => {
            let (id, e) = agent_entity(world, *agent)?;
            let changed = patch_profile(world, e, patch)?;
            let name = world
                .get::<Profile>(e)
                .map_or_else(|| Arc::from("The agent"), |p| p.name.clone());
            world.resource_mut::<RoundLog>().say(
                id,
                "PROFILE",
                format!("{name}'s profile changed: {changed}"),
            );
            Ok(None)
        }
        Intervention::Setting { key, value } => {
            change_setting(world, key, value)?;
            world
                .resource_mut::<RoundLog>()
                .say_system("SETTING", format!("{key} set to {value}"));
            Ok(None)
        }
    }
}

fn remember(world: &mut World, id: UserId, round: u32, text: String) {
    let mut obs = world.resource_mut::<PendingObservations>();
    obs.add_text(id, round, ObservationKind::Note, None, None, text.into());
    if let Some((_, rec)) = obs.0.last_mut() {
        rec.value = IMPORTANCE;
    }
}

fn ask_interview(world: &mut World, e: Entity, round: u32, seq: u32, question: &str) -> String {
    let step = u16::try_from(seq).unwrap_or(u16::MAX);
    let mut stats = std::mem::take(&mut *world.resource_mut::<BehaviourStats>());
    let answer = {
        let seed = world.resource::<SimConfig>().seed;
        let catalog = world.resource::<Catalog>();
        let clock = world.resource::<SimClock>();
        let behaviour = world.resource::<Behaviour>();
        let ctx = Context {
            catalog,
            clock,
            seed,
        };
        let mut q = world
            .try_query::<AgentData>()
            .expect("invariant: agents exist");
        match q.get(world, e) {
            Ok(d) => behaviour
                .ask::<Interview>(
                    &ctx,
                    &[Request::new(round, step, view(d), question)],
                    &mut stats,
                )
                .pop()
                .unwrap_or_else(|| interview::NO_ANSWER.into()),
            Err(_) => interview::NO_ANSWER.into(),
        }
    };
    *world.resource_mut::<BehaviourStats>() = stats;
    answer
}

/// `Some(value)` when it has 1..=`max` characters after trimming.
fn bounded(field: &str, v: &str, min: usize, max: usize) -> Result<Arc<str>, InterventionError> {
    let t = single_line(v);
    let n = t.chars().count();
    if n < min || n > max {
        return Err(InterventionError::Invalid {
            field: field.into(),
            message: format!("{n} characters: allowed {min}..={max}"),
        });
    }
    Ok(t.into())
}

/// Validates every field of `patch` first, then changes the profile and the liked genres;
/// returns what changed, as text.
fn patch_profile(
    world: &mut World,
    e: Entity,
    patch: &ProfilePatch,
) -> Result<String, InterventionError> {
    if *patch == ProfilePatch::default() {
        return Err(InterventionError::Invalid {
            field: "patch".into(),
            message: "nothing to change: give age, gender, traits, status or interest".into(),
        });
    }
    if patch.name.is_some() {
        return Err(InterventionError::Invalid {
            field: "name".into(),
            message: "the name cannot change mid-run (the LLM backend reads chats by name)".into(),
        });
    }
    if let Some(a) = patch.age.filter(|a| !(1..=120).contains(a)) {
        return Err(InterventionError::Invalid {
            field: "age".into(),
            message: format!("{a} is out of range: allowed 1..=120"),
        });
    }
    let gender = patch
        .gender
        .as_deref()
        .map(|v| bounded("gender", v, 1, 40))
        .transpose()?;
    let traits = patch
        .traits
        .as_deref()
        .map(|v| bounded("traits", v, 0, 500))
        .transpose()?;
    let status = patch
        .status
        .as_deref()
        .map(|v| bounded("status", v, 0, 200))
        .transpose()?;
    let interest = patch
        .interest
        .as_deref()
        .map(|v| bounded("interest", v, 0, 500))
        .transpose()?;
    let mut changed = Vec::new();
    let Some(mut p) = world.get::<Profile>(e).cloned() else {
        return Err(InterventionError::Invalid {
            field: "agent".into(),
            message: "has no profile".into(),
        });
    };
    if let Some(a) = patch.age {
        p.age = a;
        changed.push(format!("age {a}"));
    }
    for (field, slot, v) in [
        ("gender", &mut p.gender, gender),
        ("traits", &mut p.traits, traits),
        ("status", &mut p.status, status),
        ("interest", &mut p.interest, interest),
    ] {
        if let Some(v) = v {
            changed.push(format!("{field} \"{v}\""));
            *slot = v;
        }
    }
    let taste = {
        let catalog = world.resource::<Catalog>();
        crate::world::taste_of(catalog, &p.interest, &p.observations)
    };
    world.entity_mut(e).insert((p, taste));
    Ok(if changed.is_empty() {
        "nothing".into()
    } else {
        changed.join(", ")
    })
}

/// Why `key` cannot change mid-run (`None`: it can).
fn refusal(world: &World, key: &str) -> Option<String> {
    let registry = world.get_resource::<SettingsRegistry>();
    if LIVE_CORE_KEYS.contains(&key) || registry.is_some_and(|r| r.is_live(key)) {
        return None;
    }
    let mut live: Vec<String> = LIVE_CORE_KEYS.iter().map(|k| (*k).to_string()).collect();
    live.extend(
        registry
            .map(SettingsRegistry::live_keys)
            .unwrap_or_default(),
    );
    live.sort();
    let known = crate::config::core_keys().contains(key)
        || registry.is_some_and(|r| r.claimed().contains(key.split('.').next().unwrap_or(key)));
    let live = live.join(", ");
    if let Some(r) = registry.and_then(|r| r.fixed_reason(key)) {
        return Some(format!(
            "{r}; the settings that can change mid-run are {live}"
        ));
    }
    if !known {
        return Some(format!(
            "no setting is named `{key}`; the settings that can change mid-run are {live}"
        ));
    }
    // A key a branch refuses too gets the branch's reason, and no advice to branch.
    if let Err(crate::checkpoint::CheckpointError::Setting { reason, .. }) =
        crate::checkpoint::check_branch_key(key)
    {
        return Some(format!(
            "{reason}; the settings that can change mid-run are {live}"
        ));
    }
    Some(format!(
        "it is read when the world is built; the settings that can change mid-run are {live} (or branch from a checkpoint with `--set {key}=...`)"
    ))
}

/// Checks that `settings`, applied in order, would all be accepted, without changing anything
/// (so several can change together or not at all: [`Sim::set_settings`]).
///
/// # Errors
/// The first refusal or invalid value, as [`Sim::set_setting`] would raise it.
pub fn check_settings(
    world: &World,
    settings: &[(String, String)],
) -> Result<(), InterventionError> {
    let mut cfg = world.resource::<SimConfig>().clone();
    for (key, value) in settings {
        let (key, value) = (key.trim(), value.trim());
        if let Some(reason) = refusal(world, key) {
            return Err(InterventionError::Refused {
                key: key.into(),
                reason,
            });
        }
        cfg = cfg.with_overrides(&[(key.to_string(), value.to_string())])?;
        if let Some(r) = world.get_resource::<SettingsRegistry>() {
            r.check_live(key, &cfg)?;
        }
    }
    Ok(())
}

fn change_setting(world: &mut World, key: &str, value: &str) -> Result<(), InterventionError> {
    if let Some(reason) = refusal(world, key) {
        return Err(InterventionError::Refused {
            key: key.into(),
            reason,
        });
    }
    let cfg = world
        .resource::<SimConfig>()
        .with_overrides(&[(key.to_string(), value.to_string())])?;
    if key == "rec_model" {
        if cfg.rec_model == RecModel::External
            && world.resource::<SimConfig>().rec_model != RecModel::External
        {
            return Err(InterventionError::Refused {
                key: key.into(),
                reason: "the External model is reached over HTTP from the start of a run: start a run (or branch) with it".into(),
            });
        }
        let mut model = {
            let catalog = world.resource::<Catalog>();
            crate::sim::builder::configured_model(&cfg, catalog, world)
        };
        let mut rec = world.resource_mut::<RecState>();
        model.fit(&rec.log);
        rec.model = model;
    } else {
        SettingsRegistry::reload_live(world, key, &cfg)?;
    }
    world.insert_resource(cfg);
    Ok(())
}

/// The applied interventions; restoring re-applies the profile changes (profiles are rebuilt
/// from the data on resume) and rewrites the log.
struct InterventionPart;

impl CheckpointPart for InterventionPart {
    fn name(&self) -> &str {
        "interventions"
    }
    // Checkpoints written before interventions existed hold none.
    fn absent_ok(&self) -> bool {
        true
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        crate::plugin::parts::encode(&world.resource::<InterventionState>().applied)
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let applied: Vec<Applied> = crate::plugin::parts::decode(bytes)?;
        for a in &applied {
            if let Intervention::Profile { agent, patch } = &a.intervention {
                let (_, e) = agent_entity(world, *agent).map_err(|e| e.to_string())?;
                patch_profile(world, e, patch).map_err(|e| e.to_string())?;
            }
        }
        let none = applied.is_empty();
        world.resource_mut::<InterventionState>().applied = applied;
        if none {
            // The log of rounds after the checkpoint (a resumed run runs them again).
            if let Some(sink) = world.get_resource::<OutputSink>() {
                let path = log_path(sink);
                if path.is_file() {
                    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
            return Ok(());
        }
        write_log(world).map_err(|e| e.to_string())
    }
}

impl Sim {
    /// Applies `iv` now, at the boundary before the next round, and records it; returns the
    /// interview's answer (`None` for the other kinds).
    ///
    /// # Errors
    /// [`InterventionError`]: refused (nothing changed), or the log could not be written.
    pub fn intervene(&mut self, iv: Intervention) -> Result<Option<String>, InterventionError> {
        let round = self.round() + 1;
        apply_and_record(self.world_mut(), round, iv)
    }

    /// Keeps `iv` for the start of the next round (applied then, before anything else of that
    /// round; a refused one is logged and skipped).
    pub fn queue_intervention(&mut self, iv: Intervention) {
        self.world_mut()
            .resource_mut::<InterventionState>()
            .queued
            .push_back(iv);
    }

    /// Asks agent `agent` `question` now; returns the answer (see [`Intervention::Interview`]).
    ///
    /// # Errors
    /// As [`Sim::intervene`].
    pub fn interview(&mut self, agent: u32, question: &str) -> Result<String, InterventionError> {
        self.intervene(Intervention::Interview {
            agent,
            question: question.into(),
        })
        .map(Option::unwrap_or_default)
    }

    /// Writes `text` into agent `agent`'s memory (see [`Intervention::Message`]).
    ///
    /// # Errors
    /// As [`Sim::intervene`].
    pub fn send_message(&mut self, agent: u32, text: &str) -> Result<(), InterventionError> {
        self.intervene(Intervention::Message {
            agent,
            text: text.into(),
        })
        .map(drop)
    }

    /// Changes agent `agent`'s profile (see [`ProfilePatch`]).
    ///
    /// # Errors
    /// As [`Sim::intervene`]; every field is checked before anything changes.
    pub fn edit_profile(
        &mut self,
        agent: u32,
        patch: ProfilePatch,
    ) -> Result<(), InterventionError> {
        self.intervene(Intervention::Profile { agent, patch })
            .map(drop)
    }

    /// Sets `key` to `value` (as written in a configuration) from the next round on.
    ///
    /// # Errors
    /// [`InterventionError::Refused`] for a key that cannot change mid-run (with the reason),
    /// [`InterventionError::Config`] for a value the key does not allow.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), InterventionError> {
        self.intervene(Intervention::Setting {
            key: key.into(),
            value: value.into(),
        })
        .map(drop)
    }

    /// Sets several settings together, from the next round on: all are checked first
    /// ([`check_settings`]), so either every one is applied (in order, one log entry each) or
    /// none.
    ///
    /// # Errors
    /// As [`Sim::set_setting`], for the first that would be refused (nothing changed).
    pub fn set_settings(&mut self, settings: &[(String, String)]) -> Result<(), InterventionError> {
        check_settings(self.world(), settings)?;
        for (key, value) in settings {
            self.set_setting(key, value)?;
        }
        Ok(())
    }

    /// The interventions applied so far, in order.
    pub fn interventions(&self) -> &[Applied] {
        &self.world().resource::<InterventionState>().applied
    }
}
