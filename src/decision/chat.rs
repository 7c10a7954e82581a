//! A conversation between two agents, written in one request (spec §2.4): the initiator's
//! view and its partner's are both in the request, as in the original's single
//! `generate_dialogue` call (one LLM call per chat instead of one per turn).
//!
//! - Prompt `chat.txt`; answer dialogue lines `[Name]: text` or `Name: text`; lines of other
//!   speakers are skipped, at most `max_turns` kept.
//! - Offline: a dialogue of at most `min(max_turns, offline.chat_turns, 4)` lines about the
//!   initiator's latest watch (or a heard-of item) and the partner's, its words drawn from the
//!   request's stream and the context (items, ratings, tastes, names: [`super::words`]).
//! - Fallback: one greeting line by the initiator.

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::offline::{first_name, rating_of, Offline};
use super::parse::{json_object, mentions, one_line, strip_line, ParseError};
use super::words::{chance, kept_mentions, liked_genre, pick, ItemWords};
use super::{schema, AgentView, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::domain::GenreSet;
use crate::ids::{ItemId, UserId};

/// The phase of social choices and chats (code 4).
pub const CHAT: Phase = Phase::new("Chat", 4);

/// A conversation.
pub struct Chat;

/// The partner and the length limit.
#[derive(Clone, Copy, Debug)]
pub struct ChatAsk<'a> {
    /// The partner.
    pub partner: AgentView<'a>,
    /// Most lines in the dialogue.
    pub max_turns: u32,
}

/// One line of a dialogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utterance {
    /// Speaker (one of the two agents).
    pub speaker: UserId,
    /// Text.
    pub text: String,
    /// Catalogue items the line names.
    pub mentions: Vec<ItemId>,
}

/// What parsing a dialogue needs: both speakers `(id, name)` and the line limit.
#[derive(Clone, Debug)]
pub struct ChatSpec {
    /// The initiating agent.
    pub me: (UserId, String),
    /// The partner.
    pub partner: (UserId, String),
    /// Most lines kept.
    pub max_turns: u32,
}

impl Decision for Chat {
    const KIND: &'static str = "chat";
    const PHASE: Phase = CHAT;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/chat.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 150;
    type Ask<'a> = ChatAsk<'a>;
    type Answer = Vec<Utterance>;
    type Spec = ChatSpec;

    fn fits(req: &Request<'_, Self>, lines: &Vec<Utterance>) -> bool {
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l.speaker == req.agent.id || l.speaker == req.ask.partner.id)
    }

    fn fallback(req: &Request<'_, Self>) -> Vec<Utterance> {
        vec![Utterance {
            speaker: req.agent.id,
            text: format!("Hi {}, how are you?", req.ask.partner.profile.name),
            mentions: Vec::new(),
        }]
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> Vec<Utterance> {
        dialogue(
            m.params.chat_turns,
            m.ctx.catalog,
            &req.agent,
            &req.ask.partner,
            req.ask.max_turns,
            &mut m.rng,
        )
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) -> ChatSpec {
        let ChatAsk { partner, max_turns } = req.ask;
        vars.partner(&partner);
        vars.set("max_turns", max_turns.to_string());
        ChatSpec {
            me: (req.agent.id, req.agent.profile.name.to_string()),
            partner: (partner.id, partner.profile.name.to_string()),
            max_turns,
        }
    }

    fn parse(spec: &ChatSpec, text: &str, catalog: &Catalog) -> Result<Vec<Utterance>, ParseError> {
        parse_chat(text, &spec.me, &spec.partner, spec.max_turns, catalog)
    }

    /// `{"dialogue": [{"speaker": name, "text": text}, ...]}` with 1 to `max_turns` lines,
    /// each spoken by one of the two agents.
    fn answer_schema(spec: &ChatSpec) -> Option<serde_json::Value> {
        let line = schema::object(&[
            (
                "speaker",
                schema::one_of(&[spec.me.1.as_str(), spec.partner.1.as_str()]),
            ),
            ("text", schema::text("what the speaker says")),
        ]);
        Some(schema::object(&[(
            "dialogue",
            schema::array(line, 1, spec.max_turns.max(1)),
        )]))
    }

    /// `chat_words.txt`: both agents as in `chat.txt`, and the decided plan: the number of
    /// lines, who says each one and which movie it names (with the speaker's rating of it).
    const WORDS: Option<(&'static str, &'static str)> = Some((
        "chat_words",
        include_str!("../../config/prompts/chat_words.txt"),
    ));

    fn words_prompt(
        req: &Request<'_, Self>,
        decided: &Vec<Utterance>,
        vars: &mut PromptVars<'_>,
    ) -> ChatSpec {
        let mut spec = Self::prompt(req, vars);
        let cat = vars.catalog();
        let partner = req.ask.partner;
        let n = decided.len();
        let mut plan = Vec::with_capacity(n);
        for (k, line) in decided.iter().enumerate() {
            let (who, view, other) = if line.speaker == req.agent.id {
                (&spec.me.1, &req.agent, &spec.partner.1)
            } else {
                (&spec.partner.1, &partner, &spec.me.1)
            };
            let named = crate::social::resolve_mentions(cat, &line.mentions, &line.text);
            let what = match named.first() {
                Some(&x) => {
                    let t = vars.title_of(x);
                    match rating_of(view, x) {
                        0 if view.histories.has_watched(x) => {
                            format!("talks about <{t}>, which {who} watched")
                        }
                        0 => format!("talks about <{t}>, which {who} heard of"),
                        r => format!("talks about <{t}>, which {who} rated {r} out of 5"),
                    }
                }
                None if k == 0 => {
                    format!("greets {other} and asks for a movie suggestion; names no movie")
                }
                None if k + 1 == n && n > 1 => "says goodbye; names no movie".to_string(),
                None => "answers; names no movie".to_string(),
            };
            plan.push(format!("{}. [{who}]: {what}", k + 1));
        }
        vars.set("turns", n.to_string());
        vars.set("plan", plan.join("\n"));
        // The reply may hold more lines than the plan; `with_words` picks them by speaker.
        spec.max_turns = (2 * n as u32 + 2).max(spec.max_turns);
        spec
    }

    /// The decided lines (speakers, order, mentions) with the reply's words: each decided line
    /// takes the next reply line of the same speaker ([`parse_chat`]); its mentions are kept
    /// ([`super::words::kept_mentions`]).
    ///
    /// # Errors
    /// A decided line without a reply line of its speaker, or a line naming a movie where the
    /// decided line names none.
    fn with_words(
        spec: &ChatSpec,
        decided: &Vec<Utterance>,
        text: &str,
        catalog: &Catalog,
    ) -> Result<Vec<Utterance>, ParseError> {
        let written = parse_chat(text, &spec.me, &spec.partner, spec.max_turns, catalog)?;
        let name = |u: UserId| {
            if u == spec.me.0 {
                spec.me.1.as_str()
            } else {
                spec.partner.1.as_str()
            }
        };
        let mut next = 0;
        let mut out = Vec::with_capacity(decided.len());
        for (k, line) in decided.iter().enumerate() {
            let Some(off) = written[next..]
                .iter()
                .position(|w| w.speaker == line.speaker)
            else {
                return Err(ParseError(format!(
                    "expected {} lines in the order given; line {} by [{}] is missing",
                    decided.len(),
                    k + 1,
                    name(line.speaker)
                )));
            };
            let w = &written[next + off];
            next += off + 1;
            let mentions =
                kept_mentions(catalog, &line.mentions, &line.text, &w.text).map_err(|e| {
                    ParseError(format!(
                        "line {} by [{}]: {}",
                        k + 1,
                        name(line.speaker),
                        e.0
                    ))
                })?;
            out.push(Utterance {
                speaker: line.speaker,
                text: w.text.clone(),
                mentions,
            });
        }
        Ok(out)
    }

    /// `{"dialogue": [...]}` with exactly the decided number of lines.
    fn words_schema(spec: &ChatSpec, decided: &Vec<Utterance>) -> Option<serde_json::Value> {
        let line = schema::object(&[
            (
                "speaker",
                schema::one_of(&[spec.me.1.as_str(), spec.partner.1.as_str()]),
            ),
            ("text", schema::text("what the speaker says")),
        ]);
        let n = decided.len().max(1) as u32;
        Some(schema::object(&[("dialogue", schema::array(line, n, n))]))
    }
}

/// A first-person opinion of an item rated `rating` (1..=5; 0 = not rated yet), drawn from
/// four phrasings per star count.
pub fn opinion_words(rating: u8, rng: &mut ChaCha8Rng) -> &'static str {
    match rating {
        5 => pick(
            rng,
            &[
                "it was outstanding",
                "I loved every minute of it",
                "it is one of the best things I have seen this year",
                "it was fantastic",
            ],
        ),
        4 => pick(
            rng,
            &[
                "I really liked it",
                "it was really good",
                "I enjoyed it a lot",
                "it was well worth my time",
            ],
        ),
        3 => pick(
            rng,
            &[
                "it was okay",
                "it was fine, nothing special",
                "I am still making up my mind about it",
                "it was alright",
            ],
        ),
        2 => pick(
            rng,
            &[
                "it was a bit disappointing",
                "it did not do much for me",
                "I expected more from it",
                "it was weaker than I hoped",
            ],
        ),
        1 => pick(
            rng,
            &[
                "I did not like it at all",
                "it was pretty bad",
                "I regret watching it",
                "it was a real letdown",
            ],
        ),
        _ => pick(
            rng,
            &[
                "I am still thinking about it",
                "I have not made up my mind yet",
            ],
        ),
    }
}

/// The offline dialogue: at most `min(max_turns, chat_turns)` lines (at most 4), alternating
/// from the initiator `a`: (1) `a` greets the partner by first name and talks about its latest
/// watch (with its rating, and a detail from the item's description or genres), else an item it
/// heard of, else asks for suggestions (in a genre it likes); (2) `b` reacts (to the genre of
/// `a`'s item against its own tastes) and talks about its own latest other watch; (3) `a`
/// answers about that item (by `b`'s rating and its own tastes); (4) `b` closes. Which lines
/// exist, who speaks them and the items they mention (their mention ids) depend only on the
/// histories; the words are drawn from `rng`.
fn dialogue(
    chat_turns: u32,
    cat: &Catalog,
    a: &AgentView<'_>,
    b: &AgentView<'_>,
    max_turns: u32,
    rng: &mut ChaCha8Rng,
) -> Vec<Utterance> {
    let turns = max_turns.min(chat_turns).max(1) as usize;
    let words = |id: ItemId| {
        ItemWords::of(cat, id).unwrap_or_else(|| ItemWords {
            title: "that movie".into(),
            genres: Vec::new(),
            about: None,
            kind: None,
        })
    };
    let shares = |liked: GenreSet, id: ItemId| {
        cat.by_id(id)
            .is_some_and(|i| !liked.intersect(i.genres).is_empty())
    };
    let a_watched = a.histories.last_watched().map(|w| w.0);
    let a_heard = a
        .histories
        .heard
        .iter()
        .rev()
        .map(|h| h.0)
        .find(|h| !a.histories.has_watched(*h));
    let b_watched = b
        .histories
        .watched
        .iter()
        .rev()
        .map(|w| w.0)
        .find(|w| Some(*w) != a_watched);
    let (an, bn) = (first_name(&a.profile.name), first_name(&b.profile.name));
    let mut lines = Vec::with_capacity(turns);
    let mut say = |speaker: UserId, text: String, mentions: Vec<ItemId>| {
        lines.push(Utterance {
            speaker,
            text,
            mentions,
        })
    };
    // Line 1: the initiator.
    match (a_watched, a_heard) {
        (Some(x), _) => {
            let w = words(x);
            let greet = pick(
                rng,
                &[
                    "Hi {b}!",
                    "Hey {b}!",
                    "{b}, good to see you!",
                    "Hello {b}!",
                    "{b}! Got a minute?",
                    "Hey {b}, how have you been?",
                ],
            );
            let saw = pick(
                rng,
                &[
                    "I recently watched",
                    "I just saw",
                    "I finally watched",
                    "Last night I watched",
                    "I caught",
                ],
            );
            let r = rating_of(a, x);
            let mut t = format!(
                "{} {saw} <{}> and {}.",
                greet.replace("{b}", bn),
                w.title,
                opinion_words(r, rng)
            );
            match (&w.about, rng.random_range(0..3)) {
                (Some(ab), 0) => {
                    let _ = write!(t, " It is about {ab}.");
                }
                (_, 1) => {
                    let _ = write!(t, " It is {}.", w.noun(rng));
                }
                _ => {}
            }
            let bg = liked_genre(cat, b.taste.liked, rng);
            let ask = match bg {
                Some(g) if chance(rng, 0.4) => pick(
                    rng,
                    &[
                        "You are into {g}, right? Seen any good ones lately?",
                        "Any {g} picks for me?",
                        "Found any good {g} lately?",
                    ],
                )
                .replace("{g}", &g),
                _ => pick(
                    rng,
                    &[
                        "Have you seen anything good lately?",
                        "What have you been watching?",
                        "Seen anything worth recommending?",
                        "Anything good on your list?",
                    ],
                )
                .to_string(),
            };
            say(a.id, format!("{t} {ask}"), vec![x]);
        }
        (None, Some(h)) => {
            let w = words(h);
            let greet = pick(rng, &["Hi {b}!", "Hey {b}!", "{b}, quick question!"]);
            let q = pick(
                rng,
                &[
                    "Have you heard about <{t}>?",
                    "Do you know <{t}>?",
                    "Has anyone told you about <{t}>?",
                    "Have you seen <{t}> yet?",
                ],
            )
            .replace("{t}", &w.title);
            let buzz = pick(
                rng,
                &[
                    "People keep talking about it.",
                    "I keep hearing about it.",
                    "It keeps coming up.",
                    "Everyone seems to have an opinion on it.",
                ],
            );
            let mut t = format!("{} {q} {buzz}", greet.replace("{b}", bn));
            if chance(rng, 0.5) {
                let _ = write!(t, " Apparently it is {}.", w.noun(rng));
            }
            say(a.id, t, vec![h]);
        }
        (None, None) => {
            // Names no item: lower case but for the first word and the first name.
            let greet = pick(
                rng,
                &[
                    "{b}, hi!",
                    "Good to see you, {b}!",
                    "Hey there, {b}!",
                    "How are you, {b}?",
                ],
            )
            .replace("{b}", bn);
            let ask = match liked_genre(cat, a.taste.liked, rng) {
                Some(g) if chance(rng, 0.6) => pick(
                    rng,
                    &[
                        "I am in the mood for some {g}. Any ideas?",
                        "Could you recommend a good {g} movie?",
                        "I want to watch something {g} tonight, any tips?",
                    ],
                )
                .replace("{g}", &g),
                _ => pick(
                    rng,
                    &[
                        "I am looking for a good movie to watch. Any suggestions?",
                        "I have not watched anything in a while, any tips?",
                        "What should I watch next?",
                    ],
                )
                .to_string(),
            };
            say(a.id, format!("{greet} {ask}"), vec![]);
        }
    }
    // Line 2: the partner reacts, then talks about its own latest watch.
    if turns >= 2 {
        let react = match (a_watched, a_heard) {
            (Some(x), _) if shares(b.taste.liked, x) => pick(
                rng,
                &[
                    "That sounds like my kind of film!",
                    "Oh, that is right up my street.",
                    "Nice, I have been meaning to see that one.",
                ],
            ),
            (Some(_), _) => pick(
                rng,
                &[
                    "Not really my genre, but good to hear.",
                    "Hm, that is not usually my thing.",
                    "Interesting, I would not have picked that one.",
                ],
            ),
            (None, Some(_)) => pick(
                rng,
                &[
                    "I have heard of it too, but not seen it yet.",
                    "Not yet, it is on my radar though.",
                    "No, what is it like?",
                ],
            ),
            (None, None) => pick(rng, &["Let me think.", "Good question.", "Hm, let me see."]),
        };
        match b_watched {
            Some(y) => {
                let w = words(y);
                let r = rating_of(b, y);
                let told = pick(
                    rng,
                    &[
                        "I watched <{t}> and {o}.",
                        "I just watched <{t}>, and {o}.",
                        "Last week I saw <{t}>, and {o}.",
                        "<{t}> was my latest pick, and {o}.",
                    ],
                )
                .replace("{t}", &w.title)
                .replace("{o}", opinion_words(r, rng));
                let tip = if (1..=2).contains(&r) {
                    pick(
                        rng,
                        &["Maybe skip that one, though.", "I would not bother."],
                    )
                    .to_string()
                } else if shares(a.taste.liked, y) {
                    match liked_genre(cat, a.taste.liked.intersect(genres_of(cat, y)), rng) {
                        Some(g) => pick(
                            rng,
                            &[
                                "You like {g}, so you should try it.",
                                "With your taste for {g}, you will like it.",
                            ],
                        )
                        .replace("{g}", &g),
                        None => "You might like it too.".into(),
                    }
                } else {
                    pick(
                        rng,
                        &[
                            "You might like it too.",
                            "It might surprise you.",
                            "Give it a try sometime.",
                        ],
                    )
                    .to_string()
                };
                say(b.id, format!("{react} {told} {tip}"), vec![y]);
            }
            None => {
                let t = pick(
                    rng,
                    &[
                        "Not much lately, but I would like to hear more about it.",
                        "Not much lately, to be honest. Tell me more?",
                        "I have been too busy to watch anything, sadly.",
                        "Nothing new for me, so tell me more.",
                    ],
                );
                say(b.id, format!("{react} {t}"), vec![]);
            }
        }
    }
    // Line 3: the initiator answers.
    if turns >= 3 {
        match b_watched {
            Some(y) => {
                let t = &words(y).title;
                let low = (1..=2).contains(&rating_of(b, y));
                let text = if low {
                    pick(
                        rng,
                        &[
                            "Thanks for the warning about <{t}>!",
                            "Good to know, I will skip <{t}> then.",
                            "Noted, <{t}> goes to the bottom of my list.",
                            "Glad you told me before I saw <{t}>.",
                            "I will steer clear of <{t}>, thanks {b}.",
                        ],
                    )
                    .to_string()
                } else {
                    let thanks = pick(
                        rng,
                        &[
                            "Thanks!",
                            "Good tip.",
                            "Nice.",
                            "Oh, cool.",
                            "Noted!",
                            "Thanks, {b}!",
                        ],
                    );
                    let plan = pick(
                        rng,
                        &[
                            "I will put <{t}> on my list.",
                            "I will check out <{t}>.",
                            "I will watch <{t}> this week.",
                            "<{t}> is next on my list.",
                            "<{t}> it is, then.",
                            "I have been curious about <{t}>.",
                        ],
                    );
                    let mut text = format!("{thanks} {plan}");
                    if shares(a.taste.liked, y) && chance(rng, 0.5) {
                        let g = liked_genre(cat, a.taste.liked.intersect(genres_of(cat, y)), rng);
                        if let Some(g) = g {
                            let _ = write!(text, " I can never say no to {g}.");
                        }
                    }
                    text
                };
                say(a.id, text.replace("{t}", t).replace("{b}", bn), vec![y]);
            }
            None => {
                let ok = pick(
                    rng,
                    &[
                        "No worries.",
                        "Fair enough.",
                        "Ah, too bad.",
                        "Okay then.",
                        "Got it.",
                        "Oh well.",
                    ],
                );
                let plan = pick(
                    rng,
                    &[
                        "Let's watch something together soon",
                        "We should pick something together soon",
                        "Maybe we can watch something together this weekend",
                        "Let me know if you find something good",
                        "I will tell you if I find a gem",
                        "Let's swap tips next time",
                    ],
                );
                let text = if chance(rng, 0.5) {
                    format!("{ok} {plan}, {bn}.")
                } else {
                    format!("{ok} {plan}.")
                };
                say(a.id, text, vec![]);
            }
        }
    }
    // Line 4: the partner closes (names no item).
    if turns >= 4 {
        let yes = pick(
            rng,
            &[
                "Sounds good",
                "Deal",
                "Perfect",
                "Great",
                "Sure thing",
                "Okay",
            ],
        );
        let mut bye = pick(
            rng,
            &[
                "talk soon!",
                "catch you later!",
                "let me know how it goes!",
                "see you around!",
                "enjoy!",
                "bye for now!",
            ],
        )
        .to_string();
        // About the partner's tip, when there was one (its genre, lower case; no title).
        if let Some(y) = b_watched.filter(|_| chance(rng, 0.5)) {
            let w = words(y);
            bye = match (w.genre(rng), rating_of(b, y)) {
                (_, 1..=2) => "better luck with the next one!".into(),
                (Some(g), r) if r >= 4 => pick(
                    rng,
                    &[
                        "enjoy the {g}!",
                        "hope you like the {g} as much as I did!",
                        "tell me what you think of the {g}!",
                    ],
                )
                .replace("{g}", &g),
                (Some(g), _) => format!("tell me what you make of the {g}!"),
                (None, _) => "tell me what you think of it!".into(),
            };
        }
        let thanks = pick(
            rng,
            &["", "Thanks for the chat! ", "This was fun. ", "Good talk. "],
        );
        let text = if chance(rng, 0.5) {
            format!("{thanks}{yes}, {an}, {bye}")
        } else {
            format!("{thanks}{yes}, {bye}")
        };
        say(b.id, text, vec![]);
    }
    lines
}

/// The genres of item `id` (empty when unknown).
fn genres_of(cat: &Catalog, id: ItemId) -> GenreSet {
    cat.by_id(id).map(|i| i.genres).unwrap_or_default()
}

/// Dialogue lines.
///
/// # Errors
/// No line attributable to either speaker.
pub fn parse_chat(
    text: &str,
    me: &(UserId, String),
    partner: &(UserId, String),
    max_turns: u32,
    catalog: &Catalog,
) -> Result<Vec<Utterance>, ParseError> {
    let mut lines = Vec::new();
    // The structured form (`answer_schema`): the same lines as `[Name]: text`.
    let from_json: Option<String> = json_object(text).and_then(|m| {
        let d = ["dialogue", "conversation", "lines"]
            .iter()
            .find_map(|k| m.get(*k)?.as_array())?;
        let lines: Vec<String> = d
            .iter()
            .filter_map(|l| {
                let who = l.get("speaker").or_else(|| l.get("name"))?.as_str()?;
                let said = l.get("text").or_else(|| l.get("says"))?.as_str()?;
                Some(format!("[{}]: {}", who.trim_matches(['[', ']']), said))
            })
            .collect();
        Some(lines.join("\n"))
    });
    let text = from_json.as_deref().unwrap_or(text);
    for raw in text.lines() {
        let l = strip_line(raw);
        if l.is_empty() {
            continue;
        }
        let (who, said) = if let Some(inner) = l.strip_prefix('[') {
            match inner.split_once(']') {
                Some((w, s)) => (w.trim(), s.trim_start_matches(':').trim()),
                None => continue,
            }
        } else if let Some((w, s)) = l.split_once(':') {
            if w.len() > 60 {
                continue;
            }
            (w.trim().trim_matches('*').trim(), s.trim())
        } else {
            continue;
        };
        let speaker = if who.eq_ignore_ascii_case(&me.1) {
            me.0
        } else if who.eq_ignore_ascii_case(&partner.1) {
            partner.0
        } else if !me.1.is_empty() && who.to_lowercase().contains(&me.1.to_lowercase()) {
            me.0
        } else if !partner.1.is_empty() && who.to_lowercase().contains(&partner.1.to_lowercase()) {
            partner.0
        } else {
            continue;
        };
        let said = said.trim_matches('"').trim();
        if said.is_empty() {
            continue;
        }
        lines.push(Utterance {
            speaker,
            text: one_line(said),
            mentions: mentions(said, catalog),
        });
        if lines.len() >= max_turns.max(1) as usize {
            break;
        }
    }
    if lines.is_empty() {
        return Err(ParseError(format!(
            "expected dialogue lines of the form `[{}]: ...` and `[{}]: ...`",
            me.1, partner.1
        )));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::data::ItemRecord;

    fn catalog() -> Catalog {
        Catalog::new(
            ["Heat", "Babe"]
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

    fn line(speaker: u32, text: &str, mentions: Vec<ItemId>) -> Utterance {
        Utterance {
            speaker: UserId(speaker),
            text: text.into(),
            mentions,
        }
    }

    #[test]
    fn words_fill_the_decided_lines_by_speaker() {
        let cat = catalog();
        let spec = ChatSpec {
            me: (UserId(3), "Ann Lee".into()),
            partner: (UserId(9), "Bo".into()),
            max_turns: 10,
        };
        let decided = vec![
            line(3, "Hi Bo! I watched <Heat>.", vec![ItemId(0)]),
            line(9, "I watched <Babe>.", vec![ItemId(1)]),
            line(3, "Let's talk soon.", vec![]),
        ];
        // An extra line of Bo's before Ann's second is skipped: each decided line takes the next
        // line of its own speaker.
        let text = "[Ann Lee]: Bo, <Heat> was great!\n[Bo]: Oh? <Babe> for me.\n[Bo]: Really.\n[Ann Lee]: See you!";
        let got = Chat::with_words(&spec, &decided, text, &cat).unwrap();
        let want = vec![
            line(3, "Bo, <Heat> was great!", vec![ItemId(0)]),
            line(9, "Oh? <Babe> for me.", vec![ItemId(1)]),
            line(3, "See you!", vec![]),
        ];
        assert_eq!(got, want);
        // Ann's last line missing: refused (the offline words stay).
        let short = "[Ann Lee]: Hi!\n[Bo]: Hello.";
        let e = Chat::with_words(&spec, &decided, short, &cat).unwrap_err();
        assert!(e.0.contains("line 3 by [Ann Lee] is missing"), "{e}");
        // A line the decision lets name nothing names a movie: refused.
        let named = "[Ann Lee]: Hi!\n[Bo]: Hello.\n[Ann Lee]: Watch <Babe>!";
        let e = Chat::with_words(&spec, &decided, named, &cat).unwrap_err();
        assert!(
            e.0.starts_with("line 3 by [Ann Lee]: this text must not name"),
            "{e}"
        );
    }
}
