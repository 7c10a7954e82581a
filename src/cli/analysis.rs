//! The analysis commands: `export` (and `scenario`), thin layers over [`recagent::analysis`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use recagent::analysis::export::{self, ExportFormat, ExportOptions};
use recagent::decision::offline::OfflineModel;

/// `recagent export` format names.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FormatArg {
    /// RecBole atomic files: <name>.inter, <name>.user, <name>.item (tab-separated).
    Recbole,
    /// Plain CSV: interactions.csv, users.csv, items.csv.
    Csv,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The run's output directory (holds manifest.json and interaction.csv).
    pub(crate) run_dir: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "recbole")]
    pub(crate) format: FormatArg,
    /// Parent directory of the data set folder (RecBole's `data_path`). Default: <run-dir>/export.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Data set name (RecBole's `dataset`): the folder and file stem. Default: the run
    /// directory's name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// RecBole: every shown item as a row with a `label:float` column (1 watched, 0 shown
    /// only), instead of the watched items only.
    #[arg(long)]
    pub(crate) with_shown: bool,
    /// Directory the run's configured data paths are relative to, when the manifest's
    /// relative `base_dir` does not resolve from the current directory.
    #[arg(long = "base-dir")]
    pub(crate) base_dir: Option<PathBuf>,
}

pub(crate) fn export(a: &ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        format: match a.format {
            FormatArg::Recbole => ExportFormat::RecBole,
            FormatArg::Csv => ExportFormat::Csv,
        },
        out_dir: a.out.clone().unwrap_or_else(|| a.run_dir.join("export")),
        name: a
            .name
            .clone()
            .unwrap_or_else(|| export::default_name(&a.run_dir)),
        with_shown: a.with_shown,
        base_dir: a.base_dir.clone(),
    };
    let s = export::export(&a.run_dir, &opts)?;
    say!(
        "exported {} interactions (of {} rows in the run's interaction.csv), {} users, {} items to {}",
        s.interactions,
        s.rows_read,
        s.users,
        s.items,
        s.dir.display()
    );
    for f in &s.files {
        say!("  {}", f.display());
    }
    if s.normalised > 0 {
        say!(
            "  {} user or item rows had tabs, line breaks or a leading double quote in a value, replaced (see the README)",
            s.normalised
        );
    }
    if matches!(a.format, FormatArg::Recbole) {
        let parent = s
            .dir
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let inter = if a.with_shown {
            "[user_id, item_id, label, rating, timestamp]"
        } else {
            "[user_id, item_id, rating, timestamp]"
        };
        say!(
            "RecBole: data_path: {parent}, dataset: {}, load_col: {{inter: {inter}, user: [user_id, age, gender, status], item: [item_id, movie_title, genre]}}",
            opts.name
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct ScenarioArgs {
    /// The scenario file (YAML: base, set, seeds, variants, metrics; see README "Scenarios").
    pub(crate) file: PathBuf,
    /// Runs at once (default: the machine's cores).
    #[arg(long, short = 'j')]
    pub(crate) jobs: Option<usize>,
    /// Output folder: one folder per variant and seed, and the comparison files. Default:
    /// output/scenarios/<file stem>.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// No progress bar and no table on stdout.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

pub(crate) fn scenario(a: &ScenarioArgs, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use recagent::analysis::scenario::{self, RunnerOptions, Scenario, VariantRuns};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let started = std::time::Instant::now();
    let sc = Scenario::load(&a.file)?;
    let stem = a
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output/scenarios").join(&stem));
    std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", out.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let jobs = a.jobs.unwrap_or(cores).max(1);
    anyhow::ensure!(a.jobs != Some(0), "--jobs 0: allowed 1 or more");
    let population = scenario::prepare_population(&sc, &out)?;
    let specs = sc.plan(&out, &population);
    let opts = RunnerOptions {
        exe: std::env::current_exe()?,
        jobs,
        // Parallel children share the cores instead of each taking all of them.
        threads_per_run: (jobs > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none())
            .then(|| (cores / jobs).max(1)),
    };
    if !a.quiet {
        say!(
            "scenario {}: {} variants x {} seeds = {} runs, {} at once, into {}",
            a.file.display(),
            sc.variants.len(),
            sc.seeds.len(),
            specs.len(),
            jobs.min(specs.len()),
            out.display()
        );
    }
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(specs.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} runs {pos}/{len} [{bar:30}] {elapsed_precise} (eta {eta}) {msg}",
        )
        .expect("invariant: valid template")
        .progress_chars("=> "),
    );
    // Runs take seconds to minutes each: keep the clock moving between them.
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    let failed_n = AtomicUsize::new(0);
    let outcomes = scenario::run_all(&specs, &opts, stop, &|o| {
        if let Err(f) = &o.result {
            failed_n.fetch_add(1, Ordering::SeqCst);
            // Printed whether or not the bar is drawn (a hidden bar swallows `println`).
            pb.suspend(|| {
                eprintln!(
                    "run {} seed {} failed ({}): {}\n  log: {}",
                    o.spec.variant,
                    o.spec.seed,
                    f.status,
                    f.last_line,
                    o.spec.console_log().display()
                );
            });
        }
        pb.set_message(format!("{} failed", failed_n.load(Ordering::SeqCst)));
        pb.inc(1);
    });
    pb.finish_and_clear();

    let mut variants: Vec<VariantRuns> = sc
        .variants
        .iter()
        .map(|v| VariantRuns {
            name: v.name.clone(),
            runs: Vec::new(),
        })
        .collect();
    let mut failed = Vec::new();
    let mut times = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(t) => {
                times.push(t.as_secs_f64());
                if let Some(v) = variants.iter_mut().find(|v| v.name == o.spec.variant) {
                    v.runs.push((o.spec.seed, o.spec.dir.clone()));
                }
            }
            Err(_) => failed.push((o.spec.variant.clone(), o.spec.seed, o.spec.console_log())),
        }
    }
    let skipped = specs.len() - outcomes.len();
    if times.is_empty() {
        if let Some((o, f)) = outcomes
            .iter()
            .find_map(|o| o.result.as_ref().err().map(|f| (o, f)))
        {
            // Nothing to compare: a table of empty cells would look like a result.
            anyhow::bail!(
                "every run failed ({} of {}), no comparison written; the first, {} seed {}: {}\n  log: {}",
                failed.len(),
                specs.len(),
                o.spec.variant,
                o.spec.seed,
                f.last_line,
                o.spec.console_log().display()
            );
        }
    }
    let table =
        scenario::compare(&variants, &sc.metrics).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let files = table
        .write(&out, &stem, sc.description.as_deref(), &sc.seeds, &failed)
        .map_err(anyhow::Error::msg)?;
    // The report overlays each compared column's curve (variants without a finished run
    // have nothing to draw).
    let report_variants: Vec<recagent::analysis::report::Variant> = variants
        .iter()
        .filter(|v| !v.runs.is_empty())
        .map(|v| recagent::analysis::report::Variant {
            name: v.name.clone(),
            runs: v.runs.iter().map(|r| r.1.clone()).collect(),
        })
        .collect();
    let columns: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.as_str() != "round")
        .cloned()
        .collect();
    let report = if report_variants.is_empty() || columns.is_empty() {
        None
    } else {
        Some(
            recagent::analysis::report::write_comparison(
                &report_variants,
                &columns,
                &out,
                recagent::analysis::report::Format::Html,
            )
            .map_err(|e| anyhow::anyhow!("comparison report: {e}"))?,
        )
    };
    let wall = started.elapsed().as_secs_f64();
    if !a.quiet {
        let md = std::fs::read_to_string(&files[3]).unwrap_or_default();
        say!("{md}");
        let (lo, hi) = times.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), t| {
            (lo.min(*t), hi.max(*t))
        });
        if !times.is_empty() {
            say!(
                "{} runs in {wall:.1} s (each {lo:.1}–{hi:.1} s); wrote {}",
                times.len(),
                files
                    .iter()
                    .chain(&report)
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if skipped > 0 {
        anyhow::bail!(
            "interrupted: {skipped} of {} runs were not started; the table holds the runs that finished",
            specs.len()
        );
    }
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(v, s, log)| format!("{v} seed {s} (log: {})", log.display()))
            .collect();
        anyhow::bail!(
            "{} of {} runs failed: {}",
            failed.len(),
            specs.len(),
            list.join("; ")
        );
    }
    Ok(())
}

/// `recagent fidelity --backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FidelityBackend {
    /// The offline user model (the configuration's `offline:` settings).
    Offline,
    /// The configuration's LLM servers (`api_bases`, `llm`, `llm_options`); the transcript
    /// goes into --out.
    Llm,
    /// Answers from the configuration's `transcript_path` (an earlier `--backend llm` run's
    /// transcript): the same tables, offline.
    Replay,
}

#[derive(Args)]
pub(crate) struct FidelityArgs {
    /// Agent4Rec's data: the folder holding datasets/ml-1m (or ml-1m itself).
    #[arg(long, default_value = "../shared/data/agent4rec")]
    pub(crate) data: PathBuf,
    /// The m of each 1:m ratio of held-out positives to never-interacted items, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,9")]
    pub(crate) ratios: Vec<u32>,
    /// Configuration whose behaviour settings the agents use (backend, offline:, api_bases,
    /// llm, llm_options, transcript_path). Default: the embedded one (offline model).
    #[arg(long = "config-file", visible_alias = "config", short = 'c')]
    pub(crate) config_file: Option<PathBuf>,
    /// Behaviour backend (default: the configuration's `backend`).
    #[arg(long, value_enum)]
    pub(crate) backend: Option<FidelityBackend>,
    /// Measure the first N users by id (default: all 1,000).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Seed of the held-out ratings, the lists and the offline model (default: the
    /// configuration's seed).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Page size of the browsing sessions (the simulation's page_size).
    #[arg(long, default_value_t = 5)]
    pub(crate) page_size: usize,
    /// The offline model (default: the configuration's `offline.model`, `heuristic`).
    #[arg(long, value_enum)]
    pub(crate) model: Option<ModelArg>,
    /// The calibrated model's file, made by `recagent calibrate` (sets `offline.model:
    /// calibrated` unless --model says otherwise).
    #[arg(long)]
    pub(crate) calibration: Option<PathBuf>,
    /// Agents from the profile only (no watched history, no memory), as RecAgent's users start.
    #[arg(long)]
    pub(crate) cold_start: bool,
    /// Also run the ablation of the calibrated model (each term removed in turn, beside the
    /// heuristic model): ablation.csv and ablation.md. Needs --calibration.
    #[arg(long)]
    pub(crate) ablation: bool,
    /// Output folder for fidelity.csv, ratings.csv and fidelity.md (and an LLM run's
    /// transcript.jsonl).
    #[arg(long, default_value = "output/fidelity")]
    pub(crate) out: PathBuf,
    /// No progress bar and no tables on stdout (the one-line summary stays).
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// `--model` names.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ModelArg {
    /// The hand-set model (genre affinity, taste draw, templates).
    Heuristic,
    /// The model fitted by `recagent calibrate`.
    Calibrated,
}

impl From<ModelArg> for OfflineModel {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Heuristic => OfflineModel::Heuristic,
            ModelArg::Calibrated => OfflineModel::Calibrated,
        }
    }
}

pub(crate) fn fidelity(a: &FidelityArgs) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use recagent::analysis::fidelity::{self, table, FidelityOptions};
    use recagent::config::{BackendKind, SimConfig};

    anyhow::ensure!(
        (1..=50).contains(&a.page_size),
        "--page-size {}: allowed 1 to 50",
        a.page_size
    );
    let started = std::time::Instant::now();
    let mut config = match &a.config_file {
        Some(p) => SimConfig::load(p)?,
        None => SimConfig::default(),
    };
    if let Some(b) = a.backend {
        config.backend = match b {
            FidelityBackend::Offline => BackendKind::Offline,
            FidelityBackend::Llm => BackendKind::Llm,
            FidelityBackend::Replay => BackendKind::Replay,
        };
    }
    if let Some(f) = &a.calibration {
        config.offline.calibration = Some(f.display().to_string());
        config.offline.model = OfflineModel::Calibrated;
    }
    if let Some(m) = a.model {
        config.offline.model = m.into();
    }
    if config.offline.model == OfflineModel::Calibrated && config.offline.calibration.is_none() {
        anyhow::bail!(
            "--model calibrated needs --calibration FILE, a file made by `recagent calibrate`"
        );
    }
    let opts = FidelityOptions {
        data: a.data.clone(),
        ratios: a.ratios.clone(),
        users: a.users,
        page_size: a.page_size,
        seed: a.seed.unwrap_or(config.seed),
        cold_start: a.cold_start,
        config,
    };
    anyhow::ensure!(
        !a.ablation || opts.config.offline.calibration.is_some(),
        "--ablation needs --calibration FILE (the model whose terms it removes)"
    );
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(opts.ratios.len() as u64 + 1);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    // Before the work, so a folder that cannot be written is found before it is done.
    std::fs::create_dir_all(&a.out).map_err(|e| {
        anyhow::anyhow!("{}: cannot create the output folder: {e}", a.out.display())
    })?;
    let report = fidelity::run_configured(&opts, &a.out, &|stage, done, _| {
        bar.set_message(stage.to_string());
        bar.set_position(done);
    })
    .map_err(|e| anyhow::anyhow!("fidelity: {e}"))?;
    bar.finish_and_clear();
    let files = table::write(&report, &a.out)
        .map_err(|e| anyhow::anyhow!("cannot write the tables: {e}"))?;
    if !a.quiet {
        print!("{}", table::markdown(&report));
        println!();
    }
    say!(
        "fidelity: {} users, {} ratios, {} held-out ratings in {:.1} s; wrote {}",
        report.users,
        report.ratios.len(),
        report.ratings.n,
        started.elapsed().as_secs_f64(),
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if a.ablation {
        let path = opts.config.offline.calibration.clone().unwrap_or_default();
        let model = recagent::calibration::CalibratedModel::load(
            &opts.config.resolve(std::path::Path::new(&path)),
        )?;
        let rows = fidelity::ablation(&opts, &model, &|v, _, _| {
            if !a.quiet {
                eprintln!("ablation: {v}");
            }
        })
        .map_err(|e| anyhow::anyhow!("fidelity --ablation: {e}"))?;
        let md = table::ablation_markdown(&rows);
        for (name, text) in [
            ("ablation.csv", table::ablation_csv(&rows)),
            ("ablation.md", md.clone()),
        ] {
            let p = a.out.join(name);
            std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        }
        if !a.quiet {
            println!("{md}");
        }
        say!(
            "fidelity: wrote {}, {}",
            a.out.join("ablation.csv").display(),
            a.out.join("ablation.md").display()
        );
    }
    let (fell, asked) = (report.fallbacks(), report.requests());
    anyhow::ensure!(
        fell < asked,
        "every one of the {asked} decisions fell back (see the warnings above): the tables in {} measure the fallback, not the backend",
        a.out.display()
    );
    if fell > 0 {
        eprintln!("warning: {fell} of {asked} decisions fell back; fidelity.md says so");
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct CalibrateArgs {
    /// Agent4Rec's data: the folder holding datasets/ml-1m (or ml-1m itself).
    #[arg(long, default_value = "../shared/data/agent4rec")]
    pub(crate) data: PathBuf,
    /// The calibration file to write.
    #[arg(long, default_value = "output/calibration.bin")]
    pub(crate) out: PathBuf,
    /// Seed of the fit and of the held-out ratings it leaves out (use the same with
    /// `fidelity --seed`; default: the embedded configuration's seed).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Embedding sizes tried on the valid split, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64")]
    pub(crate) dims: Vec<usize>,
    /// Epoch counts tried on the valid split, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50,100")]
    pub(crate) epochs: Vec<usize>,
    /// SGD learning rates of the preference model tried, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1")]
    pub(crate) lr: Vec<f64>,
    /// L2 weights of the preference model tried, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.003,0.01")]
    pub(crate) reg: Vec<f64>,
    /// Fit on the first N users by id (default: all).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Move the model onto a run's item file whose ids are ML-1M's movies.dat line order
    /// (RecAgent's item.csv, the bundled data/item.csv), so `offline.model: calibrated` can
    /// drive a simulation on it. Default: Agent4Rec's catalogue, for `fidelity`.
    #[arg(long)]
    pub(crate) items: Option<PathBuf>,
    /// No progress bar and no list of what was tried.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

pub(crate) fn calibrate(a: &CalibrateArgs) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use recagent::calibration::fit::{self, CalibrateOptions};

    let started = std::time::Instant::now();
    // Before the fit, so an --out that cannot be written is found before the work is done.
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", dir.display()))?;
    }
    let probe = a.out.with_extension("tmp");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| anyhow::anyhow!("{}: cannot write there: {e}", a.out.display()))?;
    let opts = CalibrateOptions {
        data: a.data.clone(),
        seed: a
            .seed
            .unwrap_or(recagent::config::SimConfig::default().seed),
        dims: a.dims.clone(),
        epochs: a.epochs.clone(),
        lr: a.lr.clone(),
        reg: a.reg.clone(),
        users: a.users,
        ..CalibrateOptions::default()
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(
            (opts.dims.len() * opts.epochs.len() * opts.lr.len() * opts.reg.len()) as u64 + 2,
        );
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let model = fit::calibrate(&opts, &|stage, done, _| {
        bar.set_message(stage.to_string());
        bar.set_position(done);
    })
    .map_err(|e| anyhow::anyhow!("calibrate: {e}"))?;
    bar.finish_and_clear();
    let model = match &a.items {
        None => model,
        Some(items) => {
            let real = recagent::analysis::fidelity::data::load(&a.data)?;
            let fitted = recagent::catalog::Catalog::new(real.items)?;
            let (m, mapped, unmapped) = fit::map_onto(&model, &fitted, &a.data, items)
                .map_err(|e| anyhow::anyhow!("calibrate --items: {e}"))?;
            say!(
                "calibrate: {} of {} items of {} mapped onto fitted movies ({unmapped} kept the cold-item default)",
                mapped,
                mapped + unmapped,
                items.display()
            );
            m
        }
    };
    model
        .save(&a.out)
        .map_err(|e| anyhow::anyhow!("calibrate: {e}"))?;
    if !a.quiet {
        for t in &model.fit.tried {
            println!("  {t}");
        }
    }
    let f = &model.fit;
    say!(
        "calibrate: {} users, {} interactions, {} ratings; chose dim {}, {} epochs, lr {}, reg {}, threshold {:.1}, temperature {}, watcher shift {}, rating spread {:.1}, noise {}; valid accuracy 1:1 {:.3}, F1 1:9 {:.3}, rating RMSE {:.3}, JS {:.4}; wrote {} in {:.1} s",
        f.users,
        f.interactions,
        f.ratings,
        f.dim,
        f.epochs,
        f.lr,
        f.reg,
        model.choice.threshold,
        model.choice.temperature,
        model.choice.watcher_shift,
        model.rating.spread,
        model.rating.noise,
        f.valid[0],
        f.valid[1],
        f.valid[2],
        f.valid[3],
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
