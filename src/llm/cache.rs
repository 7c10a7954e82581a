//! The response cache: answers of earlier calls, reused for an identical request at
//! temperature 0 (same model, protocol, `max_tokens`, stop sequences, seed and conversation), so
//! a repeated run or a repeated prompt is not asked (or paid) again.
//!
//! Stored as JSON Lines (`{"key": .., "answer": .., "usage": ..}`), appended after each batch
//! and flushed; read back whole when opened, so it carries over between runs that name the same
//! file. A line that does not parse (e.g. cut by a crash) is skipped and counted, never fatal.
//! Lookups go through a hash map; nothing iterates it, so its order never reaches an output.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::llm::http::{Completion, Usage};

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    answer: String,
    usage: Usage,
}

/// An open response cache (see the module docs).
#[derive(Debug)]
pub struct ResponseCache {
    path: PathBuf,
    /// Hex SHA-256 of the request parameters other than the conversation.
    fingerprint: String,
    map: Mutex<HashMap<String, (String, Usage)>>,
    /// The file (append mode), and whether it ends in a line cut short that the next write must
    /// end first.
    out: Mutex<(File, bool)>,
    skipped_lines: usize,
}

impl ResponseCache {
    /// Opens (or creates) the cache at `path` for requests with these parameters: `model`,
    /// `protocol` (`chat`/`completions`), `max_tokens`, `stop` and the `seed` sent (if any).
    ///
    /// # Errors
    /// I/O errors creating the folder or opening the file.
    pub fn open(
        path: &Path,
        model: &str,
        protocol: &str,
        max_tokens: u32,
        stop: &[String],
        seed: Option<u64>,
    ) -> std::io::Result<Self> {
        let fp = serde_json::json!([model, protocol, max_tokens, stop, seed]).to_string();
        let fingerprint = hex(&Sha256::digest(fp.as_bytes()));
        if let Some(d) = path.parent() {
            if !d.as_os_str().is_empty() {
                std::fs::create_dir_all(d)?;
            }
        }
        let mut map = HashMap::new();
        let mut skipped_lines = 0;
        let mut torn = false;
        if path.exists() {
            let bytes = std::fs::read(path)?;
            torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
            for raw in bytes.split(|&b| b == b'\n') {
                // Bytes that are not UTF-8 or not JSON (a line cut by a crash, or mangled) are
                // skipped: the answer is asked again.
                let Ok(line) = std::str::from_utf8(raw) else {
                    skipped_lines += 1;
                    continue;
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Line>(line) {
                    Ok(l) => {
                        map.insert(l.key, (l.answer, l.usage));
                    }
                    Err(_) => skipped_lines += 1,
                }
            }
        }
        if skipped_lines > 0 {
            tracing::warn!(
                "{}: skipped {skipped_lines} unreadable response-cache lines",
                path.display()
            );
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            fingerprint,
            map: Mutex::new(map),
            out: Mutex::new((out, torn)),
            skipped_lines,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries held (loaded and added).
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines of the file that could not be read when it was opened.
    pub fn skipped_lines(&self) -> usize {
        self.skipped_lines
    }

    fn key(&self, prompt_hash: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.fingerprint.as_bytes());
        h.update(b"\0");
        h.update(prompt_hash.as_bytes());
        hex(&h.finalize())
    }

    /// The cached answer to the conversation with this [`prompt_hash`](super::transcript::prompt_hash)
    /// (`tries` 0, latency 0: nothing was sent).
    pub fn get(&self, prompt_hash: &str) -> Option<Completion> {
        let k = self.key(prompt_hash);
        let m = self.map.lock().ok()?;
        m.get(&k).map(|(text, usage)| Completion {
            text: text.clone(),
            usage: *usage,
            latency_ms: 0,
            endpoint: 0,
            tries: 0,
        })
    }

    /// Adds answers `(prompt hash, text, usage)` in the given order and appends them to the file
    /// in one `write` of whole lines: runs sharing one cache file append whole batches, which
    /// O_APPEND keeps from interleaving on a local file system. A write failure is logged (the
    /// run goes on; only reuse is lost).
    pub fn insert(&self, items: Vec<(&str, String, Usage)>) {
        if items.is_empty() {
            return;
        }
        let (Ok(mut m), Ok(mut out)) = (self.map.lock(), self.out.lock()) else {
            return;
        };
        let mut buf = Vec::new();
        if out.1 {
            buf.push(b'\n');
        }
        for (h, answer, usage) in items {
            let key = self.key(h);
            if m.contains_key(&key) {
                continue;
            }
            let line = Line { key, answer, usage };
            if serde_json::to_writer(&mut buf, &line).is_ok() {
                buf.push(b'\n');
            }
            m.insert(line.key, (line.answer, line.usage));
        }
        if buf.is_empty() || buf == b"\n" {
            return;
        }
        match out.0.write_all(&buf) {
            Ok(()) => out.1 = false,
            Err(e) => {
                tracing::error!(
                    "{}: cannot write the response cache: {e}",
                    self.path.display()
                )
            }
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_format() {
        let b = [0u8, 1, 0x7f, 0x80, 0xab, 0xff];
        let want: String = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(hex(&b), want);
        assert_eq!(hex(&b), "00017f80abff");
    }

    #[test]
    fn answers_survive_reopening_and_parameters_separate_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        let u = Usage {
            prompt_tokens: 12,
            completion_tokens: 3,
        };
        {
            let c = ResponseCache::open(&p, "m", "chat", 100, &[], Some(1)).unwrap();
            assert!(c.get("h1").is_none());
            c.insert(vec![("h1", "[NOTHING]".into(), u)]);
            assert_eq!(c.get("h1").unwrap().text, "[NOTHING]");
        }
        let append = |bytes: &[u8]| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(bytes).unwrap();
        };
        // A torn last line (crash while writing) is skipped, the rest is kept.
        append(b"{\"key\":\"ab");
        let c = ResponseCache::open(&p, "m", "chat", 100, &[], Some(1)).unwrap();
        assert_eq!(c.skipped_lines(), 1);
        let hit = c.get("h1").unwrap();
        assert_eq!(
            (hit.text.as_str(), hit.usage, hit.tries),
            ("[NOTHING]", u, 0)
        );
        // A line of bytes that are not UTF-8 is skipped too, and the torn line does not swallow
        // the next answer written.
        append(b"\n\xff\xfe{\"key\"\n");
        let c = ResponseCache::open(&p, "m", "chat", 100, &[], Some(1)).unwrap();
        assert_eq!(c.skipped_lines(), 2);
        append(b"{\"key\":\"cut");
        let c = ResponseCache::open(&p, "m", "chat", 100, &[], Some(1)).unwrap();
        c.insert(vec![("h2", "[SOCIAL]".into(), u)]);
        let c = ResponseCache::open(&p, "m", "chat", 100, &[], Some(1)).unwrap();
        assert_eq!(c.get("h2").unwrap().text, "[SOCIAL]");
        assert_eq!(c.get("h1").unwrap().text, "[NOTHING]");
        assert_eq!(c.skipped_lines(), 3);
        // Another model, max_tokens or seed is another request.
        for other in [
            ResponseCache::open(&p, "m2", "chat", 100, &[], Some(1)).unwrap(),
            ResponseCache::open(&p, "m", "chat", 101, &[], Some(1)).unwrap(),
            ResponseCache::open(&p, "m", "chat", 100, &[], None).unwrap(),
        ] {
            assert!(other.get("h1").is_none());
        }
    }
}
