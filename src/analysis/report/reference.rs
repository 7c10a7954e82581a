//! A reference rating histogram (`recagent report --reference FILE`), e.g. the real ML-1M
//! users' ratings, to compare a run's ratings with. Accepted files:
//!
//! - five numbers (counts or shares of 1..=5 stars), separated by commas, semicolons or
//!   white space, and nothing else;
//! - a CSV with a `rating` column (one rating per row; empty cells skipped, so another run's
//!   `interaction.csv` works), or a `rating_list` column of `;`- or `,`-separated ratings
//!   (Agent4Rec's `agg_top_25.csv`), or the columns `rating_1` .. `rating_5` (summed over the
//!   rows, so another run's `metrics.csv` works);
//! - MovieLens `ratings.dat` (`UserID::MovieID::Rating::Timestamp`), by its extension.

use std::path::Path;

use super::ReportError;

/// A reference histogram of 1..=5 stars.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The file's name, for legends.
    pub name: String,
    /// Weight of each star, index 0 = 1 star (counts, or shares for a five-number file).
    pub hist: [f64; 5],
}

impl Reference {
    /// Sum of the weights (the number of ratings, for counts).
    pub fn total(&self) -> f64 {
        self.hist.iter().sum()
    }
}

fn rating_of(cell: &str) -> Option<usize> {
    let v: f64 = cell.trim().parse().ok()?;
    (v.fract() == 0.0 && (1.0..=5.0).contains(&v)).then_some(v as usize)
}

/// Reads a reference histogram (formats in the module docs).
///
/// # Errors
/// [`ReportError::Read`] for an unreadable file; [`ReportError::Malformed`] naming the line and
/// column of a value that is not a rating 1-5, a file with none of the accepted columns, or a
/// histogram with no weight.
pub fn read_reference(path: &Path) -> Result<Reference, ReportError> {
    let bad = |line: Option<u64>, message: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    let mut hist = [0f64; 5];
    if path.extension().is_some_and(|e| e == "dat") {
        let ratings = crate::io::data::load_ml_ratings(crate::io::data::Source::Path(path))
            .map_err(|e| bad(None, e.to_string()))?;
        for r in ratings {
            let s = usize::from(r.rating);
            if !(1..=5).contains(&s) {
                return Err(bad(None, format!("rating {s} is not 1-5")));
            }
            hist[s - 1] += 1.0;
        }
        return finish(path, name, hist);
    }
    let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.chars().any(char::is_alphabetic) {
        let nums: Vec<&str> = text
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if nums.len() != 5 {
            return Err(bad(
                None,
                format!(
                    "{} numbers: a histogram file holds exactly five (1..5 stars)",
                    nums.len()
                ),
            ));
        }
        for (i, n) in nums.iter().enumerate() {
            hist[i] = n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(None, format!("{n:?} is not a non-negative number")))?;
        }
        return finish(path, name, hist);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(Some(1), e.to_string()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let find = |n: &str| header.iter().position(|h| h == n);
    enum Layout {
        One(usize),
        List(usize),
        Counts([usize; 5]),
    }
    let stars: Option<Vec<usize>> = (1..=5).map(|s| find(&format!("rating_{s}"))).collect();
    let layout = if let Some(c) = find("rating") {
        Layout::One(c)
    } else if let Some(c) = find("rating_list") {
        Layout::List(c)
    } else if let Some(s) = stars {
        Layout::Counts([s[0], s[1], s[2], s[3], s[4]])
    } else {
        return Err(bad(
            Some(1),
            format!(
                "no `rating`, `rating_list` or `rating_1`..`rating_5` column (header: {})",
                header.join(",")
            ),
        ));
    };
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(e.position().map(csv::Position::line), e.to_string()))?;
        let line = rec.position().map(csv::Position::line);
        let cell = |c: usize, col: &str| {
            rec.get(c)
                .map(str::trim)
                .ok_or_else(|| bad(line, format!("column `{col}` missing")))
        };
        match layout {
            Layout::One(c) => {
                let v = cell(c, "rating")?;
                if v.is_empty() {
                    continue;
                }
                let s = rating_of(v).ok_or_else(|| {
                    bad(line, format!("column `rating`: {v:?} is not a rating 1-5"))
                })?;
                hist[s - 1] += 1.0;
            }
            Layout::List(c) => {
                for v in cell(c, "rating_list")?
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                {
                    let s = rating_of(v).ok_or_else(|| {
                        bad(
                            line,
                            format!("column `rating_list`: {v:?} is not a rating 1-5"),
                        )
                    })?;
                    hist[s - 1] += 1.0;
                }
            }
            Layout::Counts(cols) => {
                for (i, c) in cols.iter().enumerate() {
                    let col = format!("rating_{}", i + 1);
                    let v = cell(*c, &col)?;
                    if v.is_empty() {
                        continue;
                    }
                    hist[i] += v
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x >= 0.0)
                        .ok_or_else(|| {
                            bad(line, format!("column `{col}`: {v:?} is not a count"))
                        })?;
                }
            }
        }
    }
    finish(path, name, hist)
}

fn finish(path: &Path, name: String, hist: [f64; 5]) -> Result<Reference, ReportError> {
    if hist.iter().sum::<f64>() <= 0.0 {
        return Err(ReportError::Malformed {
            path: path.to_path_buf(),
            line: None,
            message: "no ratings: the reference histogram is empty".into(),
        });
    }
    Ok(Reference { name, hist })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> Result<Reference, ReportError> {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        read_reference(&p)
    }

    #[test]
    fn reads_every_accepted_layout() {
        assert_eq!(
            read("h.txt", "1 2 3 4 5\n").unwrap().hist,
            [1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(
            read("h.csv", "0.1,0.2;0.3,0.25,0.15").unwrap().hist,
            [0.1, 0.2, 0.3, 0.25, 0.15]
        );
        // Two 4s, one 1; the empty cell (an unrated showing) is skipped.
        let r = read(
            "i.csv",
            "user_id,item_id,label,rating\n1,2,1,4\n1,3,0,\n2,2,1,4\n2,5,1,1\n",
        )
        .unwrap();
        assert_eq!(r.hist, [1.0, 0.0, 0.0, 2.0, 0.0]);
        assert_eq!(r.name, "i.csv");
        // Agent4Rec's layout: "5; 3; 5" and "3; 4" -> 3 twice, 5 twice, 4 once.
        let r = read(
            "a.csv",
            "user_id,rating_list,age\n0,\"5; 3; 5\",1\n1,\"3; 4\",2\n",
        )
        .unwrap();
        assert_eq!(r.hist, [0.0, 0.0, 2.0, 1.0, 2.0]);
        // metrics.csv: summed over rows.
        let r = read(
            "m.csv",
            "round,rating_1,rating_2,rating_3,rating_4,rating_5\n1,1,0,2,3,0\n2,0,1,2,0,4\n",
        )
        .unwrap();
        assert_eq!(r.hist, [1.0, 1.0, 4.0, 3.0, 4.0]);
        let r = read("ratings.dat", "1::10::5::978300760\n2::10::3::978300761\n").unwrap();
        assert_eq!(r.hist, [0.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn bad_references_name_the_problem() {
        let e = read("r.csv", "user,rating\n1,4\n2,7\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("r.csv: line 3: column `rating`: \"7\" is not a rating 1-5"),
            "{e}"
        );
        let e = read("r.csv", "user,stars\n1,4\n").unwrap_err().to_string();
        assert!(
            e.contains("line 1: no `rating`, `rating_list` or `rating_1`..`rating_5` column"),
            "{e}"
        );
        let e = read("h.txt", "1 2 3\n").unwrap_err().to_string();
        assert!(
            e.ends_with("3 numbers: a histogram file holds exactly five (1..5 stars)"),
            "{e}"
        );
        let e = read("h.txt", "0 0 0 0 0\n").unwrap_err().to_string();
        assert!(
            e.ends_with("no ratings: the reference histogram is empty"),
            "{e}"
        );
    }
}
