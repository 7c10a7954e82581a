//! The comparison table of a scenario: per variant and metric, the mean over seeds of each
//! run's summarised value (see [`super::Summary`]) and its spread as the minimum and maximum
//! over seeds (with a handful of seeds a range says more than a standard deviation, and
//! needs no distributional assumption).
//!
//! Files ([`Comparison::write`]):
//! - `comparison.csv`: `variant,metric,runs,mean,min,max` (`metric` spelled `column@summary`,
//!   `runs` = runs with a defined value; empty cells where none has one);
//! - `runs.csv`: `variant,seed,metric,value,run_dir`, every run's own value;
//! - `rounds.csv`: `variant,round,<column>...`, each compared column's per-round value averaged
//!   over the variant's runs that have the round (the curves);
//! - `comparison.md`: the table, one row per variant, cells `mean (min–max)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::MetricSpec;
use crate::analysis::{MetricsTable, TableError};

/// One variant's runs: `(seed, run directory)` pairs, the directories holding `metrics.csv`.
#[derive(Clone, Debug)]
pub struct VariantRuns {
    /// Variant name.
    pub name: String,
    /// Its successful runs.
    pub runs: Vec<(u64, PathBuf)>,
}

/// One cell group of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonRow {
    /// Variant name.
    pub variant: String,
    /// The metric, `column@summary`.
    pub metric: String,
    /// Runs whose value is defined.
    pub runs: usize,
    /// Mean over those runs.
    pub mean: Option<f64>,
    /// Minimum over those runs.
    pub min: Option<f64>,
    /// Maximum over those runs.
    pub max: Option<f64>,
}

/// The comparison of a scenario's variants.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// The metrics, in the scenario's order.
    pub metrics: Vec<MetricSpec>,
    /// Variant names, in the scenario's order.
    pub variants: Vec<String>,
    /// Variant-major, then metric order.
    pub rows: Vec<ComparisonRow>,
    /// Every run's values: `(variant, seed, run dir, one value per metric)`.
    pub per_run: Vec<(String, u64, PathBuf, Vec<Option<f64>>)>,
    /// The compared columns (each once, in first-mention order), for [`Comparison::rounds`].
    pub columns: Vec<String>,
    /// `(variant, round, one value per column)`: per-round means over the variant's runs.
    pub rounds: Vec<(String, u32, Vec<Option<f64>>)>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Compares the variants' runs on `metrics`, reading each run's `metrics.csv`.
///
/// # Errors
/// [`TableError`] for an unreadable or malformed `metrics.csv`, or one without a compared
/// column.
pub fn compare(variants: &[VariantRuns], metrics: &[MetricSpec]) -> Result<Comparison, TableError> {
    let mut columns: Vec<String> = Vec::new();
    for m in metrics {
        if !columns.contains(&m.column) {
            columns.push(m.column.clone());
        }
    }
    let mut out = Comparison {
        metrics: metrics.to_vec(),
        variants: variants.iter().map(|v| v.name.clone()).collect(),
        columns: columns.clone(),
        ..Comparison::default()
    };
    for v in variants {
        let mut tables = Vec::new();
        for (seed, dir) in &v.runs {
            let path = dir.join("metrics.csv");
            let t = MetricsTable::read(&path)?;
            for c in &columns {
                if t.column_index(c).is_none() {
                    return Err(TableError::Row {
                        path: path.display().to_string(),
                        line: 1,
                        message: format!("no column `{c}`"),
                    });
                }
            }
            let values: Vec<Option<f64>> = metrics
                .iter()
                .map(|m| m.summary.apply(&t.column(&m.column).unwrap_or_default()))
                .collect();
            out.per_run
                .push((v.name.clone(), *seed, dir.clone(), values));
            tables.push(t);
        }
        let mine: Vec<&Vec<Option<f64>>> = out
            .per_run
            .iter()
            .filter(|r| r.0 == v.name)
            .map(|r| &r.3)
            .collect();
        for (k, m) in metrics.iter().enumerate() {
            let vals: Vec<f64> = mine.iter().filter_map(|r| r[k]).collect();
            out.rows.push(ComparisonRow {
                variant: v.name.clone(),
                metric: m.label(),
                runs: vals.len(),
                mean: mean(&vals),
                min: vals.iter().copied().reduce(f64::min),
                max: vals.iter().copied().reduce(f64::max),
            });
        }
        let rounds = tables.iter().map(|t| t.rows.len()).max().unwrap_or(0);
        for r in 0..rounds {
            let vals = columns
                .iter()
                .map(|c| {
                    let at: Vec<f64> = tables
                        .iter()
                        .filter_map(|t| t.column(c).and_then(|col| col.get(r).copied().flatten()))
                        .collect();
                    mean(&at)
                })
                .collect();
            out.rounds.push((v.name.clone(), r as u32 + 1, vals));
        }
    }
    Ok(out)
}

/// A number as `metrics.csv` writes one: up to 6 decimals, trailing zeros trimmed.
pub fn fmt6(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn cell(x: Option<f64>) -> String {
    x.map(fmt6).unwrap_or_default()
}

/// A number for the Markdown table: 4 decimals.
fn fmt4(x: f64) -> String {
    let s = format!("{x:.4}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        format!("{:.4}", 0.0)
    } else {
        s
    }
}

impl Comparison {
    /// The row of `variant` and `metric` (`column@summary`).
    pub fn row(&self, variant: &str, metric: &str) -> Option<&ComparisonRow> {
        self.rows
            .iter()
            .find(|r| r.variant == variant && r.metric == metric)
    }

    /// `comparison.csv`'s text.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("variant,metric,runs,mean,min,max\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{}",
                r.variant,
                r.metric,
                r.runs,
                cell(r.mean),
                cell(r.min),
                cell(r.max)
            );
        }
        s
    }

    /// `runs.csv`'s text.
    pub fn runs_csv(&self) -> String {
        let mut s = String::from("variant,seed,metric,value,run_dir\n");
        for (v, seed, dir, vals) in &self.per_run {
            for (m, x) in self.metrics.iter().zip(vals) {
                let d = dir.display().to_string();
                let d = if d.contains([',', '"', '\n']) {
                    format!("\"{}\"", d.replace('"', "\"\""))
                } else {
                    d
                };
                let _ = writeln!(s, "{v},{seed},{},{},{d}", m.label(), cell(*x));
            }
        }
        s
    }

    /// `rounds.csv`'s text.
    pub fn rounds_csv(&self) -> String {
        let mut s = format!("variant,round,{}\n", self.columns.join(","));
        for (v, r, vals) in &self.rounds {
            let cells: Vec<String> = vals.iter().map(|x| cell(*x)).collect();
            let _ = writeln!(s, "{v},{r},{}", cells.join(","));
        }
        s
    }

    /// `comparison.md`'s text: a heading, the description, a legend, the table, and the
    /// failed runs (`(variant, seed, log path)`).
    pub fn to_markdown(
        &self,
        title: &str,
        description: Option<&str>,
        seeds: &[u64],
        failed: &[(String, u64, PathBuf)],
    ) -> String {
        let mut s = format!("# Scenario `{title}`\n\n");
        if let Some(d) = description {
            let _ = writeln!(s, "{}\n", d.trim());
        }
        let seeds_list: Vec<String> = seeds.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "{} seed{} per variant ({}). {}`column@mean` is the mean over a run's rounds, `@last` the last round's value, `@first` the first round's, `@slope` the least-squares change per round.\n",
            seeds.len(),
            if seeds.len() == 1 { "" } else { "s" },
            seeds_list.join(", "),
            if seeds.len() > 1 {
                "Each cell: the mean over seeds, and (min–max) over seeds. "
            } else {
                ""
            }
        );
        let labels: Vec<String> = self.metrics.iter().map(MetricSpec::label).collect();
        let _ = writeln!(s, "| variant | {} |", labels.join(" | "));
        let _ = writeln!(s, "|---|{}", "---|".repeat(labels.len()));
        for v in &self.variants {
            let cells: Vec<String> = labels
                .iter()
                .map(|l| match self.row(v, l) {
                    Some(r) => match (r.mean, r.min, r.max) {
                        (Some(m), Some(lo), Some(hi)) if seeds.len() > 1 => {
                            let partial = if r.runs < seeds.len() {
                                format!(", {} of {} runs", r.runs, seeds.len())
                            } else {
                                String::new()
                            };
                            format!("{} ({}–{}{partial})", fmt4(m), fmt4(lo), fmt4(hi))
                        }
                        (Some(m), _, _) => fmt4(m),
                        _ => "–".into(),
                    },
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(s, "| {v} | {} |", cells.join(" | "));
        }
        if !failed.is_empty() {
            let _ = writeln!(s, "\nFailed runs (not in the table):\n");
            for (v, seed, log) in failed {
                let _ = writeln!(s, "- `{v}` seed {seed}: see `{}`", log.display());
            }
        }
        s
    }

    /// Writes `comparison.csv`, `runs.csv`, `rounds.csv` and `comparison.md` into `dir`;
    /// returns their paths.
    ///
    /// # Errors
    /// The I/O error, with the file.
    pub fn write(
        &self,
        dir: &Path,
        title: &str,
        description: Option<&str>,
        seeds: &[u64],
        failed: &[(String, u64, PathBuf)],
    ) -> Result<Vec<PathBuf>, String> {
        let files = [
            ("comparison.csv", self.to_csv()),
            ("runs.csv", self.runs_csv()),
            ("rounds.csv", self.rounds_csv()),
            (
                "comparison.md",
                self.to_markdown(title, description, seeds, failed),
            ),
        ];
        let mut out = Vec::new();
        for (name, text) in files {
            let p = dir.join(name);
            crate::io::output::write_atomic(&p, text.as_bytes())
                .map_err(|e| format!("{}: cannot write: {e}", p.display()))?;
            out.push(p);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_metrics(dir: &Path, rows: &[(u32, Option<f64>, f64)]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = String::from("round,entropy_shown,coverage\n");
        for (r, e, c) in rows {
            let e = e.map(fmt6).unwrap_or_default();
            s += &format!("{r},{e},{}\n", fmt6(*c));
        }
        std::fs::write(dir.join("metrics.csv"), s).unwrap();
    }

    #[test]
    fn table_of_two_variants_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let (a1, a2, b1) = (
            tmp.path().join("a1"),
            tmp.path().join("a2"),
            tmp.path().join("b1"),
        );
        write_metrics(&a1, &[(1, Some(2.0), 0.1), (2, Some(1.0), 0.2)]);
        write_metrics(&a2, &[(1, Some(3.0), 0.3), (2, None, 0.4)]);
        write_metrics(&b1, &[(1, None, 0.5), (2, None, 0.5)]);
        let metrics = vec![
            MetricSpec::parse("entropy_shown").unwrap(),
            MetricSpec::parse("coverage").unwrap(),
            MetricSpec::parse("entropy_shown@last").unwrap(),
        ];
        let c = compare(
            &[
                VariantRuns {
                    name: "A".into(),
                    runs: vec![(1, a1), (2, a2)],
                },
                VariantRuns {
                    name: "B".into(),
                    runs: vec![(1, b1)],
                },
            ],
            &metrics,
        )
        .unwrap();
        // A: entropy means over rounds: run 1 (2 + 1) / 2 = 1.5, run 2 3 (round 2 empty);
        // mean over seeds (1.5 + 3) / 2 = 2.25, range 1.5–3.
        let r = c.row("A", "entropy_shown@mean").unwrap();
        assert_eq!(
            (r.runs, r.mean, r.min, r.max),
            (2, Some(2.25), Some(1.5), Some(3.0))
        );
        // A: coverage is cumulative: the last rounds 0.2 and 0.4, mean 0.3.
        let r = c.row("A", "coverage@last").unwrap();
        assert!((r.mean.unwrap() - 0.3).abs() < 1e-12);
        // A: entropy at the last round is defined in run 1 only (1.0).
        let r = c.row("A", "entropy_shown@last").unwrap();
        assert_eq!((r.runs, r.mean), (1, Some(1.0)));
        // B never has an entropy: empty cells, no runs.
        let r = c.row("B", "entropy_shown@mean").unwrap();
        assert_eq!((r.runs, r.mean), (0, None));
        assert_eq!(
            c.to_csv().lines().nth(1).unwrap(),
            "A,entropy_shown@mean,2,2.25,1.5,3"
        );
        assert!(c.to_csv().contains("\nB,entropy_shown@mean,0,,,\n"));
        // Round curves: A round 1 entropy (2 + 3) / 2 = 2.5, coverage (0.1 + 0.3) / 2 = 0.2;
        // round 2 entropy 1 (run 2 empty), coverage 0.3.
        assert_eq!(
            c.rounds_csv(),
            "variant,round,entropy_shown,coverage\nA,1,2.5,0.2\nA,2,1,0.3\nB,1,,0.5\nB,2,,0.5\n"
        );
        let md = c.to_markdown("t", None, &[1, 2], &[]);
        assert!(
            md.contains("| A | 2.2500 (1.5000–3.0000) | 0.3000 (0.2000–0.4000) | 1.0000 (1.0000–1.0000, 1 of 2 runs) |"),
            "{md}"
        );
        assert!(
            md.contains("| B | – | 0.5000 (0.5000–0.5000, 1 of 2 runs) | – |"),
            "{md}"
        );
    }

    #[test]
    fn a_run_without_a_column_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write_metrics(tmp.path(), &[(1, Some(1.0), 0.1)]);
        let e = compare(
            &[VariantRuns {
                name: "A".into(),
                runs: vec![(1, tmp.path().to_path_buf())],
            }],
            &[MetricSpec::parse("view_ratio").unwrap()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("metrics.csv: line 1: no column `view_ratio`"),
            "{e}"
        );
    }

    #[test]
    fn fmt6_trims() {
        assert_eq!(fmt6(0.25), "0.25");
        assert_eq!(fmt6(3.0), "3");
        assert_eq!(fmt6(1.0 / 3.0), "0.333333");
        assert_eq!(fmt6(-0.0000001), "0");
    }
}
