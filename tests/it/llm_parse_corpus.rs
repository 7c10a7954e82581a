//! The reply parser on real LLM answers: Agent4Rec's running logs (100 agents, GPT answers to
//! page, watch, rating and exit prompts) from `../shared/data/agent4rec`.

use recagent::behaviour::PageAction;
use recagent::decision::feel::parse_feel;
use recagent::decision::page::parse_page;
use recagent::decision::parse::clean;

use crate::common::shared;

/// `(page titles, response text)` for every page block of every log.
fn blocks() -> Option<Vec<(Vec<String>, String)>> {
    let dir = shared("agent4rec/storage/ml-1m/MF/mf_100_5_4/running_logs")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for block in text.split("Recommendation Page").skip(1) {
            let titles: Vec<String> = block
                .lines()
                .filter_map(|l| l.strip_prefix("== "))
                .filter_map(|l| l.split(" History ratings:").next())
                .map(|t| t.trim_start_matches("(√)").trim().to_string())
                .collect();
            out.push((titles, block.to_string()));
        }
    }
    Some(out)
}

/// The integer after `RATING:` as written, if it is one.
fn written_rating(line: &str) -> Option<u32> {
    let v = line.split("RATING:").nth(1)?.split(';').next()?.trim();
    v.parse().ok()
}

#[test]
fn ratings_from_real_answers_parse_to_the_written_number() {
    let Some(blocks) = blocks() else { return };
    let (mut ok, mut rejected) = (0, 0);
    for (_, b) in &blocks {
        for line in b
            .lines()
            .filter(|l| l.starts_with("MOVIE:") && l.contains("RATING:"))
        {
            let r = parse_feel(&clean(line));
            match written_rating(line) {
                Some(n @ 1..=5) => {
                    let f = r.unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert_eq!(u32::from(f.rating), n, "{line}");
                    assert!(!f.text.is_empty() && !f.text.contains("RATING"), "{line}");
                    ok += 1;
                }
                _ => {
                    assert!(r.is_err(), "{line} gave {r:?}");
                    rejected += 1;
                }
            }
        }
    }
    // The corpus holds about 700 rating lines, nearly all 1-5.
    assert!(ok > 600, "{ok}");
    assert!(rejected < 30, "{rejected}");
}

#[test]
fn watch_choices_from_real_answers_name_the_right_slot() {
    let Some(blocks) = blocks() else { return };
    let (mut watched, mut none, mut decisions) = (0, 0, 0);
    for (titles, b) in &blocks {
        if titles.is_empty() {
            continue;
        }
        for line in b
            .lines()
            .filter(|l| l.starts_with("NUM:") && !l.contains("[number"))
        {
            let watch = line
                .split("WATCH:")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim();
            match parse_page(&clean(line), titles, false) {
                Ok(PageAction::Watch(slots)) => {
                    // The chosen title (without year and trailing article) is the page title
                    // named first in the WATCH list.
                    let pos = |t: &str| {
                        let core = t.rsplit_once(" (").map_or(t, |x| x.0);
                        let core = core.split(", ").next().unwrap().to_lowercase();
                        watch.to_lowercase().find(&core)
                    };
                    let t = &titles[slots[0] as usize];
                    let first = titles.iter().filter_map(|x| pos(x)).min();
                    assert!(pos(t).is_some() && pos(t) == first, "{line} -> {t}");
                    watched += 1;
                }
                Ok(PageAction::Next) => {
                    assert!(line.starts_with("NUM: 0"), "{line}");
                    none += 1;
                }
                other => panic!("{line}: {other:?} (page {titles:?})"),
            }
        }
        for line in b.lines() {
            let l = line.trim_start_matches("Decision: ");
            if (l.starts_with("[NEXT]") || l.starts_with("[EXIT]"))
                && l.contains("Reason: ")
                && !l.contains("[brief reason]")
            {
                let want = if l.starts_with("[NEXT]") {
                    PageAction::Next
                } else {
                    PageAction::Leave
                };
                assert_eq!(parse_page(&clean(line), titles, false), Ok(want), "{line}");
                decisions += 1;
            }
        }
    }
    assert!(watched > 250, "{watched}");
    assert_eq!(none, 7);
    assert!(decisions > 200, "{decisions}");
}
