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

pub(crate) fn print_summary(sim: &Sim, paths: &OutputPaths, wall: f64) {
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
        "recagent: {} rounds finished in {wall:.2} s (wall)",
        sim.round()
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
