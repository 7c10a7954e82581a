//! Leaf domain types shared by the loaders, the catalogue and the components.

use serde::{Deserialize, Serialize};

/// Up to 32 genres as a bit set over the catalogue's genre table.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GenreSet(pub u32);

impl GenreSet {
    /// Number of genres in the set.
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }
    /// True when empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Genres in both sets.
    pub fn intersect(self, o: GenreSet) -> GenreSet {
        GenreSet(self.0 & o.0)
    }
    /// Genres in either set.
    pub fn union(self, o: GenreSet) -> GenreSet {
        GenreSet(self.0 | o.0)
    }
    /// Genre indices in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..32).filter(move |b| self.0 & (1 << b) != 0)
    }
}

/// RecAgent's five feature codes (spec §5.2) as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSet(pub u8);

impl FeatureSet {
    /// Picks and watches movies and gives ratings.
    pub const WATCHER: u8 = 1;
    /// Searches for movies heard of.
    pub const EXPLORER: u8 = 2;
    /// Demanding; criticises movies and the recommender.
    pub const CRITIC: u8 = 4;
    /// Private chats; trusts friends.
    pub const CHATTER: u8 = 8;
    /// Likes public posting.
    pub const POSTER: u8 = 16;

    /// The bit of a code as written in `user_1000.csv` (case-insensitive), or `None`.
    pub fn code(s: &str) -> Option<u8> {
        match s.trim().to_ascii_lowercase().as_str() {
            "watcher" => Some(Self::WATCHER),
            "explorer" => Some(Self::EXPLORER),
            "critic" => Some(Self::CRITIC),
            "chatter" => Some(Self::CHATTER),
            "poster" => Some(Self::POSTER),
            _ => None,
        }
    }

    /// True when the set holds `bit`.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// The sentences RecAgent turns the codes into (spec §5.2), joined with spaces.
    pub fn describe(self) -> String {
        const TEXT: [(u8, &str); 5] = [
            (
                FeatureSet::WATCHER,
                "Watcher: picks movies to watch and rates them.",
            ),
            (
                FeatureSet::EXPLORER,
                "Explorer: searches for movies heard of from others.",
            ),
            (
                FeatureSet::CRITIC,
                "Critic: demanding, criticises movies and the recommender system.",
            ),
            (
                FeatureSet::CHATTER,
                "Chatter: enjoys private chats and trusts friends' opinions.",
            ),
            (
                FeatureSet::POSTER,
                "Poster: likes to post publicly about movies.",
            ),
        ];
        TEXT.iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
