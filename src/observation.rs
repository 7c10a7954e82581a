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
    use std::fmt::Write;
    use ObservationKind as K;
    if rec.kind == K::Note {
        return rec.text.as_deref().unwrap_or_default().to_string();
    }
    // Written into one string: a million agents' observations are some ten million sentences
    // a round, and the pieces formatted apart were a fifth of the memory phase.
    let title = rec.item.and_then(|i| catalog.by_id(i)).map(|i| &*i.title);
    let other = other.unwrap_or("a friend");
    let quoted = rec.text.as_ref().map_or(0, |t| t.len().min(400) + 3);
    let mut s = String::with_capacity(name.len() + title.map_or(0, str::len) + 64 + quoted);
    let _ = match (rec.kind, title) {
        (K::EnteredRecommender, _) => write!(s, "{name} entered the recommender system."),
        (K::EnteredSocial, _) => write!(s, "{name} entered the social media."),
        (K::DidNothing, _) => write!(s, "{name} did nothing."),
        (K::Shown, Some(t)) => write!(
            s,
            "{name} was recommended {} movies, starting with <{t}>.",
            rec.value
        ),
        (K::Shown, None) => write!(s, "{name} was shown a page of movies."),
        (K::Watched, Some(t)) if rec.value > 0 => {
            write!(
                s,
                "{name} watched <{t}> and rated it {} out of 5.",
                rec.value
            )
        }
        (K::Watched, Some(t)) => write!(s, "{name} watched <{t}>."),
        (K::Watched, None) => write!(s, "{name} watched a movie."),
        (K::Searched, Some(t)) => write!(s, "{name} searched and found <{t}>."),
        (K::Searched, None) => write!(s, "{name} searched but found nothing."),
        (K::Chatted, Some(t)) => write!(s, "{name} chatted with {other} about <{t}>."),
        (K::Chatted, None) => write!(s, "{name} chatted with {other}."),
        (K::Posted, Some(t)) => write!(s, "{name} posted about <{t}>."),
        (K::Posted, None) => write!(s, "{name} posted on social media."),
        (K::ReadPost, Some(t)) => write!(s, "{name} read {other}'s post about <{t}>."),
        (K::ReadPost, None) => write!(s, "{name} read {other}'s post."),
        (K::Note, _) => Ok(()),
    };
    if let Some(t) = &rec.text {
        s.push_str(" \"");
        for (k, w) in t.split_whitespace().take(40).enumerate() {
            if k > 0 {
                s.push(' ');
            }
            s.push_str(w);
        }
        s.push('"');
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ItemId, UserId};
    use crate::testing::drama_catalog;
    use std::sync::Arc;

    fn rec(
        kind: ObservationKind,
        item: Option<u32>,
        value: u8,
        text: Option<&str>,
    ) -> MemoryRecord {
        MemoryRecord {
            round: 1,
            item: item.map(ItemId),
            other: Some(UserId(2)),
            kind,
            value,
            text: text.map(Arc::from),
        }
    }

    /// Every kind's sentence, with and without its item, the quoted text cut to 40 words, and
    /// a note's text alone.
    #[test]
    fn sentences_of_every_kind() {
        use ObservationKind as K;
        let cat = drama_catalog(3);
        let t = format!("<{}>", cat.get(0).title);
        let id = Some(cat.get(0).id.0);
        let long: String = (1..=45).map(|i| format!("w{i} ")).collect();
        let cut: Vec<String> = (1..=40).map(|i| format!("w{i}")).collect();
        let cases: Vec<(MemoryRecord, String)> = vec![
            (
                rec(K::EnteredRecommender, None, 0, None),
                "Ann entered the recommender system.".into(),
            ),
            (
                rec(K::EnteredSocial, id, 0, None),
                "Ann entered the social media.".into(),
            ),
            (rec(K::DidNothing, None, 0, None), "Ann did nothing.".into()),
            (
                rec(K::Shown, id, 5, None),
                format!("Ann was recommended 5 movies, starting with {t}."),
            ),
            (
                rec(K::Shown, None, 5, None),
                "Ann was shown a page of movies.".into(),
            ),
            (
                rec(K::Watched, id, 4, None),
                format!("Ann watched {t} and rated it 4 out of 5."),
            ),
            (rec(K::Watched, id, 0, None), format!("Ann watched {t}.")),
            (
                rec(K::Watched, None, 3, None),
                "Ann watched a movie.".into(),
            ),
            (
                rec(K::Watched, Some(999_999), 0, None),
                "Ann watched a movie.".into(),
            ),
            (
                rec(K::Searched, id, 0, None),
                format!("Ann searched and found {t}."),
            ),
            (
                rec(K::Searched, None, 0, None),
                "Ann searched but found nothing.".into(),
            ),
            (
                rec(K::Chatted, id, 0, Some("Ann: hi\nBob:  hello")),
                format!("Ann chatted with Bob about {t}. \"Ann: hi Bob: hello\""),
            ),
            (
                rec(K::Chatted, None, 0, None),
                "Ann chatted with Bob.".into(),
            ),
            (
                rec(K::Posted, id, 0, None),
                format!("Ann posted about {t}."),
            ),
            (
                rec(K::Posted, None, 0, Some(&long)),
                format!("Ann posted on social media. \"{}\"", cut.join(" ")),
            ),
            (
                rec(K::ReadPost, id, 0, Some("")),
                format!("Ann read Bob's post about {t}. \"\""),
            ),
            (
                rec(K::ReadPost, None, 0, None),
                "Ann read Bob's post.".into(),
            ),
            (
                rec(K::Note, id, 0, Some("a plugin's note")),
                "a plugin's note".into(),
            ),
            (rec(K::Note, None, 0, None), String::new()),
        ];
        for (r, want) in cases {
            assert_eq!(sentence(&r, "Ann", Some("Bob"), &cat), want, "{:?}", r.kind);
        }
        let anon = rec(K::ReadPost, None, 0, None);
        assert_eq!(
            sentence(&anon, "Ann", None, &cat),
            "Ann read a friend's post."
        );
    }
}
