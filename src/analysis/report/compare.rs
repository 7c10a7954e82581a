//! The comparison report of a scenario: variants (each a set of runs, one per seed) overlaid,
//! one plot per metric with one line per variant (the mean over its runs at each round) and a
//! min–max band, plus a table of the last round and of the mean over rounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::labels::metric_label;
use super::plots::{self, LegendAt, LineChart, Series, PALETTE};
use super::{html, markdown, write_file, Format, ReportError, Variant};
use crate::analysis::{MetricsTable, COLUMNS};

/// One variant's values of one metric: per round, the mean, min and max over its runs that
/// define the metric there; `n` runs in all.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantCurve {
    /// Variant name.
    pub name: String,
    /// Runs (seeds) of the variant.
    pub n: usize,
    /// `(round, Some((mean, min, max)))`, `None` where no run defines it; ascending rounds.
    pub rounds: Vec<(u32, Option<(f64, f64, f64)>)>,
}

impl VariantCurve {
    /// The last round's `(mean, min, max)`, if defined there.
    pub fn last(&self) -> Option<(f64, f64, f64)> {
        self.rounds.last().and_then(|r| r.1)
    }

    /// Mean over runs of each run's mean over its rounds (`overall`), with the min and max
    /// over runs; computed by [`curves`] from the tables.
    fn overall(tables: &[MetricsTable], metric: &str) -> Option<(f64, f64, f64)> {
        let per_run: Vec<f64> = tables.iter().filter_map(|t| t.mean(metric)).collect();
        spread(&per_run)
    }
}

fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((mean, min, max))
}

/// Round number of each row: the `round` column, else the row's 1-based position.
fn round_numbers(t: &MetricsTable) -> Vec<u32> {
    match t.column("round") {
        Some(c) => c
            .iter()
            .enumerate()
            .map(|(i, r)| r.map_or(i as u32 + 1, |r| r as u32))
            .collect(),
        None => (1..=t.rows.len() as u32).collect(),
    }
}

/// The per-round mean, min and max of `metric` over `tables` (runs of one variant), over the
/// union of their rounds.
pub fn curve(name: &str, tables: &[MetricsTable], metric: &str) -> VariantCurve {
    let mut by_round: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for t in tables {
        let col = t.column(metric).unwrap_or_default();
        for (r, v) in round_numbers(t).into_iter().zip(col) {
            let e = by_round.entry(r).or_default();
            if let Some(v) = v {
                e.push(v);
            }
        }
    }
    VariantCurve {
        name: name.to_string(),
        n: tables.len(),
        rounds: by_round.into_iter().map(|(r, v)| (r, spread(&v))).collect(),
    }
}

fn load_variants(variants: &[Variant]) -> Result<Vec<Vec<MetricsTable>>, ReportError> {
    if variants.is_empty() {
        return Err(ReportError::Comparison("no variants to compare".into()));
    }
    variants
        .iter()
        .map(|v| {
            if v.runs.is_empty() {
                return Err(ReportError::Comparison(format!(
                    "variant `{}` has no runs",
                    v.name
                )));
            }
            v.runs
                .iter()
                .map(|dir| super::data::read_metrics(dir))
                .collect()
        })
        .collect()
}

fn check_metrics(metrics: &[String]) -> Result<(), ReportError> {
    if metrics.is_empty() {
        return Err(ReportError::Comparison("no metrics to compare".into()));
    }
    for m in metrics {
        if !COLUMNS.contains(&m.as_str()) || m == "round" {
            let near = COLUMNS
                .iter()
                .filter(|c| **c != "round")
                .min_by_key(|c| strsim::levenshtein(c, m))
                .copied()
                .unwrap_or("view_ratio");
            return Err(ReportError::UnknownMetric {
                name: m.clone(),
                nearest: near.to_string(),
            });
        }
    }
    Ok(())
}

fn chart(metric: &str, curves: &[VariantCurve]) -> LineChart {
    let label = metric_label(metric);
    let series = curves
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut s = Series::new(
                &if c.n > 1 {
                    format!("{} (n = {})", c.name, c.n)
                } else {
                    c.name.clone()
                },
                c.rounds
                    .iter()
                    .map(|(r, v)| (f64::from(*r), v.map(|v| v.0)))
                    .collect(),
                PALETTE[i % PALETTE.len()],
            );
            if c.n > 1 {
                s.band = c
                    .rounds
                    .iter()
                    .map(|(r, v)| (f64::from(*r), v.map(|v| (v.1, v.2))))
                    .collect();
            }
            s
        })
        .collect();
    LineChart {
        title: label.title,
        x_desc: "round".into(),
        y_desc: label.unit.into(),
        series,
        x_rounds: true,
        x_range: None,
        y_range: None,
        y_bounds: label.bounds,
        legend: LegendAt::Right,
        size: (960, 380),
    }
}

fn fmt_spread(v: Option<(f64, f64, f64)>, n: usize) -> String {
    match v {
        None => "–".into(),
        Some((m, _, _)) if n <= 1 => format!("{m:.4}"),
        Some((m, lo, hi)) => format!("{m:.4} [{lo:.4}, {hi:.4}]"),
    }
}

/// Writes the comparison report; see [`super::write_comparison`].
pub(crate) fn write(
    variants: &[Variant],
    metrics: &[String],
    out_dir: &Path,
    format: Format,
) -> Result<PathBuf, ReportError> {
    check_metrics(metrics)?;
    let tables = load_variants(variants)?;
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let title = format!(
        "Comparison: {}",
        out_dir.file_name().map_or_else(
            || out_dir.display().to_string(),
            |n| n.to_string_lossy().to_string()
        )
    );
    let seeds: Vec<String> = variants
        .iter()
        .map(|v| {
            format!(
                "{} ({} run{})",
                v.name,
                v.runs.len(),
                if v.runs.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let subtitle = format!("{} variants: {}", variants.len(), seeds.join(", "));
    // Table: one row per (metric, variant).
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for m in metrics {
        let curves: Vec<VariantCurve> = variants
            .iter()
            .zip(&tables)
            .map(|(v, t)| curve(&v.name, t, m))
            .collect();
        for ((v, t), c) in variants.iter().zip(&tables).zip(&curves) {
            rows.push(vec![
                metric_label(m).title,
                v.name.clone(),
                fmt_spread(c.last(), c.n),
                fmt_spread(VariantCurve::overall(t, m), c.n),
            ]);
        }
        figures.push((m.clone(), chart(m, &curves)));
    }
    let header = [
        "metric",
        "variant",
        "last round: mean [min, max]",
        "mean over rounds: mean [min, max]",
    ];
    let note =
        "Lines: the mean over a variant's runs (seeds) at each round; bands: their min–max. \
                Table: the last round, and each run's mean over its rounds; \
                [min, max] over the runs.";
    match format {
        Format::Html => {
            let mut body = String::new();
            let _ = write!(
                body,
                "<section id=\"table\">\n<h2>Summary</h2>\n{}<p class=\"note\">{}</p>\n</section>\n",
                html::table(&header, &rows, &[1]),
                html::escape(note)
            );
            for (m, fig) in &figures {
                let svg = plots::svg(fig).map_err(|message| ReportError::Plot {
                    what: m.clone(),
                    message,
                })?;
                body.push_str(&html::figure_section(
                    &format!("metric-{m}"),
                    &metric_label(m).title,
                    &svg,
                    &html::escape(&format!("{m} (metrics.csv), by round")),
                ));
            }
            let path = out_dir.join("comparison.html");
            write_file(&path, html::page(&title, &subtitle, &body).as_bytes())?;
            Ok(path)
        }
        Format::Markdown => {
            let img_dir = out_dir.join("comparison");
            std::fs::create_dir_all(&img_dir).map_err(|source| ReportError::Write {
                path: img_dir.clone(),
                source,
            })?;
            let mut md = format!("# {title}\n\n{subtitle}\n\n## Summary\n\n");
            md.push_str(&markdown::table(&header, &rows));
            let _ = write!(md, "\n{note}\n");
            for (m, fig) in &figures {
                let file = img_dir.join(format!("{m}.png"));
                plots::png(fig, &file).map_err(|message| ReportError::Plot {
                    what: m.clone(),
                    message,
                })?;
                let _ = write!(
                    md,
                    "\n## {}\n\n![{m} by round](comparison/{m}.png)\n",
                    metric_label(m).title
                );
            }
            let path = out_dir.join("comparison.md");
            write_file(&path, md.as_bytes())?;
            Ok(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_mean_min_max_over_runs_per_round() {
        let a = MetricsTable::parse("round,view_ratio\n1,0.2\n2,0.4\n", "a").unwrap();
        let b = MetricsTable::parse("round,view_ratio\n1,0.4\n2,\n3,0.1\n", "b").unwrap();
        let c = curve("MF", &[a.clone(), b.clone()], "view_ratio");
        // Round 1: mean(0.2, 0.4) = 0.3, min 0.2, max 0.4; round 2: only a (0.4); round 3:
        // only b (0.1).
        assert_eq!(c.n, 2);
        assert_eq!(c.rounds.len(), 3);
        let (m, lo, hi) = c.rounds[0].1.unwrap();
        assert!((m - 0.3).abs() < 1e-12 && lo == 0.2 && hi == 0.4);
        assert_eq!(c.rounds[1], (2, Some((0.4, 0.4, 0.4))));
        assert_eq!(c.last(), Some((0.1, 0.1, 0.1)));
        // Mean over rounds per run: a 0.3, b 0.25 (0.4 + 0.1) / 2; over runs 0.275.
        let (m, lo, hi) = VariantCurve::overall(&[a, b], "view_ratio").unwrap();
        assert!((m - 0.275).abs() < 1e-12 && lo == 0.25 && (hi - 0.3).abs() < 1e-12);
    }

    #[test]
    fn unknown_metric_names_the_nearest_column() {
        let e = check_metrics(&["veiw_ratio".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown metric `veiw_ratio` (not a column of metrics.csv); did you mean `view_ratio`?"
        );
    }

    fn write_run(dir: &Path, rows: &[(u32, f64, Option<f64>)]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut text = String::from("round,view_ratio,entropy_watched\n");
        for (r, v, e) in rows {
            let e = e.map(|e| e.to_string()).unwrap_or_default();
            text.push_str(&format!("{r},{v},{e}\n"));
        }
        std::fs::write(dir.join("metrics.csv"), text).unwrap();
    }

    #[test]
    fn writes_one_plot_per_metric_in_both_formats() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write_run(
            &d.join("mf-1"),
            &[
                (1, 0.2, Some(2.0)),
                (2, 0.3, Some(1.8)),
                (3, 0.25, Some(1.5)),
            ],
        );
        write_run(
            &d.join("mf-2"),
            &[(1, 0.4, Some(2.2)), (2, 0.1, None), (3, 0.35, Some(1.7))],
        );
        write_run(
            &d.join("rnd-1"),
            &[
                (1, 0.1, Some(2.9)),
                (2, 0.15, Some(3.0)),
                (3, 0.12, Some(3.1)),
            ],
        );
        let variants = [
            Variant {
                name: "MF".into(),
                runs: vec![d.join("mf-1"), d.join("mf-2")],
            },
            Variant {
                name: "Random".into(),
                runs: vec![d.join("rnd-1")],
            },
        ];
        let metrics = vec!["view_ratio".to_string(), "entropy_watched".to_string()];
        let out = write(&variants, &metrics, &d.join("cmp"), Format::Html).unwrap();
        assert_eq!(out, d.join("cmp/comparison.html"));
        let html = std::fs::read_to_string(&out).unwrap();
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(
            html.contains("id=\"metric-view_ratio\"")
                && html.contains("id=\"metric-entropy_watched\"")
        );
        // MF's last round: view ratio mean (0.25 + 0.35) / 2 = 0.3, min 0.25, max 0.35.
        assert!(html.contains("<td>0.3000 [0.2500, 0.3500]</td>"), "{html}");
        // Random's mean over rounds: (0.1 + 0.15 + 0.12) / 3 = 0.123333.
        assert!(html.contains("<td>0.1233</td>"));
        let md = write(&variants, &metrics, &d.join("cmp"), Format::Markdown).unwrap();
        assert_eq!(md, d.join("cmp/comparison.md"));
        for m in &metrics {
            let png = std::fs::read(d.join(format!("cmp/comparison/{m}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
        std::fs::create_dir_all(d.join("absent")).unwrap();
        let missing = [Variant {
            name: "x".into(),
            runs: vec![d.join("absent")],
        }];
        let e = write(&missing, &metrics, &d.join("cmp2"), Format::Html).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} has no metrics.csv: is it a recagent run folder?",
                d.join("absent").display()
            )
        );
    }
}
