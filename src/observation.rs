//! Observations rendered as text, in one place: the sensory sentence that enters the memory
//! pipeline ([`sentence`], compressed and scored in the remember phase) and the line a prompt
//! shows for a raw observation of the latest round ([`memory_line`]).
//!
//! An observation is a structured event ([`MemoryRecord`]): ids, a kind and a small value, plus
//! shared text for chats and posts. It is rendered on demand from the catalogue and the agents'
//! names, so memories hold ids, not copies of titles.

use crate::catalog::Catalog;
use crate::components::{MemoryRecord, ObservationKind};

/// The sensory sentence of an observation of the agent called `name`: "Ann watched <Heat> and
/// rated it 4 out of 5." `other` is the other agent's name (chats, posts); "a friend" when
/// unknown. A chat transcript or post text is appended in quotes, cut to its first 40 words;
/// a plugin's [`ObservationKind::Note`] is its text alone.
pub fn sentence(rec: &MemoryRecord, name: &str, other: Option<&str>, catalog: &Catalog) -> String {
    let title = rec
        .item
        .and_then(|i| catalog.by_id(i))
        .map(|i| format!("<{}>", i.title));
    let other = other.unwrap_or("a friend");
    let mut s = match (rec.kind, title) {
        (ObservationKind::EnteredRecommender, _) => {
            format!("{name} entered the recommender system.")
        }
        (ObservationKind::EnteredSocial, _) => format!("{name} entered the social media."),
        (ObservationKind::DidNothing, _) => format!("{name} did nothing."),
        (ObservationKind::Shown, Some(t)) => {
            format!(
                "{name} was recommended {} movies, starting with {t}.",
                rec.value
            )
        }
        (ObservationKind::Shown, None) => format!("{name} was shown a page of movies."),
        (ObservationKind::Watched, Some(t)) if rec.value > 0 => {
            format!("{name} watched {t} and rated it {} out of 5.", rec.value)
        }
        (ObservationKind::Watched, t) => {
            format!("{name} watched {}.", t.as_deref().unwrap_or("a movie"))
        }
        (ObservationKind::Searched, Some(t)) => format!("{name} searched and found {t}."),
        (ObservationKind::Searched, None) => format!("{name} searched but found nothing."),
        (ObservationKind::Chatted, Some(t)) => format!("{name} chatted with {other} about {t}."),
        (ObservationKind::Chatted, None) => format!("{name} chatted with {other}."),
        (ObservationKind::Posted, Some(t)) => format!("{name} posted about {t}."),
        (ObservationKind::Posted, None) => format!("{name} posted on social media."),
        (ObservationKind::ReadPost, Some(t)) => format!("{name} read {other}'s post about {t}."),
        (ObservationKind::ReadPost, None) => format!("{name} read {other}'s post."),
        (ObservationKind::Note, _) => {
            return rec.text.as_deref().unwrap_or_default().to_string();
        }
    };
    if let Some(t) = &rec.text {
        let words: Vec<&str> = t.split_whitespace().take(40).collect();
        s.push_str(&format!(" \"{}\"", words.join(" ")));
    }
    s
}

/// The prompt line of a raw observation: "- round 3: watched <Heat> and rated it 4/5". `other`
/// is the other agent's name (chats, posts). Texts are cut to 300 characters, newlines shown
/// as " / ".
pub fn memory_line(m: &MemoryRecord, catalog: &Catalog, other: Option<String>) -> String {
    let title = |i| {
        catalog
            .by_id(i)
            .map_or_else(|| format!("item {i}"), |it| it.title.to_string())
    };
    let item = m.item.map(|i| format!("<{}>", title(i)));
    let text: Option<String> = m.text.as_ref().map(|t| {
        let t: String = t.chars().take(300).collect();
        t.replace('\n', " / ")
    });
    let body = match m.kind {
        ObservationKind::Watched if m.value > 0 => format!(
            "watched {} and rated it {}/5",
            item.unwrap_or_default(),
            m.value
        ),
        ObservationKind::Watched => format!("watched {}", item.unwrap_or_default()),
        ObservationKind::Shown => format!("was shown {}", item.unwrap_or_default()),
        ObservationKind::Searched => format!(
            "searched the recommender{}",
            item.map(|i| format!(" and found {i}")).unwrap_or_default()
        ),
        ObservationKind::Chatted => format!(
            "chatted with {}{}",
            other.unwrap_or_default(),
            text.map(|t| format!(": {t}")).unwrap_or_default()
        ),
        ObservationKind::Posted => format!("posted: {}", text.unwrap_or_default()),
        ObservationKind::ReadPost => format!(
            "read a post by {}: {}",
            other.unwrap_or_default(),
            text.unwrap_or_default()
        ),
        ObservationKind::EnteredRecommender => "entered the recommender system".into(),
        ObservationKind::EnteredSocial => "entered social media".into(),
        ObservationKind::Note => text.unwrap_or_default(),
        ObservationKind::DidNothing => "DidNothing".into(),
    };
    format!("- round {}: {body}", m.round)
}
