//! Importance of a memory, 1..=10 (spec §3.2, LLM calls B and D): of an observation after
//! compression, and of an insight.
//!
//! - Prompt `importance.txt` (the original's rubric); answer the first integer, clamped to
//!   1..=10 (unlike the original, which kept 75 as 75).
//! - Offline: [`event_importance`] for observations, [`INSIGHT_IMPORTANCE`] for insights.
//! - Fallback: 1, below the default gate: an unscored memory is not kept.

use super::compress::REMEMBER;
use super::offline::Offline;
use super::parse::ParseError;
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::components::MemoryRecord;

/// Importance scoring.
pub struct Importance;

/// The memory to score.
#[derive(Clone, Copy, Debug)]
pub struct ImportanceAsk<'a> {
    /// The memory text.
    pub text: &'a str,
    /// The structured event it came from (`None` for insights).
    pub event: Option<&'a MemoryRecord>,
}

impl Decision for Importance {
    const KIND: &'static str = "importance";
    const PHASE: Phase = REMEMBER;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/importance.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 3;
    type Ask<'a> = ImportanceAsk<'a>;
    /// A score 1..=10.
    type Answer = u8;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, v: &u8) -> bool {
        (1..=10).contains(v)
    }

    fn fallback(_: &Request<'_, Self>) -> u8 {
        1
    }

    fn offline(req: &Request<'_, Self>, _: &mut Offline<'_>) -> u8 {
        req.ask.event.map_or(INSIGHT_IMPORTANCE, event_importance)
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        vars.set("memory", req.ask.text);
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<u8, ParseError> {
        parse_importance(text)
    }

    /// `{"importance": 1..=10}` (the first integer of the text is the score).
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[("importance", schema::integer(1, 10))]))
    }
}

/// Offline importance of an insight (1..=10).
pub const INSIGHT_IMPORTANCE: u8 = 7;

/// Offline importance (1..=10) of an observed event, after the original's rubric (spec §3.2):
/// entering a system or doing nothing 2; a page shown 4; a search 7 with a hit, else 4; a watch
/// `6 + |rating − 3|` (strong opinions are memorable); a chat 8 when it names an item, else 4; a
/// post sent or read 7 when it names an item, else 3; a plugin's note its `value` (1..=10), else 5.
pub fn event_importance(e: &crate::components::MemoryRecord) -> u8 {
    use crate::components::ObservationKind as K;
    let named = e.item.is_some();
    match e.kind {
        K::EnteredRecommender | K::EnteredSocial | K::DidNothing => 2,
        K::Shown => 4,
        K::Searched => {
            if named {
                7
            } else {
                4
            }
        }
        K::Watched => 6 + e.value.abs_diff(3).min(4),
        K::Chatted => {
            if named {
                8
            } else {
                4
            }
        }
        K::Posted | K::ReadPost => {
            if named {
                7
            } else {
                3
            }
        }
        K::Note if e.value > 0 => e.value.min(10),
        K::Note => 5,
    }
}

/// The first integer of the reply, clamped to 1..=10.
///
/// # Errors
/// A reply without an integer.
pub fn parse_importance(text: &str) -> Result<u8, ParseError> {
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    let n: u64 = digits
        .parse()
        .map_err(|_| ParseError("expected an integer from 1 to 10".into()))?;
    Ok(n.clamp(1, 10) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ItemId;

    #[test]
    fn event_importance_follows_the_rubric_and_the_gate() {
        use crate::components::{MemoryRecord, ObservationKind as K};
        let ev = |kind, item: Option<u32>, value| MemoryRecord {
            round: 1,
            item: item.map(ItemId),
            other: None,
            kind,
            value,
            text: None,
        };
        let p = crate::memory::MemoryParams::default();
        let cases = [
            (ev(K::EnteredRecommender, None, 0), 2, false),
            (ev(K::Shown, Some(1), 5), 4, false),
            (ev(K::Watched, Some(1), 3), 6, false),
            (ev(K::Watched, Some(1), 4), 7, true),
            (ev(K::Watched, Some(1), 1), 8, true),
            (ev(K::Chatted, None, 0), 4, false),
            (ev(K::Chatted, Some(2), 0), 8, true),
            (ev(K::ReadPost, Some(2), 0), 7, true),
            (ev(K::Searched, None, 0), 4, false),
        ];
        for (e, score, kept) in cases {
            assert_eq!(event_importance(&e), score, "{e:?}");
            // 7 -> 0.63 passes the 0.62 gate, 6 -> 0.54 does not.
            assert_eq!(p.importance_of(score) > p.importance_gate, kept, "{e:?}");
        }
    }

    #[test]
    fn importance_answers_are_clamped() {
        assert_eq!(parse_importance("Rating: 8/10"), Ok(8));
        assert_eq!(
            parse_importance("75"),
            Ok(10),
            "clamped, unlike the original"
        );
        assert!(parse_importance("high").is_err());
    }
}
