//! Text embeddings behind the [`Embedder`] trait.
//!
//! - [`HashEmbedder`] (default): deterministic, offline, no model. Signed feature hashing
//!   (Weinberger et al., "Feature Hashing for Large Scale Multitask Learning", ICML 2009) of the
//!   lower-cased word unigrams and adjacent-word bigrams into `dim` buckets, L2-normalised.
//! - [`http::HttpEmbedder`]: any OpenAI-compatible `POST /v1/embeddings` endpoint, with an on-disk
//!   cache keyed by model + text hash.
//! - `minilm::MiniLmEmbedder` (cargo feature `minilm`): the all-MiniLM-L6-v2 sentence-embedding
//!   model run in-process on the CPU (candle), from a local folder.

pub mod http;
#[cfg(feature = "minilm")]
pub mod minilm;

use std::sync::Arc;

use bevy_ecs::resource::Resource;

use crate::memory::QVec;

/// The run's embedder (memory texts, queries, item descriptions).
#[derive(Resource, Clone)]
pub struct Embeddings(pub Arc<dyn Embedder>);

impl Embeddings {
    /// The vectors of `texts` quantised for memory ([`Embedder::embed_quantised`]), in order.
    /// A large batch of a [`Embedder::pure`] embedder is split into parts embedded on the rayon
    /// pool when `parallel` (the same vectors: a round's memory writes at a million agents are
    /// some ten million texts). On failure it logs a warning and falls back to the hashing
    /// embedder of the same dimension (`true` in the second slot).
    pub fn quantised_maybe_parallel(&self, texts: &[&str], parallel: bool) -> (Vec<QVec>, bool) {
        const PART: usize = 512;
        let one = |texts: &[&str]| match self.0.embed_quantised(texts) {
            Ok(v) => (v, false),
            Err(e) => {
                tracing::warn!("embedding failed, using the hashing embedder: {e}");
                let h = HashEmbedder { dim: self.0.dim() };
                (h.quantised(texts), true)
            }
        };
        if !(parallel && texts.len() > PART && self.0.pure()) {
            return one(texts);
        }
        use rayon::prelude::*;
        let parts: Vec<(Vec<QVec>, bool)> = texts.par_chunks(PART).map(one).collect();
        let fell_back = parts.iter().any(|p| p.1);
        (parts.into_iter().flat_map(|p| p.0).collect(), fell_back)
    }

    /// True when the embedder's vector depends on the text alone and never fails
    /// ([`Embedder::pure`]), so batches may be embedded in any parts.
    pub fn is_pure(&self) -> bool {
        self.0.pure()
    }
}

/// The message of the configuration error for `embedder: minilm` in a build without the feature.
pub const MINILM_NOT_BUILT: &str = "recagent was built without the `minilm` feature; rebuild with \
     `cargo build --release --features minilm`";

/// Builds the embedder named by `p.embedder` (`hash`, `openai` or `minilm`); `output_dir` roots
/// the default cache folder of the `openai` embedder. `p.embed_model_dir` is used as given (the
/// caller resolves it against the configuration file's folder).
///
/// # Errors
/// `minilm`: [`EmbedError::Setup`] when the crate was built without the `minilm` feature or no
/// `embed_model_dir` is set, [`EmbedError::MissingModelFile`] / [`EmbedError::Model`] when the
/// model folder is incomplete or unreadable. The other embedders never fail here.
pub fn from_params(
    p: &crate::memory::MemoryParams,
    output_dir: &std::path::Path,
) -> Result<Arc<dyn Embedder>, EmbedError> {
    Ok(match p.embedder.as_str() {
        "openai" => Arc::new(http::HttpEmbedder {
            base_url: p.embed_base_url.clone(),
            model: p.embed_model.clone(),
            api_key: p
                .embed_api_key_env
                .as_ref()
                .and_then(|k| std::env::var(k).ok()),
            dim: p.embed_dim,
            cache_dir: Some(
                p.embed_cache_dir
                    .as_ref()
                    .map_or_else(|| output_dir.join("embed-cache"), |d| output_dir.join(d)),
            ),
            batch_size: 256,
            timeout_secs: 60,
        }),
        "minilm" => minilm_from_params(p)?,
        _ => Arc::new(HashEmbedder { dim: p.embed_dim }),
    })
}

#[cfg(feature = "minilm")]
fn minilm_from_params(p: &crate::memory::MemoryParams) -> Result<Arc<dyn Embedder>, EmbedError> {
    let dir = p
        .embed_model_dir
        .as_ref()
        .ok_or_else(|| EmbedError::Setup {
            embedder: "minilm".into(),
            message: "no model folder: set memory.embed_model_dir".into(),
        })?;
    Ok(Arc::new(minilm::MiniLmEmbedder::with_batch_size(
        dir,
        p.embed_batch_size,
    )?))
}

#[cfg(not(feature = "minilm"))]
fn minilm_from_params(_: &crate::memory::MemoryParams) -> Result<Arc<dyn Embedder>, EmbedError> {
    Err(EmbedError::Setup {
        embedder: "minilm".into(),
        message: MINILM_NOT_BUILT.into(),
    })
}

/// Errors from an embedder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The endpoint could not be reached or answered with an error status.
    #[error("embedding request to {url} failed: {message}")]
    Http {
        /// Endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The endpoint answered with JSON that does not fit the request.
    #[error("embedding reply from {url} is malformed: {message}")]
    Reply {
        /// Endpoint.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The embedder cannot be set up (a build without its cargo feature, a missing setting).
    #[error("embedder {embedder}: {message}")]
    Setup {
        /// Embedder name (`minilm`).
        embedder: String,
        /// What is missing and how to fix it.
        message: String,
    },
    /// A file of a local model folder is missing.
    #[error("embedding model folder {}: missing {file} (fetch the model with scripts/get-minilm.sh DIR)", dir.display())]
    MissingModelFile {
        /// The model folder.
        dir: std::path::PathBuf,
        /// The missing file's name, e.g. `model.safetensors`.
        file: String,
    },
    /// A local model could not be loaded or run (unreadable or malformed file, inference error).
    #[error("embedding model {model}: {message}")]
    Model {
        /// The model folder or file.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// The cache file could not be read or written.
    #[error("embedding cache {path}: {error}")]
    Cache {
        /// Cache path.
        path: String,
        /// Cause.
        error: std::io::Error,
    },
}

/// Turns texts into unit-length vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// Identity of the model (recorded in caches and the item-index hash), e.g. `hash-256`.
    fn id(&self) -> String;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Embeds a batch; returns one L2-normalised vector of length [`Embedder::dim`] per text, in
    /// input order (an empty text gives the zero vector).
    ///
    /// # Errors
    /// [`EmbedError`] when the backend fails; the offline embedder never fails.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// True when a text's vector depends on that text alone and the embedder never fails (no
    /// server, no cache, no counted fallback): the engine may then split a large batch and
    /// embed the parts on the rayon pool (`execution_mode: parallel`), with the same vectors.
    /// Default `false`.
    fn pure(&self) -> bool {
        false
    }
    /// The batch's vectors quantised for memory ([`QVec::new`] of each vector
    /// [`Embedder::embed_batch`] returns), in input order. The default quantises those
    /// vectors; an embedder may build the same [`QVec`]s without them
    /// ([`HashEmbedder`] does: its vectors have a few dozen non-zero entries of `dim`).
    ///
    /// # Errors
    /// As [`Embedder::embed_batch`].
    fn embed_quantised(&self, texts: &[&str]) -> Result<Vec<QVec>, EmbedError> {
        Ok(self
            .embed_batch(texts)?
            .iter()
            .map(|v| QVec::new(v))
            .collect())
    }
}

/// The default offline embedder: signed feature hashing of word unigrams and bigrams.
///
/// For each feature `f` (a word `w`, or a bigram `w1 w2`) with a 64-bit hash `h(f)` (FNV-1a, then
/// the SplitMix64 finaliser):
/// bucket `h mod dim`, sign `+1` if bit 63 of `h` is 0 else `-1`; bigrams weigh 0.5, unigrams 1.
/// The sum is L2-normalised. Stop words are kept out of unigrams (but kept inside bigrams), so
/// "The Matrix" and "matrix" share their main feature. Deterministic across platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashEmbedder {
    /// Dimension, 16..=4096 (default 256).
    pub dim: usize,
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self { dim: 256 }
    }
}

const STOP: [&str; 20] = [
    "a", "an", "the", "of", "and", "or", "in", "on", "to", "is", "it", "for", "with", "by", "at",
    "as", "from", "that", "this", "was",
];

/// FNV-1a (64-bit) offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a state `h` continued over `bytes`: the state of a string is its prefix's state
/// continued over the rest, so a bigram's hash starts from its first word's.
fn fnv_continue(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| fnv_step(h, b))
}

/// One FNV-1a step.
#[inline]
fn fnv_step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The feature hash of a feature whose FNV-1a state is `h`: the frozen SplitMix64 mixer of
/// [`crate::rng::mix`], so that low bits are well spread. Frozen: changing it changes every
/// vector.
fn finish_hash(h: u64) -> u64 {
    crate::rng::mix(h, 0x4645_4154, 0)
}

/// FNV-1a (64-bit) of the feature's bytes, finished by [`finish_hash`].
#[cfg(test)]
fn feature_hash(f: &str) -> u64 {
    finish_hash(fnv_continue(FNV_BASIS, f.as_bytes()))
}

impl HashEmbedder {
    /// Embeds one text (see the type docs for the formula).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        self.features(text, &mut Vec::new(), |i, w| v[i] += w);
        normalize(&mut v);
        v
    }

    /// [`Embedder::embed_quantised`], which never fails here.
    pub fn quantised(&self, texts: &[&str]) -> Vec<QVec> {
        let mut scratch = Scratch {
            v: vec![0.0; self.dim],
            touched: vec![0; self.dim.div_ceil(64)],
            nonzero: Vec::new(),
            bigrams: Vec::new(),
        };
        texts
            .iter()
            .map(|t| self.embed_quantised_one(t, &mut scratch))
            .collect()
    }

    /// `QVec::new(&self.embed(text))`, the same bytes, from the few buckets the text's
    /// features touch: the sum of squares runs over them in bucket order (the dense sum adds
    /// exact zeros in between, which change no bit of it), then each is divided and quantised
    /// as [`normalize`] and [`QVec::new`] do. `scratch` holds zeros in `v` and `touched` on
    /// entry and on return. At a million agents a round embeds some 13 million memory texts,
    /// and the dense path spent most of its time on the 256 buckets and the 1 KiB vector of each.
    fn embed_quantised_one(&self, text: &str, scratch: &mut Scratch) -> QVec {
        let Scratch {
            v,
            touched,
            nonzero,
            bigrams,
        } = scratch;
        self.features(text, bigrams, |i, w| {
            v[i] += w;
            touched[i / 64] |= 1 << (i % 64);
        });
        // The touched buckets in ascending order, each once: the set bits of the mask.
        let buckets = || {
            touched.iter().enumerate().flat_map(|(k, &bits)| {
                std::iter::successors((bits != 0).then_some(bits), |b| {
                    let b = b & (b - 1);
                    (b != 0).then_some(b)
                })
                .map(move |b| k * 64 + b.trailing_zeros() as usize)
            })
        };
        let n = buckets()
            .map(|i| v[i] * v[i])
            .fold(-0.0f32, |a, b| a + b)
            .sqrt();
        nonzero.clear();
        for i in buckets() {
            let x = std::mem::take(&mut v[i]);
            let x = if n > 0.0 { x / n } else { x };
            let y = crate::memory::quantise_unit(x);
            if y != 0 && i < usize::from(u16::MAX) {
                nonzero.push((i as u16, y));
            }
        }
        touched.iter_mut().for_each(|b| *b = 0);
        QVec::from_nonzero(self.dim.min(usize::from(u16::MAX)) as u16, nonzero)
    }

    /// Calls `add(bucket, signed weight)` for each feature of `text`, in the formula's order
    /// (the unigrams, then the bigrams: a bucket's sum depends on the order of its terms).
    /// `bigrams` is a buffer for the bigrams' hash states (its content on entry is dropped).
    fn features(&self, text: &str, bigrams: &mut Vec<u64>, mut add_at: impl FnMut(usize, f32)) {
        let mut add = |state: u64, w: f32| {
            let h = finish_hash(state);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            add_at((h % self.dim as u64) as usize, sign * w);
        };
        bigrams.clear();
        // Each word's unigram state and, from the previous word's state continued over " ",
        // its bigram's: two independent chains over the same bytes in one pass. The unigrams
        // are added as they come, the bigrams after them. ASCII words are hashed lower-cased on
        // the fly (no string per word); the others are lower-cased as Unicode says (which may
        // change their length) first.
        let mut prev: Option<u64> = None;
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let w = if w.is_ascii() {
                Word::Ascii(w)
            } else {
                Word::Lower(w.to_lowercase())
            };
            let mut hu = FNV_BASIS;
            match prev {
                Some(p) => {
                    let mut hb = fnv_continue(p, b" ");
                    w.for_each_byte(|b| {
                        hu = fnv_step(hu, b);
                        hb = fnv_step(hb, b);
                    });
                    bigrams.push(hb);
                }
                None => w.for_each_byte(|b| hu = fnv_step(hu, b)),
            }
            if !w.is_stop() {
                add(hu, 1.0);
            }
            prev = Some(hu);
        }
        for &h in bigrams.iter() {
            add(h, 0.5);
        }
    }
}

/// A word of a text, as the hash embedder reads it lower-cased.
enum Word<'a> {
    /// ASCII, in its original case.
    Ascii(&'a str),
    /// Anything else, lower-cased.
    Lower(String),
}

/// The longest [`STOP`] word's length in bytes: longer words are not compared.
const STOP_MAX_LEN: usize = 4;
const _: () = {
    let mut i = 0;
    while i < STOP.len() {
        assert!(STOP[i].len() <= STOP_MAX_LEN);
        i += 1;
    }
};

impl Word<'_> {
    /// Calls `f` with each byte of the lower-cased word.
    #[inline]
    fn for_each_byte(&self, mut f: impl FnMut(u8)) {
        match self {
            Word::Ascii(w) => w.bytes().for_each(|b| f(b.to_ascii_lowercase())),
            Word::Lower(w) => w.bytes().for_each(f),
        }
    }
    /// A stop word ([`STOP`], all lower-case ASCII).
    fn is_stop(&self) -> bool {
        match self {
            Word::Ascii(w) => {
                w.len() <= STOP_MAX_LEN && STOP.iter().any(|s| s.eq_ignore_ascii_case(w))
            }
            Word::Lower(w) => w.len() <= STOP_MAX_LEN && STOP.contains(&w.as_str()),
        }
    }
}

/// [`HashEmbedder::embed_quantised_one`]'s buffers: `dim` buckets, a bit per bucket touched,
/// the quantised non-zero components and the bigrams' hash states.
struct Scratch {
    v: Vec<f32>,
    touched: Vec<u64>,
    nonzero: Vec<(u16, i8)>,
    bigrams: Vec<u64>,
}

impl Embedder for HashEmbedder {
    fn id(&self) -> String {
        format!("featurehash-fnv1-{}", self.dim)
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.embed(t)).collect())
    }
    fn pure(&self) -> bool {
        true
    }
    fn embed_quantised(&self, texts: &[&str]) -> Result<Vec<QVec>, EmbedError> {
        Ok(self.quantised(texts))
    }
}

/// Scales `v` to unit L2 norm in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Dot product (= cosine similarity for unit vectors), summed sequentially.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse path gives the dense path's bytes: mixed case, digits, non-ASCII words
    /// (`İ` lower-cases to two chars, final sigma), stop words, repeated words whose buckets
    /// cancel, empty texts and long ones, at 16 (dense layout), 256 (one-byte indices), 300
    /// and 4096 dimensions (two-byte indices).
    #[test]
    fn quantised_embeddings_are_the_dense_vectors_quantised() {
        use rand::{Rng, SeedableRng};
        let vocab = [
            "The",
            "matrix",
            "MATRIX",
            "Alice",
            "watched",
            "ODYSSEY",
            "2001",
            "a",
            "of",
            "İstanbul",
            "ΟΔΟΣ",
            "café",
            "Naïve",
            "x",
            "Toy",
            "Story",
            "is",
            "great",
            "ǅungla",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut texts: Vec<String> = vec![String::new(), "!!".into(), "the the".into()];
        for _ in 0..400 {
            let n = rng.random_range(1..60);
            let words: Vec<&str> = (0..n)
                .map(|_| vocab[rng.random_range(0..vocab.len())])
                .collect();
            texts.push(words.join(if rng.random_bool(0.5) { " " } else { ", " }));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for dim in [16, 256, 300, 4096] {
            let e = HashEmbedder { dim };
            let sparse = e.quantised(&refs);
            let dense: Vec<QVec> = refs.iter().map(|t| QVec::new(&e.embed(t))).collect();
            assert_eq!(sparse.len(), dense.len());
            for (k, (a, b)) in sparse.iter().zip(&dense).enumerate() {
                assert!(a == b, "dim {dim}, text {k}: {:?}", refs[k]);
            }
        }
    }

    /// The type docs' formula written out plainly (each bigram hashed as its joined text):
    /// the embedder's vectors are these, bit for bit.
    #[test]
    fn embeddings_follow_the_formula_with_bigrams_hashed_as_joined_text() {
        let e = HashEmbedder { dim: 64 };
        for text in [
            "Alice watched The Matrix, and the matrix was GREAT.",
            "a of the",
            "THE Of AnD tHe x",
            "Kelvin \u{212a} sign, ǅungla, straße STRASSE",
            "İstanbul Naïve ΟΔΟΣ 2001: x",
            "",
        ] {
            let words: Vec<String> = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            let mut want = vec![0f32; 64];
            let mut add = |f: &str, w: f32| {
                let h = feature_hash(f);
                want[(h % 64) as usize] += if h >> 63 == 0 { w } else { -w };
            };
            for w in words.iter().filter(|w| !STOP.contains(&w.as_str())) {
                add(w, 1.0);
            }
            for p in words.windows(2) {
                add(&format!("{} {}", p[0], p[1]), 0.5);
            }
            normalize(&mut want);
            assert_eq!(e.embed(text), want, "{text:?}");
        }
    }

    #[test]
    fn hash_embedding_is_unit_and_deterministic() {
        let e = HashEmbedder::default();
        let a = e.embed("Alice watched The Matrix");
        assert_eq!(a.len(), 256);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(a, e.embed("alice watched the matrix!"));
        let b = e.embed("The Matrix");
        let c = e.embed("a quiet cooking show");
        assert!(dot(&a, &b) > dot(&a, &c));
        assert!(e.embed("").iter().all(|x| *x == 0.0));
    }
}
