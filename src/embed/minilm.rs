//! An in-process sentence-embedding model: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT fine-tuned
//! for sentence similarity) run on the CPU with candle, from a local folder. Cargo feature `minilm`.
//!
//! Pipeline (Sentence-BERT: Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese
//! BERT-Networks", EMNLP 2019, §3, MEAN pooling strategy):
//! 1. WordPiece tokenisation with the model's `tokenizer.json` (lower-casing BERT normaliser,
//!    `[CLS] … [SEP]`), truncated to [`MAX_TOKENS`] tokens (the model's `max_seq_length`);
//! 2. texts are sorted by token count and cut into batches of `batch_size`; each batch is
//!    right-padded with the pad id to its longest text, with an attention mask (1 = token, 0 = pad);
//! 3. BERT forward pass → token vectors `H` of shape `[batch, len, 384]`;
//! 4. mean pooling over the real tokens: `v = Σ_t m_t·H_t / Σ_t m_t` (special tokens included, as
//!    sentence-transformers does);
//! 5. L2 normalisation, so a dot product is the cosine similarity.
//!
//! Files read from the folder: `config.json` (BERT hyper-parameters), `tokenizer.json`,
//! `model.safetensors` (f32 weights, read into memory: no memory map, the crate forbids `unsafe`).
//! `scripts/get-minilm.sh DIR` fetches them. Determinism: on one machine the same call gives the same
//! bits; a text's vector can differ in the last bits (≈1e-6) with the padded length of its batch,
//! i.e. with the other texts of the call.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use super::{normalize, EmbedError, Embedder};

/// Output dimension of all-MiniLM-L6-v2.
pub const MINILM_DIM: usize = 384;
/// Tokens per text after truncation, `[CLS]` and `[SEP]` included (the model's `max_seq_length`).
pub const MAX_TOKENS: usize = 256;
/// Default texts per forward pass.
pub const DEFAULT_BATCH: usize = 32;

/// The files a model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The all-MiniLM-L6-v2 embedder (see the module docs). Loading takes about a second (90 MB of
/// weights); embedding runs at a few hundred short texts per second on 2 cores.
pub struct MiniLmEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pad_id: u32,
    id: String,
    dir: PathBuf,
    /// Texts per forward pass, 1..=1024 (values outside are clamped); larger batches are faster
    /// up to the point where padding to the longest text wastes the gain.
    pub batch_size: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` (holding [`MODEL_FILES`]), with [`DEFAULT_BATCH`] texts per pass.
    ///
    /// # Errors
    /// [`EmbedError::MissingModelFile`] naming the first missing file;
    /// [`EmbedError::Model`] when a file cannot be read or parsed, or the model's hidden size is
    /// not [`MINILM_DIM`].
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        for f in MODEL_FILES {
            if !dir.join(f).is_file() {
                return Err(EmbedError::MissingModelFile {
                    dir: dir.to_path_buf(),
                    file: f.to_string(),
                });
            }
        }
        let model_err = |file: &str, message: String| EmbedError::Model {
            model: dir.join(file).display().to_string(),
            message,
        };
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| model_err(f, e.to_string()));
        let config_bytes = read("config.json")?;
        let tokenizer_bytes = read("tokenizer.json")?;
        let weights = read("model.safetensors")?;

        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| model_err("config.json", e.to_string()))?;
        if config.hidden_size != MINILM_DIM {
            return Err(model_err(
                "config.json",
                format!(
                    "hidden_size {} (the minilm embedder expects {MINILM_DIM})",
                    config.hidden_size
                ),
            ));
        }
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|_| model_err("config.json", "pad_token_id out of range".into()))?;

        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| model_err("tokenizer.json", e.to_string()))?;
        // The file pads every text to 128 and truncates at 128; we pad per batch ourselves and
        // truncate at the model's max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_err("tokenizer.json", e.to_string()))?;

        let mut h = Sha256::new();
        for bytes in [&config_bytes, &tokenizer_bytes, &weights] {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let hex: String = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!("minilm-{hex}-mean-t{MAX_TOKENS}-{MINILM_DIM}");

        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| model_err("model.safetensors", e.to_string()))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| model_err("model.safetensors", e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            pad_id,
            id,
            dir: dir.to_path_buf(),
            batch_size: DEFAULT_BATCH,
        })
    }

    /// [`MiniLmEmbedder::load`] with `batch_size` texts per forward pass (clamped to 1..=1024).
    ///
    /// # Errors
    /// As [`MiniLmEmbedder::load`].
    pub fn with_batch_size(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        let mut e = Self::load(dir)?;
        e.batch_size = batch_size.clamp(1, 1024);
        Ok(e)
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, message: String) -> EmbedError {
        EmbedError::Model {
            model: self.dir.display().to_string(),
            message,
        }
    }

    /// One forward pass over token-id sequences (each 1..=[`MAX_TOKENS`] long): pads them to the
    /// longest, runs BERT, mean-pools over the mask and normalises. Returns one vector per sequence.
    fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let b = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if b == 0 || len == 0 {
            return Ok(vec![vec![0.0; MINILM_DIM]; b]);
        }
        let mut ids = vec![self.pad_id; b * len];
        let mut mask = vec![0u32; b * len];
        for (r, s) in seqs.iter().enumerate() {
            ids[r * len..r * len + s.len()].copy_from_slice(s);
            mask[r * len..r * len + s.len()].fill(1);
        }
        let cerr = |e: candle_core::Error| self.err(e.to_string());
        let input = Tensor::from_vec(ids, (b, len), &Device::Cpu).map_err(cerr)?;
        let types = input.zeros_like().map_err(cerr)?;
        let mask_t = Tensor::from_vec(mask.clone(), (b, len), &Device::Cpu).map_err(cerr)?;
        let hidden = self
            .model
            .forward(&input, &types, Some(&mask_t))
            .map_err(cerr)?;
        let dims = hidden.dims().to_vec();
        if dims != [b, len, MINILM_DIM] {
            return Err(self.err(format!(
                "model output of shape {dims:?}, expected [{b}, {len}, {MINILM_DIM}]"
            )));
        }
        let flat: Vec<f32> = hidden
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(cerr)?;
        let mut out = Vec::with_capacity(b);
        for r in 0..b {
            let mut v = vec![0f32; MINILM_DIM];
            let mut n = 0f32;
            for t in 0..len {
                if mask[r * len + t] == 0 {
                    continue;
                }
                n += 1.0;
                let row = &flat[(r * len + t) * MINILM_DIM..(r * len + t + 1) * MINILM_DIM];
                v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            }
            if n > 0.0 {
                v.iter_mut().for_each(|a| *a /= n);
            }
            normalize(&mut v);
            out.push(v);
        }
        Ok(out)
    }
}

impl Embedder for MiniLmEmbedder {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn dim(&self) -> usize {
        MINILM_DIM
    }
    /// Texts that are empty after trimming give the zero vector without touching the model.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = vec![vec![0f32; MINILM_DIM]; texts.len()];
        let todo: Vec<usize> = (0..texts.len())
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        if todo.is_empty() {
            return Ok(out);
        }
        let inputs: Vec<&str> = todo.iter().map(|&i| texts[i]).collect();
        let enc = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| self.err(format!("tokenizer: {e}")))?;
        // Shortest first (stable, so ties keep input order): little padding inside a batch.
        let mut order: Vec<usize> = (0..todo.len()).collect();
        order.sort_by_key(|&k| enc[k].get_ids().len());
        for chunk in order.chunks(self.batch_size.clamp(1, 1024)) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&k| enc[k].get_ids()).collect();
            for (&k, v) in chunk.iter().zip(self.forward(&seqs)?) {
                out[todo[k]] = v;
            }
        }
        Ok(out)
    }
}
