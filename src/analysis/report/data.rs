//! Reading a run's output folder for a report.

use std::path::Path;

use super::ReportError;
use crate::analysis::MetricsTable;

/// Reads `<dir>/metrics.csv`.
///
/// # Errors
/// [`ReportError::NotARun`] when the folder has none, [`ReportError::Metrics`] when it is
/// malformed.
pub(crate) fn read_metrics(dir: &Path) -> Result<MetricsTable, ReportError> {
    let path = dir.join("metrics.csv");
    if !path.is_file() {
        return Err(ReportError::NotARun {
            dir: dir.to_path_buf(),
            file: "metrics.csv",
        });
    }
    Ok(MetricsTable::read(&path)?)
}
