//! Top-level choice of an active agent (spec §2.2): enter the recommender, enter social media,
//! or do nothing.
//!
//! - Prompt `top.txt`; answer a tag `[RECOMMENDER]`, `[SOCIAL]` or `[NOTHING]` (brackets
//!   optional, any case) or JSON `{"action": "recommender"}`.
//! - Offline: `U_rec = recommender_bias + feature_weight·(Watcher + 0.5·Explorer)`,
//!   `U_social = social_bias + feature_weight·0.5·(Chatter + Poster) ± 0.5 − no_contacts_penalty`
//!   (+0.5 with something to talk about: a watched or heard-of item; the
//!   penalty only without contacts), `U_nothing = nothing_bias`; softmax at `τ`.
//! - Fallback: do nothing.

use super::offline::{softmax_choice, Offline};
use super::parse::{find_tag, json_object, json_str, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use serde::{Deserialize, Serialize};

use crate::domain::FeatureSet;

/// The phase of the top-level choice (code 0).
pub const ACTIVITY: Phase = Phase::new("Activity", 0);

/// The top-level choice.
pub struct Top;

/// The top-level choice of a round (spec §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopAction {
    /// Not active this round.
    #[default]
    Inactive,
    /// Enter the recommender system.
    Recommender,
    /// Enter social media.
    Social,
    /// Do nothing.
    Nothing,
}

impl Decision for Top {
    const KIND: &'static str = "top";
    const PHASE: Phase = ACTIVITY;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/top.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 15;
    type Ask<'a> = ();
    type Answer = TopAction;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, a: &TopAction) -> bool {
        *a != TopAction::Inactive
    }

    fn fallback(_: &Request<'_, Self>) -> TopAction {
        TopAction::Nothing
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> TopAction {
        let p = m.params;
        let a = &req.agent;
        let f = a.profile.features;
        let fw = p.feature_weight;
        let bit = |b: u8| if f.has(b) { 1.0 } else { 0.0 };
        // Something to talk about: a watched or heard-of item. Not the memories: what is
        // recalled depends on the words of chats and posts, which the hybrid backend lets an LLM
        // write, and the decisions must not.
        let has_topic = !a.histories.watched.is_empty() || !a.histories.heard.is_empty();
        // Calibrated: the Watcher term is the log activity of the agent's tier
        // ([`crate::calibration`], "Top level").
        let activity = match m.calibrated() {
            Some(model) => model.activity[if f.has(FeatureSet::WATCHER) { 2 } else { 1 }].ln(),
            None => fw * bit(FeatureSet::WATCHER),
        };
        let u = [
            p.recommender_bias + activity + fw * 0.5 * bit(FeatureSet::EXPLORER),
            p.social_bias
                + fw * 0.5 * (bit(FeatureSet::CHATTER) + bit(FeatureSet::POSTER))
                + if has_topic { 0.5 } else { -0.5 }
                - if a.contacts.0.is_empty() {
                    p.no_contacts_penalty
                } else {
                    0.0
                },
            p.nothing_bias,
        ];
        [
            TopAction::Recommender,
            TopAction::Social,
            TopAction::Nothing,
        ][softmax_choice(&u, p.temperature, &mut m.rng)]
    }

    fn prompt(_: &Request<'_, Self>, _: &mut PromptVars<'_>) {}

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<TopAction, ParseError> {
        parse_top(text)
    }

    /// `{"action": "RECOMMENDER" | "SOCIAL" | "NOTHING"}`, the prompt's three tags.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "action",
            schema::one_of(&["RECOMMENDER", "SOCIAL", "NOTHING"]),
        )]))
    }
}

/// Top-level choice.
///
/// # Errors
/// No recognisable choice.
pub fn parse_top(text: &str) -> Result<TopAction, ParseError> {
    let of = |w: &str| match w.to_ascii_uppercase().as_str() {
        s if s.contains("RECOMMEND") => Some(TopAction::Recommender),
        s if s.contains("SOCIAL") => Some(TopAction::Social),
        s if s.contains("NOTHING") || s == "NONE" => Some(TopAction::Nothing),
        _ => None,
    };
    if let Some(m) = json_object(text) {
        if let Some(a) = json_str(&m, &["action", "choice", "decision"]).and_then(|s| of(&s)) {
            return Ok(a);
        }
    }
    find_tag(text, &["RECOMMENDER", "SOCIAL", "NOTHING"])
        .and_then(|(t, _)| of(&t))
        .ok_or_else(|| {
            ParseError(
                "expected exactly one of [RECOMMENDER], [SOCIAL] or [NOTHING] on the first line"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::parse::clean;

    #[test]
    fn top_level_variants() {
        for (t, want) in [
            (
                "[RECOMMENDER]:: Ann enters the Recommender System",
                TopAction::Recommender,
            ),
            ("[social]：: Ann enters the Social Media", TopAction::Social),
            (
                "```\n1. [NOTHING]:: Ann does nothing\n```",
                TopAction::Nothing,
            ),
            ("I think I will go to SOCIAL media.", TopAction::Social),
            ("{\"action\": \"Recommender\"}", TopAction::Recommender),
        ] {
            assert_eq!(parse_top(&clean(t)), Ok(want), "{t}");
        }
        assert!(parse_top("hello").is_err());
    }
}
