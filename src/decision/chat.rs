//! A conversation between two agents, written in one request (spec §2.4): the initiator's
//! view and its partner's are both in the request, as in the original's single
//! `generate_dialogue` call (one LLM call per chat instead of one per turn).
//!
//! - Prompt `chat.txt`; answer dialogue lines `[Name]: text` or `Name: text`; lines of other
//!   speakers are skipped, at most `max_turns` kept.
//! - Offline: a templated dialogue of at most `min(max_turns, offline.chat_turns)` lines about
//!   the initiator's latest watch (or a heard-of item) and the partner's.
//! - Fallback: one greeting line by the initiator.

use serde::{Deserialize, Serialize};

use super::offline::{first_name, opinion, rating_of, Offline};
use super::parse::{json_object, mentions, one_line, strip_line, ParseError};
use super::{schema, AgentView, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
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
}

fn dialogue(
    chat_turns: u32,
    cat: &Catalog,
    a: &AgentView<'_>,
    b: &AgentView<'_>,
    max_turns: u32,
) -> Vec<Utterance> {
    let turns = max_turns.min(chat_turns).max(1) as usize;
    let title = |id: ItemId| {
        cat.by_id(id)
            .map_or_else(|| "that movie".to_string(), |i| i.title.to_string())
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
    let mut lines = Vec::with_capacity(turns);
    let mut say = |speaker: UserId, text: String, mentions: Vec<ItemId>| {
        lines.push(Utterance {
            speaker,
            text,
            mentions,
        })
    };
    match (a_watched, a_heard) {
        (Some(x), _) => say(
            a.id,
            format!(
                "Hi {}! I recently watched <{}> and {}. Have you seen anything good lately?",
                first_name(&b.profile.name),
                title(x),
                opinion(rating_of(a, x).max(1))
            ),
            vec![x],
        ),
        (None, Some(h)) => say(
            a.id,
            format!(
                "Hi {}! Have you heard about <{}>? People keep talking about it.",
                first_name(&b.profile.name),
                title(h)
            ),
            vec![h],
        ),
        (None, None) => say(
            a.id,
            format!(
                "Hi {}! I am looking for a good movie to watch. Any suggestions?",
                first_name(&b.profile.name)
            ),
            vec![],
        ),
    }
    match b_watched {
        _ if turns < 2 => {}
        Some(y) => say(
            b.id,
            format!(
                "I watched <{}> and {}. You might like it too.",
                title(y),
                opinion(rating_of(b, y).max(1))
            ),
            vec![y],
        ),
        None => say(
            b.id,
            "Not much lately, but I would like to hear more about it.".to_string(),
            vec![],
        ),
    }
    if turns >= 3 {
        match b_watched {
            Some(y) => say(
                a.id,
                format!("Thanks, I will put <{}> on my list!", title(y)),
                vec![y],
            ),
            None => say(
                a.id,
                "Let's watch something together soon.".to_string(),
                vec![],
            ),
        }
    }
    if turns >= 4 {
        say(b.id, "Sounds good, talk soon!".to_string(), vec![]);
    }
    lines
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
