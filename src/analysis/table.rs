//! `metrics.csv`: one row per completed round, one column per metric (README, "Metrics"). This
//! module owns the column list and reads the file back for reports and scenarios; the metrics
//! plugin (`systems/metrics.rs`) computes and writes the rows.

use std::path::Path;

/// The columns of `metrics.csv`, in file order. Names are stable: scripts and scenario files
/// refer to them. Their definitions are in the README's metrics table and on the metrics plugin.
pub const COLUMNS: &[&str] = &[
    "round",
    "active_agents",
    "browsing_agents",
    "pages_shown",
    "items_shown",
    "watches",
    "view_ratio",
    "ratings",
    "mean_rating",
    "rating_1",
    "rating_2",
    "rating_3",
    "rating_4",
    "rating_5",
    "entropy_shown",
    "entropy_watched",
    "coverage",
    "gini_exposure",
    "gini_watches",
    "top10_exposure_share",
    "ild",
    "exit_page",
    "session_length",
    "chats",
    "chat_lines",
    "posts",
    "deliveries",
    "mentions",
    "conformity",
    "conformity_pairs",
    "llm_calls",
    "llm_prompt_tokens",
    "llm_completion_tokens",
    "llm_cost_usd",
];

/// A bad `metrics.csv`.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be read.
    #[error("{path}: cannot read")]
    Io {
        /// File path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line does not fit the table.
    #[error("{path}: line {line}: {message}")]
    Row {
        /// File path.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// A metrics table read back from `metrics.csv`: `rows[r][c]` is column `columns[c]` of the
/// r-th row, `None` where the cell is empty (a mean over nothing). Columns are the file's
/// header, so a file from a newer or older version with other columns still reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsTable {
    /// Column names, in file order.
    pub columns: Vec<String>,
    /// One entry per row (per round), each as long as `columns`.
    pub rows: Vec<Vec<Option<f64>>>,
}

impl MetricsTable {
    /// Reads a `metrics.csv`.
    ///
    /// # Errors
    /// [`TableError`] naming the file and line for an unreadable file, a row of the wrong
    /// length or a cell that is not a number.
    pub fn read(path: &Path) -> Result<Self, TableError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Io {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text, &name)
    }

    /// Parses the text of a `metrics.csv`; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`MetricsTable::read`].
    pub fn parse(text: &str, origin: &str) -> Result<Self, TableError> {
        let err = |line: usize, message: String| TableError::Row {
            path: origin.to_string(),
            line: line as u64 + 1,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(err(0, "empty file: expected a header line".into()));
        };
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != columns.len() {
                return Err(err(
                    i,
                    format!(
                        "{} cells, expected {} (the header's)",
                        cells.len(),
                        columns.len()
                    ),
                ));
            }
            let row = cells
                .iter()
                .zip(&columns)
                .map(|(c, name)| {
                    let c = c.trim();
                    if c.is_empty() {
                        Ok(None)
                    } else {
                        c.parse::<f64>()
                            .map(Some)
                            .map_err(|_| err(i, format!("column `{name}`: {c:?} is not a number")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(row);
        }
        Ok(Self { columns, rows })
    }

    /// Index of a column, if the table has it.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// One column's values over the rows, or `None` when the table has no such column.
    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let c = self.column_index(name)?;
        Some(self.rows.iter().map(|r| r[c]).collect())
    }

    /// The mean of a column over the rows where it is defined; `None` when it is nowhere
    /// defined or absent.
    pub fn mean(&self, name: &str) -> Option<f64> {
        let vals: Vec<f64> = self.column(name)?.into_iter().flatten().collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
    }

    /// The last defined value of a column.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.column(name)?.into_iter().rev().flatten().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_empty_cells_as_undefined_and_computes_means() {
        let t = MetricsTable::parse("round,mean_rating\n1,3.5\n2,\n3,4.5\n", "m.csv").unwrap();
        assert_eq!(t.columns, vec!["round", "mean_rating"]);
        assert_eq!(
            t.column("mean_rating").unwrap(),
            vec![Some(3.5), None, Some(4.5)]
        );
        // (3.5 + 4.5) / 2 over the two defined rows.
        assert_eq!(t.mean("mean_rating"), Some(4.0));
        assert_eq!(t.last("mean_rating"), Some(4.5));
        assert_eq!(t.column("nope"), None);
    }

    #[test]
    fn parse_names_the_line_and_column_of_a_bad_cell() {
        let e = MetricsTable::parse("round,watches\n1,2\n2,x\n", "m.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.csv: line 3: column `watches`: \"x\" is not a number"
        );
        let e = MetricsTable::parse("round,watches\n1\n", "m.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.csv: line 2: 1 cells, expected 2 (the header's)"
        );
    }

    #[test]
    fn columns_are_unique() {
        let mut c = COLUMNS.to_vec();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), COLUMNS.len());
    }
}
