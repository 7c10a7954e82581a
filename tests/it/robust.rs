//! Issue 17's robustness leftovers: manifest numbers as written, no hnsw_rs INFO lines in
//! `run.log`, a missing data file named with where the README says to get it.

use recagent::config::SimConfig;

use crate::common::{ran, recagent, root};

/// A widened `f32`: a float that is exactly an `f32` and whose shortest `f64` decimal is not the
/// `f32`'s own (`0.699999988079071` for `0.7f32`). Every such number in `v`, by JSON path.
fn widened_f32s(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            let f = x as f32;
            if f64::from(f) == x && format!("{f}") != format!("{x}") {
                out.push(format!("{path} = {x}"));
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                widened_f32s(x, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                widened_f32s(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Every `f32` setting is printed as written, in the manifest and in a checkpoint's header, and
/// reads back as the same `f32` on resume. By hand: `0.7f32` is 0.699999988079071044921875,
/// whose shortest `f64` decimal is `0.699999988079071` (what the manifest showed) and whose
/// shortest `f32` decimal is `0.7`; `0.15f32` likewise prints `0.15`, not `0.15000000596046448`.
#[test]
fn manifest_and_checkpoint_print_f32_settings_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::demo_config()
        .with_overrides(&[
            ("agent_num".into(), "3".into()),
            ("round".into(), "1".into()),
            ("memory.item_index".into(), "false".into()),
            ("memory.newest_bonus".into(), "0.15".into()),
        ])
        .unwrap();
    let out = crate::common::run(cfg.clone(), dir.path());
    let config = &out.manifest["config"];
    assert_eq!(config["memory"]["enhance_gate"].as_f64(), Some(0.7));
    assert_eq!(config["memory"]["importance_gate"].as_f64(), Some(0.62));
    assert_eq!(config["memory"]["newest_bonus"].as_f64(), Some(0.15));
    // As a kind: no number of the resolved configuration (core keys and every plugin's
    // settings) is a widened f32.
    let mut widened = Vec::new();
    widened_f32s(config, "config", &mut widened);
    assert!(widened.is_empty(), "{widened:?}");
    let text = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(text.contains("\"enhance_gate\": 0.7,"), "{text}");

    // The checkpoint keeps the same numbers, and a resume reads back the same f32 values.
    // Another folder, outside the first run's (whose manifest would claim the checkpoint).
    let again_dir = tempfile::tempdir().unwrap();
    let again = again_dir.path();
    let mut sim = recagent::sim::Sim::new(cfg, crate::common::paths(again)).unwrap();
    sim.step().unwrap();
    let ckpt = again.join("round-1.ckpt");
    let header = recagent::checkpoint::save(&mut sim, &ckpt, None).unwrap();
    let mut widened = Vec::new();
    widened_f32s(&header.config, "checkpoint", &mut widened);
    assert!(widened.is_empty(), "{widened:?}");
    let branch = tempfile::tempdir().unwrap();
    let (resumed, _) = recagent::checkpoint::resume(&ckpt, &[], Some(branch.path())).unwrap();
    let m = &resumed.world().resource::<SimConfig>().memory;
    assert_eq!((m.enhance_gate, m.newest_bonus), (0.7f32, 0.15f32));
}

/// Runs the CLI; (success, stderr).
fn cli(args: &[&str], log: Option<&str>) -> (bool, String) {
    let mut c = recagent();
    c.args(args);
    if let Some(l) = log {
        c.env("RECAGENT_LOG", l);
    }
    let (code, _, err) = ran(&mut c);
    (code == Some(0), err)
}

/// `run.log` lines at INFO from the item index's library (hnsw_rs, anndists).
fn index_info_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" INFO ") && (l.contains("hnsw_rs") || l.contains("anndists")))
        .collect()
}

/// A run that builds and saves the item index logs no hnsw_rs INFO line (it logged about 20),
/// but still its own INFO lines; naming hnsw_rs in `RECAGENT_LOG` brings its lines back (so the
/// check above can fail).
#[test]
fn run_log_has_no_hnsw_rs_info_lines() {
    let cfg = root().join("config/config.yaml");
    let run = |log: Option<&str>| {
        let (out, ix) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let index_dir = format!("memory.index_dir={}", ix.path().display());
        let (ok, err) = cli(
            &[
                "run",
                "-q",
                "-c",
                cfg.to_str().unwrap(),
                "--output-dir",
                out.path().to_str().unwrap(),
                "--rounds",
                "1",
                "--set",
                &index_dir,
            ],
            log,
        );
        assert!(ok, "{err}");
        std::fs::read_to_string(out.path().join("run.log")).unwrap()
    };
    let log = run(None);
    assert!(log.lines().any(|l| l.contains(" INFO ")), "{log}");
    assert_eq!(index_info_lines(&log), Vec::<&str>::new());
    let log = run(Some("info,hnsw_rs=info"));
    assert!(!index_info_lines(&log).is_empty(), "{log}");
}

/// A configuration naming a data file that is not there: the error names the file, says what it
/// is in the configuration's terms and points to the README's "Getting started" section, which
/// exists and says how to put `recagent` on the PATH. `eval-recommender` without Agent4Rec's
/// folder says the same about its split.
#[test]
fn missing_data_file_says_what_it_is_and_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("recagent-1000.yaml");
    std::fs::write(
        &cfg,
        // A folder that exists neither beside the file nor in the working directory (RecAgent's
        // paths are also looked up there, see `SimConfig::load`).
        "item_path: ../no-such-shared/data/recagent/item.csv\nuser_path: ../no-such-shared/data/recagent/user_1000.csv\n\
         relationship_path: ../no-such-shared/data/recagent/relationship_1000.csv\nround: 1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (ok, err) = cli(
        &[
            "run",
            "-q",
            "-c",
            cfg.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok);
    let missing = dir.path().join("../no-such-shared/data/recagent/item.csv");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(
        err.contains("cannot read the item catalogue (`item_path`) (no such file;"),
        "{err}"
    );
    assert!(err.contains("\"Getting started\""), "{err}");

    let (ok, err) = cli(
        &[
            "eval-recommender",
            "--cf-dir",
            dir.path().join("cf_data").to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("train.txt") && err.contains("\"Getting started\""),
        "{err}"
    );

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Getting started\n")
        .expect("README section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |e| e + 4)];
    assert!(section.contains("cargo install --path ."), "{section}");
    assert!(
        section.contains("../shared/data/recagent/")
            && section.contains("../shared/data/agent4rec/"),
        "{section}"
    );
}
