//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{analysis, eval_rec};

/// Simulate LLM-driven (or offline-modelled) users in front of a recommender system.
#[derive(Parser)]
#[command(
    name = "recagent",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done; 1 error; 2 bad command line; 130 stopped by Ctrl-C (the first \
                  stops at the end of the round, the second at once; resume from the last checkpoint)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Replace an earlier run or branch in --out (its run files only).
        #[arg(long)]
        overwrite: bool,
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
        /// Replay only the first N rounds (at most the rounds the transcript records).
        #[arg(long)]
        rounds: Option<u32>,
        /// Replay only the first N agents (at most the agents the transcript records); refused
        /// after the run when their prompts depended on the others (see README, "LLM backend").
        #[arg(long)]
        agents: Option<u32>,
        /// Further settings, KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Replace an earlier run in the output directory (its run files only).
        #[arg(long)]
        overwrite: bool,
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
    /// Write a run's report (metrics over rounds, ratings, genres, exposure, top items, agents'
    /// entropy) and print a text summary.
    ///
    /// HTML: one self-contained file with inline plots (opens from disk, no network). md:
    /// Markdown with PNG plots in a folder named after the file.
    Report(ReportArgs),
    /// Train recommenders on an implicit split and print Recall@K / NDCG@K on its test part,
    /// beside Agent4Rec's saved top-20 lists scored by the same code.
    EvalRecommender(eval_rec::EvalArgs),
    /// Write a run's interactions, users and items as RecBole atomic files or plain CSV, to
    /// train standard recommenders on simulated behaviour.
    Export(analysis::ExportArgs),
    /// Run a scenario: every variant x seed as its own `recagent run`, in parallel, then one
    /// comparison table (comparison.csv, comparison.md) of the chosen metrics.
    Scenario(analysis::ScenarioArgs),
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Configuration file (YAML; RecAgent's keys are accepted).
    #[arg(long = "config-file", visible_alias = "config", short = 'c')]
    pub(crate) config_file: Option<PathBuf>,
    /// Messages output: JSON Lines, or one JSON document for a name ending in .json (the
    /// stream then beside it as .jsonl). Default: <output_dir>/messages.jsonl.
    #[arg(long = "output-file", short = 'o')]
    pub(crate) output_file: Option<PathBuf>,
    /// Log file. Default: <output_dir>/run.log.
    #[arg(long = "log-file", short = 'l')]
    pub(crate) log_file: Option<PathBuf>,
    /// Interaction CSV output. Default: `interaction_path`, else <output_dir>/interaction.csv.
    #[arg(long = "interaction-file")]
    pub(crate) interaction_file: Option<PathBuf>,
    /// Directory for the default output files (overrides `output_dir`).
    #[arg(long = "output-dir")]
    pub(crate) output_dir: Option<PathBuf>,
    /// Root seed (overrides `seed`).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Rounds to run (overrides `round`).
    #[arg(long)]
    pub(crate) rounds: Option<u32>,
    /// Number of agents, the first N users by id (overrides `agent_num`).
    #[arg(long)]
    pub(crate) agents: Option<u32>,
    /// Any config key, as KEY=VALUE in YAML syntax (repeatable), e.g. --set rec_model=Random.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Replace an earlier run in the output folder: its manifest, messages, interactions,
    /// metrics, log, report and checkpoints are removed (other files stay).
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// No progress bar and no summary.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// Report format on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One self-contained HTML file.
    Html,
    /// Markdown and PNG files.
    Md,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The run's output folder (metrics.csv, interaction.csv, manifest.json).
    pub(crate) run_dir: PathBuf,
    /// html (one self-contained file) or md (Markdown, PNG plots in a folder beside it).
    #[arg(long, value_enum, default_value = "html")]
    pub(crate) format: ReportFormat,
    /// Report file. Default: <run-dir>/report.html or <run-dir>/report.md.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Reference ratings to compare the run's with: a CSV with a `rating` or `rating_list`
    /// column (e.g. Agent4Rec's agg_top_25.csv), MovieLens ratings.dat, or five numbers
    /// (the 1..5-star histogram).
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
}
