//! The item catalogue: one copy of every item's text, looked up by dense index or id, plus a
//! title/word index for the `search` action.

// One concept per file: the catalogue types here, word/title search in `search`, the HNSW
// item index in `index`, its checksummed on-disk store in `store`.
mod hnsw;
mod index;
mod search;
mod store;

pub use crate::domain::GenreSet;
pub use hnsw::{UnitDot, HNSW_RS_VERSION};
pub use index::{index_dirs, item_text, user_cache_dir, IndexDirs, ItemIndex};
pub use search::{normalize_title, words_of};

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_ecs::resource::Resource;

use crate::ids::ItemId;
use crate::io::data::ItemRecord;
use search::STOP_WORDS;

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
    /// Vector index over item embeddings, when attached ([`Catalog::attach_index`]).
    index: Option<Arc<ItemIndex>>,
}

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
            index: None,
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

    /// Attaches a vector index; [`Catalog::search`] then ranks by embedding similarity.
    pub fn attach_index(&mut self, index: impl Into<Arc<ItemIndex>>) {
        self.index = Some(index.into());
    }

    /// The attached vector index, if any.
    pub fn index(&self) -> Option<&ItemIndex> {
        self.index.as_deref()
    }
}
