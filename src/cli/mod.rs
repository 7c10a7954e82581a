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
use recagent::sim::{CheckpointPolicy, Lineage, ManifestGuard, RunEnd, Sim};

use args::{Command, DemoArgs, ReportArgs, ReportFormat, RunArgs};
use log::{init_log, open_log};
use summary::{round_span, rounds_word, Start};

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
    OutputPaths::for_run(
        cfg,
        a.output_dir.as_deref(),
        a.output_file.clone(),
        a.interaction_file.clone(),
        a.log_file.clone(),
    )
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
    let ckpt_dir = paths.checkpoint_dir(&cfg);
    let redacted = cfg.redacted_json();
    let llm_backend = matches!(
        cfg.backend,
        recagent::config::BackendKind::Llm | recagent::config::BackendKind::Hybrid
    );
    if llm_backend && cfg.llm_options.has_prices() && !a.quiet {
        let e = recagent::llm::estimate::estimate(&cfg)?;
        println!("{}", estimate_lines(&e, cfg.round, cfg.hybrid.text_share));
    }
    tracing::info!(pid = std::process::id(), config = %redacted, "starting");
    // The log file is opened only once the data loaded, so a failed start leaves an earlier
    // run's log; what setup logged is on stderr, and written to the file once it is open.
    let sim = recagent::sim::SimBuilder::new(cfg)
        .outputs(paths.clone())
        .checkpoint_dir(ckpt_dir.clone())
        .overwrite(a.overwrite)
        .build()?;
    open_log(&paths.log, false)?;
    drive(sim, &paths, ckpt_dir, a.quiet, started, Start::New)
}

/// `recagent demo`: builds the world, serves the page and the API, prints the URL, and serves
/// until Ctrl-C.
fn demo(a: DemoArgs) -> Result<()> {
    let base = load_config(a.config_file.as_deref())?;
    let overrides = parse_sets(&a.set)?;
    let flags: Vec<String> = a.set.iter().map(|s| format!("--set {s}")).collect();
    let cfg = base.with_flagged_overrides(&overrides, &flags)?;
    let run_args = RunArgs {
        config_file: None,
        output_file: a.output_file.clone(),
        log_file: a.log_file.clone(),
        interaction_file: None,
        output_dir: a.output_dir.clone(),
        seed: None,
        rounds: None,
        agents: None,
        set: Vec::new(),
        overwrite: a.overwrite,
        quiet: true,
    };
    let paths = output_paths(&cfg, &run_args);
    let replay = match &a.roleplay_replay {
        Some(p) => recagent::demo::roleplay::read_log(p).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    tracing::info!(pid = std::process::id(), config = %cfg.redacted_json(), "starting the demo");
    let server = recagent::demo::start(recagent::demo::DemoOptions {
        cfg,
        paths: paths.clone(),
        overwrite: a.overwrite,
        host: a.host.clone(),
        port: a.port,
        token: a.token.clone(),
        roleplay_timeout: std::time::Duration::from_secs(a.roleplay_timeout),
        roleplay_replay: replay,
    })?;
    open_log(&paths.log, false)?;
    say!("recagent demo: open {}", server.url());
    if server.token.is_some() && a.token.is_none() {
        say!("(the token was generated for this session: requests that change state need it)");
    }
    say!(
        "outputs in {}; Ctrl-C stops",
        paths.messages.parent().unwrap_or(Path::new(".")).display()
    );
    while !STOP.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(server);
    Ok(())
}

/// The estimate `run` prints before an LLM or hybrid run: the full LLM backend's figures and,
/// beside them, the hybrid backend's (words only, at `text_share`).
fn estimate_lines(e: &recagent::llm::estimate::Estimate, rounds: u32, text_share: f64) -> String {
    format!(
        "recagent: estimated LLM use over {rounds} rounds (at the configured prices):\n  full LLM (backend: llm): {} requests in round 1, ~{} prompt + ~{} completion tokens, ~{:.4}\n  hybrid (words only, text_share {text_share}): {} requests in round 1, ~{} prompt + ~{} completion tokens, ~{:.4}",
        e.requests_round_one,
        e.run.prompt_tokens,
        e.run.completion_tokens,
        e.cost,
        e.hybrid_requests_round_one,
        e.hybrid_run.prompt_tokens,
        e.hybrid_run.completion_tokens,
        e.hybrid_cost
    )
}

fn resume_or_branch(
    checkpoint: &Path,
    sets: &[String],
    rounds: Option<u32>,
    out: Option<&Path>,
    overwrite: bool,
    quiet: bool,
) -> Result<()> {
    let started = Instant::now();
    let mut overrides = parse_sets(sets)?;
    if let Some(r) = rounds {
        overrides.push(("round".into(), r.to_string()));
    }
    let (header, _) = recagent::checkpoint::load(checkpoint)?;
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
    let (mut sim, header) =
        recagent::checkpoint::resume_with(checkpoint, &overrides, out, |b| b.overwrite(overwrite))?;
    // The log of the run folder as found now (a moved folder resumes in place).
    let log = match out {
        Some(d) => d.join("run.log"),
        None => header.outputs.log.clone(),
    };
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
    // Rounds the stopped run had already done after this checkpoint (its manifest, before this
    // run rewrites it), which this resume runs again.
    let done_before = if out.is_none() {
        std::fs::read(&paths.manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["rounds_completed"].as_u64())
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0)
    } else {
        0
    };
    let re_run = done_before
        .min(sim.config().round)
        .saturating_sub(header.round);
    if !quiet {
        let again = if re_run > 0 {
            format!(
                "; re-running {} ({}) the stopped run had done after that checkpoint",
                rounds_word(re_run),
                round_span(header.round + 1, header.round + re_run)
            )
        } else {
            String::new()
        };
        println!(
            "{} from {} (round {} of {}){again}",
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
    let start = if out.is_some() {
        Start::Branched
    } else {
        Start::Resumed { re_run }
    };
    drive(sim, &paths, ckpt_dir, quiet, started, start)
}

/// Runs the remaining rounds with a progress bar, checkpoints and the manifest; prints the summary.
/// `start`: how it began (for the summary). A Ctrl-C stop is returned as [`Stopped`].
fn drive(
    mut sim: Sim,
    paths: &OutputPaths,
    ckpt_dir: PathBuf,
    quiet: bool,
    started: Instant,
    start: Start,
) -> Result<()> {
    let rounds = sim.config().round;
    let first = sim.round();
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
    log::set_bar(Some(pb.clone()));
    // The second Ctrl-C quits from the handler's thread: it rewrites this run's last manifest.
    let guard = ManifestGuard::default();
    sim.world_mut().insert_resource(guard.clone());
    *GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
    let end = sim.run_until(&STOP, &policy, |sim| {
        pb.set_message(sim.counters().progress());
        pb.set_position(u64::from(sim.round()));
        log::round_done(sim.round(), &paths.log);
    });
    // Warnings held back in a round cut short.
    log::round_done(sim.round() + 1, &paths.log);
    log::set_bar(None);
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
            return Err(Stopped(format!(
                "stopped after round {round} of {rounds} (Ctrl-C): the outputs are complete up to it; {}",
                resume_hint(round, last_checkpoint.as_deref(), Some(policy.every))
            ))
            .into());
        }
        Ok(RunEnd::Finished) => {}
    }
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(wall_secs = wall, "finished");
    if !quiet {
        summary::print_summary(&sim, paths, wall, first, start);
    }
    report_at_end(&sim, paths, quiet)
}

/// How to go on after a stop after round `round`: the resume command, and the rounds it runs
/// again when the last checkpoint is older (its round is read from its `round-NNNNNN.ckpt` name).
/// `every`: the run's `checkpoint_every`, when known, to say why there is no checkpoint.
fn resume_hint(round: u32, last_checkpoint: Option<&Path>, every: Option<u32>) -> String {
    let Some(p) = last_checkpoint else {
        return match every {
            _ if round == 0 => "no round had finished, so there is nothing to resume".into(),
            Some(0) => {
                "no checkpoint was written (checkpoint_every is 0), so it cannot be resumed".into()
            }
            Some(n) => format!(
                "no checkpoint was written yet (checkpoint_every is {n}), so it cannot be resumed"
            ),
            None => "no checkpoint was written, so it cannot be resumed".into(),
        };
    };
    let at = p
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("round-"))
        .and_then(|n| n.parse::<u32>().ok());
    let again = match at {
        Some(c) if c < round => format!(" (it runs {} again)", round_span(c + 1, round)),
        _ => String::new(),
    };
    format!("resume with `recagent resume {}`{again}", p.display())
}

/// A run stopped by Ctrl-C: reported as a stop (not `error:`), exit code [`EXIT_STOPPED`].
#[derive(Debug)]
pub(crate) struct Stopped(String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// Exit code of a run stopped by Ctrl-C (first or second), as shells report a process ended by
/// SIGINT (128 + 2). 1 is an error, 2 a command-line usage error (clap).
pub(crate) const EXIT_STOPPED: u8 = 130;

/// The running simulation's manifest, for the second Ctrl-C.
static GUARD: std::sync::Mutex<Option<ManifestGuard>> = std::sync::Mutex::new(None);

/// The Ctrl-C handler: the first sets [`STOP`] (the run ends at the round boundary); the second
/// leaves the manifest saying `interrupted during round N (second Ctrl-C)` and quits at once.
fn on_ctrl_c() {
    if !STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
        log::eprint_above_bar(
            "\ninterrupt: finishing the current round (Ctrl-C again to quit at once)\n",
        );
        return;
    }
    let guard = GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let msg = match guard.map(|g| g.interrupt("second Ctrl-C")) {
        Some(Ok(Some(at))) => format!(
            "stopped during round {} of {} (second Ctrl-C): the outputs are complete up to round {}; {}",
            at.rounds_completed + 1,
            at.rounds_planned,
            at.rounds_completed,
            resume_hint(at.rounds_completed, at.last_checkpoint.as_deref(), None)
        ),
        Some(Err(e)) => {
            format!("stopped at once (second Ctrl-C); the manifest could not be updated: {e}")
        }
        _ => "stopped at once (second Ctrl-C)".into(),
    };
    log::eprint_above_bar(&format!("{msg}\n"));
    std::process::exit(i32::from(EXIT_STOPPED));
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

/// `recagent replay`: re-runs a recorded LLM run from its transcript, from round 0, into
/// `output_dir` (default `replay/` beside the transcript). `rounds` / `agents` replay a prefix,
/// within what the transcript records. A branch's transcript holds its branch points
/// ([`recagent::llm::transcript::BranchPoint`]): the replay runs the parent's settings up to
/// each one (into `<output_dir>/stages/<i>`, with a checkpoint there) and branches from it with
/// the recorded settings, the last branch into `output_dir`.
fn replay(
    transcript: &Path,
    config_file: Option<PathBuf>,
    output_dir: Option<PathBuf>,
    mut set: Vec<String>,
    rounds: Option<u32>,
    agents: Option<u32>,
    overwrite: bool,
    quiet: bool,
) -> Result<()> {
    use recagent::llm::transcript;
    anyhow::ensure!(
        transcript.exists(),
        "{}: no such transcript",
        transcript.display()
    );
    let t = absolute(transcript);
    let (recorded_rounds, recorded_agents) = transcript::extent(&t)?;
    if let Some(n) = rounds {
        anyhow::ensure!(
            n <= recorded_rounds,
            "--rounds {n}: {} records {}; a replay runs those or fewer",
            t.display(),
            summary::rounds_word(recorded_rounds)
        );
    }
    if let Some(n) = agents {
        anyhow::ensure!(
            n <= recorded_agents,
            "--agents {n}: {} holds calls of {recorded_agents} agents (ids 0-{}); a replay runs the first {recorded_agents} or fewer",
            t.display(),
            recorded_agents.saturating_sub(1)
        );
    }
    // A hybrid run's transcript holds its words only: the decisions are the offline model's
    // again, and the words come from the transcript.
    let hybrid = load_config(config_file.as_deref())?
        .with_overrides(&parse_sets(&set)?)?
        .backend
        == recagent::config::BackendKind::Hybrid;
    set.push(if hybrid {
        "hybrid.text_source=replay".into()
    } else {
        "backend=replay".into()
    });
    set.push(format!(
        "transcript_path={}",
        serde_json::to_string(&t.display().to_string())?
    ));
    // The recorded run's checkpoints stay as they were: a replay writes its own in its folder.
    set.push("simulator_dir=null".into());
    let output_dir = output_dir
        .or_else(|| t.parent().map(|d| d.join("replay")))
        .unwrap_or_else(|| PathBuf::from("replay"));
    let base = load_config(config_file.as_deref())?.with_overrides(&parse_sets(&set)?)?;
    let points = transcript::branch_points(&t)?;
    // The branch's own rounds (its last `round` setting), unless --rounds says fewer.
    let last = rounds.unwrap_or_else(|| {
        points
            .iter()
            .flat_map(|p| &p.set)
            .filter(|(k, _)| k == "round")
            .filter_map(|(_, v)| v.parse().ok())
            .next_back()
            .unwrap_or(base.round)
    });
    let points: Vec<_> = points.into_iter().filter(|p| p.round < last).collect();
    let stage_dir = |i: usize| output_dir.join("stages").join(i.to_string());
    let first_stop = points.first().map_or(last, |p| p.round);
    let mut first_set = set.clone();
    if !points.is_empty() {
        // A checkpoint exactly at the branch point (and none before: rounds are multiples).
        first_set.push(format!("checkpoint_every={first_stop}"));
        if !quiet {
            println!(
                "replaying a branch: rounds 1-{first_stop} as its parent, then {} recorded branch point{} (stages in {})",
                points.len(),
                if points.len() == 1 { "" } else { "s" },
                output_dir.join("stages").display()
            );
        }
    }
    run(RunArgs {
        config_file,
        output_file: None,
        log_file: None,
        interaction_file: None,
        output_dir: Some(if points.is_empty() {
            output_dir.clone()
        } else {
            stage_dir(0)
        }),
        seed: None,
        rounds: Some(first_stop),
        agents,
        set: first_set,
        overwrite,
        quiet: quiet || !points.is_empty(),
    })?;
    for (i, p) in points.iter().enumerate() {
        let ckpt = stage_dir(i)
            .join("checkpoints")
            .join(format!("round-{:06}.ckpt", p.round));
        let final_stage = i + 1 == points.len();
        let recorded = p.set.iter().map(|(k, v)| format!("{k}={v}"));
        // The last `--set` of a key wins: a stage before another branch point must end with a
        // checkpoint at it; the last stage keeps the branch's own cadence.
        let (until, sets) = match points.get(i + 1) {
            Some(next) => (
                next.round,
                recorded
                    .chain([format!("checkpoint_every={}", next.round)])
                    .collect::<Vec<_>>(),
            ),
            None => (
                last,
                std::iter::once(format!("checkpoint_every={}", base.checkpoint_every))
                    .chain(recorded)
                    .collect(),
            ),
        };
        let out = if final_stage {
            output_dir.clone()
        } else {
            stage_dir(i + 1)
        };
        resume_or_branch(
            &ckpt,
            &sets,
            Some(until),
            Some(&out),
            overwrite,
            quiet || !final_stage,
        )?;
    }
    if let Some(n) = agents.filter(|&n| n < recorded_agents) {
        // Exact when every recorded call of these agents and rounds was asked (no fewer: an
        // agent whose contact is gone makes fewer) and every prompt matched (no other).
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(output_dir.join("manifest.json"))?)?;
        let usage = &m["llm_usage"];
        let misses = usage["replay_mismatches"].as_u64().unwrap_or(0);
        let asked = usage["calls"].as_u64().unwrap_or(0);
        let recorded = transcript::recorded_calls(&t)?
            .iter()
            .filter(|(k, _)| k.user.0 < n && k.round <= last)
            .count() as u64;
        anyhow::ensure!(
            misses == 0 && asked == recorded,
            "the replay of the first {n} of {recorded_agents} agents (outputs in {}) is not the recorded run: {asked} calls asked for {recorded} recorded, {misses} prompts differ from the recorded ones{}; these agents' prompts depend on the others' (contacts, chats, the recommender's training on every agent's watches): replay all {recorded_agents} agents (fewer --rounds is always exact)",
            output_dir.display(),
            usage["first_replay_mismatch"]
                .as_str()
                .map_or(String::new(), |f| format!(" (first: {f})"))
        );
    }
    Ok(())
}

/// Set by the first Ctrl-C: the run stops at the next round boundary (a second one exits at once).
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Stopped>().is_some() => {
            eprintln!("{e}");
            std::process::ExitCode::from(EXIT_STOPPED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = args::parse();
    let _ = ctrlc::set_handler(on_ctrl_c);
    // Only the simulation commands write a log file (opened once their setup succeeded).
    init_log(matches!(
        cli.command,
        Command::Run(_)
            | Command::Replay { .. }
            | Command::Resume { .. }
            | Command::Branch { .. }
            | Command::Demo(_)
    ));
    match cli.command {
        Command::Run(a) => run(a),
        Command::Demo(a) => demo(a),
        Command::Replay {
            transcript,
            config_file,
            output_dir,
            set,
            rounds,
            agents,
            overwrite,
            quiet,
        } => replay(
            &transcript,
            config_file,
            output_dir,
            set,
            rounds,
            agents,
            overwrite,
            quiet,
        ),
        Command::Resume {
            checkpoint,
            rounds,
            set,
            quiet,
        } => resume_or_branch(&checkpoint, &set, rounds, None, false, quiet),
        Command::Branch {
            checkpoint,
            set,
            out,
            rounds,
            overwrite,
            quiet,
        } => resume_or_branch(&checkpoint, &set, rounds, Some(&out), overwrite, quiet),
        Command::EvalRecommender(a) => eval_rec::run(&a),
        Command::Report(a) => report(&a),
        Command::Export(a) => analysis::export(&a),
        Command::Scenario(a) => analysis::scenario(&a, &STOP),
        Command::Fidelity(a) => analysis::fidelity(&a),
        Command::Calibrate(a) => analysis::calibrate(&a),
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
            // The notes a run would log (old key names, keys with no use here, paths read from
            // the working directory), so the check shows them before a run does.
            for note in cfg.notes() {
                println!("note: {note}");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_says_how_to_resume_or_why_it_cannot() {
        let p = Path::new("out/checkpoints/round-000002.ckpt");
        assert_eq!(
            resume_hint(2, Some(p), Some(1)),
            "resume with `recagent resume out/checkpoints/round-000002.ckpt`"
        );
        // checkpoint_every 2, stopped after round 3: the resume runs round 3 again.
        assert_eq!(
            resume_hint(3, Some(p), Some(2)),
            "resume with `recagent resume out/checkpoints/round-000002.ckpt` (it runs round 3 again)"
        );
        assert_eq!(
            resume_hint(5, Some(p), None),
            "resume with `recagent resume out/checkpoints/round-000002.ckpt` (it runs rounds 3-5 again)"
        );
        assert_eq!(
            resume_hint(0, None, Some(1)),
            "no round had finished, so there is nothing to resume"
        );
        assert_eq!(
            resume_hint(3, None, Some(0)),
            "no checkpoint was written (checkpoint_every is 0), so it cannot be resumed"
        );
        assert_eq!(
            resume_hint(3, None, Some(5)),
            "no checkpoint was written yet (checkpoint_every is 5), so it cannot be resumed"
        );
    }
}
