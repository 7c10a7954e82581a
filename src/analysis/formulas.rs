//! The formulas behind the per-round metrics (`metrics.csv`): genre entropy, the Gini
//! coefficient, the top share, intra-list diversity and conformity. Pure functions of slices and
//! numbers (no ECS), used by the metrics plugin (`systems/metrics.rs`) and reusable by reports.
//!
//! # Determinism
//! Every reduction runs in the order of its input (or of a sort the function does itself), so
//! the same input always gives the same bits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::GenreSet;
use crate::ids::{ItemId, UserId};

/// Shannon entropy, base 2, of a multiset given as counts per category:
/// `H = -Σ_k p_k log2 p_k` with `p_k = c_k / Σ c` (categories with `c_k = 0` contribute 0).
///
/// # Units
/// Bits, in `[0, log2(K)]` for `K` non-empty categories; 0 for an empty multiset (no
/// uncertainty), as RecAgent's `round_entropy` (arXiv 2306.02552, spec §2.3) gives for a page
/// list without genres.
///
/// # Examples
/// ```
/// // [A, A, B, C]: p = 1/2, 1/4, 1/4, so H = 0.5 + 0.5 + 0.5 = 1.5 bits.
/// assert_eq!(recagent::analysis::formulas::entropy_bits(&[2, 1, 1]), 1.5);
/// ```
pub fn entropy_bits(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // One category gives -0.0 (−1·log2 1), which tables would print as "-0".
    h + 0.0
}

/// How often each genre occurs in a multiset of items' genres: `0[b]` counts genre bit `b` of
/// [`GenreSet`] (at most 32 genres, as the catalogue allows). Each item adds one to every genre
/// it has, as RecAgent's `round_entropy` does with an item's pipe-separated genres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenreCounts(pub [u64; 32]);

impl GenreCounts {
    /// Adds every genre of `g` once.
    pub fn add(&mut self, g: GenreSet) {
        let mut bits = g.0;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            self.0[b] += 1;
            bits &= bits - 1;
        }
    }

    /// The Shannon entropy of the counts, bits ([`entropy_bits`]).
    pub fn entropy_bits(&self) -> f64 {
        entropy_bits(&self.0)
    }

    /// True when no genre was counted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&c| c == 0)
    }
}

/// The Shannon entropy (bits) of the genre multiset of `items`, each item contributing all its
/// genres (RecAgent's `round_entropy`, arXiv 2306.02552, spec §2.3).
///
/// # Examples
/// ```
/// use recagent::analysis::formulas::genre_entropy;
/// use recagent::domain::GenreSet;
/// // Genres A = bit 0, B = bit 1, C = bit 2. Items {A, B} and {A, C}: [A, A, B, C], 1.5 bits.
/// assert_eq!(genre_entropy([GenreSet(0b011), GenreSet(0b101)]), 1.5);
/// ```
pub fn genre_entropy(items: impl IntoIterator<Item = GenreSet>) -> f64 {
    let mut c = GenreCounts::default();
    for g in items {
        c.add(g);
    }
    c.entropy_bits()
}

/// The Gini coefficient of non-negative values sorted ascending:
/// `G = Σ_i Σ_j |x_i - x_j| / (2 n Σ x) = 2 Σ_i i·x_(i) / (n Σ x) - (n + 1) / n`
/// (i = 1..n over the ascending order).
///
/// # Units
/// Dimensionless, in `[0, 1 - 1/n]`: 0 when every value is equal, `1 - 1/n` when one value holds
/// everything. `None` for no values or an all-zero vector (0/0).
///
/// The input must be sorted ascending ([`gini`] sorts a copy); unsorted input gives a wrong value.
pub fn gini_sorted(sorted: &[u64]) -> Option<f64> {
    let n = sorted.len() as u128;
    let total: u128 = sorted.iter().map(|&x| u128::from(x)).sum();
    if n == 0 || total == 0 {
        return None;
    }
    let weighted: u128 = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u128 + 1) * u128::from(x))
        .sum();
    // Exact integer numerator before the one division: G = (2 Σ i x_i - (n + 1) Σ x) / (n Σ x).
    let num = 2 * weighted as i128 - (n as i128 + 1) * total as i128;
    Some(num as f64 / (n as f64 * total as f64))
}

/// The Gini coefficient of `values` in any order (see [`gini_sorted`]).
///
/// # Examples
/// ```
/// // Four items, one exposed 4 times: 2·(4·4)/(4·4) - 5/4 = 0.75.
/// assert_eq!(recagent::analysis::formulas::gini(&[0, 4, 0, 0]), Some(0.75));
/// ```
pub fn gini(values: &[u64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    gini_sorted(&v)
}

/// How many items make the top `percent` % of `n` items: `ceil(n · percent / 100)`, computed in
/// integers (a float product such as 0.1 · 30 = 3.0000000000000004 would round up to 4).
pub fn top_count(n: usize, percent: usize) -> usize {
    (n * percent).div_ceil(100)
}

/// The share of the total held by the `k` largest of `sorted` (ascending):
/// `Σ_{top k} x / Σ x`, in `[k/n, 1]` for a non-zero total; `None` when the total is 0.
/// Popularity bias: `k = top_count(n, 10)` gives the share of exposure going to the top 10 % of
/// items.
pub fn top_share_sorted(sorted: &[u64], k: usize) -> Option<f64> {
    let total: u128 = sorted.iter().map(|&x| u128::from(x)).sum();
    if total == 0 {
        return None;
    }
    let top: u128 = sorted.iter().rev().take(k).map(|&x| u128::from(x)).sum();
    Some(top as f64 / total as f64)
}

/// The Jaccard distance of two genre sets: `1 - |A ∩ B| / |A ∪ B|`, in `[0, 1]`; 0 when both
/// are empty (nothing tells them apart).
pub fn jaccard_distance(a: GenreSet, b: GenreSet) -> f64 {
    let union = a.union(b).len();
    if union == 0 {
        return 0.0;
    }
    1.0 - f64::from(a.intersect(b).len()) / f64::from(union)
}

/// Intra-list diversity of one list (a recommendation page): the mean over its unordered pairs
/// of items of the [`jaccard_distance`] of their genre sets,
/// `ILD = 2 / (k (k - 1)) Σ_{i<j} d(g_i, g_j)`, in `[0, 1]`. `None` for fewer than 2 items.
///
/// Ziegler, McNee, Konstan, Lausen, *Improving Recommendation Lists Through Topic
/// Diversification*, WWW 2005, §3.3 (intra-list similarity; here its complement with a
/// genre-set distance, normalised by the number of pairs so pages of any length compare).
///
/// # Examples
/// ```
/// use recagent::analysis::formulas::intra_list_diversity;
/// use recagent::domain::GenreSet;
/// // {A,B} vs {A,C}: 1 - 1/3; {A,B} vs {A,B}: 0; {A,C} vs {A,B}: 1 - 1/3. Mean (4/3)/3 = 4/9.
/// let d = intra_list_diversity(&[GenreSet(0b011), GenreSet(0b101), GenreSet(0b011)]).unwrap();
/// assert!((d - 4.0 / 9.0).abs() < 1e-12);
/// ```
pub fn intra_list_diversity(items: &[GenreSet]) -> Option<f64> {
    let k = items.len();
    if k < 2 {
        return None;
    }
    let mut sum = 0.0;
    for i in 0..k {
        for j in i + 1..k {
            sum += jaccard_distance(items[i], items[j]);
        }
    }
    Some(sum / (k * (k - 1) / 2) as f64)
}

/// One rating's conformity: `mean_u |r_u - s| - |r - s|`, how much closer the rating `r` of an
/// item the agent heard of lies to the stated rating `s` its contacts gave than the agent's own
/// ratings `r_u` of unmentioned items lie to it, with the latter given as a 1-5 histogram
/// (`baseline[k]` = ratings of `k + 1` stars). `None` without a baseline rating.
///
/// Why this form and not `(r - b)·sign(s - b)` against the baseline mean `b`: the mean's
/// estimation error enters both factors of that product, which is then positive for independent
/// `r` and `s` (+0.85 stars expected with one baseline rating, +0.29 with three; measured with the
/// `conformity.yaml` scenario). A mean of absolute deviations over the baseline ratings is an
/// unbiased estimate of `E|r_u - s|`, so with no social influence (`r` drawn like the `r_u`) the
/// expected term is 0.
///
/// # Units
/// Stars, in `[-4, 4]` for 1-5 ratings; > 0 = closer to what contacts said than usual.
pub fn conformity_term(rating: f64, baseline: &[u64; 5], stated: f64) -> Option<f64> {
    let n: u64 = baseline.iter().sum();
    if n == 0 {
        return None;
    }
    let usual: f64 = baseline
        .iter()
        .enumerate()
        .map(|(k, &c)| c as f64 * (k as f64 + 1.0 - stated).abs())
        .sum::<f64>()
        / n as f64;
    Some(usual - (rating - stated).abs())
}

/// What one agent heard of one item: the stated ratings of the mentions (their sum and number;
/// a mention by a speaker who had not rated the item adds no stated rating but still marks the
/// item as mentioned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeardOf {
    /// Sum of the stated ratings, stars.
    pub stated_sum: u32,
    /// Number of mentions with a stated rating.
    pub stated_n: u32,
}

/// The conformity measure over a run: each agent's baseline and what it heard from whom.
///
/// For a rating `r(a, i)` given in round t: if `a` had heard of `i` before rating it, from speakers
/// who had rated it, with stated ratings `s_1..s_m` (one per mention, the speaker's own rating at
/// that moment), `s = mean(s_1..s_m)`; `B_a` = `a`'s ratings up to and including round t of items
/// it had not heard of when it rated them. The rating's term is [`conformity_term`]`(r, B_a, s)`
/// = `mean_{u in B_a} |r_u - s| - |r - s|`; ratings with no stated rating or an empty `B_a` are
/// skipped. A round's conformity is the mean of its terms (stars; > 0 = ratings closer to what
/// others said than the agent's ratings of unmentioned items are). It quantifies the effect RecAgent's user-conformity experiment studies
/// (arXiv 2306.02552: agents' ratings drifting toward what their friends said), measured against
/// each agent's own ratings of unmentioned items.
///
/// "Before rating it" is the order of the calls: what [`Conformity::hear`] was told before
/// [`Conformity::rate_round`]. The metrics plugin hears a round's posts (read at the start of the
/// round) before the round's ratings and its chats (held after the ratings) after them, so a chat
/// counts for the listener's ratings from the next round on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conformity {
    /// Per agent: how many of its ratings of items it had not heard of gave 1..=5 stars.
    pub baselines: BTreeMap<UserId, [u64; 5]>,
    /// What each agent heard of each item so far, by (listener, item).
    pub heard: BTreeMap<(UserId, ItemId), HeardOf>,
}

/// A round's conformity: the mean term and the number of ratings in it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConformityRound {
    /// Mean of the terms, stars; `None` when no rating entered.
    pub mean: Option<f64>,
    /// Ratings that entered the mean.
    pub pairs: u64,
}

impl Conformity {
    /// Records that `listener` heard of `item`, with the speaker's rating `stated` (1..=5) when it
    /// had one.
    pub fn hear(&mut self, listener: UserId, item: ItemId, stated: Option<u8>) {
        let h = self.heard.entry((listener, item)).or_default();
        if let Some(s) = stated.filter(|&s| s > 0) {
            h.stated_sum += u32::from(s);
            h.stated_n += 1;
        }
    }

    /// Takes a round's ratings `(agent, item, stars 1..=5)` (call before the round's
    /// [`Conformity::hear`]s): ratings of items never heard of join their agent's baseline, and the
    /// round's conformity is computed over the others. The terms are summed in input order.
    pub fn rate_round(&mut self, ratings: &[(UserId, ItemId, u8)]) -> ConformityRound {
        for &(a, i, r) in ratings {
            if !self.heard.contains_key(&(a, i)) && (1..=5).contains(&r) {
                self.baselines.entry(a).or_default()[usize::from(r) - 1] += 1;
            }
        }
        let (mut sum, mut pairs) = (0.0, 0u64);
        for &(a, i, r) in ratings {
            let Some(h) = self.heard.get(&(a, i)).filter(|h| h.stated_n > 0) else {
                continue;
            };
            let Some(baseline) = self.baselines.get(&a) else {
                continue;
            };
            let stated = f64::from(h.stated_sum) / f64::from(h.stated_n);
            if let Some(t) = conformity_term(f64::from(r), baseline, stated) {
                sum += t;
                pairs += 1;
            }
        }
        ConformityRound {
            mean: (pairs > 0).then(|| sum / pairs as f64),
            pairs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: GenreSet = GenreSet(0b001);
    const B: GenreSet = GenreSet(0b010);
    const C: GenreSet = GenreSet(0b100);

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn entropy_of_known_genre_multisets() {
        // [A, A, B, C]: -(1/2 log2 1/2 + 2 · 1/4 log2 1/4) = 0.5 + 1 = 1.5 bits.
        assert_eq!(genre_entropy([A, A, B, C]), 1.5);
        // The same multiset from two items {A, B} and {A, C}.
        assert_eq!(genre_entropy([A.union(B), A.union(C)]), 1.5);
        // One genre only: no uncertainty. Two equally frequent genres: exactly 1 bit.
        assert_eq!(genre_entropy([A, A, A]), 0.0);
        assert_eq!(genre_entropy([A, B]), 1.0);
        // [A, B, B]: -(1/3 log2 1/3 + 2/3 log2 2/3) = log2 3 - 2/3 = 0.918295...
        assert!(close(genre_entropy([A, B, B]), 3f64.log2() - 2.0 / 3.0));
        // No genres at all (items without genres): 0.
        assert_eq!(genre_entropy([GenreSet(0), GenreSet(0)]), 0.0);
        assert_eq!(entropy_bits(&[]), 0.0);
        // Eight equally frequent categories: 3 bits.
        assert_eq!(entropy_bits(&[5; 8]), 3.0);
    }

    #[test]
    fn gini_of_known_vectors() {
        // All on one of 4 items: 2·(4·4)/(4·4) - 5/4 = 0.75 = 1 - 1/n.
        assert_eq!(gini(&[0, 0, 0, 4]), Some(0.75));
        assert_eq!(gini(&[4, 0, 0, 0]), Some(0.75));
        // Equal: 0.
        assert_eq!(gini(&[3, 3, 3]), Some(0.0));
        // [1, 2, 3]: Σ|xi - xj| over ordered pairs = 2·(1 + 2 + 1) = 8; 8 / (2·3·6) = 2/9.
        assert!(close(gini(&[3, 1, 2]).unwrap(), 2.0 / 9.0));
        // [0, 1]: pairs |0-1| twice = 2; 2 / (2·2·1) = 0.5.
        assert_eq!(gini_sorted(&[0, 1]), Some(0.5));
        // Nothing to share: undefined.
        assert_eq!(gini(&[0, 0]), None);
        assert_eq!(gini(&[]), None);
    }

    #[test]
    fn top_share_takes_the_ceiling_of_ten_percent() {
        assert_eq!(top_count(30, 10), 3);
        assert_eq!(top_count(31, 10), 4);
        assert_eq!(top_count(3, 10), 1);
        assert_eq!(top_count(3883, 10), 389);
        assert_eq!(top_count(0, 10), 0);
        // 12 items sorted, top ceil(1.2) = 2: (9 + 6) / (1+1+1+1+1+1+1+1+1+2+6+9 = 26).
        let v = [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 6, 9];
        assert!(close(
            top_share_sorted(&v, top_count(v.len(), 10)).unwrap(),
            15.0 / 26.0
        ));
        assert_eq!(top_share_sorted(&[0, 0, 0], 1), None);
    }

    #[test]
    fn jaccard_distance_and_intra_list_diversity() {
        // {A,B} vs {B,C}: ∩ {B}, ∪ {A,B,C}: 1 - 1/3.
        assert!(close(jaccard_distance(A.union(B), B.union(C)), 2.0 / 3.0));
        assert_eq!(jaccard_distance(A, B), 1.0);
        assert_eq!(jaccard_distance(A, A), 0.0);
        assert_eq!(jaccard_distance(GenreSet(0), GenreSet(0)), 0.0);
        // {A}, {B}, {A}: pairs 1, 0, 1 → 2/3.
        assert!(close(intra_list_diversity(&[A, B, A]).unwrap(), 2.0 / 3.0));
        assert_eq!(intra_list_diversity(&[A]), None);
        assert_eq!(intra_list_diversity(&[]), None);
    }

    #[test]
    fn conformity_terms_compare_with_the_agents_usual_distance() {
        // Baseline ratings 3 and 5 (histogram [0, 0, 1, 0, 1]); friends said 5.
        // Usual distance (|3 - 5| + |5 - 5|) / 2 = 1. Rated 5: 1 - 0 = 1 (closer than usual);
        // rated 4: 1 - 1 = 0; rated 1: 1 - 4 = -3 (farther).
        let b = [0, 0, 1, 0, 1];
        assert_eq!(conformity_term(5.0, &b, 5.0), Some(1.0));
        assert_eq!(conformity_term(4.0, &b, 5.0), Some(0.0));
        assert_eq!(conformity_term(1.0, &b, 5.0), Some(-3.0));
        // Stated 2.5 (two mentions, 2 and 3): usual (0.5 + 2.5) / 2 = 1.5; rated 2: 1.5 - 0.5 = 1.
        assert_eq!(conformity_term(2.0, &b, 2.5), Some(1.0));
        assert_eq!(conformity_term(4.0, &[0; 5], 5.0), None);
    }

    #[test]
    fn conformity_is_zero_in_expectation_without_influence() {
        // Every rating r and stated rating s drawn from the same distribution, with a baseline
        // of the agent's other ratings: the expected term is E|r_u - s| - E|r - s| = 0. Exact
        // over all combinations of a two-valued distribution {2, 4} with one baseline rating:
        // (r_u, r, s) in {2,4}^3, eight equally likely cases.
        let mut sum = 0.0;
        for ru in [2u8, 4] {
            for r in [2.0, 4.0] {
                for st in [2.0, 4.0] {
                    let mut b = [0; 5];
                    b[usize::from(ru) - 1] = 1;
                    sum += conformity_term(r, &b, st).unwrap();
                }
            }
        }
        assert_eq!(sum, 0.0);
    }

    #[test]
    fn two_agent_conformity_case() {
        let (a, b) = (UserId(0), UserId(1));
        let (x, y, z, w) = (ItemId(10), ItemId(11), ItemId(12), ItemId(13));
        let mut c = Conformity::default();
        // Round 1: a rates x 2 and y 4 (never heard of): baseline {2, 4}. b rates z 5.
        // Nothing was heard before round 1: no pairs.
        let r1 = c.rate_round(&[(a, x, 2), (a, y, 4), (b, z, 5)]);
        assert_eq!(
            r1,
            ConformityRound {
                mean: None,
                pairs: 0
            }
        );
        // After the ratings b tells a about z (b rated it 5) twice, and about w (b has not
        // rated w: mentioned, no stated rating).
        c.hear(a, z, Some(5));
        c.hear(a, z, Some(5));
        c.hear(a, w, None);
        // Round 2: a rates z 4 and w 1; b rates y 3 (b heard of nothing: its baseline).
        let r2 = c.rate_round(&[(a, z, 4), (a, w, 1), (b, y, 3)]);
        // a's baseline stays {2, 4} (z and w were mentioned). z: s = 5, usual distance
        // (3 + 1) / 2 = 2, |4 - 5| = 1: term 1. w: no stated rating, skipped (not in the baseline).
        assert_eq!(
            r2,
            ConformityRound {
                mean: Some(1.0),
                pairs: 1
            }
        );
        assert_eq!(c.baselines[&a], [0, 1, 0, 1, 0]);
        assert_eq!(c.baselines[&b], [0, 0, 1, 0, 1]);
        // After round 2 a tells b about x (a rated it 2).
        c.hear(b, x, Some(2));
        // b rates x 3: b's baseline {5, 3}, s = 2: usual (3 + 1) / 2 = 2, |3 - 2| = 1: term 1.
        // a rates a new item q 5 unmentioned: it joins a's baseline.
        let q = ItemId(14);
        let r3 = c.rate_round(&[(a, q, 5), (b, x, 3)]);
        assert_eq!(
            r3,
            ConformityRound {
                mean: Some(1.0),
                pairs: 1
            }
        );
        assert_eq!(c.baselines[&a], [0, 1, 0, 1, 1]);
    }

    #[test]
    fn conformity_mean_over_several_pairs() {
        let (a, b) = (UserId(0), UserId(1));
        let mut c = Conformity::default();
        // Both hear of item 1 (stated 5) and item 2 (stated 1, then 3: s = 2).
        for u in [a, b] {
            c.hear(u, ItemId(1), Some(5));
            c.hear(u, ItemId(2), Some(1));
            c.hear(u, ItemId(2), Some(3));
        }
        // a's baseline: item 9 rated 3 in this same round (unmentioned).
        // a rates 1 → 5: |3 - 5| - |5 - 5| = 2; a rates 2 → 3: |3 - 2| - |3 - 2| = 0.
        // b's baseline: item 8 rated 2. b rates 2 → 1: |2 - 2| - |1 - 2| = -1;
        // b rates 1 → 2: |2 - 5| - |2 - 5| = 0.
        let r = c.rate_round(&[
            (a, ItemId(1), 5),
            (a, ItemId(2), 3),
            (a, ItemId(9), 3),
            (b, ItemId(1), 2),
            (b, ItemId(2), 1),
            (b, ItemId(8), 2),
        ]);
        // Terms 2, 0, -1, 0: mean 1/4 over 4 pairs.
        assert_eq!(r.pairs, 4);
        assert!(close(r.mean.unwrap(), 0.25));
    }

    #[test]
    fn conformity_state_round_trips_through_the_checkpoint_encoding() {
        let mut c = Conformity::default();
        c.hear(UserId(3), ItemId(7), Some(4));
        c.hear(UserId(1), ItemId(2), None);
        c.rate_round(&[(UserId(3), ItemId(9), 2)]);
        let bytes = crate::plugin::parts::encode(&c).unwrap();
        let back: Conformity = crate::plugin::parts::decode(&bytes).unwrap();
        assert_eq!(back, c);
    }
}
