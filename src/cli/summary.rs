//! The end-of-run summary printed on stdout.

use std::path::Path;

use recagent::io::output::OutputPaths;
use recagent::sim::{Lineage, Sim};
use recagent::systems::metrics::{metrics_path, MetricsState};

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `1 round`, `2 rounds`.
pub(crate) fn rounds_word(n: u32) -> String {
    format!("{n} round{}", if n == 1 { "" } else { "s" })
}

/// `round 3` or `rounds 3-5` (inclusive, `from <= to`).
pub(crate) fn round_span(from: u32, to: u32) -> String {
    if from >= to {
        format!("round {to}")
    } else {
        format!("rounds {from}-{to}")
    }
}

/// How a command's run began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// `run` or `replay`.
    New,
    /// `resume`.
    Resumed {
        /// Rounds the stopped run had already done after the checkpoint, run again.
        re_run: u32,
    },
    /// `branch`.
    Branched,
}

/// The head line: what this command ran. `first`: the round it started after (0 for a new
/// run).
fn head_line(round: u32, planned: u32, first: u32, start: Start, wall: f64) -> String {
    let (verb, re_run) = match start {
        Start::New => {
            return format!(
                "recagent: {} finished in {wall:.2} s (wall)",
                rounds_word(round)
            )
        }
        Start::Resumed { re_run } => ("resumed", re_run),
        Start::Branched => ("branched", 0),
    };
    let ran = round.saturating_sub(first);
    let again = if re_run > 0 {
        format!("; {} re-run (done before the stop)", rounds_word(re_run))
    } else {
        String::new()
    };
    let span = if ran > 0 {
        format!(" ({} of {planned})", round_span(first + 1, round))
    } else {
        String::new()
    };
    format!(
        "recagent: {verb} after round {first}: {}{span} finished in {wall:.2} s (wall){again}",
        rounds_word(ran)
    )
}

/// Prints the summary of a finished run; `first` and `start` as for the head line.
pub(crate) fn print_summary(sim: &Sim, paths: &OutputPaths, wall: f64, first: u32, start: Start) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let r = sim.load_report();
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| human_bytes(m.len()))
            .unwrap_or_else(|_| "-".into())
    };
    let _ = writeln!(
        out,
        "{}",
        head_line(sim.round(), sim.config().round, first, start, wall)
    );
    let _ = writeln!(out,
        "  agents {} of {} users · items {} · contacts {} directed ({} dropped, {} agents without contacts)",
        r.agents, r.users_in_file, r.items, r.edges, r.dropped_edges, r.agents_without_contacts
    );
    // One line per behaviour, as each plugin formats its counters.
    for (_, line) in sim.counters().summary() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "  messages     {} ({})",
        paths.messages.display(),
        size(&paths.messages)
    );
    let _ = writeln!(
        out,
        "  interactions {} ({})",
        paths.interactions.display(),
        size(&paths.interactions)
    );
    if let Some(m) = sim.world().get_resource::<MetricsState>() {
        let path = metrics_path(paths);
        let mut line = format!("  metrics      {} ({})", path.display(), size(&path));
        // The two measures a first look asks for: how the round's ratings and what was shown
        // ended up (means over the run are in the manifest).
        if let Some(last) = m.rows.last() {
            let num =
                |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2}{unit}"));
            let _ = write!(
                line,
                " · last round: mean rating {}, genre entropy shown {}",
                num(last.mean_rating, ""),
                num(last.entropy_shown, " bits")
            );
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(u) = sim.llm_usage() {
        let _ = writeln!(
            out,
            "  LLM: {} calls ({} failed, {} HTTP retries, {} from the response cache) · tokens {} prompt + {} completion · {} parse failures, {} corrective retries, {} unparsed",
            u.calls,
            u.failed_calls,
            u.http_retries,
            u.cache_hits,
            u.total.prompt_tokens,
            u.total.completion_tokens,
            u.parse_failures,
            u.corrective_retries,
            u.unparsed_requests
        );
        if u.calls > 0 && u.failed_calls == u.calls {
            let _ = writeln!(
                out,
                "  warning: every LLM call failed, so every decision is a fallback; see the log for why"
            );
            tracing::warn!("every one of the {} LLM calls failed", u.calls);
        }
        for (kind, p) in &u.per_kind {
            if p.prompt_tokens + p.completion_tokens > 0 {
                let _ = writeln!(
                    out,
                    "       {kind:<16} tokens {} prompt + {} completion",
                    p.prompt_tokens, p.completion_tokens
                );
            }
        }
        let opts = &sim.config().llm_options;
        if opts.has_prices() {
            let _ = writeln!(
                out,
                "       cost {:.4} (at the configured prices)",
                opts.cost(u.total.prompt_tokens, u.total.completion_tokens)
            );
        }
        if let Some(m) = &u.first_replay_mismatch {
            let _ = writeln!(
                out,
                "  replay: {} mismatches; first: {m}",
                u.replay_mismatches
            );
        }
    }
    let _ = writeln!(out, "  manifest     {}", paths.manifest.display());
    let _ = writeln!(out, "  log          {}", paths.log.display());
    if let Some(l) = sim
        .world()
        .get_resource::<Lineage>()
        .and_then(|l| l.last.clone())
    {
        let _ = writeln!(out, "  checkpoint   {}", l.display());
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_lines_count_rounds_with_plurals() {
        assert_eq!(rounds_word(1), "1 round");
        assert_eq!(rounds_word(2), "2 rounds");
        assert_eq!(rounds_word(0), "0 rounds");
        assert_eq!(round_span(3, 3), "round 3");
        assert_eq!(round_span(2, 4), "rounds 2-4");
        assert_eq!(
            head_line(1, 1, 0, Start::New, 0.5),
            "recagent: 1 round finished in 0.50 s (wall)"
        );
        // Resumed from the checkpoint of round 1 of a run stopped after round 3, to round 5:
        // rounds 2-5 run (4), of which 2 and 3 (2) had been run before the stop.
        assert_eq!(
            head_line(5, 5, 1, Start::Resumed { re_run: 2 }, 1.0),
            "recagent: resumed after round 1: 4 rounds (rounds 2-5 of 5) finished in 1.00 s (wall); 2 rounds re-run (done before the stop)"
        );
        assert_eq!(
            head_line(3, 3, 2, Start::Resumed { re_run: 1 }, 1.0),
            "recagent: resumed after round 2: 1 round (round 3 of 3) finished in 1.00 s (wall); 1 round re-run (done before the stop)"
        );
        assert_eq!(
            head_line(3, 3, 1, Start::Branched, 1.0),
            "recagent: branched after round 1: 2 rounds (rounds 2-3 of 3) finished in 1.00 s (wall)"
        );
    }
}
