//! The Python exceptions, and the translation of every engine error into one of them.
//!
//! All derive from `recagent.RecagentError`. A [`ConfigError`] keeps the key, line, origin and
//! message of a configuration error as attributes; a `RunExistsError` the folder and the files
//! found there; a `RecommenderError` the Python recommender's method and arguments.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use recagent::checkpoint::CheckpointError as EngineCheckpointError;
use recagent::config::ConfigError as EngineConfigError;
use recagent::sim::SimError;

pyo3::create_exception!(
    recagent,
    RecagentError,
    PyException,
    "Base class of every error the recagent engine raises."
);
pyo3::create_exception!(
    recagent,
    ConfigError,
    RecagentError,
    "A bad configuration: attributes `key` (the offending key, or None), `line` (1-based line in the file, or None), `origin` (file, `<embedded config>`, `override`) and `message`."
);
pyo3::create_exception!(
    recagent,
    DataError,
    RecagentError,
    "Bad input data (item, user, relationship or warm-start file): the message names the file and line."
);
pyo3::create_exception!(
    recagent,
    RunExistsError,
    RecagentError,
    "The output folder holds an earlier run: attributes `dir` and `files`. Pass overwrite=True or another output_dir."
);
pyo3::create_exception!(
    recagent,
    CheckpointError,
    RecagentError,
    "A checkpoint could not be written, read or resumed (damaged, another version, changed data, another run)."
);
pyo3::create_exception!(
    recagent,
    SimulationError,
    RecagentError,
    "The simulation could not be built or a round failed (an output write, the LLM backend, ...)."
);
pyo3::create_exception!(
    recagent,
    RecommenderError,
    RecagentError,
    "A Python recommender raised or returned something unusable: attributes `method` ('recommend' or 'fit'), `user`, `k`; the original exception is `__cause__`. The failed round is rolled back."
);

/// A `ConfigError` with its attributes.
pub fn config_error(
    py: Python<'_>,
    message: String,
    key: Option<String>,
    line: Option<usize>,
    origin: Option<String>,
    detail: String,
) -> PyErr {
    let e = ConfigError::new_err(message);
    let v = e.value(py);
    let _ = v.setattr("key", key);
    let _ = v.setattr("line", line);
    let _ = v.setattr("origin", origin);
    let _ = v.setattr("message", detail);
    e
}

/// Translates a configuration error.
pub fn from_config(py: Python<'_>, e: &EngineConfigError) -> PyErr {
    let text = e.to_string();
    match e {
        EngineConfigError::Invalid {
            origin,
            line,
            key,
            message,
        } => config_error(
            py,
            text,
            Some(key.clone()),
            *line,
            Some(origin.clone()),
            message.clone(),
        ),
        EngineConfigError::Override(what, message) => {
            let key = what.split_once('=').map_or(what.as_str(), |(k, _)| k);
            config_error(
                py,
                format!(
                    "{key}={}: {message}",
                    &what[key.len()..].trim_start_matches('=')
                ),
                Some(key.to_string()),
                None,
                Some("override".into()),
                message.clone(),
            )
        }
        EngineConfigError::Parse { origin, message } => {
            // The parser's message often starts with `line N`.
            let line = message
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .filter(|_| message.contains("line "))
                .and_then(|n| n.parse().ok());
            let key = message
                .split('`')
                .nth(1)
                .filter(|k| !k.contains(' '))
                .map(str::to_string);
            config_error(py, text, key, line, Some(origin.clone()), message.clone())
        }
        EngineConfigError::Read { path, .. } => config_error(
            py,
            format!(
                "{text}: {}",
                std::error::Error::source(e).map_or_else(String::new, |s| s.to_string())
            ),
            None,
            None,
            Some(path.display().to_string()),
            "cannot read config".into(),
        ),
        _ => config_error(py, text.clone(), None, None, None, text),
    }
}

/// The full message of an error and its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Translates a simulation error.
pub fn from_sim(py: Python<'_>, e: &SimError) -> PyErr {
    match e {
        SimError::Config(c) => from_config(py, c),
        SimError::Data(_) | SimError::Catalog(_) | SimError::RecData(_) => {
            DataError::new_err(chain(e))
        }
        SimError::RunExists { dir, files, .. } => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let err = RunExistsError::new_err(format!(
                "{} holds an earlier run ({}): pass overwrite=True to replace it (that run's manifest, messages, interactions, metrics, log, report and checkpoints are removed; other files stay), or choose another output_dir",
                dir.display(),
                names.join(", ")
            ));
            let v = err.value(py);
            let _ = v.setattr("dir", dir.display().to_string());
            let _ = v.setattr("files", names);
            err
        }
        _ => SimulationError::new_err(chain(e)),
    }
}

/// Translates a checkpoint error.
pub fn from_checkpoint(py: Python<'_>, e: &EngineCheckpointError) -> PyErr {
    match e {
        EngineCheckpointError::Sim(s) => from_sim(py, s),
        EngineCheckpointError::Setting { key, reason } => config_error(
            py,
            format!("{key}: cannot change mid-run: {reason}"),
            Some(key.clone()),
            None,
            Some("override".into()),
            (*reason).to_string(),
        ),
        _ => CheckpointError::new_err(chain(e)),
    }
}

pyo3::create_exception!(
    recagent,
    InterventionError,
    RecagentError,
    "An intervention (interview, send_message, edit_profile, set) was refused and changed nothing: an unknown agent, a value out of range, or a setting that cannot change mid-run (the message says why)."
);

/// The Python exception for a refused intervention: a bad value for a setting is a
/// `ConfigError` (with its key), anything else an `InterventionError`.
pub fn from_intervention(py: Python<'_>, e: recagent::intervention::InterventionError) -> PyErr {
    use recagent::intervention::InterventionError as E;
    match e {
        E::Config(c) => from_config(py, &c),
        E::File(f) => SimulationError::new_err(f.to_string()),
        other => InterventionError::new_err(other.to_string()),
    }
}

/// Registers the exception classes in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RecagentError", py.get_type::<RecagentError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("RunExistsError", py.get_type::<RunExistsError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("SimulationError", py.get_type::<SimulationError>())?;
    m.add("RecommenderError", py.get_type::<RecommenderError>())?;
    m.add("InterventionError", py.get_type::<InterventionError>())?;
    Ok(())
}
