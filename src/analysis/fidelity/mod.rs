//! `recagent fidelity`: simulated users measured against real ones, with Agent4Rec's protocol
//! ([`protocol`]) on Agent4Rec's real MovieLens-1M users ([`data`]), through the simulation's own
//! page and feel decisions and the behaviour backend a run would use. Writes the tables as CSV
//! and Markdown ([`table`]).

pub mod data;
pub mod protocol;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::behaviour::offline::OfflineBackend;
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::decision::Context;

use protocol::{BuiltAgent, Confusion, HeldOut, Training};

/// What `recagent fidelity` measures and how.
#[derive(Clone, Debug)]
pub struct FidelityOptions {
    /// Agent4Rec's data (`shared/data/agent4rec` or its `datasets/ml-1m`).
    pub data: PathBuf,
    /// The `m` of each ratio `1:m`, each 1..=19 (at 1:20 and above ⌊20/(m+1)⌋ = 0: no positive
    /// fits the 20-item list), none twice.
    pub ratios: Vec<u32>,
    /// The first `users` users by id (all when `None`).
    pub users: Option<usize>,
    /// Seed of every draw (held-out ratings, lists) and of the offline model.
    pub seed: u64,
    /// Page size of the browsing sessions (the simulation's `page_size`).
    pub page_size: usize,
    /// Agents built from the profile only (demographics, tiers, liked genres): no watched
    /// history and no memory, as RecAgent's users start (the calibrated model's cold start).
    pub cold_start: bool,
    /// The behaviour backend's settings: `backend` (offline, llm or replay), the offline
    /// model's `offline:` section, and the LLM settings (`api_bases`, `llm`, `llm_options`,
    /// `transcript_path`) as a run reads them.
    pub config: SimConfig,
}

impl FidelityReport {
    /// Page and feel decisions that fell back (the backend's answer failed or did not fit).
    pub fn fallbacks(&self) -> u64 {
        ["page", "feel"]
            .iter()
            .map(|k| self.stats.fallbacks_of(k))
            .sum()
    }

    /// Page and feel decisions asked.
    pub fn requests(&self) -> u64 {
        ["page", "feel"]
            .iter()
            .map(|k| self.stats.requests_of(k))
            .sum()
    }
}

impl Default for FidelityOptions {
    fn default() -> Self {
        let cfg = SimConfig::default();
        Self {
            data: PathBuf::from("../shared/data/agent4rec"),
            ratios: vec![1, 2, 3, 9],
            users: None,
            seed: cfg.seed,
            page_size: 5,
            cold_start: false,
            config: cfg,
        }
    }
}

/// The scores of one ratio, averaged over users (macro averages, as Agent4Rec's Table 1).
#[derive(Clone, Debug, PartialEq)]
pub struct RatioRow {
    /// `m` of `1:m`.
    pub m: u32,
    /// Users scored (those with at least one test item).
    pub users: usize,
    /// Items listed (shown or not: a session may end before the last page; an item never shown
    /// counts as a "no"), summed over users.
    pub listed: u64,
    /// Positives shown.
    pub positives: u64,
    /// Items watched.
    pub watched: u64,
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean accuracy.
    pub accuracy: f64,
    /// Mean F1.
    pub f1: f64,
}

/// Rating scores on the held-out real ratings.
#[derive(Clone, Debug, PartialEq)]
pub struct RatingRow {
    /// Held-out ratings scored.
    pub n: usize,
    /// The agents' RMSE and MAE.
    pub agents: (f64, f64),
    /// The user-mean baseline's RMSE and MAE.
    pub user_mean: (f64, f64),
    /// The user-mean-plus-item-bias baseline's RMSE and MAE.
    pub user_item: (f64, f64),
    /// Counts of the agents' ratings 1..=5.
    pub simulated_hist: [u64; 5],
    /// Counts of the real held-out ratings 1..=5.
    pub real_hist: [u64; 5],
    /// Jensen–Shannon divergence (bits) of the two histograms.
    pub js: f64,
}

/// Everything `fidelity` measured.
#[derive(Clone, Debug, PartialEq)]
pub struct FidelityReport {
    /// Backend name (`offline`, `llm`).
    pub backend: String,
    /// Seed.
    pub seed: u64,
    /// Page size of the sessions.
    pub page_size: usize,
    /// Users in the data and users measured.
    pub users_in_data: usize,
    /// Users measured.
    pub users: usize,
    /// Items in the catalogue.
    pub items: usize,
    /// `agg_top_25.csv` ratings mapped to items and not mapped.
    pub mapped_ratings: usize,
    /// Ratings whose title matched no item.
    pub unmapped_ratings: usize,
    /// One row per ratio, in the order asked.
    pub ratios: Vec<RatioRow>,
    /// The rating check.
    pub ratings: RatingRow,
    /// Page and feel requests and fallbacks.
    pub stats: BehaviourStats,
    /// The LLM backend's counters (calls, tokens, parse failures), for `llm` and `replay`.
    pub llm: Option<crate::llm::LlmUsage>,
}

/// Errors of `fidelity`.
#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// The catalogue could not be built from `movie_detail.csv`.
    #[error("the item table: {0}")]
    Catalog(String),
    /// A ratio or option out of range.
    #[error("{0}")]
    Option(String),
    /// The LLM backend could not be set up.
    #[error("the LLM backend: {0}")]
    Llm(#[from] crate::llm::LlmSetupError),
    /// The calibrated model could not be loaded.
    #[error("the calibrated model: {0}")]
    Calibration(#[from] crate::calibration::CalibrationError),
}

/// The clock of the protocol's sessions: the default configuration's start and interval (the
/// page and feel decisions read only its round).
pub fn session_clock() -> SimClock {
    let cfg = SimConfig::default();
    SimClock::new(
        cfg.start_datetime()
            .expect("invariant: the default start parses"),
        cfg.interval,
    )
}

/// The round the rating requests are keyed with (page decisions use round `m`).
pub const RATING_ROUND: u32 = 100;

/// Runs the protocol with the backend `opts.config` names: the offline model, an LLM (its
/// transcript then in `out_dir/transcript.jsonl` unless `transcript_path` says otherwise) or a
/// replay of such a transcript, which gives the same tables byte for byte.
///
/// # Errors
/// [`FidelityError`] for unreadable data, options out of range, or an LLM backend that cannot
/// be set up.
pub fn run_configured(
    opts: &FidelityOptions,
    out_dir: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<FidelityReport, FidelityError> {
    let cfg = &opts.config;
    if cfg.backend == crate::config::BackendKind::Llm && cfg.api_bases.is_empty() {
        return Err(FidelityError::Option(
            "the LLM backend needs `api_bases` (the servers' URLs) in the configuration given with -c".into(),
        ));
    }
    let real = data::load(&opts.data)?;
    let n_users = real.users.len();
    let offline = {
        let catalog =
            Catalog::new(real.items).map_err(|e| FidelityError::Catalog(e.to_string()))?;
        let source = data::ml1m_dir(&opts.data)
            .join("simulation/movie_detail.csv")
            .display()
            .to_string();
        let p = crate::calibration::load_for(
            &cfg.offline,
            |f| cfg.resolve(Path::new(f)),
            &catalog,
            &source,
        )?;
        if let Some(m) = &p.loaded {
            if m.fit.seed != opts.seed {
                return Err(FidelityError::Option(format!(
                    "the calibration file was fitted with --seed {}, which holds out other ratings than --seed {}: the rating check would score ratings the model was fitted on. Fit one with `recagent calibrate --seed {}`, or run fidelity with --seed {}",
                    m.fit.seed, opts.seed, opts.seed, m.fit.seed
                )));
            }
        }
        p
    };
    let names: BTreeMap<crate::ids::UserId, Arc<str>> = (0..n_users as u32)
        .map(|u| {
            (
                crate::ids::UserId(u),
                Arc::from(format!("User {u}").as_str()),
            )
        })
        .collect();
    let mut kinds = crate::decision::DecisionKinds::default();
    kinds.add::<crate::decision::page::Page>();
    kinds.add::<crate::decision::feel::Feel>();
    let (backend, stats): (Box<dyn crate::behaviour::BehaviourBackend>, _) =
        match crate::llm::backend_for(cfg, &offline, names, out_dir, None, &kinds)? {
            Some((b, stats)) => (b, Some(stats)),
            None => (
                Box::new(OfflineBackend {
                    params: offline,
                    parallel: false,
                }),
                None,
            ),
        };
    let behaviour = Behaviour(backend);
    let mut report = run(opts, &behaviour, progress)?;
    drop(behaviour);
    report.llm = stats.map(|s| s.snapshot());
    if cfg.backend == crate::config::BackendKind::Offline {
        report.backend = match cfg.offline.model {
            crate::decision::offline::OfflineModel::Heuristic => "offline-heuristic".into(),
            crate::decision::offline::OfflineModel::Calibrated => "offline-calibrated".into(),
        };
    }
    Ok(report)
}

/// Runs the protocol through `behaviour` (any backend). `progress(stage, done, total)` is called
/// after each ratio and once for the ratings.
///
/// # Errors
/// [`FidelityError`] for unreadable data or options out of range.
pub fn run(
    opts: &FidelityOptions,
    behaviour: &Behaviour,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<FidelityReport, FidelityError> {
    let max_m = protocol::LIST - 1;
    if opts.ratios.is_empty() || opts.ratios.iter().any(|&m| !(1..=max_m).contains(&m)) {
        return Err(FidelityError::Option(format!(
            "--ratios must list whole numbers from 1 to {max_m} (the m of each 1:m ratio; from 1:{} on, no positive fits a {}-item list), got {:?}",
            protocol::LIST,
            protocol::LIST,
            opts.ratios
        )));
    }
    if let Some(m) = opts
        .ratios
        .iter()
        .enumerate()
        .find(|(i, m)| opts.ratios[..*i].contains(m))
        .map(|x| x.1)
    {
        return Err(FidelityError::Option(format!("--ratios lists 1:{m} twice")));
    }
    if opts.users == Some(0) {
        return Err(FidelityError::Option("--users must be at least 1".into()));
    }
    let real = data::load(&opts.data)?;
    if let Some(n) = opts.users.filter(|&n| n > real.users.len()) {
        return Err(FidelityError::Option(format!(
            "--users {n}: the data has {} users",
            real.users.len()
        )));
    }
    let catalog =
        Catalog::new(real.items.clone()).map_err(|e| FidelityError::Catalog(e.to_string()))?;
    let n_items = catalog.len() as u32;
    let chosen: Vec<&data::RealUser> = real
        .users
        .iter()
        .take(opts.users.unwrap_or(usize::MAX))
        .collect();
    let split: Vec<(Training, HeldOut)> = chosen
        .iter()
        .map(|u| protocol::split_user(u, opts.seed))
        .collect();
    let training: Vec<Training> = split.iter().map(|s| s.0.clone()).collect();
    let mut agents: Vec<BuiltAgent> = training
        .iter()
        .map(|t| protocol::build_agent(t, &catalog))
        .collect();
    if opts.cold_start {
        for a in &mut agents {
            a.histories = Default::default();
            a.memory = Default::default();
        }
    }
    let clock = session_clock();
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: opts.seed,
    };
    let mut stats = BehaviourStats::default();
    let total = opts.ratios.len() as u64 + 1;
    let mut rows = Vec::new();
    for (n, &m) in opts.ratios.iter().enumerate() {
        let mut who = Vec::new();
        let mut samples = Vec::new();
        for (a, (_, held)) in agents.iter().zip(&split) {
            let s = protocol::sample(a.id.0, held, n_items, m, opts.seed);
            if s.positive.iter().any(|&p| p) {
                who.push(a);
                samples.push(s);
            }
        }
        let lists: Vec<Vec<u32>> = samples.iter().map(|s| s.items.clone()).collect();
        let watched =
            protocol::browse(behaviour, &ctx, &mut stats, &who, &lists, opts.page_size, m);
        let c: Vec<Confusion> = samples
            .iter()
            .zip(&watched)
            .map(|(s, w)| Confusion::of(s, w))
            .collect();
        let mean = |f: fn(&Confusion) -> f64| {
            if c.is_empty() {
                0.0
            } else {
                c.iter().map(f).sum::<f64>() / c.len() as f64
            }
        };
        rows.push(RatioRow {
            m,
            users: c.len(),
            listed: samples.iter().map(|s| s.items.len() as u64).sum(),
            positives: samples
                .iter()
                .map(|s| s.positive.iter().filter(|&&p| p).count() as u64)
                .sum(),
            watched: watched.iter().map(|w| w.len() as u64).sum(),
            precision: mean(Confusion::precision),
            recall: mean(Confusion::recall),
            accuracy: mean(Confusion::accuracy),
            f1: mean(Confusion::f1),
        });
        progress("lists", n as u64 + 1, total);
    }
    if rows.iter().all(|r| r.users == 0) {
        return Err(FidelityError::Option(
            "no user has an item in test.txt: there is nothing to score".into(),
        ));
    }
    // Ratings are keyed with a round of their own, the same whatever the ratios (a ratio's page
    // decisions use round m <= 19), so the held-out ratings' answers never depend on the lists.
    let round = RATING_ROUND;
    let refs: Vec<&BuiltAgent> = agents.iter().collect();
    let items: Vec<Vec<u32>> = split
        .iter()
        .map(|(_, h)| h.ratings.iter().map(|r| r.0).collect())
        .collect();
    let given = protocol::rate(behaviour, &ctx, &mut stats, &refs, &items, round);
    let base = protocol::Baselines::fit(&training);
    let mut sim_hist = [0u64; 5];
    let mut real_hist = [0u64; 5];
    let (mut ours, mut um, mut ui) = (Vec::new(), Vec::new(), Vec::new());
    for ((t, (_, held)), g) in training.iter().zip(&split).zip(&given) {
        for (&(item, real), &sim) in held.ratings.iter().zip(g) {
            let r = f64::from(real);
            sim_hist[usize::from(sim.clamp(1, 5) - 1)] += 1;
            real_hist[usize::from(real - 1)] += 1;
            ours.push((f64::from(sim), r));
            um.push((base.user(t.id), r));
            ui.push((base.user_item(t.id, item), r));
        }
    }
    let to_f = |h: &[u64; 5]| h.map(|x| x as f64);
    let js = crate::analysis::report::js_divergence(&to_f(&sim_hist), &to_f(&real_hist))
        .unwrap_or(f64::NAN);
    progress("ratings", total, total);
    Ok(FidelityReport {
        backend: behaviour.0.name().into(),
        seed: opts.seed,
        page_size: opts.page_size,
        users_in_data: real.users.len(),
        users: chosen.len(),
        items: catalog.len(),
        mapped_ratings: real.mapped_ratings,
        unmapped_ratings: real.unmapped_ratings,
        ratios: rows,
        ratings: RatingRow {
            n: ours.len(),
            agents: protocol::rmse_mae(ours),
            user_mean: protocol::rmse_mae(um),
            user_item: protocol::rmse_mae(ui),
            simulated_hist: sim_hist,
            real_hist,
            js,
        },
        stats,
        llm: None,
    })
}

/// One row of the ablation: a variant of the calibrated model and what it scored.
#[derive(Clone, Debug)]
pub struct AblationRow {
    /// What was changed.
    pub variant: String,
    /// Its report.
    pub report: FidelityReport,
}

/// The ablation of the calibrated model `model` (each term removed in turn, [`crate::calibration`]),
/// beside the heuristic model, on the lists and held-out ratings of `opts`. `progress(variant,
/// done, total)` after each variant.
///
/// # Errors
/// [`FidelityError`] as [`run`].
pub fn ablation(
    opts: &FidelityOptions,
    model: &crate::calibration::CalibratedModel,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<Vec<AblationRow>, FidelityError> {
    use crate::calibration::{CalibratedModel, Moments};
    use crate::decision::offline::{OfflineModel, OfflineParams};
    let zeroed = |m: &mut CalibratedModel, taste: bool, bias: bool| {
        if taste {
            m.history.iter_mut().for_each(|v| *v = 0.0);
            m.target.iter_mut().for_each(|v| *v = 0.0);
            m.centroids.iter_mut().for_each(|v| *v = 0.0);
        }
        if bias {
            m.bias.iter_mut().for_each(|v| *v = 0.0);
        }
        m.moments = Moments::of(&m.target, &m.bias, m.dim);
    };
    let mut variants: Vec<(String, Option<CalibratedModel>, bool)> = vec![
        ("heuristic model".into(), None, false),
        ("calibrated, every term".into(), Some(model.clone()), false),
    ];
    let mut m = model.clone();
    zeroed(&mut m, true, false);
    variants.push((
        "no taste (x_u = 0: popularity b_i only)".into(),
        Some(m),
        false,
    ));
    let mut m = model.clone();
    zeroed(&mut m, false, true);
    variants.push(("no popularity (b_i = 0)".into(), Some(m), false));
    variants.push((
        "cold start (no history: genre centroids, prior mean)".into(),
        Some(model.clone()),
        true,
    ));
    let mut m = model.clone();
    m.choice.watcher_shift = 0.0;
    variants.push(("no Watcher shift (δ = 0)".into(), Some(m), false));
    let mut m = model.clone();
    m.rating.spread = 1.0;
    m.rating.noise = 0.0;
    variants.push((
        "ratings: no histogram matching (c = 1, κ = 0)".into(),
        Some(m),
        false,
    ));
    let total = variants.len() as u64;
    let mut rows = Vec::new();
    for (n, (name, m, cold)) in variants.into_iter().enumerate() {
        let params = match m {
            Some(m) => OfflineParams {
                model: OfflineModel::Calibrated,
                calibration: Some("(ablation)".into()),
                loaded: Some(Arc::new(m)),
                ..opts.config.offline.clone()
            },
            None => OfflineParams {
                model: OfflineModel::Heuristic,
                loaded: None,
                ..opts.config.offline.clone()
            },
        };
        let behaviour = Behaviour(Box::new(OfflineBackend {
            params,
            parallel: false,
        }));
        let o = FidelityOptions {
            cold_start: cold,
            ..opts.clone()
        };
        let report = run(&o, &behaviour, &|_, _, _| {})?;
        rows.push(AblationRow {
            variant: name.clone(),
            report,
        });
        progress(&name, n as u64 + 1, total);
    }
    Ok(rows)
}
