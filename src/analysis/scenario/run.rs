//! Running a scenario's variants x seeds, each as its own `recagent run` child process (a
//! crash or a refused configuration in one run cannot take the others down, and each run is
//! exactly what `recagent run` with the same arguments gives).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Base, Override, Scenario, ScenarioError};

/// One planned run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Variant name.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Output folder: `<out>/<variant>/seed-<seed>/`.
    pub dir: PathBuf,
    /// Arguments after the executable (`run --config-file ... --output-dir ... --seed ...
    /// --set ... --quiet`).
    pub args: Vec<String>,
}

impl RunSpec {
    /// The file holding the child's standard output and error (`<dir>/console.log`).
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
}

/// Why one run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFailure {
    /// The exit status, or why the process did not start.
    pub status: String,
    /// The last line of the child's output (its error message).
    pub last_line: String,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// What ran.
    pub spec: RunSpec,
    /// Wall time, or why it failed.
    pub result: Result<Duration, RunFailure>,
}

/// How to run the children.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// The `recagent` executable (the CLI passes its own, `std::env::current_exe`).
    pub exe: PathBuf,
    /// Runs at once; at least 1.
    pub jobs: usize,
    /// Threads per child (`RAYON_NUM_THREADS`), or `None` to leave the child's default.
    pub threads_per_run: Option<usize>,
}

impl Scenario {
    /// The runs, variant by variant in file order, each with every seed in order, writing
    /// under `out`; `population` are [`Scenario::population_overrides`] (empty without one).
    pub fn plan(&self, out: &Path, population: &[Override]) -> Vec<RunSpec> {
        // Absolute: each child runs inside its own folder.
        let out = crate::io::output::absolute(out);
        let mut runs = Vec::new();
        for v in &self.variants {
            for &seed in &self.seeds {
                let dir = out.join(&v.name).join(format!("seed-{seed}"));
                let mut args = vec!["run".to_string()];
                if let Base::File(f) = &self.base {
                    args.push("--config-file".into());
                    args.push(crate::io::output::absolute(f).display().to_string());
                }
                args.push("--output-dir".into());
                args.push(dir.display().to_string());
                args.push("--seed".into());
                args.push(seed.to_string());
                for o in population.iter().chain(&self.set).chain(&v.set) {
                    args.push("--set".into());
                    args.push(o.set_arg());
                }
                // The runs' folders are the scenario's own: re-running it replaces them.
                args.push("--overwrite".into());
                args.push("--quiet".into());
                runs.push(RunSpec {
                    variant: v.name.clone(),
                    seed,
                    dir,
                    args,
                });
            }
        }
        runs
    }
}

/// The last non-empty line of a file (a failed child's error message), or "".
fn last_line(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string()
}

fn run_one(spec: &RunSpec, opts: &RunnerOptions) -> Result<Duration, RunFailure> {
    let fail = |status: String| RunFailure {
        status,
        last_line: last_line(&spec.console_log()),
    };
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", spec.dir.display())))?;
    let log = std::fs::File::create(spec.console_log()).map_err(|e| {
        fail(format!(
            "cannot create {}: {e}",
            spec.console_log().display()
        ))
    })?;
    let err = log
        .try_clone()
        .map_err(|e| fail(format!("cannot share the console log: {e}")))?;
    let mut cmd = Command::new(&opts.exe);
    // The run folder is new and empty, so the child never picks up a ./config/config.yaml
    // of the caller's directory (`base: default` means the embedded configuration).
    cmd.args(&spec.args)
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if let Some(t) = opts.threads_per_run {
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| fail(format!("cannot start {}: {e}", opts.exe.display())))?;
    if status.success() {
        Ok(t.elapsed())
    } else {
        Err(fail(status.to_string()))
    }
}

/// Runs `specs` with up to `opts.jobs` children at once, calling `done` as each finishes (from
/// the worker threads, one at a time). Runs not started when `stop` is set are skipped (not in
/// the result). Returns the outcomes in `specs` order.
pub fn run_all(
    specs: &[RunSpec],
    opts: &RunnerOptions,
    stop: &AtomicBool,
    done: &(dyn Fn(&RunOutcome) + Sync),
) -> Vec<RunOutcome> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..specs.len()).collect());
    let results: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; specs.len()]);
    let report = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(specs.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(i) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) else {
                    break;
                };
                let outcome = RunOutcome {
                    spec: specs[i].clone(),
                    result: run_one(&specs[i], opts),
                };
                {
                    let _one_at_a_time = report.lock();
                    done(&outcome);
                }
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Makes the synthetic population (when the scenario has one) under `<out>/population/` and
/// returns the overrides that point the runs at it.
///
/// # Errors
/// [`ScenarioError`] when the population cannot be written.
pub fn prepare_population(scenario: &Scenario, out: &Path) -> Result<Vec<Override>, ScenarioError> {
    let Some(p) = &scenario.population else {
        return Ok(Vec::new());
    };
    let (users, rels) = p
        .write(&out.join("population"))
        .map_err(|m| ScenarioError {
            origin: scenario.path.display().to_string(),
            line: None,
            message: format!("population: {m}"),
        })?;
    Ok(scenario.population_overrides(
        &crate::io::output::absolute(&users),
        &crate::io::output::absolute(&rels),
    ))
}
