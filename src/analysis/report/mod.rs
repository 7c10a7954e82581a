//! Reports: a run's report (`recagent report <run-dir>`) and the comparison report of a
//! scenario's variants ([`write_comparison`]), as one self-contained HTML file (inline
//! `<svg>` plots, no script, no external URL) or as Markdown with PNG plots.
//!
//! Everything here reads a run's output folder (`metrics.csv`, `interaction.csv`,
//! `manifest.json`, and the catalogue the manifest's configuration names); nothing here
//! changes a simulation. One concept per file: statistics in `stats`, figures in `plots`,
//! the page formats in `html` and `markdown`, the comparison in `compare`.

mod compare;
mod data;
mod derived;
mod html;
mod labels;
mod markdown;
mod plots;
mod raster;
mod reference;
mod run;
mod settings;
mod stats;

use std::path::{Path, PathBuf};

pub use compare::{curve, VariantCurve};
pub use data::{read_interactions, Interaction, RunData, RunInfo};
pub use derived::{ItemStat, RoundGenres, RunAnalysis};
pub use labels::{is_count, metric_label, MetricLabel};
pub use reference::{read_reference, Reference};
pub use run::{ReportOptions, RunReport, KEY_METRICS, SECTIONS, TOP_ITEMS};
pub use settings::{ReportPlugin, ReportSettings};
pub use stats::{entropy_bits, gini, js_divergence, lorenz, mean};

use crate::analysis::TableError;

/// The output format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One self-contained `.html` file, plots inline as `<svg>`.
    #[default]
    Html,
    /// A `.md` file and its plots as PNG files in a folder beside it.
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Ok(Format::Html),
            "md" | "markdown" => Ok(Format::Markdown),
            other => Err(format!("unknown report format {other:?} (html or md)")),
        }
    }
}

/// One variant of a comparison: a name and its runs (output folders, one per seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Shown in legends and tables.
    pub name: String,
    /// Run folders, each with a `metrics.csv`.
    pub runs: Vec<PathBuf>,
}

/// Why a report could not be made, in the user's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The run folder does not exist.
    #[error("{}: no such folder", .0.display())]
    NoSuchDir(PathBuf),
    /// The folder lacks a file every run writes.
    #[error("{} has no {file}: is it a recagent run folder?", dir.display())]
    NotARun {
        /// The folder given.
        dir: PathBuf,
        /// The missing file (`metrics.csv`, `manifest.json`, `interaction.csv`).
        file: &'static str,
    },
    /// A file exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A bad `metrics.csv`.
    #[error(transparent)]
    Metrics(#[from] TableError),
    /// A file does not have the expected content.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line, when the problem is on one.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// The run's catalogue (titles, genres) could not be loaded.
    #[error("the run's catalogue (item_path in {}): {message}", manifest.display())]
    Catalog {
        /// The manifest naming it.
        manifest: PathBuf,
        /// What went wrong, with the file.
        message: String,
    },
    /// A comparison asked for a metric that `metrics.csv` does not have.
    #[error("unknown metric `{name}` (not a column of metrics.csv); did you mean `{nearest}`?")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The nearest column name.
        nearest: String,
    },
    /// A comparison with nothing to compare.
    #[error("comparison: {0}")]
    Comparison(String),
    /// A plot could not be drawn.
    #[error("plot `{what}`: {message}")]
    Plot {
        /// Which plot.
        what: String,
        /// The drawing error.
        message: String,
    },
    /// An output file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes the report of the run in `run_dir` and returns what it wrote and its text summary.
///
/// The report has a header (the run's configuration essentials and a table of key metrics:
/// first, last and mean over rounds) and one section per figure ([`SECTIONS`]): the metrics
/// over rounds (small multiples from `metrics.csv`), the rating histogram (against
/// `opts.reference` when given, with their Jensen–Shannon divergence), the genre mix of the
/// first and the last round's watches, the exposure Lorenz curve with its Gini coefficient,
/// the top items (table and chart), and the distribution of the agents' genre entropy over the
/// run. [`Format::Html`] writes one self-contained file (default `<run_dir>/report.html`);
/// [`Format::Markdown`] writes `<run_dir>/report.md` and one PNG per section in
/// `<run_dir>/report/` (with `opts.out = dir/name.md`, the PNG files go to `dir/name/`).
///
/// # Errors
/// [`ReportError::NoSuchDir`]; [`ReportError::NotARun`] naming the first of `metrics.csv`,
/// `manifest.json`, `interaction.csv` that is missing; [`ReportError::Metrics`] /
/// [`ReportError::Malformed`] for bad content (file, line, column); [`ReportError::Catalog`]
/// when the catalogue the manifest names cannot be loaded; [`ReportError::Write`] /
/// [`ReportError::Plot`] for output failures.
pub fn write_run_report(run_dir: &Path, opts: &ReportOptions) -> Result<RunReport, ReportError> {
    run::write(run_dir, opts)
}

/// Writes the comparison report of a scenario's variants into `out_dir` (created if needed):
/// per metric one plot with one line per variant, the mean over its runs (seeds) at each
/// round, with a min–max band when it has several runs; and a table of the last round's and
/// the mean-over-rounds values (mean and [min, max] over runs).
///
/// `metrics` are `metrics.csv` column names ([`crate::analysis::COLUMNS`], except `round`).
/// Runs of a variant may have different lengths: a round's mean is over the runs that reached
/// it and define the metric there (empty cells are skipped).
///
/// Returns the path written: `out_dir/comparison.html` ([`Format::Html`], self-contained),
/// or `out_dir/comparison.md` with one PNG per metric in `out_dir/comparison/`
/// ([`Format::Markdown`]).
///
/// # Errors
/// [`ReportError::NotARun`] for a run folder without `metrics.csv`, [`ReportError::Metrics`]
/// for a malformed one, [`ReportError::UnknownMetric`] for a metric that is not a column,
/// [`ReportError::Comparison`] for no variants, no metrics or a variant without runs,
/// [`ReportError::Write`] / [`ReportError::Plot`] for output failures.
pub fn write_comparison(
    variants: &[Variant],
    metrics: &[String],
    out_dir: &Path,
    format: Format,
) -> Result<PathBuf, ReportError> {
    compare::write(variants, metrics, out_dir, format)
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::io::output::write_atomic(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
