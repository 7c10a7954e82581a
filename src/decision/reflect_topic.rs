//! The topic of a reflection (spec §3.5 step 1): the most salient high-level question about the
//! person, from the latest long-term memories.
//!
//! - Prompt `reflect_topic.txt` (the records as `[idx] text`); answer non-empty lines,
//!   numbering stripped, at most 3 used.
//! - Offline: "What kind of movies does <first name> enjoy most?".
//! - Fallback: no topic (the reflection is skipped).

use std::sync::Arc;

use super::compress::REMEMBER;
use super::offline::{first_name, Offline};
use super::parse::{json_object, strip_numbering, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;

/// The reflection topic.
pub struct ReflectTopic;

impl Decision for ReflectTopic {
    const KIND: &'static str = "reflect_topic";
    const PHASE: Phase = REMEMBER;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/reflect_topic.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 30;
    /// `(stream index, text)` of the latest records, oldest first.
    type Ask<'a> = &'a [(u32, Arc<str>)];
    /// Topic questions.
    type Answer = Vec<String>;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, t: &Vec<String>) -> bool {
        t.iter().any(|x| !x.trim().is_empty())
    }

    fn fallback(_: &Request<'_, Self>) -> Vec<String> {
        Vec::new()
    }

    fn offline(req: &Request<'_, Self>, _: &mut Offline<'_>) -> Vec<String> {
        vec![format!(
            "What kind of movies does {} enjoy most?",
            first_name(&req.agent.profile.name)
        )]
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        let lines: Vec<String> = req.ask.iter().map(|(i, t)| format!("[{i}] {t}")).collect();
        vars.set("statements", lines.join("\n"));
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<Vec<String>, ParseError> {
        parse_topics(text)
    }

    /// `{"question": text}`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "question",
            schema::text("the question"),
        )]))
    }
}

/// Non-empty lines, numbering stripped, at most 3.
///
/// # Errors
/// A reply with no non-empty line.
pub fn parse_topics(text: &str) -> Result<Vec<String>, ParseError> {
    // The structured form: `{"question": ".."}` (or a list under `questions`).
    let from_json: Option<String> = json_object(text).and_then(|m| {
        let v = ["question", "questions", "topic", "topics"]
            .iter()
            .find_map(|k| m.get(*k))?;
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => Some(
                a.iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
    });
    let text = from_json.as_deref().unwrap_or(text);
    let v: Vec<String> = text
        .lines()
        .map(strip_numbering)
        .filter(|l| !l.is_empty())
        .take(3)
        .map(str::to_string)
        .collect();
    if v.is_empty() {
        Err(ParseError("expected one question".into()))
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_the_non_empty_lines() {
        assert_eq!(
            parse_topics("1. What does Ann value?\n\n2. Why?").unwrap(),
            vec!["What does Ann value?", "Why?"]
        );
        assert!(parse_topics("\n").is_err());
    }
}
