//! `recagent calibrate`: fits the calibrated model ([`super`]) on Agent4Rec's real users, on
//! training data only, and chooses every hyper-parameter on data the fidelity protocol does not
//! score:
//! - the preference model (embedding size, epochs) by its AUC on **valid-split** lists built
//!   as the protocol builds its test lists (`k` valid items and `m·k` items outside the user's
//!   train and valid splits, at 1:1 and 1:9);
//! - the choice threshold, temperature and Watcher shift by `accuracy@1:1 + F1@1:9` of the
//!   real page decisions on those valid lists ([`crate::analysis::fidelity::protocol::browse`]);
//! - the rating weights by least squares, and the spread and noise by RMSE under a histogram
//!   constraint (JS ≤ [`JS_TARGET`]), on a validation fold of each user's *training* ratings
//!   ([`RATING_FOLD`] of them): the data holds no real rating of a valid item.
//!
//! The held-out ratings the protocol scores are those of [`split_user`] with the same seed; the
//! fit never reads them (they are not in [`Training`]), which a test checks.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{
    damped_mean_sd, CalibratedModel, CatalogueStamp, ChoiceParams, FitRecord, Moments,
    RatingParams, ALPHA,
};
use crate::analysis::fidelity::data::{self, RealUser};
use crate::analysis::fidelity::protocol::{
    self, build_agent, split_user, BuiltAgent, Confusion, HeldOut, Training,
};
use crate::analysis::fidelity::FidelityError;
use crate::behaviour::offline::OfflineBackend;
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::config::SimConfig;
use crate::decision::offline::{OfflineModel, OfflineParams};
use crate::decision::Context;
use crate::ids::ItemId;
use crate::rng::{stream_rng, Stream};

/// Share of each user's training ratings held out to tune the rating model.
pub const RATING_FOLD: f64 = 0.2;
/// The histogram constraint of the rating tuning: Jensen–Shannon divergence (bits).
pub const JS_TARGET: f64 = 0.02;
/// `λ_u` of the agents' damped mean rating and spread.
pub const USER_DAMPING: f64 = 3.0;

/// What `recagent calibrate` fits and how.
#[derive(Clone, Debug)]
pub struct CalibrateOptions {
    /// Agent4Rec's data (`shared/data/agent4rec` or its `datasets/ml-1m`).
    pub data: PathBuf,
    /// Seed of the fit, and of the held-out ratings it leaves out (the same as `fidelity`'s).
    pub seed: u64,
    /// Embedding sizes tried.
    pub dims: Vec<usize>,
    /// Epoch counts tried.
    pub epochs: Vec<usize>,
    /// SGD learning rates tried.
    pub lr: Vec<f64>,
    /// L2 weights tried.
    pub reg: Vec<f64>,
    /// Page size of the validation sessions.
    pub page_size: usize,
    /// The first `users` users (all when `None`).
    pub users: Option<usize>,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        Self {
            data: PathBuf::from("../shared/data/agent4rec"),
            seed: SimConfig::default().seed,
            dims: vec![32, 64],
            epochs: vec![50, 100],
            lr: vec![0.05, 0.1],
            reg: vec![0.003, 0.01],
            page_size: 5,
            users: None,
        }
    }
}

/// FISM parameters: `(history y, target q, bias b)`, items × d, items × d, items.
pub type Fism = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Trains FISM with the BPR loss ([`super`], "Preference") on `histories` (catalogue indices
/// per user): per epoch, users in a shuffled order; for each positive `i` of a user a negative
/// `j` drawn uniformly outside the user's items; `x` leaves `i` out (`(Σy − y_i)(n−1)^(−α)`);
/// SGD on `ln σ(s_ui − s_uj)` with L2 `reg`, the history vectors updated once per user with the
/// mean gradient.
pub fn train_fism(
    histories: &[Vec<u32>],
    n_items: usize,
    d: usize,
    epochs: usize,
    lr: f64,
    reg: f64,
    seed: u64,
) -> Fism {
    let mut rng = stream_rng(seed, Stream::Calibration, &[1, d as u64, epochs as u64]);
    let init = |rng: &mut ChaCha8Rng| -> Vec<f32> {
        (0..n_items * d)
            .map(|_| (crate::decision::offline::normal(rng) * 0.1) as f32)
            .collect()
    };
    let mut y = init(&mut rng);
    let mut q = init(&mut rng);
    let mut b = vec![0f32; n_items];
    let (lr, reg) = (lr as f32, reg as f32);
    let sets: Vec<BTreeSet<u32>> = histories
        .iter()
        .map(|h| h.iter().copied().collect())
        .collect();
    let mut order: Vec<usize> = (0..histories.len()).collect();
    let (mut s, mut x, mut gx, mut dq) =
        (vec![0f32; d], vec![0f32; d], vec![0f32; d], vec![0f32; d]);
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        for &u in &order {
            let h = &histories[u];
            let n = h.len();
            if n < 2 || sets[u].len() >= n_items {
                continue;
            }
            s.iter_mut().for_each(|v| *v = 0.0);
            for &j in h {
                let row = &y[j as usize * d..(j as usize + 1) * d];
                s.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            let scale = ((n - 1) as f64).powf(-ALPHA) as f32;
            gx.iter_mut().for_each(|v| *v = 0.0);
            for &i in h {
                let j = loop {
                    let j = rng.random_range(0..n_items as u32);
                    if !sets[u].contains(&j) {
                        break j;
                    }
                };
                let (iu, ju) = (i as usize * d, j as usize * d);
                let yi = &y[iu..iu + d];
                for k in 0..d {
                    x[k] = (s[k] - yi[k]) * scale;
                }
                let mut diff = b[i as usize] - b[j as usize];
                for k in 0..d {
                    dq[k] = q[iu + k] - q[ju + k];
                    diff += x[k] * dq[k];
                }
                let g = 1.0 / (1.0 + f64::from(diff).exp()) as f32;
                for k in 0..d {
                    gx[k] += g * dq[k];
                    q[iu + k] += lr * (g * x[k] - reg * q[iu + k]);
                    q[ju + k] += lr * (-g * x[k] - reg * q[ju + k]);
                }
                b[i as usize] += lr * (g - reg * b[i as usize]);
                b[j as usize] += lr * (-g - reg * b[j as usize]);
            }
            for &j in h {
                let row = &mut y[j as usize * d..(j as usize + 1) * d];
                for k in 0..d {
                    row[k] += lr * (gx[k] * scale / n as f32 - reg * row[k]);
                }
            }
        }
    }
    (y, q, b)
}

/// One user's data split for calibration.
struct Fitted {
    training: Training,
    agent: BuiltAgent,
    valid: HeldOut,
    /// Catalogue indices of the train split.
    history: Vec<u32>,
}

fn prepare(real: &[RealUser], catalog: &Catalog, seed: u64) -> Vec<Fitted> {
    real.iter()
        .map(|u| {
            let (training, _) = split_user(u, seed);
            let agent = build_agent(&training, catalog);
            let interacted: BTreeSet<u32> = u
                .train
                .iter()
                .chain(&u.valid)
                .copied()
                .chain(training.ratings.iter().map(|r| r.0))
                .collect();
            let history = u
                .train
                .iter()
                .filter_map(|&i| catalog.index_of(ItemId(i)))
                .collect();
            Fitted {
                training,
                agent,
                valid: HeldOut {
                    test: u.valid.clone(),
                    interacted,
                    ratings: Vec::new(),
                },
                history,
            }
        })
        .collect()
}

/// The model with the preference parameters `f` and everything else at a neutral value, for
/// tuning.
fn assemble(
    f: Fism,
    d: usize,
    catalog: &Catalog,
    stamp: CatalogueStamp,
    users: &[Fitted],
    record: FitRecord,
) -> CalibratedModel {
    let (history, target, bias) = f;
    let moments = Moments::of(&target, &bias, d);
    let genres = catalog.genre_names().to_vec();
    let mut model = CalibratedModel {
        catalogue: stamp,
        fit: record,
        dim: d,
        history,
        target,
        bias,
        genres: genres.clone(),
        centroids: vec![0.0; genres.len() * d],
        moments,
        choice: ChoiceParams {
            threshold: 1.0,
            watcher_shift: 0.0,
            temperature: 0.1,
        },
        rating: RatingParams {
            global_mean: 3.5,
            global_sd: 1.0,
            user_damping: USER_DAMPING,
            user_spread: 0.0,
            w_bias: 0.0,
            w_pref: 0.0,
            z_ref: 0.0,
            intercept: 0.0,
            spread: 1.0,
            noise: 0.0,
            item_bias: vec![0.0; catalog.len()],
        },
        activity: [1.0; 3],
    };
    // Cold-start centroids: the mean x_u of the users who like each genre.
    let mut sums = vec![0.0f64; genres.len() * d];
    let mut counts = vec![0usize; genres.len()];
    for u in users {
        let x = model.user_vector(&u.agent.view(), catalog);
        for g in u.agent.taste.liked.iter() {
            counts[g] += 1;
            sums[g * d..(g + 1) * d]
                .iter_mut()
                .zip(&x)
                .for_each(|(a, v)| *a += v);
        }
    }
    for (g, &c) in counts.iter().enumerate() {
        for k in 0..d {
            model.centroids[g * d + k] = if c > 0 {
                (sums[g * d + k] / c as f64) as f32
            } else {
                0.0
            };
        }
    }
    model
}

/// Mean AUC over users of the valid lists (`lists[r][u]`), by `s(u,i)`.
fn auc(
    model: &CalibratedModel,
    users: &[&Fitted],
    samples: &[protocol::Sample],
    catalog: &Catalog,
) -> f64 {
    let mut total = 0.0;
    let mut n = 0usize;
    for (u, s) in users.iter().zip(samples) {
        let x = model.user_vector(&u.agent.view(), catalog);
        let score = |i: u32| {
            catalog
                .index_of(ItemId(i))
                .map_or(f64::NEG_INFINITY, |ix| model.preference(&x, ix))
        };
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for (&i, &p) in s.items.iter().zip(&s.positive) {
            if p {
                pos.push(score(i));
            } else {
                neg.push(score(i));
            }
        }
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        let mut wins = 0.0;
        for a in &pos {
            for b in &neg {
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        total += wins / (pos.len() * neg.len()) as f64;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

/// Valid lists at `1:m`: users with a valid item and their samples.
fn valid_lists(
    users: &[Fitted],
    n_items: u32,
    m: u32,
    seed: u64,
) -> (Vec<&Fitted>, Vec<protocol::Sample>) {
    let mut who = Vec::new();
    let mut samples = Vec::new();
    for u in users {
        let s = protocol::sample(u.agent.id.0, &u.valid, n_items, m, seed);
        if s.positive.iter().any(|&p| p) {
            who.push(u);
            samples.push(s);
        }
    }
    (who, samples)
}

/// Mean accuracy and F1 of the page decisions of `model` on the lists.
fn choice_scores(
    model: &std::sync::Arc<CalibratedModel>,
    ctx: &Context<'_>,
    who: &[&Fitted],
    samples: &[protocol::Sample],
    page_size: usize,
    m: u32,
) -> (f64, f64) {
    let behaviour = Behaviour(Box::new(OfflineBackend {
        params: OfflineParams {
            model: OfflineModel::Calibrated,
            calibration: Some("(fitting)".into()),
            loaded: Some(model.clone()),
            ..OfflineParams::default()
        },
        parallel: false,
    }));
    let agents: Vec<&BuiltAgent> = who.iter().map(|u| &u.agent).collect();
    let lists: Vec<Vec<u32>> = samples.iter().map(|s| s.items.clone()).collect();
    let mut stats = BehaviourStats::default();
    let watched = protocol::browse(&behaviour, ctx, &mut stats, &agents, &lists, page_size, m);
    let c: Vec<Confusion> = samples
        .iter()
        .zip(&watched)
        .map(|(s, w)| Confusion::of(s, w))
        .collect();
    let n = c.len().max(1) as f64;
    (
        c.iter().map(Confusion::accuracy).sum::<f64>() / n,
        c.iter().map(Confusion::f1).sum::<f64>() / n,
    )
}

/// Fits the calibrated model ([module docs](self)). `progress(stage, done, total)` is called
/// after each preference model fitted and each tuning stage.
///
/// # Errors
/// [`FidelityError`] for unreadable data or options out of range.
pub fn calibrate(
    opts: &CalibrateOptions,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<CalibratedModel, FidelityError> {
    if opts.dims.is_empty() || opts.dims.iter().any(|&d| !(1..=512).contains(&d)) {
        return Err(FidelityError::Option(format!(
            "--dims must list embedding sizes from 1 to 512, got {:?}",
            opts.dims
        )));
    }
    if opts.epochs.is_empty() || opts.epochs.iter().any(|&e| !(1..=10_000).contains(&e)) {
        return Err(FidelityError::Option(format!(
            "--epochs must list epoch counts from 1 to 10000, got {:?}",
            opts.epochs
        )));
    }
    if opts.lr.is_empty() || opts.lr.iter().any(|&l| !(l > 0.0 && l <= 10.0)) {
        return Err(FidelityError::Option(format!(
            "--lr must list learning rates in (0, 10], got {:?}",
            opts.lr
        )));
    }
    if opts.reg.is_empty() || opts.reg.iter().any(|&r| !(0.0..=10.0).contains(&r)) {
        return Err(FidelityError::Option(format!(
            "--reg must list L2 weights in [0, 10], got {:?}",
            opts.reg
        )));
    }
    if opts.users == Some(0) {
        return Err(FidelityError::Option("--users must be at least 1".into()));
    }
    let real = data::load(&opts.data)?;
    let catalog =
        Catalog::new(real.items.clone()).map_err(|e| FidelityError::Catalog(e.to_string()))?;
    let stamp = CatalogueStamp::of(
        &catalog,
        &data::ml1m_dir(&opts.data)
            .join("simulation/movie_detail.csv")
            .display()
            .to_string(),
    );
    let chosen: Vec<RealUser> = real
        .users
        .iter()
        .take(opts.users.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let users = prepare(&chosen, &catalog, opts.seed);
    let n_items = catalog.len();
    let histories: Vec<Vec<u32>> = users.iter().map(|u| u.history.clone()).collect();
    let list_seed = crate::rng::mix(opts.seed, Stream::Calibration as u64, 2);
    let (who1, s1) = valid_lists(&users, n_items as u32, 1, list_seed);
    let (who9, s9) = valid_lists(&users, n_items as u32, 9, list_seed);
    let record = FitRecord {
        data: opts.data.display().to_string(),
        seed: opts.seed,
        users: users.len(),
        interactions: histories.iter().map(Vec::len).sum(),
        ratings: users.iter().map(|u| u.training.ratings.len()).sum(),
        dim: 0,
        epochs: 0,
        lr: 0.0,
        reg: 0.0,
        tried: Vec::new(),
        valid: [0.0; 4],
        mapped_items: None,
    };

    // 1. The preference model, by valid AUC.
    let mut grid: Vec<(usize, usize, f64, f64)> = Vec::new();
    for &d in &opts.dims {
        for &e in &opts.epochs {
            for &lr in &opts.lr {
                for &reg in &opts.reg {
                    grid.push((d, e, lr, reg));
                }
            }
        }
    }
    let total = grid.len() as u64 + 2;
    let mut tried = Vec::new();
    let mut best: Option<(f64, (usize, usize, f64, f64), Fism)> = None;
    for (n, &(d, e, lr, reg)) in grid.iter().enumerate() {
        let f = train_fism(&histories, n_items, d, e, lr, reg, opts.seed);
        if !f.0.iter().chain(&f.1).chain(&f.2).all(|v| v.is_finite()) {
            tried.push(format!(
                "preference dim={d} epochs={e} lr={lr} reg={reg}: diverged (weights not finite), skipped"
            ));
            progress("preference", n as u64 + 1, total);
            continue;
        }
        let model = assemble(
            f.clone(),
            d,
            &catalog,
            stamp.clone(),
            &users,
            record.clone(),
        );
        let a1 = auc(&model, &who1, &s1, &catalog);
        let a9 = auc(&model, &who9, &s9, &catalog);
        let score = (a1 + a9) / 2.0;
        tried.push(format!(
            "preference dim={d} epochs={e} lr={lr} reg={reg}: valid AUC 1:1 {a1:.4}, 1:9 {a9:.4}"
        ));
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, (d, e, lr, reg), f));
        }
        progress("preference", n as u64 + 1, total);
    }
    let Some((_, (d, e, lr, reg), f)) = best else {
        return Err(FidelityError::Option(format!(
            "every preference setting diverged (its weights grew past floating point): try a smaller --lr than {:?}",
            opts.lr
        )));
    };
    let mut record = record;
    record.dim = d;
    record.epochs = e;
    record.lr = lr;
    record.reg = reg;
    let mut model = assemble(f, d, &catalog, stamp, &users, record);

    // 2. The choice, by accuracy at 1:1 + F1 at 1:9 of the page decisions on valid lists.
    let clock = crate::analysis::fidelity::session_clock();
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: opts.seed,
    };
    let ps = opts.page_size;
    let eval = |model: &CalibratedModel| {
        let arc = std::sync::Arc::new(model.clone());
        let (a1, _) = choice_scores(&arc, &ctx, &who1, &s1, ps, 1);
        let (_, f9) = choice_scores(&arc, &ctx, &who9, &s9, ps, 9);
        (a1, f9)
    };
    let mut best_choice = (f64::NEG_INFINITY, model.choice.clone(), (0.0, 0.0));
    for t in [0.05, 0.2] {
        for k in 0..=20 {
            let threshold = 0.2 + 0.1 * f64::from(k);
            model.choice = ChoiceParams {
                threshold,
                watcher_shift: 0.0,
                temperature: t,
            };
            let (a1, f9) = eval(&model);
            if a1 + f9 > best_choice.0 {
                best_choice = (a1 + f9, model.choice.clone(), (a1, f9));
            }
        }
    }
    tried.push(format!(
        "choice threshold 0.2..=2.2 step 0.1 x temperature {{0.05, 0.2}}: best threshold {:.1}, temperature {} (valid accuracy 1:1 {:.4}, F1 1:9 {:.4})",
        best_choice.1.threshold, best_choice.1.temperature, best_choice.2 .0, best_choice.2 .1
    ));
    for shift in [-0.4, -0.2, 0.2, 0.4] {
        model.choice = ChoiceParams {
            watcher_shift: shift,
            ..best_choice.1.clone()
        };
        let (a1, f9) = eval(&model);
        tried.push(format!(
            "choice watcher shift {shift}: valid accuracy 1:1 {a1:.4}, F1 1:9 {f9:.4}"
        ));
        if a1 + f9 > best_choice.0 {
            best_choice = (a1 + f9, model.choice.clone(), (a1, f9));
        }
    }
    model.choice = best_choice.1.clone();
    progress("choice", grid.len() as u64 + 1, total);

    // 3. Ratings, on a validation fold of the training ratings.
    let (rmse, js) = fit_ratings(&mut model, &users, &catalog, opts.seed, &mut tried);
    model.activity = activity(&users);
    model.fit.valid = [best_choice.2 .0, best_choice.2 .1, rmse, js];
    model.fit.tried = tried;
    progress("ratings", total, total);
    Ok(model)
}

/// A title without its trailing year and with a trailing article moved to the front, lower
/// case: `American President, The (1995)` and `The American President` both read
/// `the american president`.
fn plain_title(t: &str) -> String {
    let mut t = t.trim();
    if let Some(open) = t.rfind(" (") {
        if t.ends_with(')') && t[open + 2..t.len() - 1].chars().all(|c| c.is_ascii_digit()) {
            t = &t[..open];
        }
    }
    for article in [
        "The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El",
    ] {
        if let Some(stem) = t.strip_suffix(&format!(", {article}")) {
            return format!("{article} {stem}").to_lowercase();
        }
    }
    t.to_lowercase()
}

/// The model fitted on Agent4Rec's catalogue, moved onto a run's catalogue `items` whose ids
/// are the line order of ML-1M's `movies.dat` (RecAgent's `item.csv`: id `k` is line `k + 1`).
/// Returns the model and `(mapped, unmapped)` run items.
///
/// - A run item is the ML-1M movie of its line when their titles agree ([`plain_title`]);
///   otherwise it is unmapped.
/// - An ML-1M movie is an Agent4Rec item when their titles with year are equal, after undoing
///   the double encoding Agent4Rec's files carry (`ï¿½` for U+FFFD, its SOURCE.md). Agent4Rec
///   publishes no table of its remapped ids, so this join is the only one the data allows; on
///   the shipped files every one of its 3,292 items finds its movie.
/// - An unmapped item, or one no Agent4Rec user interacted with, keeps no embedding
///   (`y = q = 0`) and the 5th percentile of the item biases, the popularity of the least
///   watched items; its rating bias is 0.
///
/// # Errors
/// [`FidelityError`] when `movies.dat` cannot be read or the run's item file cannot be loaded.
pub fn map_onto(
    model: &CalibratedModel,
    fitted: &Catalog,
    data_dir: &std::path::Path,
    items_path: &std::path::Path,
) -> Result<(CalibratedModel, usize, usize), FidelityError> {
    let movies_path = data::ml1m_dir(data_dir).join("raw_data/movies.dat");
    let bytes = std::fs::read(&movies_path).map_err(|source| {
        FidelityError::Data(data::DataError::Read {
            path: movies_path.display().to_string(),
            source,
        })
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let movies: Vec<&str> = text
        .lines()
        .map(|l| l.split("::").nth(1).unwrap_or(""))
        .collect();
    let line_of: std::collections::BTreeMap<&str, usize> =
        movies.iter().enumerate().map(|(n, t)| (*t, n)).collect();
    let fitted_of_line: std::collections::BTreeMap<usize, u32> = fitted
        .items()
        .iter()
        .enumerate()
        .filter_map(|(ix, it)| {
            let t = it.title.replace("ï¿½", "\u{FFFD}");
            line_of.get(t.as_str()).map(|&n| (n, ix as u32))
        })
        .collect();
    let records = crate::io::data::load_items(crate::io::data::Source::Path(items_path))
        .map_err(|e| FidelityError::Catalog(e.to_string()))?;
    let run = Catalog::new(records).map_err(|e| FidelityError::Catalog(e.to_string()))?;
    let d = model.dim;
    let mut sorted: Vec<f32> = model.bias.clone();
    sorted.sort_by(f32::total_cmp);
    let low = sorted.get(sorted.len() / 20).copied().unwrap_or(0.0);
    let n = run.len();
    let (mut history, mut target) = (vec![0f32; n * d], vec![0f32; n * d]);
    let (mut bias, mut item_bias) = (vec![low; n], vec![0f32; n]);
    let mut mapped = 0;
    for (ix, it) in run.items().iter().enumerate() {
        let line = it.id.0 as usize;
        let Some(&j) = movies
            .get(line)
            .filter(|t| plain_title(t) == plain_title(&it.title))
            .and_then(|_| fitted_of_line.get(&line))
        else {
            continue;
        };
        let (j, o) = (j as usize * d, ix * d);
        history[o..o + d].copy_from_slice(&model.history[j..j + d]);
        target[o..o + d].copy_from_slice(&model.target[j..j + d]);
        bias[ix] = model.bias[j / d];
        item_bias[ix] = model.rating.item_bias[j / d];
        mapped += 1;
    }
    if mapped == 0 {
        return Err(FidelityError::Option(format!(
            "no item of {} maps onto a fitted movie: --items takes an item file whose ids are the line order of ML-1M's movies.dat (id 0 is its first line), such as RecAgent's item.csv",
            items_path.display()
        )));
    }
    let mut m = model.clone();
    m.catalogue = CatalogueStamp::of(&run, &items_path.display().to_string());
    m.moments = Moments::of(&target, &bias, d);
    m.history = history;
    m.target = target;
    m.bias = bias;
    m.rating.item_bias = item_bias;
    m.fit.mapped_items = Some((mapped, n - mapped));
    Ok((m, mapped, n - mapped))
}

/// `a_t`: mean train interactions per activity tier over the mean of all users (1 for a tier
/// with no user).
fn activity(users: &[Fitted]) -> [f64; 3] {
    let all = users.iter().map(|u| u.history.len() as f64).sum::<f64>() / users.len().max(1) as f64;
    let mut out = [1.0; 3];
    for (t, slot) in out.iter_mut().enumerate() {
        let of: Vec<f64> = users
            .iter()
            .filter(|u| {
                u.training
                    .person
                    .tiers
                    .is_some_and(|x| usize::from(x[0]) == t + 1)
            })
            .map(|u| u.history.len() as f64)
            .collect();
        if !of.is_empty() && all > 0.0 {
            *slot = (of.iter().sum::<f64>() / of.len() as f64 / all).max(1e-3);
        }
    }
    out
}

/// Fits the rating model ([`super`], "Rating") and returns its validation RMSE and JS.
fn fit_ratings(
    model: &mut CalibratedModel,
    users: &[Fitted],
    catalog: &Catalog,
    seed: u64,
    tried: &mut Vec<String>,
) -> (f64, f64) {
    // Fold A fits the biases, fold B the weights, the spread and the noise.
    let mut fold_a = Vec::new();
    let mut fold_b: Vec<(usize, u32, u8)> = Vec::new();
    for (n, u) in users.iter().enumerate() {
        let r = &u.training.ratings;
        let hold = if r.len() < 2 {
            0
        } else {
            ((RATING_FOLD * r.len() as f64).round() as usize).clamp(1, r.len() - 1)
        };
        let mut order: Vec<usize> = (0..r.len()).collect();
        order.shuffle(&mut stream_rng(
            seed,
            Stream::Calibration,
            &[3, u64::from(u.training.id)],
        ));
        let held: BTreeSet<usize> = order[..hold].iter().copied().collect();
        let mut kept = u.training.clone();
        kept.ratings = r
            .iter()
            .enumerate()
            .filter(|(i, _)| !held.contains(i))
            .map(|(_, x)| *x)
            .collect();
        for &i in &held {
            fold_b.push((n, r[i].0, r[i].1));
        }
        fold_a.push(kept);
    }
    let all: Vec<f64> = fold_a
        .iter()
        .flat_map(|t| t.ratings.iter().map(|r| f64::from(r.1)))
        .collect();
    let mu = all.iter().sum::<f64>() / all.len().max(1) as f64;
    let sd = (all.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / all.len().max(1) as f64).sqrt();
    let base_a = protocol::Baselines::fit(&fold_a);
    // Features of fold B: (user mean from fold A, item bias from fold A, z).
    // z_ref: the mean z a cold-start agent (genre centroids, no history) gives the items real
    // users watched, over the fitted users; then z − z̄_u of each fold-B rating.
    let zbars: Vec<f64> = users
        .iter()
        .map(|u| {
            let mut cold = u.agent.clone();
            cold.histories = Default::default();
            let x = model.user_vector(&cold.view(), catalog);
            let (mu, sigma) = model.user_moments(&x);
            let h = &u.history;
            h.iter()
                .map(|&ix| (model.preference(&x, ix) - mu) / sigma)
                .sum::<f64>()
                / h.len().max(1) as f64
        })
        .collect();
    model.rating.z_ref = zbars.iter().sum::<f64>() / zbars.len().max(1) as f64;
    // σ_b: the spread of the users' fold-A mean ratings (users with 5 or more).
    let means: Vec<f64> = fold_a
        .iter()
        .filter(|t| t.ratings.len() >= 5)
        .map(|t| t.ratings.iter().map(|x| f64::from(x.1)).sum::<f64>() / t.ratings.len() as f64)
        .collect();
    let mm = means.iter().sum::<f64>() / means.len().max(1) as f64;
    let user_spread =
        (means.iter().map(|x| (x - mm).powi(2)).sum::<f64>() / means.len().max(1) as f64).sqrt();
    model.rating.global_mean = mu;
    model.rating.user_spread = user_spread;
    let mut rows = Vec::new();
    for &(n, item, r) in &fold_b {
        let rated: Vec<f64> = fold_a[n].ratings.iter().map(|x| f64::from(x.1)).collect();
        let prior = model.prior_mean(seed, users[n].training.id);
        let (m_u, sd_u) = damped_mean_sd(&rated, prior, sd, USER_DAMPING);
        let bi = base_a.item_bias.get(&item).copied().unwrap_or(0.0);
        let z = catalog.index_of(ItemId(item)).map_or(0.0, |ix| {
            model.relative_preference(&users[n].agent.view(), catalog, ix)
        });
        rows.push((m_u, sd_u, bi, z, f64::from(r)));
    }
    // Least squares of r − m_u on (b, z, 1): the 3 × 3 normal equations.
    let mut ata = [[0.0f64; 3]; 3];
    let mut atb = [0.0f64; 3];
    for &(m_u, _, bi, z, r) in &rows {
        let f = [bi, z, 1.0];
        for a in 0..3 {
            atb[a] += f[a] * (r - m_u);
            for c in 0..3 {
                ata[a][c] += f[a] * f[c];
            }
        }
    }
    let w = solve3(ata, atb).unwrap_or([0.0; 3]);
    tried.push(format!(
        "rating least squares on {} validation ratings: w_bias {:.3}, w_pref {:.3}, intercept {:.3}",
        rows.len(),
        w[0],
        w[1],
        w[2]
    ));
    let mut real_hist = [0.0f64; 5];
    for r in &rows {
        real_hist[r.4 as usize - 1] += 1.0;
    }
    let mut best: Option<(bool, f64, f64, f64, f64)> = None;
    for k in 0..=8 {
        let spread = 1.0 + 0.2 * f64::from(k);
        for noise in [0.0, 0.25, 0.5] {
            let mut rng = stream_rng(seed, Stream::Calibration, &[4]);
            let mut hist = [0.0f64; 5];
            let mut se = 0.0;
            for &(m_u, sd_u, bi, z, r) in &rows {
                let eps = if noise > 0.0 {
                    noise * sd_u * crate::decision::offline::normal(&mut rng)
                } else {
                    0.0
                };
                let stars = (m_u + spread * (w[0] * bi + w[1] * z + w[2]) + eps)
                    .round()
                    .clamp(1.0, 5.0);
                hist[stars as usize - 1] += 1.0;
                se += (stars - r).powi(2);
            }
            let rmse = (se / rows.len().max(1) as f64).sqrt();
            let js = crate::analysis::report::js_divergence(&hist, &real_hist).unwrap_or(1.0);
            tried.push(format!(
                "rating spread {spread:.1} noise {noise}: validation RMSE {rmse:.4}, JS {js:.4}"
            ));
            let ok = js <= JS_TARGET;
            let better = match best {
                None => true,
                Some((bok, brmse, bjs, _, _)) => {
                    if ok == bok {
                        // Both meet the histogram target: the lower RMSE; neither: the lower JS.
                        if ok {
                            rmse < brmse
                        } else {
                            js < bjs
                        }
                    } else {
                        ok
                    }
                }
            };
            if better {
                best = Some((ok, rmse, js, spread, noise));
            }
        }
    }
    let (_, rmse, js, spread, noise) = best.expect("invariant: the grid is not empty");
    // The final biases from every training rating.
    let full: Vec<Training> = users.iter().map(|u| u.training.clone()).collect();
    let base = protocol::Baselines::fit(&full);
    let all: Vec<f64> = full
        .iter()
        .flat_map(|t| t.ratings.iter().map(|r| f64::from(r.1)))
        .collect();
    let mu = all.iter().sum::<f64>() / all.len().max(1) as f64;
    let sd = (all.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / all.len().max(1) as f64).sqrt();
    model.rating = RatingParams {
        global_mean: mu,
        global_sd: sd,
        user_damping: USER_DAMPING,
        user_spread,
        w_bias: w[0],
        w_pref: w[1],
        z_ref: model.rating.z_ref,
        intercept: w[2],
        spread,
        noise,
        item_bias: catalog
            .items()
            .iter()
            .map(|it| base.item_bias.get(&it.id.0).copied().unwrap_or(0.0) as f32)
            .collect(),
    };
    (rmse, js)
}

/// Solves the 3 × 3 system `a·x = b` by Cramer's rule; `None` when it is singular.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut x = [0.0; 3];
    for (c, slot) in x.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][c] = b[r];
        }
        *slot = det(m) / d;
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve3_solves_by_hand() {
        // x = (1, 2, 3): 2x + y = 4, y + z = 5, x + z = 4.
        let a = [[2.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]];
        let x = solve3(a, [4.0, 5.0, 4.0]).unwrap();
        for (got, want) in x.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
        assert!(solve3(
            [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]],
            [1.0; 3]
        )
        .is_none());
    }

    #[test]
    fn fism_ranks_what_the_history_predicts() {
        // Two taste groups: users 0-19 hold items 0-4, users 20-39 items 5-9. After training, a
        // user of the first group scores its group's items above the other group's.
        let histories: Vec<Vec<u32>> = (0..40)
            .map(|u| {
                if u < 20 {
                    (0..5).collect()
                } else {
                    (5..10).collect()
                }
            })
            .collect();
        let (y, q, b) = train_fism(&histories, 12, 4, 40, 0.1, 0.01, 3);
        let d = 4;
        let x: Vec<f64> = (0..d)
            .map(|k| (0..4).map(|j| f64::from(y[j * d + k])).sum::<f64>() / 2.0)
            .collect();
        let s = |i: usize| {
            f64::from(b[i]) + (0..d).map(|k| f64::from(q[i * d + k]) * x[k]).sum::<f64>()
        };
        assert!(s(4) > s(7), "{} {}", s(4), s(7));
        assert!(s(4) > s(11), "an item nobody holds ranks below");
    }
}
