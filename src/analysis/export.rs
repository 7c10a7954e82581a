//! `recagent export`: a finished (or running) run's interactions, users and items as files a
//! standard recommender library reads, so models can be trained on simulated behaviour.
//!
//! Two formats, each written into `<out>/<name>/`:
//!
//! - **RecBole atomic files** (RecBole docs, "Atomic Files"; tab-separated, a `name:type`
//!   header, `token_seq` values separated by single spaces):
//!   - `<name>.inter`: `user_id:token  item_id:token  rating:float  timestamp:float`, one row
//!     per *watched* item (implicit positives; RecBole samples negatives itself). With
//!     [`ExportOptions::with_shown`] every showing is a row and a `label:float` column (1 =
//!     watched, 0 = shown and not watched) comes after `item_id`, for RecBole's
//!     `LABEL_FIELD: label` with `train_neg_sample_args: ~` (`neg_sampling: ~` before 1.1).
//!     `rating` is empty where the agent did not rate (every shown-only row, and a watch
//!     without a rating). `timestamp` is the simulated
//!     time of the round, read as UTC, in unix seconds; rows keep the run's order (agents in
//!     id order within a round, items in the order shown).
//!   - `<name>.user`: `user_id:token  name:token  age:float  gender:token  status:token
//!     traits:token_seq  interest:token_seq  feature:token_seq`, one row per agent of the run.
//!   - `<name>.item`: `item_id:token  movie_title:token_seq  genre:token_seq
//!     description:token_seq`, one row per catalogue item.
//!
//!   A `token_seq` of list values (genres, traits, interests, features) has one token per list
//!   entry, the entry's inner spaces replaced by `_` (`sci-fi movies` -> `sci-fi_movies`);
//!   a `token_seq` of text (title, description) has the text's words. Tabs and line breaks in
//!   any value are replaced by spaces (RecBole splits fields on tabs and rows on line breaks,
//!   and a word sequence means the same with either separator), and a value that starts with a
//!   double quote has its double quotes as `'` (RecBole reads the files with pandas, which
//!   would take it for a quoted field); how many rows needed either is reported in
//!   [`ExportSummary::normalised`].
//! - **CSV** (RFC 4180 quoting, so any title survives): `interactions.csv`
//!   (`user_id,item_id,label,rating,round,timestamp,time`, every showing, `timestamp` in unix
//!   seconds and `time` as the run wrote it), `users.csv`
//!   (`user_id,name,gender,age,traits,status,interest,feature`, features `;`-separated) and
//!   `items.csv` (`item_id,title,genres,description`, genres `|`-separated).
//!
//! The users and the catalogue are loaded with the library's own loaders ([`DataSet::load`])
//! from the configuration the run's `manifest.json` records, so the export names the same
//! agents (the first `agent_num` users) and items the run had.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::SimConfig;
use crate::sim::DataSet;

/// What [`export`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// RecBole atomic files `<name>.inter`, `<name>.user`, `<name>.item`.
    RecBole,
    /// Plain CSV files `interactions.csv`, `users.csv`, `items.csv`.
    Csv,
}

/// Options of [`export`].
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// File format.
    pub format: ExportFormat,
    /// Parent directory; the files go into `out_dir/<name>/` (RecBole's `data_path`).
    pub out_dir: PathBuf,
    /// Data set name: the folder and (RecBole) the file stem. `[A-Za-z0-9_.-]`, not starting
    /// with a dot; see [`check_name`].
    pub name: String,
    /// RecBole only: write every shown item with a `label:float` column instead of the
    /// watched items only. (CSV always writes every showing with its label.)
    pub with_shown: bool,
    /// Directory the run's configured data paths are relative to, instead of the `base_dir`
    /// its manifest records (needed when the run was started from another working directory
    /// and recorded a relative one).
    pub base_dir: Option<PathBuf>,
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// The folder holding the files (`out_dir/<name>`).
    pub dir: PathBuf,
    /// The files written, in the order above.
    pub files: Vec<PathBuf>,
    /// Rows read from the run's `interaction.csv` (header excluded).
    pub rows_read: u64,
    /// Interaction rows written.
    pub interactions: u64,
    /// User rows written (the run's agents).
    pub users: usize,
    /// Item rows written (the catalogue).
    pub items: usize,
    /// RecBole only: user and item rows with a value whose tabs or line breaks were replaced
    /// by spaces or whose leading double quote was replaced (see the module docs).
    pub normalised: u64,
}

/// Why an export failed. Every variant names the file (and line) in question.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A file could not be read or written.
    #[error("{path}: {what}")]
    Io {
        /// The file.
        path: String,
        /// `cannot read`, `cannot write`, ...
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The run directory is not usable (no manifest, no interactions, data not found).
    #[error("{0}")]
    Run(String),
    /// A line of `interaction.csv` does not fit its schema.
    #[error("{path}: line {line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The data the run's configuration names did not load.
    #[error("loading the run's data: {0}")]
    Data(#[from] crate::sim::SimError),
    /// A bad `--name`.
    #[error("data set name {0:?}: {1}")]
    Name(String, &'static str),
}

/// Checks a data set name: non-empty, only ASCII letters, digits, `_`, `-`, `.`, not starting
/// with a dot (it becomes a folder and a file stem).
///
/// # Errors
/// [`ExportError::Name`] saying what is wrong.
pub fn check_name(name: &str) -> Result<(), ExportError> {
    if name.is_empty() {
        return Err(ExportError::Name(name.into(), "empty"));
    }
    if name.starts_with('.') {
        return Err(ExportError::Name(name.into(), "cannot start with a dot"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ExportError::Name(
            name.into(),
            "allowed characters are ASCII letters, digits, `_`, `-` and `.`",
        ));
    }
    Ok(())
}

/// The default data set name for a run directory: its last component with every character
/// outside `[A-Za-z0-9_.-]` replaced by `_`, or `recagent` when that leaves nothing usable.
pub fn default_name(run_dir: &Path) -> String {
    let n: String = std::fs::canonicalize(run_dir)
        .ok()
        .as_deref()
        .unwrap_or(run_dir)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if check_name(&n).is_ok() {
        n
    } else {
        "recagent".into()
    }
}

/// A run directory opened for analysis: its manifest, its configuration (with `base_dir`
/// set so the data paths resolve) and where its interactions are.
#[derive(Debug)]
pub struct RunDir {
    /// The run directory.
    pub dir: PathBuf,
    /// `manifest.json`, parsed.
    pub manifest: serde_json::Value,
    /// The run's resolved configuration (not re-validated: a recorded LLM run's redacted
    /// credentials would not pass, and only the data paths are needed here).
    pub config: SimConfig,
    /// The run's `interaction.csv`.
    pub interactions: PathBuf,
}

impl RunDir {
    /// Opens `dir`: reads `manifest.json`, rebuilds the configuration from its `config` and
    /// `base_dir` (or `base_dir` given here; a recorded relative `base_dir` whose data is not
    /// found from the working directory is tried from the run directory's parent and up to
    /// three levels above it, where a run started in a checkout writes `./output`), and finds `interaction.csv` (in `dir`, else where
    /// the manifest's `outputs.interactions` says).
    ///
    /// # Errors
    /// [`ExportError::Run`] for a missing or malformed manifest, a data file that is not where
    /// the configuration says (with the way out), or no interaction file.
    pub fn open(dir: &Path, base_dir: Option<&Path>) -> Result<Self, ExportError> {
        let mpath = dir.join("manifest.json");
        let text = std::fs::read_to_string(&mpath).map_err(|e| {
            ExportError::Run(format!(
                "{}: not a run directory: cannot read manifest.json ({e})",
                dir.display()
            ))
        })?;
        let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ExportError::Run(format!("{}: not a run manifest: {e}", mpath.display()))
        })?;
        let cfg_json = manifest
            .get("config")
            .cloned()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| {
                ExportError::Run(format!("{}: has no \"config\" object", mpath.display()))
            })?;
        let origin = format!("{} (config)", mpath.display());
        let mut config = SimConfig::from_json_unvalidated(cfg_json, &origin)
            .map_err(|e| ExportError::Run(e.to_string()))?;
        let recorded = manifest
            .get("base_dir")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(".");
        config.base_dir = match base_dir {
            Some(b) => b.to_path_buf(),
            None => PathBuf::from(recorded),
        };
        if !config.is_embedded() && !config.resolve(&config.item_path).exists() {
            // A relative base was relative to the working directory of the run, which is not
            // recorded: the usual one is the run directory's parent (`./output`), or further up.
            let found = (base_dir.is_none() && Path::new(recorded).is_relative())
                .then(|| {
                    dir.ancestors().skip(1).take(4).find_map(|a| {
                        let b = a.join(recorded);
                        (b.join(&config.item_path).exists() && b.join(&config.user_path).exists())
                            .then_some(b)
                    })
                })
                .flatten();
            match found {
                Some(b) => config.base_dir = b,
                None => {
                    let why = if base_dir.is_none() && Path::new(recorded).is_relative() {
                        format!(
                            "the run recorded its data paths relative to `{recorded}` (its config file's directory, seen from where it was started); run the export from that working directory, or pass --base-dir DIR"
                        )
                    } else {
                        "pass --base-dir DIR (the directory the configured data paths are relative to)"
                            .to_string()
                    };
                    return Err(ExportError::Run(format!(
                        "the run's item file {} is not there: {why}",
                        config.resolve(&config.item_path).display()
                    )));
                }
            }
        }
        let beside = dir.join("interaction.csv");
        let interactions = if beside.exists() {
            beside
        } else {
            manifest
                .pointer("/outputs/interactions")
                .and_then(serde_json::Value::as_str)
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    ExportError::Run(format!(
                        "{}: no interaction.csv here, and the manifest's outputs.interactions is not found either",
                        dir.display()
                    ))
                })?
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            config,
            interactions,
        })
    }

    /// Loads the run's users and catalogue with the loaders the run used.
    ///
    /// # Errors
    /// [`ExportError::Data`] for data that does not load; [`ExportError::Run`] when its item or
    /// agent count differs from the manifest's data report (another data set).
    pub fn load_data(&self) -> Result<DataSet, ExportError> {
        let data = DataSet::load(&self.config)?;
        // The manifest's data report guards against a base directory that holds other data.
        let report = self.manifest.get("data");
        let count = |k: &str| {
            report
                .and_then(|r| r.get(k))
                .and_then(serde_json::Value::as_u64)
        };
        for (key, got) in [("items", data.catalog.len()), ("agents", data.users.len())] {
            if let Some(want) = count(key) {
                if want != got as u64 {
                    return Err(ExportError::Run(format!(
                        "the data under {} has {got} {key}, the run had {want}: pass --base-dir DIR naming the run's data",
                        self.config.base_dir.display()
                    )));
                }
            }
        }
        Ok(data)
    }
}

/// One row of `interaction.csv` (`user_id,item_id,label,rating,round,timestamp`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct InteractionRow {
    /// User id (the data file's).
    pub user_id: u32,
    /// Item id (the data file's).
    pub item_id: u32,
    /// 1 = watched, 0 = shown only.
    pub label: u8,
    /// Stars 1..=5, empty when not rated.
    pub rating: Option<u8>,
    /// 1-based round.
    pub round: u32,
    /// Simulated time, `YYYY-mm-dd HH:MM:SS`.
    pub timestamp: String,
}

/// Simulated time `YYYY-mm-dd HH:MM:SS`, read as UTC, in unix seconds.
pub fn unix_seconds(t: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// Reads `interaction.csv` row by row (the file can hold millions), calling `f` with each row,
/// its unix time and its 1-based line.
///
/// # Errors
/// [`ExportError::Row`] naming the line for a row that does not fit the schema, or `f`'s error.
pub fn for_each_interaction(
    path: &Path,
    mut f: impl FnMut(&InteractionRow, i64) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: name.clone(),
        what: "cannot read",
        source,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let header = rdr.headers().map_err(|e| ExportError::Row {
        path: name.clone(),
        line: 1,
        message: e.to_string(),
    })?;
    let expected = [
        "user_id",
        "item_id",
        "label",
        "rating",
        "round",
        "timestamp",
    ];
    if header.iter().ne(expected) {
        return Err(ExportError::Row {
            path: name,
            line: 1,
            message: format!(
                "header {:?}, expected {}",
                header.iter().collect::<Vec<_>>().join(","),
                expected.join(",")
            ),
        });
    }
    let header = header.clone();
    let mut n = 0u64;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| ExportError::Row {
            path: name.clone(),
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(0, csv::Position::line);
        let bad = |message: String| ExportError::Row {
            path: name.clone(),
            line,
            message,
        };
        let row: InteractionRow = rec
            .deserialize(Some(&header))
            .map_err(|e| bad(e.to_string()))?;
        if row.label > 1 {
            return Err(bad(format!("label {}: expected 0 or 1", row.label)));
        }
        let ts = unix_seconds(&row.timestamp).ok_or_else(|| {
            bad(format!(
                "timestamp {:?}: expected YYYY-mm-dd HH:MM:SS",
                row.timestamp
            ))
        })?;
        f(&row, ts)?;
        n += 1;
    }
    Ok(n)
}

/// The last step of every RecBole value: RecBole reads atomic files with pandas, whose CSV
/// reader takes a field that starts with `"` as quoted (and would run it into the following
/// fields), so such a value gets its double quotes as `'`. Sets `*changed` when it does.
fn unquoted(v: String, changed: &mut bool) -> String {
    if v.starts_with('"') {
        *changed = true;
        v.replace('"', "'")
    } else {
        v
    }
}

/// A RecBole `token` value: tabs and line breaks replaced by spaces, trimmed. Sets `*changed`
/// when something was replaced.
fn token(s: &str, changed: &mut bool) -> String {
    if s.contains(['\t', '\n', '\r']) {
        *changed = true;
    }
    unquoted(
        s.replace(['\t', '\n', '\r'], " ").trim().to_string(),
        changed,
    )
}

/// A RecBole `token_seq` of a text's words (any whitespace separates words).
fn words(s: &str, changed: &mut bool) -> String {
    if s.contains(['\t', '\n', '\r']) {
        *changed = true;
    }
    unquoted(s.split_whitespace().collect::<Vec<_>>().join(" "), changed)
}

/// A RecBole `token_seq` of list entries: one token per entry, inner whitespace as `_`.
fn entries<'a>(list: impl IntoIterator<Item = &'a str>, changed: &mut bool) -> String {
    let v = list
        .into_iter()
        .map(|e| {
            if e.contains(['\t', '\n', '\r']) {
                *changed = true;
            }
            e.split_whitespace().collect::<Vec<_>>().join("_")
        })
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    unquoted(v, changed)
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, ExportError> {
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|source| ExportError::Io {
            path: path.display().to_string(),
            what: "cannot create",
            source,
        })
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        what: "cannot write",
        source,
    }
}

fn csv_err(path: &Path) -> impl Fn(csv::Error) -> ExportError + '_ {
    move |e| ExportError::Io {
        path: path.display().to_string(),
        what: "cannot write",
        source: std::io::Error::other(e.to_string()),
    }
}

/// The genre names of catalogue item `idx`, in the catalogue's genre order.
fn genre_names(data: &DataSet, idx: u32) -> Vec<&str> {
    let names = data.catalog.genre_names();
    data.catalog
        .get(idx)
        .genres
        .iter()
        .map(|g| names[g].as_str())
        .collect()
}

/// Exports the run in `run_dir` as `opts` says.
///
/// # Errors
/// [`ExportError`]: the run directory or its data cannot be read (naming the file and what to
/// do), a malformed `interaction.csv` line, or an output that cannot be written.
pub fn export(run_dir: &Path, opts: &ExportOptions) -> Result<ExportSummary, ExportError> {
    check_name(&opts.name)?;
    let run = RunDir::open(run_dir, opts.base_dir.as_deref())?;
    let data = run.load_data()?;
    let dir = opts.out_dir.join(&opts.name);
    std::fs::create_dir_all(&dir).map_err(|source| ExportError::Io {
        path: dir.display().to_string(),
        what: "cannot create the folder",
        source,
    })?;
    match opts.format {
        ExportFormat::RecBole => export_recbole(&run, &data, &dir, opts),
        ExportFormat::Csv => export_csv(&run, &data, &dir),
    }
}

fn export_recbole(
    run: &RunDir,
    data: &DataSet,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let name = &opts.name;
    let (inter_p, user_p, item_p) = (
        dir.join(format!("{name}.inter")),
        dir.join(format!("{name}.user")),
        dir.join(format!("{name}.item")),
    );
    let mut normalised = 0u64;

    let mut w = create(&inter_p)?;
    let e = write_err(&inter_p);
    if opts.with_shown {
        writeln!(
            w,
            "user_id:token\titem_id:token\tlabel:float\trating:float\ttimestamp:float"
        )
        .map_err(&e)?;
    } else {
        writeln!(
            w,
            "user_id:token\titem_id:token\trating:float\ttimestamp:float"
        )
        .map_err(&e)?;
    }
    let mut written = 0u64;
    let rows_read = for_each_interaction(&run.interactions, |r, ts| {
        let rating = r.rating.map(|x| x.to_string()).unwrap_or_default();
        let res = if opts.with_shown {
            writeln!(
                w,
                "{}\t{}\t{}\t{rating}\t{ts}",
                r.user_id, r.item_id, r.label
            )
        } else if r.label == 1 {
            writeln!(w, "{}\t{}\t{rating}\t{ts}", r.user_id, r.item_id)
        } else {
            return Ok(());
        };
        written += 1;
        res.map_err(&e)
    })?;
    w.flush().map_err(&e)?;

    let mut w = create(&user_p)?;
    let e = write_err(&user_p);
    writeln!(
        w,
        "user_id:token\tname:token\tage:float\tgender:token\tstatus:token\ttraits:token_seq\tinterest:token_seq\tfeature:token_seq"
    )
    .map_err(&e)?;
    for u in &data.users {
        let mut c = false;
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            u.id,
            token(&u.name, &mut c),
            u.age,
            token(&u.gender, &mut c),
            token(&u.status, &mut c),
            entries(u.traits.split(','), &mut c),
            entries(u.interest.split(','), &mut c),
            entries(u.features.iter().map(String::as_str), &mut c),
        );
        normalised += u64::from(c);
        writeln!(w, "{line}").map_err(&e)?;
    }
    w.flush().map_err(&e)?;

    let mut w = create(&item_p)?;
    let e = write_err(&item_p);
    writeln!(
        w,
        "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tdescription:token_seq"
    )
    .map_err(&e)?;
    for (idx, it) in data.catalog.items().iter().enumerate() {
        let mut c = false;
        let line = format!(
            "{}\t{}\t{}\t{}",
            it.id.0,
            words(&it.title, &mut c),
            entries(genre_names(data, idx as u32), &mut c),
            words(&it.description, &mut c),
        );
        normalised += u64::from(c);
        writeln!(w, "{line}").map_err(&e)?;
    }
    w.flush().map_err(&e)?;

    Ok(ExportSummary {
        dir: dir.to_path_buf(),
        files: vec![inter_p.clone(), user_p.clone(), item_p.clone()],
        rows_read,
        interactions: written,
        users: data.users.len(),
        items: data.catalog.len(),
        normalised,
    })
}

fn export_csv(run: &RunDir, data: &DataSet, dir: &Path) -> Result<ExportSummary, ExportError> {
    let (inter_p, user_p, item_p) = (
        dir.join("interactions.csv"),
        dir.join("users.csv"),
        dir.join("items.csv"),
    );
    let mut w = csv::Writer::from_writer(create(&inter_p)?);
    let e = csv_err(&inter_p);
    w.write_record([
        "user_id",
        "item_id",
        "label",
        "rating",
        "round",
        "timestamp",
        "time",
    ])
    .map_err(&e)?;
    let rows_read = for_each_interaction(&run.interactions, |r, ts| {
        w.write_record([
            r.user_id.to_string(),
            r.item_id.to_string(),
            r.label.to_string(),
            r.rating.map(|x| x.to_string()).unwrap_or_default(),
            r.round.to_string(),
            ts.to_string(),
            r.timestamp.clone(),
        ])
        .map_err(&e)
    })?;
    w.flush().map_err(write_err(&inter_p))?;

    let mut w = csv::Writer::from_writer(create(&user_p)?);
    let e = csv_err(&user_p);
    w.write_record([
        "user_id", "name", "gender", "age", "traits", "status", "interest", "feature",
    ])
    .map_err(&e)?;
    for u in &data.users {
        w.write_record([
            u.id.to_string(),
            u.name.clone(),
            u.gender.clone(),
            u.age.to_string(),
            u.traits.clone(),
            u.status.clone(),
            u.interest.clone(),
            u.features.join(";"),
        ])
        .map_err(&e)?;
    }
    w.flush().map_err(write_err(&user_p))?;

    let mut w = csv::Writer::from_writer(create(&item_p)?);
    let e = csv_err(&item_p);
    w.write_record(["item_id", "title", "genres", "description"])
        .map_err(&e)?;
    for (idx, it) in data.catalog.items().iter().enumerate() {
        w.write_record([
            it.id.0.to_string(),
            it.title.to_string(),
            genre_names(data, idx as u32).join("|"),
            it.description.to_string(),
        ])
        .map_err(&e)?;
    }
    w.flush().map_err(write_err(&item_p))?;

    Ok(ExportSummary {
        dir: dir.to_path_buf(),
        files: vec![inter_p.clone(), user_p.clone(), item_p.clone()],
        rows_read,
        interactions: rows_read,
        users: data.users.len(),
        items: data.catalog.len(),
        normalised: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_helpers_replace_tabs_and_line_breaks() {
        let mut c = false;
        assert_eq!(token("Ann\tLee", &mut c), "Ann Lee");
        assert!(c);
        let mut c = false;
        assert_eq!(words("  The\nLong \t Quiet ", &mut c), "The Long Quiet");
        assert!(c);
        let mut c = false;
        // Two list entries; the first's inner space becomes `_`, the empty third is dropped.
        assert_eq!(
            entries(" sci-fi movies,  comedy movies,".split(','), &mut c),
            "sci-fi_movies comedy_movies"
        );
        assert!(!c);
        // A leading double quote would open a quoted field for pandas.
        assert_eq!(
            words("\"Great Performances\" Cats", &mut c),
            "'Great Performances' Cats"
        );
        assert!(c);
        let mut c = false;
        assert_eq!(words("Say \"hi\"", &mut c), "Say \"hi\"");
        assert!(!c);
    }

    #[test]
    fn unix_seconds_reads_simulated_time_as_utc() {
        // 2023-06-01 is day 19,509 after 1970-01-01: 19,509 x 86,400 = 1,685,577,600 s, plus
        // 8 h = 28,800 s.
        assert_eq!(unix_seconds("2023-06-01 08:00:00"), Some(1_685_606_400));
        assert_eq!(unix_seconds("2023-06-01"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ml-sim_1.0").is_ok());
        for bad in ["", ".hidden", "a/b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(default_name(Path::new("/tmp/my run")), "my_run");
        assert_eq!(default_name(Path::new("/")), "recagent");
    }
}
