//! Agent4Rec's real MovieLens-1M users (`shared/data/agent4rec/datasets/ml-1m`, its SOURCE.md):
//! the item table `simulation/movie_detail.csv` (remapped ids 0..=3291), the implicit splits
//! `cf_data/{train,valid,test}.txt` (`user item item ...`), the real 1-5 ratings and demographics
//! of `raw_data/agg_top_25.csv`, and the tiers of `simulation/user_statistic.csv`.
//!
//! `agg_top_25.csv` names its items by title only. Titles are mapped to ids through
//! `movie_detail.csv`, whose titles are unique and written in the same encoding (the 50 titles
//! with a replacement character are double-encoded in both files, so they match byte for byte).
//! A title that matches no row is counted in [`RealData::unmapped_ratings`], never guessed. On
//! the shipped data all 22,924 ratings map, and every one is of an item of the user's *train*
//! split: the data holds no real rating of a valid or test item (ML-1M's `ratings.dat` is not in
//! `shared/`), which is why the rating protocol holds ratings out of the training ratings
//! ([`super::protocol`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::io::data::ItemRecord;

/// Reading the real data failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: {source} (the Agent4Rec data: see shared/data/agent4rec/SOURCE.md)")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line or row is malformed.
    #[error("{path}, line {line}: {why}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line (CSV: the record's line).
        line: u64,
        /// What is wrong.
        why: String,
    },
}

/// Who a real user is: demographics (`agg_top_25.csv`) and tiers (`user_statistic.csv`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    /// `Male` / `Female` as written, or empty.
    pub gender: String,
    /// ML-1M's age bucket as written (`Under 18`, `25-34`, `56+`), or empty.
    pub age: String,
    /// Occupation as written, or empty.
    pub occupation: String,
    /// Activity, diversity and conformity tiers, each 1..=3.
    pub tiers: Option<[u8; 3]>,
}

/// One real user, everything the files say about them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RealUser {
    /// Remapped user id (0-based, the splits' first column).
    pub id: u32,
    /// Demographics and tiers.
    pub person: Person,
    /// Train split items, in file order.
    pub train: Vec<u32>,
    /// Valid split items, in file order.
    pub valid: Vec<u32>,
    /// Test split items, in file order.
    pub test: Vec<u32>,
    /// Real 1..=5 ratings from `agg_top_25.csv`, mapped to item ids, in file order.
    pub ratings: Vec<(u32, u8)>,
}

/// The real data set.
#[derive(Clone, Debug, Default)]
pub struct RealData {
    /// Items of `movie_detail.csv` (ids `0..items.len()`), the summary as description.
    pub items: Vec<ItemRecord>,
    /// Users by id, ascending (those that appear in any file).
    pub users: Vec<RealUser>,
    /// Ratings of `agg_top_25.csv` mapped to an item id.
    pub mapped_ratings: usize,
    /// Ratings whose title matches no item (dropped).
    pub unmapped_ratings: usize,
}

/// The `ml-1m` folder under `dir`: `dir` itself when it holds `cf_data/`, else
/// `dir/datasets/ml-1m` (the layout of `shared/data/agent4rec`).
pub fn ml1m_dir(dir: &Path) -> PathBuf {
    if dir.join("cf_data").is_dir() {
        dir.to_path_buf()
    } else {
        dir.join("datasets/ml-1m")
    }
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A CSV reader's error, at the line it names.
fn csv_err(path: &Path, e: &csv::Error) -> DataError {
    let line = match e.kind() {
        csv::ErrorKind::UnequalLengths { pos: Some(p), .. } => p.line(),
        _ => e.position().map_or(0, |p| p.line()),
    };
    let why = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => e.to_string(),
    };
    row_err(path, line, why)
}

fn row_err(path: &Path, line: u64, why: impl Into<String>) -> DataError {
    DataError::Row {
        path: path.display().to_string(),
        line,
        why: why.into(),
    }
}

/// Loads the data set from `dir` ([`ml1m_dir`]).
///
/// # Errors
/// [`DataError`] for a missing file, an empty item table, a split line that is not integers, an
/// item id past the item table, a CSV row with missing columns, a rating outside 1..=5, lists of
/// different lengths in one `agg_top_25.csv` row, an unknown age bucket, a tier outside 1..=3,
/// or a user with two rows in one file.
pub fn load(dir: &Path) -> Result<RealData, DataError> {
    let root = ml1m_dir(dir);
    let items_path = root.join("simulation/movie_detail.csv");
    let items = load_items(&items_path)?;
    if items.is_empty() {
        return Err(row_err(&items_path, 1, "no items"));
    }
    let n_items = items.len() as u32;
    let mut users: BTreeMap<u32, RealUser> = BTreeMap::new();
    for (file, which) in [("train.txt", 0), ("valid.txt", 1), ("test.txt", 2)] {
        let path = root.join("cf_data").join(file);
        for (u, list) in load_split(&path, n_items)? {
            let user = users.entry(u).or_insert_with(|| RealUser {
                id: u,
                ..RealUser::default()
            });
            match which {
                0 => user.train = list,
                1 => user.valid = list,
                _ => user.test = list,
            }
        }
    }
    let by_title: BTreeMap<&str, u32> = items.iter().map(|i| (i.title.as_str(), i.id)).collect();
    let (mut mapped, mut unmapped) = (0, 0);
    let mut rated = std::collections::BTreeSet::new();
    let agg = root.join("raw_data/agg_top_25.csv");
    let text = read(&agg)?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(&agg, &e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let col = |i: usize| rec.get(i).unwrap_or("").trim();
        if rec.len() < 7 {
            return Err(row_err(&agg, line, "expected 8 columns (user_id, movie_title_list, movie_genres_list, rating_list, gender, age, occupation, zip-code)"));
        }
        let u: u32 = col(0).parse().map_err(|_| {
            row_err(
                &agg,
                line,
                format!("user_id {:?} is not a whole number", col(0)),
            )
        })?;
        let titles: Vec<&str> = col(1).split("; ").collect();
        let ratings: Vec<&str> = col(3).split("; ").collect();
        if titles.len() != ratings.len() {
            return Err(row_err(
                &agg,
                line,
                format!("{} titles but {} ratings", titles.len(), ratings.len()),
            ));
        }
        if !rated.insert(u) {
            return Err(row_err(&agg, line, format!("user_id {u} has a second row")));
        }
        if !col(5).is_empty() && age_years(col(5)).is_none() {
            return Err(row_err(
                &agg,
                line,
                format!(
                    "age {:?} is not an ML-1M age bucket (Under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+)",
                    col(5)
                ),
            ));
        }
        let user = users.entry(u).or_insert_with(|| RealUser {
            id: u,
            ..RealUser::default()
        });
        user.person.gender = col(4).to_string();
        user.person.age = col(5).to_string();
        user.person.occupation = col(6).to_string();
        for (t, r) in titles.iter().zip(&ratings) {
            let r: u8 = r
                .trim()
                .parse()
                .ok()
                .filter(|r| (1..=5).contains(r))
                .ok_or_else(|| row_err(&agg, line, format!("rating {r:?} is not 1 to 5")))?;
            match by_title.get(t.trim()) {
                Some(&id) => {
                    user.ratings.push((id, r));
                    mapped += 1;
                }
                None => unmapped += 1,
            }
        }
    }
    let stats = root.join("simulation/user_statistic.csv");
    let text = read(&stats)?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(&stats, &e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let num = |i: usize| rec.get(i).and_then(|v| v.trim().parse::<u32>().ok());
        let (Some(u), Some(a), Some(d), Some(c)) = (num(0), num(1), num(2), num(3)) else {
            return Err(row_err(
                &stats,
                line,
                "expected user_id,activity,diversity,conformity as whole numbers",
            ));
        };
        let mut tiers = [0u8; 3];
        for (slot, (name, t)) in
            tiers
                .iter_mut()
                .zip([("activity", a), ("diversity", d), ("conformity", c)])
        {
            *slot = u8::try_from(t)
                .ok()
                .filter(|t| (1..=3).contains(t))
                .ok_or_else(|| row_err(&stats, line, format!("{name} {t} is not a tier 1 to 3")))?;
        }
        let Some(user) = users.get_mut(&u) else {
            return Err(row_err(
                &stats,
                line,
                format!("user_id {u} is in no split and has no ratings"),
            ));
        };
        if user.person.tiers.replace(tiers).is_some() {
            return Err(row_err(
                &stats,
                line,
                format!("user_id {u} has a second row"),
            ));
        }
    }
    Ok(RealData {
        items,
        users: users.into_values().collect(),
        mapped_ratings: mapped,
        unmapped_ratings: unmapped,
    })
}

fn load_items(path: &Path) -> Result<Vec<ItemRecord>, DataError> {
    let text = read(path)?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut items = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(path, &e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let id: u32 = rec
            .get(0)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| row_err(path, line, "movie_id is not a whole number"))?;
        if id as usize != items.len() {
            return Err(row_err(
                path,
                line,
                format!("movie_id {id}: ids must run 0, 1, 2, ... in order"),
            ));
        }
        items.push(ItemRecord {
            id,
            title: rec.get(1).unwrap_or("").to_string(),
            genres: rec
                .get(2)
                .unwrap_or("")
                .split('|')
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
            description: rec.get(4).unwrap_or("").to_string(),
        });
    }
    Ok(items)
}

/// A split file: one `user item item ...` line per user.
fn load_split(path: &Path, n_items: u32) -> Result<Vec<(u32, Vec<u32>)>, DataError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let line = n as u64 + 1;
        let mut parts = l.split_whitespace();
        let Some(u) = parts.next() else { continue };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| row_err(path, line, format!("{s:?} is not a whole number")))
        };
        let u = num(u)?;
        let mut list = Vec::new();
        for s in parts {
            let i = num(s)?;
            if i >= n_items {
                return Err(row_err(
                    path,
                    line,
                    format!("item {i} is past the item table ({n_items} items)"),
                ));
            }
            list.push(i);
        }
        out.push((u, list));
    }
    Ok(out)
}

/// ML-1M's age bucket as a representative age in years (the bucket's middle; `56+` as 60),
/// or `None` for an unknown label.
pub fn age_years(bucket: &str) -> Option<u16> {
    Some(match bucket.trim() {
        "Under 18" => 16,
        "18-24" => 21,
        "25-34" => 30,
        "35-44" => 40,
        "45-49" => 47,
        "50-55" => 53,
        "56+" => 60,
        _ => return None,
    })
}
