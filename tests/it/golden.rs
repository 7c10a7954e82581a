//! Golden outputs: small runs whose output bytes (messages, interactions, metrics, manifest) are
//! committed under `tests/golden/<run>/`. The engine must reproduce them byte for byte.
//! `BLESS=1 cargo test golden` rewrites them; a commit that does so says why the output changed
//! (a refactor never does).
//!
//! - `demo`: the embedded default configuration (40 agents x 5 rounds, offline backend).
//! - `demo-variant`: the demo data with MF, `marginal` activation, random strangers, shorter
//!   chats and a smaller page, so more of the engine is on the golden path.
//! - `mock-llm`: 10 agents x 3 rounds through the in-process mock LLM server (HTTP 500s and
//!   unparseable answers injected by prompt content, so the transcript is deterministic), then
//!   replayed offline from the committed transcript.
//!
//! Machine-specific text (the checkout's path, the temporary output directory, the mock's port,
//! call latencies) is replaced by placeholders before comparing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use recagent::config::{BackendKind, SimConfig};

use crate::common::{demo_config, run};
use crate::llm_mock::{first_prompt, sensible_answer, Mock, Step};

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// `text` with the checkout path, `out` and `extra` pairs replaced by placeholders.
fn normalise(text: &str, out: &Path, extra: &[(&str, &str)]) -> String {
    let mut t = text.replace(&out.display().to_string(), "<out>");
    t = t.replace(env!("CARGO_MANIFEST_DIR"), "<repo>");
    for (from, to) in extra {
        t = t.replace(from, to);
    }
    t
}

/// `manifest` with its run id (random, one per run) replaced by a placeholder.
fn without_run_id(mut manifest: serde_json::Value) -> serde_json::Value {
    let id = manifest["run_id"].as_str().unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run_id {id:?}"
    );
    manifest["run_id"] = "<run-id>".into();
    manifest
}

/// Compares `actual` with the golden file `name/file` (or writes it with `BLESS=1`). On a
/// difference, names the first differing line.
fn check(name: &str, file: &str, actual: &str) {
    let path = golden_dir(name).join(file);
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (BLESS=1 cargo test golden writes it)",
            path.display()
        )
    });
    if want == actual {
        return;
    }
    let (w, a): (Vec<&str>, Vec<&str>) = (want.lines().collect(), actual.lines().collect());
    let n = w.iter().zip(&a).take_while(|(x, y)| x == y).count();
    panic!(
        "{} differs from this run at line {} (golden {} lines, run {} lines)\n golden: {}\n    run: {}",
        path.display(),
        n + 1,
        w.len(),
        a.len(),
        w.get(n).unwrap_or(&"<end>"),
        a.get(n).unwrap_or(&"<end>")
    );
}

/// Runs `cfg` into a temporary directory and checks its messages, interactions, metrics and
/// manifest.
fn check_run(name: &str, cfg: SimConfig, extra: &[(&str, &str)]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cfg, dir.path());
    let manifest = serde_json::to_string_pretty(&without_run_id(out.manifest)).unwrap() + "\n";
    check(name, "messages.jsonl", &out.messages);
    check(name, "interaction.csv", &out.interactions);
    check(name, "metrics.csv", &out.metrics);
    check(
        name,
        "manifest.json",
        &normalise(&manifest, dir.path(), extra),
    );
    (out.messages, out.interactions)
}

#[test]
fn golden_demo() {
    check_run("demo", SimConfig::embedded().unwrap(), &[]);
}

#[test]
fn golden_demo_variant() {
    let cfg = demo_config()
        .with_overrides(
            &[
                ("round", "6"),
                ("rec_model", "MF"),
                ("epoch_num", "3"),
                ("active_method", "marginal"),
                ("active_prob", "0.3"),
                ("social_random_contacts", "2"),
                ("chat_max_turns", "3"),
                ("page_size", "4"),
                ("history_size", "6"),
                ("offline.heard_weight", "3.0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
    check_run("demo-variant", cfg, &[]);
}

/// The golden mock's answers: memory prompts get short well-formed answers, everything else
/// [`sensible_answer`]'s. Faults depend on the prompt only (never on arrival order): a top-level
/// prompt of an agent whose name sums to 0 mod 5 gets an HTTP 500 the first time it is seen;
/// the first attempt at a page prompt whose name sums to an odd number gets an unparseable answer.
fn golden_script() -> impl Fn(&serde_json::Value, usize) -> Step + Send + Sync + 'static {
    let seen: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    move |body, _| {
        let p = first_prompt(body);
        let attempts = body["messages"].as_array().map_or(1, Vec::len);
        let name = p
            .strip_prefix("You are ")
            .and_then(|r| r.split(',').next())
            .unwrap_or("someone")
            .to_string();
        let h = name.bytes().map(u32::from).sum::<u32>();
        if p.contains("[RECOMMENDER]::") && h % 5 == 0 && seen.lock().unwrap().insert(p.clone()) {
            return Step::Status(500, None);
        }
        if p.contains("[BUY]::") && h % 2 == 1 && attempts == 1 {
            return Step::Answer("Hmm, they all look fine to me.".into());
        }
        let who = |marker: &str| {
            p.split(marker)
                .nth(1)
                .and_then(|r| r.split([':', '\n', '\'']).next())
                .unwrap_or("someone")
                .trim()
                .to_string()
        };
        let text = if p.starts_with("Observations of ") {
            let first = p.split('<').nth(1).and_then(|r| r.split('>').next());
            match first {
                Some(t) => format!("{} paid attention to <{t}>.", who("Observations of ")),
                None => format!("{} spent some time on movies.", who("Observations of ")),
            }
        } else if p.contains("rate how important this memory is") {
            let memory = p.split("Memory: ").nth(1).unwrap_or("");
            (3 + memory.len() % 7).to_string()
        } else if p.starts_with("Memories of ") {
            format!("{} values stories that feel personal.", who("Memories of "))
        } else if p.contains("most salient high-level question") {
            format!("What does {} enjoy most?", who("Statements about "))
        } else if p.contains("What is the main insight") {
            let ids: Vec<&str> = p
                .lines()
                .filter_map(|l| l.strip_prefix('['))
                .filter_map(|l| l.split(']').next())
                .take(2)
                .collect();
            format!(
                "{} enjoys movies with heart [{}]",
                who("Statements about "),
                ids.join(", ")
            )
        } else {
            sensible_answer(body)
        };
        Step::Answer(text)
    }
}

/// The transcript at `path` with every latency zeroed (latency is wall-clock; keys come out
/// sorted, as serde_json writes maps).
pub(crate) fn transcript_without_latency(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["latency_ms"] = 0.into();
            v.to_string() + "\n"
        })
        .collect()
}

#[test]
fn golden_mock_llm_record_and_replay() {
    let mock = Mock::start(golden_script());
    let mut cfg = demo_config();
    cfg.backend = BackendKind::Llm;
    cfg.api_bases = vec![mock.base.clone()];
    cfg.api_keys = vec!["sk-golden".into()];
    cfg.agent_num = Some(10);
    cfg.round = 3;
    cfg.llm_options.backoff_base_ms = 1;
    let ports = [(mock.base.as_str(), "<mock>")];
    let dir = tempfile::tempdir().unwrap();
    let out = run(cfg.clone(), dir.path());
    let manifest =
        serde_json::to_string_pretty(&without_run_id(out.manifest.clone())).unwrap() + "\n";
    check("mock-llm", "messages.jsonl", &out.messages);
    check("mock-llm", "interaction.csv", &out.interactions);
    check("mock-llm", "metrics.csv", &out.metrics);
    check(
        "mock-llm",
        "manifest.json",
        &normalise(&manifest, dir.path(), &ports),
    );
    let transcript = transcript_without_latency(&dir.path().join("transcript.jsonl"));
    check("mock-llm", "transcript.jsonl", &transcript);

    // The committed transcript replays to the committed outputs, without the server.
    let hits = mock.hits.load(std::sync::atomic::Ordering::SeqCst);
    let mut replay = cfg.clone();
    replay.backend = BackendKind::Replay;
    replay.api_bases = vec!["http://127.0.0.1:9/v1".into()];
    replay.transcript_path = Some(golden_dir("mock-llm").join("transcript.jsonl"));
    let rdir = tempfile::tempdir().unwrap();
    let r = run(replay, rdir.path());
    assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), hits);
    check("mock-llm", "messages.jsonl", &r.messages);
    check("mock-llm", "interaction.csv", &r.interactions);
    check("mock-llm", "metrics.csv", &r.metrics);
    assert_eq!(r.manifest["llm_usage"], out.manifest["llm_usage"]);
    assert_eq!(r.manifest["llm_usage"]["replay_mismatches"], 0);

    // Against a server whose answers take 0-35 ms (by agent and attempt), so they come back in
    // another order than asked: chained sessions (each agent's next page decision sent as soon
    // as its answer is in) and step-by-step batches both give the committed outputs and
    // transcript.
    for chains in [true, false] {
        let script = golden_script();
        let jittered = Mock::start(move |b, n| {
            let p = first_prompt(b);
            let attempts = b["messages"].as_array().map_or(1, Vec::len) as u64;
            let h = p.bytes().take(40).map(u64::from).sum::<u64>() + 7 * attempts;
            Step::Delay(
                std::time::Duration::from_millis(h % 36),
                Box::new(script(b, n)),
            )
        });
        let mut c = cfg.clone();
        c.api_bases = vec![jittered.base.clone()];
        c.llm_options.chains = chains;
        let d = tempfile::tempdir().unwrap();
        let o = run(c, d.path());
        let what = format!("chains: {chains}");
        assert_eq!(o.messages, out.messages, "{what}");
        assert_eq!(o.interactions, out.interactions, "{what}");
        assert_eq!(o.metrics, out.metrics, "{what}");
        assert_eq!(
            o.manifest["llm_usage"]["calls"],
            out.manifest["llm_usage"]["calls"]
        );
        let t = transcript_without_latency(&d.path().join("transcript.jsonl"));
        assert_eq!(t, transcript, "{what}");
    }
}
