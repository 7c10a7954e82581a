//! Scenario files and `recagent scenario`: parsing with line-numbered errors, and a small
//! scenario run end to end with the built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use recagent::analysis::scenario::{Scenario, Summary};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, Path::new("exp.yaml")).map_err(|e| e.to_string())
}

#[test]
fn a_scenario_file_parses() {
    let base = root().join("config/config.yaml");
    let text = format!(
        "base: {}\ndescription: two recommenders\nset:\n  round: 3\n  offline.temperature: 2\n\
         seeds: [4, 5]\nvariants:\n  - name: Pop\n    set: {{rec_model: Popularity}}\n\
         \x20 - name: MF+r1\n    set: {{rec_model: MF, rec_random_k: 1}}\n\
         metrics: [view_ratio, coverage, entropy_shown@slope]\n",
        base.display()
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.seeds, [4, 5]);
    assert_eq!(s.description.as_deref(), Some("two recommenders"));
    let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["Pop", "MF+r1"]);
    assert_eq!((s.variants[0].line, s.variants[1].line), (8, 10));
    let sets: Vec<String> = s.variants[1].set.iter().map(|o| o.set_arg()).collect();
    assert_eq!(sets, ["rec_model=\"MF\"", "rec_random_k=1"]);
    let labels: Vec<String> = s.metrics.iter().map(|m| m.label()).collect();
    assert_eq!(
        labels,
        ["view_ratio@mean", "coverage@last", "entropy_shown@slope"]
    );
    assert_eq!(s.metrics[2].summary, Summary::Slope);
    // The variant's configuration: the base, the common set, then the variant's.
    let cfg = s.variant_config(&s.variants[1], &[]).unwrap();
    assert_eq!(cfg.round, 3);
    assert_eq!(cfg.offline.temperature, 2.0);
    assert_eq!(cfg.rec_model, recagent::config::RecModel::MF);
    assert_eq!(cfg.extra["rec_random_k"], 1);
    // Without `seeds`, one run with the base configuration's seed (config.yaml: 2023).
    let s = parse(&text.replace("seeds: [4, 5]\n", "")).unwrap();
    assert_eq!(s.seeds, [2023]);
}

#[test]
fn bad_scenarios_name_the_line() {
    let e = parse("base: default\nvariants:\n  - name: A\nmetrics: [watches]\nseed: [1]\n")
        .unwrap_err();
    assert!(
        e.starts_with("exp.yaml: line 5 column 1: unknown field `seed`, expected one of"),
        "{e}"
    );
    let e =
        parse("base: default\nvariants:\n  - name: A\n    sets: {round: 1}\nmetrics: [watches]\n")
            .unwrap_err();
    assert!(
        e.starts_with("exp.yaml: line 4 column 5: unknown field `sets`"),
        "{e}"
    );
    let e =
        parse("base: default\nvariants:\n  - name: A\nmetrics:\n  - watches\n  - entropy_shwn\n")
            .unwrap_err();
    assert_eq!(
        e,
        "exp.yaml: line 6: unknown metric `entropy_shwn`: not a metrics.csv column; did you mean `entropy_shown`?"
    );
    let e = parse(
        "base: default\nvariants:\n  - name: A\n  - name: B\n    set:\n      round: 2\n      page_sise: 3\nmetrics: [watches]\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "exp.yaml: line 7: variant `B`: override `page_sise`: unknown key `page_sise`; did you mean `page_size`?"
    );
    let e = parse(
        "base: default\nvariants:\n  - name: A\n    set: {page_size: 0}\nmetrics: [watches]\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "exp.yaml: line 4: variant `A`: invalid value for `page_size`: 0 is out of range: allowed 1..=50"
    );
    let e = parse("base: default\nvariants:\n  - name: A\n  - name: A\nmetrics: [watches]\n")
        .unwrap_err();
    assert_eq!(e, "exp.yaml: line 4: variant `A` is listed twice");
    let e =
        parse("base: default\nset: {output_dir: x}\nvariants:\n  - name: A\nmetrics: [watches]\n")
            .unwrap_err();
    assert!(
        e.starts_with("exp.yaml: line 2: `output_dir` is set by the scenario runner"),
        "{e}"
    );
    let e = parse("base: nowhere.yaml\nvariants:\n  - name: A\nmetrics: [watches]\n").unwrap_err();
    assert!(
        e.starts_with("exp.yaml: line 1: base configuration: ./nowhere.yaml: cannot read config"),
        "{e}"
    );
}

/// The numbers of one column of a `metrics.csv`, by hand (empty cell = `None`).
fn column(metrics: &str, name: &str) -> Vec<Option<f64>> {
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let c = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| {
            let cell = l.split(',').nth(c).unwrap();
            (!cell.is_empty()).then(|| cell.parse().unwrap())
        })
        .collect()
}

/// `comparison.csv` as `(variant, metric) -> (runs, mean, min, max)` cells.
fn comparison(text: &str) -> Vec<(String, String, String, String, String, String)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].into(),
                c[1].into(),
                c[2].into(),
                c[3].into(),
                c[4].into(),
                c[5].into(),
            )
        })
        .collect()
}

#[test]
fn a_scenario_runs_its_variants_and_tabulates_the_runs_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("two.yaml");
    // 2 variants x 2 seeds x 2 rounds of the demo data, and one variant that fails when its
    // run loads the data (the demo has 40 users), which must not stop the others.
    std::fs::write(
        &file,
        format!(
            "base: {}\nset: {{round: 2, checkpoint_every: 0}}\nseeds: [1, 2]\nvariants:\n\
             \x20 - name: Pop\n    set: {{rec_model: Popularity}}\n\
             \x20 - name: Broken\n    set: {{agent_num: 1000}}\n\
             \x20 - name: Random\n    set: {{rec_model: Random, rec_random_k: 0}}\n\
             metrics: [watches, coverage, mean_rating@last]\n",
            root().join("config/config.yaml").display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args(["scenario", file.to_str().unwrap(), "--jobs", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a failed run makes the command fail");
    for seed in [1, 2] {
        let log = out.join(format!("Broken/seed-{seed}/console.log"));
        assert!(
            stderr.contains(&format!("run Broken seed {seed} failed"))
                && stderr.contains(&log.display().to_string()),
            "{stderr}"
        );
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("`agent_num`: 1000 is out of range"));
    }
    assert!(stderr.contains("2 of 6 runs failed"), "{stderr}");

    let table = comparison(&std::fs::read_to_string(out.join("comparison.csv")).unwrap());
    assert_eq!(table.len(), 9, "3 variants x 3 metrics");
    for variant in ["Pop", "Random"] {
        let mut per_seed = Vec::new();
        let mut interactions = Vec::new();
        for seed in [1u64, 2] {
            let dir = out.join(format!("{variant}/seed-{seed}"));
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                    .unwrap();
            assert_eq!(m["seed"], seed);
            assert_eq!(m["rounds_completed"], 2);
            let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
            let w = column(&metrics, "watches");
            let cov = column(&metrics, "coverage");
            let mr = column(&metrics, "mean_rating");
            assert_eq!(w.len(), 2);
            // watches: mean over the 2 rounds; coverage (cumulative): the last round;
            // mean_rating@last: the last round.
            per_seed.push([
                (w[0].unwrap() + w[1].unwrap()) / 2.0,
                cov[1].unwrap(),
                mr[1].unwrap(),
            ]);
            interactions.push(std::fs::read_to_string(dir.join("interaction.csv")).unwrap());
        }
        // The two seeds are different runs (other draws), not copies.
        assert_ne!(
            interactions[0], interactions[1],
            "{variant}: seeds 1 and 2 ran alike"
        );
        for (k, metric) in ["watches@mean", "coverage@last", "mean_rating@last"]
            .iter()
            .enumerate()
        {
            let row = table
                .iter()
                .find(|r| r.0 == variant && r.1 == *metric)
                .unwrap();
            let (a, b) = (per_seed[0][k], per_seed[1][k]);
            let close = |cell: &str, want: f64| {
                let got: f64 = cell.parse().unwrap();
                assert!(
                    (got - want).abs() < 1e-6,
                    "{variant} {metric}: {got} vs {want}"
                );
            };
            assert_eq!(row.2, "2");
            close(&row.3, (a + b) / 2.0);
            close(&row.4, a.min(b));
            close(&row.5, a.max(b));
        }
    }
    // The failed variant is in the table with no runs.
    let broken = table
        .iter()
        .find(|r| r.0 == "Broken" && r.1 == "watches@mean")
        .unwrap();
    assert_eq!((broken.2.as_str(), broken.3.as_str()), ("0", ""));
    let md = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(
        md.contains("| variant | watches@mean | coverage@last | mean_rating@last |"),
        "{md}"
    );
    assert!(md.contains("Failed runs"), "{md}");
    assert!(stdout.contains("| Pop |"), "the table is printed: {stdout}");
    let html = std::fs::read_to_string(out.join("comparison.html")).unwrap();
    assert!(html.contains("Pop") && html.contains("Random"));

    // Re-running the scenario replaces its own runs (its children run with --overwrite): the
    // same 4 runs succeed again, as new runs.
    let id = |dir: &std::path::Path| -> String {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        m["run_id"].as_str().unwrap().to_string()
    };
    let pop1 = out.join("Pop/seed-1");
    let before = id(&pop1);
    let o = Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args([
            "scenario",
            file.to_str().unwrap(),
            "--jobs",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("2 of 6 runs failed"), "{stderr}");
    assert_ne!(id(&pop1), before);
}

#[test]
fn every_shipped_scenario_parses() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        if !text.lines().any(|l| l.starts_with("variants:")) {
            continue; // a plain configuration (config_errors checks those)
        }
        if text.contains("shared/data") && crate::common::shared("recagent").is_none() {
            continue;
        }
        let s = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.variants.is_empty() && !s.metrics.is_empty());
        n += 1;
    }
    if crate::common::shared("recagent").is_some() {
        assert_eq!(
            n, 4,
            "information-cocoon, recommender-comparison, conformity, scale-100k"
        );
    }
}
