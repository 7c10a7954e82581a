//! Tolerant, panic-free parsing helpers for LLM replies, shared by the decision kinds' parsers
//! (each kind's own format is parsed in its file).
//!
//! Everywhere: case-insensitive tags, full-width colons (`：`), markdown code fences, list
//! numbering (`1.`, `-`, `*`), surrounding quotes and extra lines are tolerated. A reply that does
//! not yield a valid answer gives a [`ParseError`] whose message says what was expected; it is
//! sent back to the model in the corrective retry.

use crate::catalog::{normalize_title, words_of, Catalog};
use crate::ids::ItemId;

/// Why a reply did not parse. The message is model-facing (used in the corrective prompt).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A line without list numbering (`1.`, `2)`, `-`, `*`) and surrounding quotes.
pub fn strip_numbering(l: &str) -> &str {
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
pub fn strip_line(l: &str) -> &str {
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
pub fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
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

/// The first of `keys` in `m` as a string (numbers written out), if any.
pub fn json_str(m: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match m.get(*k)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Splits `TAG:: rest` / `[TAG]: rest` / `TAG - rest` into an upper-case tag and the rest.
/// Returns `None` when the line does not start with a word-like tag.
pub fn tag_of(line: &str) -> Option<(String, &str)> {
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
pub fn find_tag<'a>(text: &'a str, wanted: &[&str]) -> Option<(String, &'a str)> {
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
pub fn first_int(s: &str) -> Option<u64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Words of a title without a trailing `(year)` and a trailing `, The` style article.
pub fn core_words(title: &str) -> Vec<String> {
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
pub fn title_slot(titles: &[String], name: &str) -> Option<u32> {
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

/// The value of `NAME: value` in a `;`-separated line (case-insensitive name).
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
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

/// `s` on one line (whitespace runs folded), cut to 400 characters with an ellipsis.
pub fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = s.chars().take(400).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
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

/// One sentence: the first non-empty line, numbering stripped (memory compression, insight).
///
/// # Errors
/// An answer with no non-empty line.
pub fn sentence(text: &str) -> Result<String, ParseError> {
    // The structured form: the string field of a JSON object (`{"sentence": ".."}`).
    if text.trim_start().starts_with('{') {
        if let Some(m) = json_object(text) {
            let s = ["sentence", "insight", "summary", "text"]
                .iter()
                .find_map(|k| m.get(*k)?.as_str())
                .map(|s| one_line(s.trim()));
            if let Some(s) = s.filter(|s| !s.is_empty()) {
                return Ok(s);
            }
        }
    }
    text.lines()
        .map(strip_numbering)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ParseError("expected one sentence".into()))
}
