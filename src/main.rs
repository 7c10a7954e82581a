//! `recagent` command line: run a simulation, or check a configuration.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use recagent::config::SimConfig;
use recagent::io::output::OutputPaths;
use recagent::sim::Sim;

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
    /// Parse and validate a configuration, print the resolved settings, and exit.
    CheckConfig {
        /// Configuration file (YAML).
        #[arg(long = "config-file", visible_alias = "config", short = 'c')]
        config_file: Option<PathBuf>,
    },
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
    OutputPaths {
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
    }
}

fn init_log(path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECAGENT_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(true)
        .init();
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

fn run(a: RunArgs) -> Result<()> {
    let started = Instant::now();
    let base = load_config(a.config_file.as_deref())?;
    let mut overrides: Vec<(String, String)> = Vec::new();
    for s in &a.set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected KEY=VALUE"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
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
    init_log(&paths.log)?;
    tracing::info!(pid = std::process::id(), config = %cfg.redacted_json(), "starting");
    let rounds = cfg.round;
    if cfg.backend == recagent::config::BackendKind::Llm && cfg.llm_options.has_prices() && !a.quiet
    {
        let e = recagent::llm::estimate::estimate(&cfg)?;
        println!(
            "recagent: estimated LLM use: {} requests in round 1, ~{} prompt + ~{} completion tokens over {} rounds, ~{:.4} (at the configured prices)",
            e.requests_round_one, e.run.prompt_tokens, e.run.completion_tokens, rounds, e.cost
        );
    }
    let llm_options = cfg.llm_options.clone();
    let mut sim = Sim::new(cfg, paths.clone())?;
    sim.write_manifest("running")?;
    let pb = if a.quiet {
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
    for _ in 0..rounds {
        let t = Instant::now();
        if let Err(e) = sim.step() {
            let _ = sim.write_manifest(&format!("failed in round {}", sim.round()));
            pb.abandon();
            return Err(e.into());
        }
        let s = sim.stats();
        tracing::info!(
            round = sim.round(),
            secs = t.elapsed().as_secs_f64(),
            "round done"
        );
        pb.set_message(format!(
            "watches {} · chats {} · posts {}",
            s.watches, s.chats, s.posts
        ));
        pb.inc(1);
        sim.write_manifest("running")?;
    }
    pb.finish_and_clear();
    sim.write_manifest("finished")?;
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(wall_secs = wall, "finished");
    if !a.quiet {
        let s = sim.stats();
        let r = sim.load_report();
        let size = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| human_bytes(m.len()))
                .unwrap_or_else(|_| "-".into())
        };
        println!(
            "recagent: {} rounds finished in {wall:.2} s (wall)",
            s.rounds
        );
        println!("  agents {} of {} users · items {} · contacts {} directed ({} dropped, {} agents without contacts)",
            r.agents, r.users_in_file, r.items, r.edges, r.dropped_edges, r.agents_without_contacts);
        println!(
            "  active agents {} (summed over rounds) · recommender {} · social {} · nothing {}",
            s.active_agents, s.entered_recommender, s.entered_social, s.did_nothing
        );
        println!(
            "  pages shown {} ({} items) · searches {} · watches {} · mean rating {}",
            s.pages_shown,
            s.items_shown,
            s.searches,
            s.watches,
            s.mean_rating()
                .map_or_else(|| "-".into(), |m| format!("{m:.2} ({} ratings)", s.ratings))
        );
        println!(
            "  chats {} ({} lines) · posts {} ({} deliveries) · mentions {} · no acquaintance {}",
            s.chats, s.chat_lines, s.posts, s.deliveries, s.mentions, s.no_acquaintance
        );
        println!(
            "  messages     {} ({})",
            paths.messages.display(),
            size(&paths.messages)
        );
        println!(
            "  interactions {} ({})",
            paths.interactions.display(),
            size(&paths.interactions)
        );
        if let Some(u) = sim.llm_usage() {
            println!(
                "  LLM: {} calls ({} failed, {} HTTP retries) · tokens {} prompt + {} completion · {} parse failures, {} corrective retries, {} unparsed",
                u.calls,
                u.failed_calls,
                u.http_retries,
                u.total.prompt_tokens,
                u.total.completion_tokens,
                u.parse_failures,
                u.corrective_retries,
                u.unparsed_requests
            );
            for (i, ph) in ["activity", "", "watch", "feel", "chat", "broadcast"]
                .iter()
                .enumerate()
            {
                let p = u.per_phase[i];
                if !ph.is_empty() && p.prompt_tokens + p.completion_tokens > 0 {
                    println!(
                        "       {ph:<9} tokens {} prompt + {} completion",
                        p.prompt_tokens, p.completion_tokens
                    );
                }
            }
            if llm_options.has_prices() {
                println!(
                    "       cost {:.4} (at the configured prices)",
                    llm_options.cost(u.total)
                );
            }
            if let Some(m) = &u.first_replay_mismatch {
                println!("  replay: {} mismatches; first: {m}", u.replay_mismatches);
            }
        }
        println!("  manifest     {}", paths.manifest.display());
        println!("  log          {}", paths.log.display());
    }
    Ok(())
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

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => run(a),
        Command::CheckConfig { config_file } => {
            let cfg = load_config(config_file.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&cfg.redacted_json())?);
            println!("configuration OK");
            Ok(())
        }
    }
}
