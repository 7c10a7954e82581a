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
    /// Vector index over item embeddings, when attached ([`Catalog::attach_index`]).
    index: Option<Arc<ItemIndex>>,
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

    /// Attaches a vector index; [`Catalog::search`] then ranks by embedding similarity.
    pub fn attach_index(&mut self, index: impl Into<Arc<ItemIndex>>) {
        self.index = Some(index.into());
    }

    /// The attached vector index, if any.
    pub fn index(&self) -> Option<&ItemIndex> {
        self.index.as_deref()
    }

    /// Search for the `search` action: up to `k` item indices, best first.
    ///
    /// With a vector index attached: exact title matches first (ascending index), then the index's
    /// nearest items by cosine similarity of the query's embedding (only those with cosine > 0).
    /// If the query cannot be embedded, or without an index, the word ranking below is used.
    pub fn search(&self, query: &str, k: usize) -> Vec<u32> {
        if let Some(ix) = &self.index {
            if let Some(hits) = ix.search(query, k) {
                let mut out: Vec<u32> = self.exact_title(query).to_vec();
                out.extend(
                    hits.into_iter()
                        .map(|h| h.0)
                        .filter(|i| !out.contains(i))
                        .collect::<Vec<_>>(),
                );
                out.truncate(k);
                return out;
            }
        }
        self.word_search(query, k)
    }

    /// Word search: up to `k` item indices, best first.
    ///
    /// Ranking: exact title matches (normalised, see [`normalize_title`]) first; then items by the
    /// number of distinct query words in their title (weight 3) and description (weight 1);
    /// ties by index. Stop words are ignored. Returns nothing when no word matches.
    pub fn word_search(&self, query: &str, k: usize) -> Vec<u32> {
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

/// The text of an item that the vector index embeds: `"{title}. {genres}. {description}"`.
pub fn item_text(c: &Catalog, idx: u32) -> String {
    let it = c.get(idx);
    let genres: Vec<&str> = it
        .genres
        .iter()
        .map(|g| c.genre_names[g].as_str())
        .collect();
    format!("{}. {}. {}", it.title, genres.join(", "), it.description)
}

/// An HNSW index (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
/// using Hierarchical Navigable Small World graphs", TPAMI 2018; crate `hnsw_rs`) over item
/// embeddings ([`item_text`]), cosine distance ([`UnitDot`]) on unit vectors. Inserted sequentially in index order, so the graph
/// (and every search result) is deterministic (hnsw_rs draws layers from a fixed seed).
///
/// The embeddings are persisted in `dir/items-<hash>.f32` (little-endian `f32`, `len × dim`),
/// where `hash` is the SHA-256 of the embedder id and every item text; a changed catalogue or
/// embedder gives a new file. The graph itself is rebuilt at load (well under a second for the
/// 3,883 MovieLens items).
pub struct ItemIndex {
    hnsw: hnsw_rs::hnsw::Hnsw<'static, f32, UnitDot>,
    embedder: Arc<dyn crate::embed::Embedder>,
    len: usize,
    /// Search breadth `ef` (≥ k is used).
    pub ef: usize,
}

impl std::fmt::Debug for ItemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemIndex")
            .field("embedder", &self.embedder.id())
            .field("len", &self.len)
            .field("ef", &self.ef)
            .finish()
    }
}

/// Cosine distance of unit vectors, `max(0, 1 − a·b)`, in [0, 2]. Our own distance type rather
/// than hnsw_rs's `DistDot`: that one `assert!`s `1 − a·b ≥ 0`, which rounding can break for
/// (near-)duplicates (stack notes §3), and its scalar loop does not vectorise. The dot product
/// here sums 8 interleaved lanes (vectorisable), then the lanes in order: deterministic.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnitDot;

impl hnsw_rs::prelude::Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut d: f32 = acc.iter().sum();
        d += ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>();
        (1.0 - d).max(0.0)
    }
}

/// HNSW parameters: neighbours per node (M), construction breadth, default search breadth.
const HNSW_M: usize = 12;
const HNSW_EF_CONSTRUCTION: usize = 48;
const HNSW_EF_SEARCH: usize = 64;

impl ItemIndex {
    /// Builds an index over `vectors` (one unit vector per catalogue item, index order).
    pub fn from_vectors(vectors: &[Vec<f32>], embedder: Arc<dyn crate::embed::Embedder>) -> Self {
        Self::with_params(vectors, embedder, HNSW_M, HNSW_EF_CONSTRUCTION)
    }

    /// [`ItemIndex::from_vectors`] with explicit HNSW parameters: `m` neighbours per node
    /// (2..=64) and construction breadth `ef_construction` (≥ `m`).
    pub fn with_params(
        vectors: &[Vec<f32>],
        embedder: Arc<dyn crate::embed::Embedder>,
        m: usize,
        ef_construction: usize,
    ) -> Self {
        let n = vectors.len().max(1);
        let layers = 16.min((n as f32).ln().ceil().max(1.0) as usize);
        let hnsw =
            hnsw_rs::hnsw::Hnsw::new(m.clamp(2, 64), n, layers, ef_construction.max(m), UnitDot);
        for (i, v) in vectors.iter().enumerate() {
            // Skip empty texts (zero vectors): they are never hits.
            if v.iter().any(|x| *x != 0.0) {
                hnsw.insert((v.as_slice(), i));
            }
        }
        Self {
            hnsw,
            embedder,
            len: vectors.len(),
            ef: HNSW_EF_SEARCH,
        }
    }

    /// Loads the persisted item embeddings for this catalogue and embedder from the first of `dirs`
    /// that holds them, or embeds the items and writes them to the first of `dirs` that accepts
    /// the write (failures are logged, not fatal; a read-only data folder is skipped), then builds
    /// the graph.
    ///
    /// # Errors
    /// The embedder failed.
    pub fn load_or_build(
        catalog: &Catalog,
        embedder: Arc<dyn crate::embed::Embedder>,
        dirs: &[std::path::PathBuf],
    ) -> Result<Self, crate::embed::EmbedError> {
        use sha2::{Digest, Sha256};
        let texts: Vec<String> = (0..catalog.len() as u32)
            .map(|i| item_text(catalog, i))
            .collect();
        let dim = embedder.dim();
        let mut h = Sha256::new();
        h.update(embedder.id().as_bytes());
        for t in &texts {
            h.update([0u8]);
            h.update(t.as_bytes());
        }
        let hex: String = h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("items-{hex}.f32");
        let cached = dirs
            .iter()
            .filter_map(|d| std::fs::read(d.join(&name)).ok())
            .find(|b| b.len() == texts.len() * dim * 4);
        let vectors: Vec<Vec<f32>> = match cached {
            Some(b) => b
                .chunks_exact(dim * 4)
                .map(|row| {
                    row.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                })
                .collect(),
            None => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let v = embedder.embed_batch(&refs)?;
                let bytes: Vec<u8> = v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
                for d in dirs {
                    let p = d.join(&name);
                    match std::fs::create_dir_all(d)
                        .and_then(|()| crate::io::output::write_atomic(&p, &bytes))
                    {
                        Ok(()) => break,
                        Err(e) => tracing::info!(
                            "item index: cannot persist embeddings to {}: {e}",
                            p.display()
                        ),
                    }
                }
                v
            }
        };
        Ok(Self::from_vectors(&vectors, embedder))
    }

    /// Like [`ItemIndex::load_or_build`], but memoised per process by (embedder id, item texts):
    /// several simulations over one catalogue (tests, sweeps) share one graph. The build is
    /// deterministic, so sharing changes no result.
    ///
    /// # Errors
    /// The embedder failed.
    pub fn shared(
        catalog: &Catalog,
        embedder: Arc<dyn crate::embed::Embedder>,
        dirs: &[std::path::PathBuf],
    ) -> Result<Arc<Self>, crate::embed::EmbedError> {
        use sha2::{Digest, Sha256};
        static MEMO: std::sync::Mutex<BTreeMap<[u8; 32], Arc<ItemIndex>>> =
            std::sync::Mutex::new(BTreeMap::new());
        let mut h = Sha256::new();
        h.update(embedder.id().as_bytes());
        for i in 0..catalog.len() as u32 {
            h.update([0u8]);
            h.update(item_text(catalog, i).as_bytes());
        }
        let key: [u8; 32] = h.finalize().into();
        let mut memo = MEMO
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ix) = memo.get(&key) {
            return Ok(ix.clone());
        }
        let ix = Arc::new(Self::load_or_build(catalog, embedder, dirs)?);
        memo.insert(key, ix.clone());
        Ok(ix)
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no item is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `k` nearest items to a unit vector: `(item index, cosine distance = 1 − cos)`, nearest
    /// first, ties by index.
    pub fn nearest(&self, q: &[f32], k: usize) -> Vec<(u32, f32)> {
        if k == 0 || q.iter().all(|x| *x == 0.0) {
            return Vec::new();
        }
        let mut hits: Vec<(u32, f32)> = self
            .hnsw
            .search(q, k, self.ef.max(k))
            .into_iter()
            .map(|n| (n.d_id as u32, n.distance))
            .collect();
        hits.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        hits
    }

    /// Items nearest to the embedded `query` with cosine > 0; `None` when embedding failed.
    pub fn search(&self, query: &str, k: usize) -> Option<Vec<(u32, f32)>> {
        match self.embedder.embed_batch(&[query]) {
            Ok(v) => Some(
                self.nearest(&v[0], k)
                    .into_iter()
                    .filter(|h| h.1 < 1.0)
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!("item search: cannot embed the query, using word search: {e}");
                None
            }
        }
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
