//! `recagent fidelity` through the binary: a hand-made two-user data set gives the same tables for
//! the same seed, its counts by hand, and bad input a clear error; the shared Agent4Rec data maps
//! every rating.

use std::path::Path;

use crate::common::{ran, read, recagent, shared};

/// A two-user data set in Agent4Rec's layout under `dir`: 30 items (genres cycling Comedy,
/// Drama, Horror), user 0 with 4 test items, user 1 with 2.
pub(crate) fn fixture(dir: &Path) {
    let g = ["Comedy", "Drama", "Horror"];
    let mut items = String::from("movie_id,title,genres,rating,summary\n");
    for i in 0..30 {
        items.push_str(&format!(
            "{i},\"Movie {i}, The (199{})\",{},3.5,A film.\n",
            i % 10,
            g[i % 3]
        ));
    }
    let sim = dir.join("simulation");
    let cf = dir.join("cf_data");
    let raw = dir.join("raw_data");
    for d in [&sim, &cf, &raw] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(sim.join("movie_detail.csv"), items).unwrap();
    std::fs::write(cf.join("train.txt"), "0 0 3 6 9 1\n1 2 5 8\n").unwrap();
    std::fs::write(cf.join("valid.txt"), "0 12\n1 13\n").unwrap();
    std::fs::write(cf.join("test.txt"), "0 15 18 21 24\n1 16 17\n").unwrap();
    std::fs::write(
        raw.join("agg_top_25.csv"),
        "user_id,movie_title_list,movie_genres_list,rating_list,gender,age,occupation,zip-code\n\
         0,\"Movie 0, The (1990); Movie 3, The (1993); Movie 6, The (1996); Movie 9, The (1999); Movie 1, The (1991)\",x,5; 4; 5; 4; 2,Female,25-34,writer,1\n\
         1,\"Movie 2, The (1992); Movie 5, The (1995); No Such Movie (2001)\",x,3; 1; 4,Male,56+,retired,2\n",
    )
    .unwrap();
    std::fs::write(
        sim.join("user_statistic.csv"),
        "user_id,activity,diversity,conformity\n0,3,1,2\n1,1,3,1\n",
    )
    .unwrap();
}

fn fidelity(data: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    ran(recagent()
        .args(["fidelity", "-q", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra))
}

#[test]
fn a_fixed_seed_gives_the_same_tables_with_counts_by_hand() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let (code, _, err) = fidelity(t.path(), &a, &["--seed", "5"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = fidelity(t.path(), &b, &["--seed", "5"]);
    assert_eq!(code, Some(0), "{err}");
    for f in ["fidelity.csv", "ratings.csv", "fidelity.md"] {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f}");
    }
    let csv = read(&a.join("fidelity.csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{csv}");
    // k = min(#test, ⌊20/(m+1)⌋): user 0 has 4 test items, user 1 has 2, so k is 4 and 2 at
    // every ratio up to 1:3 (⌊20/4⌋ = 5) and 2 and 2 at 1:9; shown = k·(m+1) while enough
    // never-interacted items remain (30 items, 10 and 6 interacted).
    let want = [
        ("1:1", 12, 6),
        ("1:2", 18, 6),
        ("1:3", 24, 6),
        ("1:9", 40, 4),
    ];
    for (row, (ratio, listed, pos)) in rows.iter().zip(want) {
        assert_eq!(row[2], "5", "page size");
        assert_eq!(row[3], ratio);
        assert_eq!(row[4], "2", "users");
        assert_eq!(row[5], listed.to_string(), "{ratio} listed");
        assert_eq!(row[6], pos.to_string(), "{ratio} positives");
    }
    // Ratings: user 0 has 5 (1 held out), user 1 has 2 mapped (1 held out): 2 scored, and the
    // unmapped title is counted.
    let ratings = read(&a.join("ratings.csv"));
    assert!(
        ratings.lines().nth(1).unwrap().starts_with("agents,2,"),
        "{ratings}"
    );
    let md = read(&a.join("fidelity.md"));
    assert!(
        md.contains("7 of 8 `agg_top_25.csv` ratings mapped to items by title (1 not mapped)"),
        "{md}"
    );
    let (code, _, err) = fidelity(t.path(), &b, &["--seed", "6"]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(
        read(&a.join("fidelity.csv")),
        read(&b.join("fidelity.csv")),
        "the seed matters"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let out = t.path().join("out");
    for (args, want) in [
        (
            &["--ratios", "1,0"][..],
            "--ratios must list whole numbers from 1 to 19",
        ),
        (
            &["--ratios", "20"],
            "from 1:20 on, no positive fits a 20-item list",
        ),
        (&["--ratios", "1,9,1"], "--ratios lists 1:1 twice"),
        (&["--users", "3"], "--users 3: the data has 2 users"),
        (&["--backend", "llm"], "the LLM backend needs `api_bases`"),
    ] {
        let (code, _, err) = fidelity(t.path(), &out, args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let stats = t.path().join("simulation/user_statistic.csv");
    let good = read(&stats);
    for (bad, want) in [
        (
            "0,4,1,2",
            "user_statistic.csv, line 2: activity 4 is not a tier 1 to 3",
        ),
        (
            "0,3,1,2\n0,3,1,2",
            "user_statistic.csv, line 3: user_id 0 has a second row",
        ),
        (
            "9,3,1,2",
            "user_statistic.csv, line 2: user_id 9 is in no split and has no ratings",
        ),
    ] {
        std::fs::write(
            &stats,
            format!("user_id,activity,diversity,conformity\n{bad}\n"),
        )
        .unwrap();
        let (code, _, err) = fidelity(t.path(), &out, &[]);
        assert_eq!(code, Some(1));
        assert!(err.contains(want), "{err}");
    }
    std::fs::write(&stats, good).unwrap();
    std::fs::write(t.path().join("cf_data/test.txt"), "0 15 x\n").unwrap();
    let (code, _, err) = fidelity(t.path(), &out, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cf_data/test.txt, line 1: \"x\" is not a whole number"),
        "{err}"
    );
    std::fs::write(t.path().join("cf_data/test.txt"), "0 15 99\n").unwrap();
    let (_, _, err) = fidelity(t.path(), &out, &[]);
    assert!(
        err.contains("item 99 is past the item table (30 items)"),
        "{err}"
    );
    let (code, _, err) = fidelity(&t.path().join("nowhere"), &out, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("movie_detail.csv") && err.contains("SOURCE.md"),
        "{err}"
    );
    assert!(
        !out.join("fidelity.csv").exists(),
        "no table written on failure"
    );
}

#[test]
fn every_shared_rating_maps_to_an_item() {
    let Some(data) = shared("agent4rec") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = fidelity(&data, t.path(), &["--users", "20", "--ratios", "1,9"]);
    assert_eq!(code, Some(0), "{err}");
    let md = read(&t.path().join("fidelity.md"));
    assert!(md.contains("20 of 1000 real users, 3292 items; 22924 of 22924 `agg_top_25.csv` ratings mapped to items by title (0 not mapped)"), "{md}");
    assert_eq!(read(&t.path().join("fidelity.csv")).lines().count(), 3);
}

#[test]
fn an_llm_run_asks_with_the_training_history_and_its_replay_gives_the_same_tables() {
    use crate::llm_mock::{prompt_of, sensible_answer, Mock, Step};
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let llm = t.path().join("llm.yaml");
    std::fs::write(
        &llm,
        format!(
            "backend: llm\napi_bases: [{}]\nllm_options:\n  backoff_base_ms: 1\n",
            mock.base
        ),
    )
    .unwrap();
    let out = t.path().join("llm");
    let (code, _, err) = fidelity(
        t.path(),
        &out,
        &["-c", llm.to_str().unwrap(), "--ratios", "1,9"],
    );
    assert_eq!(code, Some(0), "{err}");
    let transcript = out.join("transcript.jsonl");
    assert!(transcript.is_file());
    let prompts: Vec<String> = mock
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| prompt_of(b))
        .collect();
    // User 0's page prompts carry its training ratings as memories, never a held-out item's.
    let page0: Vec<&String> = prompts
        .iter()
        .filter(|p| p.contains("[BUY]::") && p.contains("User 0"))
        .collect();
    assert!(!page0.is_empty());
    assert!(
        page0[0].contains("User 0 watched <Movie") && page0[0].contains("out of 5."),
        "{}",
        page0[0]
    );
    let md = read(&out.join("fidelity.md"));
    assert!(
        md.contains("LLM: ") && md.contains(" calls (0 failed)"),
        "{md}"
    );

    // The replay of that transcript: the same tables, with no server.
    drop(mock);
    let replay = t.path().join("replay.yaml");
    std::fs::write(
        &replay,
        format!(
            "backend: replay\ntranscript_path: {}\n",
            transcript.display()
        ),
    )
    .unwrap();
    let again = t.path().join("again");
    let (code, _, err) = fidelity(
        t.path(),
        &again,
        &["-c", replay.to_str().unwrap(), "--ratios", "1,9"],
    );
    assert_eq!(code, Some(0), "{err}");
    // Equal but for the backend's name in fidelity.csv's first column.
    let tail = |t: String| t.replace("\nllm,", "\n").replace("\nreplay,", "\n");
    for f in ["fidelity.csv", "ratings.csv"] {
        let (a, b) = (read(&out.join(f)), read(&again.join(f)));
        assert_eq!(tail(a), tail(b), "{f}");
    }
    assert!(read(&again.join("fidelity.csv")).contains("\nreplay,2023,5,1:1,"));

    // A replay of other lists (another seed) finds no transcript entry for any decision: the
    // tables are written, say so, and the command fails.
    let other = t.path().join("other");
    let (code, _, err) = fidelity(
        t.path(),
        &other,
        &[
            "-c",
            replay.to_str().unwrap(),
            "--ratios",
            "1,9",
            "--seed",
            "9",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("decisions fell back"), "{err}");
    assert!(read(&other.join("fidelity.md")).contains("**Warning**: "));
}
