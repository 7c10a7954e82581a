//! `recagent report`: the HTML is self-contained and holds one plot per section, the Markdown
//! report writes real PNG files, the text summary's numbers are the hand-computed ones, bad run
//! folders are clear errors, and `report: true` writes the report when a run ends.
//!
//! `metrics.csv` is written by hand here: these tests check the report, not the metrics.

use std::path::Path;
use std::process::Command;

use recagent::analysis::report::{
    read_reference, write_run_report, Format, ReportError, ReportOptions, RunAnalysis, RunData,
    SECTIONS,
};
use recagent::analysis::COLUMNS;

use crate::common::{demo_config, run, shared};

/// A `metrics.csv` with every column for `rounds` rounds: plausible values, a few empty cells
/// (round 1's conformity, round 2's ILD) as a run writes them.
fn full_metrics(rounds: u32) -> String {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    for r in 1..=rounds {
        let f = f64::from(r);
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|c| match *c {
                "round" => r.to_string(),
                "conformity" if r == 1 => String::new(),
                "ild" if r == 2 => String::new(),
                "view_ratio" => format!("{}", 0.15 + 0.01 * f),
                "mean_rating" => format!("{}", 3.2 + 0.1 * f),
                "entropy_shown" => format!("{}", 2.8 - 0.05 * f),
                "entropy_watched" => format!("{}", 1.2 - 0.05 * f),
                "coverage" => format!("{}", 0.1 * f),
                "gini_exposure" | "gini_watches" => format!("{}", 0.9 - 0.01 * f),
                "top10_exposure_share" => format!("{}", 0.8 - 0.01 * f),
                "ild" => "0.78".into(),
                "exit_page" => "1.1".into(),
                "session_length" => "1.5".into(),
                "conformity" => format!("{}", 0.1 * f),
                c if c.starts_with("llm_") => "0".into(),
                _ => (10 + r).to_string(),
            })
            .collect();
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}

/// A real demo run (embedded demo data, 3 rounds) with a hand-written `metrics.csv`.
fn demo_run(dir: &Path) {
    let mut cfg = demo_config();
    cfg.round = 3;
    run(cfg, dir);
    std::fs::write(dir.join("metrics.csv"), full_metrics(3)).unwrap();
}

/// The text of `<section id="{id}">` .. `</section>`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\">");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = start + html[start..].find("</section>").unwrap();
    &html[start..end]
}

#[test]
fn report_html_is_self_contained_with_one_plot_per_section() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    demo_run(dir);
    let r = write_run_report(dir, &ReportOptions::default()).unwrap();
    assert_eq!(r.path, dir.join("report.html"));
    assert_eq!(r.files, vec![dir.join("report.html")]);
    let html = std::fs::read_to_string(&r.path).unwrap();
    // Deterministic: the same run gives the same bytes.
    write_run_report(dir, &ReportOptions::default()).unwrap();
    assert_eq!(std::fs::read_to_string(&r.path).unwrap(), html);
    // No URL but the SVG namespace: every `http` is in an `xmlns` attribute.
    let svgs = html.matches("<svg").count();
    assert_eq!(svgs, SECTIONS.len());
    assert_eq!(html.matches("</svg>").count(), svgs);
    assert_eq!(
        html.matches("http").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert_eq!(html.matches("http").count(), svgs);
    for bad in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url(",
    ] {
        assert!(!html.contains(bad), "the report contains {bad}");
    }
    // One plot per section, in the order of SECTIONS.
    let mut last = 0;
    for (id, heading) in SECTIONS {
        let s = section(&html, id);
        assert_eq!(s.matches("<svg").count(), 1, "section {id}");
        assert!(s.contains(&format!("<h2>{heading}</h2>")), "section {id}");
        let at = html.find(s).unwrap();
        assert!(at > last, "section {id} out of order");
        last = at;
    }
    // The top-items table: a header and the 10 most shown items (the demo shows more than 10).
    assert_eq!(section(&html, "top-items").matches("<tr>").count(), 1 + 10);
    // The header names the run's essentials.
    assert!(html.contains("<dt>seed</dt><dd>2023</dd>"));
    assert!(html.contains("<dt>rounds</dt><dd>3 of 3</dd>"));
    assert!(html.contains("<dt>agents</dt><dd>40</dd>"));
    assert!(html.contains("<dt>recommender</dt><dd>Popularity</dd>"));
    assert!(html.contains("<dt>backend</dt><dd>offline</dd>"));
    // Key metrics: view ratio 0.16, 0.17, 0.18 by hand -> first 0.1600, last 0.1800, mean 0.1700.
    assert!(
        html.contains("<tr><td>View ratio</td><td>0.1600</td><td>0.1800</td><td>0.1700</td></tr>")
    );
    // The metrics section is one figure of 12 small multiples (no LLM panel offline).
    let m = section(&html, "metrics");
    assert!(
        m.contains("<svg width=\"1080\" height=\"1620\""),
        "{}",
        &m[..300.min(m.len())]
    );
    for title in [
        "View ratio",
        "Genre entropy",
        "Catalogue coverage",
        "Conformity",
    ] {
        assert!(m.contains(&format!("\n{title}\n</text>")), "panel {title}");
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The share of non-white pixels and the number of distinct colours of an RGB PNG.
fn ink(bytes: &[u8]) -> (f64, usize) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    let inked = px.iter().filter(|p| **p != [255, 255, 255]).count();
    let mut colours: Vec<&[u8]> = px.clone();
    colours.sort_unstable();
    colours.dedup();
    (inked as f64 / px.len() as f64, colours.len())
}

#[test]
fn report_md_writes_the_png_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    demo_run(dir);
    let opts = ReportOptions {
        format: Format::Markdown,
        ..Default::default()
    };
    let r = write_run_report(dir, &opts).unwrap();
    assert_eq!(r.path, dir.join("report.md"));
    assert_eq!(r.files.len(), 1 + SECTIONS.len());
    let md = std::fs::read_to_string(&r.path).unwrap();
    for (id, heading) in SECTIONS {
        let name = format!("{}.png", id.replace('-', "_"));
        let file = dir.join("report").join(&name);
        assert!(r.files.contains(&file));
        assert!(
            md.contains(&format!("![{heading}](report/{name})")),
            "{name}"
        );
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        let (w, h) = png_size(&bytes);
        assert!(w >= 700 && h >= 380, "{name}: {w}x{h}");
        // Not blank: axes, text and bars or lines (more than 1 % of the pixels, antialiased
        // text gives many shades).
        let (share, colours) = ink(&bytes);
        assert!(
            share > 0.01 && colours > 20,
            "{name}: {share} inked, {colours} colours"
        );
    }
    // 12 panels of 540 x 270 in 2 columns; the rating histogram is 760 x 420.
    let size = |n: &str| png_size(&std::fs::read(dir.join("report").join(n)).unwrap());
    assert_eq!(size("metrics.png"), (1080, 1620));
    assert_eq!(size("ratings.png"), (760, 420));
    // --out elsewhere: the PNG files go into a folder named after the file.
    let out = dir.join("elsewhere/run-1.md");
    let r = write_run_report(
        dir,
        &ReportOptions {
            format: Format::Markdown,
            out: Some(out.clone()),
            reference: None,
        },
    )
    .unwrap();
    assert_eq!(r.path, out);
    assert!(dir.join("elsewhere/run-1/lorenz.png").is_file());
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("](run-1/lorenz.png)"));
}

/// A run folder written by hand: 5 items, 4 users, 3 rounds, 12 showings.
fn hand_run(dir: &Path) {
    std::fs::write(
        dir.join("item.csv"),
        "id,title,genre,description\n1,Alpha,Drama,a\n2,Beta,Comedy|Drama,b\n3,Gamma,Horror,c\n\
         4,Delta,Comedy,d\n5,Epsilon,Drama,e\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("interaction.csv"),
        "user_id,item_id,label,rating,round,timestamp\n\
         1,1,1,4,1,t\n1,2,0,,1,t\n1,3,0,,1,t\n2,1,0,,1,t\n2,2,1,5,1,t\n2,4,0,,1,t\n\
         1,4,1,2,2,t\n2,3,1,3,2,t\n3,1,1,5,2,t\n3,3,0,,2,t\n\
         3,2,1,1,3,t\n4,1,0,,3,t\n",
    )
    .unwrap();
    // Only some columns, as an older or newer file may have: the others read as absent.
    std::fs::write(
        dir.join("metrics.csv"),
        "round,view_ratio,mean_rating,watches,conformity\n\
         1,0.333333,4.5,2,\n2,0.75,3.333333,3,0.5\n3,0.5,1,1,-0.25\n",
    )
    .unwrap();
    let manifest = serde_json::json!({
        "engine": "recagent",
        "version": "0.1.0",
        "status": "finished",
        "seed": 7,
        "backend": "offline",
        "recommender": "MF",
        "rounds_completed": 3,
        "rounds_planned": 3,
        "data": {"agents": 4, "items": 5},
        "base_dir": dir,
        "config": {"item_path": "item.csv", "seed": 7, "round": 3, "page_size": 3, "rec_random_k": 0},
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

#[test]
fn report_summary_numbers_are_the_hand_computed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hand_run(dir);
    // Reference: every rating a 5.
    let reference = dir.join("ref.txt");
    std::fs::write(&reference, "0 0 0 0 6\n").unwrap();
    let r = write_run_report(
        dir,
        &ReportOptions {
            reference: Some(reference),
            ..Default::default()
        },
    )
    .unwrap();
    let s = &r.summary;
    let line = |start: &str| {
        s.lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{s}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("seed"),
        "seed 7 · 3 of 3 rounds · 4 agents · 5 items · recommender MF · backend offline · finished"
    );
    // View ratio 0.333333, 0.75, 0.5: mean 1.583333 / 3 = 0.527778.
    assert_eq!(line("View ratio"), "View ratio 0.3333 0.5000 0.5278");
    // Mean rating 4.5, 3.333333, 1: mean 8.833333 / 3 = 2.944444.
    assert_eq!(line("Mean rating"), "Mean rating 4.5000 1.0000 2.9444");
    // Watches 2, 3, 1 (counts): mean 2.
    assert_eq!(line("Watches"), "Watches 2 1 2.00");
    // Conformity undefined in round 1: first 0.5, last -0.25, mean 0.25 / 2 = 0.125.
    assert_eq!(line("Conformity"), "Conformity 0.5000 -0.2500 0.1250");
    // No coverage column in this file.
    assert_eq!(line("Catalogue coverage"), "Catalogue coverage – – –");
    // Ratings 4, 5, 2, 3, 5, 1: one of each star but two 5s; mean 20 / 6 = 3.3333.
    assert_eq!(
        line("ratings:"),
        "ratings: 6 (1: 1, 2: 1, 3: 1, 4: 1, 5: 2), mean 3.3333"
    );
    // P = (1, 1, 1, 1, 2) / 6, Q = (0, 0, 0, 0, 1), M = (1/12, 1/12, 1/12, 1/12, 2/3):
    // KL(P‖M) = 4 · (1/6) · log2 2 + (1/3) · log2 (1/2) = 1/3; KL(Q‖M) = log2 1.5 = 0.584963;
    // JSD = (1/3 + 0.584963) / 2 = 0.459148.
    assert_eq!(
        line("reference"),
        "reference ref.txt (6 ratings): Jensen-Shannon divergence 0.4591 bits"
    );
    // Exposures: Alpha 4, Beta 3, Gamma 3, Delta 2, Epsilon 0. Sorted [0, 2, 3, 3, 4], sum 12:
    // Σ (2i - 6) x_i = 0 - 4 + 0 + 6 + 16 = 18, G = 18 / (5 · 12) = 0.3.
    assert_eq!(
        line("exposure Gini"),
        "exposure Gini over 5 items (interaction.csv): 0.3000"
    );
    // User 1 watched Drama, Comedy: 1 bit. User 2: Comedy+Drama, Horror: log2 3 = 1.584963.
    // User 3: Drama, Comedy+Drama -> (2/3, 1/3): 0.918296. User 4 watched nothing.
    // Mean (1 + 1.584963 + 0.918296) / 3 = 1.167753.
    assert_eq!(
        line("per-agent"),
        "per-agent genre entropy: mean 1.1678 bits over 3 agents with a watch"
    );
    // Top items by exposures; Beta before Gamma (3 each) for its 2 watches to 1.
    // Alpha: ratings 4, 5 -> 4.50; Beta 5, 1 -> 3.00; Gamma 3; Delta 2.
    assert_eq!(line("1."), "1. Alpha 4 2 4.50");
    assert_eq!(line("2."), "2. Beta 3 2 3.00");
    assert_eq!(line("3."), "3. Gamma 3 1 3.00");
    assert_eq!(line("4."), "4. Delta 2 1 2.00");
    assert!(!s.contains("Epsilon"), "never shown, not a top item");
    assert_eq!(
        line("wrote"),
        format!("wrote {}", dir.join("report.html").display())
    );
    // Genres in catalogue order: Drama, Comedy, Horror. Round 1 watched Alpha (Drama) and
    // Beta (Comedy, Drama); round 3 Beta.
    let a = RunAnalysis::of(&RunData::load(dir).unwrap());
    assert_eq!(a.genre_names, vec!["Drama", "Comedy", "Horror"]);
    let (first, last) = (a.first.clone().unwrap(), a.last.clone().unwrap());
    assert_eq!(
        (first.round, first.watches, first.counts.clone()),
        (1, 2, vec![2, 1, 0])
    );
    assert_eq!(
        (last.round, last.watches, last.counts.clone()),
        (3, 1, vec![1, 1, 0])
    );
    assert_eq!(first.shares()[0], 2.0 / 3.0);
    assert_eq!(a.rating_hist, [1, 1, 1, 1, 2]);
    assert_eq!(
        a.agent_entropy.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!((a.agent_entropy[1].1 - 3f64.log2()).abs() < 1e-12);
    // Lorenz over [0, 2, 3, 3, 4] / 12: (0.2, 0), (0.4, 2/12), (0.6, 5/12), (0.8, 8/12), (1, 1).
    assert_eq!(a.lorenz.len(), 6);
    assert!((a.lorenz[2].1 - 2.0 / 12.0).abs() < 1e-12 && a.lorenz[5] == (1.0, 1.0));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // The genre section compares round 1 (Alpha, Beta: Drama 2, Comedy 1) with round 3 (Beta).
    assert!(html.contains("in round 1 (2 watches) and in round 3 (1 watch)"));
    assert!(html.contains("Jensen–Shannon divergence between the two histograms: 0.4591 bits"));
}

#[test]
fn a_folder_that_is_not_a_run_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = write_run_report(dir, &ReportOptions::default()).unwrap_err();
    assert!(matches!(e, ReportError::NotARun { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{} has no metrics.csv: is it a recagent run folder?",
            dir.display()
        )
    );
    hand_run(dir);
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    assert_eq!(
        write_run_report(dir, &ReportOptions::default())
            .unwrap_err()
            .to_string(),
        format!(
            "{} has no manifest.json: is it a recagent run folder?",
            dir.display()
        )
    );
    hand_run(dir);
    std::fs::write(dir.join("metrics.csv"), "round,watches\n1,2\n2,two\n").unwrap();
    assert_eq!(
        write_run_report(dir, &ReportOptions::default())
            .unwrap_err()
            .to_string(),
        format!(
            "{}: line 3: column `watches`: \"two\" is not a number",
            dir.join("metrics.csv").display()
        )
    );
    hand_run(dir);
    std::fs::remove_file(dir.join("item.csv")).unwrap();
    let e = write_run_report(dir, &ReportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "the run's catalogue (item_path in {}): {}: cannot read",
            dir.join("manifest.json").display(),
            dir.join("item.csv").display()
        )),
        "{e}"
    );
    let missing = dir.join("nope");
    assert_eq!(
        write_run_report(&missing, &ReportOptions::default())
            .unwrap_err()
            .to_string(),
        format!("{}: no such folder", missing.display())
    );
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args(args)
        .env_remove("RECAGENT_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_report_prints_the_summary_and_writes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hand_run(dir);
    let d = dir.to_str().unwrap();
    let (ok, out, err) = cli(&["report", d]);
    assert!(ok, "{err}");
    assert!(
        out.contains("exposure Gini over 5 items (interaction.csv): 0.3000"),
        "{out}"
    );
    assert!(out.ends_with(&format!("wrote {}\n", dir.join("report.html").display())));
    assert!(dir.join("report.html").is_file());
    let md = dir.join("r.md");
    let (ok, out, err) = cli(&["report", d, "--format", "md", "--out", md.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.ends_with(&format!(
            "wrote {} and 6 plots in {}\n",
            md.display(),
            dir.join("r").display()
        )),
        "{out}"
    );
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, _, err) = cli(&["report", empty.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "error: {} has no metrics.csv: is it a recagent run folder?",
            empty.display()
        )
    );
}

/// `report: true`: the run writes its report at the end. Until the metrics plugin writes
/// `metrics.csv`, the report fails: the run's outputs stay complete and the command says so
/// and exits non-zero.
#[test]
fn report_true_writes_the_report_when_the_run_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let ix = tmp.path().join("ix");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.yaml");
    let (ok, stdout, err) = cli(&[
        "run",
        "-c",
        cfg.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--rounds",
        "2",
        "--set",
        "report=true",
        "--set",
        &format!("memory.index_dir={}", ix.display()),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "finished");
    assert_eq!(manifest["rounds_completed"], 2);
    assert_eq!(manifest["config"]["report"], true);
    if out.join("metrics.csv").is_file() {
        assert!(ok, "{err}");
        assert!(out.join("report.html").is_file());
        assert!(stdout.contains(&format!("report: {}", out.join("report.html").display())));
    } else {
        assert!(!ok);
        assert!(
            err.contains(&format!(
                "the run finished and its outputs in {} are complete, but its report (report: true) failed: {} has no metrics.csv",
                out.display(),
                out.display()
            )),
            "{err}"
        );
        assert!(!out.join("report.html").exists());
    }
    // Without the key, nothing is written and nothing fails.
    let out2 = tmp.path().join("run2");
    let (ok, _, err) = cli(&[
        "run",
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "--output-dir",
        out2.to_str().unwrap(),
        "--rounds",
        "1",
        "--set",
        &format!("memory.index_dir={}", ix.display()),
    ]);
    assert!(ok, "{err}");
    assert!(!out2.join("report.html").exists());
}

#[test]
fn agent4rec_ratings_read_as_a_reference() {
    let Some(dir) = shared("agent4rec/datasets/ml-1m/raw_data") else {
        return;
    };
    // The 1,000 users' `rating_list` cells, counted by hand (Python over the same file):
    // 1,094 ones, 2,074 twos, 5,310 threes, 8,244 fours, 6,202 fives = 22,924 ratings.
    let r = read_reference(&dir.join("agg_top_25.csv")).unwrap();
    assert_eq!(r.hist, [1094.0, 2074.0, 5310.0, 8244.0, 6202.0]);
    assert_eq!(r.total(), 22_924.0);
}
