//! Random: uniformly random unexposed items, drawn from the (user, round, page) stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{InteractionLog, Recommender, Slate};

/// Uniformly random items (RecAgent's `Random`, seeded here).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RandomRec {
    n_items: u32,
}

impl Recommender for RandomRec {
    crate::model_state_via_serde!();

    fn name(&self) -> &'static str {
        "Random"
    }

    fn fit(&mut self, log: &InteractionLog) {
        self.n_items = log.n_items() as u32;
    }

    fn recommend(
        &self,
        _user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Slate {
        let n = self.n_items;
        let mut s = Slate::default();
        let mut tries = 0usize;
        // Rejection sampling is O(k) while most items are unexposed; a scan from a random offset
        // finishes the page when the user has seen most of the catalogue.
        while s.items.len() < k && tries < 32 * k.max(1) && n > 0 {
            tries += 1;
            let c = rng.random_range(0..n);
            if !exclude(c) && !s.items.contains(&c) {
                s.items.push(c);
            }
        }
        if s.items.len() < k && n > 0 {
            let start = rng.random_range(0..n);
            for off in 0..n {
                if s.items.len() == k {
                    break;
                }
                let c = (start + off) % n;
                if !exclude(c) && !s.items.contains(&c) {
                    s.items.push(c);
                }
            }
        }
        s.scores = vec![1.0; s.items.len()];
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream_rng, Stream};

    #[test]
    fn never_repeats_and_exhausts_the_catalogue() {
        let mut log = InteractionLog::new(1, 23);
        let mut r = RandomRec::default();
        r.fit(&log);
        let mut rng = stream_rng(5, Stream::Recommender, &[0]);
        let mut seen = Vec::new();
        loop {
            let s = r.recommend(0, 5, &|i| log.is_exposed(0, i), &mut rng);
            if s.items.is_empty() {
                break;
            }
            assert!(s.items.len() == 5 || seen.len() + s.items.len() == 23);
            for &i in &s.items {
                assert!(log.expose(0, i), "item {i} shown twice");
                seen.push(i);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }
}
