//! Reading a run's output folder for a report: `metrics.csv`, `interaction.csv`,
//! `manifest.json`, and the catalogue (titles, genres) that the manifest's configuration
//! names, loaded through the library as the run loaded it.

use std::path::{Path, PathBuf};

use super::ReportError;
use crate::analysis::MetricsTable;
use crate::catalog::Catalog;
use crate::config::SimConfig;
use crate::sim::DataSet;

/// Reads `<dir>/metrics.csv`.
///
/// # Errors
/// [`ReportError::NotARun`] when the folder has none, [`ReportError::Metrics`] when it is
/// malformed.
pub(crate) fn read_metrics(dir: &Path) -> Result<MetricsTable, ReportError> {
    if dir.is_file() {
        return Err(ReportError::Malformed {
            path: dir.to_path_buf(),
            line: None,
            message: "is a file: give the run's folder (the one holding metrics.csv)".into(),
        });
    }
    if !dir.is_dir() {
        return Err(ReportError::NoSuchDir(dir.to_path_buf()));
    }
    let path = dir.join("metrics.csv");
    if !path.is_file() {
        return Err(ReportError::NotARun {
            dir: dir.to_path_buf(),
            file: "metrics.csv",
        });
    }
    Ok(MetricsTable::read(&path)?)
}

/// The error and its sources, `: `-separated (the data loaders put the I/O cause in the
/// source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The configuration essentials of a run, from its manifest. Absent fields are `None` (a
/// manifest of another version).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    /// Root seed.
    pub seed: Option<u64>,
    /// Rounds completed.
    pub rounds_completed: Option<u64>,
    /// Rounds planned (`round`).
    pub rounds_planned: Option<u64>,
    /// Agents (`data.agents`).
    pub agents: Option<u64>,
    /// Catalogue items (`data.items`).
    pub items: Option<u64>,
    /// Recommender model name.
    pub recommender: Option<String>,
    /// Behaviour backend (`offline`, `llm`, `replay`).
    pub backend: Option<String>,
    /// `finished`, `running`, `interrupted after round N`.
    pub status: Option<String>,
    /// recagent version that wrote the run.
    pub version: Option<String>,
    /// `page_size`.
    pub page_size: Option<u64>,
    /// `rec_random_k`.
    pub rec_random_k: Option<i64>,
    /// `social_random_k`.
    pub social_random_k: Option<i64>,
    /// `item_path` as configured.
    pub item_path: Option<String>,
}

impl RunInfo {
    fn from_manifest(m: &serde_json::Value) -> Self {
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let cfg = &m["config"];
        Self {
            seed: m["seed"].as_u64().or_else(|| cfg["seed"].as_u64()),
            rounds_completed: m["rounds_completed"].as_u64(),
            rounds_planned: m["rounds_planned"]
                .as_u64()
                .or_else(|| cfg["round"].as_u64()),
            agents: m["data"]["agents"].as_u64(),
            items: m["data"]["items"].as_u64(),
            recommender: s(&m["recommender"]).or_else(|| s(&cfg["rec_model"])),
            backend: s(&m["backend"]).or_else(|| s(&cfg["backend"])),
            status: s(&m["status"]),
            version: s(&m["version"]),
            page_size: cfg["page_size"].as_u64(),
            rec_random_k: cfg["rec_random_k"].as_i64(),
            social_random_k: cfg["social_random_k"].as_i64(),
            item_path: s(&cfg["item_path"]),
        }
    }
}

/// One row of `interaction.csv`: an item shown to a user in a round, watched or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interaction {
    /// User id.
    pub user: u32,
    /// Item id.
    pub item: u32,
    /// Label 1: watched (else shown only).
    pub watched: bool,
    /// Stars 1..=5, when rated.
    pub rating: Option<u8>,
    /// 1-based round.
    pub round: u32,
}

/// Reads `interaction.csv` (`user_id,item_id,label,rating,round,timestamp`; columns found by
/// name, so their order may differ).
///
/// # Errors
/// [`ReportError::Read`] for an unreadable file, [`ReportError::Malformed`] naming the line
/// and column of a bad cell or a missing column.
pub fn read_interactions(path: &Path) -> Result<Vec<Interaction>, ReportError> {
    let bad = |line: Option<u64>, message: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::new(file));
    let header = rdr
        .headers()
        .map_err(|e| bad(Some(1), e.to_string()))?
        .clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| {
                bad(
                    Some(1),
                    format!(
                        "no `{name}` column (header: {:?}; expected user_id,item_id,label,rating,round,timestamp)",
                        header.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })
    };
    let (cu, ci, cl, cr, cround) = (
        col("user_id")?,
        col("item_id")?,
        col("label")?,
        col("rating")?,
        col("round")?,
    );
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let more = rdr.read_record(&mut rec).map_err(|e| {
            let line = e.position().map(csv::Position::line);
            bad(line, e.to_string())
        })?;
        if !more {
            break;
        }
        let line = rec.position().map(csv::Position::line);
        let field = |c: usize, name: &str| -> Result<&str, ReportError> {
            rec.get(c)
                .map(str::trim)
                .ok_or_else(|| bad(line, format!("column `{name}` missing")))
        };
        let int = |c: usize, name: &str| -> Result<u32, ReportError> {
            let v = field(c, name)?;
            v.parse::<u32>().map_err(|_| {
                bad(
                    line,
                    format!("column `{name}`: {v:?} is not a non-negative integer"),
                )
            })
        };
        let label = field(cl, "label")?;
        let watched = match label {
            "1" => true,
            "0" => false,
            other => {
                return Err(bad(
                    line,
                    format!("column `label`: {other:?} is not 0 (shown) or 1 (watched)"),
                ))
            }
        };
        let r = field(cr, "rating")?;
        let rating = if r.is_empty() {
            None
        } else {
            match r.parse::<u8>() {
                Ok(v @ 1..=5) => Some(v),
                _ => {
                    return Err(bad(
                        line,
                        format!("column `rating`: {r:?} is not a rating 1-5 (or empty)"),
                    ))
                }
            }
        };
        out.push(Interaction {
            user: int(cu, "user_id")?,
            item: int(ci, "item_id")?,
            watched,
            rating,
            round: int(cround, "round")?,
        });
    }
    Ok(out)
}

/// Everything a run report reads from a run folder.
#[derive(Clone, Debug)]
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// Configuration essentials from the manifest.
    pub info: RunInfo,
    /// `metrics.csv`.
    pub metrics: MetricsTable,
    /// `interaction.csv`, in file order.
    pub interactions: Vec<Interaction>,
    /// The catalogue the run used.
    pub catalog: Catalog,
}

impl RunData {
    /// Reads a run folder: `metrics.csv`, `manifest.json`, `interaction.csv` (in the folder,
    /// else where the manifest's `outputs.interactions` says), and the catalogue from the
    /// manifest's configuration (`item_path` resolved against the recorded `base_dir`, as the
    /// run did: a relative `base_dir` is relative to the current directory).
    ///
    /// # Errors
    /// [`ReportError::NoSuchDir`], [`ReportError::NotARun`] naming the first missing file,
    /// [`ReportError::Metrics`] / [`ReportError::Malformed`] for bad content,
    /// [`ReportError::Catalog`] when the catalogue cannot be loaded.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let metrics = read_metrics(dir)?;
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.is_file() {
            return Err(ReportError::NotARun {
                dir: dir.to_path_buf(),
                file: "manifest.json",
            });
        }
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| ReportError::Read {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ReportError::Malformed {
                path: manifest_path.clone(),
                line: Some(e.line() as u64),
                message: format!("not valid JSON: {e}"),
            })?;
        if !manifest["config"].is_object() {
            return Err(ReportError::Malformed {
                path: manifest_path,
                line: None,
                message: "no `config` object (is it a recagent manifest?)".into(),
            });
        }
        check_metrics(
            &metrics,
            manifest["rounds_completed"].as_u64(),
            &dir.join("metrics.csv"),
        )?;
        let interactions_path = Self::interactions_path(dir, &manifest)?;
        let interactions = read_interactions(&interactions_path)?;
        let catalog = Self::catalog(&manifest, &manifest_path)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            info: RunInfo::from_manifest(&manifest),
            metrics,
            interactions,
            catalog,
        })
    }

    fn interactions_path(dir: &Path, manifest: &serde_json::Value) -> Result<PathBuf, ReportError> {
        let beside = dir.join("interaction.csv");
        if beside.is_file() {
            return Ok(beside);
        }
        // `--interaction-file` or `interaction_path` put it elsewhere; the manifest says where.
        if let Some(p) = manifest["outputs"]["interactions"].as_str() {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(ReportError::NotARun {
            dir: dir.to_path_buf(),
            file: "interaction.csv",
        })
    }

    fn catalog(manifest: &serde_json::Value, manifest_path: &Path) -> Result<Catalog, ReportError> {
        let err = |message: String| ReportError::Catalog {
            manifest: manifest_path.to_path_buf(),
            message,
        };
        let mut cfg = SimConfig::from_json_unvalidated(manifest["config"].clone(), "manifest")
            .map_err(|e| err(chain(&e)))?;
        if let Some(b) = manifest["base_dir"].as_str() {
            cfg.base_dir = PathBuf::from(b);
        }
        DataSet::load_catalog(&cfg).map_err(|e| {
            let mut m = chain(&e);
            if !cfg.is_embedded() && cfg.base_dir.is_relative() {
                m.push_str(&format!(
                    " (the run's base_dir `{}` is relative: run the report from the folder the run was started in)",
                    cfg.base_dir.display()
                ));
            }
            err(m)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactions_parse_and_bad_cells_name_line_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("interaction.csv");
        std::fs::write(
            &p,
            "user_id,item_id,label,rating,round,timestamp\n1,7,0,,1,t\n1,8,1,4,2,t\n",
        )
        .unwrap();
        let rows = read_interactions(&p).unwrap();
        assert_eq!(
            rows,
            vec![
                Interaction {
                    user: 1,
                    item: 7,
                    watched: false,
                    rating: None,
                    round: 1
                },
                Interaction {
                    user: 1,
                    item: 8,
                    watched: true,
                    rating: Some(4),
                    round: 2
                },
            ]
        );
        std::fs::write(
            &p,
            "user_id,item_id,label,rating,round,timestamp\n1,7,0,,1,t\n1,8,1,6,2,t\n",
        )
        .unwrap();
        assert_eq!(
            read_interactions(&p).unwrap_err().to_string(),
            format!(
                "{}: line 3: column `rating`: \"6\" is not a rating 1-5 (or empty)",
                p.display()
            )
        );
        std::fs::write(&p, "user,item\n1,2\n").unwrap();
        let e = read_interactions(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: no `user_id` column"), "{e}");
    }
}

/// Columns whose values have a fixed range (README, "Metrics"): a value outside it means the
/// file was edited or written by something else, and every plot of it would mislead.
const RANGES: &[(&str, f64, f64)] = &[
    ("view_ratio", 0.0, 1.0),
    ("mean_rating", 1.0, 5.0),
    ("coverage", 0.0, 1.0),
    ("gini_exposure", 0.0, 1.0),
    ("gini_watches", 0.0, 1.0),
    ("top10_exposure_share", 0.0, 1.0),
    ("ild", 0.0, 1.0),
    ("entropy_shown", 0.0, 32.0),
    ("entropy_watched", 0.0, 32.0),
    ("conformity", -4.0, 4.0),
];

/// Checks a run's `metrics.csv` against what the report relies on: a `round` column, the rows are rounds 1..=n in order with n the manifest's `rounds_completed`, and the
/// bounded metrics lie in their ranges.
///
/// # Errors
/// [`ReportError::Malformed`] naming the file, the line where there is one, and what is wrong.
pub(crate) fn check_metrics(
    t: &MetricsTable,
    rounds_completed: Option<u64>,
    path: &Path,
) -> Result<(), ReportError> {
    let bad = |line: Option<u64>, message: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    // Other columns may be absent (a file of an older version shows them as "–"); the rounds
    // are what every plot is drawn against.
    if t.column_index("round").is_none() {
        return Err(bad(
            Some(1),
            "no column `round` (is it recagent's metrics.csv?)".into(),
        ));
    }
    let rounds = t.column("round").unwrap_or_default();
    for (i, r) in rounds.iter().enumerate() {
        if *r != Some(i as f64 + 1.0) {
            return Err(bad(
                Some(i as u64 + 2),
                format!(
                    "round {} where round {} was expected: rows are missing or out of order",
                    r.map_or("(empty)".to_string(), |r| r.to_string()),
                    i + 1
                ),
            ));
        }
    }
    if let Some(n) = rounds_completed {
        if rounds.len() as u64 != n {
            return Err(bad(
                None,
                format!(
                    "{} rows, but the manifest says {n} rounds were completed: the file was truncated or edited",
                    rounds.len()
                ),
            ));
        }
    }
    for &(name, lo, hi) in RANGES {
        let Some(vals) = t.column(name) else { continue };
        for (i, v) in vals.iter().enumerate() {
            if let Some(v) = *v {
                if !(lo..=hi).contains(&v) {
                    return Err(bad(
                        Some(i as u64 + 2),
                        format!("column `{name}`: {v} is outside {lo}..={hi}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod check_tests {
    use super::*;

    fn table(extra_rows: &str) -> MetricsTable {
        let header = std::iter::once("round")
            .chain(super::super::run::KEY_METRICS.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        let row = |r: u32| {
            let mut cells = vec![r.to_string()];
            cells.extend(super::super::run::KEY_METRICS.iter().map(|c| match *c {
                "mean_rating" => "3.5".to_string(),
                _ => "0.5".to_string(),
            }));
            cells.join(",")
        };
        let text = format!("{header}\n{}\n{}\n{extra_rows}", row(1), row(2));
        MetricsTable::parse(&text, "m.csv").unwrap()
    }

    #[test]
    fn check_metrics_accepts_a_whole_file_and_names_what_is_wrong() {
        let p = Path::new("m.csv");
        assert!(check_metrics(&table(""), Some(2), p).is_ok());
        let e = check_metrics(&table(""), Some(3), p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "m.csv: 2 rows, but the manifest says 3 rounds were completed: the file was truncated or edited"
        );
        // A third row numbered 4: round 3 is missing (line 4 of the file).
        let mut t = table("");
        let mut r = t.rows[1].clone();
        r[0] = Some(4.0);
        t.rows.push(r.clone());
        let e = check_metrics(&t, None, p).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.csv: line 4: round 4 where round 3 was expected: rows are missing or out of order"
        );
        // view_ratio (the first key metric, column 1) of the second row set to 1.7.
        let mut t = table("");
        t.rows[1][1] = Some(1.7);
        let e = check_metrics(&t, Some(2), p).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.csv: line 3: column `view_ratio`: 1.7 is outside 0..=1"
        );
        // No round column.
        let mut t = table("");
        t.columns[0] = "rnd".into();
        let e = check_metrics(&t, Some(2), p).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.csv: line 1: no column `round` (is it recagent's metrics.csv?)"
        );
    }
}
