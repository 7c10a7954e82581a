//! A user-supplied recommender in a few dozen lines: it recommends the items watched most
//! *recently* across all users (a "trending now" list), and shows how to score it with the same
//! evaluation code as the built-in models. To serve it in a simulation, box it into
//! `RecState.model` (or add a `rec_model` variant that constructs it).
//!
//! On a static split every interaction is from round 0, so Trending equals Popularity there (the
//! printed figures agree, a check that it is wired right); in a simulation recent watches count more.
//!
//! Run: `cargo run --release --example custom_recommender [CF_DIR]`
//! (CF_DIR defaults to ../shared/data/agent4rec/datasets/ml-1m/cf_data).

use rand_chacha::ChaCha8Rng;
use recagent::recommender::eval::Split;
use recagent::recommender::train::top_k;
use recagent::recommender::{InteractionLog, Popularity, Recommender, Slate};

/// Items scored by a recency-weighted watch count: a watch in round `r` adds `0.5^(R − r)`,
/// where `R` is the latest round in the log (initial interactions are round 0).
#[derive(Default)]
struct Trending {
    scores: Vec<f32>,
}

impl Recommender for Trending {
    fn name(&self) -> &'static str {
        "Trending"
    }

    fn fit(&mut self, log: &InteractionLog) {
        let latest = log.watches().iter().map(|w| w.3).max().unwrap_or(0);
        self.scores = vec![0.0; log.n_items()];
        for &(_, item, _, round) in log.watches() {
            self.scores[item as usize] += 0.5f32.powi((latest - round) as i32);
        }
    }

    fn recommend(
        &self,
        _user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        top_k(&self.scores, k, exclude)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/agent4rec/datasets/ml-1m/cf_data".into());
    let split = Split::load(std::path::Path::new(&dir))?;
    for model in [
        Box::new(Trending::default()) as Box<dyn Recommender>,
        Box::new(Popularity::default()),
    ] {
        let mut model = model;
        let m = split.evaluate(model.as_mut(), false, 20);
        println!(
            "{:<10} Recall@20 {:.4}  NDCG@20 {:.4}",
            model.name(),
            m.recall,
            m.ndcg
        );
    }
    Ok(())
}
