//! Output files and folders: the messages as one JSON document (`.json`), kept right by resume
//! and branch.

use std::path::{Path, PathBuf};

use recagent::checkpoint;
use recagent::io::output::OutputPaths;
use recagent::sim::Sim;

use crate::common::{demo_config, paths, ran, read, recagent, root, steps_with_checkpoint};

/// Outputs in `dir` with the messages as the document `record.json`.
fn json_paths(dir: &Path) -> OutputPaths {
    OutputPaths {
        messages: dir.join("record.json"),
        ..paths(dir)
    }
}

/// Runs the demo for `rounds` rounds into `dir` (messages as `record.json`), writing a
/// checkpoint after round `at` (0: none), and returns its path.
fn json_run(dir: &Path, rounds: u32, at: u32) -> PathBuf {
    steps_with_checkpoint(
        Sim::new(demo_config(), json_paths(dir)).unwrap(),
        dir,
        rounds,
        at,
    )
}

#[test]
fn a_json_document_is_the_stream_nested_by_round_and_survives_resume_and_branch() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    json_run(a.path(), 5, 0);
    let doc = read(&a.path().join("record.json"));
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let rounds = v.as_array().unwrap();
    assert_eq!(rounds.len(), 5);
    // The document holds exactly the stream's messages, round by round, in stream order.
    let stream = read(&a.path().join("record.jsonl"));
    let lines: Vec<serde_json::Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flat: Vec<&serde_json::Value> = rounds.iter().flat_map(|r| r.as_array().unwrap()).collect();
    assert_eq!(flat.len(), lines.len());
    for (i, (d, l)) in flat.iter().zip(&lines).enumerate() {
        assert_eq!(*d, l, "message {i}");
        let r = l["round"].as_u64().unwrap() as usize;
        assert!(rounds[r - 1].as_array().unwrap().contains(l));
    }
    // Key order: the original's three first (spec §5.6).
    assert!(
        doc.lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .all(|l| l.trim_start().starts_with("{\"content\":")
                && l.contains("\",\"agent_id\":")
                && l.contains(",\"action\":\"")),
        "{doc}"
    );

    // Killed after round 4 (checkpoint after 3), resumed to 5: the same document.
    let ckpt = json_run(b.path(), 4, 3);
    let (mut resumed, _) = checkpoint::resume(&ckpt, &[], None).unwrap();
    let after_three: serde_json::Value =
        serde_json::from_str(&read(&b.path().join("record.json"))).unwrap();
    assert_eq!(after_three.as_array().unwrap()[..], rounds[..3]);
    while resumed.round() < 5 {
        resumed.step().unwrap();
    }
    drop(resumed);
    assert_eq!(read(&b.path().join("record.json")), doc);
    assert_eq!(read(&b.path().join("record.jsonl")), stream);

    // A branch with no change writes the same document in its own folder.
    let out = c.path().join("branch");
    let (mut branched, _) = checkpoint::resume(&ckpt, &[], Some(&out)).unwrap();
    while branched.round() < 5 {
        branched.step().unwrap();
    }
    drop(branched);
    assert_eq!(read(&out.join("record.json")), doc);
    assert_eq!(read(&out.join("record.jsonl")), stream);
}

/// Runs the CLI with `args`, the user cache in `cache`; (success, stdout + stderr).
fn cli(args: &[&str], cache: &Path) -> (bool, String) {
    let (code, out, err) = ran(recagent().args(args).env("RECAGENT_CACHE_DIR", cache));
    (code == Some(0), out + &err)
}

/// Every file under `dir` with its length and modification time, sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            v.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    v.sort();
    v
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    listing(dir)
        .into_iter()
        .map(|f| f.0)
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// `run -q` of one round on the demo data copied to `data`, into `out`.
fn data_run(data: &Path, out: &Path, cache: &Path) -> (bool, String) {
    let cfg = root().join("config/config.yaml");
    let set = |k: &str, f: &str| format!("{k}={}", data.join(f).display());
    cli(
        &[
            "run",
            "-q",
            "-c",
            cfg.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--rounds",
            "1",
            "--set",
            &set("item_path", "item.csv"),
            "--set",
            &set("user_path", "users.csv"),
            "--set",
            &set("relationship_path", "relationship.csv"),
        ],
        cache,
    )
}

#[test]
fn nothing_is_written_beside_the_data_and_a_read_only_prebuilt_index_is_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in ["item.csv", "users.csv", "relationship.csv"] {
        std::fs::copy(root().join("data").join(f), data.join(f)).unwrap();
    }
    // A writable data folder: the index goes to the user cache, nothing new beside the data.
    let before = listing(&data);
    let cache = t.path().join("cache");
    let (ok, text) = data_run(&data, &t.path().join("out1"), &cache);
    assert!(ok, "{text}");
    assert_eq!(listing(&data), before);
    let built = files_ending(&cache.join("index"), ".hnsw.sum");
    assert_eq!(built.len(), 1, "{built:?}");

    // Ship that index with the data, in a read-only folder (chmod a-w; root would still be
    // allowed to write, so the check is that nothing changed, not that a write failed).
    let shipped = data.join(".recagent-index");
    std::fs::rename(cache.join("index"), &shipped).unwrap();
    for p in listing(&data).iter().map(|f| &f.0).chain([&data]) {
        let mode = if p.is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let before = listing(&data);
    let cache2 = t.path().join("cache2");
    let (ok, text) = data_run(&data, &t.path().join("out2"), &cache2);
    for p in listing(&data).iter().map(|f| &f.0).chain([&data]) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(ok, "{text}");
    assert_eq!(listing(&data), before, "the data folder changed");
    // Read, not rebuilt: a rebuilt graph would have been written to the (empty) cache.
    assert_eq!(files_ending(&cache2, ".hnsw.graph"), Vec::<PathBuf>::new());
    assert_eq!(
        files_ending(&t.path().join("out2"), ".hnsw.graph"),
        Vec::<PathBuf>::new()
    );
    assert!(!text.contains("unusable"), "{text}");
}

/// `run -q` of the demo configuration into `out` for `rounds` rounds (a checkpoint after
/// every round), with `extra` arguments.
fn demo_run(out: &Path, cache: &Path, rounds: u32, extra: &[&str]) -> (bool, String) {
    let cfg = root().join("config/config.yaml");
    let rounds = rounds.to_string();
    let mut args = vec![
        "run",
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--rounds",
        &rounds,
        "--set",
        "checkpoint_every=1",
    ];
    args.extend_from_slice(extra);
    cli(&args, cache)
}

fn run_id(dir: &Path) -> String {
    let m: serde_json::Value = serde_json::from_str(&read(&dir.join("manifest.json"))).unwrap();
    m["run_id"].as_str().unwrap().to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_into_an_earlier_run_is_refused_unless_overwrite_which_clears_only_that_run() {
    let t = tempfile::tempdir().unwrap();
    let (out, cache) = (t.path().join("out"), t.path().join("cache"));
    let (ok, text) = demo_run(&out, &cache, 3, &[]);
    assert!(ok, "{text}");
    let first = run_id(&out);
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let before = listing(&out);

    let (ok, text) = demo_run(&out, &cache, 1, &[]);
    assert!(!ok);
    let want = format!("error: {} holds an earlier run (", out.display());
    assert!(text.contains(&want), "{text}");
    assert!(
        text.contains(&out.join("manifest.json").display().to_string())
            && text.contains("pass --overwrite to replace it")
            && text.contains("or choose another --output-dir"),
        "{text}"
    );
    assert_eq!(listing(&out), before, "a refused run touched the folder");

    // --overwrite: the earlier run's three checkpoints go, the unrelated file stays.
    let (ok, text) = demo_run(&out, &cache, 1, &["--overwrite"]);
    assert!(ok, "{text}");
    assert_eq!(names(&out.join("checkpoints")), ["round-000001.ckpt"]);
    assert_eq!(read(&out.join("notes.txt")), "mine");
    assert_ne!(run_id(&out), first);
    let m: serde_json::Value = serde_json::from_str(&read(&out.join("manifest.json"))).unwrap();
    assert_eq!(m["rounds_completed"], 1);
    assert!(!read(&out.join("run.log")).contains("round=3"));

    // A branch onto an earlier branch: the same refusal, naming --out.
    let ckpt = out.join("checkpoints/round-000001.ckpt");
    let branch = t.path().join("branch");
    let b = |extra: &[&str]| {
        let mut args = vec![
            "branch",
            "-q",
            ckpt.to_str().unwrap(),
            "--out",
            branch.to_str().unwrap(),
            "--rounds",
            "2",
        ];
        args.extend_from_slice(extra);
        cli(&args, &cache)
    };
    let (ok, text) = b(&[]);
    assert!(ok, "{text}");
    let first_branch = run_id(&branch);
    assert_ne!(first_branch, run_id(&out), "a branch is a run of its own");
    let (ok, text) = b(&[]);
    assert!(!ok);
    assert!(
        text.contains("holds an earlier run") && text.contains("or choose another --out"),
        "{text}"
    );
    assert_eq!(run_id(&branch), first_branch);
    let (ok, text) = b(&["--overwrite"]);
    assert!(ok, "{text}");
    assert_ne!(run_id(&branch), first_branch);

    // An overwrite that writes no checkpoints leaves no empty checkpoint folder behind.
    let (ok, text) = demo_run(
        &out,
        &cache,
        1,
        &["--overwrite", "--set", "checkpoint_every=0"],
    );
    assert!(ok, "{text}");
    assert!(!out.join("checkpoints").exists(), "{:?}", names(&out));
    assert_eq!(read(&out.join("notes.txt")), "mine");
}

#[test]
fn a_stale_checkpoint_is_refused_and_a_moved_run_folder_resumes_in_place() {
    let t = tempfile::tempdir().unwrap();
    let (out, cache) = (t.path().join("out"), t.path().join("cache"));
    let (ok, text) = demo_run(&out, &cache, 3, &[]);
    assert!(ok, "{text}");
    let first = run_id(&out);
    let ckpt3 = out.join("checkpoints/round-000003.ckpt");
    let header = read_header(&ckpt3);
    assert_eq!(header["run_id"], first.as_str());
    let stale = t.path().join("stale.ckpt");
    std::fs::copy(&ckpt3, &stale).unwrap();

    // A later run replaces the folder; the old round-3 checkpoint is put back beside it.
    let (ok, text) = demo_run(&out, &cache, 2, &["--overwrite"]);
    assert!(ok, "{text}");
    let second = run_id(&out);
    std::fs::copy(&stale, &ckpt3).unwrap();
    let before = listing(&out);
    let (ok, text) = cli(&["resume", "-q", ckpt3.to_str().unwrap()], &cache);
    assert!(!ok);
    let want = format!(
        "belongs to run {first}, but {} is run {second}",
        out.join("manifest.json").display()
    );
    assert!(text.contains(&want), "{text}");
    assert_eq!(listing(&out), before, "a refused resume touched the folder");
    std::fs::remove_file(&ckpt3).unwrap();

    // The uninterrupted second run's outputs, to compare the moved-and-resumed one with.
    let (messages, interactions) = (
        read(&out.join("messages.jsonl")),
        read(&out.join("interaction.csv")),
    );
    let moved = t.path().join("elsewhere/moved");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&out, &moved).unwrap();
    let ckpt1 = moved.join("checkpoints/round-000001.ckpt");
    let (ok, text) = cli(&["resume", "-q", ckpt1.to_str().unwrap()], &cache);
    assert!(ok, "{text}");
    assert!(
        !out.exists(),
        "the old location was recreated: {:?}",
        listing(&out)
    );
    assert_eq!(read(&moved.join("messages.jsonl")), messages);
    assert_eq!(read(&moved.join("interaction.csv")), interactions);
    assert_eq!(run_id(&moved), second, "a resumed run is the same run");
    let log = read(&moved.join("run.log"));
    assert!(log.contains("resuming"), "{log}");
    // Its new checkpoints carry the run id too.
    assert_eq!(
        read_header(&moved.join("checkpoints/round-000002.ckpt"))["run_id"],
        second.as_str()
    );
}

/// A checkpoint's header (its first line).
fn read_header(ckpt: &Path) -> serde_json::Value {
    let bytes = std::fs::read(ckpt).unwrap();
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    serde_json::from_slice(&bytes[..nl]).unwrap()
}

#[test]
fn the_readme_command_runs_on_a_fresh_machine_and_a_second_run_is_refused() {
    // `recagent run` in a folder without config/: the embedded default, writing ./output.
    let t = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = ran(recagent()
            .args(args)
            .current_dir(t.path())
            .env("RECAGENT_CACHE_DIR", t.path().join("cache")));
        (code == Some(0), out + &err)
    };
    let (ok, text) = run(&["run", "-q", "--rounds", "2"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["run", "-q", "--rounds", "2"]);
    assert!(!ok);
    assert!(
        text.starts_with("error: output holds an earlier run (output/manifest.json, "),
        "{text}"
    );
    // The original's command line: `-o record.json` gets the JSON document (and its stream).
    let (ok, text) = run(&[
        "run",
        "-q",
        "--rounds",
        "2",
        "--overwrite",
        "-o",
        "record.json",
    ]);
    assert!(ok, "{text}");
    let doc: serde_json::Value =
        serde_json::from_str(&read(&t.path().join("record.json"))).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 2);
    let stream = read(&t.path().join("record.jsonl"));
    let n: usize = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().len())
        .sum();
    assert_eq!(n, stream.lines().count());
    let m: serde_json::Value =
        serde_json::from_str(&read(&t.path().join("output/manifest.json"))).unwrap();
    assert_eq!(m["messages_format"], "json");
    assert_eq!(m["outputs"]["messages"], "record.json");
    assert_eq!(m["messages_stream"], "record.jsonl");
    // The earlier run's messages stream was its file: removed, not left beside the new one.
    assert!(!t.path().join("output/messages.jsonl").exists());
}

#[test]
fn message_agents_keeps_one_agent_in_n_and_the_named_ones_and_nothing_else_changes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let all = crate::common::run(demo_config(), a.path());
    let sampled = crate::common::run(
        recagent::config::SimConfig {
            message_agents: recagent::config::MessageAgents {
                every: 4,
                ids: vec![13, 7],
            },
            ..demo_config()
        },
        b.path(),
    );
    let keep = |id: i64| id < 0 || id % 4 == 0 || id == 7 || id == 13;
    let expected: Vec<_> = crate::common::messages(&all.messages)
        .into_iter()
        .filter(|m| keep(m.1))
        .collect();
    let got = crate::common::messages(&sampled.messages);
    assert!(!got.is_empty() && got.len() < crate::common::messages(&all.messages).len());
    // Exactly the full run's messages of the kept agents, in the same order.
    assert_eq!(got, expected);
    assert!(got.iter().any(|m| m.1 == 7) && got.iter().any(|m| m.1 == 13));
    // Sampling the messages changes nothing the agents do.
    assert_eq!(sampled.interactions, all.interactions);
    assert_eq!(sampled.metrics, all.metrics);
    assert_eq!(sampled.stats, all.stats);
}

#[test]
fn a_bad_message_sample_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "round: 1\nmessage_agents:\n  every: -3\n",
    )
    .unwrap();
    let (code, _, err) = ran(recagent()
        .args(["run", "-c"])
        .arg(dir.path().join("c.yaml"))
        .arg("--output-dir")
        .arg(dir.path().join("out")));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("c.yaml:3: invalid value for `message_agents.every`: must be a whole number from 0 to 1000000000, not `-3`"),
        "{err}"
    );
}

#[cfg(feature = "parquet")]
#[test]
fn interactions_as_parquet_hold_the_csv_rows_one_file_per_round_and_survive_resume() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = recagent::config::SimConfig {
        interactions_parquet: true,
        ..demo_config()
    };
    let run = crate::common::run(cfg.clone(), a.path());
    let dir = a.path().join("interaction.parquet");
    let parts = recagent::io::parquet::parts(&dir);
    assert_eq!(
        parts.iter().map(|p| p.0).collect::<Vec<_>>(),
        (1..=cfg.round).collect::<Vec<_>>()
    );
    // Every CSV row, in order, is a Parquet row; the empty rating is a null.
    let mut rows = Vec::new();
    for (_, p) in &parts {
        rows.extend(recagent::io::parquet::read_part(p).unwrap());
    }
    let csv: Vec<String> = run.interactions.lines().skip(1).map(String::from).collect();
    assert_eq!(rows.len(), csv.len());
    for (r, line) in rows.iter().zip(&csv) {
        let rating = if r.3 == 0 {
            String::new()
        } else {
            r.3.to_string()
        };
        assert_eq!(
            format!("{},{},{},{rating},{},{}", r.0, r.1, r.2, r.4, r.5),
            *line
        );
    }
    assert!(rows.iter().any(|r| r.2 == 1 && r.3 > 0) && rows.iter().any(|r| r.3 == 0));

    // Killed after round 4 with a checkpoint after 3: the resumed run drops the stray part 4
    // and writes it again; the parts are the uninterrupted run's.
    let sim = Sim::new(cfg.clone(), paths(b.path())).unwrap();
    let ckpt = steps_with_checkpoint(sim, b.path(), 4, 3);
    let bdir = b.path().join("interaction.parquet");
    std::fs::write(recagent::io::parquet::part_path(&bdir, 4), b"torn").unwrap();
    let (mut resumed, _) = checkpoint::resume(&ckpt, &[], None).unwrap();
    assert_eq!(recagent::io::parquet::parts(&bdir).len(), 3);
    while resumed.round() < cfg.round {
        resumed.step().unwrap();
    }
    drop(resumed);
    for ((_, pa), (_, pb)) in parts.iter().zip(recagent::io::parquet::parts(&bdir)) {
        assert_eq!(
            recagent::io::parquet::read_part(pa).unwrap(),
            recagent::io::parquet::read_part(&pb).unwrap()
        );
    }
}
