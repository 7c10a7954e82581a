//! `recagent eval-recommender`: offline Recall@K / NDCG@K of our models and Agent4Rec's lists.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use recagent::recommender::eval::{load_implicit, score_lists, Metrics, Split};
use recagent::recommender::{
    Content, ItemKnn, LightGcn, Mf, Popularity, RandomRec, Recommender, TrainParams,
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
    /// Models to train, comma-separated (Random, Popularity, MF, ItemKNN, LightGCN, Content).
    #[arg(long, default_value = "Popularity,MF,LightGCN,ItemKNN,Content,Random")]
    models: String,
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

fn model_for(name: &str, a: &EvalArgs, split: &Split) -> Result<Option<Box<dyn Recommender>>> {
    let base = TrainParams {
        dim: a.dim,
        seed: a.seed,
        layers: a.layers,
        ..TrainParams::default()
    };
    Ok(Some(match name {
        "Random" => Box::new(RandomRec::default()),
        "Popularity" => Box::new(Popularity::default()),
        "MF" => Box::new(Mf::new(TrainParams {
            epochs: a.mf_epochs,
            lr: a.mf_lr,
            batch: a.mf_batch,
            reg: a.mf_reg,
            ..base
        })),
        "LightGCN" => Box::new(LightGcn::new(TrainParams {
            epochs: a.lightgcn_epochs,
            lr: a.lightgcn_lr,
            batch: a.lightgcn_batch,
            reg: a.lightgcn_reg,
            ..base
        })),
        "ItemKNN" => Box::new(ItemKnn::default()),
        "Content" => {
            if !a.items.exists() {
                eprintln!("Content skipped: {} is absent", a.items.display());
                return Ok(None);
            }
            Box::new(Content::new(genre_features(&a.items, split.n_items)?, None))
        }
        other => bail!(
            "unknown model {other:?}: allowed Random, Popularity, MF, ItemKNN, LightGCN, Content"
        ),
    }))
}

/// Agent4Rec's directory name for one of our models.
fn theirs(name: &str) -> Option<&'static str> {
    match name {
        "MF" => Some("MF"),
        "LightGCN" => Some("LightGCN"),
        "Popularity" => Some("Pop"),
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

/// Runs the evaluation and prints the table.
pub fn run(a: &EvalArgs) -> Result<()> {
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
    let k = a.k;
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>11} {:>9}   {:>15} {:>15}",
        "model",
        format!("ours/T R@{k}"),
        format!("ours/T N@{k}"),
        format!("ours/TV R@{k}"),
        format!("ours/TV N@{k}"),
        "train s",
        format!("Agent4Rec R@{k}"),
        format!("Agent4Rec N@{k}")
    );
    let fmt = |m: Option<Metrics>| match m {
        Some(m) => (format!("{:.4}", m.recall), format!("{:.4}", m.ndcg)),
        None => ("-".into(), "-".into()),
    };
    for name in a.models.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(mut model) = model_for(name, a, &split)? else {
            continue;
        };
        let t = Instant::now();
        split.fit(model.as_mut());
        let secs = t.elapsed().as_secs_f64();
        let m = split.score(model.as_ref(), false, k);
        let mv = split.score(model.as_ref(), true, k);
        let their = match theirs(name) {
            Some(d) => agent4rec_metrics(a, d, &split)?,
            None => None,
        };
        let (tr, tn) = fmt(their);
        println!(
            "{:<12} {:>11.4} {:>11.4} {:>11.4} {:>11.4} {:>9.1}   {:>15} {:>15}",
            name, m.recall, m.ndcg, mv.recall, mv.ndcg, secs, tr, tn
        );
    }
    if let Some(m) = agent4rec_metrics(a, "MultVAE", &split)? {
        let (tr, tn) = fmt(Some(m));
        println!(
            "{:<12} {:>11} {:>11} {:>11} {:>11} {:>9}   {:>15} {:>15}",
            "MultVAE", "-", "-", "-", "-", "-", tr, tn
        );
    }
    Ok(())
}
