//! The analysis commands: `export` (and `scenario`), thin layers over [`recagent::analysis`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use recagent::analysis::export::{self, ExportFormat, ExportOptions};

/// `recagent export` format names.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FormatArg {
    /// RecBole atomic files: <name>.inter, <name>.user, <name>.item (tab-separated).
    Recbole,
    /// Plain CSV: interactions.csv, users.csv, items.csv.
    Csv,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The run's output directory (holds manifest.json and interaction.csv).
    pub(crate) run_dir: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "recbole")]
    pub(crate) format: FormatArg,
    /// Parent directory of the data set folder (RecBole's `data_path`). Default: <run-dir>/export.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Data set name (RecBole's `dataset`): the folder and file stem. Default: the run
    /// directory's name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// RecBole: every shown item as a row with a `label:float` column (1 watched, 0 shown
    /// only), instead of the watched items only.
    #[arg(long)]
    pub(crate) with_shown: bool,
    /// Directory the run's configured data paths are relative to, when the manifest's
    /// relative `base_dir` does not resolve from the current directory.
    #[arg(long = "base-dir")]
    pub(crate) base_dir: Option<PathBuf>,
}

pub(crate) fn export(a: &ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        format: match a.format {
            FormatArg::Recbole => ExportFormat::RecBole,
            FormatArg::Csv => ExportFormat::Csv,
        },
        out_dir: a.out.clone().unwrap_or_else(|| a.run_dir.join("export")),
        name: a.name.clone().unwrap_or_else(|| export::default_name(&a.run_dir)),
        with_shown: a.with_shown,
        base_dir: a.base_dir.clone(),
    };
    let s = export::export(&a.run_dir, &opts)?;
    println!(
        "exported {} interactions (of {} rows in the run's interaction.csv), {} users, {} items to {}",
        s.interactions,
        s.rows_read,
        s.users,
        s.items,
        s.dir.display()
    );
    for f in &s.files {
        println!("  {}", f.display());
    }
    if s.normalised > 0 {
        println!(
            "  {} values had tabs or line breaks, replaced by spaces",
            s.normalised
        );
    }
    if matches!(a.format, FormatArg::Recbole) {
        let parent = s.dir.parent().map(|p| p.display().to_string()).unwrap_or_default();
        let inter = if a.with_shown {
            "[user_id, item_id, label, rating, timestamp]"
        } else {
            "[user_id, item_id, rating, timestamp]"
        };
        println!(
            "RecBole: data_path: {parent}, dataset: {}, load_col: {{inter: {inter}, user: [user_id, age, gender, status], item: [item_id, movie_title, genre]}}",
            opts.name
        );
    }
    Ok(())
}
