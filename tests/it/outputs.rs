//! Output files and folders: the messages as one JSON document (`.json`), kept right by resume
//! and branch.

use std::path::{Path, PathBuf};

use recagent::checkpoint;
use recagent::io::output::OutputPaths;
use recagent::sim::Sim;

use crate::common::{demo_config, paths};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

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
    let mut sim = Sim::new(demo_config(), json_paths(dir)).unwrap();
    let ckpt = dir.join(format!("round-{at}.ckpt"));
    for r in 1..=rounds {
        sim.step().unwrap();
        if r == at {
            checkpoint::save(&mut sim, &ckpt, None).unwrap();
        }
    }
    ckpt
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
