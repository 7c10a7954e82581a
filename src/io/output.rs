//! Output files, written incrementally: after each round the round's messages and interactions
//! are appended and flushed, so a crash loses at most the round in progress.
//!
//! - messages: JSON Lines, one message per line, in the original's field names plus the round and
//!   simulated time: `{"round":1,"time":"2023-06-01 08:00:00","agent_id":0,"action":"RECOMMENDER","content":"..."}`.
//!   Lines are grouped by round, then by agent id, then in the order the agent acted, which is
//!   the original's nesting (round → agent → messages) flattened. JSON Lines by default because
//!   one document has to be rewritten every round (O(rounds²) I/O, as in the original); each
//!   line here stands alone.
//! - messages as one JSON document, when the messages file ends with `.json` (the original's
//!   `-o record.json`): the stream is still written, beside it as `<name>.jsonl`, and after every
//!   round the document is regenerated from the stream into a temporary file and renamed over
//!   the `.json` ([`write_document`]), so the document is valid after every round and after a
//!   crash, and a resumed run regenerates it from its truncated stream.
//! - interactions: CSV `user_id,item_id,label,rating,round,timestamp`; label 1 = watched (with the
//!   1..=5 rating), 0 = shown on a page but not watched (rating empty).
//! - manifest: JSON, rewritten atomically after each round.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::resource::Resource;
use serde::Serialize;

/// Where the outputs go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OutputPaths {
    /// Messages: JSON Lines, or one JSON document when the name ends with `.json` (the stream
    /// then goes to [`OutputPaths::messages_stream`]).
    pub messages: PathBuf,
    /// Interactions CSV.
    pub interactions: PathBuf,
    /// Run manifest JSON.
    pub manifest: PathBuf,
    /// Log file (written by the CLI's tracing subscriber).
    pub log: PathBuf,
}

/// One simulator message (spec §5.6): `agent_id` is -1 for system messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageRecord {
    /// Agent the message belongs to (its list in the original's nesting).
    pub agent_id: i64,
    /// `RECOMMENDER`, `SOCIAL`, `CHAT`, `POST`, `LEAVE`, `WATCH`, `NO_ACTION`, `System`.
    pub action: &'static str,
    /// Text.
    pub content: String,
}

/// One interaction row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InteractionRecord {
    /// User id.
    pub user: u32,
    /// Item id.
    pub item: u32,
    /// 1 = watched, 0 = shown only.
    pub label: u8,
    /// Rating 1..=5 when watched and rated, else 0 (written empty).
    pub rating: u8,
}

impl OutputPaths {
    /// The default file names in `dir`: `messages.jsonl`, `interaction.csv`, `manifest.json`,
    /// `run.log`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            messages: dir.join("messages.jsonl"),
            interactions: dir.join("interaction.csv"),
            manifest: dir.join("manifest.json"),
            log: dir.join("run.log"),
        }
    }

    /// The outputs of a run of `cfg`, as `recagent run` names them: in `dir` (default: the
    /// configuration's `output_dir`, `./output` for the embedded configuration), `messages`,
    /// `interactions` and `log` when given (paths typed by the user, relative to the working
    /// directory), else the configuration's `output_file`, `interaction_path` (relative to the
    /// file) and `log_file`, else the default names; tidied (no `config/../output` detours),
    /// since they are shown and recorded in manifests.
    pub fn for_run(
        cfg: &crate::config::SimConfig,
        dir: Option<&Path>,
        messages: Option<PathBuf>,
        interactions: Option<PathBuf>,
        log: Option<PathBuf>,
    ) -> Self {
        let from_file = |p: &Path| {
            if cfg.is_embedded() {
                p.to_path_buf()
            } else {
                cfg.resolve(p)
            }
        };
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None if cfg.is_embedded() => PathBuf::from("output"),
            None => cfg.resolve(&cfg.output_dir),
        };
        let tidy = |p: PathBuf| {
            if p.is_absolute() {
                absolute(&p)
            } else {
                tidy_relative(&p)
            }
        };
        Self {
            messages: tidy(
                messages
                    .or_else(|| cfg.output_file.as_deref().map(|p| dir.join(p)))
                    .unwrap_or_else(|| dir.join("messages.jsonl")),
            ),
            interactions: tidy(
                interactions
                    .or_else(|| cfg.interaction_path.as_deref().map(from_file))
                    .unwrap_or_else(|| dir.join("interaction.csv")),
            ),
            manifest: tidy(dir.join("manifest.json")),
            log: tidy(
                log.or_else(|| cfg.log_file.as_deref().map(|p| dir.join(p)))
                    .unwrap_or_else(|| dir.join("run.log")),
            ),
        }
    }

    /// Where a run of `cfg` writing these outputs keeps its checkpoints: the configuration's
    /// `simulator_dir` (from a file, relative to it), else `checkpoints/` beside the manifest.
    pub fn checkpoint_dir(&self, cfg: &crate::config::SimConfig) -> PathBuf {
        match &cfg.simulator_dir {
            Some(d) if !d.as_os_str().is_empty() && !cfg.is_embedded() => cfg.resolve(d),
            _ => self
                .manifest
                .parent()
                .map_or_else(|| PathBuf::from("checkpoints"), |p| p.join("checkpoints")),
        }
    }

    /// The messages as one JSON document (spec §5.6), when [`OutputPaths::messages`] ends with
    /// `.json` (any case).
    pub fn messages_document(&self) -> Option<&Path> {
        let ext = self.messages.extension()?.to_str()?;
        ext.eq_ignore_ascii_case("json")
            .then_some(self.messages.as_path())
    }

    /// The JSON Lines stream the messages are appended to: [`OutputPaths::messages`], or beside
    /// the document with the extension `.jsonl` (`record.json` → `record.jsonl`).
    pub fn messages_stream(&self) -> PathBuf {
        match self.messages_document() {
            Some(doc) => doc.with_extension("jsonl"),
            None => self.messages.clone(),
        }
    }

    /// Fails when two outputs are the same file (they would overwrite each other).
    ///
    /// # Errors
    /// [`FileError`] naming the shared path.
    pub fn check_distinct(&self) -> Result<(), FileError> {
        let stream = self.messages_stream();
        let mut all = vec![
            &self.messages,
            &self.interactions,
            &self.manifest,
            &self.log,
        ];
        if self.messages_document().is_some() {
            all.push(&stream);
        }
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if absolute(a) == absolute(b) {
                    return Err(FileError {
                        path: (*a).clone(),
                        source: std::io::Error::other(
                            "two outputs (messages, their .jsonl stream, interactions, manifest, log) are this same file",
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Lengths of the output files at a round boundary (bytes); a checkpoint records them so a
/// resumed run truncates the files back to them and appends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OutputOffsets {
    /// Messages file length (0 when messages are not written).
    pub messages: u64,
    /// Interactions file length.
    pub interactions: u64,
    /// The round boundary these lengths belong to (rounds completed).
    #[serde(default)]
    pub round: u32,
}

fn reopen(path: &Path, len: u64) -> std::io::Result<BufWriter<File>> {
    let f = fs::OpenOptions::new().write(true).open(path)?;
    let actual = f.metadata()?.len();
    if actual < len {
        return Err(std::io::Error::other(format!(
            "{} is {actual} bytes, shorter than the checkpoint's {len}: it was truncated or replaced",
            path.display()
        )));
    }
    f.set_len(len)?;
    drop(f);
    let f = fs::OpenOptions::new().append(true).open(path)?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

/// An I/O error on one output file.
#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

/// Open output writers.
#[derive(Resource)]
pub struct OutputSink {
    messages: Option<BufWriter<File>>,
    interactions: BufWriter<File>,
    /// The Parquet folder when `interactions_parquet` is on ([`super::parquet`]).
    parquet: Option<PathBuf>,
    /// Paths of the files.
    pub paths: OutputPaths,
}

fn create(path: &Path) -> std::io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir)?;
        }
    }
    Ok(BufWriter::with_capacity(1 << 20, File::create(path)?))
}

impl OutputSink {
    /// Creates (truncates) the output files and writes the CSV header.
    ///
    /// # Errors
    /// [`FileError`] naming the file that could not be created, or two outputs that are the
    /// same file.
    pub fn create(paths: OutputPaths, write_messages: bool) -> Result<Self, FileError> {
        paths.check_distinct()?;
        let stream = paths.messages_stream();
        let messages = if write_messages {
            Some(create(&stream).map_err(at(&stream))?)
        } else {
            None
        };
        let mut interactions = create(&paths.interactions).map_err(at(&paths.interactions))?;
        writeln!(interactions, "user_id,item_id,label,rating,round,timestamp")
            .and_then(|()| interactions.flush())
            .map_err(at(&paths.interactions))?;
        let mut sink = Self {
            messages,
            interactions,
            parquet: None,
            paths,
        };
        sink.write_document(0)?;
        Ok(sink)
    }

    /// Reopens existing outputs for a resumed run: each file is truncated to its checkpoint offset
    /// (dropping whatever a crashed run wrote after it) and appended to.
    ///
    /// # Errors
    /// [`FileError`] for an I/O error or a file shorter than its offset.
    pub fn resume(
        paths: OutputPaths,
        write_messages: bool,
        offsets: OutputOffsets,
    ) -> Result<Self, FileError> {
        paths.check_distinct()?;
        let stream = paths.messages_stream();
        let messages = if !write_messages {
            None
        } else if offsets.messages == 0 && !stream.exists() {
            // The parent run did not write messages; this one does, from here on.
            Some(create(&stream).map_err(at(&stream))?)
        } else {
            Some(reopen(&stream, offsets.messages).map_err(at(&stream))?)
        };
        let interactions =
            reopen(&paths.interactions, offsets.interactions).map_err(at(&paths.interactions))?;
        let mut sink = Self {
            messages,
            interactions,
            parquet: None,
            paths,
        };
        // What a crashed run wrote after the checkpoint is gone from the stream: so from the
        // document, which is regenerated from it.
        sink.write_document(offsets.round)?;
        Ok(sink)
    }

    /// Also writes the interactions as Parquet, one file per round ([`super::parquet`]), when
    /// `on`; `completed` is the number of rounds already written (0 for a new run): the parts
    /// of later rounds, left by an earlier or crashed run, are removed.
    ///
    /// # Errors
    /// [`FileError`] naming a part that could not be removed.
    pub fn with_parquet(mut self, on: bool, completed: u32) -> Result<Self, FileError> {
        if on {
            let dir = super::parquet::parts_dir(&self.paths.interactions);
            super::parquet::remove_parts_after(&dir, completed).map_err(at(&dir))?;
            self.parquet = Some(dir);
        }
        Ok(self)
    }

    /// Regenerates the JSON document (when [`OutputPaths::messages_document`] names one) from
    /// the stream, for `rounds` completed rounds.
    fn write_document(&mut self, rounds: u32) -> Result<(), FileError> {
        let (Some(doc), Some(w)) = (self.paths.messages_document(), self.messages.as_mut()) else {
            return Ok(());
        };
        let stream = self.paths.messages_stream();
        w.flush().map_err(at(&stream))?;
        write_document(&stream, doc, rounds)
    }

    /// Current file lengths, after flushing.
    ///
    /// # Errors
    /// I/O errors.
    pub fn offsets(&mut self) -> std::io::Result<OutputOffsets> {
        let messages = match self.messages.as_mut() {
            Some(w) => {
                w.flush()?;
                w.get_ref().metadata()?.len()
            }
            None => 0,
        };
        self.interactions.flush()?;
        Ok(OutputOffsets {
            messages,
            interactions: self.interactions.get_ref().metadata()?.len(),
            round: 0,
        })
    }

    /// Appends one round and flushes.
    ///
    /// # Errors
    /// [`FileError`] naming the file that failed.
    pub fn write_round(
        &mut self,
        round: u32,
        time: &str,
        messages: &[MessageRecord],
        interactions: &[InteractionRecord],
    ) -> Result<(), FileError> {
        let (m, i) = (
            self.paths.messages_stream(),
            self.paths.interactions.clone(),
        );
        self.write_messages(round, time, messages).map_err(at(&m))?;
        self.write_interactions(round, time, interactions)
            .map_err(at(&i))?;
        if let Some(dir) = &self.parquet {
            let part = super::parquet::part_path(dir, round);
            super::parquet::write_part(dir, round, time, interactions).map_err(at(&part))?;
        }
        self.write_document(round)
    }

    fn write_messages(
        &mut self,
        round: u32,
        time: &str,
        messages: &[MessageRecord],
    ) -> std::io::Result<()> {
        if let Some(w) = self.messages.as_mut() {
            let time_json = serde_json::to_string(time).map_err(std::io::Error::other)?;
            for m in messages {
                write!(w, "{{\"round\":{round},\"time\":{time_json},\"agent_id\":{},\"action\":\"{}\",\"content\":", m.agent_id, m.action)?;
                serde_json::to_writer(&mut *w, &m.content).map_err(std::io::Error::other)?;
                w.write_all(b"}\n")?;
            }
            w.flush()?;
        }
        Ok(())
    }

    fn write_interactions(
        &mut self,
        round: u32,
        time: &str,
        interactions: &[InteractionRecord],
    ) -> std::io::Result<()> {
        let w = &mut self.interactions;
        for r in interactions {
            if r.rating > 0 {
                writeln!(
                    w,
                    "{},{},{},{},{round},{time}",
                    r.user, r.item, r.label, r.rating
                )?;
            } else {
                writeln!(w, "{},{},{},,{round},{time}", r.user, r.item, r.label)?;
            }
        }
        w.flush()
    }
}

/// One line of the messages stream, read back.
#[derive(serde::Deserialize)]
struct StreamLine {
    round: u32,
    time: String,
    agent_id: i64,
    action: String,
    content: String,
}

/// A message as the JSON document writes it: the original's three keys first, in its order
/// (spec §5.6: `content`, `agent_id`, `action`), then ours.
#[derive(Serialize)]
struct DocumentMessage<'a> {
    content: &'a str,
    agent_id: i64,
    action: &'a str,
    round: u32,
    time: &'a str,
}

/// Writes the messages of `stream` (JSON Lines, as [`OutputSink`] writes them, rounds
/// ascending) as one JSON document to `doc`: a list of `rounds` rounds, each the flat list of
/// its messages in stream order, each message `{"content", "agent_id", "action", "round",
/// "time"}` in that key order, one message per line with an indentation of 4 (the original's).
/// A round without messages is an empty list. The document goes to a temporary file that is
/// fsynced and renamed over `doc`, so `doc` is always a whole document.
///
/// Cost: the whole stream is read and the whole document written, so a run of R rounds writes
/// O(R²) bytes in all; the stream alone stays the format for large runs.
///
/// # Errors
/// [`FileError`] naming the stream when it cannot be read or holds a line that is not a
/// message of rounds `1..=rounds` in ascending order (naming the line), or naming `doc` when it
/// cannot be written.
pub fn write_document(stream: &Path, doc: &Path, rounds: u32) -> Result<(), FileError> {
    let tmp = doc.with_extension("json.tmp");
    let written = (|| {
        if let Some(dir) = doc.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(at(doc))?;
        }
        let mut out = BufWriter::new(File::create(&tmp).map_err(at(doc))?);
        let mut doc_writer = DocumentWriter::default();
        doc_writer
            .convert(stream, rounds, &mut out)?
            .map_err(at(doc))?;
        let f = out.into_inner().map_err(|e| at(doc)(e.into_error()))?;
        f.sync_all().map_err(at(doc))?;
        fs::rename(&tmp, doc).map_err(at(doc))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The state of a document being written: the round whose list is open (0: none yet) and
/// whether it has a message yet.
#[derive(Default)]
struct DocumentWriter {
    open: u32,
    has_message: bool,
}

impl DocumentWriter {
    /// Closes the open round's list and opens empty ones up to round `to`.
    fn open_round(&mut self, to: u32, w: &mut impl Write) -> std::io::Result<()> {
        while self.open < to {
            if self.open > 0 {
                self.close_round(w)?;
                w.write_all(b",")?;
            }
            w.write_all(b"\n    [")?;
            self.open += 1;
            self.has_message = false;
        }
        Ok(())
    }

    fn close_round(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(if self.has_message { b"\n    ]" } else { b"]" })
    }

    /// Reads `stream` and writes the document to `w`. The outer `Err` is a bad stream, the
    /// inner one a failed write.
    fn convert(
        &mut self,
        stream: &Path,
        rounds: u32,
        w: &mut impl Write,
    ) -> Result<std::io::Result<()>, FileError> {
        use std::io::BufRead as _;
        let bad = |line: usize, what: String| FileError {
            path: stream.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {line}: {what}"),
            ),
        };
        if let Err(e) = w.write_all(b"[") {
            return Ok(Err(e));
        }
        let lines = match File::open(stream) {
            Ok(f) => Some(std::io::BufReader::new(f).lines()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(stream)(e)),
        };
        for (i, line) in lines.into_iter().flatten().enumerate() {
            let line = line.map_err(at(stream))?;
            if line.is_empty() {
                continue;
            }
            let m: StreamLine = serde_json::from_str(&line)
                .map_err(|e| bad(i + 1, format!("not a message: {e}")))?;
            if m.round == 0 || m.round > rounds || m.round < self.open {
                return Err(bad(
                    i + 1,
                    format!(
                        "round {} is not in 1..={rounds} or comes after round {}",
                        m.round, self.open
                    ),
                ));
            }
            let msg = DocumentMessage {
                content: &m.content,
                agent_id: m.agent_id,
                action: &m.action,
                round: m.round,
                time: &m.time,
            };
            let wrote = (|| {
                self.open_round(m.round, w)?;
                w.write_all(if self.has_message {
                    b",\n        "
                } else {
                    b"\n        "
                })?;
                self.has_message = true;
                serde_json::to_writer(&mut *w, &msg).map_err(std::io::Error::other)
            })();
            if let Err(e) = wrote {
                return Ok(Err(e));
            }
        }
        Ok((|| {
            self.open_round(rounds, w)?;
            if self.open > 0 {
                self.close_round(w)?;
            }
            w.write_all(b"\n]\n")
        })())
    }
}

/// `p` made absolute (against the working directory) with `.` and `..` removed lexically.
pub fn absolute(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `p` with `dir/..` pairs and `.` parts removed lexically (`config/../output` -> `output`),
/// still relative; a leading `..` stays (nothing to pair it with). For paths shown to the user
/// and recorded in the manifest, where `std::fs::canonicalize` would need the file to exist.
pub fn tidy_relative(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
///
/// # Errors
/// I/O errors.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_pieces(path, &[bytes])
}

/// [`write_atomic`] of the concatenation of `pieces`, without assembling it (a checkpoint's
/// header and compressed frames: hundreds of MiB at a million agents, copied once more into
/// fresh memory before).
///
/// # Errors
/// I/O errors.
pub fn write_atomic_pieces(path: &Path, pieces: &[&[u8]]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir)?;
        }
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        for p in pieces {
            f.write_all(p)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_relative_pairs_names_with_parents_and_keeps_what_it_cannot_pair() {
        let t = |p: &str| tidy_relative(Path::new(p)).display().to_string();
        assert_eq!(t("config/../output"), "output");
        assert_eq!(t("./a/./b/"), "a/b");
        assert_eq!(t("../x"), "../x");
        assert_eq!(t("a/../../x"), "../x");
        assert_eq!(t("a/b/../../.."), "..");
    }

    #[test]
    fn writes_jsonl_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let paths = OutputPaths {
            messages: dir.path().join("m/messages.jsonl"),
            interactions: dir.path().join("i.csv"),
            manifest: dir.path().join("manifest.json"),
            log: dir.path().join("log"),
        };
        let mut s = OutputSink::create(paths.clone(), true).unwrap();
        s.write_round(
            1,
            "2023-06-01 08:00:00",
            &[MessageRecord {
                agent_id: 3,
                action: "CHAT",
                content: "say \"hi\"\n".into(),
            }],
            &[
                InteractionRecord {
                    user: 3,
                    item: 7,
                    label: 1,
                    rating: 4,
                },
                InteractionRecord {
                    user: 3,
                    item: 8,
                    label: 0,
                    rating: 0,
                },
            ],
        )
        .unwrap();
        let m = std::fs::read_to_string(&paths.messages).unwrap();
        assert_eq!(m, "{\"round\":1,\"time\":\"2023-06-01 08:00:00\",\"agent_id\":3,\"action\":\"CHAT\",\"content\":\"say \\\"hi\\\"\\n\"}\n");
        let v: serde_json::Value = serde_json::from_str(m.trim()).unwrap();
        assert_eq!(v["content"], "say \"hi\"\n");
        let i = std::fs::read_to_string(&paths.interactions).unwrap();
        assert_eq!(i, "user_id,item_id,label,rating,round,timestamp\n3,7,1,4,1,2023-06-01 08:00:00\n3,8,0,,1,2023-06-01 08:00:00\n");
    }

    fn msg(agent_id: i64, action: &'static str, content: &str) -> MessageRecord {
        MessageRecord {
            agent_id,
            action,
            content: content.into(),
        }
    }

    #[test]
    fn a_json_messages_file_is_one_document_of_rounds_valid_after_every_round() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = OutputPaths::in_dir(dir.path());
        paths.messages = dir.path().join("record/record.json");
        assert_eq!(
            paths.messages_stream(),
            dir.path().join("record/record.jsonl")
        );
        let mut s = OutputSink::create(paths.clone(), true).unwrap();
        let doc = || std::fs::read_to_string(&paths.messages).unwrap();
        // Before the first round: a document of no rounds.
        assert_eq!(doc(), "[\n]\n");
        let t = "2023-06-01 08:00:00";
        s.write_round(
            1,
            t,
            &[msg(-1, "System", "reset"), msg(0, "CHAT", "hi \"A\"")],
            &[],
        )
        .unwrap();
        let after_one = doc();
        // Round 2 has no message: an empty list.
        s.write_round(2, t, &[], &[]).unwrap();
        s.write_round(3, t, &[msg(2, "POST", "p")], &[]).unwrap();
        // The original's three keys first, in its order (spec §5.6), then ours.
        let want = concat!(
            "[\n",
            "    [\n",
            "        {\"content\":\"reset\",\"agent_id\":-1,\"action\":\"System\",\"round\":1,\"time\":\"2023-06-01 08:00:00\"},\n",
            "        {\"content\":\"hi \\\"A\\\"\",\"agent_id\":0,\"action\":\"CHAT\",\"round\":1,\"time\":\"2023-06-01 08:00:00\"}\n",
            "    ],\n",
            "    [],\n",
            "    [\n",
            "        {\"content\":\"p\",\"agent_id\":2,\"action\":\"POST\",\"round\":3,\"time\":\"2023-06-01 08:00:00\"}\n",
            "    ]\n",
            "]\n"
        );
        assert_eq!(doc(), want);
        let v: serde_json::Value = serde_json::from_str(&doc()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[0][1]["content"], "hi \"A\"");
        assert_eq!(v[1], serde_json::json!([]));
        let one: serde_json::Value = serde_json::from_str(&after_one).unwrap();
        assert_eq!(one.as_array().unwrap().len(), 1);
        // The stream is today's JSON Lines, three lines.
        let stream = std::fs::read_to_string(paths.messages_stream()).unwrap();
        assert_eq!(stream.lines().count(), 3);
        assert!(!dir.path().join("record/record.json.tmp").exists());
    }

    #[test]
    fn a_resumed_sink_regenerates_the_document_from_its_truncated_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = OutputPaths::in_dir(dir.path());
        paths.messages = dir.path().join("m.JSON");
        let t = "2023-06-01 08:00:00";
        let mut s = OutputSink::create(paths.clone(), true).unwrap();
        s.write_round(1, t, &[msg(0, "WATCH", "w")], &[]).unwrap();
        let mut at = s.offsets().unwrap();
        at.round = 1;
        let after_one = std::fs::read_to_string(&paths.messages).unwrap();
        s.write_round(2, t, &[msg(1, "LEAVE", "l")], &[]).unwrap();
        drop(s);
        assert_ne!(std::fs::read_to_string(&paths.messages).unwrap(), after_one);
        let _s = OutputSink::resume(paths.clone(), true, at).unwrap();
        assert_eq!(std::fs::read_to_string(&paths.messages).unwrap(), after_one);
    }

    #[test]
    fn a_stream_line_out_of_order_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let stream = dir.path().join("m.jsonl");
        let line = |r: u32| {
            format!("{{\"round\":{r},\"time\":\"t\",\"agent_id\":0,\"action\":\"CHAT\",\"content\":\"c\"}}\n")
        };
        std::fs::write(&stream, line(2) + &line(1)).unwrap();
        let doc = dir.path().join("m.json");
        let e = write_document(&stream, &doc, 2).unwrap_err();
        assert_eq!(e.path, stream);
        assert!(e.source.to_string().starts_with("line 2: round 1"), "{e:?}");
        std::fs::write(&stream, "{not json\n").unwrap();
        let e = write_document(&stream, &doc, 2).unwrap_err();
        assert!(
            e.source.to_string().starts_with("line 1: not a message"),
            "{e:?}"
        );
        assert!(!doc.exists() && !dir.path().join("m.json.tmp").exists());
        // A .jsonl (or any other) name is the stream itself.
        let p = OutputPaths::in_dir(dir.path());
        assert_eq!(p.messages_document(), None);
        assert_eq!(p.messages_stream(), p.messages);
    }
}
