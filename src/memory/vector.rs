//! Quantised embeddings: the owned [`QVec`] and the borrowed [`QRef`], their dense and sparse
//! byte layouts, integer cosine, and serde form.

use serde::{Deserialize, Serialize};

/// A unit vector quantised to `i8` (`q = round(127·x)`, clamped to ±127), stored in whichever of
/// two byte layouts is smaller, so the default hashing embedder's sparse vectors (~30 non-zero of
/// 256) take ~60 bytes instead of 256:
///
/// - dense: `dim` bytes, one `i8` per dimension;
/// - sparse: the non-zero dimensions' indices in ascending order (one byte each when `dim ≤ 256`,
///   else two, little-endian `u16`), then their `i8` values in the same order.
///
/// The layout is canonical (sparse exactly when it is strictly smaller than dense), so equal
/// vectors compare equal. Cosines are computed from the same integer dot product and squared norms
/// in either layout, so they are bit-identical to a dense computation; error vs. the unquantised
/// cosine ≈ 1e-3. At most 65,535 dimensions (`embed_dim` is validated ≤ 4096); extra dimensions
/// of a longer input are dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct QVec {
    pub(super) data: Box<[u8]>,
    pub(super) dim: u16,
    /// Σ q², cached: ≤ 65,535 × 127², fits an `i32` as in the dense computation.
    pub(super) norm2: u32,
}

/// A borrowed quantised vector ([`QVec`] layout): the embedding of a [`QVec`] or of an
/// [`LtmRecord`](super::LtmRecord).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QRef<'a> {
    pub(super) data: &'a [u8],
    pub(super) dim: u16,
    pub(super) norm2: u32,
}

/// `round(127·x)` (half away from zero, as [`f32::round`]) clamped to ±127, NaN to 0, without
/// the libm call `f32::round` compiles to on a baseline x86-64 target (a quarter of the
/// quantisation's time). `127·x` is rounded in `f32` first, as before; adding ±0.5 to it in
/// `f64` is exact (an `f32` of magnitude ≥ 2⁻²⁴ has at most 24 significant bits, the sum fits
/// in 53; below that the sum stays inside (−1, 1)), so truncating the sum toward zero is the
/// rounding. A test compares it with `f32::round` on edge cases and 200,000 random values.
#[inline]
fn quantise(x: f32) -> i8 {
    round_to_i8(x * 127.0)
}

/// A unit vector's component quantised as [`QVec::new`] quantises it: `round(127·x)` clamped to
/// ±127, NaN to 0.
pub fn quantise_unit(x: f32) -> i8 {
    quantise(x)
}

/// `y` rounded half away from zero and clamped to ±127 (NaN: 0), as
/// `y.round().clamp(-127.0, 127.0) as i8`.
#[inline]
pub(super) fn round_to_i8(y: f32) -> i8 {
    let y = f64::from(y);
    ((y + 0.5f64.copysign(y)) as i32).clamp(-127, 127) as i8
}

/// Bytes per sparse index for a dimension: 1 up to 256 dimensions, else 2.
fn index_width(dim: u16) -> usize {
    if dim <= 256 {
        1
    } else {
        2
    }
}

impl QVec {
    /// Quantises a (unit) vector: `round(127·x)` clamped to ±127 (NaN gives 0).
    pub fn new(v: &[f32]) -> Self {
        let q: Vec<i8> = v.iter().map(|&x| quantise(x)).collect();
        Self::from_i8(&q)
    }

    /// The vector with these quantised components (dense, one per dimension; beyond 65,535 dropped).
    pub fn from_i8(q: &[i8]) -> Self {
        let q = &q[..q.len().min(usize::from(u16::MAX))];
        let dim = q.len() as u16;
        let norm2 = q.iter().map(|&x| i32::from(x) * i32::from(x)).sum::<i32>() as u32;
        let nnz = q.iter().filter(|&&x| x != 0).count();
        let w = index_width(dim);
        let data: Box<[u8]> = if nnz * (w + 1) < q.len() {
            let mut d = Vec::with_capacity(nnz * (w + 1));
            for (i, _) in q.iter().enumerate().filter(|(_, &x)| x != 0) {
                if w == 1 {
                    d.push(i as u8);
                } else {
                    d.extend_from_slice(&(i as u16).to_le_bytes());
                }
            }
            d.extend(q.iter().filter(|&&x| x != 0).map(|&x| x as u8));
            d.into_boxed_slice()
        } else {
            q.iter().map(|&x| x as u8).collect()
        };
        Self { data, dim, norm2 }
    }

    /// [`QVec::from_i8`] of the `dim`-dimensional vector whose non-zero components are
    /// `nonzero` (index, value), indices ascending and below `dim`, values non-zero: the same
    /// layout and bytes, without the dense components.
    pub fn from_nonzero(dim: u16, nonzero: &[(u16, i8)]) -> Self {
        debug_assert!(nonzero.windows(2).all(|p| p[0].0 < p[1].0));
        debug_assert!(nonzero.iter().all(|&(i, x)| i < dim && x != 0));
        let norm2 = nonzero
            .iter()
            .map(|&(_, x)| i32::from(x) * i32::from(x))
            .sum::<i32>() as u32;
        let w = index_width(dim);
        let nnz = nonzero.len();
        let data: Box<[u8]> = if nnz * (w + 1) < usize::from(dim) {
            let mut d = Vec::with_capacity(nnz * (w + 1));
            for &(i, _) in nonzero {
                if w == 1 {
                    d.push(i as u8);
                } else {
                    d.extend_from_slice(&i.to_le_bytes());
                }
            }
            d.extend(nonzero.iter().map(|&(_, x)| x as u8));
            d.into_boxed_slice()
        } else {
            let mut d = vec![0u8; usize::from(dim)];
            for &(i, x) in nonzero {
                d[usize::from(i)] = x as u8;
            }
            d.into_boxed_slice()
        };
        Self { data, dim, norm2 }
    }

    /// Rebuilds a vector from its layout (`dim`, bytes as [`QVec`] describes), as read from a
    /// checkpoint.
    ///
    /// # Errors
    /// A message when the bytes are neither `dim` dense values nor a sparse list with ascending
    /// indices below `dim` and non-zero values.
    pub fn from_parts(dim: u16, data: &[u8]) -> Result<Self, String> {
        if data.len() == usize::from(dim) {
            return Ok(Self::from_i8(
                &data.iter().map(|&b| b as i8).collect::<Vec<_>>(),
            ));
        }
        let w = index_width(dim);
        if !data.len().is_multiple_of(w + 1) {
            return Err(format!(
                "quantised vector: {} bytes fit neither {dim} dense values nor a sparse list",
                data.len()
            ));
        }
        let r = QRef {
            data,
            dim,
            norm2: 0,
        };
        // Checked, then laid out as `from_i8` would lay out the dense vector (`from_nonzero`
        // gives the same bytes without the dense copy: a million agents' memories are read
        // back as tens of millions of these).
        let mut nonzero = Vec::with_capacity(data.len() / (w + 1));
        let mut last = None;
        for (i, v) in r.sparse_entries() {
            if last.is_some_and(|l| i <= l) || i >= usize::from(dim) || v == 0 {
                return Err(format!(
                    "quantised vector: sparse entry {i} = {v} is out of order, out of range (dim {dim}) or zero"
                ));
            }
            last = Some(i);
            nonzero.push((i as u16, v));
        }
        Ok(Self::from_nonzero(dim, &nonzero))
    }

    /// The borrowed form.
    pub fn view(&self) -> QRef<'_> {
        QRef {
            data: &self.data,
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// Cosine similarity in [−1, 1]; 0 when either vector is zero or the dimensions differ.
    pub fn cos(&self, o: &QVec) -> f32 {
        self.view().cos(o.view())
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        usize::from(self.dim)
    }

    /// Heap bytes held (the layout's length).
    pub fn heap_len(&self) -> usize {
        self.data.len()
    }
}

impl std::fmt::Debug for QVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl<'a> QRef<'a> {
    /// Dimension.
    pub fn dim(self) -> usize {
        usize::from(self.dim)
    }

    /// True when stored one byte per dimension.
    pub fn is_dense(self) -> bool {
        self.data.len() == usize::from(self.dim)
    }

    /// The components, one per dimension.
    pub fn to_i8(self) -> Vec<i8> {
        if self.is_dense() {
            return self.data.iter().map(|&b| b as i8).collect();
        }
        let mut v = vec![0i8; usize::from(self.dim)];
        for (i, x) in self.sparse_entries() {
            if let Some(s) = v.get_mut(i) {
                *s = x;
            }
        }
        v
    }

    /// An owned copy.
    pub fn to_owned(self) -> QVec {
        QVec {
            data: self.data.into(),
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// The same vector in the dense layout (faster as the fixed side of many cosines).
    pub(super) fn densified(self) -> QVec {
        QVec {
            data: self.to_i8().into_iter().map(|x| x as u8).collect(),
            dim: self.dim,
            norm2: self.norm2,
        }
    }

    /// (index, value) of the non-zero components of a sparse layout, ascending.
    fn sparse_entries(self) -> impl Iterator<Item = (usize, i8)> + 'a {
        let w = index_width(self.dim);
        let nnz = self.data.len() / (w + 1);
        let (idx, vals) = self.data.split_at(nnz * w);
        idx.chunks_exact(w).zip(vals).map(move |(i, &v)| {
            let i = if w == 1 {
                usize::from(i[0])
            } else {
                usize::from(u16::from_le_bytes([i[0], i[1]]))
            };
            (i, v as i8)
        })
    }

    /// Integer dot product of two vectors of the same dimension, in any pair of layouts.
    fn dot(self, o: QRef<'_>) -> i32 {
        let prod = |a: u8, b: u8| i32::from(a as i8) * i32::from(b as i8);
        match (self.is_dense(), o.is_dense()) {
            (true, true) => self
                .data
                .iter()
                .zip(o.data)
                .map(|(&a, &b)| prod(a, b))
                .sum(),
            (false, true) => self
                .sparse_entries()
                .map(|(i, v)| i32::from(v) * o.data.get(i).map_or(0, |&b| i32::from(b as i8)))
                .sum(),
            (true, false) => o.dot(self),
            (false, false) => {
                let (mut a, mut b) = (self.sparse_entries(), o.sparse_entries());
                let (mut x, mut y) = (a.next(), b.next());
                let mut d = 0i32;
                while let (Some((i, u)), Some((j, v))) = (x, y) {
                    match i.cmp(&j) {
                        std::cmp::Ordering::Less => x = a.next(),
                        std::cmp::Ordering::Greater => y = b.next(),
                        std::cmp::Ordering::Equal => {
                            d += i32::from(u) * i32::from(v);
                            x = a.next();
                            y = b.next();
                        }
                    }
                }
                d
            }
        }
    }

    /// Cosine similarity in [−1, 1]; 0 when either vector is zero or the dimensions differ.
    /// `dot / (√‖a‖² · √‖b‖²)` on the integers, as the dense i8 computation did.
    pub fn cos(self, o: QRef<'_>) -> f32 {
        if self.dim != o.dim || self.norm2 == 0 || o.norm2 == 0 {
            return 0.0;
        }
        self.dot(o) as f32 / ((self.norm2 as f32).sqrt() * (o.norm2 as f32).sqrt())
    }
}

impl std::fmt::Debug for QRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nz: Vec<(usize, i8)> = self
            .to_i8()
            .into_iter()
            .enumerate()
            .filter(|x| x.1 != 0)
            .collect();
        write!(f, "QVec(dim {}, {nz:?})", self.dim)
    }
}

/// Serialized as `(dim, bytes)` in the layout described on [`QVec`].
impl Serialize for QRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Bytes<'b>(&'b [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        (self.dim, Bytes(self.data)).serialize(s)
    }
}

impl Serialize for QVec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl<'de> Deserialize<'de> for QVec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ByteBuf(Vec<u8>);
        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<ByteBuf, A::Error> {
                        let mut v = Vec::new();
                        while let Some(b) = a.next_element::<u8>()? {
                            v.push(b);
                        }
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
        let (dim, ByteBuf(data)) = <(u16, ByteBuf)>::deserialize(d)?;
        QVec::from_parts(dim, &data).map_err(serde::de::Error::custom)
    }
}
