//! Domain identifiers. Ids come from the data files (the CSV `id` column) and are what every output
//! names; bevy's `Entity` never appears in an output or a sort key.

use std::fmt;

use bevy_ecs::component::Component;
use serde::{Deserialize, Serialize};

/// A simulated user (agent), keyed by the `id` column of the user file.
#[derive(
    Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UserId(pub u32);

/// A catalogue item (movie), keyed by the `id` column of the item file.
#[derive(
    Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ItemId(pub u32);

/// A broadcast post, numbered in creation order (round, then author id) from 0.
#[derive(
    Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PostId(pub u64);

/// A lookup by id offset (`id - first id`), for ids handed out nearly densely (catalogue
/// ids, post ids): one index instead of a search per lookup, millions of times a round at
/// scale. Built only while the ids span at most `per_entry` ids per entry (plus 1,024), so a
/// sparse numbering costs no memory: [`OffsetTable::new`] then returns `None` and the caller
/// keeps its search.
#[derive(Clone, Debug, Default)]
pub struct OffsetTable<T> {
    first: u64,
    slots: Vec<Option<T>>,
}

impl<T: Copy> OffsetTable<T> {
    /// The table of `entries` (id, value), in any order; the first entry of a repeated id
    /// wins. `None` when there are no entries or the ids are too sparse.
    pub fn new(entries: &[(u64, T)], per_entry: u64) -> Option<Self> {
        let first = entries.iter().map(|e| e.0).min()?;
        let last = entries.iter().map(|e| e.0).max()?;
        let span = last - first + 1;
        if span
            > per_entry
                .saturating_mul(entries.len() as u64)
                .saturating_add(1024)
        {
            return None;
        }
        let mut slots = vec![None; span as usize];
        for &(id, v) in entries.iter().rev() {
            slots[(id - first) as usize] = Some(v);
        }
        Some(Self { first, slots })
    }

    /// The value of `id`, if it has one.
    pub fn get(&self, id: u64) -> Option<T> {
        let off = id.checked_sub(self.first)?;
        self.slots
            .get(usize::try_from(off).ok()?)
            .copied()
            .flatten()
    }
}

/// Position of `id` in `sorted` (ascending, no repeats), if present.
///
/// Tries `id - sorted[0]` first: data files number their users densely (0..n or 1..n), and
/// then the lookup is one comparison instead of a binary search, whose ~20 cache misses per call
/// dominated loading a million agents' ten million edges. Any other numbering falls back to the
/// binary search, with the same answer.
pub fn sorted_position<T: Copy + Ord + Into<u64>>(sorted: &[T], id: T) -> Option<usize> {
    let first = *sorted.first()?;
    let guess = id.into().checked_sub(first.into()).map(|g| g as usize);
    if let Some(g) = guess {
        if sorted.get(g) == Some(&id) {
            return Some(g);
        }
    }
    sorted.binary_search(&id).ok()
}

impl From<UserId> for u64 {
    fn from(u: UserId) -> u64 {
        u64::from(u.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unordered entries with a gap and a repeated id (the first wins), lookups below, inside
    /// and past the span; 3 entries 10,000 apart are too sparse (20,001 > 4 × 3 + 1,024).
    #[test]
    fn offset_table_finds_each_id_and_refuses_sparse_ids() {
        let t = OffsetTable::new(&[(12, 'c'), (10, 'a'), (14, 'd'), (10, 'z')], 4).unwrap();
        let got: Vec<Option<char>> = (8..17).map(|id| t.get(id)).collect();
        let want = [
            None,
            None,
            Some('a'),
            None,
            Some('c'),
            None,
            Some('d'),
            None,
            None,
        ];
        assert_eq!(got, want);
        assert_eq!(t.get(u64::MAX), None);
        assert!(OffsetTable::new(&[(5, 0), (10_005, 1), (20_005, 2)], 4).is_none());
        assert!(OffsetTable::<u8>::new(&[], 4).is_none());
    }

    #[test]
    fn sorted_position_finds_dense_and_sparse_ids_and_nothing_else() {
        let dense: Vec<u32> = (1..=5).collect();
        assert_eq!(sorted_position(&dense, 1), Some(0));
        assert_eq!(sorted_position(&dense, 5), Some(4));
        assert_eq!(sorted_position(&dense, 0), None);
        assert_eq!(sorted_position(&dense, 6), None);
        // Gaps: the guess misses and the binary search answers.
        let sparse = [UserId(3), UserId(4), UserId(10), UserId(11), UserId(40)];
        assert_eq!(sorted_position(&sparse, UserId(10)), Some(2));
        assert_eq!(sorted_position(&sparse, UserId(40)), Some(4));
        assert_eq!(sorted_position(&sparse, UserId(5)), None);
        assert_eq!(sorted_position(&sparse, UserId(2)), None);
        assert_eq!(sorted_position::<u32>(&[], 0), None);
    }
}
