//! Sensory compression of an agent's observations into one sentence (spec §3.2, LLM call A).
//! All memory kinds share the phase [`REMEMBER`] and tell their requests apart by the key's
//! step (`sub-kind << 10 | sequence`).
//!
//! - Prompt `compress.txt` (the observations as numbered lines `[i] text`); answer one
//!   stand-alone sentence (the first non-empty line, numbering stripped).
//! - Offline and fallback: the observations joined with spaces.

use super::offline::Offline;
use super::parse::{sentence, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;

/// The phase of every memory request (code 6).
pub const REMEMBER: Phase = Phase::new("Remember", 6);

/// Sensory compression.
pub struct Compress;

impl Decision for Compress {
    const KIND: &'static str = "compress";
    const PHASE: Phase = REMEMBER;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/compress.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 30;
    /// The observations, oldest first (rendered from structured events).
    type Ask<'a> = &'a [String];
    type Answer = String;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, t: &String) -> bool {
        !t.trim().is_empty()
    }

    fn fallback(req: &Request<'_, Self>) -> String {
        req.ask.join(" ")
    }

    fn offline(req: &Request<'_, Self>, _: &mut Offline<'_>) -> String {
        req.ask.join(" ")
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        let lines: Vec<String> = req
            .ask
            .iter()
            .enumerate()
            .map(|(i, o)| format!("[{}] {o}", i + 1))
            .collect();
        vars.set("observations", lines.join("\n"));
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<String, ParseError> {
        sentence(text)
    }

    /// `{"sentence": text}`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "sentence",
            schema::text("one sentence"),
        )]))
    }
}

#[cfg(test)]
mod tests {
    use crate::decision::parse::sentence;

    #[test]
    fn the_first_line_is_the_sentence() {
        assert_eq!(
            sentence("\n1. Ann loves quiet dramas.\n2. x").unwrap(),
            "Ann loves quiet dramas."
        );
        assert!(sentence("  \n ").is_err());
    }
}
