//! `recagent export`: RecBole atomic files and plain CSV from a run directory.

use std::path::{Path, PathBuf};

use recagent::analysis::export::{export, ExportFormat, ExportOptions};
use recagent::config::SimConfig;

use crate::common;

fn opts(format: ExportFormat, out: &Path, with_shown: bool) -> ExportOptions {
    ExportOptions {
        format,
        out_dir: out.to_path_buf(),
        name: "sim".into(),
        with_shown,
        base_dir: None,
    }
}

/// Two rounds of the demo run (40 agents) into `dir`; returns interaction.csv's data rows.
fn demo_run(dir: &Path) -> Vec<Vec<String>> {
    let cfg = common::demo_config()
        .with_overrides(&[
            ("round".into(), "2".into()),
            ("checkpoint_every".into(), "0".into()),
        ])
        .unwrap();
    let out = common::run(cfg, dir);
    out.interactions
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn recbole_files_have_recbole_headers_and_the_runs_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let rows = demo_run(&run);
    let watched: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == "1").collect();
    assert!(!watched.is_empty() && watched.len() < rows.len());

    let s = export(&run, &opts(ExportFormat::RecBole, tmp.path(), false)).unwrap();
    assert_eq!(s.dir, tmp.path().join("sim"));
    assert_eq!(s.rows_read, rows.len() as u64);
    assert_eq!(s.interactions, watched.len() as u64);
    assert_eq!((s.users, s.items), (40, 200));

    let inter = std::fs::read_to_string(tmp.path().join("sim/sim.inter")).unwrap();
    let lines: Vec<&str> = inter.lines().collect();
    assert_eq!(
        lines[0],
        "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    );
    assert_eq!(lines.len() - 1, watched.len());
    // The first watch, by hand: interaction.csv `u,i,1,r,1,2023-06-01 08:00:00`; round 1
    // starts at 2023-06-01 08:00:00 UTC = 19,509 days x 86,400 s + 8 x 3,600 s = 1,685,606,400.
    let w = watched[0];
    assert_eq!((w[4].as_str(), w[5].as_str()), ("1", "2023-06-01 08:00:00"));
    assert_eq!(
        lines[1],
        format!("{}\t{}\t{}\t1685606400", w[0], w[1], w[3])
    );
    // Round 2 starts 5 h (18,000 s) later: 1,685,624,400.
    let w2 = watched.iter().position(|r| r[4] == "2").unwrap();
    assert!(lines[1 + w2].ends_with("\t1685624400"), "{}", lines[1 + w2]);
    for l in &lines[1..] {
        assert_eq!(l.split('\t').count(), 4, "{l:?}");
    }

    let user = std::fs::read_to_string(tmp.path().join("sim/sim.user")).unwrap();
    let ul: Vec<&str> = user.lines().collect();
    assert_eq!(
        ul[0],
        "user_id:token\tname:token\tage:float\tgender:token\tstatus:token\ttraits:token_seq\tinterest:token_seq\tfeature:token_seq"
    );
    assert_eq!(ul.len(), 41);
    // data/users.csv line 2: `0,Amara Okafor,female,34,"curious, warm, talkative",Nurse,
    // "romantic movies, documentaries",Watcher;Chatter`: list entries become single tokens.
    assert_eq!(
        ul[1],
        "0\tAmara Okafor\t34\tfemale\tNurse\tcurious warm talkative\tromantic_movies documentaries\tWatcher Chatter"
    );

    let item = std::fs::read_to_string(tmp.path().join("sim/sim.item")).unwrap();
    let il: Vec<&str> = item.lines().collect();
    assert_eq!(
        il[0],
        "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tdescription:token_seq"
    );
    assert_eq!(il.len(), 201);
    // data/item.csv item 1: `"Run, Mira, Run!"`, `Comedy|Children's`.
    assert!(
        il[2].starts_with("1\tRun, Mira, Run!\tComedy Children's\t<Run, Mira, Run!> is a giddy"),
        "{}",
        il[2]
    );
}

#[test]
fn recbole_with_shown_has_a_label_column_and_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let rows = demo_run(&run);
    let s = export(&run, &opts(ExportFormat::RecBole, tmp.path(), true)).unwrap();
    assert_eq!(s.interactions, rows.len() as u64);
    let inter = std::fs::read_to_string(tmp.path().join("sim/sim.inter")).unwrap();
    let lines: Vec<&str> = inter.lines().collect();
    assert_eq!(
        lines[0],
        "user_id:token\titem_id:token\tlabel:float\trating:float\ttimestamp:float"
    );
    assert_eq!(lines.len() - 1, rows.len());
    // Row by row: the same user, item, label and rating; shown-only rows have no rating.
    for (l, r) in lines[1..].iter().zip(&rows) {
        let c: Vec<&str> = l.split('\t').collect();
        assert_eq!(c[..4], [&r[0], &r[1], &r[2], &r[3]].map(String::as_str));
        if r[2] == "0" {
            assert_eq!(c[3], "");
        }
    }
}

#[test]
fn csv_export_round_trips_through_a_csv_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let rows = demo_run(&run);
    let s = export(&run, &opts(ExportFormat::Csv, tmp.path(), false)).unwrap();
    assert_eq!(s.interactions, rows.len() as u64);
    let mut r = csv::Reader::from_path(tmp.path().join("sim/interactions.csv")).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "user_id",
            "item_id",
            "label",
            "rating",
            "round",
            "timestamp",
            "time"
        ]
    );
    let got: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(got.len(), rows.len());
    assert_eq!(&got[0][5], "1685606400");
    assert_eq!(&got[0][6], &rows[0][5]);
    let mut r = csv::Reader::from_path(tmp.path().join("sim/items.csv")).unwrap();
    let items: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(items.len(), 200);
    assert_eq!(
        (&items[1][0], &items[1][1], &items[1][2]),
        ("1", "Run, Mira, Run!", "Comedy|Children's")
    );
}

#[test]
fn tabs_and_line_breaks_in_titles_become_spaces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    // A quoted CSV title may hold a tab and a line break; RecBole would split the row there.
    std::fs::write(
        tmp.path().join("item.csv"),
        "id,title,genre,description\n0,\"Tab\there\",Drama|Film Noir,\"two\nlines\"\n1,Plain,Comedy,x\n",
    )
    .unwrap();
    let yaml = format!(
        "item_path: item.csv\nuser_path: {d}/users.csv\nrelationship_path: {d}/relationship.csv\n\
         round: 1\nagent_num: 3\noutput_dir: run\npage_size: 2\nrec_random_k: 0\n",
        d = data.display()
    );
    let cfg = SimConfig::from_yaml(&yaml, "t.yaml", tmp.path().to_path_buf()).unwrap();
    let run = tmp.path().join("run");
    common::run(cfg, &run);
    let s = export(&run, &opts(ExportFormat::RecBole, tmp.path(), true)).unwrap();
    // Item 0's title and description were changed; nothing else.
    assert_eq!(s.normalised, 1);
    let item = std::fs::read_to_string(tmp.path().join("sim/sim.item")).unwrap();
    assert_eq!(
        item,
        "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tdescription:token_seq\n\
         0\tTab here\tDrama Film_Noir\ttwo lines\n1\tPlain\tComedy\tx\n"
    );
    // CSV keeps the text as it was, quoted.
    export(&run, &opts(ExportFormat::Csv, tmp.path(), false)).unwrap();
    let mut r = csv::Reader::from_path(tmp.path().join("sim/items.csv")).unwrap();
    let first = r.records().next().unwrap().unwrap();
    assert_eq!((&first[1], &first[3]), ("Tab\there", "two\nlines"));
}

#[test]
fn a_run_whose_data_moved_is_an_error_saying_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    demo_run(&run);
    // The demo config's base_dir is absolute (<repo>/config); point the manifest elsewhere.
    let mpath = run.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["base_dir"] = "nowhere/config".into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = export(&run, &opts(ExportFormat::RecBole, tmp.path(), false))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nowhere/config/../data/item.csv is not there") && e.contains("--base-dir"),
        "{e}"
    );
    let mut o = opts(ExportFormat::RecBole, tmp.path(), false);
    o.base_dir = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"));
    assert_eq!(export(&run, &o).unwrap().users, 40);
    let e = export(tmp.path(), &o).unwrap_err().to_string();
    assert!(e.contains("not a run directory"), "{e}");
}
