//! A post to all of the agent's contacts (spec §2.4).
//!
//! - Prompt `post.txt`; answer the text itself (a leading `[POST]::` is dropped), or JSON.
//! - Offline: a templated line about the latest watch (with its rating), else a heard-of item,
//!   else a request for suggestions; the item it names is its mention.
//! - Fallback: "Looking for something good to watch.".

use serde::{Deserialize, Serialize};

use super::offline::{opinion, Offline};
use super::parse::{find_tag, json_object, json_str, mentions, one_line, ParseError};
use super::{schema, AgentView, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::ids::ItemId;

/// The phase of posts (code 5).
pub const BROADCAST: Phase = Phase::new("Broadcast", 5);

/// A post.
pub struct Post;

/// A post draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostDraft {
    /// Text.
    pub text: String,
    /// Catalogue items it names.
    pub mentions: Vec<ItemId>,
}

impl Decision for Post {
    const KIND: &'static str = "post";
    const PHASE: Phase = BROADCAST;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/post.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 40;
    type Ask<'a> = ();
    type Answer = PostDraft;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, p: &PostDraft) -> bool {
        !p.text.trim().is_empty()
    }

    fn fallback(_: &Request<'_, Self>) -> PostDraft {
        PostDraft {
            text: "Looking for something good to watch.".into(),
            mentions: Vec::new(),
        }
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> PostDraft {
        post_text(m.ctx.catalog, &req.agent)
    }

    fn prompt(_: &Request<'_, Self>, _: &mut PromptVars<'_>) {}

    fn parse(_: &(), text: &str, catalog: &Catalog) -> Result<PostDraft, ParseError> {
        parse_post(text, catalog)
    }

    /// `{"post": text}`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "post",
            schema::text("the post text, one line"),
        )]))
    }
}

fn post_text(cat: &Catalog, a: &AgentView<'_>) -> PostDraft {
    if let Some((x, r)) = a.histories.last_watched() {
        let t = cat.by_id(x).map_or("a movie", |i| &i.title);
        let text = if r > 0 {
            format!("Just watched <{t}>: {r}/5, {}.", opinion(r))
        } else {
            format!("Just watched <{t}>. Has anyone else seen it?")
        };
        return PostDraft {
            text,
            mentions: vec![x],
        };
    }
    if let Some(&(h, _)) = a.histories.heard.last() {
        let t = cat.by_id(h).map_or("a movie", |i| &i.title);
        return PostDraft {
            text: format!("Has anyone seen <{t}>? I keep hearing about it."),
            mentions: vec![h],
        };
    }
    PostDraft {
        text: "Looking for a good movie to watch tonight. Any suggestions?".into(),
        mentions: vec![],
    }
}

/// A post.
///
/// # Errors
/// Empty text.
pub fn parse_post(text: &str, catalog: &Catalog) -> Result<PostDraft, ParseError> {
    let body = if let Some(m) = json_object(text) {
        json_str(&m, &["post", "text", "content"]).unwrap_or_else(|| text.to_string())
    } else {
        match find_tag(text, &["POST"]) {
            Some((_, rest)) if !rest.is_empty() => rest.to_string(),
            _ => text.to_string(),
        }
    };
    let body = one_line(body.trim().trim_matches('"'));
    if body.is_empty() {
        return Err(ParseError("expected one line of post text".into()));
    }
    Ok(PostDraft {
        mentions: mentions(&body, catalog),
        text: body,
    })
}
