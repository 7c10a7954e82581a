//! Compatibility with RecAgent's configuration files: the key names of its README (aliases of
//! today's names), the keys it has that recagent does not use (accepted, with a logged note
//! saying why), and what a file's keys were, for those notes and for errors.
//!
//! Two versions of RecAgent's README example exist: v1 (`model`, `epoch`, `num_agents`,
//! `index_name`, ...) and the current one (the keys of spec §6: `rec_model`, `round`,
//! `agent_num`, `ckpt_path`, `verbose`, ...). Both load unchanged.

use std::collections::{BTreeMap, BTreeSet};

/// An old key name accepted for a current one.
#[derive(Clone, Copy, Debug)]
pub struct Alias {
    /// The name RecAgent's README (v1) used.
    pub old: &'static str,
    /// The key it stands for (a core key of [`super::SimConfig`]).
    pub new: &'static str,
}

/// The accepted old names. Giving an old name and its new one in the same file is an error
/// naming both and their lines. Every target is a core key with a matching
/// `#[serde(alias)]` on its field (checked by a test).
pub const ALIASES: &[Alias] = &[
    // RecAgent README v1 (and its web UI's settings form, spec §6).
    Alias {
        old: "model",
        new: "rec_model",
    },
    // In RecAgent's README v1, `epoch` is the number of simulation rounds (its later config
    // calls `round` "epochs" in a comment); MF's training epochs are `epoch_num`.
    Alias {
        old: "epoch",
        new: "round",
    },
    Alias {
        old: "num_agents",
        new: "agent_num",
    },
];

/// The current name of `key` (itself when it is no alias).
pub fn canonical(key: &str) -> &str {
    ALIASES.iter().find(|a| a.old == key).map_or(key, |a| a.new)
}

/// RecAgent keys recagent accepts and does not use, each with the reason given in the note a
/// run logs when the file sets it.
pub const UNUSED: &[(&str, &str)] = &[
    (
        "index_name",
        "it names RecAgent's FAISS title index; recagent keeps its own item index (see `memory.index_dir`)",
    ),
    (
        "ckpt_path",
        "it names RecAgent's MF weight files; recagent's checkpoints (`checkpoint_every`, `simulator_dir`) hold the model's state",
    ),
    (
        "verbose",
        "RecAgent does not read it either; recagent's log level is the RECAGENT_LOG variable",
    ),
];

/// What the configuration file itself said (not part of the configuration's JSON).
#[derive(Clone, Debug, Default)]
pub struct FileFacts {
    /// Top-level keys the file gives, by their current names.
    pub given: BTreeSet<String>,
    /// Old names the file uses, with the names they are read as.
    pub aliased: Vec<(String, String)>,
    /// Keys inside the core sections (`offline.x`, `memory.x`, `llm_options.x`) that are not
    /// settings; reported with every other unknown key when the simulation is built.
    pub unknown_nested: Vec<String>,
    /// The file's relative paths resolve against the working directory (RecAgent's
    /// convention), because its data files are there and not beside the file.
    pub paths_from_cwd: bool,
    /// The flag each command-line override came from (`--agents 0`, `--set page_size=abc`),
    /// by top-level key, for errors.
    pub flags: BTreeMap<String, String>,
}

/// Line (1-based) of the first line of `text` whose indentation holds a tab, which YAML
/// forbids (`\tround: 3`); a tab after the indentation (`round:\t3`) is allowed and ignored.
pub(crate) fn tab_indented_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let indent = &l[..l.len() - l.trim_start().len()];
            indent.contains('\t') && !l.trim().is_empty()
        })
        .map(|i| i + 1)
}

/// The nearest of `known` to `key` (Levenshtein distance at most 2, ties by name), for "did you
/// mean" hints.
pub(crate) fn nearest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(k, key), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_in_indentation_only() {
        assert_eq!(tab_indented_line("seed: 1\n\tround: 3\n"), Some(2));
        assert_eq!(tab_indented_line("seed: 1\n  \t round: 3\n"), Some(2));
        assert_eq!(tab_indented_line("seed: 1\nround:\t3\n"), None);
        assert_eq!(tab_indented_line("seed: 1\n\t\nround: 3\n"), None);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("model"), "rec_model");
        assert_eq!(canonical("epoch"), "round");
        assert_eq!(canonical("num_agents"), "agent_num");
        assert_eq!(canonical("epoch_num"), "epoch_num");
    }

    #[test]
    fn nearest_key() {
        let known = ["page_size", "rec_model", "round"];
        assert_eq!(nearest("page_sise", known), Some("page_size"));
        assert_eq!(nearest("rec_modle", known), Some("rec_model"));
        assert_eq!(nearest("something", known), None);
    }
}
