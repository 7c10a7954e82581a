//! Metrics: one row of measures per completed round, written to `metrics.csv` beside
//! `interaction.csv` (rewritten atomically after each round) and summarised in the manifest
//! (`summary.metrics`: the last row and the mean of each column over the rounds). The columns
//! are [`crate::analysis::COLUMNS`]; each is defined on its field of [`MetricsRow`] (formula,
//! units, range, source) and in the README's "Metrics" table.
//!
//! Phase: `SimPhase::Record`, after [`record_round`] (whose cumulative [`ItemStats`] give the
//! coverage, Gini and top-10 % columns); a marker in `SimPhase::Feel` before [`form_feelings`]
//! notes which of the round's hearings came before its ratings. State: [`MetricsState`] (the rows and the conformity
//! state, checkpointed as `metrics`, so a resumed or branched run writes the same file as an
//! uninterrupted one; restoring a checkpoint rewrites `metrics.csv` to its rows). Reads:
//! `RoundLog` (interactions, pages, hearings, mentions), `ActiveAgents`, `Browsing.steps`,
//! `ItemStats`, `Counters` (chats, lines, posts, deliveries), `LlmStats`. Writes:
//! `metrics.csv`, `MetricsState`.
//!
//! # Cost
//! O(events of the round + catalogue size · log) per round: the round's pages, interactions and
//! hearings are sorted by user in reused buffers; the catalogue's counters are copied and sorted
//! once each for the Gini coefficients. No pass over all agents.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::broadcast::{DELIVERIES, POSTS};
use super::chat::{CHATS, CHAT_LINES};
use super::feel::form_feelings;
use super::recommend::Browsing;
use super::record::{record_round, ItemStats};
use crate::analysis::formulas::{
    gini_sorted, intra_list_diversity, top_count, top_share_sorted, Conformity, GenreCounts,
};
use crate::analysis::COLUMNS;
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::domain::GenreSet;
use crate::ids::{ItemId, UserId};
use crate::io::output::{absolute, write_atomic, FileError, OutputPaths, OutputSink};
use crate::plugin::parts::{decode, encode};
use crate::plugin::{CheckpointPart, Counters, SimApp};
use crate::sim::{ActiveAgents, OutputError, RoundLog, SimError, SimOutputs, SimPhase, SimTick};
use crate::world::{ItemEntities, Roster};

/// One row of `metrics.csv`: the measures of one completed round. Per-round values unless a
/// field says cumulative; `None` is an undefined value (a mean over nothing), an empty cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Round number, 1-based.
    pub round: u32,
    /// Agents active this round (`ActiveAgents`), 0..=agents.
    pub active_agents: u64,
    /// Agents that opened a recommender session this round (were shown at least one page).
    pub browsing_agents: u64,
    /// Pages shown this round (recommendation and search-result pages, every showing).
    pub pages_shown: u64,
    /// Items shown this round, summed over the pages (an item on two pages counts twice).
    pub items_shown: u64,
    /// Items watched this round: the round's watched (user, item) pairs, as in
    /// `interaction.csv` (label 1).
    pub watches: u64,
    /// `watches / items_shown`, in [0, 1]; Agent4Rec's view ratio (Zhang et al., *On Generative
    /// Agents in Recommendation*, SIGIR 2024). Undefined when nothing was shown.
    pub view_ratio: Option<f64>,
    /// Ratings given this round (watches with a 1-5 rating).
    pub ratings: u64,
    /// Mean of this round's ratings, stars in [1, 5].
    pub mean_rating: Option<f64>,
    /// This round's ratings of 1 star.
    pub rating_1: u64,
    /// ... of 2 stars.
    pub rating_2: u64,
    /// ... of 3 stars.
    pub rating_3: u64,
    /// ... of 4 stars.
    pub rating_4: u64,
    /// ... of 5 stars.
    pub rating_5: u64,
    /// Mean over the agents shown at least one item this round of the Shannon entropy (bits,
    /// base 2) of the genre multiset of every item shown to the agent this round (every
    /// showing; each item adds all its genres): [`GenreCounts::entropy_bits`]. In [0, log2 G]
    /// for G genres (an agent whose items have no genres counts 0). RecAgent's `round_entropy`
    /// (arXiv 2306.02552; spec §2.3), the measure of its information-cocoon experiment.
    pub entropy_shown: Option<f64>,
    /// The same over the items each agent watched this round, for agents with at least one
    /// watch.
    pub entropy_watched: Option<f64>,
    /// Cumulative: items shown at least once so far (`ItemStats.exposures > 0`) / catalogue
    /// size, in [0, 1].
    pub coverage: Option<f64>,
    /// Cumulative: Gini coefficient over every catalogue item of `ItemStats.exposures` (the
    /// rounds x users it was shown in so far), [`gini_sorted`]; 0 = equal exposure,
    /// `1 - 1/n` = all on one item. Undefined before any exposure.
    pub gini_exposure: Option<f64>,
    /// Cumulative: the same over `ItemStats.watches`. Undefined before any watch.
    pub gini_watches: Option<f64>,
    /// Cumulative: share of all exposures so far that went to the `ceil(n / 10)` most-exposed
    /// of the n catalogue items ([`top_share_sorted`]), in [0.1, 1]; popularity bias.
    pub top10_exposure_share: Option<f64>,
    /// Mean over this round's pages of at least 2 items of the mean pairwise Jaccard distance
    /// of the items' genre sets ([`intra_list_diversity`]; Ziegler et al., WWW 2005), in [0, 1].
    pub ild: Option<f64>,
    /// Mean over this round's recommender sessions of the pages the agent was shown
    /// (recommendation and search-result pages; 1 = left on the first page): Agent4Rec's exit
    /// page. In [1, `max_session_steps` + 1].
    pub exit_page: Option<f64>,
    /// Mean over the same sessions of the page decisions made (`Browsing.steps`: watch, next,
    /// search, leave), in [0, `max_session_steps`].
    pub session_length: Option<f64>,
    /// Chats held this round.
    pub chats: u64,
    /// Chat lines spoken this round.
    pub chat_lines: u64,
    /// Posts published this round.
    pub posts: u64,
    /// Post deliveries (post x contact) this round.
    pub deliveries: u64,
    /// Item mentions in this round's chat lines and posts (a post counts once, not per
    /// delivery).
    pub mentions: u64,
    /// Mean conformity of this round's ratings, stars in [-4, 4] (> 0: ratings closer to what
    /// others said than usual): `mean_u |r_u - s| - |r - s|` over the ratings `r` of items the
    /// agent had heard of before rating them (in earlier rounds, or this round before the feel
    /// phase), from speakers who had rated them; `s` = the mean of those stated ratings, `r_u`
    /// = the agent's ratings so far of items it had not heard of. Measures the effect RecAgent's
    /// user-conformity experiment studies (arXiv 2306.02552). See [`Conformity`].
    pub conformity: Option<f64>,
    /// Ratings that entered `conformity`.
    pub conformity_pairs: u64,
    /// LLM calls made this round (first calls, corrective retries, cache hits); 0 offline.
    pub llm_calls: u64,
    /// Prompt tokens of this round's LLM calls.
    pub llm_prompt_tokens: u64,
    /// Completion tokens of this round's LLM calls.
    pub llm_completion_tokens: u64,
    /// Cost of this round's tokens at `llm_options.price_*_per_mtok`, US dollars; 0 without
    /// prices.
    pub llm_cost_usd: f64,
}

/// The number of columns; a schema change that forgets [`MetricsRow::cells`] fails to build.
const N_COLUMNS: usize = 34;
const _: () = assert!(COLUMNS.len() == N_COLUMNS);

/// One cell of a row: an integer, or a real number that may be undefined.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// A count, written as an integer.
    Int(u64),
    /// A real number, written with at most 6 decimals ([`format_real`]); `None` is empty.
    Real(Option<f64>),
}

/// `v` with 6 decimals, trailing zeros (and a trailing point) removed: `0.75`, `1`, `0.333333`.
/// A non-finite value is written empty.
pub fn format_real(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Cell {
    /// The cell's text in the CSV.
    pub fn text(&self) -> String {
        match *self {
            Cell::Int(n) => n.to_string(),
            Cell::Real(Some(v)) => format_real(v),
            Cell::Real(None) => String::new(),
        }
    }

    /// The value as written (so means over rows match what a reader of the file computes).
    pub fn value(&self) -> Option<f64> {
        match *self {
            Cell::Int(n) => Some(n as f64),
            Cell::Real(_) => self.text().parse().ok(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match *self {
            Cell::Int(n) => n.into(),
            Cell::Real(_) => self.value().map_or(serde_json::Value::Null, Into::into),
        }
    }
}

impl MetricsRow {
    /// The cells in [`COLUMNS`] order, with their column names.
    pub fn cells(&self) -> [(&'static str, Cell); N_COLUMNS] {
        use Cell::{Int, Real};
        [
            ("round", Int(u64::from(self.round))),
            ("active_agents", Int(self.active_agents)),
            ("browsing_agents", Int(self.browsing_agents)),
            ("pages_shown", Int(self.pages_shown)),
            ("items_shown", Int(self.items_shown)),
            ("watches", Int(self.watches)),
            ("view_ratio", Real(self.view_ratio)),
            ("ratings", Int(self.ratings)),
            ("mean_rating", Real(self.mean_rating)),
            ("rating_1", Int(self.rating_1)),
            ("rating_2", Int(self.rating_2)),
            ("rating_3", Int(self.rating_3)),
            ("rating_4", Int(self.rating_4)),
            ("rating_5", Int(self.rating_5)),
            ("entropy_shown", Real(self.entropy_shown)),
            ("entropy_watched", Real(self.entropy_watched)),
            ("coverage", Real(self.coverage)),
            ("gini_exposure", Real(self.gini_exposure)),
            ("gini_watches", Real(self.gini_watches)),
            ("top10_exposure_share", Real(self.top10_exposure_share)),
            ("ild", Real(self.ild)),
            ("exit_page", Real(self.exit_page)),
            ("session_length", Real(self.session_length)),
            ("chats", Int(self.chats)),
            ("chat_lines", Int(self.chat_lines)),
            ("posts", Int(self.posts)),
            ("deliveries", Int(self.deliveries)),
            ("mentions", Int(self.mentions)),
            ("conformity", Real(self.conformity)),
            ("conformity_pairs", Int(self.conformity_pairs)),
            ("llm_calls", Int(self.llm_calls)),
            ("llm_prompt_tokens", Int(self.llm_prompt_tokens)),
            ("llm_completion_tokens", Int(self.llm_completion_tokens)),
            ("llm_cost_usd", Real(Some(self.llm_cost_usd))),
        ]
    }
}

/// Cumulative counter values at the end of the last recorded round, to turn them into
/// per-round counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsSoFar {
    /// `chats`.
    pub chats: u64,
    /// `chat_lines`.
    pub chat_lines: u64,
    /// `posts`.
    pub posts: u64,
    /// `deliveries`.
    pub deliveries: u64,
    /// LLM calls (`LlmUsage::calls`).
    pub llm_calls: u64,
}

/// The metrics of the run so far (a world resource, checkpointed as `metrics`).
#[derive(Resource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsState {
    /// One row per completed round, in order.
    pub rows: Vec<MetricsRow>,
    /// Baselines and what each agent heard, with stated ratings.
    pub conformity: Conformity,
    /// Counter values at the end of the last row's round.
    pub so_far: CountsSoFar,
}

impl MetricsState {
    /// The text of `metrics.csv`: the header ([`COLUMNS`]) and one line per row.
    pub fn csv(&self) -> String {
        let mut out = COLUMNS.join(",");
        out.push('\n');
        for r in &self.rows {
            for (i, (_, c)) in r.cells().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", c.text());
            }
            out.push('\n');
        }
        out
    }

    /// The manifest's `summary.metrics`: `{"last": {column: value}, "mean": {column: mean over
    /// the rounds where it is defined}}` (values as written in the file, means rounded to 6
    /// decimals; `null` when undefined), or `None` before the first round.
    pub fn summary(&self) -> Option<serde_json::Value> {
        let last = self.rows.last()?;
        let last: std::collections::BTreeMap<&str, serde_json::Value> =
            last.cells().iter().map(|(n, c)| (*n, c.json())).collect();
        let mut sums = [(0.0f64, 0u64); N_COLUMNS];
        for r in &self.rows {
            for (s, (_, c)) in sums.iter_mut().zip(r.cells()) {
                if let Some(v) = c.value() {
                    s.0 += v;
                    s.1 += 1;
                }
            }
        }
        let mean: std::collections::BTreeMap<&str, serde_json::Value> = COLUMNS
            .iter()
            .zip(sums)
            .map(|(n, (s, k))| {
                let v = (k > 0)
                    .then(|| format_real(s / k as f64).parse::<f64>().ok())
                    .flatten();
                (*n, v.map_or(serde_json::Value::Null, Into::into))
            })
            .collect();
        Some(serde_json::json!({ "last": last, "mean": mean }))
    }
}

/// `metrics.csv` in the directory of `interaction.csv`.
pub fn metrics_path(paths: &OutputPaths) -> PathBuf {
    paths
        .interactions
        .parent()
        .unwrap_or(Path::new(""))
        .join("metrics.csv")
}

/// Writes `state`'s rows to `metrics.csv` beside `paths.interactions`, atomically.
///
/// # Errors
/// [`FileError`] naming the file: an I/O error, or another output (messages, interactions,
/// manifest, log) configured as that same file.
pub fn write_metrics(state: &MetricsState, paths: &OutputPaths) -> Result<(), FileError> {
    let path = metrics_path(paths);
    let clash = [
        &paths.messages,
        &paths.interactions,
        &paths.manifest,
        &paths.log,
    ]
    .into_iter()
    .any(|p| absolute(p) == absolute(&path));
    let result = if clash {
        Err(std::io::Error::other(
            "metrics.csv is also configured as another output (messages, interactions, manifest or log): rename that output",
        ))
    } else {
        write_atomic(&path, state.csv().as_bytes())
    };
    result.map_err(|source| FileError { path, source })
}

/// Registers the metrics.
pub struct MetricsPlugin;

impl Plugin for MetricsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<MetricsState>()
            .init_resource::<HearingsBeforeRatings>()
            .checkpoint_part(MetricsPart)
            .add_summary_value("metrics", |w| w.get_resource::<MetricsState>()?.summary())
            .add_systems(SimOutputs, create_metrics_file)
            .add_systems(
                SimTick,
                (
                    mark_hearings_before_ratings
                        .in_set(SimPhase::Feel)
                        .before(form_feelings),
                    record_metrics.in_set(SimPhase::Record).after(record_round),
                ),
            );
    }
}

/// Writes the file with the rows so far (the header only, for a new run), so a stale
/// `metrics.csv` of an earlier run in the same folder never sits beside the new outputs.
fn create_metrics_file(
    state: Res<MetricsState>,
    sink: Res<OutputSink>,
    mut error: ResMut<OutputError>,
) {
    if let Err(e) = write_metrics(&state, &sink.paths) {
        error.0 = Some(SimError::File(e));
    }
}

/// How many of the round's hearings ([`RoundLog::hearings`]) happened before the round's
/// ratings (the feel phase), noted by [`mark_hearings_before_ratings`]; taken (reset) by
/// [`record_metrics`]. Within a round only: not checkpointed.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HearingsBeforeRatings(pub Option<usize>);

/// Notes how many hearings the round has before its ratings are given.
pub fn mark_hearings_before_ratings(log: Res<RoundLog>, mut mark: ResMut<HearingsBeforeRatings>) {
    mark.0 = Some(log.hearings().len());
}

/// Buffers reused from round to round.
#[derive(Default)]
pub struct Scratch {
    pages: Vec<(UserId, u32)>,
    watched: Vec<(UserId, ItemId)>,
    ratings: Vec<(UserId, ItemId, u8)>,
    genres: Vec<GenreSet>,
    exposures: Vec<u64>,
    watches: Vec<u64>,
}

fn mean(sum: f64, n: u64) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

/// Computes the round's row from the round log and the counters, appends it and rewrites
/// `metrics.csv`.
pub fn record_metrics(
    cfg: Res<SimConfig>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    items: Res<ItemEntities>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    counters: Res<Counters>,
    llm: Option<Res<crate::llm::LlmStats>>,
    sink: Res<OutputSink>,
    mut state: ResMut<MetricsState>,
    mut mark: ResMut<HearingsBeforeRatings>,
    mut error: ResMut<OutputError>,
    mut scratch: Local<Scratch>,
    sessions: Query<&Browsing>,
    item_stats: Query<&ItemStats>,
) {
    let s = &mut *scratch;
    let genres = |it: ItemId| catalog.by_id(it).map_or(GenreSet(0), |i| i.genres);
    let mut row = MetricsRow {
        round: clock.round,
        active_agents: active.0.len() as u64,
        ..Default::default()
    };

    // Pages, grouped by user (each user's in the order shown): sessions, exit pages, session
    // lengths, entropy of what was shown, intra-list diversity.
    s.pages.clear();
    s.pages
        .extend(log.pages().enumerate().map(|(i, (u, _))| (u, i as u32)));
    s.pages.sort_unstable();
    row.pages_shown = s.pages.len() as u64;
    let (mut entropy, mut entropy_n) = (0.0, 0u64);
    let (mut ild, mut ild_n) = (0.0, 0u64);
    let (mut exit_pages, mut steps) = (0u64, 0u64);
    for group in s.pages.chunk_by(|a, b| a.0 == b.0) {
        let user = group[0].0;
        let mut counts = GenreCounts::default();
        let mut shown = 0u64;
        for &(_, i) in group {
            let (_, page) = log.page(i as usize);
            s.genres.clear();
            s.genres.extend(page.iter().map(|&it| genres(it)));
            for &g in &s.genres {
                counts.add(g);
            }
            shown += page.len() as u64;
            if let Some(d) = intra_list_diversity(&s.genres) {
                ild += d;
                ild_n += 1;
            }
        }
        row.items_shown += shown;
        if shown > 0 {
            entropy += counts.entropy_bits();
            entropy_n += 1;
        }
        row.browsing_agents += 1;
        exit_pages += group.len() as u64;
        steps += roster
            .entity(user)
            .and_then(|e| sessions.get(e).ok())
            .map_or(0, |b| u64::from(b.steps));
    }
    row.entropy_shown = mean(entropy, entropy_n);
    row.ild = mean(ild, ild_n);
    row.exit_page = mean(exit_pages as f64, row.browsing_agents);
    row.session_length = mean(steps as f64, row.browsing_agents);

    // Watches and ratings, by user then item.
    s.watched.clear();
    s.ratings.clear();
    for r in log.interactions().iter().filter(|r| r.label == 1) {
        s.watched.push((UserId(r.user), ItemId(r.item)));
        if (1..=5).contains(&r.rating) {
            s.ratings.push((UserId(r.user), ItemId(r.item), r.rating));
        }
    }
    s.watched.sort_unstable();
    s.ratings.sort_unstable();
    row.watches = s.watched.len() as u64;
    row.view_ratio = (row.items_shown > 0).then(|| row.watches as f64 / row.items_shown as f64);
    let (mut entropy, mut entropy_n) = (0.0, 0u64);
    for group in s.watched.chunk_by(|a, b| a.0 == b.0) {
        let mut counts = GenreCounts::default();
        for &(_, it) in group {
            counts.add(genres(it));
        }
        entropy += counts.entropy_bits();
        entropy_n += 1;
    }
    row.entropy_watched = mean(entropy, entropy_n);
    let mut stars = [0u64; 5];
    let mut star_sum = 0u64;
    for &(_, _, r) in &s.ratings {
        stars[usize::from(r) - 1] += 1;
        star_sum += u64::from(r);
    }
    row.ratings = s.ratings.len() as u64;
    row.mean_rating = mean(star_sum as f64, row.ratings);
    [
        row.rating_1,
        row.rating_2,
        row.rating_3,
        row.rating_4,
        row.rating_5,
    ] = stars;

    // Conformity: this round's ratings against what was heard before them (earlier rounds, and
    // this round's hearings before the feel phase: posts read at the round's start); the later
    // hearings (chats) count from the next round on.
    let hearings = log.hearings();
    let (before_ratings, after) = hearings.split_at(mark.0.take().unwrap_or(0).min(hearings.len()));
    for h in before_ratings {
        state.conformity.hear(h.listener, h.item, h.stated);
    }
    let c = state.conformity.rate_round(&s.ratings);
    row.conformity = c.mean;
    row.conformity_pairs = c.pairs;
    for h in after {
        state.conformity.hear(h.listener, h.item, h.stated);
    }

    // Cumulative item counters over the whole catalogue.
    s.exposures.clear();
    s.watches.clear();
    for st in items.0.iter().map(|&e| item_stats.get(e).ok()) {
        let st = st.copied().unwrap_or_default();
        s.exposures.push(st.exposures);
        s.watches.push(st.watches);
    }
    let n = catalog.len();
    let covered = s.exposures.iter().filter(|&&x| x > 0).count();
    row.coverage = (n > 0).then(|| covered as f64 / n as f64);
    s.exposures.sort_unstable();
    s.watches.sort_unstable();
    row.gini_exposure = gini_sorted(&s.exposures);
    row.gini_watches = gini_sorted(&s.watches);
    row.top10_exposure_share = top_share_sorted(&s.exposures, top_count(s.exposures.len(), 10));

    // Social counts: this round's share of the counters; mentions from the round log.
    let now = CountsSoFar {
        chats: counters.get(CHATS.name),
        chat_lines: counters.get(CHAT_LINES.name),
        posts: counters.get(POSTS.name),
        deliveries: counters.get(DELIVERIES.name),
        llm_calls: 0,
    };
    let before = state.so_far;
    row.chats = now.chats.saturating_sub(before.chats);
    row.chat_lines = now.chat_lines.saturating_sub(before.chat_lines);
    row.posts = now.posts.saturating_sub(before.posts);
    row.deliveries = now.deliveries.saturating_sub(before.deliveries);
    row.mentions = log.mentions.len() as u64;

    // LLM usage: tokens are kept per round; calls only in total.
    let mut calls = before.llm_calls;
    if let Some(g) = llm.as_ref().and_then(|l| l.0.lock().ok()) {
        calls = g.calls;
        if let Some(u) = g.per_round.get(&clock.round) {
            row.llm_prompt_tokens = u.prompt_tokens;
            row.llm_completion_tokens = u.completion_tokens;
        }
    }
    row.llm_calls = calls.saturating_sub(before.llm_calls);
    row.llm_cost_usd = cfg
        .llm_options
        .cost(row.llm_prompt_tokens, row.llm_completion_tokens);
    state.so_far = CountsSoFar {
        llm_calls: calls,
        ..now
    };

    state.rows.push(row);
    if let Err(e) = write_metrics(&state, &sink.paths) {
        error.0 = Some(SimError::File(e));
    }
}

/// The metrics state in checkpoints; restoring it also rewrites `metrics.csv` to its rows, so
/// the file of a resumed run (or of a branch, in its new folder) is the uninterrupted run's up to
/// the checkpoint.
struct MetricsPart;

impl CheckpointPart for MetricsPart {
    fn name(&self) -> &str {
        "metrics"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        encode(&world.get_resource::<MetricsState>())
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let Some(state) = decode::<Option<MetricsState>>(bytes)? else {
            return Ok(());
        };
        if let Some(sink) = world.get_resource::<OutputSink>() {
            write_metrics(&state, &sink.paths)
                .map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
        }
        world.insert_resource(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Script;
    use crate::llm::{LlmStats, Usage};
    use crate::plugin::Counter;
    use crate::testing::{tiny, TestSim, HEAT, MATRIX, TOY_STORY};

    fn set_item_stats(t: &mut TestSim, stats: [(u64, u64); 3]) {
        let items = t.world().resource::<ItemEntities>().0.clone();
        for (e, (exposures, watches)) in items.into_iter().zip(stats) {
            t.world_mut().entity_mut(e).insert(ItemStats {
                exposures,
                watches,
                ..Default::default()
            });
        }
    }

    fn add(t: &mut TestSim, c: Counter, n: u64) {
        t.world_mut().resource_mut::<Counters>().add(&c, n);
    }

    fn llm(t: &mut TestSim, calls: u64, round: u32, prompt: u64, completion: u64) {
        let stats = t
            .world_mut()
            .get_resource_or_insert_with(LlmStats::default)
            .clone();
        let mut g = stats.0.lock().unwrap();
        g.calls = calls;
        g.per_round.insert(
            round,
            Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
            },
        );
    }

    fn csv(t: &TestSim) -> String {
        let paths = &t.world().resource::<OutputSink>().paths;
        std::fs::read_to_string(metrics_path(paths)).unwrap()
    }

    #[test]
    fn row_columns_are_the_schema() {
        let names: Vec<&str> = MetricsRow::default().cells().iter().map(|c| c.0).collect();
        assert_eq!(names, COLUMNS);
    }

    #[test]
    fn reals_are_written_with_at_most_six_decimals() {
        assert_eq!(format_real(0.75), "0.75");
        assert_eq!(format_real(1.0), "1");
        assert_eq!(format_real(2.0 / 3.0), "0.666667");
        assert_eq!(format_real(-1e-9), "0");
        assert_eq!(format_real(-0.5), "-0.5");
        assert_eq!(format_real(f64::NAN), "");
        assert_eq!(Cell::Real(Some(1.0 / 3.0)).value(), Some(0.333333));
        assert_eq!(Cell::Real(None).text(), "");
        assert_eq!(Cell::Int(12).text(), "12");
    }

    #[test]
    fn record_metrics_computes_two_hand_checked_rows() {
        // Toy Story = Animation|Comedy, The Matrix = Action|Sci-Fi, Heat = Action|Crime.
        let mut t = tiny(
            3,
            &[(0, 1)],
            "llm_options:\n  price_prompt_per_mtok: 2\n  price_completion_per_mtok: 10\n",
            Script::new(),
        );
        // The run starts with a header-only file (written when the outputs were created).
        assert_eq!(csv(&t), COLUMNS.join(",") + "\n");

        // ---- Round 1 ----
        t.at_round(1);
        t.activate(&[0, 1, 2]);
        {
            let mut log = t.world_mut().resource_mut::<RoundLog>();
            // Agent 0: two pages, [Toy Story, The Matrix] then [Heat]; watches Heat (4 stars).
            log.page_shown(UserId(0), &[TOY_STORY, MATRIX]);
            log.page_shown(UserId(1), &[MATRIX, HEAT]);
            log.page_shown(UserId(0), &[HEAT]);
            for it in [TOY_STORY, MATRIX, HEAT] {
                log.shown(UserId(0), it);
            }
            log.watched(UserId(0), HEAT, 4);
            // Agent 1: one page [The Matrix, Heat]; watches The Matrix (5 stars).
            log.shown(UserId(1), MATRIX);
            log.shown(UserId(1), HEAT);
            log.watched(UserId(1), MATRIX, 5);
            log.mentions = vec![HEAT, MATRIX];
            // After the ratings: 0 hears Toy Story from 1 (who rated it 2), 2 hears The Matrix.
            log.heard(UserId(0), UserId(1), TOY_STORY, Some(2));
            log.heard(UserId(2), UserId(1), MATRIX, Some(5));
        }
        t.world_mut().resource_mut::<HearingsBeforeRatings>().0 = Some(0);
        t.set(
            0,
            Browsing {
                steps: 2,
                ..Default::default()
            },
        );
        t.set(
            1,
            Browsing {
                steps: 1,
                ..Default::default()
            },
        );
        // Cumulative (record_round's): exposures 0, 3, 1; watches 0, 1, 1.
        set_item_stats(&mut t, [(0, 0), (3, 1), (1, 1)]);
        add(&mut t, CHATS, 1);
        add(&mut t, CHAT_LINES, 4);
        add(&mut t, POSTS, 1);
        add(&mut t, DELIVERIES, 2);
        llm(&mut t, 7, 1, 1000, 200);

        t.run(record_metrics);

        let r1 = t.world().resource::<MetricsState>().rows[0].clone();
        // Entropy shown: agent 0's multiset Animation, Comedy, Action, Sci-Fi, Action, Crime
        // (Action 2/6, four genres 1/6): (1/3) log2 3 + (2/3) log2 6 = 2.2516292; agent 1's
        // Action, Sci-Fi, Action, Crime: 1.5. Mean 1.8758146.
        let e0 = 3f64.log2() / 3.0 + 2.0 * 6f64.log2() / 3.0;
        assert!((r1.entropy_shown.unwrap() - (e0 + 1.5) / 2.0).abs() < 1e-12);
        // ILD: [Toy, Matrix] share no genre (1); [Matrix, Heat] share Action of 3 (2/3); [Heat]
        // has one item (left out). Mean 5/6.
        assert!((r1.ild.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // Gini of exposures [0, 1, 3]: Σ|xi-xj| = 2·(1 + 3 + 2) = 12, / (2·3·4) = 0.5; of
        // watches [0, 1, 1]: 2·(1 + 1 + 0) / (2·3·2) = 1/3. Top ceil(0.3) = 1 item: 3/4.
        assert_eq!(r1.gini_exposure, Some(0.5));
        assert!((r1.gini_watches.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // Cost: (1000·2 + 200·10) / 1e6 = 0.004 $.
        assert!((r1.llm_cost_usd - 0.004).abs() < 1e-15);
        // Pages 3 with 5 items, 2 sessions of 2 and 1 pages and 2 and 1 decisions; watches 2 of 5
        // shown; ratings 4 and 5; each watched one item of two genres (1 bit); items shown at
        // least once: 2 of 3; social counts from the counters; conformity: nothing heard before
        // these ratings.
        let header = COLUMNS.join(",");
        let line1 = "1,3,2,3,5,2,0.4,2,4.5,0,0,0,1,1,1.875815,1,0.666667,0.5,0.333333,0.75,0.833333,1.5,1.5,1,4,1,2,2,,0,7,1000,200,0.004";
        assert_eq!(csv(&t), format!("{header}\n{line1}\n"));

        // ---- Round 2 ----
        t.world_mut().resource_mut::<RoundLog>().take_sorted();
        t.at_round(2);
        t.activate(&[0]);
        {
            let mut log = t.world_mut().resource_mut::<RoundLog>();
            // A post from 1 is read before the ratings: 0 hears Heat (stated 1).
            log.heard(UserId(0), UserId(1), HEAT, Some(1));
        }
        t.run(mark_hearings_before_ratings);
        assert_eq!(t.world().resource::<HearingsBeforeRatings>().0, Some(1));
        {
            let mut log = t.world_mut().resource_mut::<RoundLog>();
            // Agent 0 is shown Toy Story and rates it 3.
            log.page_shown(UserId(0), &[TOY_STORY]);
            log.watched(UserId(0), TOY_STORY, 3);
            // A chat after the ratings: 1 hears Toy Story from 0, who now rated it 3.
            log.heard(UserId(1), UserId(0), TOY_STORY, Some(3));
        }
        t.set(
            0,
            Browsing {
                steps: 1,
                ..Default::default()
            },
        );
        set_item_stats(&mut t, [(1, 1), (3, 1), (1, 1)]);
        add(&mut t, CHATS, 2);
        llm(&mut t, 10, 2, 500, 100);

        t.run(record_metrics);

        // Conformity: 0 heard Toy Story from 1 (stated s = 2) in round 1; its baseline is its
        // rating of Heat (4, not heard of when rated): |4 - 2| - |3 - 2| = 1 over 1 pair.
        // Heat was heard of this round before the ratings: mentioned, but not rated now.
        // Exposures [1, 1, 3]: 2·(0 + 2 + 2) / (2·3·5) = 0.266667; top 1 item: 3/5. Watches
        // [1, 1, 1]: 0. Every item shown once: coverage 1. One page of one item: no ILD.
        // Social: chats 3 - 1 = 2, the rest unchanged (0). LLM: 10 - 7 = 3 calls,
        // (500·2 + 100·10) / 1e6 = 0.002 $.
        let line2 =
            "2,1,1,1,1,1,1,1,3,0,0,1,0,0,1,1,1,0.266667,0,0.6,,1,1,2,0,0,0,0,1,1,3,500,100,0.002";
        assert_eq!(csv(&t), format!("{header}\n{line1}\n{line2}\n"));
        let st = t.world().resource::<MetricsState>();
        assert_eq!(st.conformity.baselines[&UserId(0)], [0, 0, 0, 1, 0]);
        // 1's hearing of Toy Story (round 2, after the ratings) is kept for later rounds.
        assert_eq!(
            st.conformity.heard[&(UserId(1), TOY_STORY)],
            crate::analysis::formulas::HeardOf {
                stated_sum: 3,
                stated_n: 1
            }
        );
        assert_eq!(t.world().resource::<HearingsBeforeRatings>().0, None);

        // The manifest's summary: the last row as written, and the means over the two rows.
        let s = st.summary().unwrap();
        assert_eq!(s["last"]["watches"], 1);
        assert_eq!(s["last"]["ild"], serde_json::Value::Null);
        assert_eq!(s["last"]["gini_exposure"], 0.266667);
        // (4.5 + 3) / 2; (2.5) / 2; ild only in round 1; conformity only in round 2;
        // entropy_shown (1.875815 + 1) / 2 = 1.4379075, written with 6 decimals.
        assert_eq!(s["mean"]["mean_rating"], 3.75);
        assert_eq!(s["mean"]["watches"], 1.5);
        assert_eq!(s["mean"]["ild"], 0.833333);
        assert_eq!(s["mean"]["conformity"], 1.0);
        assert_eq!(s["mean"]["entropy_shown"], 1.437908);
        assert_eq!(s["mean"]["llm_cost_usd"], 0.003);
    }

    #[test]
    fn restoring_the_checkpoint_part_rewrites_the_file_to_its_rows() {
        let mut t = tiny(2, &[], "", Script::new());
        t.at_round(1);
        t.activate(&[0, 1]);
        t.run(record_metrics);
        let one_row = csv(&t);
        let bytes = MetricsPart.save(t.world_mut()).unwrap();
        t.at_round(2);
        t.run(record_metrics);
        assert_eq!(csv(&t).lines().count(), 3);

        MetricsPart.restore(t.world_mut(), &bytes).unwrap();

        assert_eq!(csv(&t), one_row);
        assert_eq!(t.world().resource::<MetricsState>().rows.len(), 1);
        // Round 1 with nothing shown or rated: 2 active agents, zeros, undefined means; the
        // catalogue's stats are all zero (coverage 0, Gini undefined).
        assert_eq!(
            one_row.lines().nth(1).unwrap(),
            "1,2,0,0,0,0,,0,,0,0,0,0,0,,,0,,,,,,,0,0,0,0,0,,0,0,0,0,0"
        );
    }
}
