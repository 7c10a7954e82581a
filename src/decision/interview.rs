//! The interview: a question put to one agent between two rounds ([`crate::intervention`]: the
//! web demo's and the Python API's `interview`), answered through the behaviour backend like any
//! decision.
//!
//! - Prompt `interview.txt` (the shared context, the question); answer one line
//!   `ANSWER: <text>` (or `{"answer": text}` with structured output).
//! - Offline: about a named movie, what the agent did with it (its rating, that it heard of
//!   it, or whether its genre suits the agent's tastes); otherwise who the agent is, what it
//!   likes and the best-rated movie it watched lately.
//! - Fallback: "I would rather not say."

use super::offline::{affinity, first_name, opinion, Offline};
use super::parse::{json_object, json_str, mentions, one_line, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;

/// The phase of interview requests (their transcript keys; asked between rounds, see
/// [`crate::intervention`]).
pub const INTERVIEW: Phase = Phase::new("Interview", 16);

/// The interview decision kind.
pub struct Interview;

/// The answer when the backend gave none that fits.
pub const NO_ANSWER: &str = "I would rather not say.";

/// Longest answer kept, in characters (a longer one is cut at a word boundary).
pub const MAX_ANSWER_CHARS: usize = 1_000;

impl Decision for Interview {
    const KIND: &'static str = "interview";
    const PHASE: Phase = INTERVIEW;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/interview.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 60;
    type Ask<'a> = &'a str;
    type Answer = String;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, t: &String) -> bool {
        !t.trim().is_empty()
    }

    fn fallback(_: &Request<'_, Self>) -> String {
        NO_ANSWER.into()
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> String {
        offline_answer(req, m.ctx.catalog)
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        vars.set("question", one_line(req.ask));
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<String, ParseError> {
        let answer = if text.trim_start().starts_with('{') {
            json_object(text).and_then(|m| json_str(&m, &["answer", "text"]))
        } else {
            None
        };
        let answer = answer.or_else(|| text.lines().find_map(answer_line));
        let answer = answer.or_else(|| {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        });
        match answer.map(|a| cut(&one_line(a.trim()))) {
            Some(a) if !a.is_empty() => Ok(a),
            _ => Err(ParseError("expected one line: ANSWER: <text>".into())),
        }
    }

    /// `{"answer": text}`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "answer",
            schema::text("what the agent says, one to three sentences"),
        )]))
    }
}

/// The text after `ANSWER:` (any case, brackets and numbering around it allowed), the rest
/// of the line whole: an answer may hold `;` and `:`.
fn answer_line(line: &str) -> Option<String> {
    let l = crate::decision::parse::strip_numbering(line.trim()).trim_start_matches(['[', '*']);
    let head = l.get(..6)?;
    if !head.eq_ignore_ascii_case("answer") {
        return None;
    }
    let rest = l[6..].trim_start_matches([']', '*']).trim_start();
    rest.strip_prefix(':').map(|r| r.trim().to_string())
}

/// `s` cut to [`MAX_ANSWER_CHARS`] at a word boundary.
fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_ANSWER_CHARS {
        return s.to_string();
    }
    let head: String = s.chars().take(MAX_ANSWER_CHARS).collect();
    match head.rfind(' ') {
        Some(i) => format!("{}…", &head[..i]),
        None => head,
    }
}

/// The offline model's answer (see the module docs). Deterministic: a function of the agent's
/// state and the question alone.
fn offline_answer(req: &Request<'_, Interview>, catalog: &Catalog) -> String {
    let a = &req.agent;
    let title = |idx: u32| catalog.get(idx).title.clone();
    if let Some(item) = mentions(req.ask, catalog).first().copied() {
        let Some(idx) = catalog.index_of(item) else {
            return NO_ANSWER.into();
        };
        let t = title(idx);
        if let Some(&(_, r)) = a.histories.watched.iter().rev().find(|w| w.0 == item) {
            return if r == 0 {
                format!("I watched <{t}>, but I never rated it.")
            } else {
                format!("I watched <{t}> and gave it {r} out of 5: {}.", opinion(r))
            };
        }
        if a.histories.heard.iter().any(|h| h.0 == item) {
            return format!("I heard about <{t}> on social media, but I have not watched it yet.");
        }
        let genre = catalog.first_genre(idx).to_lowercase();
        return if affinity(a.taste.liked, catalog.get(idx).genres) > 0.0 {
            format!("I have not seen <{t}> yet, but I like {genre} movies, so I might.")
        } else {
            format!("I have not seen <{t}>; {genre} movies are not really my thing.")
        };
    }
    let p = a.profile;
    let mut out = format!(
        "I'm {}, {} years old, and I mostly enjoy {}.",
        first_name(&p.name),
        p.age,
        if p.interest.trim().is_empty() {
            "all kinds of movies"
        } else {
            p.interest.trim()
        }
    );
    // The best-rated of the recent watches, the latest among equals.
    let best = a
        .histories
        .watched
        .iter()
        .enumerate()
        .filter(|(_, w)| w.1 > 0)
        .max_by_key(|(k, w)| (w.1, *k))
        .map(|(_, w)| *w);
    if let Some((item, r)) = best {
        if let Some(idx) = catalog.index_of(item) {
            out.push_str(&format!(
                " Lately I watched <{}> and gave it {r} out of 5: {}.",
                title(idx),
                opinion(r)
            ));
        }
    } else if let Some(&(item, _)) = a.histories.heard.last() {
        if let Some(idx) = catalog.index_of(item) {
            out.push_str(&format!(
                " I have been hearing about <{}> from friends.",
                title(idx)
            ));
        }
    } else {
        out.push_str(" I have not watched anything here yet.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_line_parses_in_every_form() {
        let cat = crate::testing::drama_catalog(3);
        assert_eq!(
            Interview::parse(&(), "ANSWER: I loved <Heat>; twice: really.\nmore", &cat).unwrap(),
            "I loved <Heat>; twice: really."
        );
        assert_eq!(
            Interview::parse(&(), "Sure.\n[Answer]: Mostly comedies.", &cat).unwrap(),
            "Mostly comedies."
        );
        assert_eq!(
            Interview::parse(&(), "{\"answer\": \"Yes, twice.\"}", &cat).unwrap(),
            "Yes, twice."
        );
        assert_eq!(
            Interview::parse(&(), "\n  Sure, comedies.  \n", &cat).unwrap(),
            "Sure, comedies."
        );
        assert!(Interview::parse(&(), " \n ", &cat).is_err());
        let long = "word ".repeat(400);
        let kept = Interview::parse(&(), &long, &cat).unwrap();
        assert!(
            kept.chars().count() <= MAX_ANSWER_CHARS + 1,
            "{}",
            kept.len()
        );
        assert!(kept.ends_with('…'));
    }
}
