//! The `recagent` command line: run a simulation, resume or branch one from a checkpoint,
//! replay a recorded LLM run, check a configuration, evaluate recommenders. A thin layer over
//! the library: the run loop, checkpoints and the manifest are [`recagent::sim::Sim::run_until`].

/// `println!` that ignores a closed stdout (`recagent export | head`): the summaries are
/// informational, and the files are already written when they print.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod analysis;
mod args;
mod eval_rec;
mod log;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use recagent::analysis::report::{write_run_report, Format, ReportOptions, ReportSettings};
use recagent::config::SimConfig;
use recagent::io::output::{absolute, OutputPaths};
use recagent::sim::{CheckpointPolicy, Lineage, RunEnd, Sim};

use args::{Command, ReportArgs, ReportFormat, RunArgs};
use log::{init_log, open_log};

fn load_config(path: Option<&Path>) -> Result<SimConfig> {
    match path {
        Some(p) => Ok(SimConfig::load(p)?),
        None if Path::new("config/config.yaml").exists() => {
            Ok(SimConfig::load(Path::new("config/config.yaml"))?)
        }
        None => Ok(SimConfig::embedded()?),
    }
}

fn output_paths(cfg: &SimConfig, a: &RunArgs) -> OutputPaths {
    // Paths from the command line are relative to the working directory; paths from the file
    // relative to the file; the embedded default writes under ./output.
    let from_file = |p: &Path| {
        if cfg.is_embedded() {
            p.to_path_buf()
        } else {
            cfg.resolve(p)
        }
    };
    let dir = match &a.output_dir {
        Some(d) => d.clone(),
        None if cfg.is_embedded() => PathBuf::from("output"),
        None => cfg.resolve(&cfg.output_dir),
    };
    let paths = OutputPaths {
        messages: a
            .output_file
            .clone()
            .or_else(|| cfg.output_file.as_deref().map(|p| dir.join(p)))
            .unwrap_or_else(|| dir.join("messages.jsonl")),
        interactions: a
            .interaction_file
            .clone()
            .or_else(|| cfg.interaction_path.as_deref().map(from_file))
            .unwrap_or_else(|| dir.join("interaction.csv")),
        manifest: dir.join("manifest.json"),
        log: a
            .log_file
            .clone()
            .or_else(|| cfg.log_file.as_deref().map(|p| dir.join(p)))
            .unwrap_or_else(|| dir.join("run.log")),
    };
    // Shown to the user and recorded in manifests: no `config/../output` detours.
    let tidy = |p: PathBuf| {
        if p.is_absolute() {
            absolute(&p)
        } else {
            tidy_relative(&p)
        }
    };
    OutputPaths {
        messages: tidy(paths.messages),
        interactions: tidy(paths.interactions),
        manifest: tidy(paths.manifest),
        log: tidy(paths.log),
    }
}

/// Removes `dir/..` pairs from a relative path, lexically (`config/../output` -> `output`).
fn tidy_relative(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.iter().collect()
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--set {s:?}: expected KEY=VALUE"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn run(a: RunArgs) -> Result<()> {
    let started = Instant::now();
    let base = load_config(a.config_file.as_deref())?;
    let mut overrides = parse_sets(&a.set)?;
    // How the user typed each override, for errors ("command line (`--agents 0`)").
    let mut flags: Vec<String> = a.set.iter().map(|s| format!("--set {s}")).collect();
    for (flag, key, v) in [
        ("--seed", "seed", a.seed.map(|s| s.to_string())),
        ("--rounds", "round", a.rounds.map(|r| r.to_string())),
        ("--agents", "agent_num", a.agents.map(|n| n.to_string())),
    ] {
        if let Some(v) = v {
            flags.push(format!("{flag} {v}"));
            overrides.push((key.into(), v));
        }
    }
    let cfg = base.with_flagged_overrides(&overrides, &flags)?;
    for note in cfg.notes() {
        tracing::info!("note: {note}");
    }
    let paths = output_paths(&cfg, &a);
    let ckpt_dir = checkpoint_dir(&cfg, &paths);
    let redacted = cfg.redacted_json();
    if cfg.backend == recagent::config::BackendKind::Llm && cfg.llm_options.has_prices() && !a.quiet
    {
        let e = recagent::llm::estimate::estimate(&cfg)?;
        println!(
            "recagent: estimated LLM use: {} requests in round 1, ~{} prompt + ~{} completion tokens over {} rounds, ~{:.4} (at the configured prices)",
            e.requests_round_one, e.run.prompt_tokens, e.run.completion_tokens, cfg.round, e.cost
        );
    }
    tracing::info!(pid = std::process::id(), config = %redacted, "starting");
    // The log file is opened only once the data loaded, so a failed start leaves an earlier
    // run's log; what setup logged is on stderr, and written to the file once it is open.
    let sim = Sim::new(cfg, paths.clone())?;
    open_log(&paths.log, false)?;
    drive(sim, &paths, ckpt_dir, a.quiet, started)
}

/// Where checkpoints go: `simulator_dir` (from the file, relative to it) or `<output dir>/checkpoints`.
fn checkpoint_dir(cfg: &SimConfig, paths: &OutputPaths) -> PathBuf {
    match &cfg.simulator_dir {
        Some(d) if !d.as_os_str().is_empty() && !cfg.is_embedded() => cfg.resolve(d),
        _ => paths
            .manifest
            .parent()
            .map_or_else(|| PathBuf::from("checkpoints"), |p| p.join("checkpoints")),
    }
}

fn resume_or_branch(
    checkpoint: &Path,
    sets: &[String],
    rounds: Option<u32>,
    out: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    let started = Instant::now();
    let mut overrides = parse_sets(sets)?;
    if let Some(r) = rounds {
        overrides.push(("round".into(), r.to_string()));
    }
    let (header, _) = recagent::checkpoint::load(checkpoint)?;
    let log = match out {
        Some(d) => d.join("run.log"),
        None => header.outputs.log.clone(),
    };
    // Secrets given on the command line stay out of the log.
    let logged: Vec<(&str, String)> = overrides
        .iter()
        .map(|(k, v)| match k.as_str() {
            "api_keys" => (k.as_str(), recagent::config::REDACTED.to_string()),
            "api_bases" if v.contains('@') => (k.as_str(), recagent::config::REDACTED.to_string()),
            _ => (k.as_str(), v.clone()),
        })
        .collect();
    tracing::info!(checkpoint = %checkpoint.display(), round = header.round, overrides = ?logged, branch = out.is_some(), "resuming");
    let (mut sim, header) = recagent::checkpoint::resume(checkpoint, &overrides, out)?;
    // A resumed run appends to its log; a branch starts its own.
    open_log(&log, out.is_none())?;
    sim.world_mut().insert_resource(Lineage {
        parent: Some(checkpoint.to_path_buf()),
        last: None,
    });
    let mut paths = sim
        .world()
        .resource::<recagent::io::output::OutputSink>()
        .paths
        .clone();
    paths.log = log;
    if !quiet {
        println!(
            "{} from {} (round {} of {})",
            if out.is_some() {
                "branching"
            } else {
                "resuming"
            },
            checkpoint.display(),
            header.round,
            sim.config().round
        );
    }
    let ckpt_dir = match out {
        Some(d) => d.join("checkpoints"),
        None => checkpoint
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    drive(sim, &paths, ckpt_dir, quiet, started)
}

/// Runs the remaining rounds with a progress bar, checkpoints and the manifest; prints the summary.
fn drive(
    mut sim: Sim,
    paths: &OutputPaths,
    ckpt_dir: PathBuf,
    quiet: bool,
    started: Instant,
) -> Result<()> {
    let rounds = sim.config().round;
    let policy = CheckpointPolicy {
        dir: ckpt_dir,
        every: sim.config().checkpoint_every,
    };
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(rounds))
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} round {pos}/{len} [{bar:30}] {elapsed_precise} (eta {eta}) {msg}",
        )
        .expect("invariant: valid template")
        .progress_chars("=> "),
    );
    pb.set_position(u64::from(sim.round()));
    let end = sim.run_until(&STOP, &policy, |sim| {
        pb.set_message(sim.counters().progress());
        pb.set_position(u64::from(sim.round()));
    });
    match end {
        Err(e) => {
            pb.abandon();
            return Err(e.into());
        }
        Ok(RunEnd::Interrupted {
            round,
            last_checkpoint,
        }) => {
            pb.abandon();
            let hint = last_checkpoint.map_or_else(
                || "no checkpoint was written (set checkpoint_every)".to_string(),
                |p| format!("resume with: recagent resume {}", p.display()),
            );
            anyhow::bail!(
                "interrupted after round {round} of {rounds}; outputs are complete up to it; {hint}"
            );
        }
        Ok(RunEnd::Finished) => {}
    }
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(wall_secs = wall, "finished");
    if !quiet {
        summary::print_summary(&sim, paths, wall);
    }
    report_at_end(&sim, paths, quiet)
}

/// `recagent report`: writes the report and prints its text summary.
fn report(a: &ReportArgs) -> Result<()> {
    let opts = ReportOptions {
        format: match a.format {
            ReportFormat::Html => Format::Html,
            ReportFormat::Md => Format::Markdown,
        },
        out: a.out.clone(),
        reference: a.reference.clone(),
    };
    let r = write_run_report(&a.run_dir, &opts)?;
    {
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), "{}", r.summary);
    }
    Ok(())
}

/// With `report: true`, writes the finished run's HTML report. A failure leaves the run's
/// outputs as they are: it is returned as an error (the command exits non-zero) that says so.
fn report_at_end(sim: &Sim, paths: &OutputPaths, quiet: bool) -> Result<()> {
    if !sim
        .world()
        .get_resource::<ReportSettings>()
        .is_some_and(|s| s.report)
    {
        return Ok(());
    }
    let dir = paths
        .manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match write_run_report(dir, &ReportOptions::default()) {
        Ok(r) => {
            if !quiet {
                println!("report: {}", r.path.display());
            }
            Ok(())
        }
        Err(e) => anyhow::bail!(
            "the run finished and its outputs in {} are complete, but its report (report: true) failed: {e}",
            dir.display()
        ),
    }
}

/// Set by the first Ctrl-C: the run stops at the next round boundary (a second one exits at once).
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = args::parse();
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current round (Ctrl-C again to quit at once)");
    });
    // Only the simulation commands write a log file (opened once their setup succeeded).
    init_log(matches!(
        cli.command,
        Command::Run(_) | Command::Replay { .. } | Command::Resume { .. } | Command::Branch { .. }
    ));
    match cli.command {
        Command::Run(a) => run(a),
        Command::Replay {
            transcript,
            config_file,
            output_dir,
            mut set,
            quiet,
        } => {
            anyhow::ensure!(
                transcript.exists(),
                "{}: no such transcript",
                transcript.display()
            );
            let t = absolute(&transcript);
            set.push("backend=replay".into());
            set.push(format!(
                "transcript_path={}",
                serde_json::to_string(&t.display().to_string())?
            ));
            let output_dir = output_dir.or_else(|| t.parent().map(|d| d.join("replay")));
            run(RunArgs {
                config_file,
                output_file: None,
                log_file: None,
                interaction_file: None,
                output_dir,
                seed: None,
                rounds: None,
                agents: None,
                set,
                quiet,
            })
        }
        Command::Resume {
            checkpoint,
            rounds,
            set,
            quiet,
        } => resume_or_branch(&checkpoint, &set, rounds, None, quiet),
        Command::Branch {
            checkpoint,
            set,
            out,
            rounds,
            quiet,
        } => resume_or_branch(&checkpoint, &set, rounds, Some(&out), quiet),
        Command::EvalRecommender(a) => eval_rec::run(&a),
        Command::Report(a) => report(&a),
        Command::Export(a) => analysis::export(&a),
        Command::Scenario(a) => analysis::scenario(&a, &STOP),
        Command::CheckConfig { config_file } => {
            let cfg = load_config(config_file.as_deref())?;
            // Load the data too (into a scratch output directory), so what `run` would reject
            // is rejected here.
            let scratch =
                std::env::temp_dir().join(format!("recagent-check-{}", std::process::id()));
            let outputs = OutputPaths {
                messages: scratch.join("messages.jsonl"),
                interactions: scratch.join("interaction.csv"),
                manifest: scratch.join("manifest.json"),
                log: scratch.join("run.log"),
            };
            let built = Sim::new(cfg.clone(), outputs);
            let _ = std::fs::remove_dir_all(&scratch);
            let sim = built?;
            let r = sim.load_report();
            println!("{}", serde_json::to_string_pretty(&cfg.redacted_json())?);
            println!(
                "configuration OK: {} items, {} of {} users as agents, {} contacts ({} dropped, {} duplicate)",
                r.items, r.agents, r.users_in_file, r.edges, r.dropped_edges, r.duplicate_edges
            );
            Ok(())
        }
    }
}
