//! A page decision while browsing (spec §2.3): watch one item of the page, see the next page,
//! search a title, or leave.
//!
//! - Prompt `page.txt`; answer `[BUY]:: 3` / `[WATCH]:: 3` (1-based index, or a title from the
//!   page), `[NEXT]`, `[SEARCH]:: title`, `[LEAVE]` / `[EXIT]`, Agent4Rec's
//!   `NUM: 1; WATCH: Babe; ...`, or JSON `{"action": "buy", "index": 3}`.
//! - Offline: item `i` has `U_i = affinity_weight·a(u,i) + idiosyncrasy_weight·ζ(u,i) +
//!   heard_weight·h(u,i) − satiation_weight·s(u,i)` ([`super::offline`]); `U_next = next_bias −
//!   next_page_decay·page`; `U_leave = leave_bias + leave_step_weight·steps`; `U_search =
//!   search_bias + explorer_search_bonus·Explorer`, offered only when the agent heard of an item
//!   it has not watched and is not on the page (it then searches that title); softmax at `τ`.
//! - Fallback: leave.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::offline::{affinity, idiosyncrasy, softmax_choice, Offline};
use super::parse::{
    field, find_tag, first_int, json_object, json_str, strip_line, title_slot, ParseError,
};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::domain::FeatureSet;
use crate::ids::ItemId;
use crate::social::heard_signal;

/// The phase of page decisions (code 2).
pub const WATCH: Phase = Phase::new("Watch", 2);

/// A page decision.
pub struct Page;

/// The page shown. Borrowed from the world, or owned by a chain's request (a browsing session
/// builds each next request from its own state, `systems/watch.rs`).
#[derive(Clone, Debug)]
pub struct PageAsk<'a> {
    /// Items on the page, in display order (1-based in prompts).
    pub items: Cow<'a, [ItemId]>,
    /// 0-based page number within the current list.
    pub page: u32,
    /// Page decisions already made this session.
    pub steps: u32,
    /// The query when the page holds search results.
    pub search: Option<Cow<'a, str>>,
    /// The agent may still search this session.
    pub can_search: bool,
}

/// A page decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageAction {
    /// Watch the items at these 0-based page positions (RecAgent watches exactly one).
    Watch(Vec<u32>),
    /// See the next page.
    Next,
    /// Search for a title.
    Search(String),
    /// Leave the recommender.
    Leave,
}

/// What parsing a page answer needs: the titles in display order and whether searching is
/// allowed.
#[derive(Clone, Debug)]
pub struct PageSpec {
    /// Titles on the page, in display order.
    pub titles: Vec<String>,
    /// `[SEARCH]` is allowed.
    pub can_search: bool,
}

impl Decision for Page {
    const KIND: &'static str = "page";
    const PHASE: Phase = WATCH;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/page.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 15;
    type Ask<'a> = PageAsk<'a>;
    type Answer = PageAction;
    type Spec = PageSpec;

    fn fits(req: &Request<'_, Self>, a: &PageAction) -> bool {
        match a {
            PageAction::Watch(slots) => {
                !slots.is_empty() && slots.iter().all(|&s| (s as usize) < req.ask.items.len())
            }
            PageAction::Search(q) => req.ask.can_search && !q.trim().is_empty(),
            _ => true,
        }
    }

    fn fallback(_: &Request<'_, Self>) -> PageAction {
        PageAction::Leave
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> PageAction {
        if let Some(model) = m.calibrated() {
            return calibrated(req, model, m);
        }
        let (p, ctx, a) = (m.params, m.ctx, &req.agent);
        let PageAsk {
            ref items,
            page,
            steps,
            can_search,
            ..
        } = req.ask;
        let explorer = if a.profile.features.has(FeatureSet::EXPLORER) {
            1.0
        } else {
            0.0
        };
        let cat = ctx.catalog;
        let watched_genres: Vec<_> = a
            .histories
            .watched
            .iter()
            .filter_map(|w| cat.by_id(w.0).map(|it| it.genres))
            .collect();
        let mut u: Vec<f64> = items
            .iter()
            .map(|&id| {
                let g = cat.by_id(id).map(|it| it.genres).unwrap_or_default();
                let sat = if watched_genres.is_empty() {
                    0.0
                } else {
                    watched_genres
                        .iter()
                        .filter(|w| !w.intersect(g).is_empty())
                        .count() as f64
                        / watched_genres.len() as f64
                };
                let heard = a.histories.heard_round(id).map_or(0.0, |r| {
                    heard_signal(r, ctx.clock.round, p.heard_half_life_rounds)
                });
                p.affinity_weight * affinity(a.taste.liked, g)
                    + p.idiosyncrasy_weight * idiosyncrasy(ctx.seed, a.id, id)
                    + p.heard_weight * heard
                    - p.satiation_weight * sat
            })
            .collect();
        let target = a
            .histories
            .heard
            .iter()
            .rev()
            .map(|h| h.0)
            .find(|h| !a.histories.has_watched(*h) && !items.contains(h));
        u.push(p.next_bias - p.next_page_decay * f64::from(page));
        u.push(p.leave_bias + p.leave_step_weight * f64::from(steps));
        u.push(match target {
            Some(_) if can_search => p.search_bias + p.explorer_search_bonus * explorer,
            _ => f64::NEG_INFINITY,
        });
        let n = items.len();
        let c = softmax_choice(&u, p.temperature, &mut m.rng);
        if c < n {
            PageAction::Watch(vec![c as u32])
        } else if c == n {
            PageAction::Next
        } else if c == n + 1 {
            PageAction::Leave
        } else {
            let t = target
                .and_then(|t| cat.by_id(t))
                .map(|it| it.title.to_string());
            t.map_or(PageAction::Leave, PageAction::Search)
        }
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) -> PageSpec {
        let PageAsk {
            ref items,
            page,
            ref search,
            can_search,
            ..
        } = req.ask;
        let mut lines = Vec::new();
        let mut titles = Vec::new();
        for (n, id) in items.iter().enumerate() {
            let (title, genre, desc) = vars.item_parts(*id);
            lines.push(format!("{}. <{title}>;; {desc};; Genre: {genre}", n + 1));
            titles.push(title);
        }
        let name = &req.agent.profile.name;
        vars.set("page", lines.join("\n"));
        vars.set("page_size", items.len().to_string());
        vars.set(
            "observation",
            match search {
                Some(q) => format!("{name} searched for <{q}>; the results, page {}:", page + 1),
                None => format!("{name} is recommended, page {}:", page + 1),
            },
        );
        vars.set(
            "search_option",
            if can_search {
                "3. search for one specific movie: [SEARCH]:: <movie name>\n".to_string()
            } else {
                String::new()
            },
        );
        PageSpec { titles, can_search }
    }

    fn parse(spec: &PageSpec, text: &str, _: &Catalog) -> Result<PageAction, ParseError> {
        parse_page(text, &spec.titles, spec.can_search)
    }

    /// `{"action": "BUY" | "NEXT" | "SEARCH" | "LEAVE", "index": 0..=n, "query": text}`:
    /// the prompt's tags (`SEARCH` only when searching is allowed), the 1-based number of the
    /// movie for `BUY` (0 otherwise) and the title for `SEARCH` (empty otherwise). Strict
    /// schemas require every property, so all three are always written.
    fn answer_schema(spec: &PageSpec) -> Option<serde_json::Value> {
        let mut actions = vec!["BUY", "NEXT"];
        if spec.can_search {
            actions.push("SEARCH");
        }
        actions.push("LEAVE");
        let n = spec.titles.len() as i64;
        Some(schema::object(&[
            ("action", schema::one_of(&actions)),
            (
                "index",
                schema::described(schema::integer(0, n), "number of the movie for BUY, else 0"),
            ),
            ("query", schema::text("movie name for SEARCH, else empty")),
        ]))
    }

    /// The schema's answers with the index bound to the action: `BUY` takes a movie of the
    /// page, `1..=n`, every other action `0`. One object per action group (`anyOf`), which
    /// a grammar can hold but OpenAI's strict `json_schema` cannot (its root must be one
    /// object), so [`Page::answer_schema`] keeps the looser form. Without the binding a small
    /// model writes `{"action": "BUY", "index": 0}`, which names no movie (measured on Gemma 3
    /// 270M: 8 of 20 page answers, README "LLM backend").
    fn answer_grammar(spec: &PageSpec) -> Option<String> {
        let n = spec.titles.len() as i64;
        let query = || schema::text("movie name for SEARCH, else empty");
        let mut others = vec!["NEXT"];
        if spec.can_search {
            others.push("SEARCH");
        }
        others.push("LEAVE");
        let mut alternatives = Vec::with_capacity(2);
        if n > 0 {
            alternatives.push(schema::object(&[
                ("action", schema::one_of(&["BUY"])),
                ("index", schema::integer(1, n)),
                ("query", query()),
            ]));
        }
        alternatives.push(schema::object(&[
            ("action", schema::one_of(&others)),
            ("index", schema::integer(0, 0)),
            ("query", query()),
        ]));
        match schema::gbnf(&serde_json::json!({ "anyOf": alternatives })) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(kind = Self::KIND, "no grammar for the page answer: {e}");
                None
            }
        }
    }
}

fn watch_target(arg: &str, titles: &[String]) -> Result<PageAction, ParseError> {
    let n = titles.len();
    let range = || {
        ParseError(format!(
            "[BUY] needs the number of one movie on the page, 1 to {n}, or its exact title"
        ))
    };
    // A title first: titles may contain numbers ("2001: A Space Odyssey").
    if let Some(slot) = title_slot(titles, arg) {
        return Ok(PageAction::Watch(vec![slot]));
    }
    // An echoed placeholder (`<number of the movie, 1 to 5>`) is not a choice.
    if arg.trim_start().starts_with('<') {
        return Err(range());
    }
    match first_int(arg) {
        Some(i) if (1..=n as u64).contains(&i) => Ok(PageAction::Watch(vec![(i - 1) as u32])),
        _ => Err(range()),
    }
}

/// Page decision.
///
/// # Errors
/// No recognisable decision, an index off the page, an unknown title, or `[SEARCH]` when
/// searching is not allowed.
pub fn parse_page(
    text: &str,
    titles: &[String],
    can_search: bool,
) -> Result<PageAction, ParseError> {
    if let Some(m) = json_object(text) {
        if let Some(a) = json_str(&m, &["action", "choice", "decision"]) {
            let a = a.to_ascii_uppercase();
            // A search names its query; a watch its number (the schema writes both fields).
            let keys: &[&str] = if a.contains("SEARCH") {
                &["query", "title", "movie", "item", "arg"]
            } else {
                &["index", "item", "title", "query", "movie", "arg"]
            };
            let arg = json_str(&m, keys).unwrap_or_default();
            return page_action(&a, &arg, titles, can_search);
        }
    }
    // Agent4Rec: `NUM: 1; WATCH: Babe; REASON: ...`.
    for line in text.lines() {
        let l = strip_line(line);
        let up = l.to_ascii_uppercase();
        if up.starts_with("NUM:") || up.starts_with("NUM :") {
            if let Some(w) = field(l, "WATCH") {
                let w = w.trim();
                let num = field(l, "NUM").and_then(first_int);
                let none = num == Some(0)
                    || w.is_empty()
                    || w == "-"
                    || w.eq_ignore_ascii_case("N/A")
                    || w.eq_ignore_ascii_case("none")
                    || w == "0";
                if none {
                    return Ok(PageAction::Next);
                }
                return watch_target(w, titles);
            }
        }
    }
    match find_tag(
        text,
        &["BUY", "WATCH", "NEXT", "SEARCH", "LEAVE", "EXIT", "QUIT"],
    ) {
        Some((tag, rest)) => page_action(&tag, rest, titles, can_search),
        None => Err(ParseError(
            "expected one line: [BUY]:: <number>, [NEXT]::, [SEARCH]:: <movie name> or [LEAVE]::"
                .into(),
        )),
    }
}

fn page_action(
    tag: &str,
    arg: &str,
    titles: &[String],
    can_search: bool,
) -> Result<PageAction, ParseError> {
    match tag {
        t if t.contains("BUY") || t.contains("WATCH") => watch_target(arg, titles),
        t if t.contains("NEXT") => Ok(PageAction::Next),
        t if t.contains("SEARCH") => {
            if !can_search {
                return Err(ParseError(
                    "searching is not possible now: answer [BUY], [NEXT] or [LEAVE]".into(),
                ));
            }
            let q = arg
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['<', '>', '"', '\'', '.', ' '])
                .to_string();
            if q.is_empty() {
                Err(ParseError("[SEARCH] needs a movie name after `::`".into()))
            } else {
                Ok(PageAction::Search(q))
            }
        }
        t if t.contains("LEAVE") || t.contains("EXIT") || t.contains("QUIT") => {
            Ok(PageAction::Leave)
        }
        _ => Err(ParseError(
            "expected [BUY], [NEXT], [SEARCH] or [LEAVE]".into(),
        )),
    }
}

/// The calibrated model's page decision ([`crate::calibration`], "Choice"): the best item not
/// yet watched, by `z(u,i) + heard_weight·h(u,i)`, is watched with probability
/// `σ((z − θ_u) / τ)`; otherwise the agent turns the page.
fn calibrated(
    req: &Request<'_, Page>,
    model: &crate::calibration::CalibratedModel,
    m: &mut Offline<'_>,
) -> PageAction {
    use rand::Rng;
    let (p, ctx, a) = (m.params, m.ctx, &req.agent);
    let cat = ctx.catalog;
    let x = model.user_vector(a, cat);
    let (mu, sd) = model.user_moments(&x);
    let best = req
        .ask
        .items
        .iter()
        .enumerate()
        .filter(|(_, id)| !a.histories.has_watched(**id))
        .filter_map(|(slot, &id)| {
            let ix = cat.index_of(id)?;
            let heard = a.histories.heard_round(id).map_or(0.0, |r| {
                heard_signal(r, ctx.clock.round, p.heard_half_life_rounds)
            });
            let z = (model.preference(&x, ix) - mu) / sd + p.heard_weight * heard;
            Some((slot, z))
        })
        // The first of equal scores, so the answer does not depend on float ties' order.
        .fold(None, |b: Option<(usize, f64)>, c| match b {
            Some(b) if b.1 >= c.1 => Some(b),
            _ => Some(c),
        });
    let choice = &model.choice;
    match best {
        Some((slot, z))
            if m.rng.random::<f64>()
                < crate::calibration::sigmoid((z - model.threshold(a)) / choice.temperature) =>
        {
            PageAction::Watch(vec![slot as u32])
        }
        _ => PageAction::Next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::parse::clean;

    fn titles() -> Vec<String> {
        [
            "Babe (1995)",
            "Jungle Book, The (1967)",
            "2001: A Space Odyssey (1968)",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn page_variants() {
        let t = titles();
        let p = |s: &str| parse_page(&clean(s), &t, true);
        assert_eq!(p("[BUY]:: 2"), Ok(PageAction::Watch(vec![1])));
        assert_eq!(p("[buy]：：3"), Ok(PageAction::Watch(vec![2])));
        assert_eq!(p("[BUY]:: <Babe>"), Ok(PageAction::Watch(vec![0])));
        assert_eq!(
            p("[BUY]:: 2001: A Space Odyssey"),
            Ok(PageAction::Watch(vec![2]))
        );
        assert_eq!(p("[BUY]:: The Jungle Book"), Ok(PageAction::Watch(vec![1])));
        assert!(p("[BUY]:: 7").is_err());
        assert!(p("[BUY]:: <number of the movie, 1 to 3>").is_err());
        assert_eq!(p("[NEXT]:: next page please"), Ok(PageAction::Next));
        assert_eq!(p("[EXIT]; Reason: tired"), Ok(PageAction::Leave));
        assert_eq!(
            p("[SEARCH]:: <Heat>"),
            Ok(PageAction::Search("Heat".into()))
        );
        assert!(parse_page("[SEARCH]:: Heat", &t, false).is_err());
        assert_eq!(
            p("NUM: 1; WATCH: Babe; REASON: cute"),
            Ok(PageAction::Watch(vec![0]))
        );
        assert_eq!(p("NUM: 0; WATCH: N/A; REASON: none"), Ok(PageAction::Next));
        assert_eq!(
            p("{\"action\": \"buy\", \"index\": 1}"),
            Ok(PageAction::Watch(vec![0]))
        );
        assert!(p("I like turtles").is_err());
    }

    /// The heard-of term: P(watch i) follows the softmax with `heard_weight × 0.5^(age/half-life)`
    /// added to U_i, so hearing raises the choice probability, and less so as it ages.
    #[test]
    fn heard_signal_raises_watch_probability_and_decays() {
        use crate::components::{Histories, Memory, Relationships, Taste};
        use crate::decision::{AgentView, Context, RequestKey};
        use crate::ids::UserId;
        let cat = crate::testing::drama_catalog(2);
        let profile = crate::testing::plain_profile();
        let taste = Taste::default();
        let (contacts, memory) = (Relationships::default(), Memory::default());
        let params = crate::decision::OfflineParams::default();
        let p = &params;
        let mut clock = crate::testing::hourly_clock();
        clock.round = 7;
        let items = [ItemId(0), ItemId(1)];
        let n = 40_000u16;
        // Heard of item 0: never, in round 7 (h = 1), in round 4 (h = 0.5 with half-life 3).
        for (heard, h) in [(None, 0.0), (Some(7), 1.0), (Some(4), 0.5)] {
            let histories = Histories {
                watched: vec![],
                heard: heard.map(|r| (ItemId(0), r)).into_iter().collect(),
            };
            let agent = AgentView {
                id: UserId(3),
                profile: &profile,
                taste: &taste,
                histories: &histories,
                contacts: &contacts,
                memory: &memory,
            };
            let ctx = Context {
                catalog: &cat,
                clock: &clock,
                seed: 5,
            };
            let mut hits = 0u32;
            for step in 0..n {
                let req: Request<'_, Page> = Request {
                    key: RequestKey {
                        round: 7,
                        phase: WATCH,
                        user: UserId(3),
                        step,
                    },
                    agent,
                    ask: PageAsk {
                        items: Cow::Borrowed(&items),
                        page: 0,
                        steps: 0,
                        search: None,
                        can_search: false,
                    },
                };
                if Page::offline(&req, &mut Offline::for_key(&ctx, p, &req.key))
                    == PageAction::Watch(vec![0])
                {
                    hits += 1;
                }
            }
            // Softmax by hand (τ = 1; affinity 0 without liked genres; no satiation).
            let u0 =
                p.idiosyncrasy_weight * idiosyncrasy(5, UserId(3), ItemId(0)) + p.heard_weight * h;
            let u1 = p.idiosyncrasy_weight * idiosyncrasy(5, UserId(3), ItemId(1));
            let (un, ul) = (p.next_bias, p.leave_bias);
            let z = u0.exp() + u1.exp() + un.exp() + ul.exp();
            let want = u0.exp() / z;
            let got = f64::from(hits) / f64::from(n);
            let sd = (want * (1.0 - want) / f64::from(n)).sqrt();
            assert!((got - want).abs() < 4.0 * sd, "h = {h}: {got} vs {want}");
        }
    }

    #[test]
    fn the_grammar_binds_the_index_to_buy() {
        // By hand: BUY takes 1 or 2 (a page of two), NEXT and LEAVE take 0; no SEARCH when it is
        // not offered; a page of none offers no BUY at all.
        let spec = PageSpec {
            titles: titles()[..2].to_vec(),
            can_search: false,
        };
        let g = Page::answer_grammar(&spec).unwrap();
        let object = |action: &str, index: &str| {
            format!(
                "(\"{{\" ws \"\\\"action\\\"\" ws \":\" ws ({action}) ws \",\" ws \"\\\"index\\\"\" ws \":\" ws ({index}) ws \",\" ws \"\\\"query\\\"\" ws \":\" ws string ws \"}}\")"
            )
        };
        let buy = object("\"\\\"BUY\\\"\"", "\"1\" | \"2\"");
        let other = object("\"\\\"NEXT\\\"\" | \"\\\"LEAVE\\\"\"", "\"0\"");
        let root = g.lines().next().unwrap();
        assert_eq!(root, format!("root ::= ({buy} | {other})"));
        let empty = PageSpec {
            titles: Vec::new(),
            can_search: true,
        };
        let g = Page::answer_grammar(&empty).unwrap();
        let other = object(
            "\"\\\"NEXT\\\"\" | \"\\\"SEARCH\\\"\" | \"\\\"LEAVE\\\"\"",
            "\"0\"",
        );
        assert_eq!(g.lines().next().unwrap(), format!("root ::= ({other})"));
        // Every answer the grammar allows parses to what it says.
        let both = |a: &str, i: u32| format!(r#"{{"action": "{a}", "index": {i}, "query": ""}}"#);
        let parse = |t: &str| parse_page(&clean(t), &spec.titles, false);
        assert_eq!(parse(&both("BUY", 2)), Ok(PageAction::Watch(vec![1])));
        assert_eq!(parse(&both("NEXT", 0)), Ok(PageAction::Next));
        assert_eq!(parse(&both("LEAVE", 0)), Ok(PageAction::Leave));
    }
}
