//! Warm start: an initial interaction set read before round 1, so the recommender starts trained.
//!
//! Two formats, told apart by the first non-blank line: MovieLens `ratings.dat`
//! (`UserID::MovieID::Rating::Timestamp`, every rating kept as a watch with its stars) or an
//! implicit file (`user item item ...`, e.g. Agent4Rec's `cf_data/train.txt`, watches unrated).
//!
//! Id mapping: file user ids are matched to the simulation's user ids and file item ids to the
//! catalogue's item ids (`ItemId`), then turned into dense indices. This is the identity on ids
//! when the file and the data share an id space (ML-1M `ratings.dat` with `movies.dat`/`users.dat`;
//! Agent4Rec's `cf_data` with its `movie_detail.csv` and remapped users). Users of the file who are
//! not agents become *background users* with indices after the agents (ascending id order): their
//! interactions train the model but they never act. Items not in the catalogue are dropped,
//! counted in [`WarmReport::unknown_items`] and logged by the caller.

use std::collections::BTreeMap;
use std::path::Path;

use super::eval::{parse_implicit, RecDataError};

/// One initial interaction by file ids: (user id, item id, rating 1..=5 or 0 if implicit).
pub type RawInteraction = (u32, u32, u8);

/// Reads an initial interaction file (format detected, see the module docs).
///
/// # Errors
/// [`RecDataError`] naming the file, line and token.
pub fn load_initial(path: &Path) -> Result<Vec<RawInteraction>, RecDataError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RecDataError::Io {
        path: origin.clone(),
        error: source,
    })?;
    parse_initial(&text, &origin)
}

/// Parses the text of an initial interaction file (see [`load_initial`]); `origin` names it in
/// errors.
///
/// # Errors
/// [`RecDataError::Parse`] naming the line and token.
pub fn parse_initial(text: &str, origin: &str) -> Result<Vec<RawInteraction>, RecDataError> {
    let origin = origin.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.contains("::") {
        let lists = parse_implicit(text, &origin)?;
        return Ok(lists
            .into_iter()
            .flat_map(|(u, l)| l.into_iter().map(move |i| (u, i, 0)))
            .collect());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim().split("::").collect();
        let bad_as = |t: &str, expected| RecDataError::Parse {
            path: origin.clone(),
            line: n + 1,
            token: t.to_string(),
            expected,
        };
        let bad = |t: &str| bad_as(t, "a non-negative integer id");
        if f.len() < 3 {
            return Err(bad_as(line, "a `UserID::MovieID::Rating::Timestamp` line"));
        }
        let u: u32 = f[0].parse().map_err(|_| bad(f[0]))?;
        let i: u32 = f[1].parse().map_err(|_| bad(f[1]))?;
        let r: u8 = f[2]
            .parse()
            .ok()
            .filter(|r| (1..=5).contains(r))
            .ok_or_else(|| bad_as(f[2], "a rating 1..=5"))?;
        out.push((u, i, r));
    }
    Ok(out)
}

/// What a warm start loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WarmReport {
    /// Interactions in the file.
    pub records: usize,
    /// Interactions kept (known item).
    pub kept: usize,
    /// Interactions dropped because the item id is not in the catalogue.
    pub unknown_items: usize,
    /// Distinct agents with at least one kept interaction.
    pub agent_users: usize,
    /// Distinct non-agent users (background users) with at least one kept interaction.
    pub background_users: usize,
}

/// Interactions by dense index, ready for `InteractionLog::add_initial`.
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    /// (user index, item index, rating), in file order.
    pub pairs: Vec<(u32, u32, u8)>,
    /// Number of background users (indices `n_agents..n_agents + n_background`).
    pub n_background: usize,
    /// Counts.
    pub report: WarmReport,
}

/// Maps file ids to dense indices (see the module docs). `agent_index(user_id)` gives an agent's
/// roster index (`0..n_agents`), `item_index(item_id)` a catalogue index.
pub fn map_initial(
    records: &[RawInteraction],
    n_agents: usize,
    agent_index: impl Fn(u32) -> Option<u32>,
    item_index: impl Fn(u32) -> Option<u32>,
) -> WarmStart {
    let mut background: BTreeMap<u32, u32> = BTreeMap::new();
    for &(u, i, _) in records {
        if agent_index(u).is_none() && item_index(i).is_some() {
            background.insert(u, 0);
        }
    }
    for (n, v) in background.values_mut().enumerate() {
        *v = (n_agents + n) as u32;
    }
    let mut w = WarmStart {
        n_background: background.len(),
        ..Default::default()
    };
    let mut agents_seen = std::collections::BTreeSet::new();
    w.report.records = records.len();
    for &(u, i, r) in records {
        let Some(ix) = item_index(i) else {
            w.report.unknown_items += 1;
            continue;
        };
        let ux = match agent_index(u) {
            Some(a) => {
                agents_seen.insert(a);
                a
            }
            None => background[&u],
        };
        w.pairs.push((ux, ix, r));
    }
    w.report.kept = w.pairs.len();
    w.report.agent_users = agents_seen.len();
    w.report.background_users = background.len();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ml = dir.path().join("ratings.dat");
        std::fs::write(&ml, "1::1193::5::978300760\n\n2::661::3::978302109\n").unwrap();
        assert_eq!(load_initial(&ml).unwrap(), vec![(1, 1193, 5), (2, 661, 3)]);
        let imp = dir.path().join("train.txt");
        std::fs::write(&imp, "0 5 6\n1 7\n").unwrap();
        assert_eq!(
            load_initial(&imp).unwrap(),
            vec![(0, 5, 0), (0, 6, 0), (1, 7, 0)]
        );
        std::fs::write(&ml, "1::1193::5::9\n1::12::9::9\n").unwrap();
        let e = load_initial(&ml).unwrap_err().to_string();
        assert!(e.ends_with(":2: \"9\" is not a rating 1..=5"), "{e}");
    }

    #[test]
    fn maps_agents_background_and_unknown_items() {
        // Agents are users 10 and 20 (indices 0, 1); catalogue has items 5 -> 0 and 6 -> 1.
        let agent = |u: u32| match u {
            10 => Some(0),
            20 => Some(1),
            _ => None,
        };
        let item = |i: u32| match i {
            5 => Some(0),
            6 => Some(1),
            _ => None,
        };
        let recs = [(20, 5, 0), (99, 6, 4), (10, 7, 0), (30, 5, 0), (99, 5, 0)];
        let w = map_initial(&recs, 2, agent, item);
        assert_eq!(w.pairs, vec![(1, 0, 0), (3, 1, 4), (2, 0, 0), (3, 0, 0)]);
        assert_eq!(w.n_background, 2);
        assert_eq!(
            w.report,
            WarmReport {
                records: 5,
                kept: 4,
                unknown_items: 1,
                agent_users: 1,
                background_users: 2
            }
        );
    }
}
