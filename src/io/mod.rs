//! Input loaders and output writers.

pub mod blob;
pub mod data;
pub mod output;
pub mod parquet;

use std::path::Path;

/// Reads a JSON Lines file of `T` (blank lines skipped): the intervention and role-play logs.
///
/// # Errors
/// A message naming the file, and the line that does not parse.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}
