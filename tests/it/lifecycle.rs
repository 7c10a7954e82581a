//! Runs that stop, resume, branch and replay, through the real binary: a Ctrl-C stop is a stop
//! (its own exit code, no `error:`), a second Ctrl-C still leaves the manifest `interrupted`,
//! resumes say how many rounds they run again, warnings of a round reach stderr and `run.log`,
//! `replay` takes `--rounds` / `--agents`, and a branch of an LLM run replays from round 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::llm_mock::{sensible_answer, Mock, Step};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recagent"));
    c.env_remove("RECAGENT_LOG");
    c
}

/// (exit code, stdout, stderr).
fn done(out: Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Waits (up to 120 s) until `path` exists.
fn wait_for(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGINT to the child, as a terminal's Ctrl-C does.
fn sigint(child: &Child) {
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The number after `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> u32 {
    let rest = text
        .split(prefix)
        .nth(1)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"));
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// A demo-data configuration file in `dir` (absolute data paths, the item index in `dir`), with
/// `rest` appended.
fn demo_config_file(dir: &Path, rest: &str) -> PathBuf {
    let r = root().display().to_string();
    let path = dir.join("run.yaml");
    std::fs::write(
        &path,
        format!(
            "item_path: {r}/data/item.csv\nuser_path: {r}/data/users.csv\nrelationship_path: {r}/data/relationship.csv\n\
             memory:\n  index_dir: {ix}\n{rest}",
            ix = dir.join("index").display()
        ),
    )
    .unwrap();
    path
}

#[cfg(unix)]
#[test]
fn a_ctrl_c_stop_is_a_stop_and_resumes_say_which_rounds_they_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config_file(dir.path(), "checkpoint_every: 1\n");
    let out = dir.path().join("out");
    let child = exe()
        .args(["run", "-q", "--rounds", "1000", "-c"])
        .arg(&cfg)
        .arg("--output-dir")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&out.join("checkpoints/round-000003.ckpt"));
    sigint(&child);
    let (code, _, err) = done(child.wait_with_output().unwrap());
    // The stop's own exit code (128 + SIGINT), and a stop's message, not an error's.
    assert_eq!(code, Some(130), "stderr: {err}");
    assert!(!err.contains("error:"), "stderr: {err}");
    let n = number_after(&err, "stopped after round ");
    assert!(n >= 3, "{err}");
    assert!(
        err.contains(&format!(
            "stopped after round {n} of 1000 (Ctrl-C): the outputs are complete up to it; resume with `recagent resume {}`",
            out.join(format!("checkpoints/round-{n:06}.ckpt")).display()
        )),
        "stderr: {err}"
    );
    let m = manifest(&out);
    assert_eq!(m["status"], format!("interrupted after round {n}"));
    assert_eq!(m["rounds_completed"], n);
    let (_, help, _) = done(exe().arg("--help").output().unwrap());
    assert!(help.contains("130 stopped by Ctrl-C"), "{help}");

    // From the checkpoint of round 1 to round 3: rounds 2 and 3 had been run before the stop.
    let ck = |r: u32| out.join(format!("checkpoints/round-{r:06}.ckpt"));
    let (code, stdout, err) = done(
        exe()
            .arg("resume")
            .arg(ck(1))
            .args(["--rounds", "3"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        stdout.contains(&format!(
            "resuming from {} (round 1 of 3); re-running 2 rounds (rounds 2-3) the stopped run had done after that checkpoint",
            ck(1).display()
        )),
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("recagent: resumed after round 1: 2 rounds (rounds 2-3 of 3) finished in ")
            && stdout.contains("(wall); 2 rounds re-run (done before the stop)"),
        "stdout: {stdout}"
    );
    assert_eq!(manifest(&out)["status"], "finished");
    // From round 2 of that (finished, 3-round) run: round 3 once more, in the singular.
    let (code, stdout, err) = done(exe().arg("resume").arg(ck(2)).output().unwrap());
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        stdout.contains("(round 2 of 3); re-running 1 round (round 3) the stopped run"),
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("resumed after round 2: 1 round (round 3 of 3) finished in ")
            && stdout.contains("; 1 round re-run (done before the stop)"),
        "stdout: {stdout}"
    );
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_the_manifest_interrupted() {
    // Every answer takes 400 ms, so a round lasts well over the 30 ms between the two signals.
    let mock = Mock::start(|b, _| {
        Step::Delay(
            Duration::from_millis(400),
            Box::new(Step::Answer(sensible_answer(b))),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config_file(
        dir.path(),
        &format!(
            "backend: llm\napi_bases: [{}]\nagent_num: 2\nactive_prob: 1.0\ncheckpoint_every: 1\n",
            mock.base
        ),
    );
    let out = dir.path().join("out");
    let child = exe()
        .args(["run", "-q", "--rounds", "100", "-c"])
        .arg(&cfg)
        .arg("--output-dir")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&out.join("checkpoints/round-000001.ckpt"));
    std::thread::sleep(Duration::from_millis(50));
    sigint(&child);
    std::thread::sleep(Duration::from_millis(30));
    sigint(&child);
    let (code, _, err) = done(child.wait_with_output().unwrap());
    assert_eq!(code, Some(130), "stderr: {err}");
    assert!(!err.contains("error:"), "stderr: {err}");
    assert!(
        err.contains("interrupt: finishing the current round"),
        "{err}"
    );
    let n = number_after(&err, "stopped during round ");
    assert!(
        err.contains(&format!(
            "stopped during round {n} of 100 (second Ctrl-C): the outputs are complete up to round {}; resume with `recagent resume {}`",
            n - 1,
            out.join(format!("checkpoints/round-{:06}.ckpt", n - 1)).display()
        )),
        "stderr: {err}"
    );
    let m = manifest(&out);
    assert_eq!(
        m["status"],
        format!("interrupted during round {n} (second Ctrl-C)")
    );
    assert_eq!(m["rounds_completed"], n - 1);
}

#[test]
fn warnings_of_a_round_reach_stderr_capped_and_every_one_reaches_run_log() {
    // A closed local port: every call fails at once, and each failure is a `fallback` warning.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config_file(
        dir.path(),
        &format!(
            "backend: llm\nagent_num: 8\nactive_prob: 1.0\nround: 2\nmax_retries: 0\n\
             api_bases: [\"http://127.0.0.1:{port}/v1\"]\nllm_options:\n  connect_timeout_secs: 2\n"
        ),
    );
    let out = dir.path().join("out");
    let (code, _, err) = done(
        exe()
            .args(["run", "-q", "-c"])
            .arg(&cfg)
            .arg("--output-dir")
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    let log = std::fs::read_to_string(out.join("run.log")).unwrap();
    // The round's warnings are on stderr: the first 5 of each round (the cap), then a note
    // with the count of the others, which are in run.log.
    let printed: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: ") || l.starts_with("error: "))
        .collect();
    assert!(
        printed.iter().any(|l| l.starts_with("warning: fallback:")),
        "stderr: {err}"
    );
    let mut held = 0;
    for round in 1..=2 {
        let note = format!("note: round {round}: ");
        let n = number_after(&err, &note);
        assert!(
            err.contains(&format!(
                "{note}{n} more warnings in {}",
                out.join("run.log").display()
            )),
            "{err}"
        );
        held += n;
    }
    // Each round has at least 8 fallbacks (one per agent's first question), so each printed
    // exactly 5 before its note.
    let segments: Vec<&str> = err.split("note: round ").collect();
    for s in &segments[..2] {
        let fallbacks = s
            .lines()
            .filter(|l| l.starts_with("warning: fallback:"))
            .count();
        assert_eq!(fallbacks, 5, "stderr: {err}");
    }
    let in_log = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    assert_eq!(in_log, printed.len() + held as usize, "run.log: {log}");
    // The first warning printed is the first one logged.
    let first = printed[0].trim_start_matches("warning: ");
    let first_msg = first.split(" key=").next().unwrap();
    assert!(log.contains(first_msg), "{first_msg} not in run.log: {log}");
}
