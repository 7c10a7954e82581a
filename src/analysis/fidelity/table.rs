//! `fidelity`'s outputs: `fidelity.csv` (one row per ratio), `ratings.csv` (the rating check and
//! both histograms) and `fidelity.md` (both tables, the published rows beside ours, and the
//! protocol differences).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::FidelityReport;
use crate::io::output::write_atomic;

/// A published row: who, at which ratio, and the figures the paper or thread gives (`None`
/// where it gives none).
#[derive(Clone, Copy, Debug)]
pub struct Published {
    /// Simulator and model.
    pub who: &'static str,
    /// `m` of `1:m`, or 0 for a rating-only figure.
    pub m: u32,
    /// Accuracy.
    pub accuracy: Option<f64>,
    /// F1.
    pub f1: Option<f64>,
    /// Rating RMSE.
    pub rmse: Option<f64>,
    /// What differs from this protocol.
    pub note: &'static str,
}

/// The published figures this project compares with (as quoted in issue 15 from each source).
pub const PUBLISHED: &[Published] = &[
    Published {
        who: "Agent4Rec (GPT-3.5), SIGIR 2024 Table 1",
        m: 1,
        accuracy: Some(0.691),
        f1: None,
        rmse: None,
        note: "an LLM agent answers yes/no for the whole list at once; its profile also holds LLM-written taste summaries",
    },
    Published {
        who: "Agent4Rec public reproduction (its issue #5)",
        m: 1,
        accuracy: Some(0.599),
        f1: Some(0.501),
        rmse: None,
        note: "Agent4Rec's code and prompts rerun by a user",
    },
    Published {
        who: "Agent4Rec public reproduction (its issue #5)",
        m: 9,
        accuracy: None,
        f1: Some(0.223),
        rmse: None,
        note: "as above",
    },
    Published {
        who: "SimUSER (GPT-4o-mini), ACL 2025",
        m: 1,
        accuracy: Some(0.791),
        f1: None,
        rmse: Some(0.50),
        note: "rating RMSE on its own held-out ratings",
    },
    Published {
        who: "AlignUSER, 2026",
        m: 1,
        accuracy: Some(0.832),
        f1: None,
        rmse: Some(0.43),
        note: "rating RMSE on its own held-out ratings",
    },
];

fn f(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), f)
}

/// `fidelity.csv`:
/// `backend,seed,page_size,ratio,users,listed,positives,watched,precision,recall,accuracy,f1`.
pub fn ratios_csv(r: &FidelityReport) -> String {
    let mut s = String::from(
        "backend,seed,page_size,ratio,users,listed,positives,watched,precision,recall,accuracy,f1\n",
    );
    for row in &r.ratios {
        let _ = writeln!(
            s,
            "{},{},{},1:{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}",
            r.backend,
            r.seed,
            r.page_size,
            row.m,
            row.users,
            row.listed,
            row.positives,
            row.watched,
            row.precision,
            row.recall,
            row.accuracy,
            row.f1
        );
    }
    s
}

/// `ratings.csv`: one row per predictor (`agents`, `user_mean`, `user_mean_item_bias`) with n,
/// RMSE, MAE, then the two histograms (`rating_1` .. `rating_5`, for the agents and `real`)
/// and the JS divergence on the agents' row.
pub fn ratings_csv(r: &FidelityReport) -> String {
    let g = &r.ratings;
    let mut s = String::from(
        "predictor,n,rmse,mae,rating_1,rating_2,rating_3,rating_4,rating_5,js_divergence\n",
    );
    let hist = |h: &[u64; 5]| h.map(|x| x.to_string()).join(",");
    let _ = writeln!(
        s,
        "agents,{},{:.6},{:.6},{},{:.6}",
        g.n,
        g.agents.0,
        g.agents.1,
        hist(&g.simulated_hist),
        g.js
    );
    let _ = writeln!(
        s,
        "user_mean,{},{:.6},{:.6},,,,,,",
        g.n, g.user_mean.0, g.user_mean.1
    );
    let _ = writeln!(
        s,
        "user_mean_item_bias,{},{:.6},{:.6},,,,,,",
        g.n, g.user_item.0, g.user_item.1
    );
    let _ = writeln!(s, "real,{},,,{},", g.n, hist(&g.real_hist));
    s
}

fn shares(h: &[u64; 5]) -> String {
    let t: u64 = h.iter().sum::<u64>().max(1);
    h.iter()
        .map(|&x| format!("{:.1}%", 100.0 * x as f64 / t as f64))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `fidelity.md`: the tables for people.
pub fn markdown(r: &FidelityReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Fidelity against real users (Agent4Rec's protocol)\n");
    let _ = writeln!(
        s,
        "Backend `{}`, seed {}, {} of {} real users, {} items; {} of {} `agg_top_25.csv` ratings mapped to items by title ({} not mapped).\n",
        r.backend,
        r.seed,
        r.users,
        r.users_in_data,
        r.items,
        r.mapped_ratings,
        r.mapped_ratings + r.unmapped_ratings,
        r.unmapped_ratings
    );
    let _ = writeln!(s, "## Watch or not\n");
    let _ = writeln!(
        s,
        "| ratio | users | listed | positives | watched | precision | recall | accuracy | F1 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for row in &r.ratios {
        let _ = writeln!(
            s,
            "| 1:{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.m,
            row.users,
            row.listed,
            row.positives,
            row.watched,
            f(row.precision),
            f(row.recall),
            f(row.accuracy),
            f(row.f1)
        );
    }
    let _ = writeln!(s, "\n## Ratings (held-out real ratings)\n");
    let g = &r.ratings;
    let _ = writeln!(s, "| predictor | n | RMSE | MAE |");
    let _ = writeln!(s, "|---|---|---|---|");
    for (name, (rmse, mae)) in [
        (format!("agents ({})", r.backend), g.agents),
        ("user's mean".to_string(), g.user_mean),
        ("user's mean + item bias".to_string(), g.user_item),
    ] {
        let _ = writeln!(s, "| {name} | {} | {} | {} |", g.n, f(rmse), f(mae));
    }
    let _ = writeln!(
        s,
        "\nRatings 1/2/3/4/5: agents {}; real {}; Jensen-Shannon divergence {} bits.\n",
        shares(&g.simulated_hist),
        shares(&g.real_hist),
        f(g.js)
    );
    let kinds = ["page", "feel"].map(|k| {
        format!(
            "{k} {} requests, {} fallbacks",
            r.stats.requests_of(k),
            r.stats.fallbacks_of(k)
        )
    });
    let _ = writeln!(s, "Decisions: {}.", kinds.join("; "));
    if r.fallbacks() > 0 {
        let _ = writeln!(
            s,
            "\n**Warning**: {} of {} decisions fell back (a failed call, an answer that did not parse or fit, or no transcript entry: see the log); those scores measure the fallback, not the backend.",
            r.fallbacks(),
            r.requests()
        );
    }
    if let Some(u) = &r.llm {
        let _ = writeln!(
            s,
            "LLM: {} calls ({} failed), {} prompt + {} completion tokens, {} answers that did not parse, {} corrective retries, {} requests whose answers never parsed.",
            u.calls,
            u.failed_calls,
            u.total.prompt_tokens,
            u.total.completion_tokens,
            u.parse_failures,
            u.corrective_retries,
            u.unparsed_requests
        );
    }
    let _ = writeln!(s, "\n## Published\n");
    let _ = writeln!(
        s,
        "| simulator | ratio | accuracy | F1 | rating RMSE | protocol difference |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for p in PUBLISHED {
        let _ = writeln!(
            s,
            "| {} | 1:{} | {} | {} | {} | {} |",
            p.who,
            p.m,
            opt(p.accuracy),
            opt(p.f1),
            opt(p.rmse),
            p.note
        );
    }
    let _ = writeln!(
        s,
        "\nOurs: the agent decides through the simulation's page decision, in pages of {}, a watch removing the item and the session going on until `NEXT` past the last page or `LEAVE`; the rating check holds out 20% of each user's real ratings (the data has no real rating of a test item) and asks the feel decision.",
        r.page_size
    );
    s
}

/// Writes the three files into `dir` (created), each atomically; returns their paths.
///
/// # Errors
/// I/O errors, naming the file.
pub fn write(r: &FidelityReport, dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for (name, text) in [
        ("fidelity.csv", ratios_csv(r)),
        ("ratings.csv", ratings_csv(r)),
        ("fidelity.md", markdown(r)),
    ] {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        out.push(p);
    }
    Ok(out)
}

/// The ablation ([`super::ablation`]) as CSV: one row per variant, accuracy and F1 per ratio,
/// then rating RMSE, MAE and JS.
pub fn ablation_csv(rows: &[super::AblationRow]) -> String {
    let mut out = String::from("variant");
    if let Some(r) = rows.first() {
        for x in &r.report.ratios {
            out += &format!(",accuracy_1_{m},f1_1_{m}", m = x.m);
        }
    }
    out += ",rating_rmse,rating_mae,rating_js\n";
    for r in rows {
        out += &format!("\"{}\"", r.variant.replace('"', "\"\""));
        for x in &r.report.ratios {
            out += &format!(",{},{}", f(x.accuracy), f(x.f1));
        }
        let g = &r.report.ratings;
        out += &format!(",{},{},{}\n", f(g.agents.0), f(g.agents.1), f(g.js));
    }
    out
}

/// The ablation as a Markdown table.
pub fn ablation_markdown(rows: &[super::AblationRow]) -> String {
    let mut out = String::from("# Ablation of the calibrated model\n\n| variant |");
    let mut rule = String::from("|---|");
    if let Some(r) = rows.first() {
        out = format!(
            "# Ablation of the calibrated model\n\nSeed {}, {} users, page size {}.\n\n| variant |",
            r.report.seed, r.report.users, r.report.page_size
        );
        for x in &r.report.ratios {
            out += &format!(" acc 1:{m} | F1 1:{m} |", m = x.m);
            rule += "---|---|";
        }
    }
    out += " rating RMSE | JS |\n";
    rule += "---|---|\n";
    out += &rule;
    for r in rows {
        out += &format!("| {} |", r.variant);
        for x in &r.report.ratios {
            out += &format!(" {:.3} | {:.3} |", x.accuracy, x.f1);
        }
        out += &format!(
            " {:.3} | {:.3} |\n",
            r.report.ratings.agents.0, r.report.ratings.js
        );
    }
    out
}
