use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use recagent::checkpoint::{self, CheckpointError};
use recagent::config::SimConfig;
use recagent::sim::Sim;

use crate::common::{demo_config, paths, read, steps_with_checkpoint};

fn sim_in(cfg: SimConfig, dir: &Path) -> Sim {
    Sim::new(cfg, paths(dir)).unwrap()
}

/// Runs `cfg` for `rounds` rounds into `dir`, writing `dir/round-<at>.ckpt` after round `at`
/// (`at > rounds`: none). Returns the checkpoint's path.
fn run_with_checkpoint(cfg: SimConfig, dir: &Path, rounds: u32, at: u32) -> PathBuf {
    steps_with_checkpoint(sim_in(cfg, dir), dir, rounds, at)
}

#[test]
fn round_trip_restores_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim_in(demo_config(), dir.path());
    for _ in 0..3 {
        sim.step().unwrap();
    }
    let ckpt = dir.path().join("c/round-3.ckpt");
    let header = checkpoint::save(&mut sim, &ckpt, None).unwrap();
    let before = checkpoint::state_hash(&checkpoint::capture(sim.world_mut()).unwrap());
    assert_eq!(header.state_hash, before);
    assert_eq!(header.round, 3);

    let out = tempfile::tempdir().unwrap();
    let (mut resumed, _) = checkpoint::resume(&ckpt, &[], Some(out.path())).unwrap();
    assert_eq!(resumed.round(), 3);
    assert_eq!(
        checkpoint::state_hash(&checkpoint::capture(resumed.world_mut()).unwrap()),
        before
    );
    // And they stay equal one round later.
    sim.step().unwrap();
    resumed.step().unwrap();
    assert_eq!(
        checkpoint::state_hash(&checkpoint::capture(sim.world_mut()).unwrap()),
        checkpoint::state_hash(&checkpoint::capture(resumed.world_mut()).unwrap())
    );
    assert_eq!(
        read(&dir.path().join("messages.jsonl")),
        read(&out.path().join("messages.jsonl"))
    );
}

/// A part that saves half its bytes, then fails.
struct Failing;

impl recagent::plugin::CheckpointPart for Failing {
    fn name(&self) -> &str {
        "zz_failing"
    }
    fn save(&self, _: &mut bevy_ecs::world::World) -> Result<Vec<u8>, String> {
        Err("no room for it".into())
    }
    fn save_to(
        &self,
        _: &mut bevy_ecs::world::World,
        out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        // Large enough to have sent frames to the file before failing.
        out(vec![7u8; 3 * checkpoint::FRAME_BYTES])?;
        Err("no room for it".into())
    }
    fn restore(&self, _: &mut bevy_ecs::world::World, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_write_that_fails_leaves_the_previous_checkpoint_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim_in(demo_config(), dir.path());
    sim.step().unwrap();
    let ckpt = dir.path().join("c/last.ckpt");
    let header = checkpoint::save(&mut sim, &ckpt, None).unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    sim.step().unwrap();
    sim.world_mut()
        .resource_mut::<recagent::plugin::CheckpointParts>()
        .add(Failing);
    let err = checkpoint::save(&mut sim, &ckpt, None).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Part { part, message } if part == "zz_failing" && message == "no room for it"),
        "{err}"
    );
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["last.ckpt"]);
    // The checkpoint there is still the round-1 one, whole.
    let (h, _) = checkpoint::load(&ckpt).unwrap();
    assert_eq!((h.round, h.state_hash), (1, header.state_hash));
}

#[test]
fn resume_truncates_a_torn_round_and_matches_an_uninterrupted_run() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_with_checkpoint(demo_config(), a.path(), 5, 0);
    // Round 4 is written after the checkpoint, then the "crash" tears round 5's writes:
    let ckpt = run_with_checkpoint(demo_config(), b.path(), 4, 3);
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(b.path().join("messages.jsonl"))
        .unwrap();
    f.write_all(b"{\"round\":5,\"agent_id\":0,\"act").unwrap();
    drop(f);
    let (mut resumed, _) = checkpoint::resume(&ckpt, &[], None).unwrap();
    while resumed.round() < 5 {
        resumed.step().unwrap();
    }
    drop(resumed);
    for f in ["messages.jsonl", "interaction.csv", "metrics.csv"] {
        assert_eq!(read(&a.path().join(f)), read(&b.path().join(f)), "{f}");
    }
}

#[test]
fn incompatible_version_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = sim_in(demo_config(), dir.path());
    sim.step().unwrap();
    let ckpt = dir.path().join("r1.ckpt");
    checkpoint::save(&mut sim, &ckpt, None).unwrap();
    let bytes = std::fs::read(&ckpt).unwrap();
    let text = String::from_utf8_lossy(&bytes[..bytes.iter().position(|&b| b == b'\n').unwrap()])
        .to_string();
    let patched = text
        .replace(
            &format!("\"format_version\":{}", checkpoint::FORMAT_VERSION),
            "\"format_version\":99",
        )
        .replace(
            "\"engine_version\":\"0.1.0\"",
            "\"engine_version\":\"9.9.9\"",
        );
    assert!(patched.contains("\"format_version\":99") && patched.contains("9.9.9"));
    let mut out = patched.into_bytes();
    out.extend_from_slice(&bytes[text.len()..]);
    std::fs::write(&ckpt, out).unwrap();
    let err = checkpoint::load(&ckpt).unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::Version {
                found_format: 99,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("9.9.9") && msg.contains(env!("CARGO_PKG_VERSION")) && msg.contains("99"),
        "{msg}"
    );
    // A header without its version is damaged, not of "format 0".
    let without = text.replace(
        &format!("\"format_version\":{}", checkpoint::FORMAT_VERSION),
        &format!("\"format_Xersion\":{}", checkpoint::FORMAT_VERSION),
    );
    let mut out = without.into_bytes();
    out.extend_from_slice(&bytes[text.len()..]);
    let err = checkpoint::from_bytes(&out, "edited.ckpt").unwrap_err();
    assert!(
        err.to_string().contains("the header has no format_version"),
        "{err}"
    );
    // A truncated body is reported as truncated, not half-loaded; a changed byte as a change.
    let at = text.len() + 1 + (bytes.len() - text.len()) / 2;
    let err = checkpoint::from_bytes(&bytes[..at], "cut.ckpt").unwrap_err();
    assert!(err.to_string().contains("the file is truncated"), "{err}");
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x01;
    let err = checkpoint::from_bytes(&flipped, "flipped.ckpt").unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    // The configuration in the header is tied to its hash: an edited setting is refused, not
    // run (a larger agent_num there once failed only after the outputs were truncated).
    let edited = text.replacen("\"page_size\":", "\"page_size\":1", 1);
    assert_ne!(edited, text);
    let mut out = edited.into_bytes();
    out.extend_from_slice(&bytes[text.len()..]);
    let err = checkpoint::from_bytes(&out, "edited.ckpt").unwrap_err();
    assert!(
        err.to_string()
            .contains("its configuration is not the one it was written with"),
        "{err}"
    );
}

#[test]
fn branch_differs_from_its_parent_only_after_the_branch_round() {
    let parent = tempfile::tempdir().unwrap();
    let ckpt = run_with_checkpoint(demo_config(), parent.path(), 5, 2);
    let out = tempfile::tempdir().unwrap();
    let overrides = [
        ("rec_model".to_string(), "Random".to_string()),
        ("rec_random_k".to_string(), "2".to_string()),
    ];
    let (mut branch, _) = checkpoint::resume(&ckpt, &overrides, Some(out.path())).unwrap();
    while branch.round() < 5 {
        branch.step().unwrap();
    }
    drop(branch);
    let by_round = |p: &Path| -> Vec<Vec<String>> {
        let mut v = vec![Vec::new(); 6];
        for l in read(p).lines() {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            v[r["round"].as_u64().unwrap() as usize].push(l.to_string());
        }
        v
    };
    let (p, b) = (
        by_round(&parent.path().join("messages.jsonl")),
        by_round(&out.path().join("messages.jsonl")),
    );
    assert_eq!(p[1], b[1]);
    assert_eq!(p[2], b[2]);
    assert_ne!(p[3], b[3], "the branch must differ from round 3 on");
    let bad = checkpoint::resume(&ckpt, &[("agent_num".into(), "3".into())], Some(out.path()))
        .err()
        .unwrap();
    assert!(bad.to_string().contains("agent_num"), "{bad}");
}

/// Runs the CLI in a child process, kills it with SIGKILL at a random moment after its first
/// checkpoint, resumes from the last complete checkpoint, and compares the outputs with an
/// uninterrupted run.
#[test]
fn killed_run_resumed_from_its_last_checkpoint_is_byte_identical() {
    let exe = env!("CARGO_BIN_EXE_recagent");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = root.join("config/config.yaml");
    let (full, killed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = |out: &Path| {
        vec![
            "run".to_string(),
            "-c".into(),
            cfg.display().to_string(),
            "--output-dir".into(),
            out.display().to_string(),
            "--rounds".into(),
            "60".into(),
            "--set".into(),
            "checkpoint_every=1".into(),
            "-q".into(),
        ]
    };
    let st = Command::new(exe).args(args(full.path())).status().unwrap();
    assert!(st.success());

    let mut child = Command::new(exe).args(args(killed.path())).spawn().unwrap();
    let ckdir = killed.path().join("checkpoints");
    let t0 = Instant::now();
    while !ckdir.join("round-000001.ckpt").exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // A pseudo-random delay from the clock's nanoseconds: a different kill point on each run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 1500)));
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let mut ckpts: Vec<PathBuf> = std::fs::read_dir(&ckdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
        .collect();
    ckpts.sort();
    let last = ckpts.last().expect("at least one checkpoint").clone();
    eprintln!(
        "killed after {} checkpoints; resuming from {}",
        ckpts.len(),
        last.display()
    );
    let st = Command::new(exe)
        .args(["resume", &last.display().to_string(), "-q"])
        .status()
        .unwrap();
    assert!(st.success());
    for f in ["messages.jsonl", "interaction.csv", "metrics.csv"] {
        assert!(
            read(&full.path().join(f)) == read(&killed.path().join(f)),
            "{f} differs after kill and resume"
        );
    }
}

#[test]
fn unsafe_resumes_and_branches_are_refused_without_touching_files() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt2 = run_with_checkpoint(demo_config(), dir.path(), 3, 2);
    let messages = read(&dir.path().join("messages.jsonl"));
    let interactions = read(&dir.path().join("interaction.csv"));
    let untouched = || {
        assert_eq!(read(&dir.path().join("messages.jsonl")), messages);
        assert_eq!(read(&dir.path().join("interaction.csv")), interactions);
    };
    // A branch into the parent's own directory.
    let e = checkpoint::resume(
        &ckpt2,
        &[("rec_model".into(), "Random".into())],
        Some(dir.path()),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("messages.jsonl"), "{e}");
    untouched();
    // Going back before the checkpoint.
    let e = checkpoint::resume(&ckpt2, &[("round".into(), "1".into())], None)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            CheckpointError::RoundBehind {
                checkpoint: 2,
                asked: 1
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("pass a number above 2"), "{e}");
    untouched();
    // A forbidden setting.
    assert!(checkpoint::resume(&ckpt2, &[("interval".into(), "1h".into())], None).is_err());
    untouched();
    // The outputs belong to another run: the checkpoint's tail hash does not match.
    let other = tempfile::tempdir().unwrap();
    let mut cfg = demo_config();
    cfg.seed = 99;
    run_with_checkpoint(cfg, other.path(), 3, 0);
    let (h, _) = checkpoint::load(&ckpt2).unwrap();
    for (f, off) in [
        ("messages.jsonl", h.offsets.messages),
        ("interaction.csv", h.offsets.interactions),
    ] {
        let bytes = std::fs::read(other.path().join(f)).unwrap();
        assert!(
            bytes.len() as u64 >= off,
            "the other run's {f} is long enough to be mistaken"
        );
        std::fs::write(dir.path().join(f), bytes).unwrap();
    }
    let e = checkpoint::resume(&ckpt2, &[], None).err().unwrap();
    assert!(
        e.to_string().contains("does not match the checkpoint"),
        "{e}"
    );
}

#[test]
fn colliding_output_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = paths(dir.path());
    p.log = p.messages.clone();
    let e = Sim::new(demo_config(), p).err().unwrap();
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(&format!(": {s}"));
        src = s.source();
    }
    assert!(
        chain.contains("messages.jsonl") && chain.contains("same file"),
        "{chain}"
    );
}

#[test]
fn a_trained_model_resumes_exactly() {
    // MF warm-starts from its previous weights and re-fits every 2nd round, so a checkpoint at
    // round 3 must carry the weights: re-fitting on the log would give another model. With a
    // re-fit bounded to 20 watches (the demo watches more a round), every re-fit after the
    // first is incremental and must also know which watches the model has seen.
    let mf = |every: &str, pairs: &str| {
        demo_config()
            .with_overrides(&[
                ("rec_model".into(), "MF".into()),
                ("epoch_num".into(), "2".into()),
                ("retrain_every".into(), every.into()),
                ("retrain_pairs".into(), pairs.into()),
            ])
            .unwrap()
    };
    let mut outputs = Vec::new();
    for (every, pairs) in [("2", "250000"), ("1", "20"), ("1", "0")] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run_with_checkpoint(mf(every, pairs), a.path(), 5, 0);
        let ckpt = run_with_checkpoint(mf(every, pairs), b.path(), 3, 3);
        let (mut resumed, _) = checkpoint::resume(&ckpt, &[], None).unwrap();
        while resumed.round() < 5 {
            resumed.step().unwrap();
        }
        drop(resumed);
        for f in ["messages.jsonl", "interaction.csv", "metrics.csv"] {
            assert_eq!(
                read(&a.path().join(f)),
                read(&b.path().join(f)),
                "{f} (retrain_every {every}, retrain_pairs {pairs})"
            );
        }
        outputs.push(read(&a.path().join("interaction.csv")));
    }
    // The bounded re-fits trained another model than the full ones.
    assert_ne!(outputs[1], outputs[2]);
}

#[test]
fn a_copied_run_directory_resumes_in_the_copy_and_leaves_the_original_alone() {
    // Checkpoints record absolute output paths; a run directory copied (or moved) with its
    // checkpoints must resume into the copy, giving the uninterrupted run's outputs.
    let (full, orig, root) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut cfg = demo_config();
    cfg.round = 4;
    let mut sim = sim_in(cfg.clone(), full.path());
    for _ in 0..4 {
        sim.step().unwrap();
    }
    drop(sim);
    let mut sim = sim_in(cfg, orig.path());
    for _ in 0..2 {
        sim.step().unwrap();
    }
    checkpoint::save(
        &mut sim,
        &orig.path().join("checkpoints/round-2.ckpt"),
        None,
    )
    .unwrap();
    drop(sim);
    let copy = root.path().join("copy");
    std::fs::create_dir_all(copy.join("checkpoints")).unwrap();
    for f in [
        "messages.jsonl",
        "interaction.csv",
        "manifest.json",
        "checkpoints/round-2.ckpt",
    ] {
        if orig.path().join(f).exists() {
            std::fs::copy(orig.path().join(f), copy.join(f)).unwrap();
        }
    }
    let before = read(&orig.path().join("interaction.csv"));
    let (mut resumed, _) =
        checkpoint::resume(&copy.join("checkpoints/round-2.ckpt"), &[], None).unwrap();
    while resumed.round() < 4 {
        resumed.step().unwrap();
    }
    drop(resumed);
    assert_eq!(read(&orig.path().join("interaction.csv")), before);
    assert_eq!(
        read(&copy.join("interaction.csv")),
        read(&full.path().join("interaction.csv"))
    );
    // metrics.csv was not copied: the restored state wrote it in the copy, the original keeps
    // its 2 rows.
    assert_eq!(
        read(&copy.join("metrics.csv")),
        read(&full.path().join("metrics.csv"))
    );
    assert_eq!(read(&orig.path().join("metrics.csv")).lines().count(), 3);
    if full.path().join("messages.jsonl").exists() {
        assert_eq!(
            read(&copy.join("messages.jsonl")),
            read(&full.path().join("messages.jsonl"))
        );
    }
}

/// The checkpointed recommender's state bytes and its interaction log's watches.
fn model_state(sim: &Sim) -> (String, Option<Vec<u8>>, usize) {
    let rec = sim.world().resource::<recagent::sim::RecState>();
    (
        rec.model.name().to_string(),
        rec.model.save_state(),
        rec.log.watches().len(),
    )
}

#[test]
fn branch_keeping_the_model_restores_its_state_and_a_changed_model_starts_fresh() {
    // MF and MultVAE runs (small, so debug stays quick), checkpointed after round 2.
    for (model, other) in [("MF", "Popularity"), ("MultVAE", "MF")] {
        let parent = tempfile::tempdir().unwrap();
        let cfg = demo_config()
            .with_overrides(&[
                ("rec_model".into(), model.into()),
                ("epoch_num".into(), "2".into()),
                ("embedding_size".into(), "8".into()),
            ])
            .unwrap();
        let mut sim = sim_in(cfg, parent.path());
        sim.step().unwrap();
        sim.step().unwrap();
        let ckpt = parent.path().join("round-2.ckpt");
        checkpoint::save(&mut sim, &ckpt, None).unwrap();
        let at_checkpoint = model_state(&sim);
        assert_eq!(at_checkpoint.0, model);

        // Same model, another page setting: the learned state comes back byte for byte.
        let out = tempfile::tempdir().unwrap();
        let same = [("rec_random_k".to_string(), "2".to_string())];
        let (branch, _) = checkpoint::resume(&ckpt, &same, Some(out.path())).unwrap();
        assert_eq!(model_state(&branch), at_checkpoint, "{model}");

        // Another model: trained afresh on the interactions so far, exactly as a new model
        // of that kind fitted on the restored log.
        let out = tempfile::tempdir().unwrap();
        let changed = [("rec_model".to_string(), other.to_string())];
        let (branch, _) = checkpoint::resume(&ckpt, &changed, Some(out.path())).unwrap();
        let rec = branch.world().resource::<recagent::sim::RecState>();
        assert_eq!(rec.model.name(), other);
        let cfg = branch.config().clone();
        let mut fresh: Box<dyn recagent::recommender::Recommender> = match other {
            "Popularity" => Box::new(recagent::recommender::Popularity::default()),
            _ => Box::new(recagent::recommender::Mf::new(
                recagent::recommender::TrainParams {
                    dim: cfg.embedding_size as usize,
                    lr: cfg.lr as f32,
                    epochs: cfg.epoch_num,
                    batch: cfg.batch_size as usize,
                    seed: cfg.seed,
                    reg: recagent::recommender::MF_DEFAULT_REG,
                    ..Default::default()
                },
            )),
        };
        // The builder's first fit (on the initial log, empty here) comes first, as in the
        // branch, so the sampling streams match.
        fresh.fit(&recagent::recommender::InteractionLog::new(
            rec.log.n_users(),
            rec.log.n_items(),
        ));
        fresh.fit(&rec.log);
        assert_eq!(rec.log.watches().len(), at_checkpoint.2);
        assert_eq!(
            rec.model.save_state(),
            fresh.save_state(),
            "{model} -> {other}"
        );
    }
}

#[test]
fn cli_branch_to_another_model_gives_no_state_warning() {
    let exe = env!("CARGO_BIN_EXE_recagent");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.yaml");
    let run = tempfile::tempdir().unwrap();
    let st = Command::new(exe)
        .args(["run", "-q", "-c"])
        .arg(&cfg)
        .arg("--output-dir")
        .arg(run.path())
        .args([
            "--rounds",
            "2",
            "--set",
            "rec_model=MF",
            "--set",
            "epoch_num=1",
        ])
        .env_remove("RECAGENT_LOG")
        .status()
        .unwrap();
    assert!(st.success());
    let out = run.path().join("branch");
    let o = Command::new(exe)
        .arg("branch")
        .arg(run.path().join("checkpoints/round-000001.ckpt"))
        .arg("--out")
        .arg(&out)
        .args(["--set", "rec_model=Random", "-q"])
        .env_remove("RECAGENT_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let log = read(&out.join("run.log"));
    for text in [&*stderr, &log] {
        assert!(!text.contains("not restored"), "{text}");
        assert!(!text.contains("missing field"), "{text}");
    }
    assert!(
        log.contains("recommender MF of the checkpoint replaced by Random"),
        "{log}"
    );
}

#[test]
fn a_checkpoint_that_cannot_be_written_says_after_which_round_and_what_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = demo_config();
    cfg.round = 3;
    let mut sim = sim_in(cfg, dir.path());
    let ckpts = dir.path().join("checkpoints");
    let policy = recagent::sim::CheckpointPolicy {
        dir: ckpts.clone(),
        every: 1,
    };
    // Round 1's checkpoint is written; then a folder stands where round 2's file goes.
    std::fs::create_dir_all(ckpts.join("round-000002.ckpt")).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let err = sim.run_until(&stop, &policy, |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("writing the checkpoint after round 2 failed: ")
            && msg.contains("the outputs hold rounds 1-2")
            && msg.contains("resume from")
            && msg.contains("round-000001.ckpt"),
        "{msg}"
    );
    let manifest = read(&dir.path().join("manifest.json"));
    assert!(
        manifest.contains("\"failed writing the checkpoint after round 2\""),
        "{manifest}"
    );
    assert!(checkpoint::load(&ckpts.join("round-000001.ckpt")).is_ok());
}
