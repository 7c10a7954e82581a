//! The social choice of an agent on social media (spec §2.4): chat with one available partner,
//! or post to all contacts.
//!
//! - Prompt `social.txt`; answer `[CHAT]:: name` (a contact's name or id, with an optional
//!   `[TIME]:: hours` line), `[POST]:: ...`, or JSON.
//! - Offline: `U_chat = chat_bias + feature_weight·Chatter` (only with a partner available),
//!   `U_post = post_bias + feature_weight·Poster`; a chat's partner is drawn with probability ∝
//!   closeness + 0.05 (strangers have closeness 0), its length among 0.5 / 1 / 2 h with
//!   `U_h = feature_weight·Chatter·log2(h)`, so Chatters prefer long chats.
//! - Fallback: post.

use serde::{Deserialize, Serialize};

use super::chat::CHAT;
use super::offline::{softmax_choice, Offline};
use super::parse::{find_tag, json_object, json_str, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::domain::FeatureSet;
use crate::ids::UserId;

/// The social choice.
pub struct Social;

/// Social choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocialAction {
    /// Chat with this available agent for `minutes` simulated minutes (the engine snaps the
    /// length to the nearest `chat_hours` value; RecAgent's `[TIME]::` line).
    Chat {
        /// The partner, one of the ask's available agents.
        with: UserId,
        /// Chat length in simulated minutes.
        minutes: u32,
    },
    /// Post to all contacts.
    Post,
}

impl Decision for Social {
    const KIND: &'static str = "social";
    const PHASE: Phase = CHAT;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/social.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 15;
    /// Agents free to chat now, ascending id: idle contacts, plus idle random strangers when
    /// `social_random_contacts` > 0 (strangers are not in the agent's `contacts`).
    type Ask<'a> = &'a [UserId];
    type Answer = SocialAction;
    /// The available agents `(id, name)`, ascending id.
    type Spec = Vec<(UserId, String)>;

    fn fits(req: &Request<'_, Self>, s: &SocialAction) -> bool {
        match s {
            SocialAction::Chat { with, .. } => req.ask.contains(with),
            SocialAction::Post => true,
        }
    }

    fn fallback(_: &Request<'_, Self>) -> SocialAction {
        SocialAction::Post
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> SocialAction {
        let (p, a, available) = (m.params, &req.agent, req.ask);
        let f = a.profile.features;
        let fw = p.feature_weight;
        let bit = |b: u8| if f.has(b) { 1.0 } else { 0.0 };
        let u = [
            if available.is_empty() {
                f64::NEG_INFINITY
            } else {
                p.chat_bias + fw * bit(FeatureSet::CHATTER)
            },
            p.post_bias + fw * bit(FeatureSet::POSTER),
        ];
        if softmax_choice(&u, p.temperature, &mut m.rng) != 0 {
            return SocialAction::Post;
        }
        // P(partner j) ∝ closeness_j + 0.05 (a stranger, not in `contacts`, has closeness 0,
        // so it is picked rarely but can be).
        let w: Vec<f64> = available
            .iter()
            .map(|u| {
                let c = a
                    .contacts
                    .0
                    .binary_search_by_key(u, |c| c.user)
                    .map_or(0.0, |k| a.contacts.0[k].closeness);
                (f64::from(c) + 0.05).ln()
            })
            .collect();
        let with = available[softmax_choice(&w, 1.0, &mut m.rng)];
        const MINUTES: [u32; 3] = [30, 60, 120];
        let uh: Vec<f64> = MINUTES
            .iter()
            .map(|&m| fw * bit(FeatureSet::CHATTER) * (f64::from(m) / 60.0).log2())
            .collect();
        let minutes = MINUTES[softmax_choice(&uh, p.temperature, &mut m.rng)];
        SocialAction::Chat { with, minutes }
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) -> Vec<(UserId, String)> {
        let av: Vec<(UserId, String)> = req.ask.iter().map(|u| (*u, vars.name_of(*u))).collect();
        let names: Vec<String> = av.iter().map(|(_, n)| n.clone()).collect();
        vars.set(
            "contacts",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            },
        );
        av
    }

    fn parse(
        spec: &Vec<(UserId, String)>,
        text: &str,
        _: &Catalog,
    ) -> Result<SocialAction, ParseError> {
        parse_social(text, spec)
    }

    /// `{"action": "CHAT" | "POST", "name": one of the available agents' names}`; with nobody
    /// available, `{"action": "POST"}`. The prompt asks for no chat length, so none is
    /// written (the parser's default, 60 minutes, snapped to `chat_hours`).
    fn answer_schema(spec: &Vec<(UserId, String)>) -> Option<serde_json::Value> {
        if spec.is_empty() {
            return Some(schema::object(&[("action", schema::one_of(&["POST"]))]));
        }
        let names: Vec<&str> = spec.iter().map(|(_, n)| n.as_str()).collect();
        Some(schema::object(&[
            ("action", schema::one_of(&["CHAT", "POST"])),
            ("name", schema::one_of(&names)),
        ]))
    }
}

/// A contact by name (case-insensitive, first by id on duplicates) or by id.
fn contact(available: &[(UserId, String)], name: &str) -> Option<UserId> {
    let n = name
        .trim()
        .trim_matches(['<', '>', '"', '\'', '.', '[', ']', ' ']);
    let n = n.split(['(', ',', ';']).next().unwrap_or(n).trim();
    if n.is_empty() {
        return None;
    }
    if let Some((u, _)) = available.iter().find(|(_, nm)| nm.eq_ignore_ascii_case(n)) {
        return Some(*u);
    }
    if let Ok(id) = n.strip_prefix('#').unwrap_or(n).parse::<u32>() {
        if let Some((u, _)) = available.iter().find(|(u, _)| u.0 == id) {
            return Some(*u);
        }
    }
    let low = n.to_lowercase();
    available
        .iter()
        .find(|(_, nm)| !nm.is_empty() && low.contains(&nm.to_lowercase()))
        .map(|(u, _)| *u)
}

/// Chat length from a `[TIME]:: <hours>` value (0.5, 1, 2 in RecAgent): minutes, 60 when absent or
/// unreadable (the chat system snaps it to `chat_hours`).
fn chat_minutes(hours: &str) -> u32 {
    let num: String = hours
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    match num.parse::<f64>() {
        Ok(h) if h > 0.0 && h <= 24.0 => (h * 60.0).round() as u32,
        _ => 60,
    }
}

/// Social choice.
///
/// # Errors
/// No tag, or a chat partner who is not among the available contacts.
pub fn parse_social(
    text: &str,
    available: &[(UserId, String)],
) -> Result<SocialAction, ParseError> {
    let names = || {
        available
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(m) = json_object(text) {
        if let Some(a) = json_str(&m, &["action", "choice"]) {
            let a = a.to_ascii_uppercase();
            if a.contains("POST") {
                return Ok(SocialAction::Post);
            }
            if a.contains("CHAT") {
                let who = json_str(&m, &["name", "with", "target", "contact"]).unwrap_or_default();
                let hours = json_str(&m, &["time", "hours", "duration"]).unwrap_or_default();
                return contact(available, &who)
                    .map(|with| SocialAction::Chat {
                        with,
                        minutes: chat_minutes(&hours),
                    })
                    .ok_or_else(|| ParseError(format!("[CHAT] must name one of: {}", names())));
            }
        }
    }
    match find_tag(text, &["CHAT", "POST"]) {
        Some((t, rest)) if t == "CHAT" => contact(available, rest.lines().next().unwrap_or(rest))
            .map(|with| SocialAction::Chat {
                with,
                minutes: chat_minutes(find_tag(text, &["TIME"]).map_or("", |(_, r)| r)),
            })
            .ok_or_else(|| ParseError(format!("[CHAT]:: must name one of: {}", names()))),
        Some(_) => Ok(SocialAction::Post),
        None => Err(ParseError(
            "expected `[CHAT]:: <name>` or `[POST]:: <content>` on the first line".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::parse::clean;

    #[test]
    fn social_and_post_and_control_chars() {
        let av = vec![
            (UserId(3), "Bob".to_string()),
            (UserId(9), "Eve Li".to_string()),
        ];
        assert_eq!(
            parse_social("[CHAT]:: Eve Li\n[TIME]:: 0.5", &av),
            Ok(SocialAction::Chat {
                with: UserId(9),
                minutes: 30
            })
        );
        assert_eq!(
            parse_social("[CHAT]:: \"bob\"", &av),
            Ok(SocialAction::Chat {
                with: UserId(3),
                minutes: 60
            })
        );
        assert_eq!(
            parse_social("[CHAT]:: 3\n[TIME]:: 2 hours", &av),
            Ok(SocialAction::Chat {
                with: UserId(3),
                minutes: 120
            })
        );
        assert!(parse_social("[CHAT]:: Zed", &av).is_err());
        assert_eq!(
            parse_social("[POST]:: hi all\n[TIME]:: 1", &av),
            Ok(SocialAction::Post)
        );
        assert_eq!(clean("a\u{0}b\u{7}c\r\n"), "abc");
    }
}
