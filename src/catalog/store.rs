//! The checksummed on-disk store of the item index: embeddings and HNSW graph dumps, their
//! file keys, digests and `.sum` files, and the quiet `catch_unwind` around hnsw_rs's loader.

use super::hnsw::{UnitDot, HNSW_LAYERS, HNSW_RS_VERSION};

/// Version of our graph persistence (file naming and `.sum` layout); part of the file key.
const GRAPH_FORMAT: u32 = 1;
/// The hnsw_rs dump format version ([`hnsw_rs::hnswio::Description::format_version`]) that
/// [`HNSW_RS_VERSION`] writes; a graph file announcing another one is not loaded.
const HNSW_DUMP_FORMAT: usize = 4;

/// The first 12 bytes of a digest in lower-case hex.
pub(super) fn hex12(d: &[u8]) -> String {
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Key of a graph built over the embeddings `emb_hash` with these parameters on this platform.
pub(super) fn graph_key(emb_hash: &str, m: usize, ef_construction: usize, layers: usize) -> String {
    use sha2::{Digest, Sha256};
    hex12(&Sha256::digest(
        graph_key_text(emb_hash, m, ef_construction, layers).as_bytes(),
    ))
}

/// What [`graph_key`] hashes: every input that changes the dumped graph or its format.
pub(super) fn graph_key_text(
    emb_hash: &str,
    m: usize,
    ef_construction: usize,
    layers: usize,
) -> String {
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
pub(super) fn load_embeddings(
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
pub(super) fn save_embeddings(
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
pub(super) fn dump_graph(
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
pub(super) fn load_graph(
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
    use std::sync::Arc;

    use super::*;
    use crate::catalog::index::tests::{setup, top10};
    use crate::catalog::ItemIndex;

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
}
