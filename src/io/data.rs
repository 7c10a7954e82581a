//! Data loaders with one explicit row type per schema:
//!
//! | file | schema |
//! |---|---|
//! | RecAgent `item.csv` | `id,title,genre,description` (genres `|`-separated) |
//! | RecAgent `user_1000.csv` | `id,name,gender,age,traits,status,interest,feature` |
//! | RecAgent legacy `user.csv` | `id,name,age,traits,status,observations` |
//! | RecAgent `relationship_1000.csv` | `user_1,user_2,relationship,closeness` (ids) |
//! | RecAgent legacy `relationship.csv` | `user_1,user_2,relationship` (names, value `1`) |
//! | MovieLens-1M `movies.dat` / `users.dat` / `ratings.dat` | `::`-separated, UTF-8 or Latin-1 |
//!
//! Everything is keyed by id (names are not unique in `user_1000.csv`). A malformed row is an
//! error naming the file, the line and the column.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

/// Failures while loading input data. Always names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read. A missing file's message points to the README's
    /// "Getting started" section, which says where each data set comes from.
    #[error("{origin}: cannot read {what}{hint}", hint = missing_hint(source))]
    Io {
        /// File path.
        origin: String,
        /// What the file is, in the configuration's terms (`the item catalogue (item_path)`).
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A row does not fit the schema.
    #[error("{origin}: line {line}{col}: {message}", col = column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Row {
        /// File path.
        origin: String,
        /// 1-based line number in the file.
        line: u64,
        /// Column name, where the error is in one column.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The header matches no known schema.
    #[error("{origin}: unrecognised header {header:?}: expected {expected}")]
    Schema {
        /// File path.
        origin: String,
        /// The header found.
        header: String,
        /// The accepted headers.
        expected: &'static str,
    },
    /// A relationship names a user that is not in the user file.
    #[error("{origin}: line {line}: relationship references unknown user {user:?}")]
    UnknownUser {
        /// File path.
        origin: String,
        /// 1-based line.
        line: u64,
        /// The id or name as written.
        user: String,
    },
    /// Two rows share an id (or, in a name-keyed file, a name).
    #[error("{origin}: line {line}: duplicate {what} {value:?}")]
    Duplicate {
        /// File path.
        origin: String,
        /// 1-based line of the second occurrence.
        line: u64,
        /// `id` or `name`.
        what: &'static str,
        /// The duplicated value.
        value: String,
    },
    /// The file holds no rows.
    #[error("{origin}: no rows")]
    Empty {
        /// File path.
        origin: String,
    },
}

/// Where the README says to get the data sets that are not in the repository.
pub const DATA_HINT: &str =
    "RecAgent's and Agent4Rec's data sets are not in the repository: the README's \
    \"Getting started\" section says where to get them and where they go (`../shared/data/` beside \
    the checkout)";

/// ` (no such file; <DATA_HINT>)` for a missing file, else nothing.
pub fn missing_hint(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(" (no such file; {DATA_HINT})")
    } else {
        String::new()
    }
}

/// One row of RecAgent's `item.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemRow {
    /// Item id.
    pub id: u32,
    /// Title (no year in RecAgent's file).
    pub title: String,
    /// `|`-separated genres.
    pub genre: String,
    /// One-sentence description.
    pub description: String,
}

/// One row of RecAgent's `user_1000.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserRow {
    /// User id.
    pub id: u32,
    /// Full name (not unique).
    pub name: String,
    /// `male` / `female`.
    pub gender: String,
    /// Age in years.
    pub age: u16,
    /// Comma list of adjectives.
    pub traits: String,
    /// Occupation.
    pub status: String,
    /// Comma list of movie interests (with stray spaces).
    pub interest: String,
    /// `;`-separated feature codes: Watcher, Explorer, Critic, Chatter, Poster.
    pub feature: String,
}

/// One row of RecAgent's legacy `user.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyUserRow {
    /// User id.
    pub id: u32,
    /// First name (unique in the file).
    pub name: String,
    /// Age in years.
    pub age: u16,
    /// Comma list of traits.
    pub traits: String,
    /// Free-text status.
    pub status: String,
    /// Free-text observations about the person and their tastes.
    pub observations: String,
}

/// One row of RecAgent's `relationship_1000.csv` (directed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RelationshipRow {
    /// Source user id.
    pub user_1: u32,
    /// Target user id.
    pub user_2: u32,
    /// Label: friend, colleague, parent, ...
    pub relationship: String,
    /// Closeness in [0, 1].
    pub closeness: f32,
}

/// One row of RecAgent's legacy `relationship.csv` (names; value `1`; taken as undirected).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyRelationshipRow {
    /// First user's name.
    pub user_1: String,
    /// Second user's name.
    pub user_2: String,
    /// Always `1` in the shipped file.
    pub relationship: String,
}

/// A catalogue item as loaded (any schema).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    /// Item id.
    pub id: u32,
    /// Title.
    pub title: String,
    /// Genre names.
    pub genres: Vec<String>,
    /// Description (empty for MovieLens `movies.dat`).
    pub description: String,
}

/// A user as loaded (any schema). Missing fields are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// User id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Gender as written (`male`, `female`, `M`, `F`, or empty).
    pub gender: String,
    /// Age in years (MovieLens: the age-group code).
    pub age: u16,
    /// Traits.
    pub traits: String,
    /// Status / occupation.
    pub status: String,
    /// Interests (comma list; trimmed pieces).
    pub interest: String,
    /// Feature codes.
    pub features: Vec<String>,
    /// Free-text observations (legacy schema).
    pub observations: String,
}

/// A directed edge as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRecord {
    /// Source user id.
    pub from: u32,
    /// Target user id.
    pub to: u32,
    /// Label (shared by every edge of that label).
    pub label: std::sync::Arc<str>,
    /// Closeness in [0, 1] (legacy files: 1).
    pub closeness: f32,
    /// 1-based line in the file.
    pub line: u64,
}

/// One MovieLens rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingRecord {
    /// MovieLens user id.
    pub user: u32,
    /// MovieLens movie id.
    pub item: u32,
    /// Stars 1..=5.
    pub rating: u8,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Where a data file comes from: a path on disk or an embedded text.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Source<'a> {
    /// A file.
    Path(&'a Path),
    /// Embedded text with a display name.
    Text(&'a str, &'a str),
    /// Bytes in memory with a display name; a name ending in `.dat` is read as MovieLens `::`
    /// lines, like a path with that extension (the entry point of the robustness tests).
    Bytes(&'a str, &'a [u8]),
    /// A file already read: its path (the name errors give, and `.dat` as for [`Source::Path`])
    /// and its bytes, so a loader that also hashes the file reads it once.
    File(&'a Path, &'a [u8]),
}

impl Source<'_> {
    fn origin(&self) -> String {
        match self {
            Source::Path(p) | Source::File(p, _) => p.display().to_string(),
            Source::Text(name, _) | Source::Bytes(name, _) => name.to_string(),
        }
    }
    /// The content (borrowed unless it is read now); `what` says what the file is in a read
    /// error.
    fn bytes(&self, what: &'static str) -> Result<std::borrow::Cow<'_, [u8]>, DataError> {
        match self {
            Source::Path(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|source| DataError::Io {
                    origin: self.origin(),
                    what,
                    source,
                }),
            Source::Text(_, t) => Ok(t.as_bytes().into()),
            Source::Bytes(_, b) | Source::File(_, b) => Ok((*b).into()),
        }
    }
    fn is_dat(&self) -> bool {
        match self {
            Source::Path(p) | Source::File(p, _) => p.extension().is_some_and(|e| e == "dat"),
            Source::Bytes(name, _) => name.ends_with(".dat"),
            Source::Text(..) => false,
        }
    }
}

fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes)
}

fn header_of(origin: &str, rdr: &mut csv::Reader<&[u8]>) -> Result<Vec<String>, DataError> {
    let h = rdr.headers().map_err(|e| csv_error(origin, &[], e))?;
    Ok(h.iter()
        .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
        .collect())
}

/// Where a quoted field opens that never closes, as `(1-based line, 0-based field)`, if any.
///
/// The csv reader takes everything up to the end of the file into such a field (the rest of the
/// file silently becomes one value), so the loaders look for it first. Follows the reader's
/// grammar: a `"` opens a quoted field only at the start of a field; inside, `""` is a quote and
/// a lone `"` closes it; records end at `\n`, `\r` or `\r\n`.
fn unterminated_quote(bytes: &[u8]) -> Option<(u64, usize)> {
    let (mut line, mut field, mut at_start) = (1u64, 0usize, true);
    let mut open: Option<(u64, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if open.is_some() {
            match b {
                b'"' if bytes.get(i + 1) == Some(&b'"') => i += 1,
                b'"' => {
                    open = None;
                    at_start = false;
                }
                b'\n' => line += 1,
                _ => {}
            }
        } else {
            match b {
                b',' => {
                    field += 1;
                    at_start = true;
                }
                b'\n' | b'\r' => {
                    line += u64::from(b == b'\n');
                    field = 0;
                    at_start = true;
                }
                b'"' if at_start => open = Some((line, field)),
                _ => at_start = false,
            }
        }
        i += 1;
    }
    open
}

/// [`DataError::Row`] for a quoted field that is never closed (see [`unterminated_quote`]),
/// naming its line and, past the header, its column.
fn check_quotes(origin: &str, bytes: &[u8], headers: &[String]) -> Result<(), DataError> {
    // A file without a quote has no quoted field (the usual edge list): one fast search
    // instead of a walk through its bytes.
    if !bytes.contains(&b'"') {
        return Ok(());
    }
    match unterminated_quote(bytes) {
        None => Ok(()),
        Some((line, field)) => Err(DataError::Row {
            origin: origin.to_string(),
            line,
            column: (line > 1).then(|| headers.get(field).cloned()).flatten(),
            message: "unterminated quote: the `\"` that opens this field is never closed (a \
                      field holding a comma, a quote or a line break is written in double \
                      quotes, with each quote inside it doubled: `\"\"`)"
                .into(),
        }),
    }
}

fn csv_error(origin: &str, headers: &[String], e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let (column, message) = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => (
            err.field().and_then(|f| headers.get(f as usize).cloned()),
            err.kind().to_string(),
        ),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => (None, format!("found {len} fields, expected {expected_len}")),
        csv::ErrorKind::Utf8 { err, .. } => (
            headers.get(err.field()).cloned(),
            "invalid UTF-8".to_string(),
        ),
        _ => (None, e.to_string()),
    };
    DataError::Row {
        origin: origin.to_string(),
        line,
        column,
        message,
    }
}

fn rows<T: for<'de> Deserialize<'de>>(
    origin: &str,
    headers: &[String],
    rdr: &mut csv::Reader<&[u8]>,
    bytes: &[u8],
) -> Result<Vec<(u64, T)>, DataError> {
    rows_by(origin, headers, rdr, bytes, |rec, hdr| {
        rec.deserialize(Some(hdr))
    })
}

/// Line numbers of byte offsets that only grow (the records of one pass over a file): each call
/// counts the newlines since the previous one, so a pass costs one scan of the file. csv's own
/// line numbers drift on CRLF files, hence the count.
struct LineCounter<'a> {
    bytes: &'a [u8],
    at: usize,
    newlines: u64,
}

impl LineCounter<'_> {
    /// 1-based line of the record starting at `offset` (a record reported at the newline that
    /// ends the previous one starts just after it).
    fn line_at(&mut self, offset: usize) -> u64 {
        let offset = if self.bytes.get(offset) == Some(&b'\n') {
            offset + 1
        } else {
            offset
        }
        .min(self.bytes.len());
        if offset < self.at {
            self.at = 0;
            self.newlines = 0;
        }
        self.newlines += self.bytes[self.at..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.at = offset;
        self.newlines + 1
    }
}

/// The rows of a CSV body, each made by `parse` from its record and the header record, with
/// its 1-based line. A file with a header and no rows is [`DataError::Empty`].
fn rows_by<T>(
    origin: &str,
    headers: &[String],
    rdr: &mut csv::Reader<&[u8]>,
    bytes: &[u8],
    mut parse: impl FnMut(&csv::StringRecord, &csv::StringRecord) -> Result<T, csv::Error>,
) -> Result<Vec<(u64, T)>, DataError> {
    let mut lines = LineCounter {
        bytes,
        at: 0,
        newlines: 0,
    };
    // About one row a line: sized once rather than grown by copying (a million users' or ten
    // million edges' rows).
    let mut out = Vec::with_capacity(bytes.iter().filter(|&&b| b == b'\n').count());
    let mut rec = csv::StringRecord::new();
    let hdr = csv::StringRecord::from(headers.to_vec());
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec
                    .position()
                    .map_or(0, |p| lines.line_at(p.byte() as usize));
                let row: T = parse(&rec, &hdr).map_err(|e| {
                    let mut err = csv_error(origin, headers, e);
                    if let DataError::Row { line: l, .. } = &mut err {
                        *l = line;
                    }
                    err
                })?;
                out.push((line, row));
            }
            Err(e) => {
                let byte = e.position().map(csv::Position::byte);
                let mut err = csv_error(origin, headers, e);
                if let (DataError::Row { line, .. }, Some(b)) = (&mut err, byte) {
                    *line = lines.line_at(b as usize);
                }
                return Err(err);
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(out)
}

/// As [`rows`], but a file with a header and no rows is empty, not an error (a graph with no edges).
fn rows_or_none<T: for<'de> Deserialize<'de>>(
    origin: &str,
    headers: &[String],
    rdr: &mut csv::Reader<&[u8]>,
    bytes: &[u8],
) -> Result<Vec<(u64, T)>, DataError> {
    or_none(rows(origin, headers, rdr, bytes))
}

/// No rows where `rows` found a header and no rows (a graph with no edges).
fn or_none<T>(rows: Result<Vec<T>, DataError>) -> Result<Vec<T>, DataError> {
    match rows {
        Err(DataError::Empty { .. }) => Ok(Vec::new()),
        other => other,
    }
}

fn row_err(origin: &str, line: u64, column: &str, message: impl Into<String>) -> DataError {
    DataError::Row {
        origin: origin.to_string(),
        line,
        column: Some(column.to_string()),
        message: message.into(),
    }
}

fn check_unique_ids(origin: &str, ids: impl Iterator<Item = (u64, u32)>) -> Result<(), DataError> {
    let mut seen = std::collections::BTreeSet::new();
    for (line, id) in ids {
        if !seen.insert(id) {
            return Err(DataError::Duplicate {
                origin: origin.into(),
                line,
                what: "id",
                value: id.to_string(),
            });
        }
    }
    Ok(())
}

/// Decodes a MovieLens `.dat` file: UTF-8 when valid, else Latin-1 (ISO 8859-1) byte by byte.
pub fn decode_latin1_or_utf8(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

fn dat_lines(
    src: Source<'_>,
    what: &'static str,
    fields: usize,
    names: &[&str],
) -> Result<Vec<(u64, Vec<String>)>, DataError> {
    let origin = src.origin();
    let text = decode_latin1_or_utf8(src.bytes(what)?.into_owned());
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if l.trim().is_empty() {
            continue;
        }
        let parts: Vec<String> = l.split("::").map(str::to_string).collect();
        if parts.len() != fields {
            return Err(DataError::Row {
                origin,
                line,
                column: None,
                message: format!(
                    "found {} `::`-separated fields, expected {fields} ({})",
                    parts.len(),
                    names.join("::")
                ),
            });
        }
        out.push((line, parts));
    }
    if out.is_empty() {
        return Err(DataError::Empty { origin });
    }
    Ok(out)
}

fn parse_field<T: std::str::FromStr>(
    origin: &str,
    line: u64,
    col: &str,
    v: &str,
) -> Result<T, DataError>
where
    T::Err: std::fmt::Display,
{
    v.trim()
        .parse::<T>()
        .map_err(|e| row_err(origin, line, col, format!("{v:?}: {e}")))
}

const ITEMS: &str = "the item catalogue (`item_path`)";
const USERS: &str = "the user file (`user_path`)";
const EDGES: &str = "the social graph (`relationship_path`)";

/// Loads a catalogue: RecAgent `item.csv`, or MovieLens `movies.dat` (by extension).
///
/// # Errors
/// [`DataError`] for an unreadable file, a malformed row, an empty title or a duplicate id.
pub fn load_items(src: Source<'_>) -> Result<Vec<ItemRecord>, DataError> {
    let origin = src.origin();
    let split_genres = |g: &str| -> Vec<String> {
        g.split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let items: Vec<(u64, ItemRecord)> = if src.is_dat() {
        dat_lines(src, ITEMS, 3, &["MovieID", "Title", "Genres"])?
            .into_iter()
            .map(|(line, p)| {
                Ok((
                    line,
                    ItemRecord {
                        id: parse_field(&origin, line, "MovieID", &p[0])?,
                        title: p[1].trim().to_string(),
                        genres: split_genres(&p[2]),
                        description: String::new(),
                    },
                ))
            })
            .collect::<Result<_, DataError>>()?
    } else {
        let bytes = src.bytes(ITEMS)?;
        let mut rdr = reader(&bytes);
        let headers = header_of(&origin, &mut rdr)?;
        check_quotes(&origin, &bytes, &headers)?;
        if headers != ["id", "title", "genre", "description"] {
            return Err(DataError::Schema {
                origin,
                header: headers.join(","),
                expected: "id,title,genre,description",
            });
        }
        rows::<ItemRow>(&origin, &headers, &mut rdr, &bytes)?
            .into_iter()
            .map(|(line, r)| {
                (
                    line,
                    ItemRecord {
                        id: r.id,
                        title: r.title.trim().to_string(),
                        genres: split_genres(&r.genre),
                        description: r.description.trim().to_string(),
                    },
                )
            })
            .collect()
    };
    for (line, it) in &items {
        if it.title.is_empty() {
            return Err(row_err(&origin, *line, "title", "empty title"));
        }
    }
    check_unique_ids(&origin, items.iter().map(|(l, i)| (*l, i.id)))?;
    Ok(items.into_iter().map(|(_, i)| i).collect())
}

/// MovieLens-1M occupation codes (README of the data set).
const ML_OCCUPATIONS: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

/// Loads users: RecAgent `user_1000.csv` or legacy `user.csv` (by header), or MovieLens `users.dat`.
///
/// # Errors
/// [`DataError`] for an unreadable file, an unknown header, a malformed row or a duplicate id.
pub fn load_users(src: Source<'_>) -> Result<Vec<UserRecord>, DataError> {
    let origin = src.origin();
    let split = |s: &str, sep: char| -> Vec<String> {
        s.split(sep)
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let users: Vec<(u64, UserRecord)> = if src.is_dat() {
        dat_lines(
            src,
            USERS,
            5,
            &["UserID", "Gender", "Age", "Occupation", "Zip-code"],
        )?
        .into_iter()
        .map(|(line, p)| {
            let id: u32 = parse_field(&origin, line, "UserID", &p[0])?;
            let occ: usize = parse_field(&origin, line, "Occupation", &p[3])?;
            let status = ML_OCCUPATIONS.get(occ).ok_or_else(|| {
                row_err(
                    &origin,
                    line,
                    "Occupation",
                    format!("{occ} is not a code in 0..=20"),
                )
            })?;
            Ok((
                line,
                UserRecord {
                    id,
                    name: format!("User {id}"),
                    gender: p[1].trim().to_string(),
                    age: parse_field(&origin, line, "Age", &p[2])?,
                    traits: String::new(),
                    status: status.to_string(),
                    interest: String::new(),
                    features: Vec::new(),
                    observations: String::new(),
                },
            ))
        })
        .collect::<Result<_, DataError>>()?
    } else {
        let bytes = src.bytes(USERS)?;
        let mut rdr = reader(&bytes);
        let headers = header_of(&origin, &mut rdr)?;
        check_quotes(&origin, &bytes, &headers)?;
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        match h.as_slice() {
            ["id", "name", "gender", "age", "traits", "status", "interest", "feature"] => {
                // Built from the record's fields directly (one string per field, not two); a
                // number that does not parse so goes through serde, which accepts what csv
                // accepts and words the error as for every other file.
                let record = |id: u32, age: u16, f: [&str; 6]| UserRecord {
                    id,
                    name: f[0].trim().to_string(),
                    gender: f[1].trim().to_string(),
                    age,
                    traits: f[2].trim().to_string(),
                    status: f[3].trim().to_string(),
                    interest: split(f[4], ',').join(", "),
                    features: split(f[5], ';'),
                    observations: String::new(),
                };
                rows_by(&origin, &headers, &mut rdr, &bytes, |rec, hdr| {
                    let f = |i| rec.get(i).unwrap_or_default();
                    let text = [f(1), f(2), f(4), f(5), f(6), f(7)];
                    match (f(0).parse(), f(3).parse()) {
                        (Ok(id), Ok(age)) => Ok(record(id, age, text)),
                        _ => {
                            let r: UserRow = rec.deserialize(Some(hdr))?;
                            Ok(record(r.id, r.age, text))
                        }
                    }
                })?
            }
            ["id", "name", "age", "traits", "status", "observations"] => rows::<LegacyUserRow>(&origin, &headers, &mut rdr, &bytes)?
                .into_iter()
                .map(|(line, r)| {
                    (line, UserRecord {
                        id: r.id,
                        name: r.name.trim().to_string(),
                        gender: String::new(),
                        age: r.age,
                        traits: r.traits.trim().to_string(),
                        status: r.status.trim().to_string(),
                        interest: String::new(),
                        features: Vec::new(),
                        observations: r.observations.trim().to_string(),
                    })
                })
                .collect(),
            _ => {
                return Err(DataError::Schema {
                    origin,
                    header: headers.join(","),
                    expected: "id,name,gender,age,traits,status,interest,feature or id,name,age,traits,status,observations",
                })
            }
        }
    };
    for (line, u) in &users {
        if u.name.is_empty() {
            return Err(row_err(&origin, *line, "name", "empty name"));
        }
        if let Some(bad) = u
            .features
            .iter()
            .find(|f| crate::domain::FeatureSet::code(f).is_none())
        {
            return Err(row_err(
                &origin,
                *line,
                "feature",
                format!("unknown feature code {bad:?}: expected Watcher, Explorer, Critic, Chatter or Poster"),
            ));
        }
    }
    check_unique_ids(&origin, users.iter().map(|(l, u)| (*l, u.id)))?;
    Ok(users.into_iter().map(|(_, u)| u).collect())
}

/// Loads directed edges and checks that both ends are users of `users`.
///
/// The id schema is read as is (directed rows). The legacy name schema is resolved by name
/// (names must be unique there) and each row becomes two directed edges labelled `friend`.
///
/// # Errors
/// [`DataError::UnknownUser`] for an end that is not in `users`; [`DataError::Row`] for a
/// malformed row, a self-loop or a closeness outside [0, 1].
pub fn load_relationships(
    src: Source<'_>,
    users: &[UserRecord],
) -> Result<Vec<EdgeRecord>, DataError> {
    read_relationships(src).resolve(users)
}

/// A relationship file's rows as parsed, before they are checked against the users: what
/// [`read_relationships`] returns, so a loader can parse the edges while the users are still
/// being read (the two largest files of a big population, on two cores).
pub struct RelationshipRows {
    origin: String,
    rows: Result<RowsBySchema, DataError>,
}

enum RowsBySchema {
    /// The rows, with their labels as indexes into the list of distinct labels.
    Ids(Vec<(u64, EdgeRow)>, Vec<std::sync::Arc<str>>),
    // A row error of the name schema is reported after the duplicate-name check, as before the
    // split.
    Names(Result<Vec<(u64, LegacyRelationshipRow)>, DataError>),
}

/// One row of the id schema as parsed: the label is an index into the file's distinct labels
/// (few: friend, colleague, ...), so ten million rows do not make ten million strings.
struct EdgeRow {
    user_1: u32,
    user_2: u32,
    label: u32,
    closeness: f32,
}

/// `rec` as an [`EdgeRow`], its label (trimmed) interned in `labels`. Fields are parsed
/// directly; a field that does not parse so goes through serde, which parses what csv accepts
/// (hex ids) and words the error as for every other file.
fn edge_row(
    rec: &csv::StringRecord,
    hdr: &csv::StringRecord,
    labels: &mut Vec<std::sync::Arc<str>>,
) -> Result<EdgeRow, csv::Error> {
    let fast = || -> Option<(u32, u32, &str, f32)> {
        Some((
            rec.get(0)?.parse().ok()?,
            rec.get(1)?.parse().ok()?,
            rec.get(2)?,
            rec.get(3)?.parse().ok()?,
        ))
    };
    let serde_row: RelationshipRow;
    let (user_1, user_2, label, closeness) = match fast() {
        Some(row) => row,
        None => {
            serde_row = rec.deserialize(Some(hdr))?;
            let r = &serde_row;
            (r.user_1, r.user_2, r.relationship.as_str(), r.closeness)
        }
    };
    Ok(EdgeRow {
        user_1,
        user_2,
        label: intern(labels, label.trim()),
        closeness,
    })
}

/// Index of `label` in `labels`, appended when new.
fn intern(labels: &mut Vec<std::sync::Arc<str>>, label: &str) -> u32 {
    match labels.iter().position(|l| &**l == label) {
        Some(p) => p as u32,
        None => {
            labels.push(label.into());
            (labels.len() - 1) as u32
        }
    }
}

/// Parses a relationship file (either schema) without looking at the users; finish with
/// [`RelationshipRows::resolve`]. Errors (unreadable file, unknown header, malformed row) are
/// reported by `resolve`, in the order [`load_relationships`] reports them.
pub fn read_relationships(src: Source<'_>) -> RelationshipRows {
    let origin = src.origin();
    let rows = (|| {
        let bytes = src.bytes(EDGES)?;
        let mut rdr = reader(&bytes);
        let headers = header_of(&origin, &mut rdr)?;
        check_quotes(&origin, &bytes, &headers)?;
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        match h.as_slice() {
            ["user_1", "user_2", "relationship", "closeness"] => {
                let mut labels: Vec<std::sync::Arc<str>> = Vec::new();
                let rows = or_none(rows_by(&origin, &headers, &mut rdr, &bytes, |rec, hdr| {
                    edge_row(rec, hdr, &mut labels)
                }))?;
                Ok(RowsBySchema::Ids(rows, labels))
            }
            ["user_1", "user_2", "relationship"] => {
                Ok(RowsBySchema::Names(rows_or_none::<LegacyRelationshipRow>(
                    &origin, &headers, &mut rdr, &bytes,
                )))
            }
            _ => Err(DataError::Schema {
                origin: origin.clone(),
                header: headers.join(","),
                expected: "user_1,user_2,relationship,closeness or user_1,user_2,relationship",
            }),
        }
    })();
    RelationshipRows { origin, rows }
}

/// What is wrong with edge row `r` at `line` (an end that is not a user of `ids`, sorted; a
/// self-loop; a closeness outside [0, 1]), if anything.
fn check_edge(origin: &str, ids: &[u32], line: u64, r: &EdgeRow) -> Result<(), DataError> {
    for u in [r.user_1, r.user_2] {
        if crate::ids::sorted_position(ids, u).is_none() {
            return Err(DataError::UnknownUser {
                origin: origin.to_string(),
                line,
                user: u.to_string(),
            });
        }
    }
    if r.user_1 == r.user_2 {
        return Err(row_err(origin, line, "user_2", "self-loop"));
    }
    if !(0.0..=1.0).contains(&r.closeness) {
        return Err(row_err(
            origin,
            line,
            "closeness",
            format!("{} is outside [0, 1]", r.closeness),
        ));
    }
    Ok(())
}

impl RelationshipRows {
    /// The directed edges, each end checked against `users`.
    ///
    /// # Errors
    /// As [`load_relationships`].
    pub fn resolve(self, users: &[UserRecord]) -> Result<Vec<EdgeRecord>, DataError> {
        let origin = self.origin;
        let mut out = Vec::new();
        match self.rows? {
            RowsBySchema::Ids(rows, labels) => {
                let mut ids: Vec<u32> = users.iter().map(|u| u.id).collect();
                ids.sort_unstable();
                // Checked on the rayon pool (ten million edges at a million agents); the error
                // is the first bad row's, in file order.
                use rayon::prelude::*;
                let check = |&(line, ref r): &(u64, EdgeRow)| check_edge(&origin, &ids, line, r);
                if let Some(at) = rows.par_iter().position_first(|row| check(row).is_err()) {
                    check(&rows[at])?;
                }
                // One thread: the records share a few labels' reference counts, which two
                // threads would fight over.
                out = rows
                    .iter()
                    .map(|&(line, ref r)| EdgeRecord {
                        from: r.user_1,
                        to: r.user_2,
                        label: labels[r.label as usize].clone(),
                        closeness: r.closeness,
                        line,
                    })
                    .collect();
            }
            RowsBySchema::Names(rows) => {
                let mut by_name = std::collections::BTreeMap::new();
                for u in users {
                    if by_name.insert(u.name.as_str(), u.id).is_some() {
                        return Err(DataError::Duplicate {
                            origin,
                            line: 0,
                            what: "name (a name-keyed relationship file needs unique user names)",
                            value: u.name.clone(),
                        });
                    }
                }
                for (line, r) in rows? {
                    let mut ends = [0u32; 2];
                    for (k, name) in [r.user_1.trim(), r.user_2.trim()].into_iter().enumerate() {
                        ends[k] = *by_name.get(name).ok_or_else(|| DataError::UnknownUser {
                            origin: origin.clone(),
                            line,
                            user: name.to_string(),
                        })?;
                    }
                    if ends[0] == ends[1] {
                        return Err(row_err(&origin, line, "user_2", "self-loop"));
                    }
                    for (a, b) in [(ends[0], ends[1]), (ends[1], ends[0])] {
                        out.push(EdgeRecord {
                            from: a,
                            to: b,
                            label: "friend".into(),
                            closeness: 1.0,
                            line,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Loads MovieLens `ratings.dat` (`UserID::MovieID::Rating::Timestamp`).
///
/// # Errors
/// [`DataError::Row`] for a malformed line or a rating outside 1..=5.
pub fn load_ml_ratings(src: Source<'_>) -> Result<Vec<RatingRecord>, DataError> {
    let origin = src.origin();
    dat_lines(
        src,
        "the MovieLens ratings file",
        4,
        &["UserID", "MovieID", "Rating", "Timestamp"],
    )?
    .into_iter()
    .map(|(line, p)| {
        let rating: u8 = parse_field(&origin, line, "Rating", &p[2])?;
        if !(1..=5).contains(&rating) {
            return Err(row_err(
                &origin,
                line,
                "Rating",
                format!("{rating} is outside 1..=5"),
            ));
        }
        Ok(RatingRecord {
            user: parse_field(&origin, line, "UserID", &p[0])?,
            item: parse_field(&origin, line, "MovieID", &p[1])?,
            rating,
            timestamp: parse_field(&origin, line, "Timestamp", &p[3])?,
        })
    })
    .collect()
}

/// Reads a whole reader into a string (helper for embedded sources).
pub fn read_all(mut r: impl Read) -> std::io::Result<String> {
    let mut s = String::new();
    r.read_to_string(&mut s)?;
    Ok(s)
}

/// RecAgent's item file from `../shared` when present, else the bundled demo's (tests only).
#[cfg(test)]
pub(crate) fn shared_or_demo_items_path() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/data/recagent/item.csv");
    if shared.exists() {
        shared
    } else {
        root.join("data/item.csv")
    }
}

#[cfg(test)]
mod tests {
    use super::unterminated_quote;

    /// By hand, `(line, field)` of the quote that never closes: a quote opens a field only at
    /// its start; `""` inside is a quote; CRLF and a lone CR end records, only `\n` counts lines.
    #[test]
    fn unterminated_quote_follows_the_csv_grammar() {
        assert_eq!(unterminated_quote(b"a,b\n1,\"x\n2,y\n"), Some((2, 1)));
        assert_eq!(unterminated_quote(b"a,b\n1,\"x\ny\",2\n"), None);
        assert_eq!(unterminated_quote(b"a,b\n1,\"say \"\"hi\"\"\"\n"), None);
        assert_eq!(
            unterminated_quote(b"a,b\n1,\"say \"\"hi\"\"\n"),
            Some((2, 1))
        );
        assert_eq!(unterminated_quote(b"a,b\n1,5\"10\n"), None);
        assert_eq!(unterminated_quote(b"a,b\r\n1,2\r\n\"3,4\r\n"), Some((3, 0)));
        assert_eq!(unterminated_quote(b"a,b\r\"1,2"), Some((1, 0)));
        assert_eq!(unterminated_quote(b"\""), Some((1, 0)));
        assert_eq!(unterminated_quote(b""), None);
    }
}
