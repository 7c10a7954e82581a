//! Scale benchmark: a synthetic population of N agents (profiles cycled from RecAgent's
//! `user_1000.csv` when `../shared` is present, else from the demo users), each with `DEGREE`
//! random contacts, on RecAgent's 3,883-item catalogue (or the demo catalogue), offline backend.
//! Prints load time, per-round wall time (median), agents per second, peak RSS of the whole run
//! (checkpoint and resume included), peak RSS after the rounds, before the checkpoint, and
//! peak RSS once the checkpoint is written (before the resume: issue 16 asks the write's peak
//! to stay within 1.2x the run's).
//!
//! ```text
//! cargo bench --bench scale                       # 1,000 / 10,000 / 100,000 agents, 3 rounds each
//! SCALE_AGENTS=1000000 SCALE_ROUNDS=3 cargo bench --bench scale
//! ```
//! `SCALE_CURVE=path.csv` writes the memory curve: after every round, its wall time, the
//! resident set (`VmRSS`) and the peak so far (`VmHWM`), in MiB (with `SCALE_ROUNDS=50`, the
//! plateau issue 16 asks for). `SCALE_MESSAGES=1` also writes the messages file (off by default: at a million agents it is
//! gigabytes per round). `SCALE_MODEL=MF` (any `rec_model`; default Popularity) picks the
//! recommender; `SCALE_SET=retrain_pairs=100000,epoch_num=5` sets further top-level keys.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use recagent::config::SimConfig;
use recagent::io::data::{load_users, Source};
use recagent::io::output::OutputPaths;
use recagent::sim::Sim;

// The binary's allocator (src/main.rs), so the figures are the command's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEGREE: usize = 10;

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// A `/proc/self/status` field given in kB (`VmHWM:`, `VmRSS:`), in MiB; NaN where absent.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn write_population(dir: &Path, n: usize, users_src: &Path) -> std::io::Result<()> {
    let base = load_users(Source::Path(users_src)).expect("user file loads");
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("users.csv"))?);
    writeln!(w, "id,name,gender,age,traits,status,interest,feature")?;
    for i in 0..n {
        let u = &base[i % base.len()];
        let feature = u.features.join(";");
        let gender = if u.gender.is_empty() {
            "female"
        } else {
            &u.gender
        };
        writeln!(
            w,
            "{i},{},{gender},{},\"{}\",\"{}\",\"{}\",{feature}",
            u.name, u.age, u.traits, u.status, u.interest
        )?;
    }
    w.flush()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("relationship.csv"))?);
    writeln!(w, "user_1,user_2,relationship,closeness")?;
    for i in 0..n {
        for _ in 0..DEGREE / 2 {
            let j = rng.random_range(0..n);
            if j != i {
                let c: f32 = rng.random();
                writeln!(w, "{i},{j},friend,{c:.3}")?;
                writeln!(w, "{j},{i},friend,{c:.3}")?;
            }
        }
    }
    w.flush()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/data/recagent");
    let (items, users) = if shared.exists() {
        (shared.join("item.csv"), shared.join("user_1000.csv"))
    } else {
        eprintln!("note: ../shared absent; using the demo data");
        (root.join("data/item.csv"), root.join("data/users.csv"))
    };
    let sizes: Vec<usize> = match std::env::var("SCALE_AGENTS") {
        Ok(v) => v
            .split(',')
            .map(|x| x.trim().parse().expect("SCALE_AGENTS: numbers"))
            .collect(),
        Err(_) => vec![1_000, 10_000, 100_000],
    };
    let rounds: u32 = std::env::var("SCALE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let messages = std::env::var("SCALE_MESSAGES").is_ok_and(|v| v == "1");
    let model = std::env::var("SCALE_MODEL").unwrap_or_else(|_| "Popularity".into());
    let extra = std::env::var("SCALE_SET").unwrap_or_default();
    println!("agents,rounds,load_s,median_round_s,agents_per_s,watches,chats,posts,ckpt_mib,ckpt_write_s,resume_s,peak_rss_mib,rss_before_ckpt_mib,rss_after_write_mib");
    let mut curve = std::env::var("SCALE_CURVE").ok().map(|p| {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&p).expect("SCALE_CURVE: a writable path"),
        );
        writeln!(w, "agents,round,round_s,rss_mib,peak_rss_mib").expect("curve file");
        w
    });
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        write_population(dir.path(), n, &users).expect("write population");
        let mut yaml = format!(
            "item_path: {}\nuser_path: users.csv\nrelationship_path: relationship.csv\nround: {rounds}\n\
             active_prob: 1.0\nactive_agent_threshold: 0\nrec_random_k: 1\nwrite_messages: {messages}\n\
             rec_model: {model}\n",
            items.display()
        );
        for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').expect("SCALE_SET: key=value,key=value");
            yaml.push_str(&format!("{k}: {v}\n"));
        }
        let cfg = SimConfig::from_yaml(&yaml, "bench", dir.path().to_path_buf()).expect("config");
        let out = OutputPaths {
            messages: dir.path().join("messages.jsonl"),
            interactions: dir.path().join("interaction.csv"),
            manifest: dir.path().join("manifest.json"),
            log: dir.path().join("run.log"),
        };
        let t = Instant::now();
        let mut sim = Sim::new(cfg, out).expect("sim builds");
        let load = t.elapsed().as_secs_f64();
        let mut times = Vec::new();
        for r in 1..=rounds {
            let t = Instant::now();
            sim.step().expect("round runs");
            let secs = t.elapsed().as_secs_f64();
            times.push(secs);
            if let Some(w) = curve.as_mut() {
                writeln!(
                    w,
                    "{n},{r},{secs:.3},{:.0},{:.0}",
                    status_mib("VmRSS:"),
                    peak_rss_mib()
                )
                .and_then(|()| w.flush())
                .expect("curve file");
            }
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        let s = sim.counters().snapshot();
        let rss_rounds = peak_rss_mib();
        let ckpt = dir.path().join("bench.ckpt");
        let t = Instant::now();
        recagent::checkpoint::save(&mut sim, &ckpt, None).expect("checkpoint");
        let write_s = t.elapsed().as_secs_f64();
        let rss_write = peak_rss_mib();
        let size = std::fs::metadata(&ckpt).map_or(0, |m| m.len()) as f64 / (1024.0 * 1024.0);
        drop(sim);
        let t = Instant::now();
        let (resumed, _) = recagent::checkpoint::resume(&ckpt, &[], None).expect("resume");
        let resume_s = t.elapsed().as_secs_f64();
        drop(resumed);
        println!(
            "{n},{rounds},{load:.2},{med:.3},{:.0},{},{},{},{size:.1},{write_s:.3},{resume_s:.2},{:.0},{rss_rounds:.0},{rss_write:.0}",
            n as f64 / med,
            s["watches"],
            s["chats"],
            s["posts"],
            peak_rss_mib()
        );
    }
}
