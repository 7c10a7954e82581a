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
