use std::path::{Path, PathBuf};
use std::process::Command;

use recagent::config::SimConfig;
use recagent::io::output::OutputPaths;
use std::collections::BTreeMap;

use recagent::sim::Sim;

/// `../shared/data/<sub>` beside the checkout, or `None` (with a message) when absent.
pub fn shared(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (tests that read ../shared need it beside the checkout)",
            p.display()
        );
        None
    }
}

/// The repository's default configuration (bundled demo data).
pub fn demo_config() -> SimConfig {
    SimConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.yaml")).unwrap()
}

/// A configuration over RecAgent's real data.
pub fn recagent_config(dir: &Path, agents: u32, rounds: u32) -> SimConfig {
    let text = format!(
        "item_path: {d}/item.csv\nuser_path: {d}/user_1000.csv\nrelationship_path: {d}/relationship_1000.csv\n\
         agent_num: {agents}\nround: {rounds}\nactive_prob: 1.0\nrec_model: Popularity\nrec_random_k: 1\n",
        d = dir.display()
    );
    SimConfig::from_yaml(&text, "test", PathBuf::from("/")).unwrap()
}

/// Output paths inside `dir`.
pub fn paths(dir: &Path) -> OutputPaths {
    OutputPaths {
        messages: dir.join("messages.jsonl"),
        interactions: dir.join("interaction.csv"),
        manifest: dir.join("manifest.json"),
        log: dir.join("run.log"),
    }
}

/// What a finished run left on disk.
pub struct RunOutput {
    pub messages: String,
    pub interactions: String,
    /// `metrics.csv`.
    pub metrics: String,
    pub manifest: serde_json::Value,
    /// The run's counters by name.
    pub stats: BTreeMap<String, u64>,
}

/// Runs `cfg` for its configured rounds into `dir`.
pub fn run(cfg: SimConfig, dir: &Path) -> RunOutput {
    let rounds = cfg.round;
    let p = paths(dir);
    let mut sim = Sim::new(cfg, p.clone()).unwrap();
    for _ in 0..rounds {
        sim.step().unwrap();
    }
    sim.write_manifest("finished").unwrap();
    RunOutput {
        messages: std::fs::read_to_string(&p.messages).unwrap(),
        interactions: std::fs::read_to_string(&p.interactions).unwrap(),
        metrics: std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        manifest: serde_json::from_str(&std::fs::read_to_string(&p.manifest).unwrap()).unwrap(),
        stats: sim.counters().snapshot(),
    }
}

/// Parsed messages: (round, agent_id, action, content).
pub fn messages(text: &str) -> Vec<(u32, i64, String, String)> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["round"].as_u64().unwrap() as u32,
                v["agent_id"].as_i64().unwrap(),
                v["action"].as_str().unwrap().to_string(),
                v["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The checkout (`CARGO_MANIFEST_DIR`).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file's text (panics naming the file when it cannot be read).
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `dir/manifest.json`, parsed.
pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&read(&dir.join("manifest.json"))).unwrap()
}

/// The `recagent` binary, with `RECAGENT_LOG` unset so the caller's shell does not change what
/// the logs hold.
pub fn recagent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recagent"));
    c.env_remove("RECAGENT_LOG");
    c
}

/// (exit code, stdout, stderr) of a finished process; the code is `None` when a signal ended it.
pub fn done(out: std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `c` to the end: (exit code, stdout, stderr).
pub fn ran(c: &mut Command) -> (Option<i32>, String, String) {
    done(
        c.output()
            .unwrap_or_else(|e| panic!("cannot start recagent: {e}")),
    )
}

/// Steps `sim` for `rounds` rounds, writing `dir/round-<at>.ckpt` after round `at` (`at` 0 or
/// past `rounds`: none), and returns that checkpoint's path.
pub fn steps_with_checkpoint(mut sim: Sim, dir: &Path, rounds: u32, at: u32) -> PathBuf {
    let ckpt = dir.join(format!("round-{at}.ckpt"));
    for r in 1..=rounds {
        sim.step().unwrap();
        if r == at {
            recagent::checkpoint::save(&mut sim, &ckpt, None).unwrap();
        }
    }
    ckpt
}
