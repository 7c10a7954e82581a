//! Memory and item-index figures (prints; `cargo bench --bench memory`).
//!
//! - retrieval time per agent with 20 / 200 long-term records (top-5, exact search);
//! - bytes per agent with 20 / 200 long-term records plus a full short-term memory;
//! - resident memory: `MEM_AGENTS` agents (default 100,000; 1,000,000 works with ~4 GB free) with
//!   20 long-term records each (unshared texts), as the process RSS delta (VmRSS of
//!   `/proc/self/status`) per agent and extrapolated to a million agents;
//! - item index: build and query time over `../shared/data/recagent/item.csv` (3,883 items) when
//!   present, else the bundled demo catalogue; recall@10 against brute force; time to build and
//!   persist the graph vs. to reload it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use recagent::catalog::{item_text, Catalog, ItemIndex};
use recagent::embed::{dot, HashEmbedder};
use recagent::io::data::{load_items, Source};
use recagent::memory::{
    approx_bytes, ltm_add, retrieve, LtmRecord, MemoryParams, MemoryState, QVec, StmEntry,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const TITLES: [&str; 8] = [
    "Toy Story",
    "Heat",
    "Jumanji",
    "Casino",
    "Sabrina",
    "GoldenEye",
    "Balto",
    "Nixon",
];

fn sentence(i: usize) -> String {
    format!(
        "Alice watched <{}> and rated it {} out of 5; she liked the {} and the pace of the story.",
        TITLES[i % 8],
        1 + i % 5,
        ["music", "actors", "plot", "ending"][i % 4]
    )
}

fn agent(n: usize, e: &HashEmbedder) -> MemoryState {
    let mut m = MemoryState::default();
    for i in 0..n {
        let t = sentence(i);
        let v = QVec::new(&e.embed(&t));
        ltm_add(
            &mut m,
            &t,
            0.63 + (i % 3) as f32 * 0.1,
            &v,
            i as f32 * 5.0,
            false,
        );
    }
    for i in 0..10 {
        let t = sentence(1000 + i);
        m.stm.push(StmEntry {
            emb: QVec::new(&e.embed(&t)),
            text: t.into(),
            importance: 0.7,
            enhancers: Vec::new(),
        });
    }
    m.ltm.shrink_to_fit();
    m.stm.shrink_to_fit();
    m.recalled = vec![0, 1, 2, 3, 4];
    m
}

/// Resident set size of this process in KiB (`VmRSS`), 0 when `/proc` is unavailable.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        })
        .unwrap_or(0)
}

/// Builds `n` agents with `records` long-term records each (distinct texts per agent, as in a
/// run) and returns the RSS growth in bytes per agent.
fn rss_per_agent(n: usize, records: usize, e: &HashEmbedder) -> f64 {
    let before = rss_kib();
    let mut agents: Vec<MemoryState> = Vec::with_capacity(n);
    for a in 0..n {
        let mut m = MemoryState::default();
        for i in 0..records {
            let t = sentence(a * 7 + i);
            let v = QVec::new(&e.embed(&t));
            ltm_add(&mut m, &t, 0.7, &v, i as f32, false);
        }
        m.recalled = vec![0, 1, 2, 3, 4];
        agents.push(m);
    }
    let after = rss_kib();
    black_box(&agents);
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

fn main() {
    let e = HashEmbedder::default();
    let n_agents: usize = std::env::var("MEM_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let per_agent = rss_per_agent(n_agents, 20, &e);
    println!(
        "resident memory, {n_agents} agents x 20 LTM records (dim {}): {:.0} bytes/agent RSS delta, {:.0} bytes/record; extrapolated to 1,000,000 agents: {:.2} GB",
        e.dim,
        per_agent,
        per_agent / 20.0,
        per_agent * 1e6 / 1e9
    );
    if std::env::var("MEM_ONLY_RSS").is_ok_and(|v| v == "1") {
        return;
    }
    let p = MemoryParams::default();
    println!(
        "memory (embed_dim {}, i8-quantised embeddings, dense or sparse layout)",
        e.dim
    );
    println!(
        "  before the compact layout (dense i8 Box<[i8]> + Arc<str> text per record, Vec doubling), same bench: size_of LtmRecord 48 B, StmEntry 64 B; 20 LTM + 10 STM: 12703 bytes/agent (8395 without STM); 200 LTM + 10 STM: 87358 bytes/agent; RSS 10373 bytes/agent (519 bytes/record) for 100,000 agents x 20 records, 10.37 GB extrapolated to 1M"
    );
    println!(
        "  size_of LtmRecord {} B, StmEntry {} B",
        std::mem::size_of::<LtmRecord>(),
        std::mem::size_of::<StmEntry>()
    );
    for dim in [256usize, 128] {
        let e = HashEmbedder { dim };
        let q = QVec::new(&e.embed("animated family movies"));
        for n in [20usize, 200] {
            let m = agent(n, &e);
            let reps = if n == 20 { 20_000 } else { 2_000 };
            let mut samples = Vec::new();
            for _ in 0..15 {
                let t = Instant::now();
                for _ in 0..reps {
                    black_box(retrieve(black_box(&m), &p, &q, 1000.0, 5));
                }
                samples.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            let ltm_only = MemoryState {
                stm: Vec::new(),
                ..m.clone()
            };
            println!(
                "  dim {dim}, {n:>3} LTM records + 10 STM: retrieval {:.2} µs/agent (median of 15); {} bytes/agent ({} without STM; texts unshared, ~{} B each)",
                median(samples) * 1e6,
                approx_bytes(&m),
                approx_bytes(&ltm_only),
                sentence(0).len()
            );
        }
    }
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/recagent/item.csv");
    let (name, items) = if shared.exists() {
        (
            "shared item.csv",
            load_items(Source::Path(&shared)).expect("shared item.csv loads"),
        )
    } else {
        let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/item.csv");
        (
            "demo data/item.csv",
            load_items(Source::Path(&demo)).expect("demo item.csv loads"),
        )
    };
    let cat = Catalog::new(items).expect("catalogue builds");
    let t = Instant::now();
    let vecs: Vec<Vec<f32>> = (0..cat.len() as u32)
        .map(|i| e.embed(&item_text(&cat, i)))
        .collect();
    let embed_s = t.elapsed().as_secs_f64();
    let queries: Vec<Vec<f32>> = (0..cat.len())
        .step_by(7)
        .map(|i| e.embed(&cat.get(i as u32).description))
        .collect();
    println!(
        "item index ({name}, {} items; embedding them took {:.3} s)",
        cat.len(),
        embed_s
    );
    for (m, efc, ef) in [(16, 100, 64), (12, 48, 64), (12, 48, 32), (8, 32, 32)] {
        let mut builds = Vec::new();
        let mut ix = None;
        for _ in 0..3 {
            let t = Instant::now();
            ix = Some(ItemIndex::with_params(&vecs, Arc::new(e), m, efc));
            builds.push(t.elapsed().as_secs_f64());
        }
        let mut ix = ix.expect("built");
        ix.ef = ef;
        let t = Instant::now();
        let hits: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| ix.nearest(q, 10).into_iter().map(|h| h.0).collect())
            .collect();
        let query_s = t.elapsed().as_secs_f64() / queries.len() as f64;
        let mut found = 0usize;
        for (q, got) in queries.iter().zip(&hits) {
            let mut exact: Vec<(f32, u32)> = vecs
                .iter()
                .enumerate()
                .map(|(i, v)| (dot(v, q), i as u32))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            found += exact[..10].iter().filter(|x| got.contains(&x.1)).count();
        }
        println!(
            "  M {m:>2}, ef_construction {efc:>3}, ef {ef:>2}: build {:.3} s (median of 3); query k=10 {:.1} µs; recall@10 {:.4} ({} queries)",
            median(builds),
            query_s * 1e6,
            found as f64 / (10 * queries.len()) as f64,
            queries.len()
        );
    }
    // Persisted graph: the first load_or_build embeds, builds and writes; later ones reload.
    let (mut builds, mut loads) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let dirs = [dir.path().to_path_buf()];
        let t = Instant::now();
        let built = ItemIndex::load_or_build(&cat, Arc::new(e), &dirs).expect("builds");
        builds.push(t.elapsed().as_secs_f64());
        assert!(!built.was_loaded());
        for _ in 0..3 {
            let t = Instant::now();
            let loaded = ItemIndex::load_or_build(&cat, Arc::new(e), &dirs).expect("loads");
            loads.push(t.elapsed().as_secs_f64());
            assert!(loaded.was_loaded());
        }
    }
    println!(
        "  load_or_build (default M 12, ef_construction 48): first run (embed + build + write) {:.3} s, later runs (verify + reload the graph) {:.3} s (medians of 3 / 9)",
        median(builds),
        median(loads)
    );
    let t = Instant::now();
    let n = 200;
    for i in 0..n {
        black_box(cat.search(TITLES[i % 8], 50));
    }
    println!(
        "  catalogue word search (no index): {:.1} µs/query",
        t.elapsed().as_secs_f64() / n as f64 * 1e6
    );
}
