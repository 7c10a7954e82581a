//! Shared training machinery: positive sets, top-k selection, BPR sampling and a lazy Adam.

use std::cmp::Ordering;

use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{InteractionLog, Slate};

/// Hyper-parameters of the embedding models (MF, LightGCN). The first four are RecAgent's config
/// keys with RecAgent's meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Embedding dimension `d` (`embedding_size`); ≥ 1.
    pub dim: usize,
    /// Adam learning rate (`lr`); > 0.
    pub lr: f32,
    /// Passes over the positive pairs per `fit` (`epoch_num`); 0 = no training.
    pub epochs: u32,
    /// BPR triples per Adam step (`batch_size`); ≥ 1.
    pub batch: usize,
    /// L2 weight on the embeddings used in a batch (LightGCN's `decay`, He et al. 2020); ≥ 0.
    pub reg: f32,
    /// Root seed; initialisation and sampling draw from ChaCha8 streams derived from it.
    pub seed: u64,
    /// Propagation layers `K` (LightGCN only; RecAgent has no such key). He et al. use 3.
    pub layers: usize,
}

impl super::ConfiguredParams for TrainParams {
    fn keep_configured(&self, restored: &mut Self) -> Result<(), String> {
        if self.dim != restored.dim {
            return Err(format!(
                "embedding_size is {} in the checkpoint and {} now: the embeddings cannot change size",
                restored.dim, self.dim
            ));
        }
        if self.layers != restored.layers {
            return Err(format!(
                "LightGCN's layers are {} in the checkpoint and {} now",
                restored.layers, self.layers
            ));
        }
        *restored = self.clone();
        Ok(())
    }
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            dim: 64,
            lr: 0.001,
            epochs: 10,
            batch: 64,
            reg: 1e-4,
            seed: 2023,
            layers: 3,
        }
    }
}

/// Per-user positive items in CSR form (sorted, deduplicated), and the flat list of pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Positives {
    /// `offsets[u]..offsets[u + 1]` indexes `items` for user `u`; length `n_users + 1`.
    offsets: Vec<usize>,
    /// Item indices, ascending within each user.
    items: Vec<u32>,
    /// Number of items in the catalogue.
    n_items: usize,
}

impl Positives {
    /// From per-user item lists (any order, duplicates allowed; items ≥ `n_items` are dropped).
    pub fn from_lists(lists: &[Vec<u32>], n_items: usize) -> Self {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut items = Vec::new();
        offsets.push(0);
        for l in lists {
            let mut l: Vec<u32> = l
                .iter()
                .copied()
                .filter(|&i| (i as usize) < n_items)
                .collect();
            l.sort_unstable();
            l.dedup();
            items.extend_from_slice(&l);
            offsets.push(items.len());
        }
        Self {
            offsets,
            items,
            n_items,
        }
    }

    /// Every watched (user, item) of the log, as positives.
    pub fn from_log(log: &InteractionLog) -> Self {
        let mut lists = vec![Vec::new(); log.n_users()];
        for &(u, i, _, _) in log.watches() {
            if let Some(l) = lists.get_mut(u as usize) {
                l.push(i);
            }
        }
        Self::from_lists(&lists, log.n_items())
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.n_items
    }
    /// Number of (user, item) pairs.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Items of `user`, ascending (empty for an unknown user).
    pub fn items_of(&self, user: u32) -> &[u32] {
        let u = user as usize;
        if u + 1 >= self.offsets.len() {
            return &[];
        }
        &self.items[self.offsets[u]..self.offsets[u + 1]]
    }
    /// True when `user` has `item`.
    pub fn contains(&self, user: u32, item: u32) -> bool {
        self.items_of(user).binary_search(&item).is_ok()
    }
    /// The `p`-th pair in (user, item) order.
    pub fn pair(&self, p: usize) -> (u32, u32) {
        let u = self.offsets.partition_point(|&o| o <= p) - 1;
        (u as u32, self.items[p])
    }
    /// Number of positives per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for &i in &self.items {
            c[i as usize] += 1;
        }
        c
    }
}

/// The best `k` items among `0..n` not excluded, ordered by `better` (which must be a total order;
/// `Less` = ranks first). Deterministic: O(n + k log k).
pub fn top_k_by(
    n: usize,
    k: usize,
    exclude: &dyn Fn(u32) -> bool,
    better: impl Fn(u32, u32) -> Ordering,
) -> Vec<u32> {
    let mut cand: Vec<u32> = (0..n as u32).filter(|&i| !exclude(i)).collect();
    if k == 0 || cand.is_empty() {
        return Vec::new();
    }
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, |&a, &b| better(a, b));
        cand.truncate(k);
    }
    cand.sort_unstable_by(|&a, &b| better(a, b));
    cand
}

/// Top `k` by descending score, ties by ascending index; NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize, exclude: &dyn Fn(u32) -> bool) -> Slate {
    let key = |i: u32| {
        let s = scores[i as usize];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    let items = top_k_by(scores.len(), k, exclude, |a, b| {
        key(b).total_cmp(&key(a)).then(a.cmp(&b))
    });
    let scores = items.iter().map(|&i| scores[i as usize]).collect();
    Slate { items, scores }
}

/// An `rows × dim` matrix with N(0, std²) entries drawn row-major from `rng`.
pub fn normal_init(rows: usize, dim: usize, std: f32, rng: &mut ChaCha8Rng) -> Array2<f32> {
    let n = Normal::new(0.0f32, std).expect("invariant: std > 0");
    Array2::from_shape_fn((rows, dim), |_| n.sample(rng))
}

/// One epoch of BPR triples `(user, positive, negative)`: every positive pair once, in a seeded
/// random order (Fisher–Yates), each with a uniform item the user has not interacted with
/// (rejection sampling; a user who has every item gets no triple). Rendle et al. 2009, §4.
pub fn bpr_triples(pos: &Positives, rng: &mut ChaCha8Rng) -> Vec<(u32, u32, u32)> {
    let n_items = pos.n_items() as u32;
    let mut order: Vec<usize> = (0..pos.len()).collect();
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    // Each pair's user, once: a search of the offsets per pair was a tenth of an epoch.
    let mut owner: Vec<u32> = Vec::with_capacity(pos.len());
    for u in 0..pos.n_users() {
        owner.extend(std::iter::repeat_n(u as u32, pos.items_of(u as u32).len()));
    }
    let mut out = Vec::with_capacity(order.len());
    for p in order {
        let (u, i) = (owner[p], pos.items[p]);
        if pos.items_of(u).len() >= n_items as usize {
            continue;
        }
        let j = loop {
            let j = rng.random_range(0..n_items);
            if !pos.contains(u, j) {
                break j;
            }
        };
        out.push((u, i, j));
    }
    out
}

/// Logistic function σ(x) = 1 / (1 + e^(−x)).
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Adam (Kingma & Ba 2015, Alg. 1; β₁ = 0.9, β₂ = 0.999, ε = 1e-8) over one parameter matrix.
/// `step_rows` updates only the listed rows (the "lazy"/sparse variant, as PyTorch's `SparseAdam`:
/// moments of untouched rows are left as they are); `step_dense` updates every row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adam {
    #[serde(with = "f32_matrix")]
    m: Array2<f32>,
    #[serde(with = "f32_matrix")]
    v: Array2<f32>,
    t: u64,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    /// Zero moments for a `rows × dim` parameter.
    pub fn new(rows: usize, dim: usize) -> Self {
        Self {
            m: Array2::zeros((rows, dim)),
            v: Array2::zeros((rows, dim)),
            t: 0,
        }
    }

    fn update_row(&mut self, p: &mut [f32], g: &[f32], r: usize, lr_t: f32) {
        let d = p.len();
        let m = &mut self.m.as_slice_mut().expect("standard layout")[r * d..(r + 1) * d];
        for (mm, &gg) in m.iter_mut().zip(g) {
            *mm = Self::B1 * *mm + (1.0 - Self::B1) * gg;
        }
        let v = &mut self.v.as_slice_mut().expect("standard layout")[r * d..(r + 1) * d];
        for (vv, &gg) in v.iter_mut().zip(g) {
            *vv = Self::B2 * *vv + (1.0 - Self::B2) * gg * gg;
        }
        let m = &self.m.as_slice().expect("standard layout")[r * d..(r + 1) * d];
        let v = &self.v.as_slice().expect("standard layout")[r * d..(r + 1) * d];
        for k in 0..d {
            p[k] -= lr_t * m[k] / (v[k].sqrt() + Self::EPS);
        }
    }

    fn lr_t(&mut self, lr: f32) -> f32 {
        self.t += 1;
        let t = self.t as i32;
        lr * (1.0 - Self::B2.powi(t)).sqrt() / (1.0 - Self::B1.powi(t))
    }

    /// One step on `rows` (ascending, unique) of `param` with gradient `grad` (same shape).
    pub fn step_rows(
        &mut self,
        param: &mut Array2<f32>,
        grad: &Array2<f32>,
        rows: &[u32],
        lr: f32,
    ) {
        let lr_t = self.lr_t(lr);
        let d = param.ncols();
        let ps = param.as_slice_mut().expect("standard layout");
        let gs = grad.as_slice().expect("standard layout");
        for &r in rows {
            let r = r as usize;
            self.update_row(
                &mut ps[r * d..(r + 1) * d],
                &gs[r * d..(r + 1) * d],
                r,
                lr_t,
            );
        }
    }

    /// One step on the rows `rows` (distinct, any order) of `param`, row `rows[s]` with the
    /// gradient `grads[s·d..(s+1)·d]` (`d` = `param.ncols()`): [`Adam::step_rows`] for a
    /// gradient kept only for the rows it touches.
    pub fn step_listed(&mut self, param: &mut Array2<f32>, rows: &[u32], grads: &[f32], lr: f32) {
        let lr_t = self.lr_t(lr);
        let d = param.ncols();
        let ps = param.as_slice_mut().expect("standard layout");
        for (s, &r) in rows.iter().enumerate() {
            let r = r as usize;
            self.update_row(
                &mut ps[r * d..(r + 1) * d],
                &grads[s * d..(s + 1) * d],
                r,
                lr_t,
            );
        }
    }

    /// One step on every row.
    pub fn step_dense(&mut self, param: &mut Array2<f32>, grad: &Array2<f32>, lr: f32) {
        let lr_t = self.lr_t(lr);
        let d = param.ncols();
        let rows = param.nrows();
        let ps = param.as_slice_mut().expect("standard layout");
        let gs = grad.as_slice().expect("standard layout");
        for r in 0..rows {
            self.update_row(
                &mut ps[r * d..(r + 1) * d],
                &gs[r * d..(r + 1) * d],
                r,
                lr_t,
            );
        }
    }
}

/// Serde for the `f32` matrices of a model's checkpointed state (embeddings, Adam moments): the
/// shape and the values as one little-endian byte string, `{dim: [rows, cols], le_f32: bytes}`.
/// ndarray's own form, `{v: 1, dim: [rows, cols], data: [f32, ...]}`, costs MessagePack five
/// bytes and one encoder call per value: at a million users, MF's three `1M × 64` matrices took
/// most of a 27 s checkpoint write on one core. Both forms are read, so checkpoints written
/// before keep resuming.
pub(crate) mod f32_matrix {
    use std::fmt;

    use ndarray::Array2;
    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeStruct;
    use serde::{Deserializer, Serializer};

    use crate::io::blob::BlobRef;

    /// The bytes of `a`'s values, little-endian, row by row: on a little-endian machine with the
    /// usual layout a view of the values themselves (a matrix at a million users is a quarter
    /// gigabyte, not copied again before the encoder copies it), else a copy.
    fn le_bytes(a: &Array2<f32>) -> std::borrow::Cow<'_, [u8]> {
        match a.as_slice() {
            Some(v) if cfg!(target_endian = "little") => bytemuck::cast_slice(v).into(),
            _ => a
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        }
    }

    /// Writes `a` as `{dim, le_f32}`.
    pub fn serialize<S: Serializer>(a: &Array2<f32>, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Matrix", 2)?;
        st.serialize_field("dim", &[a.nrows(), a.ncols()])?;
        st.serialize_field("le_f32", &BlobRef(le_bytes(a)))?;
        st.end()
    }

    /// Reads `{dim, le_f32}` or ndarray's `{v, dim, data}`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array2<f32>, D::Error> {
        d.deserialize_map(MatrixVisitor)
    }

    struct MatrixVisitor;

    impl<'de> Visitor<'de> for MatrixVisitor {
        type Value = Array2<f32>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a matrix: {dim, le_f32} or {v, dim, data}")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Array2<f32>, A::Error> {
            let mut dim: Option<(usize, usize)> = None;
            let mut values: Option<Vec<f32>> = None;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "dim" => dim = Some(map.next_value()?),
                    "data" => values = Some(map.next_value()?),
                    "le_f32" => {
                        // Borrowed from the checkpoint's bytes when the decoder can lend them.
                        let BlobRef(b) = map.next_value()?;
                        if b.len() % 4 != 0 {
                            return Err(de::Error::custom(format!(
                                "a matrix's values are {} bytes, not a whole number of f32",
                                b.len()
                            )));
                        }
                        values = Some(
                            b.chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect(),
                        );
                    }
                    _ => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
            }
            let dim = dim.ok_or_else(|| de::Error::missing_field("dim"))?;
            let values = values.ok_or_else(|| de::Error::missing_field("le_f32"))?;
            let n = values.len();
            Array2::from_shape_vec(dim, values).map_err(|_| {
                de::Error::custom(format!(
                    "a {} x {} matrix cannot hold {n} values",
                    dim.0, dim.1
                ))
            })
        }
    }
}

/// Dot product of two equal-length slices, summed left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Test fixture: users 0..4 like items 0..4 and users 4..8 like items 4..8, each user missing
/// one item of its block (`(u / 4) * 4 + u % 4`), which a model that learned the two blocks
/// ranks first.
#[cfg(test)]
pub(crate) fn two_block_positives() -> Positives {
    let lists: Vec<Vec<u32>> = (0..8u32)
        .map(|u| {
            let base = (u / 4) * 4;
            (base..base + 4).filter(|&i| i != base + u % 4).collect()
        })
        .collect();
    Positives::from_lists(&lists, 8)
}

/// Test check: the model's loss at least halved and its top item for every user of
/// [`two_block_positives`] is the one the user is missing.
#[cfg(test)]
pub(crate) fn assert_learned_two_blocks(m: &dyn super::Recommender, pos: &Positives, loss: &[f32]) {
    assert!(loss.last().unwrap() < &(0.5 * loss[0]), "loss {loss:?}");
    let mut rng = crate::rng::stream_rng(0, crate::rng::Stream::Recommender, &[]);
    for u in 0..8u32 {
        let s = m.recommend(u, 1, &|i| pos.contains(u, i), &mut rng);
        assert_eq!(s.items, vec![(u / 4) * 4 + u % 4], "user {u}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream_rng, Stream};

    #[test]
    fn positives_dedup_and_pairs() {
        let p = Positives::from_lists(&[vec![3, 1, 3], vec![], vec![0, 9]], 4);
        assert_eq!(p.items_of(0), &[1, 3]);
        assert_eq!(p.items_of(2), &[0]);
        assert_eq!(p.len(), 3);
        assert_eq!(p.pair(0), (0, 1));
        assert_eq!(p.pair(1), (0, 3));
        assert_eq!(p.pair(2), (2, 0));
        assert_eq!(p.item_counts(), vec![1, 1, 0, 1]);
    }

    #[test]
    fn top_k_orders_by_score_then_index_and_excludes() {
        let s = [0.5, 0.9, 0.5, f32::NAN, 0.7];
        let t = top_k(&s, 3, &|i| i == 4);
        assert_eq!(t.items, vec![1, 0, 2]);
        assert_eq!(top_k(&s, 10, &|_| false).items, vec![1, 4, 0, 2, 3]);
    }

    #[test]
    fn matrices_are_checkpointed_as_bytes_and_the_older_form_still_reads() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            #[serde(with = "f32_matrix")]
            m: Array2<f32>,
        }
        let m = Array2::from_shape_vec((2, 3), vec![1.0, -2.5, 0.0, f32::MIN_POSITIVE, 7.0, 1e30])
            .unwrap();
        let bytes = rmp_serde::to_vec_named(&Holder { m: m.clone() }).unwrap();
        // Six values are 24 bytes of the 44: the outer map and its key (3), the matrix's map
        // (1), "dim" (4) and [2, 3] (3), "le_f32" (7), the bin header (2).
        assert_eq!(bytes.len(), 44);
        let back: Holder = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.m, m);
        // ndarray's own form, as checkpoints before this one hold it.
        #[derive(Serialize)]
        struct Old {
            m: Array2<f32>,
        }
        let old = rmp_serde::to_vec_named(&Old { m: m.clone() }).unwrap();
        let back: Holder = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(back.m, m);
        // A shape that does not fit its values is an error, not a panic.
        #[derive(Serialize)]
        struct Bad {
            m: BadMatrix,
        }
        #[derive(Serialize)]
        struct BadMatrix {
            dim: [usize; 2],
            data: Vec<f32>,
        }
        let bad = rmp_serde::to_vec_named(&Bad {
            m: BadMatrix {
                dim: [2, 2],
                data: vec![1.0; 3],
            },
        })
        .unwrap();
        let e = rmp_serde::from_slice::<Holder>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a 2 x 2 matrix cannot hold 3 values"), "{e}");
    }

    #[test]
    fn bpr_negatives_are_never_positives() {
        let p = Positives::from_lists(&[vec![0, 1, 2], vec![3]], 5);
        let mut rng = stream_rng(1, Stream::Training, &[]);
        let t = bpr_triples(&p, &mut rng);
        assert_eq!(t.len(), 4);
        for (u, i, j) in t {
            assert!(p.contains(u, i) && !p.contains(u, j));
        }
    }
}
