//! The HNSW item index: [`ItemIndex`] over item embeddings ([`item_text`]), its distance
//! ([`UnitDot`]), the HNSW parameters and the hnsw_rs version its graphs are keyed by.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::store::{dump_graph, graph_key, hex12, load_embeddings, load_graph, save_embeddings};
use super::Catalog;

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
    /// Past searches' results (see [`ItemIndex::search`]).
    searches: SearchMemo,
}

/// Searches remembered by [`ItemIndex::search`], keyed by (query, k, ef): with the offline
/// model a million agents search a few thousand titles (the items they heard of), and each
/// search embeds its query and walks the graph (4.4 s of pool CPU in the third round at 1M
/// agents, docs/PERFORMANCE.md). Both are pure for a pure embedder, so a remembered result is the one
/// the search would give; at most [`SEARCH_MEMO_LEN`] are kept (all are dropped when full,
/// which changes no result either).
#[derive(Default)]
struct SearchMemo(std::sync::Mutex<SearchResults>);

/// (query, k, ef) → hits, as [`ItemIndex::search`] returns them.
type SearchResults = std::collections::HashMap<(Box<str>, usize, usize), Arc<[(u32, f32)]>>;

/// Most searches [`SearchMemo`] keeps (about 20 MiB with 30 hits each).
const SEARCH_MEMO_LEN: usize = 1 << 16;

impl std::fmt::Debug for ItemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemIndex")
            .field("embedder", &self.embedder.id())
            .field("len", &self.len)
            .field("ef", &self.ef)
            .finish()
    }
}

use super::hnsw::{UnitDot, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_LAYERS, HNSW_M};

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
            searches: SearchMemo::default(),
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
        let dirs = IndexDirs {
            read: dirs.to_vec(),
            write: dirs.to_vec(),
        };
        Self::load_or_build_in(catalog, embedder, &dirs)
    }

    /// [`ItemIndex::load_or_build`] reading from `dirs.read` and writing to `dirs.write` (so a
    /// prebuilt index in a read-only folder is used and nothing is written there).
    ///
    /// # Errors
    /// The embedder failed (only asked when neither the graph nor the embeddings are found).
    pub fn load_or_build_in(
        catalog: &Catalog,
        embedder: Arc<dyn crate::embed::Embedder>,
        dirs: &IndexDirs,
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
        for d in &dirs.read {
            match load_graph(d, &base, dim) {
                Ok(Some(hnsw)) => {
                    return Ok(Self {
                        hnsw,
                        embedder,
                        len: texts.len(),
                        loaded: true,
                        ef: HNSW_EF_SEARCH,
                        searches: SearchMemo::default(),
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
        let cached =
            dirs.read
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
                for d in &dirs.write {
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
            for d in &dirs.write {
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
        dirs: &IndexDirs,
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
        let ix = Arc::new(Self::load_or_build_in(catalog, embedder, dirs)?);
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

    /// Items nearest to the embedded `query` with cosine > 0, best first (at most `k`);
    /// `None` when embedding failed. With a pure embedder the results are remembered
    /// ([`SearchMemo`]).
    pub fn search(&self, query: &str, k: usize) -> Option<Arc<[(u32, f32)]>> {
        let pure = self.embedder.pure();
        let key = (Box::<str>::from(query), k, self.ef);
        if pure {
            if let Some(hits) = self.memo().get(&key) {
                return Some(hits.clone());
            }
        }
        let v = match self.embedder.embed_batch(&[query]) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("item search: cannot embed the query, using word search: {e}");
                return None;
            }
        };
        let hits: Arc<[(u32, f32)]> = self
            .nearest(&v[0], k)
            .into_iter()
            .filter(|h| h.1 < 1.0)
            .collect();
        if pure {
            let mut memo = self.memo();
            if memo.len() >= SEARCH_MEMO_LEN {
                memo.clear();
            }
            memo.insert(key, hits.clone());
        }
        Some(hits)
    }

    /// The search memo, locked (a poisoned lock still holds complete entries: each is
    /// inserted whole).
    fn memo(&self) -> std::sync::MutexGuard<'_, SearchResults> {
        self.searches.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the persisted item index is looked for and where it is written: a graph or
/// embeddings file is read from the first of `read` that holds a verified copy, and what had to
/// be built is written to the first of `write` that accepts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexDirs {
    /// Folders read from, in order.
    pub read: Vec<std::path::PathBuf>,
    /// Folders written to (the first that works), in order.
    pub write: Vec<std::path::PathBuf>,
}

/// The user's cache folder for recagent: `$RECAGENT_CACHE_DIR`, else `$XDG_CACHE_HOME/recagent`
/// (XDG Base Directory Specification; only an absolute path counts), else
/// `$HOME/.cache/recagent`; `None` when none of them is set.
pub fn user_cache_dir() -> Option<std::path::PathBuf> {
    cache_dir_from(
        std::env::var_os("RECAGENT_CACHE_DIR"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`user_cache_dir`] from the three variables' values (empty values count as unset).
fn cache_dir_from(
    own: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    let set =
        |v: Option<std::ffi::OsString>| v.filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    if let Some(d) = set(own) {
        return Some(d);
    }
    if let Some(d) = set(xdg).filter(|d| d.is_absolute()) {
        return Some(d.join("recagent"));
    }
    set(home).map(|h| h.join(".cache").join("recagent"))
}

/// The folders of the persisted item index. With `index_dir` (`memory.index_dir`, already
/// resolved) that folder only, read and written. Otherwise nothing is ever written beside the
/// input data: a prebuilt index in `.recagent-index/` beside the item file (one shipped with
/// the data, never for the embedded demo data, `item_file: None`) is read first, then
/// `<cache>/index` ([`user_cache_dir`]), then `<out_dir>/index`; what is built goes to the
/// cache, or to `<out_dir>/index` when there is no cache folder or it cannot be written. File
/// names carry the catalogue's and embedder's hash and the hnsw_rs version
/// ([`ItemIndex::load_or_build`]), so one cache serves every data set.
pub fn index_dirs(
    index_dir: Option<&std::path::Path>,
    item_file: Option<&std::path::Path>,
    out_dir: &std::path::Path,
) -> IndexDirs {
    if let Some(d) = index_dir {
        return IndexDirs {
            read: vec![d.to_path_buf()],
            write: vec![d.to_path_buf()],
        };
    }
    let mut write: Vec<std::path::PathBuf> = user_cache_dir()
        .map(|c| c.join("index"))
        .into_iter()
        .collect();
    write.push(out_dir.join("index"));
    let mut read: Vec<std::path::PathBuf> = item_file
        .and_then(std::path::Path::parent)
        .map(|p| p.join(".recagent-index"))
        .into_iter()
        .collect();
    read.extend(write.iter().cloned());
    IndexDirs { read, write }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::catalog::store::graph_key_text;
    use crate::catalog::HNSW_RS_VERSION;

    /// RecAgent's 3,883 items when `../shared` is present, else the demo catalogue; the first
    /// `n` items only.
    fn catalogue(n: usize) -> Catalog {
        let path = crate::io::data::shared_or_demo_items_path();
        let mut items = crate::io::data::load_items(crate::io::data::Source::Path(&path)).unwrap();
        items.truncate(n);
        Catalog::new(items).unwrap()
    }

    pub(crate) fn top10(ix: &ItemIndex, queries: &[Vec<f32>]) -> Vec<Vec<(u32, u32)>> {
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

    pub(crate) fn setup(
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

    /// The hash embedder, counting its calls and saying it is pure or not.
    struct Counting(
        crate::embed::HashEmbedder,
        std::sync::atomic::AtomicUsize,
        bool,
    );

    impl crate::embed::Embedder for Counting {
        fn id(&self) -> String {
            self.0.id()
        }
        fn dim(&self) -> usize {
            self.0.dim
        }
        fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, crate::embed::EmbedError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.embed_batch(texts)
        }
        fn pure(&self) -> bool {
            self.2
        }
    }

    #[test]
    fn a_repeated_search_is_remembered_only_with_a_pure_embedder() {
        let (_, _, vecs, _) = setup(400);
        for pure in [true, false] {
            let e = Arc::new(Counting(
                crate::embed::HashEmbedder::default(),
                Default::default(),
                pure,
            ));
            let mut ix = ItemIndex::from_vectors(&vecs, e.clone());
            let calls = || e.1.load(std::sync::atomic::Ordering::Relaxed);
            let fresh = |ix: &ItemIndex, q: &str, k: usize| -> Vec<(u32, f32)> {
                let v = crate::embed::HashEmbedder::default().embed(q);
                ix.nearest(&v, k)
                    .into_iter()
                    .filter(|h| h.1 < 1.0)
                    .collect()
            };
            let first = ix.search("Toy Story", 5).unwrap();
            assert_eq!(first.len(), 5);
            assert_eq!(&first[..], &fresh(&ix, "Toy Story", 5)[..]);
            assert_eq!(ix.search("Toy Story", 5).unwrap(), first);
            // Another k and another breadth are other searches.
            let seven = ix.search("Toy Story", 7).unwrap();
            assert_eq!(&seven[..], &fresh(&ix, "Toy Story", 7)[..]);
            ix.ef = 2 * HNSW_EF_SEARCH;
            assert_eq!(
                &ix.search("Toy Story", 5).unwrap()[..],
                &fresh(&ix, "Toy Story", 5)[..]
            );
            assert_eq!(calls(), if pure { 3 } else { 4 }, "pure: {pure}");
        }
    }

    #[test]
    fn the_cache_folder_follows_recagent_cache_dir_then_xdg_then_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let p = std::path::PathBuf::from;
        assert_eq!(cache_dir_from(os("/c"), os("/x"), os("/h")), Some(p("/c")));
        assert_eq!(
            cache_dir_from(None, os("/x"), os("/h")),
            Some(p("/x/recagent"))
        );
        assert_eq!(
            cache_dir_from(os(""), os(""), os("/h")),
            Some(p("/h/.cache/recagent"))
        );
        // A relative XDG_CACHE_HOME is invalid by the specification: ignored.
        assert_eq!(
            cache_dir_from(None, os("rel"), os("/h")),
            Some(p("/h/.cache/recagent"))
        );
        assert_eq!(cache_dir_from(None, None, None), None);
    }

    #[test]
    fn the_data_folder_is_read_but_never_written() {
        let data = std::path::Path::new("/data/item.csv");
        let out = std::path::Path::new("/out");
        let d = index_dirs(None, Some(data), out);
        assert_eq!(
            d.read.first().unwrap(),
            std::path::Path::new("/data/.recagent-index")
        );
        assert!(d.write.iter().all(|w| !w.starts_with("/data")), "{d:?}");
        assert_eq!(d.write.last().unwrap(), std::path::Path::new("/out/index"));
        assert_eq!(d.read[1..], d.write[..]);
        // The embedded demo data has no folder; `memory.index_dir` is the only folder.
        assert!(index_dirs(None, None, out)
            .read
            .iter()
            .all(|r| !r.ends_with(".recagent-index")));
        let own = std::path::Path::new("/ix");
        let d = index_dirs(Some(own), Some(data), out);
        assert_eq!(
            (d.read, d.write),
            (vec![own.to_path_buf()], vec![own.to_path_buf()])
        );
    }
}
