//! Runs that stop, resume, branch and replay, through the real binary: a Ctrl-C stop is a stop
//! (its own exit code, no `error:`), a second Ctrl-C still leaves the manifest `interrupted`,
//! resumes say how many rounds they run again, warnings of a round reach stderr and `run.log`,
//! `replay` takes `--rounds` / `--agents`, and a branch of an LLM run replays from round 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{done, manifest, read, recagent as exe, root};
use crate::llm_mock::{sensible_answer, Mock, Step};

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
/// `recagent run -q -c cfg --output-dir out --rounds rounds`, started and left running (to be
/// interrupted), its output piped.
fn spawn_run(cfg: &Path, out: &Path, rounds: u32) -> Child {
    exe()
        .args(["run", "-q", "--rounds", &rounds.to_string(), "-c"])
        .arg(cfg)
        .arg("--output-dir")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_ctrl_c_stop_is_a_stop_and_resumes_say_which_rounds_they_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config_file(dir.path(), "checkpoint_every: 1\n");
    let out = dir.path().join("out");
    let child = spawn_run(&cfg, &out, 1000);
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
    let child = spawn_run(&cfg, &out, 100);
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

/// Records an LLM run of `agents` x `rounds` on the demo data through the CLI, against a mock
/// answering sensibly; returns (mock, temp dir, config file, run folder).
fn record(agents: u32, rounds: u32) -> (Mock, tempfile::TempDir, PathBuf, PathBuf) {
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config_file(
        dir.path(),
        &format!(
            "backend: llm\napi_bases: [{}]\nagent_num: {agents}\nround: {rounds}\nactive_prob: 1.0\n\
             rec_model: Popularity\ncheckpoint_every: 1\nllm_options:\n  backoff_base_ms: 1\n",
            mock.base
        ),
    );
    let out = dir.path().join("rec");
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
    (mock, dir, cfg, out)
}

#[test]
fn a_branch_of_an_llm_run_replays_from_round_0_byte_for_byte() {
    let (mock, dir, cfg, parent) = record(6, 3);
    let branch = dir.path().join("branch");
    let (code, _, err) = done(
        exe()
            .arg("branch")
            .arg(parent.join("checkpoints/round-000001.ckpt"))
            .args(["--set", "rec_model=Random", "--set", "rec_random_k=2", "-q"])
            .arg("--out")
            .arg(&branch)
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    // The branch point is in the branch's transcript, after the parent's round-1 calls.
    let t = read(&branch.join("transcript.jsonl"));
    let marker = r#"{"branch":{"round":1,"set":[["rec_model","Random"],["rec_random_k","2"]]}}"#;
    assert_eq!(t.lines().filter(|l| *l == marker).count(), 1, "{t}");
    let calls = mock.hits.load(std::sync::atomic::Ordering::SeqCst);

    let (code, stdout, err) = done(
        exe()
            .args(["replay", "--transcript"])
            .arg(branch.join("transcript.jsonl"))
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        stdout
            .contains("replaying a branch: rounds 1-1 as its parent, then 1 recorded branch point"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("recagent: branched after round 1: 2 rounds (rounds 2-3 of 3) finished in "),
        "{stdout}"
    );
    let replay = branch.join("replay");
    for f in ["messages.jsonl", "interaction.csv", "metrics.csv"] {
        assert!(
            read(&branch.join(f)) == read(&replay.join(f)),
            "the replayed branch's {f} differs"
        );
    }
    // The branch is not its parent (the comparison above could not pass by replaying the
    // parent's settings throughout), and the replay asked no server and matched every prompt.
    assert!(read(&branch.join("interaction.csv")) != read(&parent.join("interaction.csv")));
    assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), calls);
    let m = manifest(&replay);
    assert_eq!(m["llm_usage"]["replay_mismatches"], 0, "{m}");
    assert_eq!(m["config"]["rec_model"], "Random");
    assert_eq!(m["rounds_completed"], 3);
    // Without the branch point, the replay (the parent's settings throughout) would diverge.
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let stripped: String = t
        .lines()
        .filter(|l| *l != marker)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(plain.join("transcript.jsonl"), stripped).unwrap();
    let (code, _, err) = done(
        exe()
            .args(["replay", "-q", "--transcript"])
            .arg(plain.join("transcript.jsonl"))
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    let m = manifest(&plain.join("replay"));
    assert!(
        m["llm_usage"]["replay_mismatches"].as_u64().unwrap() > 0,
        "{m}"
    );
}

#[test]
fn replay_takes_rounds_and_agents_within_what_the_transcript_records() {
    let (_mock, dir, cfg, rec) = record(8, 3);
    let t = rec.join("transcript.jsonl");
    let replay = |extra: &[&str], out: &str| {
        done(
            exe()
                .args(["replay", "-q", "--transcript"])
                .arg(&t)
                .arg("-c")
                .arg(&cfg)
                .arg("--output-dir")
                .arg(dir.path().join(out))
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    // The first 2 of 3 rounds: the recorded outputs' first 2 rounds, byte for byte.
    let (code, _, err) = replay(&["--rounds", "2"], "r2");
    assert_eq!(code, Some(0), "stderr: {err}");
    let (full, two) = (
        read(&rec.join("messages.jsonl")),
        read(&dir.path().join("r2/messages.jsonl")),
    );
    let round3 = full.find("{\"round\":3,").unwrap();
    assert_eq!(two, full[..round3]);
    let metrics = read(&rec.join("metrics.csv"));
    let head: String = metrics.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(read(&dir.path().join("r2/metrics.csv")), head);
    assert_eq!(manifest(&dir.path().join("r2"))["rounds_completed"], 2);

    // Beyond the recording: refused before anything runs, saying what the transcript holds.
    let (code, _, err) = replay(&["--rounds", "4"], "r4");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "error: --rounds 4: {} records 3 rounds; a replay runs those or fewer",
            t.display()
        )),
        "{err}"
    );
    let (code, _, err) = replay(&["--agents", "9"], "a9");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--agents 9: ")
            && err
                .contains("holds calls of 8 agents (ids 0-7); a replay runs the first 8 or fewer"),
        "{err}"
    );
    assert!(!dir.path().join("r4").exists() && !dir.path().join("a9").exists());

    // All 8 agents is the recorded run.
    let (code, _, err) = replay(&["--agents", "8"], "a8");
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(read(&dir.path().join("a8/messages.jsonl")) == full);
    // The first 4 agents: here their contacts and the recommender's pages depend on the other
    // 4 (agent 0's only contact is beyond them, so it makes no social calls), so the replay
    // differs from the recording, and says so; what it ran is kept.
    let (code, _, err) = replay(&["--agents", "4"], "a4");
    assert_eq!(code, Some(1), "stderr: {err}");
    let asked = number_after(&err, "is not the recorded run: ");
    let recorded = number_after(&err, &format!("{asked} calls asked for "));
    assert_ne!(asked, recorded, "{err}");
    assert!(
        err.contains("error: the replay of the first 4 of 8 agents (outputs in ")
            && err.contains(" prompts differ from the recorded ones (first: replay: key RequestKey { round: 2, phase: Activity, user: UserId(0), step: 0 } attempt 0: prompt hash mismatch")
            && err.contains("replay all 8 agents (fewer --rounds is always exact)"),
        "{err}"
    );
    assert!(!read(&dir.path().join("a4/messages.jsonl")).is_empty());
}

#[test]
fn the_manifest_guard_rewrites_a_running_manifest_once_and_seals_it() {
    use recagent::sim::{InterruptedAt, ManifestGuard, Sim};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::demo_config();
    cfg.memory.index_dir = Some(dir.path().join("index"));
    let mut sim = Sim::new(cfg, crate::common::paths(dir.path())).unwrap();
    let guard = ManifestGuard::default();
    // Nothing written yet: nothing to rewrite.
    sim.world_mut().insert_resource(guard.clone());
    assert_eq!(guard.interrupt("test").unwrap(), None);
    sim.step().unwrap();
    sim.write_manifest("running").unwrap();
    let at = guard.interrupt("second Ctrl-C").unwrap();
    assert_eq!(
        at,
        Some(InterruptedAt {
            rounds_completed: 1,
            rounds_planned: 5,
            last_checkpoint: None,
        })
    );
    let status = || manifest(dir.path())["status"].clone();
    assert_eq!(status(), "interrupted during round 2 (second Ctrl-C)");
    // Sealed: the run's own later writes leave it, and a third Ctrl-C finds nothing to do.
    sim.step().unwrap();
    sim.write_manifest("running").unwrap();
    assert_eq!(status(), "interrupted during round 2 (second Ctrl-C)");
    assert_eq!(manifest(dir.path())["rounds_completed"], 1);
    assert_eq!(guard.interrupt("again").unwrap(), None);
    // A manifest that already says how the run ended is not rewritten.
    let other = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::demo_config();
    cfg.memory.index_dir = Some(dir.path().join("index"));
    let mut sim = Sim::new(cfg, crate::common::paths(other.path())).unwrap();
    let guard = ManifestGuard::default();
    sim.world_mut().insert_resource(guard.clone());
    sim.write_manifest("interrupted after round 0").unwrap();
    assert_eq!(guard.interrupt("second Ctrl-C").unwrap(), None);
    assert_eq!(
        manifest(other.path())["status"],
        "interrupted after round 0"
    );
}

#[test]
fn a_branch_of_a_branch_replays_from_round_0() {
    let (_mock, dir, cfg, parent) = record(6, 3);
    let (b1, b2) = (dir.path().join("b1"), dir.path().join("b2"));
    for (ckpt, set, out) in [
        (
            parent.join("checkpoints/round-000001.ckpt"),
            "rec_model=Random",
            &b1,
        ),
        (
            b1.join("checkpoints/round-000002.ckpt"),
            "rec_model=Popularity",
            &b2,
        ),
    ] {
        let (code, _, err) = done(
            exe()
                .arg("branch")
                .arg(ckpt)
                .args(["-q", "--set", set, "--out"])
                .arg(out)
                .output()
                .unwrap(),
        );
        assert_eq!(code, Some(0), "stderr: {err}");
    }
    let (code, stdout, err) = done(
        exe()
            .args(["replay", "--transcript"])
            .arg(b2.join("transcript.jsonl"))
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(stdout.contains("then 2 recorded branch points"), "{stdout}");
    for f in ["messages.jsonl", "interaction.csv", "metrics.csv"] {
        assert!(
            read(&b2.join(f)) == read(&b2.join("replay").join(f)),
            "the replayed branch's {f} differs"
        );
    }
    assert!(read(&b2.join("interaction.csv")) != read(&b1.join("interaction.csv")));
    assert_eq!(
        manifest(&b2.join("replay"))["llm_usage"]["replay_mismatches"],
        0
    );
}
