//! Output files, written incrementally: after each round the round's messages and interactions
//! are appended and flushed, so a crash loses at most the round in progress.
//!
//! - messages: JSON Lines, one message per line, in the original's field names plus the round and
//!   simulated time: `{"round":1,"time":"2023-06-01 08:00:00","agent_id":0,"action":"RECOMMENDER","content":"..."}`.
//!   Lines are grouped by round, then by agent id, then in the order the agent acted, which is
//!   the original's nesting (round → agent → messages) flattened. JSON Lines rather than one nested
//!   JSON document because the document would have to be rewritten every round (O(rounds²) I/O in
//!   the original) or be invalid after a crash; each line here stands alone.
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
    /// Messages (JSON Lines).
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

    /// Fails when two outputs are the same file (they would overwrite each other).
    ///
    /// # Errors
    /// [`FileError`] naming the shared path.
    pub fn check_distinct(&self) -> Result<(), FileError> {
        let all = [
            &self.messages,
            &self.interactions,
            &self.manifest,
            &self.log,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if absolute(a) == absolute(b) {
                    return Err(FileError {
                        path: (*a).clone(),
                        source: std::io::Error::other(
                            "two outputs (messages, interactions, manifest, log) are this same file",
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
        let messages = if write_messages {
            Some(create(&paths.messages).map_err(at(&paths.messages))?)
        } else {
            None
        };
        let mut interactions = create(&paths.interactions).map_err(at(&paths.interactions))?;
        writeln!(interactions, "user_id,item_id,label,rating,round,timestamp")
            .and_then(|()| interactions.flush())
            .map_err(at(&paths.interactions))?;
        Ok(Self {
            messages,
            interactions,
            paths,
        })
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
        let messages = if !write_messages {
            None
        } else if offsets.messages == 0 && !paths.messages.exists() {
            // The parent run did not write messages; this one does, from here on.
            Some(create(&paths.messages).map_err(at(&paths.messages))?)
        } else {
            Some(reopen(&paths.messages, offsets.messages).map_err(at(&paths.messages))?)
        };
        let interactions =
            reopen(&paths.interactions, offsets.interactions).map_err(at(&paths.interactions))?;
        Ok(Self {
            messages,
            interactions,
            paths,
        })
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
        let (m, i) = (self.paths.messages.clone(), self.paths.interactions.clone());
        self.write_messages(round, time, messages).map_err(at(&m))?;
        self.write_interactions(round, time, interactions)
            .map_err(at(&i))
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

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
///
/// # Errors
/// I/O errors.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir)?;
        }
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
