//! `recagent` command line: run a simulation, or check a configuration.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use recagent::config::SimConfig;
use recagent::io::output::{absolute, OutputPaths};
use recagent::sim::{Lineage, Sim};

mod eval_rec;

/// Simulate LLM-driven (or offline-modelled) users in front of a recommender system.
#[derive(Parser)]
#[command(name = "recagent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a simulation and write messages, interactions, a manifest and a log.
    ///
    /// With no --config-file, uses ./config/config.yaml if it exists, else the embedded default
    /// (bundled demo data, offline behaviour model: no API key, no network).
    Run(RunArgs),
    /// Continue a run from a checkpoint: outputs are truncated back to the checkpoint and appended.
    Resume {
        /// Checkpoint file (`.../checkpoints/round-000003.ckpt`).
        checkpoint: PathBuf,
        /// Run until this round (overrides `round`, e.g. to extend a finished run).
        #[arg(long)]
        rounds: Option<u32>,
        /// Settings that may change mid-run, KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// No progress bar and no summary.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Start a counterfactual run from a checkpoint with changed settings, writing to --out.
    Branch {
        /// Checkpoint file to branch from.
        checkpoint: PathBuf,
        /// Changed settings, KEY=VALUE (repeatable), e.g. --set rec_model=Random --set rec_random_k=2.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Output directory of the branch (the parent's outputs up to the checkpoint are copied in).
        #[arg(long)]
        out: PathBuf,
        /// Run until this round (overrides `round`).
        #[arg(long)]
        rounds: Option<u32>,
        /// No progress bar and no summary.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Re-run a recorded LLM run offline from its transcript (the same as `backend: replay` with
    /// `transcript_path`); prompts that differ from the recorded ones are reported by key.
    Replay {
        /// The recorded run's transcript (`transcript.jsonl`).
        #[arg(long)]
        transcript: PathBuf,
        /// The recorded run's configuration (default as for `run`).
        #[arg(long = "config-file", visible_alias = "config", short = 'c')]
        config_file: Option<PathBuf>,
        /// Output directory (default: `replay/` beside the transcript).
        #[arg(long = "output-dir")]
        output_dir: Option<PathBuf>,
        /// Further settings, KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// No progress bar and no summary.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Parse and validate a configuration, print the resolved settings, and exit.
    CheckConfig {
        /// Configuration file (YAML).
        #[arg(long = "config-file", visible_alias = "config", short = 'c')]
        config_file: Option<PathBuf>,
    },
    /// Train recommenders on an implicit split and print Recall@K / NDCG@K on its test part,
    /// beside Agent4Rec's saved top-20 lists scored by the same code.
    EvalRecommender(eval_rec::EvalArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Configuration file (YAML; RecAgent's keys are accepted).
    #[arg(long = "config-file", visible_alias = "config", short = 'c')]
    config_file: Option<PathBuf>,
    /// Messages output (JSON Lines). Default: <output_dir>/messages.jsonl.
    #[arg(long = "output-file", short = 'o')]
    output_file: Option<PathBuf>,
    /// Log file. Default: <output_dir>/run.log.
    #[arg(long = "log-file", short = 'l')]
    log_file: Option<PathBuf>,
    /// Interaction CSV output. Default: `interaction_path`, else <output_dir>/interaction.csv.
    #[arg(long = "interaction-file")]
    interaction_file: Option<PathBuf>,
    /// Directory for the default output files (overrides `output_dir`).
    #[arg(long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Root seed (overrides `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Rounds to run (overrides `round`).
    #[arg(long)]
    rounds: Option<u32>,
    /// Number of agents, the first N users by id (overrides `agent_num`).
    #[arg(long)]
    agents: Option<u32>,
    /// Any config key, as KEY=VALUE in YAML syntax (repeatable), e.g. --set rec_model=Random.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// No progress bar and no summary.
    #[arg(long, short = 'q')]
    quiet: bool,
}

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

/// While true, warnings and errors are also printed on stderr: during setup (before the run's
/// first round), so a problem found while building the simulation is seen, and for the commands
/// without a log file. Rounds log to the file only (per-request fallbacks would flood stderr
/// and break the progress bar).
static LOG_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The log file, once the run's setup succeeded; until then the lines meant for it are kept in
/// memory, so a failed start never truncates an earlier run's log.
enum LogFile {
    Pending(Vec<u8>),
    Open(std::fs::File),
}

static LOG_FILE: std::sync::Mutex<LogFile> = std::sync::Mutex::new(LogFile::Pending(Vec::new()));

/// A handle on [`LOG_FILE`] for the subscriber's file layer.
struct LogFileWriter;

impl std::io::Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *LOG_FILE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            LogFile::Pending(v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            LogFile::Open(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *LOG_FILE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            LogFile::Pending(_) => Ok(()),
            LogFile::Open(f) => f.flush(),
        }
    }
}

/// Stderr lines: `warning: <message> <fields>` (or `error: ...`), like the command's own errors.
struct StderrFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for StderrFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let label = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            _ => "note",
        };
        write!(w, "{label}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `RECAGENT_LOG`, else `info`.
fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("RECAGENT_LOG").unwrap_or_else(|_| "info".into())
}

/// Installs the logger: warnings and errors to stderr while [`LOG_TO_STDERR`] is set and, with
/// `to_file`, every line `RECAGENT_LOG` allows (default `info`) to the log file, which
/// [`open_log`] opens once setup succeeded (lines logged before are written then).
fn init_log(to_file: bool) {
    use tracing_subscriber::filter::{filter_fn, FilterExt as _, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(StderrFormat)
        .with_filter(env_filter().and(LevelFilter::WARN).and(filter_fn(|_| {
            LOG_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed)
        })));
    let file = to_file.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(|| LogFileWriter)
            .with_ansi(false)
            .with_target(true)
            .with_filter(env_filter())
    });
    // A second initialisation (never done here) would only keep the first logger.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// Opens the log file (appending, or truncating an earlier run's), writes the lines logged
/// during setup, and sends later lines there only (not to stderr).
fn open_log(path: &Path, append: bool) -> Result<()> {
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    let mut state = LOG_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let LogFile::Pending(lines) = &*state {
        std::io::Write::write_all(&mut file, lines)
            .with_context(|| format!("writing log file {}", path.display()))?;
    }
    *state = LogFile::Open(file);
    drop(state);
    LOG_TO_STDERR.store(false, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
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
    if let Some(s) = a.seed {
        overrides.push(("seed".into(), s.to_string()));
    }
    if let Some(r) = a.rounds {
        overrides.push(("round".into(), r.to_string()));
    }
    if let Some(n) = a.agents {
        overrides.push(("agent_num".into(), n.to_string()));
    }
    let cfg = base.with_overrides(&overrides)?;
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
    let every = sim.config().checkpoint_every;
    sim.write_manifest("running")?;
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
    while sim.round() < rounds {
        if STOP.load(std::sync::atomic::Ordering::SeqCst) {
            pb.abandon();
            let last = sim
                .world()
                .get_resource::<Lineage>()
                .and_then(|l| l.last.clone());
            sim.write_manifest(&format!("interrupted after round {}", sim.round()))?;
            tracing::warn!(round = sim.round(), "interrupted");
            let hint = last.map_or_else(
                || "no checkpoint was written (set checkpoint_every)".to_string(),
                |p| format!("resume with: recagent resume {}", p.display()),
            );
            anyhow::bail!(
                "interrupted after round {} of {rounds}; outputs are complete up to it; {hint}",
                sim.round()
            );
        }
        let t = Instant::now();
        if let Err(e) = sim.step() {
            let _ = sim.write_manifest(&format!("failed in round {}", sim.round()));
            pb.abandon();
            return Err(e.into());
        }
        let round = sim.round();
        tracing::info!(round, secs = t.elapsed().as_secs_f64(), "round done");
        if every > 0 && round.is_multiple_of(every) {
            let path = ckpt_dir.join(format!("round-{round:06}.ckpt"));
            let t = Instant::now();
            let parent = sim
                .world()
                .get_resource::<Lineage>()
                .and_then(|l| l.parent.clone());
            recagent::checkpoint::save(&mut sim, &path, parent.as_deref())?;
            tracing::info!(path = %path.display(), secs = t.elapsed().as_secs_f64(), "checkpoint written");
            let mut lineage = sim
                .world_mut()
                .get_resource_or_insert_with(Lineage::default);
            lineage.last = Some(path);
        }
        let s = sim.stats();
        pb.set_message(format!(
            "watches {} · chats {} · posts {}",
            s.watches, s.chats, s.posts
        ));
        pb.set_position(u64::from(round));
        sim.write_manifest("running")?;
    }
    pb.finish_and_clear();
    sim.write_manifest("finished")?;
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(wall_secs = wall, "finished");
    if !quiet {
        print_summary(&sim, paths, wall);
    }
    Ok(())
}

fn print_summary(sim: &Sim, paths: &OutputPaths, wall: f64) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = sim.stats();
    let r = sim.load_report();
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| human_bytes(m.len()))
            .unwrap_or_else(|_| "-".into())
    };
    let _ = writeln!(
        out,
        "recagent: {} rounds finished in {wall:.2} s (wall)",
        s.rounds
    );
    let _ = writeln!(out,
        "  agents {} of {} users · items {} · contacts {} directed ({} dropped, {} agents without contacts)",
        r.agents, r.users_in_file, r.items, r.edges, r.dropped_edges, r.agents_without_contacts
    );
    let _ = writeln!(
        out,
        "  active agents {} (summed over rounds) · recommender {} · social {} · nothing {}",
        s.active_agents, s.entered_recommender, s.entered_social, s.did_nothing
    );
    let _ = writeln!(
        out,
        "  pages shown {} ({} items) · searches {} · watches {} · mean rating {}",
        s.pages_shown,
        s.items_shown,
        s.searches,
        s.watches,
        s.mean_rating()
            .map_or_else(|| "-".into(), |m| format!("{m:.2} ({} ratings)", s.ratings))
    );
    let _ = writeln!(
        out,
        "  chats {} ({} lines) · posts {} ({} deliveries) · mentions {} · no acquaintance {}",
        s.chats, s.chat_lines, s.posts, s.deliveries, s.mentions, s.no_acquaintance
    );
    let _ = writeln!(
        out,
        "  messages     {} ({})",
        paths.messages.display(),
        size(&paths.messages)
    );
    let _ = writeln!(
        out,
        "  interactions {} ({})",
        paths.interactions.display(),
        size(&paths.interactions)
    );
    if let Some(u) = sim.llm_usage() {
        let _ = writeln!(
            out,
            "  LLM: {} calls ({} failed, {} HTTP retries, {} from the response cache) · tokens {} prompt + {} completion · {} parse failures, {} corrective retries, {} unparsed",
            u.calls,
            u.failed_calls,
            u.http_retries,
            u.cache_hits,
            u.total.prompt_tokens,
            u.total.completion_tokens,
            u.parse_failures,
            u.corrective_retries,
            u.unparsed_requests
        );
        if u.calls > 0 && u.failed_calls == u.calls {
            let _ = writeln!(
                out,
                "  warning: every LLM call failed, so every decision is a fallback; see the log for why"
            );
            tracing::warn!("every one of the {} LLM calls failed", u.calls);
        }
        for (i, ph) in [
            "activity",
            "",
            "watch",
            "feel",
            "chat",
            "broadcast",
            "remember",
        ]
        .iter()
        .enumerate()
        {
            let Some(p) = u.per_phase.get(i) else {
                continue;
            };
            if !ph.is_empty() && p.prompt_tokens + p.completion_tokens > 0 {
                let _ = writeln!(
                    out,
                    "       {ph:<9} tokens {} prompt + {} completion",
                    p.prompt_tokens, p.completion_tokens
                );
            }
        }
        let opts = &sim.config().llm_options;
        if opts.has_prices() {
            let _ = writeln!(
                out,
                "       cost {:.4} (at the configured prices)",
                opts.cost(u.total)
            );
        }
        if let Some(m) = &u.first_replay_mismatch {
            let _ = writeln!(
                out,
                "  replay: {} mismatches; first: {m}",
                u.replay_mismatches
            );
        }
    }
    let _ = writeln!(out, "  manifest     {}", paths.manifest.display());
    let _ = writeln!(out, "  log          {}", paths.log.display());
    if let Some(l) = sim
        .world()
        .get_resource::<Lineage>()
        .and_then(|l| l.last.clone())
    {
        let _ = writeln!(out, "  checkpoint   {}", l.display());
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Set by the first Ctrl-C: the run stops at the next round boundary (a second one exits at once).
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn real_main() -> Result<()> {
    let cli = Cli::parse();
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
