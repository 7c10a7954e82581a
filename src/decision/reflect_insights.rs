//! Insights of a reflection on one topic (spec §3.5 step 2), each citing the long-term records
//! it derives from.
//!
//! - Prompt `reflect_insights.txt` (the topic and the retrieved records as `[idx] text`); answer
//!   one insight per non-empty line as `insight text [idx, idx]`: the cited ids are the integers
//!   inside the line's trailing `[...]` span only (not numbers in the text); the text is the line
//!   without that span.
//! - Offline: "<first name> seems to prefer <a liked genre> movies over others." citing the
//!   first two statements.
//! - Fallback: no insight.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::compress::REMEMBER;
use super::offline::{first_name, liked_genre, Offline};
use super::parse::{json_object, strip_numbering, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;

/// Reflection insights.
pub struct ReflectInsights;

/// The topic and the statements retrieved for it.
#[derive(Clone, Copy, Debug)]
pub struct ReflectAsk<'a> {
    /// The topic question.
    pub topic: &'a str,
    /// `(stream index, text)` of the retrieved records, best first.
    pub statements: &'a [(u32, Arc<str>)],
}

/// One reflection insight with the stream indices it cites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitedInsight {
    /// The insight sentence.
    pub text: String,
    /// Stream indices of the records it derives from.
    pub cites: Vec<u32>,
}

impl Decision for ReflectInsights {
    const KIND: &'static str = "reflect_insights";
    const PHASE: Phase = REMEMBER;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/reflect_insights.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 50;
    type Ask<'a> = ReflectAsk<'a>;
    type Answer = Vec<CitedInsight>;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, v: &Vec<CitedInsight>) -> bool {
        v.iter().any(|i| !i.text.trim().is_empty())
    }

    fn fallback(_: &Request<'_, Self>) -> Vec<CitedInsight> {
        Vec::new()
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> Vec<CitedInsight> {
        let g = liked_genre(m.ctx.catalog, &req.agent, &mut m.rng);
        vec![CitedInsight {
            text: format!(
                "{} seems to prefer {g} movies over others.",
                first_name(&req.agent.profile.name)
            ),
            cites: req.ask.statements.iter().take(2).map(|s| s.0).collect(),
        }]
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        let lines: Vec<String> = req
            .ask
            .statements
            .iter()
            .map(|(i, t)| format!("[{i}] {t}"))
            .collect();
        vars.set("statements", lines.join("\n"));
        vars.set("topic", req.ask.topic);
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<Vec<CitedInsight>, ParseError> {
        parse_insights(text)
    }

    /// `{"insight": text, "cites": [index, ...]}` (1 to 5 statement numbers).
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[
            ("insight", schema::text("the insight")),
            (
                "cites",
                schema::array(serde_json::json!({"type": "integer", "minimum": 0}), 1, 5),
            ),
        ]))
    }
}

/// One insight per non-empty line, citations from its trailing `[...]` span.
///
/// # Errors
/// A reply with no insight text.
pub fn parse_insights(text: &str) -> Result<Vec<CitedInsight>, ParseError> {
    let mut out = Vec::new();
    // The structured form: `{"insight": "..", "cites": [3, 7]}`.
    if let Some(m) = json_object(text) {
        let body = ["insight", "text"]
            .iter()
            .find_map(|k| m.get(*k)?.as_str())
            .map(str::trim);
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            let cites = ["cites", "citations", "statements"]
                .iter()
                .find_map(|k| m.get(*k)?.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(CitedInsight {
                text: body.to_string(),
                cites,
            });
            return Ok(out);
        }
    }
    for l in text.lines().map(strip_numbering).filter(|l| !l.is_empty()) {
        // Only the trailing `[...]` span cites statements; numbers in the text are not ids.
        let (body, cites) = match (l.rfind('['), l.trim_end().ends_with(']')) {
            (Some(open), true) => {
                let ids = l[open + 1..l.trim_end().len() - 1]
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|x| x.parse::<u32>().ok())
                    .collect();
                (l[..open].trim(), ids)
            }
            _ => (l, Vec::new()),
        };
        if !body.is_empty() {
            out.push(CitedInsight {
                text: body.to_string(),
                cites,
            });
        }
    }
    if out.is_empty() {
        Err(ParseError("expected `<insight> [<number>, ...]`".into()))
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trailing_span_cites() {
        let ins = parse_insights("Ann prefers films from 1999 [3, 7]\nno citation here").unwrap();
        assert_eq!(ins[0].text, "Ann prefers films from 1999");
        assert_eq!(ins[0].cites, vec![3, 7], "1999 in the text is not an id");
        assert!(ins[1].cites.is_empty());
    }
}
