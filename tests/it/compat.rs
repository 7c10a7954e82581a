//! RecAgent's README example run as a RecAgent user would: its `config/config.yaml` (README v1:
//! `model`, `epoch`, `num_agents`, placeholder `api_keys`) copied verbatim, the data files it
//! names in `data/` beside `config/` (links to `../shared/data/recagent`, never written), and
//! its command line, with underscores, run through the binary from that folder.

use std::path::Path;

use crate::common::{ran, recagent, shared};

/// `src` at `dst`: a symbolic link where the system has them, else a copy.
fn link(src: &Path, dst: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(src, dst).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(src, dst).unwrap();
}

#[test]
fn recagent_readme_v1_runs_verbatim() {
    let Some(data) = shared("recagent") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("config")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/recagent-readme-v1.yaml"),
        root.join("config/config.yaml"),
    )
    .unwrap();
    for f in ["item.csv", "user.csv", "relationship.csv"] {
        link(&data.join(f), &root.join("data").join(f));
    }
    // The README's command line: `python -u simulator.py --config_file config/config.yaml
    // --output_file messages.json --log_file simulation.log`.
    let out = recagent()
        .current_dir(root)
        .args([
            "run",
            "--config_file",
            "config/config.yaml",
            "--output_file",
            "messages.json",
            "--log_file",
            "simulation.log",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // num_agents: 1 and epoch: 1: one agent (the file's first user, Tommie, id 0), one round.
    // `messages.json` is one JSON document in the original's shape (spec section 5.6): a list
    // of rounds, each a list of `{content, agent_id, action, ...}` messages, in that key order.
    let messages = std::fs::read_to_string(root.join("messages.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&messages).expect("one JSON document");
    let rounds = doc.as_array().expect("a list of rounds");
    assert_eq!(rounds.len(), 1, "{messages}");
    let round = rounds[0].as_array().expect("a round is a list of messages");
    assert!(!round.is_empty(), "{messages}");
    for m in round {
        assert_eq!(m["agent_id"], 0, "{m}");
        assert!(m["content"].is_string() && m["action"].is_string(), "{m}");
    }
    assert!(
        round
            .iter()
            .any(|m| m["content"].as_str().unwrap().contains("Tommie")),
        "{messages}"
    );
    for line in messages.lines().filter(|l| l.contains("\"agent_id\"")) {
        let at = |k: &str| line.find(k).unwrap();
        assert!(
            at("\"content\"") < at("\"agent_id\"") && at("\"agent_id\"") < at("\"action\""),
            "{line}"
        );
    }

    // The data paths are RecAgent's, relative to where it runs: the inputs were read from
    // ./data, and `interaction_path: data/interaction.csv` written there.
    let interactions = std::fs::read_to_string(root.join("data/interaction.csv")).unwrap();
    assert!(interactions.starts_with("user_id,item_id,label,rating,round,timestamp\n"));

    // The log says what the old names were read as and which keys have no use here.
    let log = std::fs::read_to_string(root.join("simulation.log")).unwrap();
    let notes = [
        "`model` is read as `rec_model`",
        "`epoch` is read as `round`",
        "`num_agents` is read as `agent_num`",
        "`index_name` is accepted and not used",
        "`api_keys` and `api_bases` are used by `backend: llm` only",
        "its relative paths are read from there, as RecAgent does",
    ];
    for note in notes {
        assert_eq!(log.matches(note).count(), 1, "{note}:\n{log}");
    }
    // `check_config` (underscores too) prints the same notes, one line each, after its verdict.
    let (code, stdout, stderr) = ran(recagent().current_dir(root).args([
        "check_config",
        "--config_file",
        "config/config.yaml",
    ]));
    assert_eq!(code, Some(0), "{stderr}");
    let after_ok = stdout.split("configuration OK").nth(1).unwrap_or_default();
    for note in notes {
        let lines: Vec<&str> = after_ok
            .lines()
            .filter(|l| l.starts_with("note: ") && l.contains(note))
            .collect();
        assert_eq!(lines.len(), 1, "{note}:\n{stdout}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("output/manifest.json")).unwrap())
            .unwrap();
    let c = &manifest["config"];
    assert_eq!(
        (&c["rec_model"], &c["round"], &c["agent_num"]),
        (
            &serde_json::json!("Random"),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
    assert_eq!(
        c["api_keys"],
        serde_json::json!(["<redacted>", "<redacted>"])
    );
}

/// The configuration a simulation resolves from `cfg` (core keys and every plugin's settings,
/// as the manifest records them), with its file paths resolved against its folder.
fn resolved(cfg: recagent::config::SimConfig) -> serde_json::Map<String, serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let base = cfg.base_dir.clone();
    let sim = recagent::sim::Sim::new(cfg, crate::common::paths(dir.path())).unwrap();
    let serde_json::Value::Object(mut m) =
        recagent::sim::manifest::resolved_config(sim.world(), true)
    else {
        panic!("not an object")
    };
    for key in ["item_path", "user_path", "relationship_path", "output_dir"] {
        let p = m[key].as_str().unwrap().to_string();
        m.insert(
            key.into(),
            recagent::io::output::tidy_relative(&base.join(p))
                .display()
                .to_string()
                .into(),
        );
    }
    m
}

/// One set of defaults: the shipped `config/config.yaml` and an empty file beside the project
/// resolve to the same configuration, key by key (the shipped file's paths, relative to
/// `config/`, name the same files as the defaults, relative to the project).
#[test]
fn shipped_config_only_restates_the_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped =
        resolved(recagent::config::SimConfig::load(&root.join("config/config.yaml")).unwrap());
    let empty = resolved(
        recagent::config::SimConfig::from_yaml("", "empty.yaml", root.to_path_buf()).unwrap(),
    );
    let keys: std::collections::BTreeSet<&String> = shipped.keys().chain(empty.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| shipped.get(*k) != empty.get(*k))
        .map(|k| {
            format!(
                "{k}: shipped {:?}, default {:?}",
                shipped.get(k),
                empty.get(k)
            )
        })
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    // The values the issue named: a stopped run can be resumed, pages mix one random item.
    assert_eq!(empty["checkpoint_every"], 1);
    assert_eq!(empty["rec_random_k"], 1);
    // Every top-level key was compared (sections as a whole).
    assert!(shipped.len() > 50, "{}", shipped.len());
}
