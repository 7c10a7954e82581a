//! A post to all of the agent's contacts (spec §2.4).
//!
//! - Prompt `post.txt`; answer the text itself (a `[POST]::` or leading `POST:` tag is
//!   dropped), or JSON.
//! - Offline: a line about the latest watch (with its rating), else a heard-of item, else a
//!   request for suggestions, its words drawn from the request's stream and the context (item,
//!   rating, profile: [`super::words`]); the item it names is its mention.
//! - Fallback: "Looking for something good to watch.".

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::chat::opinion_words;
use super::offline::{rating_of, Offline};
use super::parse::{json_object, json_str, mentions, one_line, strip_line, ParseError};
use super::words::{
    capitalise, chance, kept_mentions, liked_genre, pick, profile_aside, ItemWords,
};
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

    /// `post_words.txt`: the decided subject (the item the post names, with the agent's rating
    /// of it, or a request for suggestions) and whether it may name a movie.
    const WORDS: Option<(&'static str, &'static str)> = Some((
        "post_words",
        include_str!("../../config/prompts/post_words.txt"),
    ));

    fn words_prompt(req: &Request<'_, Self>, decided: &PostDraft, vars: &mut PromptVars<'_>) {
        let cat = vars.catalog();
        let named = crate::social::resolve_mentions(cat, &decided.mentions, &decided.text);
        let name = req.agent.profile.name.to_string();
        let (subject, rule) = match named.first() {
            Some(&x) => {
                let t = vars.title_of(x);
                let subject = match rating_of(&req.agent, x) {
                    0 if req.agent.histories.has_watched(x) => {
                        format!("about <{t}>, which {name} just watched")
                    }
                    0 => format!("about <{t}>, which {name} heard of but has not watched"),
                    r => format!("about <{t}>, which {name} watched and rated {r} out of 5"),
                };
                (subject, format!("Name <{t}> in it, and no other movie."))
            }
            None => (
                "asking friends for a good movie to watch".to_string(),
                "Do not name any movie.".to_string(),
            ),
        };
        vars.set("subject", subject);
        vars.set("mention_rule", rule);
    }

    /// The reply's text ([`parse_post`]) with the decided mentions
    /// ([`super::words::kept_mentions`]).
    fn with_words(
        _: &(),
        decided: &PostDraft,
        text: &str,
        catalog: &Catalog,
    ) -> Result<PostDraft, ParseError> {
        let body = parse_post(text, catalog)?.text;
        Ok(PostDraft {
            mentions: kept_mentions(catalog, &decided.mentions, &decided.text, &body)?,
            text: body,
        })
    }

    /// `{"post": text}`.
    fn words_schema(_: &(), _: &PostDraft) -> Option<serde_json::Value> {
        Self::answer_schema(&())
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
        let score = pick(
            rng,
            &["{r}/5", "{r} out of 5", "{r} stars", "rated it {r}/5"],
        )
        .replace("{r}", &r.to_string());
        let mut text = format!("{opener}: {score}, {}.", opinion_words(r, rng));
        let genre = w.genre(rng);
        match (&w.about, &genre, rng.random_range(0..3)) {
            (Some(ab), _, 0) => {
                let _ = write!(
                    text,
                    " {}.",
                    capitalise(&format!("{} about {ab}", w.noun(rng)))
                );
            }
            (_, Some(g), 1) => {
                let line = match r {
                    4..=5 => pick(
                        rng,
                        &["If you like {g}, give it a try.", "A must for {g} fans."],
                    ),
                    3 => pick(
                        rng,
                        &["Decent {g}, nothing more.", "Fine for a {g} evening."],
                    ),
                    _ => pick(
                        rng,
                        &[
                            "Even {g} fans can skip this one.",
                            "Not the {g} I hoped for.",
                        ],
                    ),
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

/// What follows a `[POST]` tag (anywhere) or a `POST:` / `POST::` tag at the start of a line,
/// to the end of its line; `None` without one. The word "post" in the text is not a tag ("Mock
/// post about <Heat>" stays whole: it used to be cut after "post").
fn post_tag(text: &str) -> Option<&str> {
    for line in text.lines() {
        let l = strip_line(line);
        let head = l.get(..4).unwrap_or("");
        if head.eq_ignore_ascii_case("post") && l[4..].trim_start().starts_with(':') {
            return Some(l[4..].trim_start().trim_start_matches(':').trim());
        }
    }
    let at = text.to_ascii_uppercase().find("[POST]")?;
    let rest = text.get(at + 6..)?.lines().next().unwrap_or("");
    Some(rest.trim_start().trim_start_matches(':').trim())
}

/// A post.
///
/// # Errors
/// Empty text.
pub fn parse_post(text: &str, catalog: &Catalog) -> Result<PostDraft, ParseError> {
    let body = if let Some(m) = json_object(text) {
        json_str(&m, &["post", "text", "content"]).unwrap_or_else(|| text.to_string())
    } else {
        match post_tag(text) {
            Some(rest) if !rest.is_empty() => rest.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::data::ItemRecord;

    fn catalog() -> Catalog {
        Catalog::new(
            ["Heat", "Babe", "The Long Quiet"]
                .iter()
                .enumerate()
                .map(|(i, t)| ItemRecord {
                    id: i as u32,
                    title: (*t).into(),
                    genres: vec!["Drama".into()],
                    description: String::new(),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_word_post_is_not_a_tag() {
        let cat = catalog();
        let p = |s: &str| parse_post(s, &cat).unwrap().text;
        assert_eq!(p("[POST]:: Loved <Heat>!"), "Loved <Heat>!");
        assert_eq!(p("POST: Loved <Heat>!"), "Loved <Heat>!");
        assert_eq!(p("Sure! [POST] Loved <Heat>!"), "Loved <Heat>!");
        // Used to be cut after "post".
        assert_eq!(
            p("My first post about <Heat>!"),
            "My first post about <Heat>!"
        );
        assert_eq!(
            p("Post-credits scene of <Heat>: wow"),
            "Post-credits scene of <Heat>: wow"
        );
    }

    #[test]
    fn words_keep_the_decided_mentions() {
        let cat = catalog();
        let decided = PostDraft {
            text: "Just watched <Heat>: 4/5.".into(),
            mentions: vec![ItemId(0)],
        };
        // The words name another movie: the mention stays the decision's (Heat).
        let w = Post::with_words(&(), &decided, "Loved <Heat>, better than <Babe>!", &cat).unwrap();
        assert_eq!(w.text, "Loved <Heat>, better than <Babe>!");
        assert_eq!(w.mentions, vec![ItemId(0)]);
        // A decided post that names nothing: the words may not name a movie either (the
        // engine would detect it), with or without brackets.
        let none = PostDraft {
            text: "Bored tonight. Any suggestions?".into(),
            mentions: vec![],
        };
        let ok = Post::with_words(&(), &none, "What should I watch tonight?", &cat).unwrap();
        assert_eq!(ok.mentions, Vec::<ItemId>::new());
        for named in ["Has anyone seen <Babe>?", "Is The Long Quiet any good?"] {
            let e = Post::with_words(&(), &none, named, &cat).unwrap_err();
            assert!(e.0.contains("must not name any movie"), "{named}: {e}");
        }
        // JSON, and an empty post.
        let j = Post::with_words(&(), &decided, "{\"post\": \"<Heat> rocks\"}", &cat).unwrap();
        assert_eq!(j.text, "<Heat> rocks");
        assert!(Post::with_words(&(), &decided, "\"\"", &cat).is_err());
    }
}
