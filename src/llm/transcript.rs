//! The transcript: an append-only JSON Lines record of every LLM call (key, corrective attempt,
//! prompt hash, model, parameters, answer text or error, usage, latency), written in key order
//! after each batch and flushed, so a crash loses at most the batch in progress. Never holds an
//! API key; a base URL only on a failed call's line, redacted ([`Entry::endpoint_base`]).
//!
//! The replay backend reads it back ([`load`]) and answers by `(key, attempt)`.
//!
//! A branch's transcript holds its parent's calls up to the branch point, then a
//! [`BranchPoint`] line (`{"branch":{"round":2,"set":[["rec_model","Random"]]}}`: the settings
//! the branch changed after that round), then its own calls; `recagent replay` reads the branch
//! points ([`branch_points`]) to reproduce the branch from round 0.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decision::schema::Constraint;
use crate::decision::{DecisionKinds, RecordedKey, RequestKey};
use crate::llm::http::{PromptMessage, Usage};

/// One transcript line. Written with a [`RequestKey`]; read back with a [`RecordedKey`] (the
/// phase by name) and resolved against the registered decision kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry<K = RequestKey> {
    /// Request key.
    pub key: K,
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
    /// Endpoint index (into `api_bases x api_keys`): the one that answered, or for a failed
    /// call the one its last try went to (`None` when no endpoint was tried).
    pub endpoint: Option<usize>,
    /// A failed call's endpoint base URL, redacted ([`crate::llm::http::redacted_endpoint`]:
    /// no credentials, no query string), so a failure can be traced to its server; absent on
    /// answered calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_base: Option<String>,
    /// `json_schema` or `grammar` when the answer was constrained
    /// (`llm_options.structured_output`); absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<String>,
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

impl Entry<RecordedKey> {
    /// The entry with its key's phase resolved against `kinds`.
    ///
    /// # Errors
    /// The phase is not one of a registered decision kind (a plugin of the recorded run is
    /// missing).
    pub fn resolve(self, kinds: &DecisionKinds) -> Result<Entry, String> {
        let key = kinds.resolve(&self.key).ok_or_else(|| {
            format!(
                "phase `{}` is not a phase of this simulation's decision kinds (was the run recorded with a behaviour plugin that is not registered here?)",
                self.key.phase
            )
        })?;
        Ok(Entry {
            key,
            attempt: self.attempt,
            prompt_hash: self.prompt_hash,
            model: self.model,
            protocol: self.protocol,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            endpoint: self.endpoint,
            endpoint_base: self.endpoint_base,
            structured_output: self.structured_output,
            answer: self.answer,
            error: self.error,
            usage: self.usage,
            latency_ms: self.latency_ms,
            tries: self.tries,
            cached: self.cached,
        })
    }
}

/// Where a branch left its parent: after `round`, the settings `set` (`KEY`, YAML `VALUE`, as
/// given to `--set`, API keys and base URLs left out) were applied. A transcript line of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchPoint {
    /// Rounds completed at the branch point (the parent checkpoint's round).
    pub round: u32,
    /// The changed settings, in the order given.
    pub set: Vec<(String, String)>,
}

/// The line a [`BranchPoint`] is written as.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BranchLine {
    branch: BranchPoint,
}

impl BranchPoint {
    /// The branch point of a branch after `round` with `overrides`, without the settings that
    /// carry secrets or reach servers (`api_keys`, `api_bases`: a transcript never holds a key or
    /// a URL, and a replay contacts no server).
    pub fn new(round: u32, overrides: &[(String, String)]) -> Self {
        BranchPoint {
            round,
            set: overrides
                .iter()
                .filter(|(k, _)| k != "api_keys" && k != "api_bases")
                .cloned()
                .collect(),
        }
    }

    /// Appends this branch point as one line to the transcript at `path`, and syncs it.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append_to(&self, path: &Path) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&BranchLine {
            branch: self.clone(),
        })?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        f.write_all(&line)?;
        f.sync_all()
    }
}

/// The branch points of a transcript, in file order (empty for a run that is not a branch).
/// Other lines are not read (a damaged one is [`load`]'s to report).
///
/// # Errors
/// [`TranscriptError::Read`] when the file cannot be read.
pub fn branch_points(path: &Path) -> Result<Vec<BranchPoint>, TranscriptError> {
    let bytes = read(path)?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"{\"branch\""))
        .filter_map(|l| serde_json::from_slice::<BranchLine>(l).ok())
        .map(|l| l.branch)
        .collect())
}

/// The transcript file's bytes.
fn read(path: &Path) -> Result<Vec<u8>, TranscriptError> {
    std::fs::read(path).map_err(|source| TranscriptError::Read {
        path: path.display().to_string(),
        error: source,
    })
}

/// Rounds and agents a transcript has calls of: `(highest round, highest user id + 1)`, from
/// its keys (`(0, 0)` for an empty one). Lines that are not calls are not read (a damaged one
/// is [`load`]'s to report).
///
/// # Errors
/// [`TranscriptError::Read`] when the file cannot be read.
pub fn extent(path: &Path) -> Result<(u32, u32), TranscriptError> {
    Ok(recorded_calls(path)?.iter().fold((0, 0), |(r, u), (k, _)| {
        (r.max(k.round), u.max(k.user.0.saturating_add(1)))
    }))
}

/// The distinct `(key, attempt)` pairs of a transcript's calls (lines that are not calls are
/// not read).
///
/// # Errors
/// [`TranscriptError::Read`] when the file cannot be read.
pub fn recorded_calls(
    path: &Path,
) -> Result<std::collections::BTreeSet<(RecordedKey, u32)>, TranscriptError> {
    let bytes = read(path)?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Entry<RecordedKey>>(l).ok())
        .map(|e| (e.key, e.attempt))
        .collect())
}

/// The hash of a request: [`prompt_hash`] of the conversation when the answer is not
/// constrained (so transcripts recorded before `structured_output` existed still replay),
/// else SHA-256 of the conversation's JSON, a newline, and the constraint's JSON (mode, schema,
/// grammar). The transcript's `prompt_hash` and the response cache's key, so a replay or a
/// cache hit under another `structured_output` setting, or another schema, is a mismatch.
pub fn request_hash(messages: &[PromptMessage], constraint: Option<&Constraint>) -> String {
    let Some(c) = constraint else {
        return prompt_hash(messages);
    };
    let mut h = Sha256::new();
    if serde_json::to_writer(&mut h, messages).is_err() {
        h = Sha256::new();
    }
    h.update(b"\n");
    if serde_json::to_writer(&mut h, c).is_err() {
        h.update(c.mode.name().as_bytes());
    }
    crate::llm::cache::hex(&h.finalize())
}

/// SHA-256 (lower-case hex) of the conversation's JSON.
pub fn prompt_hash(messages: &[PromptMessage]) -> String {
    // The JSON goes straight into the hasher (no buffer): every call hashes its prompt.
    let mut h = Sha256::new();
    if serde_json::to_writer(&mut h, messages).is_err() {
        // Unreachable for strings; the hash of no bytes, as before.
        h = Sha256::new();
    }
    crate::llm::cache::hex(&h.finalize())
}

/// An open transcript file. Nothing on disk changes until the first [`append`](Self::append)
/// (or [`start`](Self::start)): a run or resume that fails while it is still being set up leaves
/// the previous transcript as it was.
#[derive(Debug)]
pub struct TranscriptWriter {
    path: PathBuf,
    file: File,
    /// Length the file is cut to before the first write: 0 for a new run, the kept prefix for a
    /// resumed one.
    keep: u64,
    out: Option<BufWriter<File>>,
}

impl TranscriptWriter {
    /// Opens the transcript of a new run (creating its directory and the file, so an unwritable
    /// path fails now); its old content is dropped at the first write.
    ///
    /// # Errors
    /// I/O errors.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(d) = path.parent() {
            if !d.as_os_str().is_empty() {
                std::fs::create_dir_all(d)?;
            }
        }
        Self::open(path, 0)
    }

    /// Opens the transcript of a resumed run: the first `keep` bytes (the lines up to the
    /// checkpoint, see [`split_for_resume`]) stay, the rest is dropped at the first write.
    ///
    /// # Errors
    /// I/O errors.
    pub fn resume(path: &Path, keep: u64) -> std::io::Result<Self> {
        Self::open(path, keep)
    }

    fn open(path: &Path, keep: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            keep,
            out: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts the file to what it keeps (once; later calls do nothing). Called when the run
    /// starts asking, i.e. once setup has succeeded.
    ///
    /// # Errors
    /// I/O errors.
    pub fn start(&mut self) -> std::io::Result<()> {
        if self.out.is_none() {
            self.file.set_len(self.keep)?;
            self.out = Some(BufWriter::new(self.file.try_clone()?));
        }
        Ok(())
    }

    /// Appends entries (one line each) and flushes.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        self.start()?;
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        for e in entries {
            serde_json::to_writer(&mut *out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// What a resumed run finds in its transcript: the entries of rounds after the checkpoint
/// (answers the interrupted run already received) and the byte length of the lines up to it.
#[derive(Debug, Default)]
pub struct ResumeSplit {
    /// Entries of later rounds, by `(key, attempt)`.
    pub later: BTreeMap<(RequestKey, u32), Entry>,
    /// Bytes of the leading lines of rounds up to the checkpoint (what stays in the file).
    pub keep: u64,
    /// Lines up to the checkpoint.
    pub kept_lines: usize,
}

/// Reads a transcript for a run resumed after `round`, without changing it: the leading lines
/// of rounds up to `round` are kept, the entries after them are returned for the resumed run to
/// answer from. A last line cut short by a crash (no newline, not JSON) is ignored.
///
/// # Errors
/// I/O errors, or a line that is not a transcript entry (named by its 1-based line number).
pub fn split_for_resume(
    path: &Path,
    round: u32,
    kinds: &DecisionKinds,
) -> std::io::Result<ResumeSplit> {
    let bytes = std::fs::read(path)?;
    let mut split = ResumeSplit::default();
    let mut in_prefix = true;
    for line in entries(path, &bytes, kinds) {
        let (_, range, line) = line.map_err(|(n, err)| {
            std::io::Error::other(format!("line {n}: not a transcript entry: {err}"))
        })?;
        let line_round = match &line {
            Line::Call(e) => e.key.round,
            Line::Branch(b) => b.round,
        };
        if in_prefix && line_round <= round {
            split.keep = range.end as u64;
            split.kept_lines += 1;
        } else {
            in_prefix = false;
            if let Line::Call(e) = line {
                split.later.insert((e.key, e.attempt), *e);
            }
        }
    }
    Ok(split)
}

/// A transcript line: a call, or a branch's [`BranchPoint`].
enum Line {
    // Boxed: a call line is many times a branch point's size.
    Call(Box<Entry>),
    Branch(BranchPoint),
}

/// The lines of a transcript's bytes, each with its 1-based line number and byte range
/// (newline included); blank lines are skipped, and a last line cut short by a crash (no
/// newline, not JSON) is ignored with a warning. A line that is neither an entry nor a branch
/// point gives `Err((line number, parser message))`.
fn entries<'a>(
    path: &'a Path,
    bytes: &'a [u8],
    kinds: &'a DecisionKinds,
) -> impl Iterator<Item = Result<(usize, std::ops::Range<usize>, Line), (usize, String)>> + 'a {
    let mut offset = 0usize;
    let mut lines = bytes
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .peekable();
    std::iter::from_fn(move || loop {
        let (i, raw) = lines.next()?;
        let range = offset..offset + raw.len();
        offset = range.end;
        let text = String::from_utf8_lossy(raw);
        if text.trim().is_empty() {
            continue;
        }
        if text.starts_with("{\"branch\"") {
            if let Ok(b) = serde_json::from_str::<BranchLine>(&text) {
                return Some(Ok((i + 1, range, Line::Branch(b.branch))));
            }
        }
        return match serde_json::from_str::<Entry<RecordedKey>>(&text) {
            Ok(e) => Some(
                e.resolve(kinds)
                    .map(|e| (i + 1, range, Line::Call(Box::new(e))))
                    .map_err(|m| (i + 1, m)),
            ),
            Err(_) if lines.peek().is_none() && !raw.ends_with(b"\n") => {
                tracing::warn!(
                    "{}:{}: ignoring a transcript line cut short ({} bytes)",
                    path.display(),
                    i + 1,
                    raw.len()
                );
                None
            }
            Err(err) => Some(Err((i + 1, err.to_string()))),
        };
    })
}

/// Errors reading a transcript.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The file could not be read.
    #[error("{path}: cannot read transcript: {error}")]
    Read {
        /// File.
        path: String,
        /// Error.
        error: std::io::Error,
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

/// Reads a transcript into a map by `(key, attempt)`; a later line for the same pair wins. A
/// last line cut short by a crash (no newline, not JSON) is ignored with a warning.
///
/// # Errors
/// [`TranscriptError`] naming the file and line.
pub fn load(
    path: &Path,
    kinds: &DecisionKinds,
) -> Result<BTreeMap<(RequestKey, u32), Entry>, TranscriptError> {
    let bytes = read(path)?;
    load_bytes(path, &bytes, kinds)
}

/// As [`load`], from the transcript's bytes; `path` names it in errors and warnings.
///
/// # Errors
/// [`TranscriptError::Line`] naming the file and line.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    kinds: &DecisionKinds,
) -> Result<BTreeMap<(RequestKey, u32), Entry>, TranscriptError> {
    let mut map = BTreeMap::new();
    for line in entries(path, bytes, kinds) {
        let (_, _, line) = line.map_err(|(line, message)| TranscriptError::Line {
            path: path.display().to_string(),
            line,
            message,
        })?;
        if let Line::Call(e) = line {
            map.insert((e.key, e.attempt), *e);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::top::{Top, ACTIVITY};
    use crate::ids::UserId;

    fn kinds() -> DecisionKinds {
        let mut k = DecisionKinds::default();
        k.add::<Top>();
        k
    }

    #[test]
    fn prompt_hash_is_the_sha256_of_the_conversation_json() {
        // Recorded transcripts hold these hashes: the streamed hash must equal the hash of the
        // serialised conversation, here checked against an independent digest of the JSON text.
        let msgs = [
            PromptMessage::user("Hi \"you\"\n\u{7}é"),
            PromptMessage::assistant("[NOTHING]"),
        ];
        let json = r#"[{"role":"user","content":"Hi \"you\"\n\u0007é"},{"role":"assistant","content":"[NOTHING]"}]"#;
        assert_eq!(serde_json::to_string(&msgs).unwrap(), json);
        let want: String = Sha256::digest(json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(prompt_hash(&msgs), want);
        assert_eq!(want.len(), 64);
    }

    fn line(round: u32, user: u32) -> String {
        let e = Entry {
            key: RequestKey {
                round,
                phase: ACTIVITY,
                user: UserId(user),
                step: 0,
            },
            attempt: 0,
            prompt_hash: "h".into(),
            model: "m".into(),
            protocol: "chat".into(),
            temperature: 0.0,
            max_tokens: 10,
            endpoint: Some(0),
            endpoint_base: None,
            structured_output: None,
            answer: Some("[NOTHING]".into()),
            error: None,
            usage: Usage::default(),
            latency_ms: 1,
            tries: 1,
            cached: false,
        };
        serde_json::to_string(&e).unwrap() + "\n"
    }

    #[test]
    fn branch_points_are_kept_with_their_round_and_skipped_by_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let (a, c) = (line(1, 0), line(2, 0));
        std::fs::write(&p, &a).unwrap();
        let set = vec![
            ("rec_model".to_string(), "Random".to_string()),
            ("api_keys".to_string(), "[sk-secret]".to_string()),
            ("api_bases".to_string(), "[http://u:pw@h/v1]".to_string()),
        ];
        BranchPoint::new(1, &set).append_to(&p).unwrap();
        let marker = "{\"branch\":{\"round\":1,\"set\":[[\"rec_model\",\"Random\"]]}}\n";
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{a}{marker}"));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(c.as_bytes())
            .unwrap();
        assert_eq!(
            branch_points(&p).unwrap(),
            vec![BranchPoint {
                round: 1,
                set: vec![("rec_model".into(), "Random".into())]
            }]
        );
        // Two calls, the marker is not one; a resume after round 1 keeps the marker (it is
        // the branch's history), one after round 0 drops it.
        assert_eq!(load(&p, &kinds()).unwrap().len(), 2);
        assert_eq!(extent(&p).unwrap(), (2, 1));
        let s = split_for_resume(&p, 1, &kinds()).unwrap();
        assert_eq!(s.keep, (a.len() + marker.len()) as u64);
        assert_eq!((s.kept_lines, s.later.len()), (2, 1));
        let s = split_for_resume(&p, 0, &kinds()).unwrap();
        assert_eq!((s.keep, s.kept_lines, s.later.len()), (0, 0, 2));
    }

    #[test]
    fn resume_split_keeps_the_prefix_and_ignores_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let (a, b, c) = (line(1, 0), line(1, 1), line(2, 0));
        let torn = &line(2, 1)[..40];
        std::fs::write(&p, format!("{a}{b}\n{c}{torn}")).unwrap();
        let s = split_for_resume(&p, 1, &kinds()).unwrap();
        assert_eq!(s.keep, (a.len() + b.len()) as u64);
        assert_eq!(s.kept_lines, 2);
        assert_eq!(s.later.len(), 1);
        // Nothing was written.
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{a}{b}\n{c}{torn}")
        );
        assert_eq!(load(&p, &kinds()).unwrap().len(), 3);
        // The writer cuts the file to the kept prefix only when it starts.
        let mut w = TranscriptWriter::resume(&p, s.keep).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            (a.len() + b.len() + 1 + c.len() + torn.len()) as u64
        );
        w.start().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{a}{b}"));
        // A bad line that is not the last is an error naming its line.
        std::fs::write(&p, format!("{a}not json\n{c}")).unwrap();
        let err = split_for_resume(&p, 1, &kinds()).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = load(&p, &kinds()).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }
}
