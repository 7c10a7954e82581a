//! An insight on a short-term memory entry moving to long-term memory (spec §3.2, LLM call C).
//!
//! - Prompt `insight.txt` (the entry, its reinforcing texts and the current text joined with
//!   `;`); answer one sentence with a high-level insight into the person's character.
//! - Offline: "<first name> keeps coming back to <a liked genre> movies and remembers them
//!   well."
//! - Fallback: the entry itself.

use std::sync::Arc;

use super::compress::REMEMBER;
use super::offline::{first_name, liked_genre, Offline};
use super::parse::{sentence, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;

/// The insight on a transferred memory.
pub struct Insight;

/// The transferred entry and what reinforced it.
#[derive(Clone, Copy, Debug)]
pub struct InsightAsk<'a> {
    /// The transferred entry.
    pub memory: &'a str,
    /// Texts that reinforced it, oldest first (without the current one).
    pub related: &'a [Arc<str>],
    /// The text whose arrival completed the transfer.
    pub current: &'a str,
}

impl Decision for Insight {
    const KIND: &'static str = "insight";
    const PHASE: Phase = REMEMBER;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/insight.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 30;
    type Ask<'a> = InsightAsk<'a>;
    type Answer = String;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, t: &String) -> bool {
        !t.trim().is_empty()
    }

    fn fallback(req: &Request<'_, Self>) -> String {
        req.ask.memory.to_string()
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> String {
        let g = liked_genre(m.ctx.catalog, &req.agent, &mut m.rng);
        format!(
            "{} keeps coming back to {g} movies and remembers them well.",
            first_name(&req.agent.profile.name)
        )
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        let InsightAsk {
            memory,
            related,
            current,
        } = req.ask;
        let mut all: Vec<&str> = vec![memory];
        all.extend(related.iter().map(|r| &**r));
        all.push(current);
        vars.set("memories_joined", all.join("; "));
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<String, ParseError> {
        sentence(text)
    }

    /// `{"insight": text}`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[("insight", schema::text("one sentence"))]))
    }
}
