//! Python bindings of recagent: the extension module `recagent._recagent`, re-exported by the
//! Python package `recagent` (`py/recagent/__init__.py`, typed in `_recagent.pyi`).
//!
//! [`Simulation`] wraps a [`recagent::sim::Sim`]: built from a configuration (a file, the
//! embedded default, a dict, plus `key=value` overrides, the CLI's `--set`), stepped a round at
//! a time with the GIL released, read as lists of dicts, checkpointed, resumed and branched with
//! the library's own checkpoint code. A Python object can be the recommender ([`model`]).
//! Everything the engine reports as an error is a Python exception ([`errors`]).

mod errors;
mod model;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use recagent::checkpoint;
use recagent::clock::{format_timestamp, SimClock};
use recagent::components::{Histories, Memory, Profile, Relationships};
use recagent::config::SimConfig;
use recagent::ids::UserId;
use recagent::io::output::{OutputPaths, OutputSink};
use recagent::sim::{Lineage, OutputError, Sim, SimBuilder, SimTick};

use errors::{from_checkpoint, from_config, from_sim, SimulationError};
use model::{CallStats, ErrorSlot, PyModel};

/// Keys naming data files: a config dict that names one is read like a file (paths relative to
/// the working directory); one that names none overrides the embedded default (demo data).
const DATA_KEYS: &[&str] = &[
    "item_path",
    "user_path",
    "relationship_path",
    "rec_init_path",
];

/// `(key, YAML text)` overrides and the Python recommender, if one was given.
type Overrides = (Vec<(String, String)>, Option<Py<PyAny>>);

/// Overrides from Python keyword arguments: `(key, YAML text)` pairs as `--set key=value`
/// takes them (values written as JSON, which YAML reads), nested dicts flattened to dotted keys;
/// and the Python recommender when `rec_model` is an object rather than a model name.
fn overrides_from(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Overrides> {
    let json = py.import("json")?;
    let mut out = Vec::new();
    let mut model = None;
    fn walk(
        json: &Bound<'_, PyModule>,
        prefix: &str,
        d: &Bound<'_, PyDict>,
        out: &mut Vec<(String, String)>,
    ) -> PyResult<()> {
        for (k, v) in d.iter() {
            let k: String = k.extract()?;
            let key = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            if let Ok(sub) = v.cast::<PyDict>() {
                walk(json, &key, sub, out)?;
            } else {
                let text: String = json
                    .call_method1("dumps", (v,))
                    .map_err(|e| {
                        PyValueError::new_err(format!("{key}: the value is not plain data ({e})"))
                    })?
                    .extract()?;
                out.push((key, text));
            }
        }
        Ok(())
    }
    if let Some(kw) = kwargs {
        let rest = PyDict::new(py);
        for (k, v) in kw.iter() {
            let name: String = k.extract()?;
            if name == "rec_model" && !v.is_instance_of::<pyo3::types::PyString>() && !v.is_none() {
                model = Some(v.unbind());
            } else {
                rest.set_item(name, v)?;
            }
        }
        walk(&json, "", &rest, &mut out)?;
    }
    Ok((out, model))
}

/// A CSV file as a list of dicts: ints and floats parsed, empty cells `None`, the rest strings.
fn read_csv(py: Python<'_>, path: &Path) -> PyResult<Py<PyList>> {
    let list = PyList::empty(py);
    if !path.exists() {
        return Ok(list.unbind());
    }
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| SimulationError::new_err(format!("{}: {e}", path.display())))?;
    let headers = r
        .headers()
        .map_err(|e| SimulationError::new_err(format!("{}: {e}", path.display())))?
        .clone();
    for rec in r.records() {
        let rec = rec.map_err(|e| SimulationError::new_err(format!("{}: {e}", path.display())))?;
        let d = PyDict::new(py);
        for (h, v) in headers.iter().zip(rec.iter()) {
            if v.is_empty() {
                d.set_item(h, py.None())?;
            } else if let Ok(i) = v.parse::<i64>() {
                d.set_item(h, i)?;
            } else if let Ok(f) = v.parse::<f64>() {
                d.set_item(h, f)?;
            } else {
                d.set_item(h, v)?;
            }
        }
        list.append(d)?;
    }
    Ok(list.unbind())
}

/// A running simulation (see the package docs and `recagent/_recagent.pyi`).
///
/// Not shareable between threads: use it from the thread that made it.
#[pyclass(unsendable, module = "recagent")]
pub struct Simulation {
    sim: Sim,
    ckpt_dir: PathBuf,
    /// The Python recommender and the slot its errors land in.
    model: Option<(Py<PyAny>, ErrorSlot)>,
    /// Its call counts and times.
    stats: Arc<CallStats>,
}

impl Simulation {
    fn build(
        py: Python<'_>,
        cfg: SimConfig,
        output_dir: Option<PathBuf>,
        overwrite: bool,
        model: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let paths = OutputPaths::for_run(&cfg, output_dir.as_deref(), None, None, None);
        let ckpt_dir = paths.checkpoint_dir(&cfg);
        let mut b = SimBuilder::new(cfg)
            .outputs(paths)
            .checkpoint_dir(ckpt_dir.clone())
            .overwrite(overwrite);
        let slot: ErrorSlot = Arc::new(Mutex::new(None));
        let stats = Arc::new(CallStats::default());
        if let Some(m) = &model {
            b = b.recommender(Box::new(PyModel::new(
                m.bind(py),
                slot.clone(),
                stats.clone(),
            )?));
        }
        let sim = b.build().map_err(|e| from_sim(py, &e))?;
        let mut s = Self {
            sim,
            ckpt_dir,
            model: model.map(|m| (m, slot)),
            stats,
        };
        s.take_model_error()?;
        Ok(s)
    }

    fn take_model_error(&mut self) -> PyResult<()> {
        if let Some((_, slot)) = &self.model {
            if let Some(e) = slot.lock().ok().and_then(|mut g| g.take()) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn paths(&self) -> OutputPaths {
        self.sim.world().resource::<OutputSink>().paths.clone()
    }

    /// Runs up to `n` rounds (not past the configured `round`), with the checkpoints and the
    /// manifest the CLI writes; a Python recommender's failure rolls its round back.
    fn advance(&mut self, py: Python<'_>, n: u32, progress: bool) -> PyResult<u32> {
        let total = self.sim.config().round;
        let target = self.sim.round().saturating_add(n).min(total);
        if self.sim.round() >= total {
            return Err(SimulationError::new_err(format!(
                "all {total} rounds of the configuration have run: build the simulation with round=N (or Simulation.resume(checkpoint, round=N)) to run more"
            )));
        }
        let bar = if progress {
            Some(Progress::new(py, self.sim.round(), target)?)
        } else {
            None
        };
        let every = self.sim.config().checkpoint_every;
        self.sim
            .write_manifest("running")
            .map_err(|e| from_sim(py, &e))?;
        while self.sim.round() < target {
            // A Python model can fail mid-round: keep what is needed to put the round back.
            let saved = match &self.model {
                Some(_) => Some(self.snapshot(py)?),
                None => None,
            };
            let t = std::time::Instant::now();
            let world = self.sim.world_mut();
            let stepped = py.detach(|| {
                world.run_schedule(SimTick);
                world.resource_mut::<OutputError>().0.take()
            });
            if let Some(e) = stepped {
                let _ = self
                    .sim
                    .write_manifest(&format!("failed in round {}", self.sim.round()));
                return Err(from_sim(py, &e));
            }
            if let Err(e) = self.take_model_error() {
                if let Some(s) = saved {
                    self.rollback(py, s)?;
                }
                let _ = self
                    .sim
                    .write_manifest(&format!("interrupted after round {}", self.sim.round()));
                return Err(e);
            }
            let round = self.sim.round();
            if every > 0 && round.is_multiple_of(every) {
                let path = self.ckpt_dir.join(format!("round-{round:06}.ckpt"));
                self.save_checkpoint(py, &path)?;
            }
            self.sim
                .write_manifest("running")
                .map_err(|e| from_sim(py, &e))?;
            if let Some(b) = &bar {
                b.update(py, round, target, t.elapsed().as_secs_f64())?;
            }
            if let Err(e) = py.check_signals() {
                let _ = self
                    .sim
                    .write_manifest(&format!("interrupted after round {round}"));
                return Err(e);
            }
        }
        if let Some(b) = &bar {
            b.close(py)?;
        }
        let status = if self.sim.round() >= total {
            "finished".to_string()
        } else {
            format!("interrupted after round {}", self.sim.round())
        };
        self.sim
            .write_manifest(&status)
            .map_err(|e| from_sim(py, &e))?;
        Ok(self.sim.round())
    }

    fn snapshot(
        &mut self,
        py: Python<'_>,
    ) -> PyResult<(checkpoint::State, recagent::io::output::OutputOffsets)> {
        let world = self.sim.world_mut();
        let offsets = world
            .resource_mut::<OutputSink>()
            .offsets()
            .map_err(|e| SimulationError::new_err(format!("output offsets: {e}")))?;
        let state = checkpoint::capture(world).map_err(|e| from_checkpoint(py, &e))?;
        Ok((state, offsets))
    }

    /// Puts the world and the output files back as they were before the failed round.
    fn rollback(
        &mut self,
        py: Python<'_>,
        (state, offsets): (checkpoint::State, recagent::io::output::OutputOffsets),
    ) -> PyResult<()> {
        let write_messages = self.sim.config().write_messages;
        let paths = self.paths();
        // The new sink reopens the files and truncates them; the old one is dropped first.
        self.sim.world_mut().remove_resource::<OutputSink>();
        let parquet = self.sim.config().interactions_parquet;
        let sink = OutputSink::resume(paths, write_messages, offsets)
            .and_then(|s| s.with_parquet(parquet, self.sim.round()))
            .map_err(|e| from_sim(py, &recagent::sim::SimError::File(e)))?;
        self.sim.world_mut().insert_resource(sink);
        checkpoint::restore(&mut self.sim, state).map_err(|e| from_checkpoint(py, &e))?;
        // The re-fit on the restored log may itself fail: that error is the one raised next.
        if let Some((_, slot)) = &self.model {
            if let Ok(mut g) = slot.lock() {
                g.take();
            }
        }
        Ok(())
    }

    fn save_checkpoint(&mut self, py: Python<'_>, path: &Path) -> PyResult<()> {
        let parent = self
            .sim
            .world()
            .get_resource::<Lineage>()
            .and_then(|l| l.parent.clone());
        checkpoint::save(&mut self.sim, path, parent.as_deref())
            .map_err(|e| from_checkpoint(py, &e))?;
        self.sim
            .world_mut()
            .get_resource_or_insert_with(Lineage::default)
            .last = Some(path.to_path_buf());
        Ok(())
    }

    fn resumed(
        py: Python<'_>,
        path: &Path,
        out: Option<&Path>,
        overwrite: bool,
        kwargs: Option<&Bound<'_, PyDict>>,
        inherited: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let (overrides, given) = overrides_from(py, kwargs)?;
        let model = given.or(inherited);
        let (header, _) = checkpoint::load(path).map_err(|e| from_checkpoint(py, &e))?;
        if model.is_none() && ran_python_model(&header) {
            return Err(errors::config_error(
                py,
                format!("{}: this run's recommender was a Python object, whose state is not checkpointed: pass it again, Simulation.resume(path, rec_model=model) (it is re-fitted on the restored interactions)", path.display()),
                Some("rec_model".into()),
                None,
                Some("checkpoint".into()),
                "a Python recommender must be passed again on resume".into(),
            ));
        }
        let slot: ErrorSlot = Arc::new(Mutex::new(None));
        let stats = Arc::new(CallStats::default());
        let adapter = match &model {
            Some(m) => Some(PyModel::new(m.bind(py), slot.clone(), stats.clone())?),
            None => None,
        };
        let (mut sim, _) = checkpoint::resume_with(path, &overrides, out, |b| {
            let b = b.overwrite(overwrite);
            match adapter {
                Some(a) => b.recommender(Box::new(a)),
                None => b,
            }
        })
        .map_err(|e| from_checkpoint(py, &e))?;
        sim.world_mut().insert_resource(Lineage {
            parent: Some(path.to_path_buf()),
            last: None,
        });
        let ckpt_dir = match out {
            Some(d) => d.join("checkpoints"),
            None => path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        };
        let mut s = Self {
            sim,
            ckpt_dir,
            model: model.map(|m| (m, slot)),
            stats,
        };
        s.take_model_error()?;
        Ok(s)
    }
}

/// Whether the run folder of a checkpoint says its recommender was a Python object.
fn ran_python_model(header: &checkpoint::Header) -> bool {
    std::fs::read(&header.outputs.manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|m| m["recommender"] == "Python")
}

/// A progress display: tqdm when installed, else a line per round on stderr.
struct Progress(Option<Py<PyAny>>);

impl Progress {
    fn new(py: Python<'_>, at: u32, target: u32) -> PyResult<Self> {
        let bar = match py.import("tqdm") {
            Ok(m) => {
                let kw = PyDict::new(py);
                kw.set_item("total", target)?;
                kw.set_item("initial", at)?;
                kw.set_item("unit", "round")?;
                kw.set_item("desc", "recagent")?;
                Some(m.getattr("tqdm")?.call((), Some(&kw))?.unbind())
            }
            Err(_) => None,
        };
        Ok(Self(bar))
    }
    fn update(&self, py: Python<'_>, round: u32, target: u32, secs: f64) -> PyResult<()> {
        match &self.0 {
            Some(b) => {
                b.bind(py).call_method1("update", (1,))?;
            }
            None => {
                let err = py.import("sys")?.getattr("stderr")?;
                err.call_method1(
                    "write",
                    (format!(
                        "recagent: round {round}/{target} done ({secs:.2} s)\n"
                    ),),
                )?;
                err.call_method0("flush")?;
            }
        }
        Ok(())
    }
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(b) = &self.0 {
            b.bind(py).call_method0("close")?;
        }
        Ok(())
    }
}

/// The configuration a path (or the embedded default) and overrides name.
fn load_config(
    py: Python<'_>,
    path: Option<PathBuf>,
    overrides: &[(String, String)],
) -> PyResult<SimConfig> {
    let base = match path {
        Some(p) => SimConfig::load(&p),
        None => SimConfig::embedded(),
    }
    .map_err(|e| from_config(py, &e))?;
    base.with_overrides(overrides)
        .map_err(|e| from_config(py, &e))
}

impl Simulation {
    /// Applies `iv` at the boundary before the next round (`recagent::intervention`), with the
    /// GIL released (an interview may wait on an LLM): the world is `Send`, the `Sim` is not.
    fn intervene(
        &mut self,
        py: Python<'_>,
        iv: recagent::intervention::Intervention,
    ) -> PyResult<Option<String>> {
        let round = self.sim.round() + 1;
        let world = self.sim.world_mut();
        py.detach(move || recagent::intervention::apply_and_record(world, round, iv))
            .map_err(|e| errors::from_intervention(py, e))
    }
}

/// A Python value as a configuration would write it (`3`, `0.5`, `MF`, `true`); anything
/// else (a recommender object, a list) is refused.
fn setting_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.extract::<bool>() {
        return Ok(b.to_string());
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(s);
    }
    if v.extract::<i64>().is_ok() || v.extract::<f64>().is_ok() {
        return Ok(v.str()?.to_string());
    }
    Err(errors::InterventionError::new_err(format!(
        "set() takes values as a configuration writes them (a name or a number, e.g. rec_model=\"MF\"), not {}: a Python recommender is given when the simulation is built, resumed or branched (rec_model=obj)",
        v.get_type().name()?
    )))
}

#[pymethods]
impl Simulation {
    /// Builds a simulation from a configuration dict (see `_recagent.pyi`).
    #[new]
    #[pyo3(signature = (config=None, *, output_dir=None, overwrite=false, **overrides))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyDict>>,
        output_dir: Option<PathBuf>,
        overwrite: bool,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let all = PyDict::new(py);
        if let Some(c) = config {
            all.update(c.as_mapping())?;
        }
        if let Some(o) = overrides {
            all.update(o.as_mapping())?;
        }
        let names_data = match config {
            Some(c) => DATA_KEYS.iter().any(|k| c.contains(*k).unwrap_or(false)),
            None => false,
        };
        let (sets, model) = overrides_from(py, Some(&all))?;
        let cfg = if names_data {
            // Read like a file (JSON is YAML) whose relative paths are the working directory's.
            let plain = PyDict::new(py);
            if let Some(c) = config {
                plain.update(c.as_mapping())?;
            }
            if model.is_some() {
                plain.del_item("rec_model").ok();
            }
            let text: String = py
                .import("json")?
                .call_method1("dumps", (plain,))?
                .extract()?;
            let cfg = SimConfig::from_yaml(&text, "<config dict>", PathBuf::from("."))
                .map_err(|e| from_config(py, &e))?;
            // The overrides given as keywords still apply on top.
            let (kw_sets, _) = overrides_from(py, overrides)?;
            cfg.with_overrides(&kw_sets)
                .map_err(|e| from_config(py, &e))?
        } else {
            load_config(py, None, &sets)?
        };
        Self::build(py, cfg, output_dir, overwrite, model)
    }

    /// Builds a simulation from a config file (None: the embedded default) and overrides.
    #[staticmethod]
    #[pyo3(signature = (path=None, *, output_dir=None, overwrite=false, **overrides))]
    fn from_config(
        py: Python<'_>,
        path: Option<PathBuf>,
        output_dir: Option<PathBuf>,
        overwrite: bool,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (sets, model) = overrides_from(py, overrides)?;
        let cfg = load_config(py, path, &sets)?;
        Self::build(py, cfg, output_dir, overwrite, model)
    }

    /// Resumes a run from one of its checkpoints, writing on in its folder.
    #[staticmethod]
    #[pyo3(signature = (path, **overrides))]
    fn resume(
        py: Python<'_>,
        path: PathBuf,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Self::resumed(py, &path, None, false, overrides, None)
    }

    /// Runs one round. Returns the round number now completed.
    fn step(&mut self, py: Python<'_>) -> PyResult<u32> {
        self.advance(py, 1, false)
    }

    /// Runs `rounds` more rounds (None: every remaining round of the configuration).
    #[pyo3(signature = (rounds=None, progress=true))]
    fn run(&mut self, py: Python<'_>, rounds: Option<u32>, progress: bool) -> PyResult<u32> {
        self.advance(py, rounds.unwrap_or(u32::MAX), progress)
    }

    /// Rounds completed (0 before the first step).
    #[getter]
    fn round(&self) -> u32 {
        self.sim.round()
    }

    /// Rounds the configuration plans (`round`).
    #[getter]
    fn rounds(&self) -> u32 {
        self.sim.config().round
    }

    /// The simulated clock: the start of the latest round run (`start_time` before the first),
    /// `YYYY-MM-DD HH:MM:SS` as in the outputs.
    #[getter]
    fn time(&self) -> String {
        format_timestamp(self.sim.world().resource::<SimClock>().now())
    }

    /// The run folder (where the manifest is).
    #[getter]
    fn output_dir(&self) -> PathBuf {
        self.paths()
            .manifest
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The resolved configuration (API keys redacted), as a dict.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let text = self.sim.config().redacted_json().to_string();
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// The catalogue: one dict per item, id order.
    fn items(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let cat = self.sim.world().resource::<recagent::catalog::Catalog>();
        let names = cat.genre_names();
        let list = PyList::empty(py);
        for i in 0..cat.len() as u32 {
            let it = cat.get(i);
            let d = PyDict::new(py);
            d.set_item("item_id", it.id.0)?;
            d.set_item("title", &*it.title)?;
            let g: Vec<&str> = (0..names.len())
                .filter(|&k| (it.genres.0 >> k) & 1 == 1)
                .map(|k| names[k].as_str())
                .collect();
            d.set_item("genres", g)?;
            d.set_item("description", &*it.description)?;
            list.append(d)?;
        }
        Ok(list.unbind())
    }

    /// Every agent's profile and history sizes, ascending id.
    fn agents(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let world = self.sim.world_mut();
        let mut q = world.query::<(&UserId, &Profile, &Histories, &Relationships)>();
        let mut rows: Vec<_> = q.iter(world).collect();
        rows.sort_by_key(|r| *r.0);
        let list = PyList::empty(py);
        for (id, p, h, r) in rows {
            let d = profile_dict(py, *id, p)?;
            d.set_item("watched", h.watched.len())?;
            d.set_item("heard", h.heard.len())?;
            d.set_item("contacts", r.0.len())?;
            list.append(d)?;
        }
        Ok(list.unbind())
    }

    /// One agent: profile, watched and heard histories, contacts and memories.
    fn agent(&mut self, py: Python<'_>, agent_id: u32) -> PyResult<Py<PyDict>> {
        let world = self.sim.world_mut();
        let mut q = world.query::<(&UserId, &Profile, &Histories, &Relationships, &Memory)>();
        let Some((id, p, h, r, m)) = q.iter(world).find(|x| x.0 .0 == agent_id) else {
            let n = world.resource::<recagent::world::Roster>().ids.len();
            return Err(PyKeyError::new_err(format!(
                "no agent {agent_id}: this simulation has {n} agents (see agents())"
            )));
        };
        let cat = world.resource::<recagent::catalog::Catalog>();
        let title = |i| cat.by_id(i).map_or("", |it| &*it.title).to_string();
        let d = profile_dict(py, *id, p)?;
        let watched = PyList::empty(py);
        for &(item, rating) in &h.watched {
            let w = PyDict::new(py);
            w.set_item("item_id", item.0)?;
            w.set_item("title", title(item))?;
            w.set_item("rating", (rating > 0).then_some(rating))?;
            watched.append(w)?;
        }
        let heard = PyList::empty(py);
        for &(item, round) in &h.heard {
            let w = PyDict::new(py);
            w.set_item("item_id", item.0)?;
            w.set_item("title", title(item))?;
            w.set_item("round", round)?;
            heard.append(w)?;
        }
        let contacts = PyList::empty(py);
        for c in &r.0 {
            let w = PyDict::new(py);
            w.set_item("agent_id", c.user.0)?;
            w.set_item("closeness", c.closeness)?;
            contacts.append(w)?;
        }
        d.set_item("watched", watched)?;
        d.set_item("heard", heard)?;
        d.set_item("contacts", contacts)?;
        d.set_item("memories", m.recalled(usize::MAX / 2))?;
        Ok(d.unbind())
    }

    /// The rows of `interaction.csv` so far, as dicts.
    fn interactions(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        read_csv(py, &self.paths().interactions)
    }

    /// The per-round rows of `metrics.csv`, as dicts (columns: `recagent.METRIC_COLUMNS`).
    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let p = self.paths();
        let dir = p.interactions.parent().unwrap_or(Path::new(""));
        read_csv(py, &dir.join("metrics.csv"))
    }

    /// The messages so far (every round, or one), as dicts.
    #[pyo3(signature = (round=None))]
    fn messages(&self, py: Python<'_>, round: Option<u32>) -> PyResult<Py<PyList>> {
        let list = PyList::empty(py);
        let path = self.paths().messages_stream();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(list.unbind());
        };
        let json = py.import("json")?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v = json.call_method1("loads", (line,))?;
            if let Some(r) = round {
                let got: Option<u32> = v.get_item("round").ok().and_then(|x| x.extract().ok());
                if got != Some(r) {
                    continue;
                }
            }
            list.append(v)?;
        }
        Ok(list.unbind())
    }

    /// Asks agent `agent` `question` now, between rounds; returns its answer (see the stub).
    fn interview(&mut self, py: Python<'_>, agent: u32, question: &str) -> PyResult<String> {
        let iv = recagent::intervention::Intervention::Interview {
            agent,
            question: question.into(),
        };
        Ok(self.intervene(py, iv)?.unwrap_or_default())
    }

    /// Writes `text` into agent `agent`'s memory (see the stub).
    fn send_message(&mut self, py: Python<'_>, agent: u32, text: &str) -> PyResult<()> {
        let iv = recagent::intervention::Intervention::Message {
            agent,
            text: text.into(),
        };
        self.intervene(py, iv).map(drop)
    }

    /// Changes agent `agent`'s profile fields (see the stub).
    #[pyo3(signature = (agent, **fields))]
    fn edit_profile(
        &mut self,
        py: Python<'_>,
        agent: u32,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let json = match fields {
            Some(f) => py
                .import("json")?
                .call_method1("dumps", (f,))?
                .extract::<String>()?,
            None => "{}".into(),
        };
        let patch: recagent::intervention::ProfilePatch = serde_json::from_str(&json)
            .map_err(|e| errors::InterventionError::new_err(format!("profile: {e}")))?;
        let iv = recagent::intervention::Intervention::Profile { agent, patch };
        self.intervene(py, iv).map(drop)
    }

    /// Changes settings that may change mid-run, from the next round on (see the stub).
    #[pyo3(signature = (**settings))]
    fn set(&mut self, py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let Some(settings) = settings else {
            return Ok(());
        };
        let mut pairs = Vec::new();
        for (k, v) in settings.iter() {
            pairs.push((k.extract::<String>()?, setting_text(&v)?));
        }
        // All or nothing: every setting is checked before any changes.
        recagent::intervention::check_settings(self.sim.world(), &pairs)
            .map_err(|e| errors::from_intervention(py, e))?;
        for (key, value) in pairs {
            let iv = recagent::intervention::Intervention::Setting { key, value };
            self.intervene(py, iv)?;
        }
        Ok(())
    }

    /// The interventions applied so far (see the stub).
    fn interventions(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let list = PyList::empty(py);
        let json = py.import("json")?;
        for a in self.sim.interventions() {
            let text = serde_json::to_string(a).expect("invariant: plain data serialises");
            list.append(json.call_method1("loads", (text,))?)?;
        }
        Ok(list.unbind())
    }

    /// Writes a checkpoint of the current state to `path`. Returns the path.
    fn checkpoint(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        self.save_checkpoint(py, &path)?;
        Ok(path)
    }

    /// A branch of this run from its current state into `out_dir` (see the stub).
    #[pyo3(signature = (out_dir, *, overwrite=false, **overrides))]
    fn branch(
        &mut self,
        py: Python<'_>,
        out_dir: PathBuf,
        overwrite: bool,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let round = self.sim.round();
        let path = self.ckpt_dir.join(format!("round-{round:06}.ckpt"));
        let current = self
            .sim
            .world()
            .get_resource::<Lineage>()
            .and_then(|l| l.last.clone());
        if current.as_deref() != Some(path.as_path()) || !path.exists() {
            self.save_checkpoint(py, &path)?;
        }
        // The branch gets its own copy of a Python model (fitting it must not change ours).
        let inherited = match &self.model {
            Some((m, _)) => Some(
                py.import("copy")?
                    .call_method1("deepcopy", (m.bind(py),))?
                    .unbind(),
            ),
            None => None,
        };
        Self::resumed(py, &path, Some(&out_dir), overwrite, overrides, inherited)
    }

    /// `(calls, seconds)` of the Python recommender's `recommend` so far, measured around each
    /// call from the engine's side (for the per-call overhead; `(0, 0.0)` without one).
    fn _recommender_stats(&self) -> (u64, f64) {
        (
            self.stats.calls.load(std::sync::atomic::Ordering::Relaxed),
            self.stats.nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9,
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<recagent.Simulation round {}/{} in {}>",
            self.sim.round(),
            self.sim.config().round,
            self.output_dir().display()
        )
    }
}

fn profile_dict<'py>(py: Python<'py>, id: UserId, p: &Profile) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("agent_id", id.0)?;
    d.set_item("name", &*p.name)?;
    d.set_item("gender", &*p.gender)?;
    d.set_item("age", p.age)?;
    d.set_item("traits", &*p.traits)?;
    d.set_item("status", &*p.status)?;
    d.set_item("interest", &*p.interest)?;
    Ok(d)
}

/// The extension module.
#[pymodule]
fn _recagent(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Simulation>()?;
    errors::register(m)?;
    m.add("METRIC_COLUMNS", recagent::analysis::COLUMNS.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
