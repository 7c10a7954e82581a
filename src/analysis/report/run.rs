//! The report of one run: its figures, the HTML and Markdown pages, and the text summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::data::RunData;
use super::derived::RunAnalysis;
use super::labels::{is_count, metric_label};
use super::plots::{
    self, BarChart, Grid, Histogram, LegendAt, LineChart, Orientation, Series, GREY, PALETTE,
};
use super::reference::{read_reference, Reference};
use super::stats::{js_divergence, mean};
use super::{html, markdown, write_file, Format, ReportError};

/// What to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// HTML or Markdown.
    pub format: Format,
    /// The report file; default `<run-dir>/report.html` or `<run-dir>/report.md`. The
    /// Markdown report's PNG files go into a folder named after it (`report/`).
    pub out: Option<PathBuf>,
    /// A reference rating histogram (see [`super::read_reference`]).
    pub reference: Option<PathBuf>,
}

/// A written run report.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// The report file.
    pub path: PathBuf,
    /// Every file written (the report, then the PNG files of a Markdown report).
    pub files: Vec<PathBuf>,
    /// The text summary (what `recagent report` prints).
    pub summary: String,
}

/// Columns of the key-metrics table (header and text summary), in order.
pub const KEY_METRICS: &[&str] = &[
    "view_ratio",
    "mean_rating",
    "entropy_shown",
    "entropy_watched",
    "coverage",
    "gini_exposure",
    "gini_watches",
    "top10_exposure_share",
    "ild",
    "exit_page",
    "session_length",
    "conformity",
    "watches",
    "chats",
    "posts",
];

/// Items in the top-items table and chart (the text summary shows the first 5).
pub const TOP_ITEMS: usize = 10;

/// Width of a per-agent entropy histogram bin, in bits.
const ENTROPY_BIN: f64 = 0.25;

/// `(title, unit, [(column, legend name)])` of each small multiple of the metrics section.
const PANELS: &[(&str, &str, &[(&str, &str)])] = &[
    (
        "Activity",
        "agents / items",
        &[
            ("active_agents", "active agents"),
            ("browsing_agents", "in the recommender"),
            ("watches", "watches"),
        ],
    ),
    ("View ratio", "watched / shown", &[("view_ratio", "")]),
    ("Mean rating", "stars", &[("mean_rating", "")]),
    (
        "Genre entropy",
        "bits",
        &[("entropy_shown", "shown"), ("entropy_watched", "watched")],
    ),
    ("Catalogue coverage", "share of items", &[("coverage", "")]),
    (
        "Gini coefficient",
        "Gini",
        &[("gini_exposure", "exposure"), ("gini_watches", "watches")],
    ),
    (
        "Exposure share of the top 10 % items",
        "share of exposures",
        &[("top10_exposure_share", "")],
    ),
    ("Intra-list diversity", "Jaccard distance", &[("ild", "")]),
    (
        "Exit page and session length",
        "pages / decisions",
        &[
            ("exit_page", "exit page"),
            ("session_length", "session length"),
        ],
    ),
    (
        "Chats and posts",
        "per round",
        &[("chats", "chats"), ("posts", "posts")],
    ),
    (
        "Deliveries and mentions",
        "per round",
        &[
            ("deliveries", "post deliveries"),
            ("mentions", "item mentions"),
        ],
    ),
    ("Conformity", "stars", &[("conformity", "")]),
];

const LLM_PANEL: (&str, &str, &[(&str, &str)]) = (
    "LLM tokens",
    "tokens",
    &[
        ("llm_prompt_tokens", "prompt"),
        ("llm_completion_tokens", "completion"),
    ],
);

/// Everything a run report shows, computed once for both formats.
struct Built {
    run: RunData,
    analysis: RunAnalysis,
    reference: Option<Reference>,
    jsd: Option<f64>,
}

impl Built {
    fn rounds(&self) -> Vec<f64> {
        let t = &self.run.metrics;
        match t.column("round") {
            Some(c) => c
                .iter()
                .enumerate()
                .map(|(i, r)| r.unwrap_or(i as f64 + 1.0))
                .collect(),
            None => (1..=t.rows.len()).map(|r| r as f64).collect(),
        }
    }

    fn first(&self, col: &str) -> Option<f64> {
        self.run.metrics.column(col)?.into_iter().flatten().next()
    }

    fn metrics_grid(&self) -> Grid {
        let rounds = self.rounds();
        let t = &self.run.metrics;
        let llm = t
            .column("llm_calls")
            .is_some_and(|c| c.iter().flatten().any(|v| *v > 0.0));
        let panels = PANELS
            .iter()
            .chain(llm.then_some(&LLM_PANEL))
            .map(|(title, unit, cols)| {
                let series = cols
                    .iter()
                    .enumerate()
                    .map(|(i, (col, name))| {
                        let vals = t.column(col).unwrap_or_else(|| vec![None; rounds.len()]);
                        // A single line is named by its column, so every panel has a
                        // legend row and the grid's axes line up.
                        let name = if name.is_empty() {
                            format!("{col} (metrics.csv)")
                        } else {
                            (*name).to_string()
                        };
                        Series::new(
                            &name,
                            rounds.iter().copied().zip(vals).collect(),
                            PALETTE[i % PALETTE.len()],
                        )
                    })
                    .collect();
                LineChart {
                    title: (*title).to_string(),
                    x_desc: "round".into(),
                    y_desc: (*unit).to_string(),
                    series,
                    x_rounds: true,
                    x_range: None,
                    y_range: None,
                    y_bounds: metric_label(cols[0].0).bounds,
                    legend: LegendAt::Below,
                    size: (540, 270),
                }
            })
            .collect();
        Grid {
            panels,
            columns: 2,
            panel: (540, 270),
        }
    }

    fn ratings_chart(&self) -> BarChart {
        let a = &self.analysis;
        let n = a.ratings();
        let share = |h: &[f64; 5]| {
            let t: f64 = h.iter().sum();
            h.iter()
                .map(|v| if t > 0.0 { 100.0 * v / t } else { 0.0 })
                .collect::<Vec<_>>()
        };
        let run_hist = a.rating_hist.map(|c| c as f64);
        let mut groups = vec![(format!("this run (n = {n})"), PALETTE[0], share(&run_hist))];
        if let Some(r) = &self.reference {
            groups.push((
                format!("reference: {} (n = {})", r.name, fmt_weight(r.total())),
                PALETTE[1],
                share(&r.hist),
            ));
        }
        BarChart {
            title: "Ratings".into(),
            cat_desc: "stars".into(),
            value_desc: "share of ratings (%)".into(),
            categories: (1..=5).map(|s| s.to_string()).collect(),
            groups,
            value_labels: Some((1, "%")),
            integer_values: false,
            orientation: Orientation::Vertical,
            size: (760, 420),
        }
    }

    fn genres_chart(&self) -> BarChart {
        let a = &self.analysis;
        let rounds: Vec<_> = a.first.iter().chain(a.last.iter()).collect();
        let shares: Vec<Vec<f64>> = rounds.iter().map(|r| r.shares()).collect();
        // Genres that occur, by their summed share, largest first (ties by catalogue order).
        let mut order: Vec<usize> = (0..a.genre_names.len())
            .filter(|&g| rounds.iter().any(|r| r.counts[g] > 0))
            .collect();
        let total = |g: usize| shares.iter().map(|s| s[g]).sum::<f64>();
        order.sort_by(|&x, &y| total(y).total_cmp(&total(x)).then(x.cmp(&y)));
        let groups = rounds
            .iter()
            .zip(&shares)
            .enumerate()
            .map(|(i, (r, s))| {
                (
                    format!("round {} ({})", r.round, watches(r.watches)),
                    PALETTE[i],
                    order.iter().map(|&g| 100.0 * s[g]).collect(),
                )
            })
            .collect();
        let rows = order.len().max(1) as u32;
        BarChart {
            title: "Genres of the watched items: first vs last round".into(),
            cat_desc: "genre".into(),
            value_desc: "share of genre occurrences (%)".into(),
            categories: order.iter().map(|&g| a.genre_names[g].clone()).collect(),
            groups,
            value_labels: Some((1, "%")),
            integer_values: false,
            orientation: Orientation::Horizontal,
            size: (860, 130 + rows * if rounds.len() > 1 { 40 } else { 26 }),
        }
    }

    fn lorenz_chart(&self) -> LineChart {
        let a = &self.analysis;
        let curve = Series::new(
            "Lorenz curve of exposure",
            a.lorenz.iter().map(|&(x, y)| (x, Some(y))).collect(),
            PALETTE[0],
        );
        let mut diag = Series::new(
            "equal exposure",
            vec![(0.0, Some(0.0)), (1.0, Some(1.0))],
            GREY,
        );
        diag.dashed = true;
        LineChart {
            title: match a.gini_exposure {
                Some(g) => format!("Exposure Lorenz curve (Gini {g:.3})"),
                None => "Exposure Lorenz curve".into(),
            },
            x_desc: "share of items, least shown first".into(),
            y_desc: "share of exposures".into(),
            series: if a.lorenz.is_empty() {
                Vec::new()
            } else {
                vec![curve, diag]
            },
            x_rounds: false,
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            y_bounds: None,
            legend: LegendAt::Below,
            size: (700, 540),
        }
    }

    fn top_items_chart(&self) -> BarChart {
        let top = self.analysis.top_items(TOP_ITEMS);
        BarChart {
            title: format!("The {} most shown items", top.len()),
            cat_desc: "item".into(),
            value_desc: "times".into(),
            categories: top.iter().map(|i| shorten(&i.title, 42)).collect(),
            groups: vec![
                (
                    "shown".into(),
                    PALETTE[0],
                    top.iter().map(|i| i.exposures as f64).collect(),
                ),
                (
                    "watched".into(),
                    PALETTE[1],
                    top.iter().map(|i| i.watches as f64).collect(),
                ),
            ],
            value_labels: Some((0, "")),
            integer_values: true,
            orientation: Orientation::Horizontal,
            size: (860, 130 + top.len().max(1) as u32 * 40),
        }
    }

    fn entropy_values(&self) -> Vec<f64> {
        self.analysis.agent_entropy.iter().map(|e| e.1).collect()
    }

    fn entropy_chart(&self) -> Histogram {
        let v = self.entropy_values();
        let max = v.iter().copied().fold(0.0f64, f64::max);
        let nbins = ((max / ENTROPY_BIN).ceil() as usize).max(1);
        let mut counts = vec![0u64; nbins];
        for e in &v {
            // The maximum falls on the upper edge of the last bin.
            counts[((e / ENTROPY_BIN).floor() as usize).min(nbins - 1)] += 1;
        }
        Histogram {
            title: "Per-agent genre entropy of everything watched".into(),
            x_desc: "genre entropy (bits)".into(),
            y_desc: "agents".into(),
            bins: counts
                .into_iter()
                .enumerate()
                .map(|(i, c)| (i as f64 * ENTROPY_BIN, (i + 1) as f64 * ENTROPY_BIN, c))
                .collect(),
            marker: mean(&v).map(|m| (m, format!("mean {m:.2} bits"))),
            size: (760, 400),
        }
    }

    fn header_pairs(&self) -> Vec<(&'static str, String)> {
        let i = &self.run.info;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        let num = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
        vec![
            ("run folder", self.run.dir.display().to_string()),
            ("status", opt(i.status.clone())),
            ("seed", num(i.seed)),
            (
                "rounds",
                format!("{} of {}", num(i.rounds_completed), num(i.rounds_planned)),
            ),
            ("agents", num(i.agents)),
            (
                "catalogue",
                format!("{} items ({})", num(i.items), opt(i.item_path.clone())),
            ),
            ("recommender", opt(i.recommender.clone())),
            (
                "page size, rec_random_k",
                format!(
                    "{}, {}",
                    num(i.page_size),
                    i.rec_random_k.map_or_else(|| "?".into(), |v| v.to_string())
                ),
            ),
            (
                "social_random_k",
                i.social_random_k
                    .map_or_else(|| "?".into(), |v| v.to_string()),
            ),
            ("backend", opt(i.backend.clone())),
            ("recagent version", opt(i.version.clone())),
        ]
    }

    fn key_rows(&self) -> Vec<Vec<String>> {
        KEY_METRICS
            .iter()
            .map(|c| {
                let t = &self.run.metrics;
                // A count column reads as integers, with a 2-decimal mean.
                let counts = is_count(c);
                let f = |v: Option<f64>| if counts { fmt_count(v) } else { fmt_num(v) };
                vec![
                    metric_label(c).title,
                    f(self.first(c)),
                    f(t.last(c)),
                    t.mean(c).map_or_else(
                        || "–".into(),
                        |m| {
                            if counts {
                                format!("{m:.2}")
                            } else {
                                format!("{m:.4}")
                            }
                        },
                    ),
                ]
            })
            .collect()
    }

    fn top_rows(&self) -> Vec<Vec<String>> {
        self.analysis
            .top_items(TOP_ITEMS)
            .iter()
            .enumerate()
            .map(|(k, i)| {
                vec![
                    (k + 1).to_string(),
                    i.title.clone(),
                    i.id.to_string(),
                    i.exposures.to_string(),
                    i.watches.to_string(),
                    i.mean_rating()
                        .map_or_else(|| "–".into(), |m| format!("{m:.2}")),
                ]
            })
            .collect()
    }

    fn captions(&self) -> Captions {
        let a = &self.analysis;
        let rounds = self.run.metrics.rows.len();
        let metrics = format!(
            "Per-round values from metrics.csv ({rounds} round{}). A gap is a round where the metric is undefined (a mean over nothing).",
            if rounds == 1 { "" } else { "s" }
        );
        let mut ratings = format!(
            "{} ratings given over the run (interaction.csv), mean {} stars.",
            a.ratings(),
            fmt_num(a.mean_rating())
        );
        if let Some(r) = &self.reference {
            let _ = write!(
                ratings,
                " Reference {}: {} ratings, mean {} stars. Jensen–Shannon divergence between the two histograms: {} bits (0 = the same shape, 1 = no star in common).",
                r.name,
                fmt_weight(r.total()),
                fmt_num(ref_mean(r)),
                self.jsd.map_or_else(|| "–".into(), |d| format!("{d:.4}"))
            );
        }
        let genres = match (&a.first, &a.last) {
            (None, _) => "No item was watched in this run.".to_string(),
            (Some(f), None) => format!(
                "Share of each genre among the genre occurrences of the items watched in round {} ({}; the only round with watches). An item counts once for each of its genres.",
                f.round, watches(f.watches)
            ),
            (Some(f), Some(l)) => format!(
                "Share of each genre among the genre occurrences of the items watched in round {} ({}) and in round {} ({}), the first and the last round with watches. An item counts once for each of its genres.",
                f.round, watches(f.watches), l.round, watches(l.watches)
            ),
        };
        let mut lorenz = format!(
            "All {} catalogue items sorted by how often they were shown over the run (interaction.csv), least shown first: the curve gives the share of all exposures that went to the least-shown share of items. Gini coefficient {} (0 = every item shown equally often, 1 = every showing on one item).",
            a.items.len(),
            a.gini_exposure.map_or_else(|| "–".into(), |g| format!("{g:.4}"))
        );
        if let Some(g) = self.run.metrics.last("gini_exposure") {
            let _ = write!(lorenz, " metrics.csv's last gini_exposure: {g:.4}.");
        }
        if a.unknown_items > 0 {
            let _ = write!(
                lorenz,
                " {} item ids of interaction.csv are not in the catalogue and are left out.",
                a.unknown_items
            );
        }
        let top = "Items ranked by times shown over the run (ties: more watches first), with their watches and the mean of their ratings.".to_string();
        let v = self.entropy_values();
        let entropy = format!(
            "Shannon entropy (base 2) of the genres of everything each agent watched over the run (an item counts once for each of its genres), for the {} agents who watched at least one item; bins of {ENTROPY_BIN} bits; mean {} bits.",
            v.len(),
            fmt_num(mean(&v))
        );
        Captions {
            metrics,
            ratings,
            genres,
            lorenz,
            top,
            entropy,
        }
    }

    fn summary(&self, files: &[PathBuf]) -> String {
        let mut s = String::new();
        let i = &self.run.info;
        let num = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let _ = writeln!(s, "recagent report: {}", self.run.dir.display());
        let _ = writeln!(
            s,
            "seed {} · {} of {} rounds · {} agents · {} items · recommender {} · backend {} · {}",
            num(i.seed),
            num(i.rounds_completed),
            num(i.rounds_planned),
            num(i.agents),
            num(i.items),
            opt(&i.recommender),
            opt(&i.backend),
            opt(&i.status)
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<38} {:>10} {:>10} {:>10}",
            "metric", "first", "last", "mean"
        );
        for r in self.key_rows() {
            let _ = writeln!(s, "{:<38} {:>10} {:>10} {:>10}", r[0], r[1], r[2], r[3]);
        }
        let _ = writeln!(s);
        let a = &self.analysis;
        let h = a.rating_hist;
        let _ = writeln!(
            s,
            "ratings: {} (1: {}, 2: {}, 3: {}, 4: {}, 5: {}), mean {}",
            a.ratings(),
            h[0],
            h[1],
            h[2],
            h[3],
            h[4],
            fmt_num(a.mean_rating())
        );
        if let Some(r) = &self.reference {
            let _ = writeln!(
                s,
                "reference {} ({} ratings): Jensen-Shannon divergence {} bits",
                r.name,
                fmt_weight(r.total()),
                self.jsd.map_or_else(|| "–".into(), |d| format!("{d:.4}"))
            );
        }
        let _ = writeln!(
            s,
            "exposure Gini over {} items (interaction.csv): {}",
            a.items.len(),
            a.gini_exposure
                .map_or_else(|| "–".into(), |g| format!("{g:.4}"))
        );
        let v = self.entropy_values();
        let _ = writeln!(
            s,
            "per-agent genre entropy: mean {} bits over {} agents with a watch",
            fmt_num(mean(&v)),
            v.len()
        );
        let _ = writeln!(s, "top items (shown, watched, mean rating):");
        for r in self.top_rows().iter().take(5) {
            let _ = writeln!(
                s,
                "  {:>2}. {:<44} {:>6} {:>6} {:>6}",
                r[0],
                shorten(&r[1], 44),
                r[3],
                r[4],
                r[5]
            );
        }
        let _ = write!(s, "wrote {}", files[0].display());
        if files.len() > 1 {
            let dir = files[1].parent().unwrap_or(Path::new("."));
            let _ = write!(s, " and {} plots in {}", files.len() - 1, dir.display());
        }
        s.push('\n');
        s
    }
}

struct Captions {
    metrics: String,
    ratings: String,
    genres: String,
    lorenz: String,
    top: String,
    entropy: String,
}

/// "1 watch", "3 watches".
fn watches(n: u64) -> String {
    if n == 1 {
        "1 watch".into()
    } else {
        format!("{n} watches")
    }
}

fn ref_mean(r: &Reference) -> Option<f64> {
    let t = r.total();
    (t > 0.0).then(|| {
        r.hist
            .iter()
            .enumerate()
            .map(|(i, w)| (i as f64 + 1.0) * w)
            .sum::<f64>()
            / t
    })
}

/// A measured value for tables: 4 decimals; `–` for undefined.
pub(crate) fn fmt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

/// A count for tables: no decimals; `–` for undefined.
fn fmt_count(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

fn fmt_weight(w: f64) -> String {
    if w.fract() == 0.0 {
        format!("{w:.0}")
    } else {
        format!("{w:.3}")
    }
}

/// At most `n` characters, an ellipsis marking a cut.
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Section ids, headings and PNG names of the report, in order.
pub const SECTIONS: &[(&str, &str)] = &[
    ("metrics", "Metrics over rounds"),
    ("ratings", "Rating histogram"),
    ("genres", "Genres watched: first vs last round"),
    ("lorenz", "Exposure Lorenz curve"),
    ("top-items", "Top items"),
    ("agent-entropy", "Per-agent genre entropy"),
];

fn plot_err(what: &str) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Plot {
        what: what.to_string(),
        message,
    }
}

/// Writes a run's report; see [`super::write_run_report`].
pub(crate) fn write(dir: &Path, opts: &ReportOptions) -> Result<RunReport, ReportError> {
    let run = RunData::load(dir)?;
    let analysis = RunAnalysis::of(&run);
    let reference = opts.reference.as_deref().map(read_reference).transpose()?;
    let jsd = reference
        .as_ref()
        .and_then(|r| js_divergence(&analysis.rating_hist.map(|c| c as f64), &r.hist));
    let b = Built {
        run,
        analysis,
        reference,
        jsd,
    };
    let caps = b.captions();
    let title = format!(
        "recagent run report: {}",
        dir.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| dir.display().to_string())
    );
    let i = &b.run.info;
    let subtitle = format!(
        "{} · seed {} · {} rounds · {} agents",
        i.recommender.clone().unwrap_or_else(|| "?".into()),
        i.seed.map_or_else(|| "?".into(), |s| s.to_string()),
        i.rounds_completed
            .map_or_else(|| "?".into(), |s| s.to_string()),
        i.agents.map_or_else(|| "?".into(), |s| s.to_string()),
    );
    let key_header = ["metric", "first", "last", "mean"];
    let top_header = ["#", "title", "id", "shown", "watched", "mean rating"];
    let caps_list = [
        &caps.metrics,
        &caps.ratings,
        &caps.genres,
        &caps.lorenz,
        &caps.top,
        &caps.entropy,
    ];
    match opts.format {
        Format::Html => {
            let path = opts.out.clone().unwrap_or_else(|| dir.join("report.html"));
            let svgs = [
                plots::svg(&b.metrics_grid()).map_err(plot_err("metrics"))?,
                plots::svg(&b.ratings_chart()).map_err(plot_err("ratings"))?,
                plots::svg(&b.genres_chart()).map_err(plot_err("genres"))?,
                plots::svg(&b.lorenz_chart()).map_err(plot_err("lorenz"))?,
                plots::svg(&b.top_items_chart()).map_err(plot_err("top-items"))?,
                plots::svg(&b.entropy_chart()).map_err(plot_err("agent-entropy"))?,
            ];
            let mut body = String::from("<header>\n<dl class=\"cfg\">\n");
            for (k, v) in b.header_pairs() {
                let _ = writeln!(
                    body,
                    "<dt>{}</dt><dd>{}</dd>",
                    html::escape(k),
                    html::escape(&v)
                );
            }
            body.push_str("</dl>\n<h2>Key metrics</h2>\n");
            body.push_str(&html::table(&key_header, &b.key_rows(), &[]));
            body.push_str(
                "<p class=\"note\">First and last: the first and last round where the metric is defined; mean: over the rounds where it is defined.</p>\n</header>\n",
            );
            for (((id, heading), svg), cap) in SECTIONS.iter().zip(&svgs).zip(caps_list) {
                let mut caption = html::escape(cap);
                if *id == "top-items" {
                    caption.push_str(&html::table(&top_header, &b.top_rows(), &[1]));
                }
                body.push_str(&html::figure_section(id, heading, svg, &caption));
            }
            write_file(&path, html::page(&title, &subtitle, &body).as_bytes())?;
            let files = vec![path.clone()];
            let summary = b.summary(&files);
            Ok(RunReport {
                path,
                files,
                summary,
            })
        }
        Format::Markdown => {
            let path = opts.out.clone().unwrap_or_else(|| dir.join("report.md"));
            let stem = path
                .file_stem()
                .map_or_else(|| "report".to_string(), |s| s.to_string_lossy().to_string());
            let img_dir = path.parent().unwrap_or(Path::new(".")).join(&stem);
            std::fs::create_dir_all(&img_dir).map_err(|source| ReportError::Write {
                path: img_dir.clone(),
                source,
            })?;
            let mut files = vec![path.clone()];
            let mut md = format!("# {title}\n\n{subtitle}\n\n");
            for (k, v) in b.header_pairs() {
                let _ = writeln!(md, "- **{k}**: {}", markdown::cell(&v));
            }
            md.push_str("\n## Key metrics\n\n");
            md.push_str(&markdown::table(&key_header, &b.key_rows()));
            md.push_str(
                "\nFirst and last: the first and last round where the metric is defined; mean: over the rounds where it is defined.\n",
            );
            for ((id, heading), cap) in SECTIONS.iter().zip(caps_list) {
                let name = format!("{}.png", id.replace('-', "_"));
                let file = img_dir.join(&name);
                match *id {
                    "metrics" => plots::png(&b.metrics_grid(), &file),
                    "ratings" => plots::png(&b.ratings_chart(), &file),
                    "genres" => plots::png(&b.genres_chart(), &file),
                    "lorenz" => plots::png(&b.lorenz_chart(), &file),
                    "top-items" => plots::png(&b.top_items_chart(), &file),
                    _ => plots::png(&b.entropy_chart(), &file),
                }
                .map_err(plot_err(id))?;
                let _ = write!(
                    md,
                    "\n## {heading}\n\n![{heading}]({stem}/{name})\n\n{cap}\n"
                );
                if *id == "top-items" {
                    md.push('\n');
                    md.push_str(&markdown::table(&top_header, &b.top_rows()));
                }
                files.push(file);
            }
            write_file(&path, md.as_bytes())?;
            let summary = b.summary(&files);
            Ok(RunReport {
                path,
                files,
                summary,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_titles_format_for_tables() {
        assert_eq!(fmt_num(None), "–");
        assert_eq!(fmt_num(Some(12.0)), "12.0000");
        assert_eq!(fmt_count(Some(12.0)), "12");
        assert_eq!(fmt_num(Some(0.123_456)), "0.1235");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
