//! A post to all of the agent's contacts (spec §2.4).
//!
//! - Prompt `post.txt`; answer the text itself (a leading `[POST]::` is dropped), or JSON.
//! - Offline: a line about the latest watch (with its rating), else a heard-of item, else a
//!   request for suggestions, its words drawn from the request's stream and the context (item,
//!   rating, profile: [`super::words`]); the item it names is its mention.
//! - Fallback: "Looking for something good to watch.".

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::chat::opinion_words;
use super::offline::Offline;
use super::words::{capitalise, chance, liked_genre, pick, profile_aside, ItemWords};
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
        post_text(m.ctx.catalog, &req.agent, &mut m.rng)
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

/// The offline post, its words drawn from `rng` ([`super::words`]): about the latest watch (an
/// opening, the rating written one of four ways, an opinion, a detail from the description or
/// genres, an aside from the profile, a question, genre hashtags), else about an item heard of,
/// else a request for suggestions in a genre the agent likes. The item it names is its
/// mention; which item that is depends only on the histories.
fn post_text(cat: &Catalog, a: &AgentView<'_>, rng: &mut ChaCha8Rng) -> PostDraft {
    let words = |id: ItemId| {
        ItemWords::of(cat, id).unwrap_or_else(|| ItemWords {
            title: "a movie".into(),
            genres: Vec::new(),
            about: None,
            kind: None,
        })
    };
    if let Some((x, r)) = a.histories.last_watched() {
        let w = words(x);
        let opener = pick(
            rng,
            &[
                "Just watched <{t}>",
                "Finally saw <{t}>",
                "Watched <{t}> last night",
                "Caught <{t}> today",
                "Movie night with <{t}>",
                "Tonight's pick was <{t}>",
            ],
        )
        .replace("{t}", &w.title);
        if r == 0 {
            let ask = pick(
                rng,
                &[
                    "Has anyone else seen it?",
                    "Still not sure what to make of it.",
                    "Anyone want to talk about it?",
                ],
            );
            return PostDraft {
                text: format!("{opener}. {ask}"),
                mentions: vec![x],
            };
        }
        let score = pick(rng, &["{r}/5", "{r} out of 5", "{r} stars", "rated it {r}/5"])
            .replace("{r}", &r.to_string());
        let mut text = format!("{opener}: {score}, {}.", opinion_words(r, rng));
        let genre = w.genre(rng);
        match (&w.about, &genre, rng.random_range(0..3)) {
            (Some(ab), _, 0) => {
                let _ = write!(text, " {}.", capitalise(&format!("{} about {ab}", w.noun(rng))));
            }
            (_, Some(g), 1) => {
                let line = match r {
                    4..=5 => pick(rng, &["If you like {g}, give it a try.", "A must for {g} fans."]),
                    3 => pick(rng, &["Decent {g}, nothing more.", "Fine for a {g} evening."]),
                    _ => pick(rng, &["Even {g} fans can skip this one.", "Not the {g} I hoped for."]),
                };
                let _ = write!(text, " {}", line.replace("{g}", g));
            }
            _ => {}
        }
        if let Some(aside) = profile_aside(a.profile, r, genre.as_deref(), rng) {
            let _ = write!(text, " {}.", capitalise(&aside));
        }
        if chance(rng, 0.5) {
            let ask = pick(
                rng,
                &[
                    "Anyone else seen it?",
                    "What should I watch next?",
                    "Thoughts?",
                    "Recommendations welcome!",
                ],
            );
            let _ = write!(text, " {ask}");
        }
        if chance(rng, 0.3) && !w.genres.is_empty() {
            let g = &w.genres[rng.random_range(0..w.genres.len())];
            let tag: String = g.chars().filter(|c| c.is_alphanumeric()).collect();
            let _ = write!(text, " #{tag} #movienight");
        }
        return PostDraft {
            text,
            mentions: vec![x],
        };
    }
    if let Some(&(h, _)) = a.histories.heard.last() {
        let w = words(h);
        let q = pick(
            rng,
            &[
                "Has anyone seen <{t}>?",
                "Is <{t}> worth watching?",
                "Who has seen <{t}>?",
                "Thinking about watching <{t}>.",
            ],
        )
        .replace("{t}", &w.title);
        let buzz = pick(
            rng,
            &[
                "I keep hearing about it.",
                "My friends keep mentioning it.",
                "It keeps coming up.",
                "Tell me before I start it.",
            ],
        );
        let mut text = format!("{q} {buzz}");
        if chance(rng, 0.5) {
            let _ = write!(text, " Apparently it is {}.", w.noun(rng));
        }
        return PostDraft {
            text,
            mentions: vec![h],
        };
    }
    // Names no item: lower case but for the first word.
    let opener = match liked_genre(cat, a.taste.liked, rng) {
        Some(g) if chance(rng, 0.5) => pick(
            rng,
            &[
                "In the mood for some {g} tonight.",
                "Craving a good {g} movie.",
                "Need a {g} fix for the weekend.",
                "Looking for {g} recommendations.",
            ],
        )
        .replace("{g}", &g),
        _ => pick(
            rng,
            &[
                "Looking for a good movie to watch tonight.",
                "Movie night and no plan yet.",
                "Free evening ahead.",
                "Bored tonight.",
                "Need something new to watch.",
            ],
        )
        .to_string(),
    };
    let ask = pick(
        rng,
        &[
            "Any suggestions?",
            "What should I watch?",
            "Tell me your favourites!",
            "Recommendations welcome.",
            "What are you all watching?",
        ],
    );
    let text = format!("{opener} {ask}");
    PostDraft {
        text,
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
