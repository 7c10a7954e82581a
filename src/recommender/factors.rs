//! Batched top-k for factor models, whose score is an inner product `ŷ(u, i) = p_u · q_i`
//! (MF, LightGCN's propagated embeddings): many users' pages at once, with the lists of the
//! one-user path exactly.
//!
//! One user at a time, a page costs a matrix-vector product over every item (`n_items × d`
//! multiply-adds) and a selection. In a batch of [`BATCH`] users the scores come from one
//! matrix product `P_B · Qᵀ` (ndarray's GEMM, `matrixmultiply`), which sums in another order
//! than the one-user dot products, so scores can differ in the last bits. The list is kept
//! exact by a bound on that difference: for a dot product of length `d`, two summation orders
//! differ by at most `2·γ_d·Σ|p_k q_k| ≤ 2·γ_d·‖p‖₂·‖q‖₂` with `γ_d = d·u/(1 − d·u)`,
//! `u = 2⁻²⁴` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1,
//! eq. 3.5), taken here as `ε = 2·d·2⁻²³·‖p_u‖₂·max_i ‖q_i‖₂` (twice the bound). With `a_k`
//! the k-th best batched score among the items the user may get, every item of the exact top
//! `k` has a batched score `≥ a_k − 2ε`; those candidates are scored again exactly, with the
//! one-user path's own dot product, and ranked with its order (score descending, index
//! ascending, NaN last). A user whose bound is not finite is served by the one-user path.

use ndarray::{ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use super::{InteractionLog, Slate};

/// Users per matrix product: 256 users × 3,883 items of scores are 4 MB, within cache-friendly
/// reach, and enough rows for the GEMM kernel to run at speed.
pub const BATCH: usize = 256;

/// The embeddings of a factor model: `users` is `n_users × d`, `items` is `n_items × d`; the
/// score of item `i` for user `u` is `items.row(i).dot(&users.row(u))`.
pub struct FactorViews<'a> {
    /// User factors, one row per user index.
    pub users: ArrayView2<'a, f32>,
    /// Item factors, one row per item index.
    pub items: ArrayView2<'a, f32>,
}

/// The exact one-user top `k` of [`super::train::top_k`] over `items · p`, none for which
/// `exclude` holds: the reference the batched path reproduces.
pub fn top_k_one(
    items: ArrayView2<'_, f32>,
    p: ArrayView1<'_, f32>,
    k: usize,
    exclude: &dyn Fn(u32) -> bool,
) -> Slate {
    let scores = items.dot(&p);
    super::train::top_k(scores.as_slice().unwrap_or(&[]), k, exclude)
}

/// The top `k` items for each of `users` (dense indices), none the user was shown
/// (`log.is_exposed`): exactly the lists of one [`top_k_one`] per user (an empty list for a
/// user index outside `f.users`), computed in batches of [`BATCH`] users, the batches in
/// parallel on the rayon pool when `parallel`, results in `users` order.
pub fn batch_top_k(
    f: &FactorViews<'_>,
    users: &[u32],
    k: usize,
    log: &InteractionLog,
    parallel: bool,
) -> Vec<Slate> {
    let q_max = f
        .items
        .outer_iter()
        .map(|q| q.dot(&q).sqrt())
        .fold(0.0f32, f32::max);
    let one_batch = |chunk: &[u32]| batch(f, chunk, k, log, q_max);
    if parallel && users.len() > BATCH {
        users.par_chunks(BATCH).flat_map_iter(one_batch).collect()
    } else {
        users.chunks(BATCH).flat_map(one_batch).collect()
    }
}

fn batch(
    f: &FactorViews<'_>,
    users: &[u32],
    k: usize,
    log: &InteractionLog,
    q_max: f32,
) -> Vec<Slate> {
    let (n_users, d) = f.users.dim();
    let known: Vec<usize> = users
        .iter()
        .map(|&u| u as usize)
        .filter(|&u| u < n_users)
        .collect();
    let p = f.users.select(Axis(0), &known);
    // b × n_items, one row per known user.
    let approx = p.dot(&f.items.t());
    let mut row = 0;
    users
        .iter()
        .map(|&u| {
            if (u as usize) >= n_users {
                return Slate::default();
            }
            let pu = f.users.row(u as usize);
            let a = approx.row(row);
            row += 1;
            let exclude = |i: u32| log.is_exposed(u, i);
            let eps = 2.0 * d as f32 * f32::EPSILON * pu.dot(&pu).sqrt() * q_max;
            if !eps.is_finite() || a.iter().any(|x| !x.is_finite()) {
                return top_k_one(f.items, pu, k, &exclude);
            }
            shortlist(
                f.items,
                pu,
                a.as_slice().unwrap_or(&[]),
                k,
                eps,
                log.exposed(u),
            )
        })
        .collect()
}

/// The exact top `k` from the batched scores `approx` (finite) and their error bound `eps`,
/// none of the items `shown` (ascending).
fn shortlist(
    items: ArrayView2<'_, f32>,
    pu: ArrayView1<'_, f32>,
    approx: &[f32],
    k: usize,
    eps: f32,
    shown: &[u32],
) -> Slate {
    if k == 0 {
        return Slate::default();
    }
    // One pass over the batched scores finds the k-th best among the items the user may get
    // and the candidates, those within `2ε` of it. It keeps the k best values seen (sorted,
    // descending) and every item at or above the running floor (the k-th best so far, less
    // `2ε`; −∞ until k items are seen). The floor only rises, so an item at or above the final
    // floor was at or above the floor when it was seen: the final candidates are those kept
    // and still at or above it. Runs of `LANES` scores all below the floor (most of them, once
    // the floor is up) are passed over with one vectorised comparison; a selection over a copy
    // of every allowed index cost more than the matrix product before it.
    const LANES: usize = 16;
    let n = approx.len();
    let mut best: Vec<f32> = Vec::with_capacity(k + 1);
    let mut kept: Vec<u32> = Vec::with_capacity(4 * k);
    let mut floor = f32::NEG_INFINITY;
    let mut next_shown = 0usize;
    for (c, run) in approx.chunks(LANES).enumerate() {
        if !run.iter().fold(false, |hit, &a| hit | (a >= floor)) {
            continue;
        }
        for (o, &a) in run.iter().enumerate() {
            let i = (c * LANES + o) as u32;
            while next_shown < shown.len() && shown[next_shown] < i {
                next_shown += 1;
            }
            if shown.get(next_shown) == Some(&i) || a < floor {
                continue;
            }
            kept.push(i);
            if best.len() < k || a > best[k - 1] {
                let at = best.partition_point(|&b| b >= a);
                best.insert(at, a);
                best.truncate(k);
                if best.len() == k {
                    floor = best[k - 1] - 2.0 * eps;
                }
            }
        }
    }
    let below_n = shown.partition_point(|&x| (x as usize) < n);
    let shown_in = (0..below_n)
        .filter(|&j| j == 0 || shown[j - 1] != shown[j])
        .count();
    let allowed = n - shown_in;
    let floor = if allowed > k {
        best[k - 1] - 2.0 * eps
    } else {
        f32::NEG_INFINITY
    };
    kept.retain(|&i| approx[i as usize] >= floor);
    let candidates = kept;
    // The candidates' exact scores, as the one-user path computes them (ndarray's row dot
    // product is the matrix-vector product's element), ranked by its order (NaN last), each
    // computed once: (item, ranking key, score).
    let mut scored: Vec<(u32, f32, f32)> = candidates
        .into_iter()
        .map(|i| {
            let s = items.row(i as usize).dot(&pu);
            (i, if s.is_nan() { f32::NEG_INFINITY } else { s }, s)
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    Slate {
        items: scored.iter().map(|x| x.0).collect(),
        scores: scored.iter().map(|x| x.2).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    /// Factors with many exact ties and near-ties (values on a coarse grid, so different
    /// summation orders round differently), and a log exposing some items.
    fn case(
        n_users: usize,
        n_items: usize,
        d: usize,
        seed: u64,
    ) -> (Array2<f32>, Array2<f32>, InteractionLog) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut grid = |r: usize, c: usize| {
            Array2::from_shape_fn((r, c), |_| {
                let x: f32 = rng.random_range(-1.0..1.0);
                if rng.random_bool(0.3) {
                    (x * 4.0).round() / 4.0
                } else {
                    x * 1e3_f32.powf(rng.random_range(-1.0..1.0))
                }
            })
        };
        let (u, i) = (grid(n_users, d), grid(n_items, d));
        let mut log = InteractionLog::new(n_users, n_items);
        for user in 0..n_users as u32 {
            for _ in 0..(user as usize % 7) * 5 {
                log.expose(user, rng.random_range(0..n_items as u32));
            }
        }
        (u, i, log)
    }

    #[test]
    fn batched_lists_equal_the_one_user_lists_bit_for_bit() {
        for (seed, n_users, n_items, d, k) in [
            (1, 600, 500, 64, 5),
            (2, 300, 40, 8, 10),
            (3, 257, 1000, 16, 1),
            (4, 10, 30, 3, 40),
        ] {
            let (u, i, log) = case(n_users, n_items, d, seed);
            let f = FactorViews {
                users: u.view(),
                items: i.view(),
            };
            // Every user, twice, out of order, with one unknown index.
            let mut users: Vec<u32> = (0..n_users as u32).rev().chain(0..n_users as u32).collect();
            users.insert(7, n_users as u32 + 3);
            for parallel in [false, true] {
                let got = batch_top_k(&f, &users, k, &log, parallel);
                assert_eq!(got.len(), users.len());
                for (&user, slate) in users.iter().zip(&got) {
                    let want = if (user as usize) < n_users {
                        top_k_one(i.view(), u.row(user as usize), k, &|x| {
                            log.is_exposed(user, x)
                        })
                    } else {
                        Slate::default()
                    };
                    assert_eq!(slate.items, want.items, "seed {seed} user {user}");
                    let bits = |s: &Slate| s.scores.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(slate), bits(&want), "seed {seed} user {user}");
                }
            }
        }
    }

    #[test]
    fn near_ties_broken_by_rounding_alone_come_out_as_the_one_user_path_ranks_them() {
        // Every item is a permutation of one vector with a wide range of magnitudes, and every
        // user weighs the components almost equally: the items' scores are equal but for
        // rounding, which depends on the summation order, so the batched product ranks them
        // differently from the one-user dot products, and only the margin keeps the lists.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let d = 64;
        let base: Vec<f32> = (0..d)
            .map(|k| (k as f32 + 0.37) * 10f32.powi(k as i32 % 7 - 3))
            .collect();
        let items = Array2::from_shape_fn((400, d), |_| 0.0);
        let mut items = items;
        for mut row in items.outer_iter_mut() {
            let mut v = base.clone();
            for k in (1..d).rev() {
                v.swap(k, rng.random_range(0..=k));
            }
            row.assign(&ndarray::Array1::from(v));
        }
        let users = Array2::from_shape_fn((300, d), |_| 1.0 + rng.random_range(0.0..1e-7f32));
        let log = InteractionLog::new(300, 400);
        let f = FactorViews {
            users: users.view(),
            items: items.view(),
        };
        let all: Vec<u32> = (0..300).collect();
        let got = batch_top_k(&f, &all, 10, &log, false);
        let approx = users.dot(&items.t());
        let mut differ = 0;
        for (&user, slate) in all.iter().zip(&got) {
            let want = top_k_one(items.view(), users.row(user as usize), 10, &|_| false);
            assert_eq!(slate.items, want.items, "user {user}");
            // How often the batched scores alone would have chosen another list.
            let naive = super::super::train::top_k(
                approx.row(user as usize).as_slice().unwrap(),
                10,
                &|_| false,
            );
            differ += usize::from(naive.items != want.items);
        }
        assert!(
            differ > 0,
            "the case must hold lists that rounding alone changes"
        );
    }

    #[test]
    fn a_list_never_holds_a_shown_item_and_is_short_only_when_the_catalogue_runs_out() {
        let (u, i, mut log) = case(3, 12, 4, 9);
        for item in 0..10 {
            log.expose(0, item);
        }
        let f = FactorViews {
            users: u.view(),
            items: i.view(),
        };
        let got = batch_top_k(&f, &[0, 1], 5, &log, false);
        let mut first = got[0].items.clone();
        first.sort_unstable();
        assert_eq!(first, vec![10, 11]);
        assert_eq!(got[1].items.len(), 5);
        assert!(got[1].items.iter().all(|&x| !log.is_exposed(1, x)));
    }
}
