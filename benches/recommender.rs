//! Recommender benchmarks (prints figures; `cargo bench --bench recommender`).
//!
//! 1. Training time of MF and LightGCN on Agent4Rec's ML-1M train split (74,271 interactions),
//!    with the `eval-recommender` defaults, and their Recall@20 / NDCG@20 on the test split.
//! 2. `recommend()` latency (one user, k = 20, exposure exclusion) for 1,000 and 100,000 users
//!    over 3,292 items, on a synthetic log with 74 watches per user; and per page when the same
//!    2,000 pages are asked in one `recommend_batch_in` (batched factor models, MF and LightGCN;
//!    the others ask one by one), with the lists checked against the one-by-one calls.
//!
//! Environment: `BENCH_REPEATS` (training repeats, default 3), `BENCH_CF_DIR` (split directory).

use std::path::PathBuf;
use std::time::Instant;

use rand::Rng;
use recagent::recommender::eval::Split;
use recagent::recommender::train::Positives;
use recagent::recommender::{
    InteractionLog, ItemKnn, LightGcn, Mf, Popularity, Recommender, TrainParams,
    LIGHTGCN_DEFAULT_REG, MF_DEFAULT_REG,
};
use recagent::rng::{stream_rng, Stream};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn training(repeats: usize) {
    let dir = std::env::var("BENCH_CF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/data/agent4rec/datasets/ml-1m/cf_data")
        });
    let Ok(split) = Split::load(&dir) else {
        println!("training: SKIPPED ({} absent)", dir.display());
        return;
    };
    let pos = split.train_positives();
    println!(
        "training on {} ({} users, {} items, {} interactions), {} repeats, median wall time:",
        dir.display(),
        pos.n_users(),
        pos.n_items(),
        pos.len(),
        repeats
    );
    let mf = TrainParams {
        dim: 64,
        lr: 0.005,
        epochs: 30,
        batch: 256,
        reg: MF_DEFAULT_REG,
        ..TrainParams::default()
    };
    let lg = TrainParams {
        dim: 64,
        lr: 0.02,
        epochs: 150,
        batch: 4096,
        layers: 3,
        reg: LIGHTGCN_DEFAULT_REG,
        ..TrainParams::default()
    };
    for (name, params) in [("MF", mf), ("LightGCN", lg)] {
        let mut secs = Vec::new();
        let mut metrics = None;
        for _ in 0..repeats {
            let mut model: Box<dyn Recommender> = if name == "MF" {
                Box::new(Mf::new(params.clone()))
            } else {
                Box::new(LightGcn::new(params.clone()))
            };
            let t = Instant::now();
            let m = split.evaluate(model.as_mut(), false, 20);
            secs.push(t.elapsed().as_secs_f64());
            metrics = Some(m);
        }
        let m = metrics.expect("repeats >= 1");
        println!(
            "  {name:<9} {:>7.2} s for {} epochs (dim {}, batch {}, lr {}) incl. ranking 1,000 users; Recall@20 {:.4} NDCG@20 {:.4}",
            median(secs),
            params.epochs,
            params.dim,
            params.batch,
            params.lr,
            m.recall,
            m.ndcg
        );
    }
}

fn synthetic_log(n_users: usize, n_items: usize, per_user: usize) -> InteractionLog {
    let mut log = InteractionLog::new(n_users, n_items);
    let mut rng = stream_rng(7, Stream::Training, &[999]);
    for u in 0..n_users as u32 {
        for _ in 0..per_user {
            // Skewed item draw (squared uniform) so popularity and neighbourhoods are uneven.
            let x: f64 = rng.random();
            let i = ((x * x) * n_items as f64) as u32;
            log.add_initial(u, i.min(n_items as u32 - 1), 0);
        }
    }
    log
}

fn latency() {
    let n_items = 3292;
    for n_users in [1_000usize, 100_000] {
        let t = Instant::now();
        let log = synthetic_log(n_users, n_items, 74);
        let pos = Positives::from_log(&log);
        println!(
            "recommend() latency, {n_users} users x {n_items} items ({} interactions; log built in {:.1} s), k = 20:",
            pos.len(),
            t.elapsed().as_secs_f64()
        );
        // Latency depends on shapes, not on how well the model is trained: MF gets 1 epoch,
        // LightGCN 0 (one propagation of the initial embeddings; an epoch over 7.4 M
        // interactions would take far longer than the latency measurement).
        let p = TrainParams {
            dim: 64,
            lr: 0.005,
            epochs: 1,
            batch: 2048,
            ..TrainParams::default()
        };
        let models: Vec<Box<dyn Recommender>> = vec![
            Box::new(Popularity::default()),
            Box::new(Mf::new(p.clone())),
            Box::new(LightGcn::new(TrainParams { epochs: 0, ..p })),
            Box::new(ItemKnn::default()),
        ];
        for mut m in models {
            let t = Instant::now();
            m.fit(&log);
            let fit = t.elapsed().as_secs_f64();
            let mut lat = Vec::new();
            let mut rng = stream_rng(1, Stream::Recommender, &[]);
            for q in 0..2000u64 {
                let u = (q * 7919 % n_users as u64) as u32;
                let t = Instant::now();
                let s = m.recommend(u, 20, &|i| log.is_exposed(u, i), &mut rng);
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(s.items.len(), 20);
            }
            // The same 2,000 pages asked at once (`recommend_batch_in`, what the recommend
            // phase asks for a round's first pages): per page, and the lists compared.
            let users: Vec<u32> = (0..2000u64)
                .map(|q| (q * 7919 % n_users as u64) as u32)
                .collect();
            let mut rngs: Vec<_> = users
                .iter()
                .map(|_| stream_rng(1, Stream::Recommender, &[]))
                .collect();
            let mut batched = Vec::new();
            let mut same = true;
            for _ in 0..5 {
                let t = Instant::now();
                let got = m.recommend_batch_in(&users, 20, &log, &mut rngs);
                batched.push(t.elapsed().as_secs_f64() * 1e6 / users.len() as f64);
                same &= got.iter().zip(&users).all(|(s, &u)| {
                    s.items
                        == m.recommend(u, 20, &|i| log.is_exposed(u, i), &mut rng)
                            .items
                });
            }
            println!(
                "  {:<10} median {:>8.1} µs  p99 {:>8.1} µs  batched {:>7.1} µs/page (lists {})  (fit {:.2} s)",
                m.name(),
                median(lat.clone()),
                percentile(&lat, 0.99),
                median(batched),
                if same { "identical" } else { "DIFFER" },
                fit
            );
        }
    }
}

fn main() {
    let repeats = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if std::env::args().any(|a| a == "--latency-only") {
        latency();
        return;
    }
    training(repeats);
    latency();
}
