//! Tolerant parsing of LLM replies into typed [`Answer`]s. Never panics.
//!
//! Accepted formats, per decision kind (spec §2.2–§2.4, plus Agent4Rec's formats and JSON):
//! - top level: a tag `[RECOMMENDER]`, `[SOCIAL]` or `[NOTHING]` (brackets optional, any case), or
//!   JSON `{"action": "recommender"}`;
//! - page: `[BUY]:: 3` / `[WATCH]:: 3` (1-based index, or a title from the page), `[NEXT]`,
//!   `[SEARCH]:: title`, `[LEAVE]` / `[EXIT]`, Agent4Rec's `NUM: 1; WATCH: Babe; ...`, or JSON
//!   `{"action": "buy", "index": 3}`;
//! - feeling: `RATING: 4; FEELING: text` (Agent4Rec's `MOVIE: x; RATING: 4; FEELING: y`), `4/5`,
//!   `4 stars`, or JSON `{"rating": 4, "feeling": "..."}`; `N/A` or a title in place of the rating is
//!   a parse failure;
//! - social: `[CHAT]:: name` (a contact's name or id), `[POST]:: ...`, or JSON;
//! - chat: dialogue lines `[Name]: text` or `Name: text`;
//! - post: the text itself (a leading `[POST]::` is dropped).
//!
//! Everywhere: case-insensitive tags, full-width colons (`：`), markdown code fences, list
//! numbering (`1.`, `-`, `*`), surrounding quotes and extra lines are tolerated. A reply that does
//! not yield a valid answer gives a [`ParseError`] whose message says what was expected; it is
//! sent back to the model in the corrective retry.

use crate::behaviour::{Answer, Feeling, PageAction, PostDraft, SocialAction, Utterance};
use crate::catalog::{normalize_title, words_of, Catalog};
use crate::components::TopAction;
use crate::ids::{ItemId, UserId};

/// Why a reply did not parse. The message is model-facing (used in the corrective prompt).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// What the parser needs to know about the request (owned: no borrows of the world).
#[derive(Clone, Debug)]
pub enum ParseSpec {
    /// Top-level choice.
    Top,
    /// A page of items: their titles in display order; searching allowed.
    Page {
        /// Titles on the page, in display order.
        titles: Vec<String>,
        /// `[SEARCH]` is allowed.
        can_search: bool,
    },
    /// Feeling and a 1..=5 rating.
    Feel,
    /// Social choice among these contacts `(id, name)`.
    Social {
        /// Available contacts, ascending id.
        available: Vec<(UserId, String)>,
    },
    /// A dialogue between `me` (opens) and `partner`.
    Chat {
        /// The initiating agent.
        me: (UserId, String),
        /// The partner.
        partner: (UserId, String),
        /// Most lines kept.
        max_turns: u32,
    },
    /// A post.
    Post,
    /// One sentence (memory compression, insight): the first non-empty line, numbering stripped.
    Sentence,
    /// An importance score: the first integer, clamped to 1..=10.
    Importance,
    /// Reflection topics: the non-empty lines, numbering stripped, at most 3.
    Topics,
    /// Reflection insights: `insight text [ids]` per line.
    Insights,
}

/// A line without list numbering (`1.`, `2)`, `-`, `*`) and surrounding quotes.
fn strip_numbering(l: &str) -> &str {
    let t = l.trim();
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit());
    let t = if t.len() < l.trim().len() {
        t.trim_start_matches(['.', ')', ':'])
    } else {
        l.trim()
    };
    t.trim_start_matches(['-', '*', ' '])
        .trim()
        .trim_matches('"')
        .trim()
}

fn parse_sentence(text: &str) -> Result<String, ParseError> {
    text.lines()
        .map(strip_numbering)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ParseError("expected one sentence".into()))
}

fn parse_importance(text: &str) -> Result<u8, ParseError> {
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

fn parse_topics(text: &str) -> Result<Vec<String>, ParseError> {
    let v: Vec<String> = text
        .lines()
        .map(strip_numbering)
        .filter(|l| !l.is_empty())
        .take(3)
        .map(str::to_string)
        .collect();
    if v.is_empty() {
        Err(ParseError("expected one question".into()))
    } else {
        Ok(v)
    }
}

fn parse_insights(text: &str) -> Result<Vec<crate::behaviour::Insight>, ParseError> {
    let mut out = Vec::new();
    for l in text.lines().map(strip_numbering).filter(|l| !l.is_empty()) {
        // Only the trailing `[...]` span cites statements; numbers in the text are not ids.
        let (body, cites) = match (l.rfind('['), l.trim_end().ends_with(']')) {
            (Some(open), true) => {
                let ids = l[open + 1..l.trim_end().len() - 1]
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|x| x.parse::<u32>().ok())
                    .collect();
                (l[..open].trim(), ids)
            }
            _ => (l, Vec::new()),
        };
        if !body.is_empty() {
            out.push(crate::behaviour::Insight {
                text: body.to_string(),
                cites,
            });
        }
    }
    if out.is_empty() {
        Err(ParseError("expected `<insight> [<number>, ...]`".into()))
    } else {
        Ok(out)
    }
}

/// Normalises a reply: full-width punctuation to ASCII, control characters (except newline and
/// tab) removed, code fences removed, trimmed.
pub fn clean(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '：' => s.push(':'),
            '［' | '【' => s.push('['),
            '］' | '】' => s.push(']'),
            '；' => s.push(';'),
            '，' => s.push(','),
            '\r' => {}
            '\n' | '\t' => s.push(c),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect();
    lines.join("\n").trim().to_string()
}

/// A line without list numbering (`1.`, `2)`, `-`, `*`, `>`), markdown bold and quotes.
fn strip_line(l: &str) -> &str {
    let mut t = l.trim();
    loop {
        let before = t;
        t = t.trim_start_matches(['-', '*', '>', '#', '•']).trim_start();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && digits < 3 {
            let rest = &t[digits..];
            if let Some(r) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(')')) {
                if r.starts_with(' ') || r.is_empty() {
                    t = r.trim_start();
                }
            }
        }
        if t == before {
            break;
        }
    }
    t.trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == '*')
        .trim()
}

/// A JSON object inside the reply (the whole reply, or the span between the first `{` and the
/// last `}`), if any.
fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end <= start {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(&text[start..=end]) {
        Ok(serde_json::Value::Object(m)) => Some(
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        _ => None,
    }
}

fn json_str(m: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match m.get(*k)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Splits `TAG:: rest` / `[TAG]: rest` / `TAG - rest` into an upper-case tag and the rest.
/// Returns `None` when the line does not start with a word-like tag.
fn tag_of(line: &str) -> Option<(String, &str)> {
    let l = strip_line(line);
    let (tag, rest) = if let Some(inner) = l.strip_prefix('[') {
        let close = inner.find(']')?;
        (&inner[..close], &inner[close + 1..])
    } else {
        let end = l
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(l.len());
        (&l[..end], &l[end..])
    };
    if tag.is_empty() {
        return None;
    }
    let rest = rest
        .trim_start()
        .trim_start_matches(':')
        .trim_start_matches(['-', '='])
        .trim_start_matches('>')
        .trim();
    Some((tag.trim().to_ascii_uppercase(), rest))
}

/// The first tag among `wanted` found in the reply: first at the start of a line (in line
/// order), else anywhere in the text as `[TAG]`, else as a bare upper-case word.
fn find_tag<'a>(text: &'a str, wanted: &[&str]) -> Option<(String, &'a str)> {
    for line in text.lines() {
        if let Some((tag, rest)) = tag_of(line) {
            if wanted.contains(&tag.as_str()) {
                return Some((tag, rest));
            }
        }
    }
    let upper = text.to_ascii_uppercase();
    let mut best: Option<(usize, usize, &str)> = None;
    for w in wanted {
        for pat in [format!("[{w}]"), (*w).to_string()] {
            if let Some(p) = upper.find(&pat) {
                if best.is_none_or(|(b, _, _)| p < b) {
                    best = Some((p, pat.len(), w));
                }
                break;
            }
        }
    }
    best.map(|(p, len, w)| {
        let rest = text.get(p + len..).unwrap_or("");
        let rest = rest.lines().next().unwrap_or("");
        let rest = rest.trim_start().trim_start_matches(':').trim();
        (w.to_string(), rest)
    })
}

/// The first unsigned integer in `s` (at most 9 digits), if any.
fn first_int(s: &str) -> Option<u64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Parses a reply for the request described by `spec`.
///
/// # Errors
/// [`ParseError`] naming what was expected, for a reply with no usable answer.
pub fn parse(spec: &ParseSpec, raw: &str, catalog: &Catalog) -> Result<Answer, ParseError> {
    let text = clean(raw);
    if text.is_empty() {
        return Err(ParseError("the answer was empty".into()));
    }
    match spec {
        ParseSpec::Top => parse_top(&text).map(Answer::Top),
        ParseSpec::Page { titles, can_search } => {
            parse_page(&text, titles, *can_search).map(Answer::Page)
        }
        ParseSpec::Feel => parse_feel(&text).map(Answer::Feel),
        ParseSpec::Social { available } => parse_social(&text, available).map(Answer::Social),
        ParseSpec::Chat {
            me,
            partner,
            max_turns,
        } => parse_chat(&text, me, partner, *max_turns, catalog).map(Answer::Chat),
        ParseSpec::Post => parse_post(&text, catalog).map(Answer::Post),
        ParseSpec::Sentence => parse_sentence(&text).map(Answer::Text),
        ParseSpec::Importance => parse_importance(&text).map(Answer::Importance),
        ParseSpec::Topics => parse_topics(&text).map(Answer::Topics),
        ParseSpec::Insights => parse_insights(&text).map(Answer::Insights),
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

/// Words of a title without a trailing `(year)` and a trailing `, The` style article.
fn core_words(title: &str) -> Vec<String> {
    let mut w = words_of(title);
    if w.last()
        .is_some_and(|x| x.len() == 4 && x.chars().all(|c| c.is_ascii_digit()))
        && title.trim_end().ends_with(')')
    {
        w.pop();
    }
    if w.len() > 1 && ["the", "a", "an"].contains(&w[w.len() - 1].as_str()) && title.contains(',') {
        w.pop();
    }
    w
}

/// The 0-based page position of the title named in `name`: an exact (normalised) title first;
/// else the title whose words occur earliest in `name` (ties: the longer title).
fn title_slot(titles: &[String], name: &str) -> Option<u32> {
    let cleaned = name.trim_matches(['<', '>', '"', '\'', ' ']);
    let n = normalize_title(cleaned);
    if n.is_empty() {
        return None;
    }
    if let Some(i) = titles.iter().position(|t| normalize_title(t) == n) {
        return u32::try_from(i).ok();
    }
    let hay = words_of(cleaned);
    let mut best: Option<(usize, std::cmp::Reverse<usize>, usize)> = None;
    for (i, t) in titles.iter().enumerate() {
        let w = core_words(t);
        if w.is_empty() || w.len() > hay.len() {
            continue;
        }
        if let Some(pos) = hay.windows(w.len()).position(|win| win == w.as_slice()) {
            let cand = (pos, std::cmp::Reverse(w.len()), i);
            if best.is_none_or(|b| cand < b) {
                best = Some(cand);
            }
        }
    }
    best.and_then(|(_, _, i)| u32::try_from(i).ok())
}

fn watch_target(arg: &str, titles: &[String]) -> Result<PageAction, ParseError> {
    let n = titles.len();
    let range = || {
        ParseError(format!(
            "[BUY] needs the number of one movie on the page, 1 to {n}, or its exact title"
        ))
    };
    // A title first: titles may contain numbers ("2001: A Space Odyssey").
    if let Some(slot) = title_slot(titles, arg) {
        return Ok(PageAction::Watch(vec![slot]));
    }
    // An echoed placeholder (`<number of the movie, 1 to 5>`) is not a choice.
    if arg.trim_start().starts_with('<') {
        return Err(range());
    }
    match first_int(arg) {
        Some(i) if (1..=n as u64).contains(&i) => Ok(PageAction::Watch(vec![(i - 1) as u32])),
        _ => Err(range()),
    }
}

/// Page decision.
///
/// # Errors
/// No recognisable decision, an index off the page, an unknown title, or `[SEARCH]` when
/// searching is not allowed.
pub fn parse_page(
    text: &str,
    titles: &[String],
    can_search: bool,
) -> Result<PageAction, ParseError> {
    if let Some(m) = json_object(text) {
        if let Some(a) = json_str(&m, &["action", "choice", "decision"]) {
            let a = a.to_ascii_uppercase();
            let arg = json_str(&m, &["index", "item", "title", "query", "movie", "arg"])
                .unwrap_or_default();
            return page_action(&a, &arg, titles, can_search);
        }
    }
    // Agent4Rec: `NUM: 1; WATCH: Babe; REASON: ...`.
    for line in text.lines() {
        let l = strip_line(line);
        let up = l.to_ascii_uppercase();
        if up.starts_with("NUM:") || up.starts_with("NUM :") {
            if let Some(w) = field(l, "WATCH") {
                let w = w.trim();
                let num = field(l, "NUM").and_then(first_int);
                let none = num == Some(0)
                    || w.is_empty()
                    || w == "-"
                    || w.eq_ignore_ascii_case("N/A")
                    || w.eq_ignore_ascii_case("none")
                    || w == "0";
                if none {
                    return Ok(PageAction::Next);
                }
                return watch_target(w, titles);
            }
        }
    }
    match find_tag(
        text,
        &["BUY", "WATCH", "NEXT", "SEARCH", "LEAVE", "EXIT", "QUIT"],
    ) {
        Some((tag, rest)) => page_action(&tag, rest, titles, can_search),
        None => Err(ParseError(
            "expected one line: [BUY]:: <number>, [NEXT]::, [SEARCH]:: <movie name> or [LEAVE]::"
                .into(),
        )),
    }
}

fn page_action(
    tag: &str,
    arg: &str,
    titles: &[String],
    can_search: bool,
) -> Result<PageAction, ParseError> {
    match tag {
        t if t.contains("BUY") || t.contains("WATCH") => watch_target(arg, titles),
        t if t.contains("NEXT") => Ok(PageAction::Next),
        t if t.contains("SEARCH") => {
            if !can_search {
                return Err(ParseError(
                    "searching is not possible now: answer [BUY], [NEXT] or [LEAVE]".into(),
                ));
            }
            let q = arg
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['<', '>', '"', '\'', '.', ' '])
                .to_string();
            if q.is_empty() {
                Err(ParseError("[SEARCH] needs a movie name after `::`".into()))
            } else {
                Ok(PageAction::Search(q))
            }
        }
        t if t.contains("LEAVE") || t.contains("EXIT") || t.contains("QUIT") => {
            Ok(PageAction::Leave)
        }
        _ => Err(ParseError(
            "expected [BUY], [NEXT], [SEARCH] or [LEAVE]".into(),
        )),
    }
}

/// The value of `NAME: value` in a `;`-separated line (case-insensitive name).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let up = line.to_ascii_uppercase();
    let mut from = 0;
    while let Some(p) = up[from..].find(name) {
        let p = from + p;
        let boundary = p == 0 || !up.as_bytes()[p - 1].is_ascii_alphabetic();
        let after = up[p + name.len()..].trim_start();
        if boundary && after.starts_with(':') {
            let start = line.len() - after.len() + 1;
            let v = &line[start..];
            let v = v.split(';').next().unwrap_or("");
            return Some(v.trim().trim_matches(['[', ']']).trim());
        }
        from = p + name.len();
    }
    None
}

/// Feeling and rating.
///
/// # Errors
/// No 1..=5 rating (including `RATING: N/A` and a title given as the rating).
pub fn parse_feel(text: &str) -> Result<Feeling, ParseError> {
    let want = || {
        ParseError(
            "expected `RATING: <integer 1-5>; FEELING: <one sentence>` (the rating must be a number)"
                .into(),
        )
    };
    let rating_of = |s: &str| -> Option<u8> {
        let s = s.trim();
        let num: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v: f64 = num.parse().ok()?;
        let r = v.round();
        (1.0..=5.0).contains(&r).then_some(r as u8)
    };
    if let Some(m) = json_object(text) {
        if let Some(r) = json_str(&m, &["rating", "score", "stars"]) {
            let rating = rating_of(&r).ok_or_else(want)?;
            let text =
                json_str(&m, &["feeling", "feelings", "text", "comment"]).unwrap_or_default();
            return Ok(Feeling {
                rating,
                text: one_line(&text),
            });
        }
    }
    let mut rating = None;
    let mut feeling = None;
    let mut had_rating_field = false;
    for line in text.lines() {
        let l = strip_line(line);
        if let Some(r) = field(l, "RATING") {
            had_rating_field = true;
            if rating.is_none() {
                rating = rating_of(r);
            }
        }
        if feeling.is_none() {
            feeling = field(l, "FEELING").map(str::to_string);
        }
    }
    if rating.is_none() && !had_rating_field {
        // `4/5`, `4 out of 5`, `4 stars`, or a lone digit line.
        for line in text.lines() {
            let l = strip_line(line).to_ascii_lowercase();
            for pat in ["/5", " out of 5", " stars", " star"] {
                if let Some(p) = l.find(pat) {
                    let head = l[..p].trim_end();
                    let start = head
                        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .map_or(0, |i| i + 1);
                    rating = rating.or_else(|| rating_of(&head[start..]));
                }
            }
            if rating.is_none() && l.len() <= 3 {
                rating = rating_of(&l);
            }
        }
    }
    let rating = rating.ok_or_else(want)?;
    let text = feeling.unwrap_or_else(|| {
        text.lines()
            .map(strip_line)
            .find(|l| {
                !l.is_empty()
                    && field(l, "RATING").is_none()
                    && !l.to_ascii_lowercase().contains("/5")
                    && l.len() > 3
            })
            .unwrap_or("")
            .to_string()
    });
    Ok(Feeling {
        rating,
        text: one_line(&text),
    })
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = s.chars().take(400).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
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

/// Catalogue items named in `text`: `<Title>` spans first, then `"Title"` spans, matched by
/// normalised title; deduplicated, in order of appearance.
pub fn mentions(text: &str, catalog: &Catalog) -> Vec<ItemId> {
    let mut out: Vec<ItemId> = Vec::new();
    let mut add = |name: &str| {
        if let Some(&idx) = catalog.exact_title(name).first() {
            let id = catalog.get(idx).id;
            if !out.contains(&id) {
                out.push(id);
            }
        }
    };
    for (open, close) in [('<', '>'), ('"', '"'), ('“', '”')] {
        let mut rest = text;
        while let Some(a) = rest.find(open) {
            let after = &rest[a + open.len_utf8()..];
            let Some(b) = after.find(close) else { break };
            let name = &after[..b];
            if !name.is_empty() && name.len() < 200 {
                add(name);
            }
            rest = &after[b + close.len_utf8()..];
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn titles() -> Vec<String> {
        [
            "Babe (1995)",
            "Jungle Book, The (1967)",
            "2001: A Space Odyssey (1968)",
        ]
        .map(String::from)
        .to_vec()
    }

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

    #[test]
    fn page_variants() {
        let t = titles();
        let p = |s: &str| parse_page(&clean(s), &t, true);
        assert_eq!(p("[BUY]:: 2"), Ok(PageAction::Watch(vec![1])));
        assert_eq!(p("[buy]：：3"), Ok(PageAction::Watch(vec![2])));
        assert_eq!(p("[BUY]:: <Babe>"), Ok(PageAction::Watch(vec![0])));
        assert_eq!(
            p("[BUY]:: 2001: A Space Odyssey"),
            Ok(PageAction::Watch(vec![2]))
        );
        assert_eq!(p("[BUY]:: The Jungle Book"), Ok(PageAction::Watch(vec![1])));
        assert!(p("[BUY]:: 7").is_err());
        assert!(p("[BUY]:: <number of the movie, 1 to 3>").is_err());
        assert_eq!(p("[NEXT]:: next page please"), Ok(PageAction::Next));
        assert_eq!(p("[EXIT]; Reason: tired"), Ok(PageAction::Leave));
        assert_eq!(
            p("[SEARCH]:: <Heat>"),
            Ok(PageAction::Search("Heat".into()))
        );
        assert!(parse_page("[SEARCH]:: Heat", &t, false).is_err());
        assert_eq!(
            p("NUM: 1; WATCH: Babe; REASON: cute"),
            Ok(PageAction::Watch(vec![0]))
        );
        assert_eq!(p("NUM: 0; WATCH: N/A; REASON: none"), Ok(PageAction::Next));
        assert_eq!(
            p("{\"action\": \"buy\", \"index\": 1}"),
            Ok(PageAction::Watch(vec![0]))
        );
        assert!(p("I like turtles").is_err());
    }

    #[test]
    fn feel_variants() {
        let f = |s: &str| parse_feel(&clean(s));
        assert_eq!(
            f("MOVIE: Babe; RATING: 4; FEELING: Lovely pig."),
            Ok(Feeling {
                rating: 4,
                text: "Lovely pig.".into()
            })
        );
        assert_eq!(f("I loved it. 5/5").unwrap().rating, 5);
        assert_eq!(f("Rating: 3.6\nFeeling: fine").unwrap().rating, 4);
        assert_eq!(
            f("{\"rating\": 2, \"feeling\": \"meh\"}").unwrap().text,
            "meh"
        );
        assert!(f("MOVIE: Babe; RATING: N/A; FEELING: did not watch").is_err());
        assert!(f("MOVIE: Babe; RATING: Babe; FEELING: x").is_err());
        assert!(f("RATING: 8").is_err());
    }

    #[test]
    fn memory_answers() {
        assert_eq!(parse_importance("Rating: 8/10"), Ok(8));
        assert_eq!(
            parse_importance("75"),
            Ok(10),
            "clamped, unlike the original"
        );
        assert!(parse_importance("high").is_err());
        assert_eq!(
            parse_sentence("\n1. Ann loves quiet dramas.\n2. x").unwrap(),
            "Ann loves quiet dramas."
        );
        assert_eq!(
            parse_topics("1. What does Ann value?\n\n2. Why?")
                .unwrap()
                .len(),
            2
        );
        let ins = parse_insights("Ann prefers films from 1999 [3, 7]\nno citation here").unwrap();
        assert_eq!(ins[0].text, "Ann prefers films from 1999");
        assert_eq!(ins[0].cites, vec![3, 7], "1999 in the text is not an id");
        assert!(ins[1].cites.is_empty());
    }

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
