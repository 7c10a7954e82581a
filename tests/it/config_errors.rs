use std::path::PathBuf;

use recagent::config::{ConfigError, SimConfig};

fn parse(text: &str) -> Result<SimConfig, ConfigError> {
    SimConfig::from_yaml(text, "run.yaml", PathBuf::from("."))
}

/// Parses, then checks every key against the shipped plugins' settings (as building does).
fn check(text: &str) -> Result<SimConfig, String> {
    let c = parse(text).map_err(|e| e.to_string())?;
    recagent::sim::SimBuilder::new(c.clone())
        .check()
        .map_err(|e| e.to_string())?;
    Ok(c)
}

#[test]
fn every_shipped_config_and_scenario_is_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("config/config.yaml")];
    for e in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
    }
    for f in files {
        // A scenario (it has `variants:`) is checked by the scenario tests.
        let text = std::fs::read_to_string(&f).unwrap();
        if text.lines().any(|l| l.starts_with("variants:")) {
            continue;
        }
        SimConfig::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn errors_name_key_and_line() {
    let e = check("seed: 1\nround: 3\nactive_methd: random\n").unwrap_err();
    assert!(e.contains("active_methd") && e.contains("line 3"), "{e}");
    assert!(e.contains("did you mean `active_method`?"), "{e}");
    let e = parse("round: 3\nround: 4\n").unwrap_err().to_string();
    assert!(e.contains("duplicate") && e.contains("round"), "{e}");
    let e = check("seed: 1\nactive_method: often\n").unwrap_err();
    assert!(
        e.starts_with("run.yaml:2: invalid value for `active_method`") && e.contains("often"),
        "{e}"
    );
    let e = parse("round: 0\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "run.yaml:1: invalid value for `round`: 0 is out of range: allowed 1..=1000000"
    );
    let e = parse("offline:\n  temperature: 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`offline.temperature`") && e.contains("run.yaml:2"),
        "{e}"
    );
    // Unknown keys in sections are reported with the others, when the simulation is built.
    let e = check("offline:\n  tempreature: 1\n").unwrap_err();
    assert_eq!(
        e,
        "run.yaml: line 2: unknown field `offline.tempreature`; did you mean `offline.temperature`?"
    );
    let e = parse("rec_model: SVD\n").unwrap_err().to_string();
    assert!(
        e.contains("rec_model") && e.contains("SVD") && e.contains("LightGCN"),
        "{e}"
    );
    let e = parse("start_time: tomorrow\n").unwrap_err().to_string();
    assert!(
        e.contains("`start_time`") && e.contains("YYYY-mm-dd HH:MM:SS"),
        "{e}"
    );
}

#[test]
fn nested_keys_are_located_and_overridable() {
    let e = parse("temperature: 0\nseed: 1\noffline:\n  temperature: 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("run.yaml:4:") && e.contains("`offline.temperature`"),
        "{e}"
    );
    let c = parse("seed: 1\n").unwrap();
    let o = c
        .with_overrides(&[("offline.temperature".into(), "2".into())])
        .unwrap();
    assert_eq!(o.offline.temperature, 2.0);
    assert_eq!(
        o.offline.chat_turns, c.offline.chat_turns,
        "the rest of the section is kept"
    );
    let o = c
        .with_overrides(&[("page_size".into(), "abc".into())])
        .unwrap();
    let e = recagent::sim::SimBuilder::new(o)
        .check()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "command line: invalid value for `page_size`: must be a whole number from 1 to 50, not `abc`"
    );
    let e = c
        .with_overrides(&[("round".into(), "abc".into())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("round=abc") && !e.contains("[("), "{e}");
    let e = parse("round: 3\nround: 4\n").unwrap_err().to_string();
    assert!(
        !e.contains("DuplicateKeyPolicy") && e.contains("run.yaml"),
        "{e}"
    );
}

#[test]
fn rounds_past_year_9999_are_refused() {
    let e = parse("interval: 100000000d\nround: 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`interval`") && e.contains("9999"), "{e}");
    let e = parse("interval: 300000y\nround: 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("9999"), "{e}");
    assert!(parse("interval: 1d\nround: 1000\n").is_ok());
}

#[test]
fn memory_section_keys_are_checked() {
    let c = parse("memory:\n  stm_capacity: 4\n  ltm_cap: 50\n").unwrap();
    assert_eq!((c.memory.stm_capacity, c.memory.ltm_cap), (4, 50));
    assert_eq!(c.memory.importance_gate, 0.62);
    let e = check("memory:\n  stm_capacty: 4\n").unwrap_err();
    assert!(
        e.contains(
            "line 2: unknown field `memory.stm_capacty`; did you mean `memory.stm_capacity`?"
        ),
        "{e}"
    );
    let e = parse("memory:\n  recency_decay: 1.5\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`memory.recency_decay`") && e.contains("0.01..=1"),
        "{e}"
    );
    let e = parse("memory:\n  embedder: bert\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`memory.embedder`") && e.contains("hash, openai"),
        "{e}"
    );
}
