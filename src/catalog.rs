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
/// Persisted by [`ItemIndex::load_or_build`] in an index folder:
/// - `items-<hash>.f32`: the embeddings (little-endian `f32`, `len × dim`), where `hash` is the
///   SHA-256 of the embedder id and every item text, so a changed catalogue or embedder gives a
///   new file (an `openai` embedder is not asked again when only the graph parameters change);
/// - `items-<hash>.f32.sum`: length and SHA-256 of the embeddings file, written last; embeddings
///   that do not match it, or hold a non-finite value, are recomputed (with a logged warning);
/// - `items-<hash>-g<key>.hnsw.{graph,data}`: the graph, in hnsw_rs's own dump format, with `key`
///   the SHA-256 of `hash`, the HNSW parameters, the hnsw_rs version and this platform's
///   endianness and word size (the dump is native-endian);
/// - `items-<hash>-g<key>.hnsw.sum`: lengths and SHA-256 of both graph files, written last.
///
/// A graph is trusted only when its `.sum` matches both files: a crash mid-write, a truncated or
/// corrupt file, or a missing one gives a logged warning and a rebuild, never a panic (hnsw_rs's
/// loader itself panics or exits on malformed input, so it only ever sees verified bytes whose
/// header fits; should a forged `.sum` get bad bytes past that, the loader's panic is caught
/// and not printed).
/// Reloading the 3,883 MovieLens items takes a fraction of the build time (see
/// `cargo bench --bench memory`); searches give the same results either way.
pub struct ItemIndex {
    hnsw: hnsw_rs::hnsw::Hnsw<'static, f32, UnitDot>,
    embedder: Arc<dyn crate::embed::Embedder>,
    len: usize,
    loaded: bool,
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
/// Layers of the graph: hnsw_rs's maximum, the only count its dump accepts. Levels are drawn as
/// `floor(−ln u / ln M)`, so a level ≥ 9 (the former `ceil(ln n)` cap for 3,883 items) has
/// probability 12⁻⁹ per item: the graph is the same as with the former cap (tested).
const HNSW_LAYERS: usize = 16;
/// Version of our graph persistence (file naming and `.sum` layout); part of the file key.
const GRAPH_FORMAT: u32 = 1;
/// The hnsw_rs version whose dump format the persisted graphs use; part of the graph key, so a
/// graph dumped by another version is rebuilt, not handed to this version's loader. Must equal
/// the exact `hnsw_rs` pin in Cargo.toml and the version in Cargo.lock (checked by a test).
pub const HNSW_RS_VERSION: &str = "0.3.5";
/// The hnsw_rs dump format version ([`hnsw_rs::hnswio::Description::format_version`]) that
/// [`HNSW_RS_VERSION`] writes; a graph file announcing another one is not loaded.
const HNSW_DUMP_FORMAT: usize = 4;

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
        Self::build(vectors, embedder, m, ef_construction, HNSW_LAYERS)
    }

    fn build(
        vectors: &[Vec<f32>],
        embedder: Arc<dyn crate::embed::Embedder>,
        m: usize,
        ef_construction: usize,
        layers: usize,
    ) -> Self {
        let n = vectors.len().max(1);
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
            loaded: false,
            ef: HNSW_EF_SEARCH,
        }
    }

    /// Loads the persisted graph for this catalogue, embedder and the default parameters from the
    /// first of `dirs` that holds a verified copy (see the type docs). Otherwise loads the
    /// persisted item embeddings (or embeds the items), builds the graph, and writes what was
    /// missing to the first of `dirs` that accepts the write (failures are logged, not fatal; a
    /// read-only data folder is skipped). Writes are atomic (temporary name, fsync, rename).
    ///
    /// Every process that reloads a graph leaks one small loader (~200 bytes): hnsw_rs ties the
    /// reloaded graph's lifetime to it, and the index is kept for the whole run
    /// ([`ItemIndex::shared`] loads each catalogue once per process).
    ///
    /// # Errors
    /// The embedder failed (only asked when neither the graph nor the embeddings are on disk).
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
        let hex = hex12(&h.finalize());
        let base = format!(
            "items-{hex}-g{}",
            graph_key(&hex, HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_LAYERS)
        );
        for d in dirs {
            match load_graph(d, &base, dim) {
                Ok(Some(hnsw)) => {
                    return Ok(Self {
                        hnsw,
                        embedder,
                        len: texts.len(),
                        loaded: true,
                        ef: HNSW_EF_SEARCH,
                    })
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "item index: persisted graph {} is unusable ({e}); rebuilding it",
                    d.join(&base).display()
                ),
            }
        }
        let name = format!("items-{hex}.f32");
        let cached = dirs
            .iter()
            .find_map(|d| match load_embeddings(d, &name, texts.len(), dim) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(
                        "item index: persisted embeddings {} are unusable ({e}); recomputing them",
                        d.join(&name).display()
                    );
                    None
                }
            });
        let vectors: Vec<Vec<f32>> = match cached {
            Some(v) => v,
            None => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let v = embedder.embed_batch(&refs)?;
                let bytes: Vec<u8> = v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
                for d in dirs {
                    match save_embeddings(d, &name, &bytes, texts.len(), dim) {
                        Ok(()) => break,
                        Err(e) => tracing::info!(
                            "item index: cannot persist embeddings to {}: {e}",
                            d.join(&name).display()
                        ),
                    }
                }
                v
            }
        };
        let ix = Self::from_vectors(&vectors, embedder);
        // An empty graph (no item text) is instant to build and has no entry point to dump.
        if ix.hnsw.get_nb_point() > 0 {
            for d in dirs {
                match dump_graph(&ix.hnsw, d, &base, dim) {
                    Ok(()) => break,
                    Err(e) => tracing::info!(
                        "item index: cannot persist the graph to {}: {e}",
                        d.display()
                    ),
                }
            }
        }
        Ok(ix)
    }

    /// True when the graph was reloaded from disk rather than built in this process.
    pub fn was_loaded(&self) -> bool {
        self.loaded
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

/// The first 12 bytes of a digest in lower-case hex.
fn hex12(d: &[u8]) -> String {
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Key of a graph built over the embeddings `emb_hash` with these parameters on this platform.
fn graph_key(emb_hash: &str, m: usize, ef_construction: usize, layers: usize) -> String {
    use sha2::{Digest, Sha256};
    hex12(&Sha256::digest(
        graph_key_text(emb_hash, m, ef_construction, layers).as_bytes(),
    ))
}

/// What [`graph_key`] hashes: every input that changes the dumped graph or its format.
fn graph_key_text(emb_hash: &str, m: usize, ef_construction: usize, layers: usize) -> String {
    format!(
        "{emb_hash}|hnsw_rs-{HNSW_RS_VERSION}|UnitDot|M{m}|efc{ef_construction}|L{layers}|fmt{GRAPH_FORMAT}|{}|{}",
        if cfg!(target_endian = "little") { "le" } else { "be" },
        usize::BITS
    )
}

/// Length and SHA-256 (hex) of a file.
fn file_digest(p: &std::path::Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    Ok((
        len,
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// SHA-256 (hex) of a byte slice.
fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The embeddings' `.sum` text: format line, items, dimension, then length and digest of the
/// `.f32` file.
fn embeddings_sum(items: usize, dim: usize, bytes: &[u8]) -> String {
    format!(
        "recagent-embeddings {GRAPH_FORMAT}\nitems {items}\ndim {dim}\nf32 {} {}\n",
        bytes.len(),
        sha256_hex(bytes)
    )
}

/// Reads the persisted embeddings `dir/name` (`items × dim` little-endian `f32`) when its
/// `name.sum` matches them and every value is finite. `Ok(None)` when there is no file;
/// `Err` with the reason when the file is unverified (no `.sum`, from an older version or a
/// write that did not finish), does not match its `.sum`, or holds non-finite values.
fn load_embeddings(
    dir: &std::path::Path,
    name: &str,
    items: usize,
    dim: usize,
) -> Result<Option<Vec<Vec<f32>>>, String> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() != items * dim * 4 {
        return Err(format!(
            "{} bytes, {} expected for {items} items of dimension {dim}",
            bytes.len(),
            items * dim * 4
        ));
    }
    let Ok(sum) = std::fs::read_to_string(dir.join(format!("{name}.sum"))) else {
        return Err("no .sum file to verify it against".into());
    };
    if sum != embeddings_sum(items, dim, &bytes) {
        return Err("the file does not match its .sum (truncated, corrupt or half-written)".into());
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "item {} has a non-finite value ({})",
            i / dim.max(1),
            values[i]
        ));
    }
    if dim == 0 {
        return Ok(Some(vec![Vec::new(); items]));
    }
    Ok(Some(
        values.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
    ))
}

/// Writes the embeddings `bytes` as `dir/name`, then their `name.sum` (each atomically; the
/// `.sum` last, so a crash in between leaves a file that is not trusted). Non-finite values
/// are not persisted.
fn save_embeddings(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
    items: usize,
    dim: usize,
) -> std::io::Result<()> {
    if bytes
        .chunks_exact(4)
        .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    {
        return Err(std::io::Error::other(
            "the embedder returned non-finite values",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let sum_path = dir.join(format!("{name}.sum"));
    // A stale `.sum` must not vouch for the new file should the process stop in between.
    match std::fs::remove_file(&sum_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    crate::io::output::write_atomic(&dir.join(name), bytes)?;
    crate::io::output::write_atomic(&sum_path, embeddings_sum(items, dim, bytes).as_bytes())
}

/// The `.sum` text: format line, points, dimension, then length and digest of each file.
fn graph_sum(points: usize, dim: usize, graph: (u64, String), data: (u64, String)) -> String {
    format!(
        "recagent-hnsw {GRAPH_FORMAT}\npoints {points}\ndim {dim}\ngraph {} {}\ndata {} {}\n",
        graph.0, graph.1, data.0, data.1
    )
}

/// Dumps `hnsw` as `dir/base.hnsw.{graph,data,sum}`: into a fresh temporary folder inside `dir`,
/// fsynced, renamed into place, the `.sum` last (atomically), so a crash at any point leaves
/// either no `.sum` or one that does not match, and the files are rebuilt.
fn dump_graph(
    hnsw: &hnsw_rs::hnsw::Hnsw<'static, f32, UnitDot>,
    dir: &std::path::Path,
    base: &str,
    dim: usize,
) -> std::io::Result<()> {
    use hnsw_rs::api::AnnT;
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".tmp-{base}-{}-{nanos}", std::process::id()));
    // A folder we just created is writable, so hnsw_rs's file creation (which panics on
    // failure) succeeds.
    std::fs::create_dir(&tmp)?;
    let result = (|| {
        let name = hnsw
            .file_dump(&tmp, base)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut digests = Vec::new();
        for ext in ["graph", "data"] {
            let from = tmp.join(format!("{name}.hnsw.{ext}"));
            std::fs::File::open(&from)?.sync_all()?;
            digests.push(file_digest(&from)?);
        }
        for ext in ["graph", "data"] {
            std::fs::rename(
                tmp.join(format!("{name}.hnsw.{ext}")),
                dir.join(format!("{base}.hnsw.{ext}")),
            )?;
        }
        let data = digests.pop().unwrap_or_default();
        let graph = digests.pop().unwrap_or_default();
        crate::io::output::write_atomic(
            &dir.join(format!("{base}.hnsw.sum")),
            graph_sum(hnsw.get_nb_point(), dim, graph, data).as_bytes(),
        )
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Reloads `dir/base.hnsw.*` when its `.sum` matches both files. `Ok(None)` when there is no
/// `.sum` (never written, or a write that did not finish); `Err` with the reason when the files
/// are missing, truncated, corrupt or do not fit `dim`.
fn load_graph(
    dir: &std::path::Path,
    base: &str,
    dim: usize,
) -> Result<Option<hnsw_rs::hnsw::Hnsw<'static, f32, UnitDot>>, String> {
    let sum_path = dir.join(format!("{base}.hnsw.sum"));
    let Ok(sum) = std::fs::read_to_string(&sum_path) else {
        return Ok(None);
    };
    let digest = |ext: &str| {
        file_digest(&dir.join(format!("{base}.hnsw.{ext}")))
            .map_err(|e| format!("{base}.hnsw.{ext}: {e}"))
    };
    let (graph, data) = (digest("graph")?, digest("data")?);
    let points = sum
        .lines()
        .find_map(|l| l.strip_prefix("points "))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or("the .sum file has no point count")?;
    if sum != graph_sum(points, dim, graph, data) {
        return Err(
            "the files do not match their .sum (truncated, corrupt or half-written)".into(),
        );
    }
    let loaded = quiet_catch_unwind(|| -> Result<_, String> {
        // hnsw_rs's loader trusts the header's sizes: check them first.
        let mut f = std::fs::File::open(dir.join(format!("{base}.hnsw.graph")))
            .map_err(|e| format!("{base}.hnsw.graph: {e}"))?;
        let d = hnsw_rs::hnswio::load_description(&mut f)
            .map_err(|e| format!("hnsw_rs header: {e}"))?;
        if d.format_version != HNSW_DUMP_FORMAT
            || d.nb_point != points
            || d.dimension != dim
            || usize::from(d.nb_layer) != HNSW_LAYERS
        {
            return Err(format!(
                "the graph header does not fit (format {}, {} points, dimension {}, {} layers)",
                d.format_version, d.nb_point, d.dimension, d.nb_layer
            ));
        }
        // hnsw_rs ties the graph's lifetime to its loader; the index lives for the run (see
        // `ItemIndex::load_or_build`).
        let io: &'static mut hnsw_rs::hnswio::HnswIo =
            Box::leak(Box::new(hnsw_rs::hnswio::HnswIo::new(dir, base)));
        io.load_hnsw::<f32, UnitDot>()
            .map_err(|e| format!("hnsw_rs: {e}"))
    });
    match loaded {
        Ok(Ok(h)) if h.get_nb_point() == points => Ok(Some(h)),
        Ok(Ok(h)) => Err(format!(
            "{} points loaded, {points} expected",
            h.get_nb_point()
        )),
        Ok(Err(e)) => Err(e),
        Err(msg) => Err(format!(
            "hnsw_rs's loader failed: {}",
            msg.lines().next().unwrap_or_default()
        )),
    }
}

thread_local! {
    /// Set while [`quiet_catch_unwind`] runs on this thread: panics here are not printed.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`std::panic::catch_unwind`] that keeps the panic hook from printing this thread's panic
/// (other threads' panics are printed as before); the panic message is returned instead.
///
/// The first call wraps the process's panic hook once (the previous hook is kept and called
/// for every panic not silenced here).
fn quiet_catch_unwind<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    static WRAP: std::sync::Once = std::sync::Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was));
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into())
    })
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

    /// RecAgent's 3,883 items when `../shared` is present, else the demo catalogue; the first
    /// `n` items only.
    fn catalogue(n: usize) -> Catalog {
        let path = crate::io::data::shared_or_demo_items_path();
        let mut items = crate::io::data::load_items(crate::io::data::Source::Path(&path)).unwrap();
        items.truncate(n);
        Catalog::new(items).unwrap()
    }

    fn top10(ix: &ItemIndex, queries: &[Vec<f32>]) -> Vec<Vec<(u32, u32)>> {
        queries
            .iter()
            .map(|q| {
                ix.nearest(q, 10)
                    .into_iter()
                    .map(|(i, d)| (i, d.to_bits()))
                    .collect()
            })
            .collect()
    }

    fn setup(
        n: usize,
    ) -> (
        Catalog,
        Arc<dyn crate::embed::Embedder>,
        Vec<Vec<f32>>,
        Vec<Vec<f32>>,
    ) {
        let cat = catalogue(n);
        let e = crate::embed::HashEmbedder::default();
        let vecs: Vec<Vec<f32>> = (0..cat.len() as u32)
            .map(|i| e.embed(&item_text(&cat, i)))
            .collect();
        let mut queries: Vec<Vec<f32>> = (0..cat.len())
            .step_by(7)
            .map(|i| e.embed(&cat.get(i as u32).description))
            .collect();
        queries.extend(
            [
                "animated family movies",
                "war",
                "a romantic comedy in Paris",
            ]
            .map(|q| e.embed(q)),
        );
        (cat, Arc::new(e), vecs, queries)
    }

    #[test]
    fn persisted_graph_reloads_with_the_same_search_results() {
        let (cat, e, vecs, queries) = setup(usize::MAX);
        let fresh = top10(&ItemIndex::from_vectors(&vecs, e.clone()), &queries);
        assert!(fresh.iter().filter(|h| h.len() == 10).count() > queries.len() / 2);
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let built = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        assert!(!built.was_loaded());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let ext: Vec<&str> = names
            .iter()
            .map(|n| n.rsplit('.').next().unwrap())
            .collect();
        assert_eq!(ext, ["data", "graph", "sum", "f32", "sum"], "{names:?}"); // no temporary left
        let loaded = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        assert!(loaded.was_loaded());
        assert_eq!(loaded.len(), cat.len());
        assert_eq!(top10(&built, &queries), fresh);
        assert_eq!(top10(&loaded, &queries), fresh);
        assert_eq!(
            loaded.search("Toy Story", 5).unwrap(),
            built.search("Toy Story", 5).unwrap()
        );
    }

    #[test]
    fn corrupt_truncated_or_missing_graph_files_are_rebuilt() {
        // 400 items keep the seven builds quick in a debug build.
        let (cat, e, vecs, queries) = setup(400);
        let fresh = top10(&ItemIndex::from_vectors(&vecs, e.clone()), &queries);
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        let file = |ext: &str| {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|f| f.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(ext))
                .unwrap()
        };
        type Damage = fn(&std::path::Path);
        let damages: [(&str, Damage); 5] = [
            (".hnsw.graph", |p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
            (".hnsw.data", |p| {
                let mut b = std::fs::read(p).unwrap();
                let n = b.len();
                b[n / 3] ^= 0x5a;
                std::fs::write(p, b).unwrap();
            }),
            (".hnsw.graph", |p| {
                // Garbage with a matching length: still caught by the digest.
                let n = std::fs::metadata(p).unwrap().len() as usize;
                std::fs::write(p, vec![0xffu8; n]).unwrap();
            }),
            (".hnsw.data", |p| std::fs::remove_file(p).unwrap()),
            (".hnsw.sum", |p| {
                std::fs::write(p, "recagent-hnsw 1\npoints x\n").unwrap()
            }),
        ];
        for (ext, damage) in damages {
            damage(&file(ext));
            let ix = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
            assert!(!ix.was_loaded(), "{ext}");
            assert_eq!(top10(&ix, &queries), fresh, "{ext}");
            // The rebuild rewrote the files: the next start loads them.
            let again = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
            assert!(again.was_loaded(), "{ext}");
            assert_eq!(top10(&again, &queries), fresh, "{ext}");
        }
        // A missing .sum (a write that never finished) means "not persisted": rebuilt.
        std::fs::remove_file(file(".hnsw.sum")).unwrap();
        assert!(!ItemIndex::load_or_build(&cat, e, &dirs)
            .unwrap()
            .was_loaded());
        // Another embedder dimension is another key: built anew, not loaded.
        let e128: Arc<dyn crate::embed::Embedder> =
            Arc::new(crate::embed::HashEmbedder { dim: 128 });
        assert!(!ItemIndex::load_or_build(&cat, e128.clone(), &dirs)
            .unwrap()
            .was_loaded());
        assert!(ItemIndex::load_or_build(&cat, e128, &dirs)
            .unwrap()
            .was_loaded());
    }

    /// The one file in `dir` whose name ends with `suffix`.
    fn file_ending(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
        let found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        assert_eq!(found.len(), 1, "{suffix}: {found:?}");
        found[0].clone()
    }

    #[test]
    fn corrupt_persisted_embeddings_are_recomputed_and_repaired() {
        let (cat, e, vecs, queries) = setup(300);
        let fresh = top10(&ItemIndex::from_vectors(&vecs, e.clone()), &queries);
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        let f32_path = file_ending(dir.path(), ".f32");
        let good = std::fs::read(&f32_path).unwrap();
        assert_eq!(good.len(), vecs.len() * e.dim() * 4);
        // Deterministic "random" floats of the right length, and all-NaN.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..good.len() / 4)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0).to_le_bytes()
            })
            .collect();
        let nans: Vec<u8> = (0..good.len() / 4)
            .flat_map(|_| f32::NAN.to_le_bytes())
            .collect();
        let sum_path = file_ending(dir.path(), ".f32.sum");
        let good_sum = std::fs::read_to_string(&sum_path).unwrap();
        // A NaN file with a `.sum` that matches it (forged): still rejected.
        let nan_sum = embeddings_sum(vecs.len(), e.dim(), &nans);
        type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let damages: Vec<Damage<'_>> = vec![
            (
                "random floats",
                Box::new(|| std::fs::write(&f32_path, &random).unwrap()),
            ),
            (
                "NaNs",
                Box::new(|| std::fs::write(&f32_path, &nans).unwrap()),
            ),
            (
                "NaNs with a matching .sum",
                Box::new(|| {
                    std::fs::write(&f32_path, &nans).unwrap();
                    std::fs::write(&sum_path, &nan_sum).unwrap();
                }),
            ),
            (
                "no .sum",
                Box::new(|| {
                    std::fs::write(&f32_path, &random).unwrap();
                    std::fs::remove_file(&sum_path).unwrap();
                }),
            ),
        ];
        for (what, damage) in damages {
            damage();
            // Without a usable graph the embeddings are read back to rebuild it.
            std::fs::remove_file(file_ending(dir.path(), ".hnsw.sum")).unwrap();
            let ix = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
            assert!(!ix.was_loaded(), "{what}");
            assert_eq!(top10(&ix, &queries), fresh, "{what}");
            assert_eq!(std::fs::read(&f32_path).unwrap(), good, "{what}: repaired");
            assert_eq!(
                std::fs::read_to_string(&sum_path).unwrap(),
                good_sum,
                "{what}"
            );
            let again = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
            assert!(again.was_loaded(), "{what}");
            assert_eq!(top10(&again, &queries), fresh, "{what}");
        }
        // Intact embeddings with their `.sum` are reused as they are.
        std::fs::remove_file(file_ending(dir.path(), ".hnsw.sum")).unwrap();
        let ix = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        assert_eq!(top10(&ix, &queries), fresh);
    }

    #[test]
    fn a_forged_graph_sum_gives_a_rebuild_not_a_panic() {
        let (cat, e, vecs, queries) = setup(200);
        let fresh = top10(&ItemIndex::from_vectors(&vecs, e.clone()), &queries);
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
        let sum_path = file_ending(dir.path(), ".hnsw.sum");
        let base = sum_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".hnsw.sum")
            .to_string();
        let forge = |ext: &str, at: usize, bytes: &[u8]| {
            let p = dir.path().join(format!("{base}.hnsw.{ext}"));
            let mut b = std::fs::read(&p).unwrap();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&p, b).unwrap();
            let digest = |ext: &str| file_digest(&dir.path().join(format!("{base}.hnsw.{ext}")));
            let sum = graph_sum(
                vecs.len(),
                e.dim(),
                digest("graph").unwrap(),
                digest("data").unwrap(),
            );
            std::fs::write(&sum_path, sum).unwrap();
        };
        // The data file's magic (hnsw_rs asserts it), then a huge point count in the graph
        // header (hnsw_rs would allocate for it).
        let cases: [(&str, usize, Vec<u8>); 2] = [
            ("data", 0, vec![0u8; 4]),
            (
                "graph",
                4 + 1 + 1 + 8 + 1 + 8,
                usize::MAX.to_ne_bytes().to_vec(),
            ),
        ];
        for (ext, at, bytes) in cases {
            forge(ext, at, &bytes);
            let ix = ItemIndex::load_or_build(&cat, e.clone(), &dirs).unwrap();
            assert!(!ix.was_loaded(), "{ext}");
            assert_eq!(top10(&ix, &queries), fresh, "{ext}");
        }
    }

    #[test]
    fn the_hnsw_rs_version_in_the_graph_key_is_the_locked_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        let locked: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| p.lines().any(|l| l.trim() == "name = \"hnsw_rs\""))
            .filter_map(|p| {
                p.lines()
                    .find_map(|l| l.trim().strip_prefix("version = \""))
                    .map(|v| v.trim_end_matches('"'))
            })
            .collect();
        assert_eq!(locked, [HNSW_RS_VERSION], "Cargo.lock");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let pin = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("hnsw_rs = "))
            .unwrap();
        assert_eq!(pin, format!("\"={HNSW_RS_VERSION}\""), "Cargo.toml pin");
        // And the graph key covers it.
        let text = graph_key_text("h", HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_LAYERS);
        assert!(
            text.contains(&format!("|hnsw_rs-{HNSW_RS_VERSION}|")),
            "{text}"
        );
    }

    #[test]
    fn sixteen_layers_build_the_same_graph_as_the_former_ln_n_cap() {
        let (_, e, vecs, queries) = setup(usize::MAX);
        let former = (vecs.len() as f32).ln().ceil() as usize;
        let old = ItemIndex::build(&vecs, e.clone(), HNSW_M, HNSW_EF_CONSTRUCTION, former);
        let new = ItemIndex::from_vectors(&vecs, e);
        assert_eq!(top10(&new, &queries), top10(&old, &queries));
    }
}
