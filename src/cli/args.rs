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
    /// Measure simulated users against real ones (Agent4Rec's protocol on its real MovieLens-1M
    /// users): watch-or-not precision, recall, accuracy and F1 per ratio, rating RMSE and MAE
    /// beside two baselines, the rating histogram's JS divergence, and the published rows.
    Fidelity(analysis::FidelityArgs),
    /// Fit the calibrated offline user model (`offline.model: calibrated`) on Agent4Rec's real
    /// users, training data only, every hyper-parameter chosen on the valid split; writes a
    /// versioned, checksummed file for `offline.calibration` and `fidelity --calibration`.
    Calibrate(analysis::CalibrateArgs),
    /// Start the web demo: the simulation in the browser (Start, Pause, Step, Reset; the
    /// relationship graph, agent cards, the event log, statistics; interventions, interviews
    /// and role play). Prints the URL; Ctrl-C stops it.
    Demo(DemoArgs),
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Configuration file (YAML; RecAgent's keys are accepted).
    #[arg(long = "config-file", visible_alias = "config", short = 'c')]
    pub(crate) config_file: Option<PathBuf>,
    /// Messages output. Default: <output_dir>/messages.jsonl.
    #[arg(long = "output-file", short = 'o')]
    pub(crate) output_file: Option<PathBuf>,
    /// Log file. Default: <output_dir>/run.log.
    #[arg(long = "log-file", short = 'l')]
    pub(crate) log_file: Option<PathBuf>,
    /// Directory for the default output files (overrides `output_dir`).
    #[arg(long = "output-dir")]
    pub(crate) output_dir: Option<PathBuf>,
    /// Address to listen on; any address but a loopback one needs a token.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 7861)]
    pub(crate) port: u16,
    /// Token for requests that change state (generated and printed for a non-loopback host
    /// when not given).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Seconds a role-played agent waits for the person's answer before its own backend decides.
    #[arg(long = "roleplay-timeout", default_value_t = 60)]
    pub(crate) roleplay_timeout: u64,
    /// A role-play log (`roleplay.jsonl` of an earlier session) whose answers are given again.
    #[arg(long = "roleplay-replay")]
    pub(crate) roleplay_replay: Option<PathBuf>,
    /// Any config key, as KEY=VALUE in YAML syntax (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Replace an earlier run in the output folder.
    #[arg(long)]
    pub(crate) overwrite: bool,
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

/// The command line with every long flag (and subcommand name) that contains `-` also accepted
/// with `_` instead (`--config_file`, `--output_file`, `check_config`), as RecAgent's
/// argparse spells them. The aliases are hidden: `--help` shows the dashed names only.
///
/// Added by walking the built command, so a flag added later gets its alias without a line
/// of its own.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory as _;
    with_underscore_aliases(Cli::command())
}

fn with_underscore_aliases(cmd: clap::Command) -> clap::Command {
    let underscored = |s: &str| s.contains('-').then(|| s.replace('-', "_"));
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd.mut_args(|arg| {
        let spellings: Vec<String> = arg
            .get_long()
            .into_iter()
            .chain(arg.get_all_aliases().unwrap_or_default())
            .filter_map(underscored)
            .collect();
        spellings.into_iter().fold(arg, |a, s| a.alias(s))
    });
    for name in names {
        cmd = cmd.mut_subcommand(&name, |sub| {
            let alias = underscored(sub.get_name());
            let sub = with_underscore_aliases(sub);
            match alias {
                Some(a) => sub.alias(a),
                None => sub,
            }
        });
    }
    cmd
}

/// Parses the process's arguments with [`command`] (exits with clap's message on an error, as
/// `Cli::parse` does).
pub(crate) fn parse() -> Cli {
    use clap::FromArgMatches as _;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value a test gives an argument that takes one: its first possible value, else `1`
    /// (a valid number, path, name or KEY=VALUE-free string for every argument we have).
    fn sample_value(arg: &clap::Arg) -> String {
        arg.get_possible_values()
            .first()
            .map_or_else(|| "1".to_string(), |v| v.get_name().to_string())
    }

    fn takes_value(arg: &clap::Arg) -> bool {
        arg.get_num_args().is_some_and(|n| n.takes_values())
    }

    /// Every long flag containing `-`, of every subcommand, parses in its `_` spelling, and sets
    /// the same argument as the dashed one.
    #[test]
    fn every_flag_parses_with_underscores() {
        let mut root = command();
        // Fills in what derive leaves unset (how many values each argument takes).
        root.build();
        let mut checked = 0;
        for sub in root.get_subcommands() {
            // The subcommand's required arguments, given in their usual spelling.
            let mut required: Vec<String> = Vec::new();
            for a in sub.get_arguments().filter(|a| a.is_required_set()) {
                if let Some(l) = a.get_long() {
                    required.push(format!("--{l}"));
                }
                if takes_value(a) || a.get_long().is_none() {
                    required.push(sample_value(a));
                }
            }
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long().filter(|l| l.contains('-')) else {
                    continue;
                };
                let mut argv = vec!["recagent".to_string(), sub.get_name().to_string()];
                if !arg.is_required_set() {
                    argv.extend(required.iter().cloned());
                }
                argv.push(format!("--{}", long.replace('-', "_")));
                if takes_value(arg) {
                    argv.push(sample_value(arg));
                }
                let m = command()
                    .try_get_matches_from(&argv)
                    .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                let (name, sm) = m.subcommand().unwrap();
                assert_eq!(name, sub.get_name());
                assert_eq!(
                    sm.value_source(arg.get_id().as_str()),
                    Some(clap::parser::ValueSource::CommandLine),
                    "{argv:?}"
                );
                checked += 1;
            }
        }
        // run: config-file, output-file, log-file, interaction-file, output-dir; replay:
        // config-file, output-dir; check-config: config-file; and the analysis commands' own.
        assert!(checked >= 8, "only {checked} dashed flags found");
    }

    /// RecAgent's own command line, verbatim.
    #[test]
    fn recagent_command_line_parses() {
        let argv = [
            "recagent",
            "run",
            "--config_file",
            "config/config.yaml",
            "--output_file",
            "messages.json",
            "--log_file",
            "simulation.log",
        ];
        use clap::FromArgMatches as _;
        let cli = Cli::from_arg_matches(&command().try_get_matches_from(argv).unwrap()).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(a.config_file, Some(PathBuf::from("config/config.yaml")));
        assert_eq!(a.output_file, Some(PathBuf::from("messages.json")));
        assert_eq!(a.log_file, Some(PathBuf::from("simulation.log")));
        assert!(command()
            .try_get_matches_from(["recagent", "check_config"])
            .is_ok());
    }

    /// The aliases stay out of the help.
    #[test]
    fn help_shows_dashed_names_only() {
        let mut root = command();
        let run = root.find_subcommand_mut("run").unwrap();
        let help = run.render_long_help().to_string();
        assert!(help.contains("--config-file"), "{help}");
        assert!(
            !help.contains("config_file") && !help.contains("output_file"),
            "{help}"
        );
        let top = command().render_long_help().to_string();
        assert!(!top.contains("check_config"), "{top}");
    }
}
