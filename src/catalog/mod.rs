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

use crate::decision::words::{about_phrase, kind_phrase};
use crate::ids::{ItemId, OffsetTable};
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
    /// What the description says the item is about
    /// ([`about_phrase`](crate::decision::words::about_phrase)), found once here: the offline
    /// model's feelings, chats and posts ask for it millions of times a round at scale.
    pub about: Option<Arc<str>>,
    /// What kind of film the description says it is
    /// ([`kind_phrase`](crate::decision::words::kind_phrase)), found once here.
    pub kind: Option<Arc<str>>,
}

/// The id table of [`Catalog::index_of`] is kept while the ids span at most this many ids per
/// item (MovieLens-1M: 3,952 ids for 3,883 items).
const SLOT_SPAN_PER_ITEM: u64 = 4;

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
    /// The dense index by id offset, when the ids are dense enough
    /// ([`SLOT_SPAN_PER_ITEM`]); else [`Catalog::index_of`] binary-searches. Every shown,
    /// watched and rated item is looked up by id, millions of times a round at scale, and a
    /// binary search over the `Item`s touches a dozen of them (a cache miss each).
    slots: Option<OffsetTable<u32>>,
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
                about: about_phrase(&r.description).map(Arc::from),
                kind: kind_phrase(&r.description).map(Arc::from),
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
        let ids: Vec<(u64, u32)> = items
            .iter()
            .enumerate()
            .map(|(ix, it)| (u64::from(it.id.0), ix as u32))
            .collect();
        let slots = OffsetTable::new(&ids, SLOT_SPAN_PER_ITEM);
        Ok(Self {
            items,
            slots,
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
        if let Some(slots) = &self.slots {
            return slots.get(u64::from(id.0));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ids(ids: &[u32]) -> Catalog {
        Catalog::new(
            ids.iter()
                .map(|&id| ItemRecord {
                    id,
                    title: format!("Item {id}"),
                    genres: vec!["Drama".into()],
                    description: String::new(),
                })
                .collect(),
        )
        .expect("one genre")
    }

    /// The slot table and the binary search agree on present, missing, below-first and
    /// past-last ids; ids 10,000 apart keep the binary search (the table would be 20,001 slots
    /// for 3 items).
    #[test]
    fn index_of_finds_each_id_with_and_without_the_slot_table() {
        let dense = with_ids(&[7, 3, 4, 9, 12]);
        assert!(dense.slots.is_some());
        let sparse = with_ids(&[5, 10_005, 20_005]);
        assert!(sparse.slots.is_none());
        for (cat, ids) in [
            (&dense, [3u32, 4, 7, 9, 12]),
            (&sparse, [5, 10_005, 20_005, 5, 5]),
        ] {
            for (k, &id) in ids.iter().enumerate() {
                let ix = cat.index_of(ItemId(id)).expect("present");
                assert_eq!(cat.get(ix).id, ItemId(id));
                if cat.slots.is_none() {
                    continue;
                }
                assert_eq!(ix as usize, k, "id order");
            }
        }
        for id in [0, 2, 5, 6, 8, 10, 11, 13, 1_000, u32::MAX] {
            assert_eq!(dense.index_of(ItemId(id)), None, "id {id}");
        }
        for id in [0, 4, 6, 10_004, 20_006] {
            assert_eq!(sparse.index_of(ItemId(id)), None, "id {id}");
        }
        assert_eq!(with_ids(&[]).index_of(ItemId(0)), None);
    }
}
