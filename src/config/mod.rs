//! Run configuration (YAML). Accepts every key of RecAgent's `config/config.yaml` (spec §6) plus
//! recagent's own keys. The core owns the keys below ([`SimConfig`]); every other top-level key
//! belongs to a plugin's settings ([`crate::plugin::Settings`]) and is kept in
//! [`SimConfig::extra`] until the plugin claims it when the simulation is built. Unknown and
//! duplicate keys are errors naming the key and line; values out of range are errors naming the
//! key, the value and the allowed range.
//!
//! Relative paths in the file resolve against the directory that holds the file.
//!
//! - [`sections`]: the value and section types (recommender model, backend, `llm_options:`);
//! - [`validate`]: range checks and the parser-message helpers.

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

pub use sections::{BackendKind, ExecutionMode, LlmOptions, Protocol, RecModel, StructuredOutput};
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
    /// RecAgent's model-weights directory. Accepted; checkpoints are a later feature.
    pub ckpt_path: Option<PathBuf>,
    /// RecAgent's title-index directory. Accepted; unused by this version.
    pub index_name: Option<PathBuf>,
    /// RecAgent's checkpoint directory. Accepted; checkpoints are a later feature.
    pub simulator_dir: Option<PathBuf>,
    /// RecAgent's checkpoint to restore. Accepted; must be empty in this version.
    pub simulator_restore_file_name: Option<String>,
    /// Root seed; every random stream is derived from it.
    pub seed: u64,
    /// Recommender model.
    pub rec_model: RecModel,
    /// MF training epochs (RecAgent key; used when MF is available).
    pub epoch_num: u32,
    /// MF mini-batch size (RecAgent key).
    pub batch_size: u32,
    /// MF embedding dimension (RecAgent key).
    pub embedding_size: u32,
    /// MF learning rate (RecAgent key).
    pub lr: f64,
    /// Number of rounds to run; 1..=1,000,000.
    pub round: u32,
    /// Number of agents: the first `agent_num` users by id. Empty = every user in the file.
    pub agent_num: Option<u32>,
    /// LLM sampling temperature; 0..=2.
    pub temperature: f64,
    /// LLM maximum output tokens; 1..=100,000.
    pub max_token: u32,
    /// `serial` or `parallel`; same outputs either way.
    pub execution_mode: ExecutionMode,
    /// Simulated time between rounds (`5h`; units s, m, h, d, M, y).
    pub interval: Interval,
    /// LLM retries per request; 0..=20.
    pub max_retries: u32,
    /// RecAgent key, unused there too.
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
    /// Behaviour backend: `offline` (default), `llm`, `replay`.
    pub backend: BackendKind,
    /// Directory for the default output files (messages, interactions, manifest, log).
    pub output_dir: PathBuf,
    /// Start of round 1 (`YYYY-mm-dd HH:MM:SS`; RecAgent starts at 08:00 of the run's day).
    pub start_time: String,
    /// Length of the watched and heard histories (RecAgent: 10); 1..=1000.
    pub history_size: u32,
    /// Write a checkpoint every this many rounds (0 = never). Into `simulator_dir` when set, else
    /// `<output_dir>/checkpoints`.
    pub checkpoint_every: u32,
    /// Write every message to the messages file (`true`), or only counts (`false`, for huge runs).
    pub write_messages: bool,
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
            checkpoint_every: 0,
            write_messages: true,
            offline: OfflineParams::default(),
            rec_init_path: None,
            rec_external_url: None,
            memory: crate::memory::MemoryParams::default(),
            transcript_path: None,
            llm_options: LlmOptions::default(),
            base_dir: PathBuf::from("."),
            extra: BTreeMap::new(),
            source: None,
            overridden: BTreeSet::new(),
        }
    }
}

/// The default configuration file, embedded so `recagent run` works from any directory.
pub const EMBEDDED_CONFIG: &str = include_str!("../../config/config.yaml");

/// Marker `base_dir` for a configuration whose paths point into the embedded demo data.
pub const EMBEDDED_BASE: &str = "<embedded>";

impl SimConfig {
    /// Reads, parses and validates a configuration file; relative paths resolve against its directory.
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
        Self::from_yaml(&text, &path.display().to_string(), base)
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
        let mut cfg: SimConfig =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(parse_error)?;
        // Every top-level key with its value, for the ones the core does not own.
        let all: Option<BTreeMap<String, serde_json::Value>> =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(parse_error)?;
        let core = core_keys();
        cfg.extra = all
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !core.contains(k))
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
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let core = core_keys();
        let mut value = self.to_json();
        let mut overridden = self.overridden.clone();
        for (key, raw) in overrides {
            let what = format!("{key}={raw}");
            let v: serde_json::Value = serde_saphyr::from_str(raw).map_err(|e| {
                ConfigError::Override(what.clone(), tidy_parse_message(&e.to_string(), "--set"))
            })?;
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
            *slot = v;
            overridden.insert(parts[0].to_string());
            if is_core {
                // Deserialise after each override so a type error names its key.
                serde_json::from_value::<SimConfig>(value.clone())
                    .map_err(|e| ConfigError::Override(what.clone(), e.to_string()))?;
            }
        }
        let mut cfg = Self::from_json_unvalidated(value, "command line")
            .map_err(|e| ConfigError::Override(String::new(), e.to_string()))?;
        cfg.base_dir = self.base_dir.clone();
        cfg.source = self.source.clone();
        cfg.overridden = overridden;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: "command line".into(),
                line: None,
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Where `key` (top level or dotted) was set, for errors: `("command line", None)` for an
    /// overridden key, else the file and the key's line in it (when found).
    pub fn origin_of(&self, key: &str) -> (String, Option<usize>) {
        let top = key.split('.').next().unwrap_or(key);
        if self.overridden.contains(top) {
            return ("command line".into(), None);
        }
        match &self.source {
            Some(s) => (s.origin.clone(), key_line(&s.text, key)),
            None => ("config".into(), None),
        }
    }

    /// Fails for the first key of [`SimConfig::extra`] that is not in `claimed` (a typo, or a
    /// plugin that is not registered), naming it, its line and the nearest known key.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for a key from the file, [`ConfigError::Override`] for one set on
    /// the command line.
    pub fn check_claimed(&self, claimed: &BTreeSet<String>) -> Result<(), ConfigError> {
        let Some(key) = self.extra.keys().find(|k| !claimed.contains(*k)) else {
            return Ok(());
        };
        let known = core_keys().iter().chain(claimed);
        let near = known
            .filter(|k| strsim::levenshtein(k, key) <= 2)
            .min_by_key(|k| (strsim::levenshtein(k, key), (*k).clone()));
        let hint = near.map_or_else(String::new, |k| format!("; did you mean `{k}`?"));
        let (origin, line) = self.origin_of(key);
        if self.overridden.contains(key) {
            return Err(ConfigError::Override(
                key.clone(),
                format!("unknown key `{key}`{hint}"),
            ));
        }
        Err(ConfigError::Parse {
            origin,
            message: match line {
                Some(l) => format!("line {l}: unknown field `{key}`{hint}"),
                None => format!("unknown field `{key}`{hint}"),
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
        assert!(err.contains("`round`") && err.contains("line 2"), "{err}");
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
