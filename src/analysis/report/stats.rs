//! The statistics a report computes from a run's raw outputs (the per-round ones come from
//! `metrics.csv`): Shannon entropy, Gini coefficient and Lorenz curve, Jensen–Shannon
//! divergence. Pure functions over slices; sums run in slice order, so results are
//! reproducible bit for bit.

pub use crate::analysis::formulas::{entropy_bits, gini};

/// Lorenz curve of non-negative values (Lorenz 1905): values sorted ascending, points
/// `(i / n, Σ_{j<=i} x_(j) / Σ x)` for `i = 0..=n`, so it runs from `(0, 0)` to `(1, 1)`.
/// Empty for no values or a zero sum. Twice the area between it and the diagonal is
/// [`gini`].
pub fn lorenz(values: &[u64]) -> Vec<(f64, f64)> {
    let total: u64 = values.iter().sum();
    if values.is_empty() || total == 0 {
        return Vec::new();
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len() as f64;
    let mut out = Vec::with_capacity(v.len() + 1);
    out.push((0.0, 0.0));
    let mut cum = 0u64;
    for (i, x) in v.iter().enumerate() {
        cum += x;
        out.push(((i + 1) as f64 / n, cum as f64 / total as f64));
    }
    out
}

/// Jensen–Shannon divergence, in bits, between two histograms over the same bins (each
/// normalised to sum 1 first): `JSD = ½ KL(P‖M) + ½ KL(Q‖M)`, `M = ½ (P + Q)`, with log base 2
/// (Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 1991).
/// In [0, 1]: 0 for equal shapes, 1 for disjoint supports. `None` when the lengths differ,
/// a histogram sums to 0, or a bin is negative or not finite.
///
/// # Examples
/// ```
/// # use recagent::analysis::report::js_divergence;
/// assert_eq!(js_divergence(&[1.0, 0.0], &[0.0, 1.0]), Some(1.0));
/// assert_eq!(js_divergence(&[2.0, 2.0], &[5.0, 5.0]), Some(0.0));
/// ```
pub fn js_divergence(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len() || p.is_empty() {
        return None;
    }
    let valid = |h: &[f64]| h.iter().all(|x| x.is_finite() && *x >= 0.0);
    if !valid(p) || !valid(q) {
        return None;
    }
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return None;
    }
    let kl_to_m = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let d: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (a, b) = (a / sp, b / sq);
            let m = 0.5 * (a + b);
            0.5 * kl_to_m(a, m) + 0.5 * kl_to_m(b, m)
        })
        .sum();
    // Rounding can leave a tiny negative value for equal shapes.
    Some(d.clamp(0.0, 1.0))
}

/// Mean of the values, `None` when there are none.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_genre_lists() {
        // Four equally frequent genres: log2 4 = 2 bits.
        assert_eq!(entropy_bits(&[1, 1, 1, 1]), 2.0);
        // p = (1/2, 1/4, 1/4): 0.5·1 + 0.25·2 + 0.25·2 = 1.5 bits.
        assert_eq!(entropy_bits(&[2, 1, 1]), 1.5);
        assert_eq!(entropy_bits(&[5]), 0.0);
        assert_eq!(entropy_bits(&[]), 0.0);
    }

    #[test]
    fn gini_and_lorenz_of_a_known_vector() {
        // Sorted [1, 2, 3, 4], n = 4, sum 10: Σ (2i - 5) x_i = -3·1 - 1·2 + 1·3 + 3·4 = 10,
        // G = 10 / (4·10) = 0.25.
        assert_eq!(gini(&[3, 1, 4, 2]), Some(0.25));
        assert_eq!(gini(&[2, 2, 2]), Some(0.0));
        assert_eq!(gini(&[0, 0]), None);
        assert_eq!(
            lorenz(&[3, 1, 4, 2]),
            vec![(0.0, 0.0), (0.25, 0.1), (0.5, 0.3), (0.75, 0.6), (1.0, 1.0)]
        );
        // Twice the area between diagonal and curve (trapezoids) is the Gini:
        // area under = 0.25·(0 + 0.1 + 0.1 + 0.3 + 0.3 + 0.6 + 0.6 + 1) / 2 = 0.375,
        // G = 1 - 2·0.375 = 0.25.
        let l = lorenz(&[3, 1, 4, 2]);
        let area: f64 = l
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((1.0 - 2.0 * area - 0.25).abs() < 1e-12);
    }

    #[test]
    fn js_divergence_of_known_histograms() {
        // Disjoint supports: M = (½, ½), KL(P‖M) = 1·log2(1/½) = 1, JSD = ½ + ½ = 1 bit.
        assert_eq!(js_divergence(&[1.0, 0.0], &[0.0, 1.0]), Some(1.0));
        // P = (1, 0), Q = (½, ½): M = (¾, ¼); KL(P‖M) = log2(4/3) = 0.415037...,
        // KL(Q‖M) = ½ log2(½/¾) + ½ log2(½/¼) = ½(-0.584963) + ½(1) = 0.207519...;
        // JSD = ½ (0.415037 + 0.207519) = 0.311278 bits.
        let d = js_divergence(&[4.0, 0.0], &[1.0, 1.0]).unwrap();
        assert!((d - 0.311_278).abs() < 1e-6, "{d}");
        // Symmetric, and scale-free.
        assert_eq!(
            js_divergence(&[1.0, 1.0], &[4.0, 0.0]),
            js_divergence(&[4.0, 0.0], &[1.0, 1.0])
        );
        assert_eq!(js_divergence(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(js_divergence(&[0.0, 0.0], &[1.0, 2.0]), None);
        assert_eq!(js_divergence(&[-1.0, 2.0], &[1.0, 2.0]), None);
    }
}
