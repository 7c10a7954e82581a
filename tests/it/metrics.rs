//! `metrics.csv`: its rows agree with the interactions, counters and manifest of the same run;
//! a resumed or branched run writes the uninterrupted run's file.

use std::collections::BTreeMap;
use std::path::Path;

use recagent::analysis::{MetricsTable, COLUMNS};
use recagent::checkpoint;
use recagent::sim::Sim;

use crate::common::{demo_config, paths, read, run};

#[test]
fn metrics_agree_with_the_interactions_the_counters_and_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(demo_config(), dir.path());
    let t = MetricsTable::parse(&out.metrics, "metrics.csv").unwrap();
    assert_eq!(t.columns, COLUMNS);
    assert_eq!(t.rows.len(), 5);
    let col = |name: &str| -> Vec<Option<f64>> { t.column(name).unwrap() };
    // Per round, from interaction.csv: watched rows, rated rows and each star's count.
    let mut watched = BTreeMap::<u32, u64>::new();
    let mut stars = BTreeMap::<(u32, u8), u64>::new();
    for l in out.interactions.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let round: u32 = f[4].parse().unwrap();
        if f[2] == "1" {
            *watched.entry(round).or_default() += 1;
        }
        if !f[3].is_empty() {
            *stars.entry((round, f[3].parse().unwrap())).or_default() += 1;
        }
    }
    for (i, r) in (1..=5u32).enumerate() {
        assert_eq!(col("round")[i], Some(f64::from(r)));
        assert_eq!(col("watches")[i], Some(watched[&r] as f64), "round {r}");
        let mut n = 0;
        for s in 1..=5u8 {
            let k = stars.get(&(r, s)).copied().unwrap_or(0);
            n += k;
            assert_eq!(col(&format!("rating_{s}"))[i], Some(k as f64), "round {r}");
        }
        assert_eq!(col("ratings")[i], Some(n as f64));
        let (w, shown) = (col("watches")[i].unwrap(), col("items_shown")[i].unwrap());
        let ratio = col("view_ratio")[i].unwrap();
        assert!((ratio - w / shown).abs() < 1e-6, "round {r}");
        // A session shows at least one page; exit pages are means over them.
        assert!(col("pages_shown")[i] >= col("browsing_agents")[i]);
        assert!(col("exit_page")[i].unwrap() >= 1.0);
    }
    // Per-round counts add up to the run's counters.
    for c in [
        "pages_shown",
        "items_shown",
        "watches",
        "chats",
        "chat_lines",
        "posts",
        "deliveries",
        "mentions",
    ] {
        let sum: f64 = col(c).iter().map(|v| v.unwrap()).sum();
        assert_eq!(sum, out.stats[c] as f64, "{c}");
    }
    // Cumulative coverage never falls; the offline run costs nothing.
    let cov: Vec<f64> = col("coverage").into_iter().flatten().collect();
    assert!(cov.windows(2).all(|w| w[0] <= w[1]), "{cov:?}");
    assert!(col("llm_calls").iter().all(|v| *v == Some(0.0)));
    // The manifest's summary holds the last row and the means over the rows.
    let m = &out.manifest["summary"]["metrics"];
    for c in COLUMNS {
        let last = t.rows[4][t.column_index(c).unwrap()];
        assert_eq!(m["last"][c].as_f64(), last, "last {c}");
        let mean = t.mean(c).map(|v| format!("{v:.6}").parse::<f64>().unwrap());
        assert_eq!(m["mean"][c].as_f64(), mean, "mean {c}");
    }
}

/// Runs the demo config for `rounds` rounds into `dir`, with a checkpoint after round `at`, and
/// writes the manifest.
fn run_with_checkpoint(dir: &Path, rounds: u32, at: u32) -> std::path::PathBuf {
    let mut sim = Sim::new(demo_config(), paths(dir)).unwrap();
    let ckpt = dir.join(format!("round-{at}.ckpt"));
    for r in 1..=rounds {
        sim.step().unwrap();
        if r == at {
            checkpoint::save(&mut sim, &ckpt, None).unwrap();
        }
    }
    sim.write_manifest("finished").unwrap();
    ckpt
}

#[test]
fn resumed_and_branched_runs_write_the_uninterrupted_metrics() {
    let (full, killed, branch, other) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let want = {
        run_with_checkpoint(full.path(), 4, 0);
        read(&full.path().join("metrics.csv"))
    };
    let head = |n: usize| -> String { want.lines().take(n).map(|l| format!("{l}\n")).collect() };
    assert_eq!(want.lines().count(), 5);

    // A run that got to round 3 after its round-2 checkpoint, resumed in place from it: the
    // restored state rewrites the file to 2 rows at once, and round 3 and 4 follow.
    let ckpt = run_with_checkpoint(killed.path(), 3, 2);
    assert_eq!(read(&killed.path().join("metrics.csv")), head(4));
    let (mut resumed, _) = checkpoint::resume(&ckpt, &[], None).unwrap();
    assert_eq!(read(&killed.path().join("metrics.csv")), head(3));
    while resumed.round() < 4 {
        resumed.step().unwrap();
    }
    resumed.write_manifest("finished").unwrap();
    drop(resumed);
    assert_eq!(read(&killed.path().join("metrics.csv")), want);

    // A branch with no changed setting, in a new folder, continues the same way.
    let (mut b, _) = checkpoint::resume(&ckpt, &[], Some(branch.path())).unwrap();
    assert_eq!(read(&branch.path().join("metrics.csv")), head(3));
    while b.round() < 4 {
        b.step().unwrap();
    }
    drop(b);
    assert_eq!(read(&branch.path().join("metrics.csv")), want);

    // A branch to another recommender keeps rounds 1-2 and differs after.
    let set = [("rec_model".to_string(), "Random".to_string())];
    let (mut b, _) = checkpoint::resume(&ckpt, &set, Some(other.path())).unwrap();
    while b.round() < 4 {
        b.step().unwrap();
    }
    drop(b);
    let got = read(&other.path().join("metrics.csv"));
    assert_eq!(
        got.lines().take(3).collect::<Vec<_>>(),
        want.lines().take(3).collect::<Vec<_>>()
    );
    assert_ne!(got.lines().nth(3), want.lines().nth(3));
    assert_eq!(got.lines().count(), 5);

    // The resumed run's manifest summary is the uninterrupted run's.
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&read(&d.join("manifest.json"))).unwrap()
            ["summary"]["metrics"]
            .clone()
    };
    assert_eq!(summary(full.path()), summary(killed.path()));
}

#[test]
fn a_stale_metrics_file_is_replaced_when_a_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.csv"), "round\n1\n2\n").unwrap();
    // A metrics file is an earlier run's: refused unless told to overwrite it.
    let e = Sim::new(demo_config(), paths(dir.path())).err().unwrap();
    assert!(e.to_string().contains("holds an earlier run"), "{e}");
    let _sim = recagent::sim::SimBuilder::new(demo_config())
        .outputs(paths(dir.path()))
        .overwrite(true)
        .build()
        .unwrap();
    assert_eq!(
        read(&dir.path().join("metrics.csv")),
        COLUMNS.join(",") + "\n"
    );
}

#[test]
fn an_output_named_metrics_csv_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = paths(dir.path());
    p.messages = dir.path().join("metrics.csv");
    let e = Sim::new(demo_config(), p).err().unwrap();
    let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        msg.contains("metrics.csv") && msg.contains("another output"),
        "{msg}"
    );
}
