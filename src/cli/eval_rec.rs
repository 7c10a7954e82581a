//! `recagent eval-recommender`: offline Recall@K / NDCG@K of our models and Agent4Rec's lists,
//! and (`--tune`) the hyper-parameter sweep on the validation split.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use recagent::config::RecModel;
use recagent::recommender::eval::{load_implicit, score_lists, Metrics, Split};
use recagent::recommender::tune::{restore_winner, tune, Candidate, TuneSplit};
use recagent::recommender::{
    Content, ItemKnn, LightGcn, Mf, MultVae, MultVaeParams, Popularity, RandomRec, Recommender,
    TrainParams,
};

/// Options of `eval-recommender`.
#[derive(Args)]
pub struct EvalArgs {
    /// Directory with train.txt, valid.txt, test.txt (`user item item ...`).
    #[arg(
        long,
        default_value = "../shared/data/agent4rec/datasets/ml-1m/cf_data"
    )]
    cf_dir: PathBuf,
    /// Directory with Agent4Rec's `<Model>/Saved/recommend_top_k.txt` (skipped when absent).
    #[arg(
        long,
        default_value = "../shared/data/agent4rec/recommenders/weights/ml-1m"
    )]
    agent4rec_dir: PathBuf,
    /// Item table `movie_id,title,genres,...` for the Content model (skipped when absent).
    #[arg(
        long,
        default_value = "../shared/data/agent4rec/datasets/ml-1m/simulation/movie_detail.csv"
    )]
    items: PathBuf,
    /// Models to train, comma-separated, as `rec_model` spells them (any case; Pop, BPR too):
    /// Random, Popularity, MF, ItemKNN, LightGCN, MultVAE, Content.
    #[arg(
        long,
        default_value = "Popularity,MF,LightGCN,ItemKNN,MultVAE,Content,Random"
    )]
    models: String,
    /// Sweep each model's hyper-parameters on valid.txt (trained on train.txt), then score
    /// each model's winner on test.txt once. The grids are in `sweep_grid` (src/cli/eval_rec.rs).
    #[arg(long)]
    tune: bool,
    /// Cut-off K.
    #[arg(short, long, default_value_t = 20)]
    k: usize,
    /// Root seed.
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// Embedding size (MF, LightGCN).
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// MF: epochs, Adam learning rate, batch size.
    #[arg(long, default_value_t = 30)]
    mf_epochs: u32,
    #[arg(long, default_value_t = 0.005)]
    mf_lr: f32,
    #[arg(long, default_value_t = 256)]
    mf_batch: usize,
    /// LightGCN: epochs, Adam learning rate, batch size, layers.
    #[arg(long, default_value_t = 150)]
    lightgcn_epochs: u32,
    #[arg(long, default_value_t = 0.02)]
    lightgcn_lr: f32,
    #[arg(long, default_value_t = 4096)]
    lightgcn_batch: usize,
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// MF L2 weight.
    #[arg(long, default_value_t = recagent::recommender::MF_DEFAULT_REG)]
    mf_reg: f32,
    /// LightGCN L2 weight.
    #[arg(long, default_value_t = recagent::recommender::LIGHTGCN_DEFAULT_REG)]
    lightgcn_reg: f32,
    /// ItemKNN: neighbours kept per item.
    #[arg(long, default_value_t = recagent::recommender::DEFAULT_NEIGHBOURS)]
    knn_neighbours: usize,
    /// MultVAE: epochs, Adam learning rate, users per batch, epochs of KL annealing to β = 0.2.
    #[arg(long, default_value_t = 100)]
    vae_epochs: u32,
    #[arg(long, default_value_t = 0.001)]
    vae_lr: f32,
    #[arg(long, default_value_t = 100)]
    vae_batch: usize,
    #[arg(long, default_value_t = 80)]
    vae_anneal_epochs: u32,
}

fn genre_features(path: &Path, n_items: usize) -> Result<ndarray::Array2<f32>> {
    let mut rd =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = rd.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (id_col, genre_col) = (col("movie_id")?, col("genres")?);
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    let mut names: std::collections::BTreeSet<String> = Default::default();
    for r in rd.records() {
        let r = r?;
        let id: usize = r[id_col]
            .trim()
            .parse()
            .with_context(|| format!("{}: bad movie_id {:?}", path.display(), &r[id_col]))?;
        let g: Vec<String> = r[genre_col]
            .split('|')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        names.extend(g.iter().cloned());
        rows.push((id, g));
    }
    let names: Vec<String> = names.into_iter().collect();
    let mut f = ndarray::Array2::zeros((n_items, names.len().max(1)));
    for (id, g) in rows {
        if id < n_items {
            for name in g {
                let k = names.binary_search(&name).expect("collected above");
                f[[id, k]] = 1.0;
            }
        }
    }
    Ok(f)
}

/// Parses `--models` with the names `rec_model` accepts.
fn parse_models(list: &str) -> Result<Vec<RecModel>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m = RecModel::from_name(name).map_err(|e| anyhow!("--models: {e}"))?;
        if m == RecModel::External {
            bail!("--models: External serves slates over HTTP and cannot be evaluated offline");
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

fn content_model(a: &EvalArgs, n_items: usize) -> Result<Option<Box<dyn Recommender>>> {
    if !a.items.exists() {
        eprintln!("Content skipped: {} is absent", a.items.display());
        return Ok(None);
    }
    Ok(Some(Box::new(Content::new(
        genre_features(&a.items, n_items)?,
        None,
    ))))
}

fn vae_params(a: &EvalArgs) -> MultVaeParams {
    MultVaeParams {
        lr: a.vae_lr,
        epochs: a.vae_epochs,
        batch: a.vae_batch,
        anneal_epochs: a.vae_anneal_epochs,
        seed: a.seed,
        ..MultVaeParams::default()
    }
}

fn model_for(m: RecModel, a: &EvalArgs, n_items: usize) -> Result<Option<Box<dyn Recommender>>> {
    let base = TrainParams {
        dim: a.dim,
        seed: a.seed,
        layers: a.layers,
        ..TrainParams::default()
    };
    Ok(Some(match m {
        RecModel::Random => Box::new(RandomRec::default()),
        RecModel::Popularity => Box::new(Popularity::default()),
        RecModel::MF => Box::new(Mf::new(TrainParams {
            epochs: a.mf_epochs,
            lr: a.mf_lr,
            batch: a.mf_batch,
            reg: a.mf_reg,
            ..base
        })),
        RecModel::LightGCN => Box::new(LightGcn::new(TrainParams {
            epochs: a.lightgcn_epochs,
            lr: a.lightgcn_lr,
            batch: a.lightgcn_batch,
            reg: a.lightgcn_reg,
            ..base
        })),
        RecModel::ItemKNN => Box::new(ItemKnn::new(a.knn_neighbours)),
        RecModel::MultVAE => Box::new(MultVae::new(vae_params(a))),
        RecModel::Content => return content_model(a, n_items),
        RecModel::External => bail!("External cannot be evaluated offline"),
    }))
}

/// Agent4Rec's directory name for one of our models.
fn theirs(m: RecModel) -> Option<&'static str> {
    match m {
        RecModel::MF => Some("MF"),
        RecModel::LightGCN => Some("LightGCN"),
        RecModel::Popularity => Some("Pop"),
        RecModel::MultVAE => Some("MultVAE"),
        _ => None,
    }
}

fn agent4rec_metrics(a: &EvalArgs, dir_name: &str, split: &Split) -> Result<Option<Metrics>> {
    let p = a
        .agent4rec_dir
        .join(dir_name)
        .join("Saved/recommend_top_k.txt");
    if !p.exists() {
        return Ok(None);
    }
    let lists = load_implicit(&p)?;
    Ok(Some(score_lists(&lists, &split.test, a.k)))
}

/// The sweep: small grids (2 shared cores), each epoch-trained candidate scored on valid after
/// every `step` epochs. Hyper-parameters not listed keep the command line's values.
fn sweep_grid(a: &EvalArgs, models: &[RecModel], n_items: usize) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let (dim, seed, layers) = (a.dim, a.seed, a.layers);
    for &m in models {
        let name = m.name().to_string();
        match m {
            RecModel::Random | RecModel::Popularity => {
                out.push(Candidate {
                    model: name,
                    label: "(no hyper-parameters)".into(),
                    make: Box::new(move || -> Box<dyn Recommender> {
                        if m == RecModel::Random {
                            Box::new(RandomRec::default())
                        } else {
                            Box::new(Popularity::default())
                        }
                    }),
                    step: 0,
                    fits: 1,
                });
            }
            RecModel::Content => {
                if !a.items.exists() {
                    eprintln!("Content skipped: {} is absent", a.items.display());
                    continue;
                }
                let features = genre_features(&a.items, n_items)?;
                out.push(Candidate {
                    model: name,
                    label: "(no hyper-parameters)".into(),
                    make: Box::new(move || Box::new(Content::new(features.clone(), None))),
                    step: 0,
                    fits: 1,
                });
            }
            RecModel::ItemKNN => {
                for n in [50, 100, 200, 400] {
                    out.push(Candidate {
                        model: name.clone(),
                        label: format!("{n} neighbours"),
                        make: Box::new(move || Box::new(ItemKnn::new(n))),
                        step: 0,
                        fits: 1,
                    });
                }
            }
            RecModel::MF => {
                for lr in [0.001f32, 0.005, 0.01] {
                    for reg in [0.01f32, 0.03, 0.1] {
                        let p = TrainParams {
                            dim,
                            lr,
                            epochs: 10,
                            batch: a.mf_batch,
                            reg,
                            seed,
                            layers,
                        };
                        out.push(Candidate {
                            model: name.clone(),
                            label: format!("d {dim}, lr {lr}, batch {}, λ {reg}", a.mf_batch),
                            make: Box::new(move || Box::new(Mf::new(p.clone()))),
                            step: 10,
                            fits: 5,
                        });
                    }
                }
            }
            RecModel::LightGCN => {
                for reg in [0.001f32, 0.003] {
                    let p = TrainParams {
                        dim,
                        lr: a.lightgcn_lr,
                        epochs: 50,
                        batch: a.lightgcn_batch,
                        reg,
                        seed,
                        layers,
                    };
                    out.push(Candidate {
                        model: name.clone(),
                        label: format!(
                            "K {layers}, d {dim}, lr {}, batch {}, λ {reg}",
                            a.lightgcn_lr, a.lightgcn_batch
                        ),
                        make: Box::new(move || Box::new(LightGcn::new(p.clone()))),
                        step: 50,
                        fits: 3,
                    });
                }
            }
            RecModel::MultVAE => {
                for lr in [0.001f32, 0.002] {
                    let p = MultVaeParams {
                        lr,
                        epochs: 25,
                        anneal_epochs: 80,
                        ..vae_params(a)
                    };
                    out.push(Candidate {
                        model: name.clone(),
                        label: format!(
                            "600-200, dropout 0.5, lr {lr}, batch {}, β 0→0.2 over {} epochs",
                            p.batch, p.anneal_epochs
                        ),
                        make: Box::new(move || Box::new(MultVae::new(p.clone()))),
                        step: 25,
                        fits: 4,
                    });
                }
            }
            RecModel::External => {}
        }
    }
    Ok(out)
}

fn print_header(k: usize, first: &str) {
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>11} {:>9}   {:>15} {:>15}  {first}",
        "model",
        format!("ours/T R@{k}"),
        format!("ours/T N@{k}"),
        format!("ours/TV R@{k}"),
        format!("ours/TV N@{k}"),
        "train s",
        format!("Agent4Rec R@{k}"),
        format!("Agent4Rec N@{k}")
    );
}

fn print_row(
    a: &EvalArgs,
    split: &Split,
    m: RecModel,
    model: &dyn Recommender,
    secs: f64,
    note: &str,
) -> Result<()> {
    let t = split.score(model, false, a.k);
    let tv = split.score(model, true, a.k);
    let their = match theirs(m) {
        Some(d) => agent4rec_metrics(a, d, split)?,
        None => None,
    };
    let (tr, tn) = match their {
        Some(x) => (format!("{:.4}", x.recall), format!("{:.4}", x.ndcg)),
        None => ("-".into(), "-".into()),
    };
    println!(
        "{:<12} {:>11.4} {:>11.4} {:>11.4} {:>11.4} {:>9.1}   {:>15} {:>15}  {note}",
        m.name(),
        t.recall,
        t.ndcg,
        tv.recall,
        tv.ndcg,
        secs,
        tr,
        tn
    );
    Ok(())
}

/// Runs the evaluation (or the sweep) and prints the table.
pub fn run(a: &EvalArgs) -> Result<()> {
    let models = parse_models(&a.models)?;
    if a.tune {
        return run_sweep(a, &models);
    }
    let split = Split::load(&a.cf_dir)
        .with_context(|| format!("loading the split in {}", a.cf_dir.display()))?;
    let n_train: usize = split.train.values().map(Vec::len).sum();
    let n_test: usize = split.test.values().map(Vec::len).sum();
    println!(
        "split {}: {} users, {} items, {} train / {} test interactions; K = {}",
        a.cf_dir.display(),
        split.n_users,
        split.n_items,
        n_train,
        n_test,
        a.k,
    );
    println!("ours/T: train items masked (standard protocol); ours/TV: train + valid items masked, as in");
    println!("Agent4Rec's saved lists (which never contain a train or valid item). All trained on train.txt.");
    print_header(a.k, "");
    for m in models {
        let Some(mut model) = model_for(m, a, split.n_items)? else {
            continue;
        };
        let t = Instant::now();
        split.fit(model.as_mut());
        let secs = t.elapsed().as_secs_f64();
        print_row(a, &split, m, model.as_ref(), secs, "")?;
    }
    Ok(())
}

/// `--tune`: the sweep on train + valid only, then each winner scored on test once.
fn run_sweep(a: &EvalArgs, models: &[RecModel]) -> Result<()> {
    let tuning = TuneSplit::load(&a.cf_dir)
        .with_context(|| format!("loading train/valid in {}", a.cf_dir.display()))?;
    let cands = sweep_grid(a, models, tuning.n_items)?;
    println!(
        "sweep on {}: {} candidates, trained on train.txt, scored on valid.txt (train items masked), K = {}",
        a.cf_dir.display(),
        cands.len(),
        a.k
    );
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>8}  hyper-parameters",
        "model",
        "epochs",
        format!("valid R@{}", a.k),
        format!("valid N@{}", a.k),
        "s"
    );
    let mut clock = Instant::now();
    let mut secs = vec![0.0f64; cands.len()];
    let (_, best) = tune(&tuning, &cands, a.k, |t| {
        secs[t.candidate] += clock.elapsed().as_secs_f64();
        clock = Instant::now();
        println!(
            "{:<10} {:>6} {:>10.4} {:>10.4} {:>8.1}  {}",
            t.model, t.epochs, t.valid.recall, t.valid.ndcg, secs[t.candidate], t.label
        );
    });
    drop(tuning);
    // Only now is the test split read, once per winner.
    let split = Split::load(&a.cf_dir)
        .with_context(|| format!("loading the split in {}", a.cf_dir.display()))?;
    let tuning = TuneSplit::new(split.train.clone(), split.valid.clone());
    println!();
    println!(
        "winners (highest valid Recall@{}), scored once on test.txt; \"train s\" = the winner's",
        a.k
    );
    println!(
        "fits and valid scoring in the sweep; ours/T: train masked, ours/TV: train + valid masked:"
    );
    print_header(a.k, "chosen on valid");
    for &m in models {
        let Some(w) = best.get(m.name()) else {
            continue;
        };
        let model = restore_winner(&cands, w, &tuning).map_err(|e| anyhow!("{}: {e}", m.name()))?;
        let s = secs[w.trial.candidate];
        let note = format!(
            "{}{} (valid R {:.4} / N {:.4})",
            if w.trial.epochs > 0 {
                format!("{} epochs, ", w.trial.epochs)
            } else {
                String::new()
            },
            cands[w.trial.candidate].label,
            w.trial.valid.recall,
            w.trial.valid.ndcg
        );
        print_row(a, &split, m, model.as_ref(), s, &note)?;
    }
    Ok(())
}
