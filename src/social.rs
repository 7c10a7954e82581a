//! Social logic without ECS (pure functions, unit-testable on their own): mention detection in
//! free text, per-round random strangers, the decaying "heard of" signal, chat durations and
//! transcripts. The chat, broadcast and activate systems call these.

use std::collections::BTreeSet;

use crate::catalog::{normalize_title, Catalog};
use crate::components::Relationships;
use crate::ids::{ItemId, UserId};
use crate::rng::{stream_rng, Stream};

/// Longest title, in words, that the free-text scan of [`detect_mentions`] tries (the longest
/// title in RecAgent's `item.csv` and MovieLens-1M has 15 normalised words; longer ones are still
/// found when quoted or wrapped in `<...>`).
pub const MAX_TITLE_WORDS: usize = 16;

/// Leading articles a quoted title may omit or add ("Matrix" for "The Matrix"), and that a
/// free-text title may carry at its end ("Matrix, The").
const ARTICLES: [&str; 3] = ["the", "a", "an"];

/// Catalogue items named in `text`, in order of first appearance, without repeats.
///
/// Two passes:
/// 1. **Marked spans**: text inside `<...>` (RecAgent's item marker), `"..."` or `“...”`. A span
///    matches an item when its normalised form equals a normalised title ([`normalize_title`]:
///    case, punctuation, a trailing `(1999)` year and a trailing article as in "Matrix, The" are
///    ignored); else with a leading article added or removed (`"<Matrix>"` → `"The Matrix"`); else
///    fuzzily: the title with the smallest Levenshtein distance between normalised forms, accepted
///    when the distance is at most `⌊len/6⌋` characters of the span's normalised length (so one
///    typo per six characters; spans under six characters must match exactly). Ties go to the
///    lowest catalogue index.
/// 2. **Unmarked text** (outside spans): runs of 2..=[`MAX_TITLE_WORDS`] words in title case
///    (every word of four or more letters capitalised or a number, the first word capitalised)
///    whose normalised form equals a title, longest run first, left to right, non-overlapping; a
///    run ending in an article is also tried with the article moved to the front ("Matrix, The").
///    Single-word titles are only found in marked spans, since common words ("Heat", "Up") would
///    otherwise be read as titles.
///
/// When several items share a normalised title, a year written right after it ("(1999)" or
/// "1999") picks the item whose title carries that year; otherwise the lowest index wins.
///
/// Cost: one map lookup per candidate run, plus one pass over the catalogue per marked span that
/// matches no title exactly. Intended for LLM text (a few hundred words per call).
pub fn detect_mentions(catalog: &Catalog, text: &str) -> Vec<ItemId> {
    let mut found: Vec<ItemId> = Vec::new();
    let mut push = |id: ItemId| {
        if !found.contains(&id) {
            found.push(id);
        }
    };
    let (spans, rest) = split_spans(text);
    for (span, year) in &spans {
        if let Some(idx) = resolve_span(catalog, span, *year) {
            push(catalog.get(idx).id);
        }
    }
    for idx in scan_free_text(catalog, &rest) {
        push(catalog.get(idx).id);
    }
    found
}

/// Marked spans (with the year that follows each, if any) and the text with spans blanked out.
fn split_spans(text: &str) -> (Vec<(String, Option<u32>)>, String) {
    let mut spans = Vec::new();
    let mut rest = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let close = match c {
            '<' => '>',
            '"' => '"',
            '\u{201c}' => '\u{201d}',
            _ => {
                rest.push(c);
                continue;
            }
        };
        let start = i + c.len_utf8();
        match text[start..].find(close) {
            Some(len) if len > 0 => {
                let end = start + len + close.len_utf8();
                spans.push((
                    text[start..start + len].to_string(),
                    year_after(&text[end..]),
                ));
                rest.push_str(" | ");
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            _ => rest.push(' '),
        }
    }
    (spans, rest)
}

/// A year written right after a title: `(1999)` or `1999`, after optional spaces.
fn year_after(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let s = s.strip_prefix('(').unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() == 4).then(|| digits.parse().ok()).flatten()
}

/// The year in a raw title's trailing `(1999)`, if any.
fn title_year(title: &str) -> Option<u32> {
    let t = title.trim_end();
    let open = t.rfind('(')?;
    year_after(&t[open..]).filter(|_| t.ends_with(')'))
}

/// Picks among items sharing a normalised title: the one with `year`, else the first.
fn pick(catalog: &Catalog, hits: &[u32], year: Option<u32>) -> Option<u32> {
    year.and_then(|y| {
        hits.iter()
            .copied()
            .find(|&i| title_year(&catalog.get(i).title) == Some(y))
    })
    .or_else(|| hits.first().copied())
}

/// Exact, article-insensitive, then fuzzy match of one marked span (see [`detect_mentions`]).
fn resolve_span(catalog: &Catalog, span: &str, year: Option<u32>) -> Option<u32> {
    let year = year.or_else(|| title_year(span));
    let norm = normalize_title(span);
    if norm.is_empty() {
        return None;
    }
    if let Some(i) = pick(catalog, catalog.exact_title(&norm), year) {
        return Some(i);
    }
    let bare = ARTICLES
        .iter()
        .find_map(|a| norm.strip_prefix(&format!("{a} ")));
    let variants: Vec<String> = match bare {
        Some(b) => vec![b.to_string()],
        None => ARTICLES.iter().map(|a| format!("{a} {norm}")).collect(),
    };
    for v in &variants {
        if let Some(i) = pick(catalog, catalog.exact_title(v), year) {
            return Some(i);
        }
    }
    let norm_chars = norm.chars().count();
    let budget = norm_chars / 6;
    if budget == 0 {
        return None;
    }
    // (distance, index) of the best title so far; ties go to the lowest index.
    let mut best: Option<(usize, u32)> = None;
    for (t, hits) in catalog.normalized_titles() {
        // Length prefilter: the distance is at least the difference in characters (a byte-length
        // difference of more than 4 per allowed edit cannot be a match either).
        if t.len().abs_diff(norm.len()) > 4 * budget
            || t.chars().count().abs_diff(norm_chars) > budget
        {
            continue;
        }
        let d = strsim::levenshtein(t, &norm);
        let Some(i) = pick(catalog, hits, year) else {
            continue;
        };
        if d <= budget && best.is_none_or(|b| (d, i) < b) {
            best = Some((d, i));
        }
    }
    best.map(|b| b.1)
}

/// True for a word that may appear in a title-case run: capitalised, a number, or short.
fn title_case_word(w: &str, first: bool) -> bool {
    let c = w.chars().next().unwrap_or(' ');
    c.is_uppercase() || c.is_ascii_digit() || (!first && w.chars().count() < 4)
}

/// Title-case runs of unmarked text that name items (see [`detect_mentions`]).
fn scan_free_text(catalog: &Catalog, text: &str) -> Vec<u32> {
    // Words with their original case; a separator (punctuation other than ',', ':', '-', '\'',
    // '&', '.') breaks runs so titles never span sentences or spans.
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once('|')) {
        if c.is_alphanumeric() || c == '\'' {
            if c != '\'' {
                word.push(c);
            }
            continue;
        }
        if !word.is_empty() {
            runs.last_mut()
                .expect("invariant: never empty")
                .push(std::mem::take(&mut word));
        }
        if !matches!(c, ' ' | ',' | ':' | '-' | '&' | '\t') {
            runs.push(Vec::new());
        }
    }
    let mut out = Vec::new();
    for ws in runs.iter().filter(|r| r.len() >= 2) {
        let mut i = 0;
        while i < ws.len() {
            let mut matched = None;
            if title_case_word(&ws[i], true) {
                let longest = MAX_TITLE_WORDS.min(ws.len() - i);
                for len in (2..=longest).rev() {
                    let run = &ws[i..i + len];
                    if !run.iter().all(|w| title_case_word(w, false)) {
                        continue;
                    }
                    let year = ws
                        .get(i + len)
                        .filter(|w| w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()))
                        .and_then(|w| w.parse().ok());
                    let lower: Vec<String> = run.iter().map(|w| w.to_lowercase()).collect();
                    let mut hit = pick(catalog, catalog.exact_title(&lower.join(" ")), year);
                    if hit.is_none() && ARTICLES.contains(&lower[len - 1].as_str()) {
                        let moved = format!("{} {}", lower[len - 1], lower[..len - 1].join(" "));
                        hit = pick(catalog, catalog.exact_title(&moved), year);
                    }
                    if let Some(h) = hit {
                        matched = Some((h, len + usize::from(year.is_some())));
                        break;
                    }
                }
            }
            match matched {
                Some((h, len)) => {
                    out.push(h);
                    i += len;
                }
                None => i += 1,
            }
        }
    }
    out
}

/// `k` random agents who are neither `user` nor one of its `contacts`, ascending id: the
/// `social_random_contacts` strangers an agent may chat with this round. All of them when fewer
/// than `k` exist. Drawn from the stream `(seed, Strangers, round, user)`, so the draw does not
/// depend on which other agents are social this round.
///
/// `roster` is every agent's id, ascending. Cost: O(k) expected draws when strangers are plentiful
/// (rejection sampling), else one pass over the roster.
pub fn random_strangers(
    seed: u64,
    round: u32,
    user: UserId,
    roster: &[UserId],
    contacts: &Relationships,
    k: usize,
) -> Vec<UserId> {
    use rand::Rng;
    let is_stranger = |u: &UserId| *u != user && !contacts.contains(*u);
    let self_in = usize::from(roster.binary_search(&user).is_ok());
    let known = contacts
        .0
        .iter()
        .filter(|c| roster.binary_search(&c.user).is_ok())
        .count();
    let pool = roster.len().saturating_sub(known + self_in);
    if k == 0 || pool == 0 {
        return Vec::new();
    }
    let mut rng = stream_rng(
        seed,
        Stream::Strangers,
        &[u64::from(round), u64::from(user.0)],
    );
    if k >= pool {
        return roster.iter().copied().filter(is_stranger).collect();
    }
    let mut chosen: BTreeSet<UserId> = BTreeSet::new();
    if pool >= 2 * k {
        // At least half the roster qualifies, so each draw succeeds with probability ≥ 1/2.
        while chosen.len() < k {
            let u = roster[rng.random_range(0..roster.len())];
            if is_stranger(&u) {
                chosen.insert(u);
            }
        }
    } else {
        // Partial Fisher–Yates over the strangers.
        let mut all: Vec<UserId> = roster.iter().copied().filter(is_stranger).collect();
        for i in 0..k {
            let j = rng.random_range(i..all.len());
            all.swap(i, j);
        }
        chosen.extend(all.into_iter().take(k));
    }
    chosen.into_iter().collect()
}

/// Strength in [0, 1] of having heard of an item in round `heard_round`, seen in round `now`:
/// `h = 0.5^((now − heard_round) / half_life_rounds)` (exponential decay with a half-life in
/// rounds; 1 in the round it was heard). Hearing an item again refreshes `heard_round` (the heard
/// history keeps the latest hearing only), so the signal never exceeds 1.
pub fn heard_signal(heard_round: u32, now: u32, half_life_rounds: f64) -> f64 {
    if half_life_rounds <= 0.0 || !half_life_rounds.is_finite() {
        return if heard_round >= now { 1.0 } else { 0.0 };
    }
    let age = f64::from(now.saturating_sub(heard_round));
    0.5f64.powf(age / half_life_rounds).clamp(0.0, 1.0)
}

/// Chat length in whole simulated minutes: `minutes` snapped to the nearest allowed duration
/// (`allowed_hours`, each > 0; ties go to the shorter). Returns `(minutes, true)` when the answer
/// was already allowed, `(snapped, false)` otherwise (the caller counts the fallback). An empty
/// list allows anything.
pub fn snap_chat_minutes(minutes: u32, allowed_hours: &[f64]) -> (u32, bool) {
    let allowed: Vec<u32> = allowed_hours
        .iter()
        .map(|h| (h * 60.0).round().max(1.0) as u32)
        .collect();
    if allowed.is_empty() || allowed.contains(&minutes) {
        return (minutes, true);
    }
    let best = allowed
        .iter()
        .copied()
        .min_by_key(|a| (a.abs_diff(minutes), *a))
        .unwrap_or(minutes);
    (best, false)
}

/// A chat transcript as RecAgent writes it into memory: one line per utterance,
/// `[<speaker name>]: <text>`, joined with newlines.
pub fn transcript<'a>(lines: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    lines
        .into_iter()
        .map(|(who, text)| format!("[{who}]: {}", text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Mentions a backend returned, restricted to catalogue ids, or (when it returned none) the
/// mentions [`detect_mentions`] finds in `text`. Backends that already know the ids they named
/// (the offline model) are trusted; LLM text is read with the detector.
pub fn resolve_mentions(catalog: &Catalog, given: &[ItemId], text: &str) -> Vec<ItemId> {
    let mut out: Vec<ItemId> = Vec::new();
    for &m in given {
        if catalog.by_id(m).is_some() && !out.contains(&m) {
            out.push(m);
        }
    }
    if given.is_empty() {
        out = detect_mentions(catalog, text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::Contact;
    use crate::io::data::ItemRecord;

    fn catalog(titles: &[&str]) -> Catalog {
        Catalog::new(
            titles
                .iter()
                .enumerate()
                .map(|(i, t)| ItemRecord {
                    id: i as u32 * 10,
                    title: (*t).into(),
                    genres: vec!["Drama".into()],
                    description: String::new(),
                })
                .collect(),
        )
        .unwrap()
    }

    fn ids(v: &[u32]) -> Vec<ItemId> {
        v.iter().copied().map(ItemId).collect()
    }

    #[test]
    fn marked_spans_with_years_articles_and_punctuation() {
        let c = catalog(&[
            "Matrix, The (1999)",
            "Run, Mira, Run!",
            "Heat (1995)",
            "Heat (1972)",
            "Star Wars: Episode IV - A New Hope (1977)",
            "Toy Story",
        ]);
        assert_eq!(detect_mentions(&c, "I loved <The Matrix>!"), ids(&[0]));
        assert_eq!(
            detect_mentions(&c, "I loved <Matrix, The (1999)>."),
            ids(&[0])
        );
        assert_eq!(detect_mentions(&c, "Have you seen \"matrix\"?"), ids(&[0]));
        assert_eq!(
            detect_mentions(&c, "<run mira run> and <RUN, MIRA, RUN!!>"),
            ids(&[10])
        );
        // Duplicate normalised titles: the year picks, else the first.
        assert_eq!(detect_mentions(&c, "<Heat> (1972) was slow"), ids(&[30]));
        assert_eq!(detect_mentions(&c, "<Heat (1972)>"), ids(&[30]));
        assert_eq!(detect_mentions(&c, "<Heat>"), ids(&[20]));
        // Fuzzy: one typo in 27 normalised characters (budget 4); "Toy Stroy" has distance 2 in
        // 9 characters (budget 1), so it is not matched.
        assert_eq!(
            detect_mentions(&c, "<Star Wars Episode IV A New Hop>"),
            ids(&[40])
        );
        assert_eq!(detect_mentions(&c, "<Toy Stroy>"), ids(&[]));
        assert_eq!(detect_mentions(&c, "<Toy Storyy>"), ids(&[50]));
        assert_eq!(detect_mentions(&c, "<Something Else Entirely>"), ids(&[]));
    }

    #[test]
    fn free_text_title_case_runs() {
        let c = catalog(&[
            "Matrix, The (1999)",
            "Heat (1995)",
            "Toy Story",
            "Game, The (1997)",
        ]);
        assert_eq!(
            detect_mentions(&c, "Yesterday I watched The Matrix, then Toy Story."),
            ids(&[0, 20])
        );
        assert_eq!(detect_mentions(&c, "Matrix, The is a classic"), ids(&[0]));
        assert_eq!(detect_mentions(&c, "The Matrix (1999) rocks"), ids(&[0]));
        // Lower-case phrases and single words are not titles in free text.
        assert_eq!(
            detect_mentions(&c, "we watched the game and felt the heat"),
            ids(&[])
        );
        assert_eq!(detect_mentions(&c, "Heat was great"), ids(&[]));
        // Order of first appearance, no repeats; spans first.
        assert_eq!(
            detect_mentions(&c, "Toy Story again? <Heat>, and Toy Story."),
            ids(&[10, 20])
        );
    }

    #[test]
    fn strangers_are_exactly_k_non_contacts() {
        let roster: Vec<UserId> = (0..50).map(UserId).collect();
        let contacts = Relationships(
            [3, 7, 9]
                .iter()
                .map(|&u| Contact {
                    user: UserId(u),
                    label: 0,
                    closeness: 0.5,
                })
                .collect(),
        );
        for k in [1, 5, 20, 45, 46, 100] {
            let s = random_strangers(1, 2, UserId(7 + 1), &roster, &contacts, k);
            assert_eq!(s.len(), k.min(46), "k = {k}");
            assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            assert!(s.iter().all(|u| *u != UserId(8) && !contacts.contains(*u)));
            assert_eq!(s, random_strangers(1, 2, UserId(8), &roster, &contacts, k));
        }
        assert!(random_strangers(1, 2, UserId(8), &roster, &contacts, 0).is_empty());
        // Another round draws another set.
        assert_ne!(
            random_strangers(1, 2, UserId(8), &roster, &contacts, 5),
            random_strangers(1, 3, UserId(8), &roster, &contacts, 5)
        );
    }

    #[test]
    fn heard_signal_decays_and_is_bounded() {
        assert_eq!(heard_signal(4, 4, 2.0), 1.0);
        assert!((heard_signal(4, 6, 2.0) - 0.5).abs() < 1e-12);
        assert!((heard_signal(4, 8, 2.0) - 0.25).abs() < 1e-12);
        assert_eq!(heard_signal(9, 4, 2.0), 1.0, "a future round counts as now");
        assert!(heard_signal(0, 1000, 2.0) < 1e-100);
    }

    #[test]
    fn chat_minutes_snap_to_allowed() {
        let allowed = [0.5, 1.0, 2.0];
        assert_eq!(snap_chat_minutes(60, &allowed), (60, true));
        assert_eq!(snap_chat_minutes(30, &allowed), (30, true));
        assert_eq!(
            snap_chat_minutes(45, &allowed),
            (30, false),
            "tie → shorter"
        );
        assert_eq!(snap_chat_minutes(100, &allowed), (120, false));
        assert_eq!(snap_chat_minutes(0, &allowed), (30, false));
        assert_eq!(snap_chat_minutes(7, &[]), (7, true));
    }

    #[test]
    fn transcript_format() {
        assert_eq!(
            transcript([("Ann", "Hi! "), ("Bo", "Hello.")]),
            "[Ann]: Hi!\n[Bo]: Hello."
        );
    }
}
