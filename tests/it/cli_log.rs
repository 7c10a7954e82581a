//! What the CLI logs while it sets a run up: warnings reach stderr and the run's `run.log`; a
//! start that fails leaves an earlier run's log alone; a forged index checksum gives a warning,
//! not a printed panic.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::common::{ran, recagent, root};

/// Runs the CLI with `args`; (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = ran(recagent().args(args));
    (code == Some(0), out, err)
}

/// `recagent run` on the demo configuration for one round, index in `ix`, outputs in `out`.
fn demo_run(out: &Path, ix: &Path, extra: &[&str]) -> (bool, String, String) {
    let cfg = root().join("config/config.yaml");
    let index_dir = format!("memory.index_dir={}", ix.display());
    let mut args = vec![
        "run",
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--rounds",
        "1",
        "--set",
        &index_dir,
        // The tests re-run into `out`.
        "--overwrite",
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

/// The one file in `dir` whose name ends with `suffix`.
fn file_ending(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(found.len(), 1, "{suffix}: {found:?}");
    found[0].clone()
}

fn sha256_line(p: &Path) -> String {
    let b = std::fs::read(p).unwrap();
    let hex: String = Sha256::digest(&b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("{} {hex}", b.len())
}

const REBUILDING: &str = "is unusable";

#[test]
fn a_startup_warning_reaches_stderr_and_run_log_and_a_failed_start_keeps_the_old_log() {
    let dir = tempfile::tempdir().unwrap();
    let (out, ix) = (dir.path().join("out"), dir.path().join("ix"));
    let (ok, _, err) = demo_run(&out, &ix, &[]);
    assert!(ok, "{err}");
    assert!(
        !err.contains("warning"),
        "a clean start warns of nothing: {err}"
    );
    let log = out.join("run.log");

    // A truncated graph file: the graph is rebuilt, with a warning.
    let graph = file_ending(&ix, ".hnsw.graph");
    let bytes = std::fs::read(&graph).unwrap();
    std::fs::write(&graph, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = demo_run(&out, &ix, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: item index: persisted graph") && err.contains(REBUILDING),
        "stderr: {err}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(REBUILDING), "run.log: {text}");
    // In order: the start, the warning, the rounds.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s:?} in {text}"));
    assert!(at("starting") < at(REBUILDING) && at(REBUILDING) < at("round done"));

    // A start that fails after a warning: the warning is shown, the earlier log is kept.
    let bytes = std::fs::read(&graph).unwrap();
    std::fs::write(&graph, &bytes[..bytes.len() / 2]).unwrap();
    let before = std::fs::read(&log).unwrap();
    // The messages file cannot be created (its folder is a file): `Sim::new` fails after
    // building the index.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let messages = blocker.join("messages.jsonl");
    let (ok, _, err) = demo_run(&out, &ix, &["-o", messages.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(err.contains("error: "), "stderr: {err}");
    assert_eq!(std::fs::read(&log).unwrap(), before, "{err}");
    assert!(err.contains(REBUILDING), "stderr: {err}");
}

#[test]
fn a_forged_index_checksum_gives_a_warning_not_a_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    let (out, ix) = (dir.path().join("out"), dir.path().join("ix"));
    let (ok, _, err) = demo_run(&out, &ix, &[]);
    assert!(ok, "{err}");
    // Break the data file's magic number (hnsw_rs asserts it) and forge a matching `.sum`.
    let data = file_ending(&ix, ".hnsw.data");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[..4].copy_from_slice(&[0, 0, 0, 0]);
    std::fs::write(&data, bytes).unwrap();
    let sum_path = file_ending(&ix, ".hnsw.sum");
    let sum: String = std::fs::read_to_string(&sum_path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("data ") {
                format!("data {}\n", sha256_line(&data))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&sum_path, sum).unwrap();
    let (ok, _, err) = demo_run(&out, &ix, &[]);
    assert!(ok, "{err}");
    assert!(err.contains(REBUILDING), "stderr: {err}");
    // hnsw_rs panicked, but the default hook did not print it.
    assert!(!err.contains("panicked at"), "stderr: {err}");
    let text = std::fs::read_to_string(out.join("run.log")).unwrap();
    assert!(text.contains("loader failed: "), "run.log: {text}");
}

#[test]
fn an_ignored_response_cache_is_reported_by_run_and_check_config() {
    // A closed local port: every call fails at once and falls back to the offline model.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("llm.yaml");
    std::fs::write(
        &cfg,
        format!(
            "item_path: {r}/data/item.csv\nuser_path: {r}/data/users.csv\nrelationship_path: {r}/data/relationship.csv\n\
             output_dir: out\nbackend: llm\nround: 1\nagent_num: 1\ntemperature: 0.7\nmax_retries: 0\n\
             api_bases: [\"http://127.0.0.1:{port}/v1\"]\n\
             llm_options:\n  response_cache: true\n  connect_timeout_secs: 2\n  request_timeout_secs: 5\n",
            r = root().display()
        ),
    )
    .unwrap();
    let want = "warning: llm_options.response_cache is ignored: temperature is 0.7";
    let (ok, stdout, err) = cli(&["check-config", "-c", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(err.contains(want), "check-config stderr: {err}");

    let (ok, _, err) = cli(&["run", "-q", "-c", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains(want), "run stderr: {err}");
    // The round's fallbacks are warnings too, on stderr as in run.log.
    assert!(err.contains("warning: fallback:"), "run stderr: {err}");
    let text = std::fs::read_to_string(dir.path().join("out/run.log")).unwrap();
    assert!(
        text.contains("llm_options.response_cache is ignored: temperature is 0.7"),
        "run.log: {text}"
    );
    assert!(text.contains("fallback"), "run.log: {text}");
}
