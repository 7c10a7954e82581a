//! Popularity: items ranked by watch count, ties by ascending index (so by id).

use rand_chacha::ChaCha8Rng;

use super::{InteractionLog, Recommender, Slate};

/// Ranks items by the number of watches in the log (initial interactions plus the run so far).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Popularity {
    /// Item indices by descending count, then ascending index.
    order: Vec<u32>,
    counts: Vec<u64>,
}

impl Recommender for Popularity {
    crate::model_state_via_serde!();

    fn name(&self) -> &'static str {
        "Popularity"
    }

    fn fit(&mut self, log: &InteractionLog) {
        self.counts = log.watch_counts().to_vec();
        let mut order: Vec<u32> = (0..self.counts.len() as u32).collect();
        order.sort_by(|&a, &b| {
            self.counts[b as usize]
                .cmp(&self.counts[a as usize])
                .then(a.cmp(&b))
        });
        self.order = order;
    }

    fn recommend(
        &self,
        _user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        let mut s = Slate::default();
        for &i in &self.order {
            if s.items.len() == k {
                break;
            }
            if !exclude(i) {
                s.items.push(i);
                s.scores.push(self.counts[i as usize] as f32);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream_rng, Stream};

    #[test]
    fn ranks_by_count_with_index_tie_break_and_exclusion() {
        let mut log = InteractionLog::new(1, 6);
        for (item, n) in [(4u32, 2), (1, 2), (5, 3)] {
            for _ in 0..n {
                log.watch(0, item, 0, 0);
            }
        }
        let mut p = Popularity::default();
        p.fit(&log);
        let mut rng = stream_rng(0, Stream::Recommender, &[]);
        let s = p.recommend(0, 4, &|_| false, &mut rng);
        assert_eq!(s.items, vec![5, 1, 4, 0]);
        assert_eq!(s.scores, vec![3.0, 2.0, 2.0, 0.0]);
        let s = p.recommend(0, 3, &|i| i == 1 || i == 0, &mut rng);
        assert_eq!(s.items, vec![5, 4, 2]);
    }
}
