//! Run configuration (YAML). Accepts every key of RecAgent's `config/config.yaml` (spec §6) plus
//! recagent's own keys. The core owns the keys below ([`SimConfig`]); every other top-level key
//! belongs to a plugin's settings ([`crate::plugin::Settings`]) and is kept in
//! [`SimConfig::extra`] until the plugin claims it when the simulation is built. Unknown and
//! duplicate keys are errors naming the key and line; values out of range are errors naming the
//! key, the value and the allowed range.
//!
//! Relative paths in the file resolve against the directory that holds the file (or, for a
//! RecAgent file whose data files are only in the working directory, against that; see
//! [`SimConfig::load`]).
//!
//! - [`sections`]: the value and section types (recommender model, backend, `llm_options:`);
//! - [`validate`]: range checks and the parser-message helpers;
//! - [`compat`]: RecAgent's old key names and the keys accepted without a use;
//! - `messages`: type errors in the user's terms, with the range of the key's check.

pub mod compat;
pub(crate) mod messages;
pub mod sections;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bevy_ecs::resource::Resource;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::clock::Interval;
use crate::decision::offline::OfflineParams;

pub use sections::{
    BackendKind, ExecutionMode, HybridOptions, LlmOptions, MessageAgents, Protocol, RecModel,
    StructuredOutput, TextSource,
};
use validate::{add_line_to_unknown_field, key_line, name_key_of_bad_value, tidy_parse_message};

/// Errors from reading, parsing or validating a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML did not parse into a configuration (syntax, unknown or duplicate key, bad type).
    #[error("{origin}: {message}")]
    Parse {
        /// File path or `<embedded>`.
        origin: String,
        /// The parser's message, with the line where the parser reports one.
        message: String,
    },
    /// A value is outside its allowed range or conflicts with another key.
    #[error("{origin}{line}: invalid value for `{key}`: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// File path or `<embedded>`.
        origin: String,
        /// 1-based line of the key in the file, if it is there.
        line: Option<usize>,
        /// The offending key.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `--set key=value` override names an unknown key or has a bad value.
    #[error("override `{0}`: {1}")]
    Override(String, String),
}

/// Where a configuration's text came from (for the lines in errors).
#[derive(Debug)]
pub struct ConfigSource {
    /// File path, `<embedded config>` or another label.
    pub origin: String,
    /// The text.
    pub text: String,
}

/// The whole run configuration. Field names are RecAgent's where RecAgent has the key.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    // ---- RecAgent keys (spec §6) ----
    /// LLM model name (used by the `llm` backend; recorded in the manifest).
    pub llm: String,
    /// Item catalogue: RecAgent `item.csv` (`id,title,genre,description`) or MovieLens `movies.dat`.
    pub item_path: PathBuf,
    /// Users: RecAgent `user_1000.csv`, legacy `user.csv`, or MovieLens `users.dat`.
    pub user_path: PathBuf,
    /// Social edges: `user_1,user_2,relationship,closeness` (ids) or legacy `user_1,user_2,relationship`
    /// (names and `1`). Empty = no social graph.
    pub relationship_path: Option<PathBuf>,
    /// Interaction CSV output (`user_id,item_id,label,rating,round,timestamp`), appended each round.
    /// Default: `<output_dir>/interaction.csv`.
    pub interaction_path: Option<PathBuf>,
    /// RecAgent's MF weights directory. Accepted and not used (a note is logged): recagent's
    /// checkpoints hold the model's state.
    pub ckpt_path: Option<PathBuf>,
    /// RecAgent's FAISS title-index directory. Accepted and not used (a note is logged): the
    /// item index lives in `memory.index_dir`.
    pub index_name: Option<PathBuf>,
    /// Checkpoint directory (RecAgent's pickle directory); default `<output_dir>/checkpoints`.
    pub simulator_dir: Option<PathBuf>,
    /// RecAgent's checkpoint to restore. Accepted; must be empty in this version.
    pub simulator_restore_file_name: Option<String>,
    /// Root seed; every random stream is derived from it.
    pub seed: u64,
    /// Recommender model. Also read as `model` (RecAgent README v1).
    #[serde(alias = "model")]
    pub rec_model: RecModel,
    /// MF training epochs (RecAgent key; used when MF is available).
    pub epoch_num: u32,
    /// MF mini-batch size (RecAgent key).
    pub batch_size: u32,
    /// MF embedding dimension (RecAgent key).
    pub embedding_size: u32,
    /// MF learning rate (RecAgent key).
    pub lr: f64,
    /// Number of rounds to run; 1..=1,000,000. Also read as `epoch` (RecAgent README v1, where
    /// it counts rounds).
    #[serde(alias = "epoch")]
    pub round: u32,
    /// Number of agents: the first `agent_num` users by id. Empty = every user in the file.
    /// Also read as `num_agents` (RecAgent README v1).
    #[serde(alias = "num_agents")]
    pub agent_num: Option<u32>,
    /// LLM sampling temperature; 0..=2.
    pub temperature: f64,
    /// LLM maximum output tokens; 1..=100,000.
    pub max_token: u32,
    /// `serial` or `parallel`; same outputs either way.
    pub execution_mode: ExecutionMode,
    /// Simulated time between rounds (`5h`; units s, m, h, d, M, y).
    pub interval: Interval,
    /// LLM retries per request; 0..=100.
    pub max_retries: u32,
    /// RecAgent key, unused there too; accepted and not used (a note is logged).
    pub verbose: bool,
    /// RecAgent key (unused there); only `recagent` is accepted.
    pub agent_memory: String,
    /// RecAgent CLI key `-m`; only `recagent` is accepted.
    pub recagent_memory: String,
    /// OpenAI-compatible API base URLs (the `llm` backend).
    pub api_bases: Vec<String>,
    /// API keys. Never printed, logged or written to any output.
    pub api_keys: Vec<String>,
    /// Rewire the social graph at start: `k > 0` links each agent to up to k agents with a
    /// different interest string (heterophily), `k < 0` to |k| with the same one; 0 keeps the file.
    pub social_random_k: i32,
    /// RecAgent's human role agent; must be false in this version.
    pub play_role: bool,
    /// RecAgent CLI key: messages file name. CLI `--output-file` wins.
    pub output_file: Option<PathBuf>,
    /// RecAgent CLI key: log file name. CLI `--log-file` wins.
    pub log_file: Option<PathBuf>,
    /// RecAgent CLI key: logger name. Recorded in the manifest.
    pub log_name: Option<String>,

    // ---- recagent keys ----
    /// Behaviour backend: `offline` (default), `llm`, `replay`, `hybrid`.
    pub backend: BackendKind,
    /// Directory for the default output files (messages, interactions, manifest, log).
    pub output_dir: PathBuf,
    /// Start of round 1 (`YYYY-mm-dd HH:MM:SS`; RecAgent starts at 08:00 of the run's day).
    pub start_time: String,
    /// Length of the watched and heard histories (RecAgent: 10); 1..=1000.
    pub history_size: u32,
    /// Write a checkpoint every this many rounds (0 = never; default 1, so a stopped run can be
    /// resumed). Into `simulator_dir` when set, else `<output_dir>/checkpoints`.
    pub checkpoint_every: u32,
    /// Write every message to the messages file (`true`), or only counts (`false`, for huge runs).
    pub write_messages: bool,
    /// Whose messages are written when `write_messages` is on (section `message_agents:`,
    /// `every` and `ids`; default every agent): see [`MessageAgents`].
    pub message_agents: MessageAgents,
    /// Also write the interactions as Parquet, one file per round, in `interaction.parquet/`
    /// beside the CSV (see [`crate::io::parquet`]; needs the `parquet` cargo feature, on by
    /// default). The CSV is written either way.
    pub interactions_parquet: bool,
    /// Parameters of the offline behaviour model.
    pub offline: OfflineParams,
    /// Warm start: initial interactions (MovieLens `ratings.dat` or implicit `user item item ...`)
    /// loaded before round 1; ids are the data files' user and item ids. Empty = none.
    pub rec_init_path: Option<PathBuf>,
    /// Endpoint of the `External` recommender (`http://host:port/path`).
    pub rec_external_url: Option<String>,
    /// Memory, embedding and item-index parameters (`memory:` section, see
    /// [`crate::memory::MemoryParams`]).
    pub memory: crate::memory::MemoryParams,
    /// LLM transcript (JSON Lines, every call): written by `backend: llm` (default
    /// `<output_dir>/transcript.jsonl`), read by `backend: replay` (required there).
    pub transcript_path: Option<PathBuf>,
    /// Settings of the `llm` / `replay` backends (protocol, prompts, timeouts, limits, prices).
    pub llm_options: LlmOptions,
    /// Settings of the `hybrid` backend (`text_share`, `text_source`).
    pub hybrid: HybridOptions,

    /// Directory the relative paths resolve against (the config file's directory). Not a YAML key.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Every top-level key the core does not own (plugin settings: sections and flat keys), as
    /// written. Plugins claim theirs when the simulation is built; a key nobody claims is an
    /// error naming the key and its line.
    #[serde(skip)]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The file (or text) this configuration was read from, for the lines in errors.
    #[serde(skip)]
    pub source: Option<Arc<ConfigSource>>,
    /// Top-level keys set by overrides (`--set`), reported as such in errors.
    #[serde(skip)]
    pub overridden: BTreeSet<String>,
    /// What the file said (keys given, old names used, unknown keys inside core sections,
    /// where its paths resolve) and the flags of command-line overrides: for notes and errors.
    #[serde(skip)]
    pub file: compat::FileFacts,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            llm: "gpt-4o-mini".into(),
            item_path: "data/item.csv".into(),
            user_path: "data/users.csv".into(),
            relationship_path: Some("data/relationship.csv".into()),
            interaction_path: None,
            ckpt_path: None,
            index_name: None,
            simulator_dir: None,
            simulator_restore_file_name: None,
            seed: 2023,
            rec_model: RecModel::Popularity,
            epoch_num: 10,
            batch_size: 64,
            embedding_size: 64,
            lr: 0.001,
            round: 5,
            agent_num: None,
            temperature: 0.0,
            max_token: 1500,
            execution_mode: ExecutionMode::Parallel,
            interval: Interval::Seconds(5 * 3600),
            max_retries: 3,
            verbose: false,
            agent_memory: "recagent".into(),
            recagent_memory: "recagent".into(),
            api_bases: Vec::new(),
            api_keys: Vec::new(),
            social_random_k: 0,
            play_role: false,
            output_file: None,
            log_file: None,
            log_name: None,
            backend: BackendKind::Offline,
            output_dir: "output".into(),
            start_time: "2023-06-01 08:00:00".into(),
            history_size: 10,
            checkpoint_every: 1,
            write_messages: true,
            message_agents: MessageAgents::default(),
            interactions_parquet: false,
            offline: OfflineParams::default(),
            rec_init_path: None,
            rec_external_url: None,
            memory: crate::memory::MemoryParams::default(),
            transcript_path: None,
            llm_options: LlmOptions::default(),
            hybrid: HybridOptions::default(),
            base_dir: PathBuf::from("."),
            extra: BTreeMap::new(),
            source: None,
            overridden: BTreeSet::new(),
            file: compat::FileFacts::default(),
        }
    }
}

/// The default configuration file, embedded so `recagent run` works from any directory.
pub const EMBEDDED_CONFIG: &str = include_str!("../../config/config.yaml");

/// Marker `base_dir` for a configuration whose paths point into the embedded demo data.
pub const EMBEDDED_BASE: &str = "<embedded>";

impl SimConfig {
    /// True under `execution_mode: parallel`: per-agent work may run on the rayon pool.
    pub fn runs_parallel(&self) -> bool {
        self.execution_mode == ExecutionMode::Parallel
    }

    /// Reads, parses and validates a configuration file; relative paths resolve against its
    /// directory. When none of the data files it names (`item_path`, `user_path`,
    /// `relationship_path`, `rec_init_path`) is beside the file but all are in the working
    /// directory, as in RecAgent, whose paths are relative to where it runs (`config/config.yaml`
    /// naming `data/item.csv`), every relative path of the file resolves against the working
    /// directory instead, with a note ([`SimConfig::notes`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key and (where known) the line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let mut cfg = Self::from_yaml(&text, &path.display().to_string(), base)?;
        if cfg.data_only_in_working_dir() {
            cfg.base_dir = PathBuf::from(".");
            cfg.file.paths_from_cwd = true;
        }
        Ok(cfg)
    }

    /// True when the relative data paths all miss beside the file and all exist relative to
    /// the working directory.
    fn data_only_in_working_dir(&self) -> bool {
        if self.base_dir == Path::new(".") {
            return false;
        }
        let inputs: Vec<&PathBuf> = [&self.item_path, &self.user_path]
            .into_iter()
            .chain(&self.relationship_path)
            .chain(&self.rec_init_path)
            .filter(|p| p.is_relative() && !p.as_os_str().is_empty())
            .collect();
        !inputs.is_empty()
            && inputs
                .iter()
                .all(|p| !self.resolve(p).exists() && p.exists())
    }

    /// Notes a run logs about the file: the RecAgent keys it sets that recagent does not use,
    /// and why; the old key names it uses; API keys given to the offline backend; paths
    /// resolved against the working directory. Never an error: the file runs as written.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let origin = self
            .source
            .as_ref()
            .map_or("the configuration", |s| &s.origin);
        if self.file.paths_from_cwd {
            notes.push(format!(
                "the data files {origin} names are not beside it but in the working directory: its relative paths are read from there, as RecAgent does"
            ));
        }
        for (old, new) in &self.file.aliased {
            notes.push(format!(
                "`{old}` is read as `{new}` (RecAgent's README name for it)"
            ));
        }
        let json = self.to_json();
        for (key, why) in compat::UNUSED {
            if self.file.given.contains(*key) && !json[*key].is_null() {
                notes.push(format!("`{key}` is accepted and not used: {why}"));
            }
        }
        let given = |k: &str| self.file.given.contains(k) && !self.overridden.contains(k);
        if self.backend == BackendKind::Offline
            && ((given("api_keys") && !self.api_keys.is_empty())
                || (given("api_bases") && !self.api_bases.is_empty()))
        {
            notes.push(
                "`api_keys` and `api_bases` are used by `backend: llm` only: the offline backend needs no key and makes no network call"
                    .into(),
            );
        }
        notes
    }

    /// The embedded default configuration (bundled demo data, offline backend).
    ///
    /// # Errors
    /// Only if the embedded file is broken (a build defect, covered by a test).
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_yaml(
            EMBEDDED_CONFIG,
            "<embedded config>",
            PathBuf::from(EMBEDDED_BASE),
        )
    }

    /// Parses and validates YAML text. `origin` names the source in errors. Keys the core does
    /// not own go to [`SimConfig::extra`], for the plugins to claim.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for syntax errors, duplicate keys and wrong types of core keys;
    /// [`ConfigError::Invalid`] for core values out of range.
    pub fn from_yaml(text: &str, origin: &str, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let parse_error = |e: serde_saphyr::Error| ConfigError::Parse {
            origin: origin.to_string(),
            message: name_key_of_bad_value(
                &add_line_to_unknown_field(&tidy_parse_message(&e.to_string(), origin), text),
                text,
            ),
        };
        // Every top-level key with its value, for the ones the core does not own; syntax
        // errors show here first.
        let all: Option<BTreeMap<String, serde_json::Value>> =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
                match compat::tab_indented_line(text) {
                    // The parser reports a tab where the scalar before it started, often the line above.
                    Some(line) => ConfigError::Parse {
                        origin: origin.to_string(),
                        message: format!(
                            "line {line}: a tab indents this line; YAML indents with spaces only"
                        ),
                    },
                    None => parse_error(e),
                }
            })?;
        let all = all.unwrap_or_default();
        check_aliases(&all, text, origin)?;
        let mut cfg: SimConfig = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| {
                let msg = tidy_parse_message(&e.to_string(), origin);
                wrong_kind_in_file(&msg, text, origin, &all).unwrap_or_else(|| parse_error(e))
            })?;
        let core = core_keys();
        cfg.file.given = all
            .keys()
            .map(|k| compat::canonical(k).to_string())
            .collect();
        cfg.file.aliased = all
            .keys()
            .filter(|k| compat::canonical(k) != k.as_str())
            .map(|k| (k.clone(), compat::canonical(k).to_string()))
            .collect();
        cfg.file.unknown_nested = unknown_in_sections(&all);
        cfg.extra = all
            .into_iter()
            .filter(|(k, _)| !core.contains(compat::canonical(k)))
            .collect();
        cfg.base_dir = base_dir;
        cfg.source = Some(Arc::new(ConfigSource {
            origin: origin.to_string(),
            text: text.to_string(),
        }));
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: origin.to_string(),
                line: key_line(text, &key),
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// A configuration from its JSON form ([`SimConfig::to_json`], as checkpoints keep it),
    /// validated. `base_dir` is not part of the JSON.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for a core key of the wrong type; [`ConfigError::Invalid`] for a
    /// core value out of range.
    pub fn from_json(value: serde_json::Value, origin: &str) -> Result<Self, ConfigError> {
        let cfg = Self::from_json_unvalidated(value, origin)?;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: origin.to_string(),
                line: None,
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// As [`SimConfig::from_json`] without the range checks (a checkpoint's configuration,
    /// whose removed credentials the caller may still have to put back).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for a core key of the wrong type.
    pub fn from_json_unvalidated(
        value: serde_json::Value,
        origin: &str,
    ) -> Result<Self, ConfigError> {
        let core = core_keys();
        let extra: BTreeMap<String, serde_json::Value> = match &value {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(k, _)| !core.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut cfg: SimConfig = serde_json::from_value(value).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.extra = extra;
        Ok(cfg)
    }

    /// The configuration as JSON: the core keys and every key of [`SimConfig::extra`].
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json_as_written(self);
        if let Some(m) = v.as_object_mut() {
            for (k, x) in &self.extra {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    }

    /// Applies `key=value` overrides (value in YAML syntax; dotted keys reach into sections:
    /// `offline.temperature=2`), then validates the core keys again. Keys the core does not
    /// own go to [`SimConfig::extra`]: the plugin that owns them checks them when the
    /// simulation is built (a key nobody owns is an error then).
    ///
    /// # Errors
    /// [`ConfigError::Override`] for an unknown key inside a core section or a core value of
    /// the wrong type; [`ConfigError::Invalid`] for a core value out of range.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        self.with_flagged_overrides(overrides, &[])
    }

    /// As [`SimConfig::with_overrides`], with `flags[i]` the command-line flag override `i`
    /// came from as the user typed it (`--agents 0`, `--set page_size=abc`): an error about
    /// the value, now or when the simulation is built, names the flag and says it came from
    /// the command line. Old key names ([`compat::ALIASES`]) are accepted.
    ///
    /// # Errors
    /// As [`SimConfig::with_overrides`]; a flagged override's bad value is
    /// [`ConfigError::Invalid`] with origin ``command line (`FLAG`)``.
    pub fn with_flagged_overrides(
        &self,
        overrides: &[(String, String)],
        flags: &[String],
    ) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let core = core_keys();
        let mut value = self.to_json();
        let mut overridden = self.overridden.clone();
        let mut file = self.file.clone();
        for (i, (key, raw)) in overrides.iter().enumerate() {
            let what = format!("{key}={raw}");
            let flag = flags.get(i);
            let refuse = |key: &str, message: String| match flag {
                Some(f) => ConfigError::Invalid {
                    origin: format!("command line (`{f}`)"),
                    line: None,
                    key: key.to_string(),
                    message,
                },
                None => ConfigError::Override(what.clone(), message),
            };
            let v: serde_json::Value = serde_saphyr::from_str(raw).map_err(|e| {
                let msg = tidy_parse_message(&e.to_string(), "--set");
                // The value is one line of its own: its position and excerpt say nothing.
                let first = msg.lines().next().unwrap_or("");
                let reason = first
                    .split_once(": ")
                    .filter(|(pos, _)| pos.starts_with("line "))
                    .map_or(first, |(_, r)| r);
                refuse(key, format!("`{raw}` is not a YAML value: {reason}"))
            })?;
            let key = &match key.split_once('.') {
                Some((top, rest)) => format!("{}.{rest}", compat::canonical(top)),
                None => compat::canonical(key).to_string(),
            };
            let parts: Vec<&str> = key.split('.').collect();
            let is_core = core.contains(parts[0]);
            let mut slot = &mut value;
            for (depth, part) in parts.iter().enumerate() {
                let obj = slot.as_object_mut().ok_or_else(|| {
                    ConfigError::Override(what.clone(), format!("`{key}`: not a section"))
                })?;
                if is_core && !obj.contains_key(*part) {
                    // Core sections hold every key (with its default): a missing one is a typo.
                    return Err(ConfigError::Override(
                        what.clone(),
                        format!("unknown key `{key}`"),
                    ));
                }
                let last = depth + 1 == parts.len();
                slot = obj.entry(part.to_string()).or_insert_with(|| {
                    if last {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::Object(Default::default())
                    }
                });
            }
            *slot = v.clone();
            overridden.insert(parts[0].to_string());
            if let Some(f) = flag {
                file.flags.insert(parts[0].to_string(), f.clone());
            }
            if is_core {
                // Deserialise after each override so a type error names its key.
                serde_json::from_value::<SimConfig>(value.clone()).map_err(|e| {
                    let e = e.to_string();
                    let message =
                        messages::wrong_kind(&e, Some(&v), |p| core_probe(key, p)).unwrap_or(e);
                    refuse(key, message)
                })?;
            }
        }
        let mut cfg = Self::from_json_unvalidated(value, "command line")
            .map_err(|e| ConfigError::Override(String::new(), e.to_string()))?;
        cfg.base_dir = self.base_dir.clone();
        cfg.source = self.source.clone();
        cfg.overridden = overridden;
        cfg.file = file;
        cfg.validate().map_err(|(key, message)| {
            // The key may have come from the file, and only a cross-check involve an override.
            let (origin, line) = cfg.origin_of(&key);
            ConfigError::Invalid {
                origin,
                line,
                key,
                message,
            }
        })?;
        Ok(cfg)
    }

    /// Where `key` (top level or dotted) was set, for errors: `("command line", None)` for an
    /// overridden key, else the file and the key's line in it (when found).
    pub fn origin_of(&self, key: &str) -> (String, Option<usize>) {
        let top = key.split('.').next().unwrap_or(key);
        if let Some(flag) = self.file.flags.get(top) {
            return (format!("command line (`{flag}`)"), None);
        }
        if self.overridden.contains(top) {
            return ("command line".into(), None);
        }
        match &self.source {
            Some(s) => (s.origin.clone(), key_line(&s.text, key)),
            None => ("config".into(), None),
        }
    }

    /// Fails when a key of [`SimConfig::extra`] is not in `claimed` (a typo, or a plugin that
    /// is not registered) or a core section holds a key it does not have, naming every such
    /// key at once, each with its line and the nearest known key.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] listing the keys; [`ConfigError::Override`] when the only one
    /// was set on the command line.
    pub fn check_claimed(&self, claimed: &BTreeSet<String>) -> Result<(), ConfigError> {
        let mut unknown: Vec<&String> = self
            .extra
            .keys()
            .filter(|k| !claimed.contains(*k))
            .chain(&self.file.unknown_nested)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let top: Vec<&str> = core_keys()
            .iter()
            .chain(claimed)
            .map(String::as_str)
            .collect();
        let defaults = SimConfig::default().to_json();
        let hint = |key: &str| {
            let near = match key.split_once('.') {
                Some((sec, leaf)) => defaults
                    .get(sec)
                    .and_then(serde_json::Value::as_object)
                    .and_then(|m| compat::nearest(leaf, m.keys().map(String::as_str)))
                    .map(|n| format!("{sec}.{n}")),
                None => compat::nearest(key, top.iter().copied()).map(str::to_string),
            };
            near.map_or_else(String::new, |k| format!("; did you mean `{k}`?"))
        };
        if let [key] = unknown[..] {
            if let Some(flag) = self.file.flags.get(key) {
                return Err(ConfigError::Parse {
                    origin: format!("command line (`{flag}`)"),
                    message: format!("unknown key `{key}`{}", hint(key)),
                });
            }
            if self.overridden.contains(key) {
                return Err(ConfigError::Override(
                    key.clone(),
                    format!("unknown key `{key}`{}", hint(key)),
                ));
            }
        }
        // In the order of the file (command-line keys last).
        unknown.sort_by_key(|k| (self.origin_of(k).1.unwrap_or(usize::MAX), (*k).clone()));
        let lines: Vec<String> = unknown
            .iter()
            .map(|key| match self.origin_of(key) {
                (_, Some(l)) => format!("line {l}: unknown field `{key}`{}", hint(key)),
                (o, None) if self.overridden.contains(*key) => {
                    format!("{o}: unknown key `{key}`{}", hint(key))
                }
                _ => format!("unknown field `{key}`{}", hint(key)),
            })
            .collect();
        let origin = self
            .source
            .as_ref()
            .map_or_else(|| "config".to_string(), |s| s.origin.clone());
        Err(ConfigError::Parse {
            origin,
            message: match &lines[..] {
                [one] => one.clone(),
                many => format!("{} unknown keys:\n  {}", many.len(), many.join("\n  ")),
            },
        })
    }

    /// `start_time` parsed.
    pub fn start_datetime(&self) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(self.start_time.trim(), "%Y-%m-%d %H:%M:%S").ok()
    }

    /// Resolves a path from the file against [`Self::base_dir`].
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// `llm_options.prompt_dir` resolved against the config's folder; `None` when unset or
    /// empty (the embedded templates).
    pub fn prompt_dir(&self) -> Option<PathBuf> {
        self.llm_options
            .prompt_dir
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| self.resolve(p))
    }

    /// True when the data paths point into the embedded demo data set.
    pub fn is_embedded(&self) -> bool {
        self.base_dir.as_os_str() == EMBEDDED_BASE
    }

    /// The configuration without secrets, as checkpoints keep it: no `api_keys`, and the
    /// credentials of `api_bases` URLs replaced by [`REDACTED`] (see [`redact_url`]).
    pub fn without_secrets(&self) -> SimConfig {
        let mut c = self.clone();
        c.api_keys.clear();
        c.api_bases = c.api_bases.iter().map(|b| redact_url(b)).collect();
        c
    }

    /// The configuration as JSON with secrets redacted (`api_keys` and the credentials of
    /// `api_bases` URLs), for the manifest, the log and `check-config`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = self.to_json();
        if let Some(bases) = v.get_mut("api_bases").and_then(|k| k.as_array_mut()) {
            for b in bases.iter_mut() {
                if let Some(s) = b.as_str() {
                    *b = serde_json::Value::String(redact_url(s));
                }
            }
        }
        if let Some(keys) = v.get_mut("api_keys").and_then(|k| k.as_array_mut()) {
            for k in keys.iter_mut() {
                *k = serde_json::Value::String("<redacted>".into());
            }
        }
        v
    }
}

/// The YAML reader's limits for a configuration file: a tenth of serde_saphyr's defaults
/// (1,000,000 events, 250,000 nodes), still 100 times the largest shipped configuration's. A
/// few hundred bytes of nested aliases (a "billion laughs") expand up to the limit before they
/// are refused; at the defaults that took seconds.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 100_000;
    budget.max_nodes = 25_000;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o
}

/// An old key name and its new one both in the file: an error naming both and their lines.
fn check_aliases(
    all: &BTreeMap<String, serde_json::Value>,
    text: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for a in compat::ALIASES {
        if all.contains_key(a.old) && all.contains_key(a.new) {
            let (old, new) = (key_line(text, a.old), key_line(text, a.new));
            return Err(ConfigError::Parse {
                origin: origin.to_string(),
                message: format!(
                    "{}`{}` and `{}`{} are the same setting (`{}` is RecAgent's old name for `{}`): give only one",
                    old.map_or_else(String::new, |l| format!("line {l}: ")),
                    a.old,
                    a.new,
                    new.map_or_else(String::new, |l| format!(" (line {l})")),
                    a.old,
                    a.new
                ),
            });
        }
    }
    Ok(())
}

/// `section.key` for every key of a core section (`offline:`, `memory:`, `llm_options:`) in
/// `all` that the section does not have.
fn unknown_in_sections(all: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    let defaults = SimConfig::default().to_json();
    let mut out = Vec::new();
    for (sec, v) in all {
        let (Some(given), Some(known)) = (
            v.as_object(),
            defaults
                .get(sec.as_str())
                .and_then(serde_json::Value::as_object),
        ) else {
            continue;
        };
        out.extend(
            given
                .keys()
                .filter(|k| !known.contains_key(*k))
                .map(|k| format!("{sec}.{k}")),
        );
    }
    out
}

/// The message of a range check of core key `key` (dotted) for the default configuration with
/// `probe` as that key's value, if the check refuses it.
fn core_probe(key: &str, probe: serde_json::Value) -> Option<String> {
    let mut v = SimConfig::default().to_json();
    let mut slot = &mut v;
    for part in key.split('.') {
        slot = slot.get_mut(part)?;
    }
    *slot = probe;
    let c = SimConfig::from_json_unvalidated(v, "").ok()?;
    match c.validate() {
        Err((k, m)) if k == key => Some(m),
        _ => None,
    }
}

/// A core value of the wrong kind in the file, in the user's terms (`invalid value for
/// `round`: must be a whole number from 1 to 1000000, not `abc``), from the parser's message
/// `msg` (which names the line); `None` for other errors.
fn wrong_kind_in_file(
    msg: &str,
    text: &str,
    origin: &str,
    all: &BTreeMap<String, serde_json::Value>,
) -> Option<ConfigError> {
    let line = msg
        .split("line ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse::<usize>()
        .ok()?;
    let key = validate::key_path_at(text, line)?;
    let (top, rest) = match key.split_once('.') {
        Some((t, r)) => (t, Some(r)),
        None => (key.as_str(), None),
    };
    let mut found = all.get(top);
    for part in rest.into_iter().flat_map(|r| r.split('.')) {
        found = found.and_then(|v| v.get(part));
    }
    let probe_key = match rest {
        Some(r) => format!("{}.{r}", compat::canonical(top)),
        None => compat::canonical(top).to_string(),
    };
    let message = messages::wrong_kind(msg, found, |p| core_probe(&probe_key, p))?;
    Some(ConfigError::Invalid {
        origin: origin.to_string(),
        line: Some(line),
        key,
        message,
    })
}

/// The top-level keys the core owns (the fields of [`SimConfig`]).
pub fn core_keys() -> &'static BTreeSet<String> {
    static KEYS: OnceLock<BTreeSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| match serde_json::to_value(SimConfig::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    })
}

/// `value` as JSON, each number as its own type writes it: an `f32` setting as the shortest
/// decimal that reads back as that `f32` (`0.7`), where `serde_json::to_value` widens it to the
/// `f64` nearest the `f32` (`0.699999988079071`). Goes through JSON text, whose writer formats
/// `f32` and `f64` each at their own precision; serde_json's `float_roundtrip` feature makes
/// reading that text back exact, so an `f64` setting keeps its value bit for bit. `Null` for a
/// value that does not serialise (a map with non-string keys).
pub fn json_as_written<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_vec(value)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// What stands in for a removed secret.
pub const REDACTED: &str = "<redacted>";

/// `url` with its user-info part (`user:password@`), if any, replaced by [`REDACTED`]:
/// `http://alice:pw@host/v1` gives `http://<redacted>@host/v1`. Anything else is unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SimConfig, ConfigError> {
        SimConfig::from_yaml(text, "test.yaml", PathBuf::from("/base"))
    }

    /// Parses and checks every key against the shipped plugins' settings.
    fn check(text: &str) -> Result<SimConfig, String> {
        let c = parse(text).map_err(|e| e.to_string())?;
        crate::sim::SimBuilder::new(c.clone())
            .check()
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn embedded_config_is_valid() {
        let c = SimConfig::embedded().unwrap();
        assert_eq!(c.backend, BackendKind::Offline);
        assert!(c.is_embedded());
    }

    #[test]
    fn accepts_recagent_keys() {
        // Every key of RecAgent's shipped config.yaml (spec §6), with MF swapped for Random.
        let text = "llm: gpt-3.5\nitem_path: data/item.csv\nuser_path: data/user_1000.csv\n\
            relationship_path: data/relationship_1000.csv\ninteraction_path: data/interaction.csv\n\
            ckpt_path: data/ckpt\nindex_name: data/faiss_index\nsimulator_dir: data/simulator\n\
            simulator_restore_file_name:\nseed: 2023\nrec_model: Random\nepoch_num: 10\nbatch_size: 64\n\
            embedding_size: 64\nlr: 0.001\nround: 5\nagent_num: 10\npage_size: 5\ntemperature: 0\n\
            max_token: 1500\nexecution_mode: parallel\ninterval: 5h\nmax_retries: 3\nverbose: True\n\
            active_agent_threshold: 100\nactive_method: random\nactive_prob: 1\nagent_memory: recagent\n\
            api_bases: [\"http://\"]\napi_keys: [\"xxx\"]\nrec_random_k: 0\nsocial_random_k: 0\n";
        let c = check(text).unwrap();
        assert_eq!(c.agent_num, Some(10));
        assert_eq!(c.interval, Interval::Seconds(18_000));
        assert_eq!(
            c.resolve(&c.item_path),
            PathBuf::from("/base/data/item.csv")
        );
        // A plugin's key: kept for the activation plugin, which reads it when the world is built.
        assert_eq!(c.extra["active_agent_threshold"], 100);
    }

    const README_V1: &str = include_str!("../../tests/compat/recagent-readme-v1.yaml");
    const README_V3: &str = include_str!("../../tests/compat/recagent-readme-v3.yaml");

    #[test]
    fn recagent_readme_v1_loads_with_old_names() {
        let c = check(README_V1).unwrap();
        // model: Random, epoch: 1, num_agents: 1 (the README's values).
        assert_eq!(c.rec_model, RecModel::Random);
        assert_eq!(c.round, 1);
        assert_eq!(c.agent_num, Some(1));
        assert_eq!(c.execution_mode, ExecutionMode::Serial);
        assert_eq!(c.max_token, 1500);
        assert_eq!(c.temperature, 0.8);
        assert_eq!(c.api_keys, ["xxxxx", "xxxxx"]);
        assert_eq!(c.extra["page_size"], 5);
        // The manifest uses the current names only.
        let j = c.to_json();
        assert_eq!(j["rec_model"], "Random");
        assert!(j.get("model").is_none() && j.get("epoch").is_none());
        let notes = c.notes();
        assert_eq!(notes.len(), 5, "{notes:#?}");
        assert_eq!(
            notes[0],
            "`epoch` is read as `round` (RecAgent's README name for it)"
        );
        assert!(notes
            .iter()
            .any(|n| n.starts_with("`index_name` is accepted and not used")));
        assert!(notes
            .iter()
            .any(|n| n.starts_with("`api_keys` and `api_bases` are used by `backend: llm` only")));
    }

    #[test]
    fn recagent_readme_v3_loads() {
        let c = check(README_V3).unwrap();
        assert_eq!(
            (c.rec_model, c.round, c.agent_num),
            (RecModel::MF, 50, Some(5))
        );
        assert_eq!((c.max_retries, c.verbose), (100, true));
        assert_eq!(c.simulator_restore_file_name, None);
        assert_eq!(c.llm, "gpt-3.5");
        let notes = c.notes();
        let heads: Vec<&str> = notes.iter().filter_map(|n| n.split(':').next()).collect();
        // ckpt_path, index_name, verbose; and the placeholder key with the offline backend.
        assert_eq!(
            heads,
            [
                "`index_name` is accepted and not used",
                "`ckpt_path` is accepted and not used",
                "`verbose` is accepted and not used",
                "`api_keys` and `api_bases` are used by `backend",
            ]
        );
        assert_eq!(notes.len(), 4, "{notes:#?}");
        // With the llm backend the keys are used: no note about them.
        let llm = parse(&format!(
            "{README_V3}backend: llm\napi_bases: [http://127.0.0.1:8000/v1]\n"
        ))
        .unwrap();
        assert_eq!(llm.notes().len(), 3, "{:#?}", llm.notes());
    }

    #[test]
    fn every_alias_is_read_as_its_new_name() {
        for a in compat::ALIASES {
            assert!(core_keys().contains(a.new), "{}", a.new);
            let v = if a.new == "rec_model" { "MF" } else { "3" };
            let old = parse(&format!("{}: {v}\n", a.old)).unwrap().to_json();
            let new = parse(&format!("{}: {v}\n", a.new)).unwrap().to_json();
            assert_eq!(old[a.new], new[a.new], "{}", a.old);
            assert_ne!(
                old[a.new],
                SimConfig::default().to_json()[a.new],
                "{}",
                a.old
            );
            // Also on the command line.
            let o = SimConfig::default()
                .with_overrides(&[(a.old.to_string(), v.to_string())])
                .unwrap()
                .to_json();
            assert_eq!(o[a.new], new[a.new], "--set {}", a.old);
        }
    }

    #[test]
    fn alias_and_new_name_together_is_an_error() {
        let e = parse("seed: 1\nmodel: MF\nround: 2\nrec_model: Random\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "test.yaml: line 2: `model` and `rec_model` (line 4) are the same setting (`model` is RecAgent's old name for `rec_model`): give only one"
        );
        let e = parse("epoch: 3\nround: 2\n").unwrap_err().to_string();
        assert!(e.contains("`epoch` and `round` (line 2)"), "{e}");
    }

    #[test]
    fn all_unknown_keys_at_once() {
        let e = check("seed: 1\npage_sise: 5\nrond: 3\noffline:\n  tempreature: 1\n  xyzzy: 2\n")
            .unwrap_err();
        assert_eq!(
            e,
            "test.yaml: 4 unknown keys:\n  line 2: unknown field `page_sise`; did you mean `page_size`?\n  \
             line 3: unknown field `rond`; did you mean `round`?\n  \
             line 5: unknown field `offline.tempreature`; did you mean `offline.temperature`?\n  \
             line 6: unknown field `offline.xyzzy`"
        );
    }

    #[test]
    fn tab_points_at_its_line() {
        // The parser itself blames line 1 (the scalar `1` it was reading).
        let e = parse("seed: 1\n\tround: 3\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml: line 2: a tab indents this line; YAML indents with spaces only"
        );
        let e = parse("seed: 1\noffline:\n  temperature: 1\n\t next_bias: 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.yaml: line 4: a tab"), "{e}");
        // A tab after the colon is no indentation.
        assert_eq!(parse("round:\t3\n").unwrap().round, 3);
    }

    #[test]
    fn wrong_kinds_in_the_users_terms() {
        // Ranges are those of the checks: round 1..=1000000, max_retries 0..=100,
        // page_size 1..=50 (a plugin's), active_prob (0, 1], temperature 0..=2,
        // memory.ltm_cap 1..=100000.
        let e = |t: &str| check(t).unwrap_err();
        assert_eq!(
            e("seed: 1\nround: abc\n"),
            "test.yaml:2: invalid value for `round`: must be a whole number from 1 to 1000000, not `abc`"
        );
        assert_eq!(
            e("round: -3\n"),
            "test.yaml:1: invalid value for `round`: must be a whole number from 1 to 1000000, not `-3`"
        );
        assert_eq!(
            e("epoch: 2.5\n"),
            "test.yaml:1: invalid value for `epoch`: must be a whole number from 1 to 1000000, not `2.5`"
        );
        assert_eq!(
            e("max_retries: many\n"),
            "test.yaml:1: invalid value for `max_retries`: must be a whole number from 0 to 100, not `many`"
        );
        assert_eq!(
            e("agent_num: all\n"),
            "test.yaml:1: invalid value for `agent_num`: must be a whole number of at least 1 (or empty for all users), not `all`"
        );
        assert_eq!(
            e("seed: x\n"),
            "test.yaml:1: invalid value for `seed`: must be a whole number (0 or more), not `x`"
        );
        assert_eq!(
            e("temperature: hot\n"),
            "test.yaml:1: invalid value for `temperature`: must be a number from 0 to 2, not `hot`"
        );
        assert_eq!(
            e("verbose: maybe\n"),
            "test.yaml:1: invalid value for `verbose`: must be true or false, not `maybe`"
        );
        assert_eq!(
            e("api_keys: xxx\n"),
            "test.yaml:1: invalid value for `api_keys`: must be a list, e.g. [a, b], not `xxx`"
        );
        assert_eq!(
            e("seed: 1\nmemory:\n  ltm_cap: lots\n"),
            "test.yaml:3: invalid value for `memory.ltm_cap`: must be a whole number from 1 to 100000, not `lots`"
        );
        assert_eq!(
            e("page_size: abc\n"),
            "test.yaml:1: invalid value for `page_size`: must be a whole number from 1 to 50, not `abc`"
        );
        assert_eq!(
            e("active_prob: often\n"),
            "test.yaml:1: invalid value for `active_prob`: must be a number in (0, 1], not `often`"
        );
    }

    #[test]
    fn command_line_values_say_so() {
        let c = parse("seed: 1\n").unwrap();
        let flagged = |k: &str, v: &str, flag: &str| {
            c.with_flagged_overrides(&[(k.into(), v.into())], &[flag.into()])
        };
        assert_eq!(
            flagged("agent_num", "0", "--agents 0").unwrap_err().to_string(),
            "command line (`--agents 0`): invalid value for `agent_num`: 0 is out of range: allowed 1.. (or empty for all users)"
        );
        assert_eq!(
            flagged("round", "abc", "--set round=abc").unwrap_err().to_string(),
            "command line (`--set round=abc`): invalid value for `round`: must be a whole number from 1 to 1000000, not `abc`"
        );
        assert_eq!(
            flagged("seed", "-1", "--set seed=-1").unwrap_err().to_string(),
            "command line (`--set seed=-1`): invalid value for `seed`: must be a whole number (0 or more), not `-1`"
        );
        assert_eq!(
            flagged("page_size", "[1", "--set page_size=[1").unwrap_err().to_string(),
            "command line (`--set page_size=[1`): invalid value for `page_size`: `[1` is not a YAML value: unclosed bracket '['"
        );
        // A plugin's key is checked when the simulation is built: still the flag.
        let o = flagged("page_size", "abc", "--set page_size=abc").unwrap();
        let e = crate::sim::SimBuilder::new(o)
            .check()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "command line (`--set page_size=abc`): invalid value for `page_size`: must be a whole number from 1 to 50, not `abc`"
        );
        let o = flagged("page_sise", "5", "--set page_sise=5").unwrap();
        let e = crate::sim::SimBuilder::new(o)
            .check()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "command line (`--set page_sise=5`): unknown key `page_sise`; did you mean `page_size`?"
        );
        // A key of the file keeps its line after an unrelated override.
        let c = parse("seed: 1\npage_size: 0\n").unwrap();
        let o = c
            .with_flagged_overrides(&[("round".into(), "2".into())], &["--rounds 2".into()])
            .unwrap();
        let e = crate::sim::SimBuilder::new(o)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.yaml:2: invalid value for `page_size`"),
            "{e}"
        );
    }

    #[test]
    fn default_random_items_and_one_item_pages() {
        // rec_random_k defaults to 1, which must stay below page_size: the error says so.
        assert_eq!(
            check("page_size: 1\n").unwrap_err(),
            "test.yaml: invalid value for `rec_random_k`: 1 is out of range: allowed 0..page_size (1) (1 is its default: set `rec_random_k: 0` for pages of 1 item)"
        );
        assert!(check("page_size: 1\nrec_random_k: 0\n").is_ok());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = check("seed: 1\npage_sise: 5\n").unwrap_err();
        assert!(err.contains("page_sise"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("did you mean `page_size`?"), "{err}");
        let err = check("seed: 1\nsede: 5\n").unwrap_err();
        assert!(err.contains("did you mean `seed`?"), "{err}");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let err = parse("seed: 1\nround: 2\nseed: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("duplicate"), "{err}");
        assert!(err.contains("seed"), "{err}");
    }

    #[test]
    fn out_of_range_names_key_range_and_line() {
        let err = check("seed: 1\npage_size: 0\n").unwrap_err();
        assert_eq!(
            err,
            "test.yaml:2: invalid value for `page_size`: 0 is out of range: allowed 1..=50"
        );
        let err = check("active_prob: 1.5\n").unwrap_err();
        assert!(
            err.contains("`active_prob`") && err.contains("(0, 1]"),
            "{err}"
        );
        let err = parse("interval: 1.5h\n").unwrap_err().to_string();
        assert!(err.contains("1.5h") && err.contains("`interval`"), "{err}");
        let err = parse("seed: 1\nround: -5\n").unwrap_err().to_string();
        assert!(
            err.contains("`round`") && err.contains("test.yaml:2:"),
            "{err}"
        );
        let err = check("page_size: 5\nrec_random_k: 5\n").unwrap_err();
        assert!(
            err.contains("rec_random_k") && err.contains("0..page_size (5)"),
            "{err}"
        );
    }

    #[test]
    fn overrides_apply_and_validate() {
        let c = parse("seed: 1\n").unwrap();
        let o = c
            .with_overrides(&[("seed".into(), "9".into()), ("round".into(), "3".into())])
            .unwrap();
        assert_eq!((o.seed, o.round), (9, 3));
        let builds = |c: SimConfig| {
            crate::sim::SimBuilder::new(c)
                .check()
                .map_err(|e| e.to_string())
        };
        let unknown = c.with_overrides(&[("nope".into(), "1".into())]).unwrap();
        let err = builds(unknown).unwrap_err();
        assert!(err.contains("unknown key `nope`"), "{err}");
        let bad = c
            .with_overrides(&[("page_size".into(), "0".into())])
            .unwrap();
        let err = builds(bad).unwrap_err();
        assert!(
            err.starts_with("command line: invalid value for `page_size`"),
            "{err}"
        );
        let ok = c
            .with_overrides(&[("chat_max_turns".into(), "3".into())])
            .unwrap();
        assert!(builds(ok).is_ok());
        // A core section keeps its key set: a typo there is refused at once.
        assert!(c
            .with_overrides(&[("offline.nope".into(), "1".into())])
            .unwrap_err()
            .to_string()
            .contains("unknown key `offline.nope`"));
    }

    #[test]
    fn url_credentials_are_redacted_and_bases_with_queries_refused() {
        assert_eq!(
            redact_url("http://alice:s3cret@127.0.0.1:8000/v1"),
            "http://<redacted>@127.0.0.1:8000/v1"
        );
        assert_eq!(
            redact_url("https://a:b@[::1]/v1?x=@"),
            "https://<redacted>@[::1]/v1?x=@"
        );
        assert_eq!(
            redact_url("http://127.0.0.1/v1/a@b"),
            "http://127.0.0.1/v1/a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        let c = parse(
            "backend: llm\napi_bases: [http://alice:s3cret@127.0.0.1:8000/v1]\napi_keys: [sk-x]\n",
        )
        .unwrap();
        let s = c.redacted_json().to_string();
        assert!(!s.contains("s3cret") && !s.contains("sk-x"), "{s}");
        assert!(s.contains("http://<redacted>@127.0.0.1:8000/v1"), "{s}");
        // A checkpoint's copy cannot be run as it is: the error says to give the base again.
        let e = c.without_secrets().validate().unwrap_err();
        assert_eq!(e.0, "api_bases");
        assert!(e.1.contains("--set"), "{}", e.1);
        let e = parse("backend: llm\napi_bases: [http://127.0.0.1:8000/v1?api-version=1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("query"), "{e}");
    }

    /// `serde_json::to_value` widened `0.7f32` to `0.699999988079071` (the f64 nearest
    /// 0.699999988079071044921875); as written it is `0.7`. An f64 setting keeps its exact bits
    /// through the text, also for 17-digit values outside the parser's fast path (`0.1 + 0.2` =
    /// 0.30000000000000004, 1/3, 1e23) and the extremes.
    #[test]
    fn f32_settings_serialise_as_written_and_f64_exactly() {
        let c = parse("memory:\n  enhance_gate: 0.7\n  newest_bonus: 0.15\n").unwrap();
        let v = c.to_json();
        assert_eq!(v["memory"]["enhance_gate"].as_f64(), Some(0.7));
        assert_eq!(v["memory"]["newest_bonus"].as_f64(), Some(0.15));
        assert_eq!(v["memory"]["importance_gate"].as_f64(), Some(0.62));
        assert!(!v.to_string().contains("0.699999988079071"));
        for x in [0.1 + 0.2, 1.0 / 3.0, 1e23, 5e-324, f64::MAX, 0.001] {
            let mut c = c.clone();
            c.lr = x;
            let back = c.to_json()["lr"].as_f64().unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    /// 9 levels of 9 aliases (9^9 ≈ 387 million nodes if expanded, 300 bytes of text) are
    /// refused by the reader's node budget (25,000) instead of being expanded for seconds.
    #[test]
    fn alias_bomb_is_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ('a'..'i').zip('b'..='i') {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert!(parse(&bomb).is_err());
    }

    #[test]
    fn manifest_redacts_keys() {
        let c = parse("api_keys: [sk-secret-1, sk-secret-2]\n").unwrap();
        let s = c.redacted_json().to_string();
        assert!(!s.contains("sk-secret"), "{s}");
        assert!(s.contains("<redacted>"));
    }
}
