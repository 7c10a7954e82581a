//! An [`Embedder`] for any OpenAI-compatible `POST {base}/embeddings` endpoint (OpenAI, vLLM,
//! llama.cpp's server, Ollama's `/v1`), with an on-disk cache so each text is embedded once.
//!
//! Request body: `{"model": M, "input": [texts...]}`; reply: `{"data": [{"index": i,
//! "embedding": [f32...]}, ...]}` (entries are placed by `index`). Vectors are L2-normalised here.
//! Cache: one file per text under `cache_dir`, named by the hex SHA-256 of `model \0 text`,
//! holding the vector as little-endian `f32`s. HTTPS needs the `embed-https` cargo feature.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{normalize, EmbedError, Embedder};

/// The HTTP embedder.
#[derive(Clone, Debug)]
pub struct HttpEmbedder {
    /// API base including `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model name sent in the request (part of the cache key).
    pub model: String,
    /// Bearer token, if the endpoint needs one.
    pub api_key: Option<String>,
    /// Vector dimension the model returns (replies of another length are errors).
    pub dim: usize,
    /// Cache folder (created on first write); `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Texts per request, 1..=2048.
    pub batch_size: usize,
    /// Per-request timeout in seconds (wall clock).
    pub timeout_secs: u64,
}

#[derive(Deserialize)]
struct Reply {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

impl HttpEmbedder {
    /// The cache file of `text`.
    pub fn cache_path(&self, text: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = Sha256::new();
        h.update(self.model.as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{hex}.f32")))
    }

    fn read_cache(&self, text: &str) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.cache_path(text)?).ok()?;
        (bytes.len() == self.dim * 4).then(|| {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    fn write_cache(&self, text: &str, v: &[f32]) -> Result<(), EmbedError> {
        let Some(path) = self.cache_path(text) else {
            return Ok(());
        };
        let err = |source| EmbedError::Cache {
            path: path.display().to_string(),
            error: source,
        };
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(err)?;
        }
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&path, bytes).map_err(err)
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = format!("{}/embeddings", self.base_url.trim_end_matches('/'));
        let http = |message: String| EmbedError::Http {
            url: url.clone(),
            message,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(self.timeout_secs.max(1))))
            .build()
            .into();
        let mut req = agent.post(&url);
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let body = serde_json::json!({ "model": self.model, "input": texts });
        let mut resp = req.send_json(&body).map_err(|e| http(e.to_string()))?;
        let reply: Reply = resp.body_mut().read_json().map_err(|e| EmbedError::Reply {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let bad = |message: String| EmbedError::Reply {
            url: url.clone(),
            message,
        };
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for d in reply.data {
            if d.embedding.len() != self.dim {
                return Err(bad(format!(
                    "vector of length {} (expected dim {})",
                    d.embedding.len(),
                    self.dim
                )));
            }
            let slot = out
                .get_mut(d.index)
                .ok_or_else(|| bad(format!("index {} out of range", d.index)))?;
            let mut v = d.embedding;
            normalize(&mut v);
            *slot = Some(v);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| bad(format!("no vector for input {i}"))))
            .collect()
    }
}

impl Embedder for HttpEmbedder {
    fn id(&self) -> String {
        format!("openai:{}:{}", self.model, self.dim)
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| self.read_cache(t)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        for chunk in missing.chunks(self.batch_size.clamp(1, 2048)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vs = self.request(&batch)?;
            for (&i, v) in chunk.iter().zip(vs) {
                self.write_cache(texts[i], &v)?;
                out[i] = Some(v);
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.expect("invariant: every slot filled"))
            .collect())
    }
}
