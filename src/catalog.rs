//! The item catalogue: one copy of every item's text, looked up by dense index or id, plus a
//! title/word index for the `search` action.

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

use crate::ids::ItemId;
use crate::io::data::ItemRecord;

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

/// One item.
#[derive(Clone, Debug)]
pub struct Item {
    /// Id from the data file.
    pub id: ItemId,
    /// Title.
    pub title: Arc<str>,
    /// Genres.
    pub genres: GenreSet,
    /// One-line description (may be empty).
    pub description: Arc<str>,
}

/// Errors building a catalogue.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// More than 32 distinct genres.
    #[error(
        "the catalogue has more than 32 distinct genres (found {0:?}); at most 32 are supported"
    )]
    TooManyGenres(Vec<String>),
}

/// The catalogue resource. Items are stored in id order; `idx` is the position in that order.
#[derive(Resource, Clone, Debug)]
pub struct Catalog {
    items: Vec<Item>,
    genre_names: Vec<String>,
    /// Normalised title -> item indices (ascending).
    titles: BTreeMap<String, Vec<u32>>,
    /// Word -> item indices whose title or description contains it (ascending, deduplicated).
    words: BTreeMap<String, Vec<u32>>,
}

/// Lower-cases, drops punctuation and moves a trailing article ("Matrix, The") to the front, so
/// "The Matrix", "Matrix, The" and "the matrix!" compare equal. A trailing `(1999)` year is dropped.
pub fn normalize_title(t: &str) -> String {
    let mut s = t.trim().to_lowercase();
    if let Some(open) = s.rfind('(') {
        let tail = s[open + 1..].trim_end_matches(')');
        if tail.len() == 4 && tail.chars().all(|c| c.is_ascii_digit()) {
            s.truncate(open);
        }
    }
    let s = s.trim().to_string();
    let s = [
        "the", "a", "an", "les", "la", "le", "il", "el", "das", "der", "die",
    ]
    .iter()
    .find_map(|art| {
        s.strip_suffix(&format!(", {art}"))
            .map(|rest| format!("{art} {rest}"))
    })
    .unwrap_or(s);
    words_of(&s).join(" ")
}

/// Lower-case alphanumeric words of `s`.
pub fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

const STOP_WORDS: [&str; 24] = [
    "a", "an", "the", "of", "and", "or", "in", "on", "to", "is", "it", "its", "for", "with", "by",
    "at", "as", "from", "that", "this", "his", "her", "their", "who",
];

impl Catalog {
    /// Builds the catalogue from loaded records (sorted by id here).
    ///
    /// # Errors
    /// [`CatalogError::TooManyGenres`] when the records use more than 32 genres.
    pub fn new(mut records: Vec<ItemRecord>) -> Result<Self, CatalogError> {
        records.sort_by_key(|r| r.id);
        let mut genre_names: Vec<String> = Vec::new();
        let mut items = Vec::with_capacity(records.len());
        for r in records {
            let mut g = 0u32;
            for name in &r.genres {
                let pos = match genre_names.iter().position(|n| n == name) {
                    Some(p) => p,
                    None => {
                        genre_names.push(name.clone());
                        genre_names.len() - 1
                    }
                };
                if pos >= 32 {
                    return Err(CatalogError::TooManyGenres(genre_names));
                }
                g |= 1 << pos;
            }
            items.push(Item {
                id: ItemId(r.id),
                title: r.title.into(),
                genres: GenreSet(g),
                description: r.description.into(),
            });
        }
        let mut titles: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut words: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            titles
                .entry(normalize_title(&it.title))
                .or_default()
                .push(i as u32);
            let mut ws = words_of(&it.title);
            ws.extend(words_of(&it.description));
            ws.sort();
            ws.dedup();
            for w in ws {
                if !STOP_WORDS.contains(&w.as_str()) {
                    words.entry(w).or_default().push(i as u32);
                }
            }
        }
        Ok(Self {
            items,
            genre_names,
            titles,
            words,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Item at dense index `idx` (`0..len()`, id order).
    pub fn get(&self, idx: u32) -> &Item {
        &self.items[idx as usize]
    }
    /// All items in id order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }
    /// Dense index of an id.
    pub fn index_of(&self, id: ItemId) -> Option<u32> {
        self.items
            .binary_search_by_key(&id, |i| i.id)
            .ok()
            .map(|i| i as u32)
    }
    /// Item by id.
    pub fn by_id(&self, id: ItemId) -> Option<&Item> {
        self.index_of(id).map(|i| self.get(i))
    }
    /// Genre names; bit `b` of a [`GenreSet`] is `genre_names()[b]`.
    pub fn genre_names(&self) -> &[String] {
        &self.genre_names
    }
    /// The set of the named genres known to the catalogue (unknown names are ignored).
    pub fn genre_set(&self, names: &[&str]) -> GenreSet {
        GenreSet(names.iter().fold(0, |acc, n| {
            acc | self
                .genre_names
                .iter()
                .position(|g| g.eq_ignore_ascii_case(n))
                .map_or(0, |p| 1 << p)
        }))
    }
    /// First genre name of an item, or `""`.
    pub fn first_genre(&self, idx: u32) -> &str {
        self.get(idx)
            .genres
            .iter()
            .next()
            .map_or("", |g| self.genre_names[g].as_str())
    }

    /// Items whose normalised title equals the query's (ascending index).
    pub fn exact_title(&self, query: &str) -> &[u32] {
        self.titles
            .get(&normalize_title(query))
            .map_or(&[], Vec::as_slice)
    }

    /// Every normalised title ([`normalize_title`]) with its item indices (ascending), in
    /// title order. Used by fuzzy title matching ([`crate::social::detect_mentions`]).
    pub fn normalized_titles(&self) -> impl Iterator<Item = (&str, &[u32])> {
        self.titles.iter().map(|(t, v)| (t.as_str(), v.as_slice()))
    }

    /// Title search for the `search` action: up to `k` item indices, best first.
    ///
    /// Ranking: exact title matches (normalised, see [`normalize_title`]) first; then items by the
    /// number of distinct query words in their title (weight 3) and description (weight 1);
    /// ties by index. Stop words are ignored. Returns nothing when no word matches.
    pub fn search(&self, query: &str, k: usize) -> Vec<u32> {
        let mut out: Vec<u32> = self.exact_title(query).to_vec();
        let mut qw = words_of(query);
        qw.sort();
        qw.dedup();
        qw.retain(|w| !STOP_WORDS.contains(&w.as_str()));
        let mut score: BTreeMap<u32, u32> = BTreeMap::new();
        for w in &qw {
            if let Some(list) = self.words.get(w) {
                for &i in list {
                    let in_title = words_of(&self.items[i as usize].title)
                        .iter()
                        .any(|t| t == w);
                    *score.entry(i).or_default() += if in_title { 3 } else { 1 };
                }
            }
        }
        let mut ranked: Vec<(u32, u32)> = score
            .into_iter()
            .filter(|(i, _)| !out.contains(i))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(ranked.into_iter().map(|(i, _)| i));
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u32, title: &str, genres: &[&str], d: &str) -> ItemRecord {
        ItemRecord {
            id,
            title: title.into(),
            genres: genres.iter().map(|s| s.to_string()).collect(),
            description: d.into(),
        }
    }

    #[test]
    fn normalises_titles() {
        assert_eq!(normalize_title("Matrix, The"), "the matrix");
        assert_eq!(normalize_title("The Matrix (1999)"), "the matrix");
        assert_eq!(normalize_title("  Run, Mira, Run! "), "run mira run");
    }

    #[test]
    fn search_ranks_exact_title_first() {
        let c = Catalog::new(vec![
            rec(2, "Space Cowboys", &["Action"], "Old pilots go to space."),
            rec(0, "Space", &["Sci-Fi"], "A quiet film."),
            rec(
                1,
                "Matrix, The",
                &["Sci-Fi", "Action"],
                "A hacker learns the world is a simulation in space.",
            ),
        ])
        .unwrap();
        assert_eq!(c.items()[0].id, ItemId(0));
        assert_eq!(c.search("The Matrix", 3), vec![1]);
        // "space": exact title (idx 0), then title word (idx 2, score 3+1), then description (idx 1).
        assert_eq!(c.search("space", 3), vec![0, 2, 1]);
        assert!(c.search("zebra", 3).is_empty());
        assert_eq!(c.genre_set(&["sci-fi"]), GenreSet(1));
        assert_eq!(c.first_genre(1), "Sci-Fi");
    }
}
