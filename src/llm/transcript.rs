//! The transcript: an append-only JSON Lines record of every LLM call (key, corrective attempt,
//! prompt hash, model, parameters, answer text or error, usage, latency), written in key order
//! after each batch and flushed, so a crash loses at most the batch in progress. Never holds an
//! API key or a base URL (only the endpoint's index).
//!
//! The replay backend reads it back ([`load`]) and answers by `(key, attempt)`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::behaviour::RequestKey;
use crate::llm::http::{PromptMessage, Usage};

/// One transcript line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Request key.
    pub key: RequestKey,
    /// 0 = first call; 1.. = corrective retries after unparseable answers.
    pub attempt: u32,
    /// SHA-256 (hex) of the conversation sent ([`prompt_hash`]).
    pub prompt_hash: String,
    /// Model name.
    pub model: String,
    /// `chat` or `completions`.
    pub protocol: String,
    /// Sampling temperature.
    pub temperature: f64,
    /// `max_tokens` sent.
    pub max_tokens: u32,
    /// Endpoint index (into `api_bases x api_keys`), when a server answered.
    pub endpoint: Option<usize>,
    /// The answer text, or `None` when the call failed.
    pub answer: Option<String>,
    /// The failure, when the call failed.
    pub error: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// Wall-clock latency, milliseconds (retries included).
    pub latency_ms: u64,
    /// HTTP tries.
    pub tries: u32,
    /// Answered from the response cache (nothing sent; usage 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// SHA-256 (lower-case hex) of the conversation's JSON.
pub fn prompt_hash(messages: &[PromptMessage]) -> String {
    let bytes = serde_json::to_vec(messages).unwrap_or_default();
    crate::llm::cache::hex(&Sha256::digest(&bytes))
}

/// An open transcript file (created or appended to).
#[derive(Debug)]
pub struct TranscriptWriter {
    out: BufWriter<File>,
}

impl TranscriptWriter {
    /// Creates (truncates) the transcript file, creating its directory.
    ///
    /// # Errors
    /// I/O errors.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(d) = path.parent() {
            if !d.as_os_str().is_empty() {
                std::fs::create_dir_all(d)?;
            }
        }
        Ok(Self {
            out: BufWriter::new(File::create(path)?),
        })
    }

    /// Opens the transcript for appending (a resumed run).
    ///
    /// # Errors
    /// I/O errors.
    pub fn append_to(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)?,
            ),
        })
    }

    /// Appends entries (one line each) and flushes.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        for e in entries {
            serde_json::to_writer(&mut self.out, e)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

/// Prepares a transcript for a run resumed after `round`: the lines of rounds up to `round` are
/// kept in place (rewritten atomically), and the entries of later rounds (recorded by the
/// interrupted run) are returned, by `(key, attempt)`, for the resumed run to answer from.
///
/// # Errors
/// I/O errors, or a line that is not a transcript entry.
pub fn split_for_resume(
    path: &Path,
    round: u32,
) -> std::io::Result<BTreeMap<(RequestKey, u32), Entry>> {
    let text = std::fs::read_to_string(path)?;
    let mut keep = String::new();
    let mut later = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: Entry = serde_json::from_str(line).map_err(std::io::Error::other)?;
        if e.key.round <= round {
            keep.push_str(line);
            keep.push('\n');
        } else {
            later.insert((e.key, e.attempt), e);
        }
    }
    crate::io::output::write_atomic(path, keep.as_bytes())?;
    Ok(later)
}

/// Errors reading a transcript.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The file could not be read.
    #[error("{path}: cannot read transcript: {source}")]
    Read {
        /// File.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// A line is not a transcript entry.
    #[error("{path}:{line}: bad transcript line: {message}")]
    Line {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// Parser message.
        message: String,
    },
}

/// Reads a transcript into a map by `(key, attempt)`; a later line for the same pair wins.
///
/// # Errors
/// [`TranscriptError`] naming the file and line.
pub fn load(path: &Path) -> Result<BTreeMap<(RequestKey, u32), Entry>, TranscriptError> {
    let f = File::open(path).map_err(|source| TranscriptError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut map = BTreeMap::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| TranscriptError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_str(&line).map_err(|err| TranscriptError::Line {
            path: path.display().to_string(),
            line: i + 1,
            message: err.to_string(),
        })?;
        map.insert((e.key, e.attempt), e);
    }
    Ok(map)
}
