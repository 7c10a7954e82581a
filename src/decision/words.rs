//! The parts the offline model's words are built from: feelings ([`super::feel`]), dialogues
//! ([`super::chat`]) and posts ([`super::post`]).
//!
//! A line is assembled from short parts, each drawn from the request's own random stream, and
//! filled from the context: the item's genres (all of them, not only the first), phrases cut
//! from its description ([`about_phrase`]: what it is about; [`kind_phrase`]: what kind of film
//! it is), the rating, the agent's profile (feature codes, one of its traits, its occupation,
//! its age) and, in chats, the partner's name, tastes and what the partner watched.
//!
//! # Determinism
//! Every choice draws from the `ChaCha8Rng` passed in (the request's stream), in a fixed order,
//! so the same seed gives the same words. The words never change a decision: the offline
//! answers compute their decisions (rating, speakers, mentions) before, or independently of,
//! the text.
//!
//! # Mentions
//! A line that names no catalogue item carries no mention ids, and the engine then looks for
//! titles in its text ([`crate::social::detect_mentions`]): such lines are written in lower
//! case apart from their first word and first names, with no `<...>` or quotes, so that they
//! name nothing by accident.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::catalog::Catalog;
use crate::components::Profile;
use crate::domain::{FeatureSet, GenreSet};
use crate::ids::ItemId;

/// Most words kept of a description phrase ([`about_phrase`]).
pub const PHRASE_WORDS: usize = 7;

/// One of `options`, uniformly (the first when there is one option).
///
/// # Panics
/// `options` must not be empty (every call site passes a literal list).
pub fn pick<'s>(rng: &mut ChaCha8Rng, options: &[&'s str]) -> &'s str {
    options[rng.random_range(0..options.len())]
}

/// True with probability `p` ∈ [0, 1].
pub fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// What the words know about an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemWords {
    /// Title, as in the catalogue.
    pub title: String,
    /// Genre names, lower case, in catalogue order (may be empty).
    pub genres: Vec<String>,
    /// What the item is about ([`about_phrase`]), if the description says.
    pub about: Option<String>,
    /// What kind of film it is ([`kind_phrase`]), if the description says.
    pub kind: Option<String>,
}

impl ItemWords {
    /// The words of catalogue item `id`; `None` for an unknown id.
    pub fn of(cat: &Catalog, id: ItemId) -> Option<Self> {
        let it = cat.by_id(id)?;
        let names = cat.genre_names();
        Some(Self {
            title: it.title.to_string(),
            genres: it
                .genres
                .iter()
                .filter_map(|g| names.get(g))
                .map(|g| g.to_lowercase())
                .collect(),
            about: it.about.as_deref().map(str::to_string),
            kind: it.kind.as_deref().map(str::to_string),
        })
    }

    /// One genre, or two joined by "and" (each with probability ½ when there are two or more),
    /// drawn from the item's genres; `None` without genres.
    pub fn genre(&self, rng: &mut ChaCha8Rng) -> Option<String> {
        let n = self.genres.len();
        if n == 0 {
            return None;
        }
        let a = rng.random_range(0..n);
        if n >= 2 && chance(rng, 0.5) {
            let b = (a + 1 + rng.random_range(0..n - 1)) % n;
            let (x, y) = (a.min(b), a.max(b));
            return Some(format!("{} and {}", self.genres[x], self.genres[y]));
        }
        Some(self.genres[a].clone())
    }

    /// "a {genre} film" / "a {kind}" style noun phrase for the item ("film" without either).
    pub fn noun(&self, rng: &mut ChaCha8Rng) -> String {
        match (&self.kind, self.genre(rng)) {
            (Some(k), _) if chance(rng, 0.5) => with_article(k),
            (_, Some(g)) => with_article(&format!("{g} {}", pick(rng, &["film", "movie"]))),
            (Some(k), None) => with_article(k),
            (None, None) => "a film".into(),
        }
    }
}

/// `word` with "a" or "an" before it (by its first letter).
pub fn with_article(word: &str) -> String {
    let an = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if an { "an" } else { "a" })
}

/// Words that do not end a phrase cut short ("a young woman named" → "a young woman").
const DANGLING: [&str; 22] = [
    "a", "an", "the", "of", "and", "or", "in", "on", "to", "with", "named", "by", "for", "at",
    "from", "as", "his", "her", "their", "its", "into", "but",
];

/// What a description says the item is about: the words after "about", "tells the story of",
/// "follows", "revolves around", "centers on", "depicts" or "explores", up to the first comma,
/// full stop, semicolon, parenthesis, relative clause ("who", "that", "which", "where",
/// "when", "while", "as") or participle after the third word ("toys belonging to"), at most
/// [`PHRASE_WORDS`] words, without a dangling last word ("a", "of", "named", ...);
/// `None` when the description has no such phrase or it is shorter than two words.
///
/// # Examples
/// ```
/// use recagent::decision::words::about_phrase;
/// let d = "<Jumanji> is a fantasy adventure film about a magical board game that unleashes wild creatures.";
/// assert_eq!(about_phrase(d).as_deref(), Some("a magical board game"));
/// let d = "<Gone Fishin'> is a comedy film about two best friends, Joe and Gus, who fish.";
/// assert_eq!(about_phrase(d).as_deref(), Some("two best friends"));
/// assert_eq!(about_phrase("<Heat> is a 1995 crime film."), None);
/// ```
pub fn about_phrase(description: &str) -> Option<String> {
    const MARKERS: [&str; 11] = [
        " tells the story of ",
        " follows the story of ",
        " follows the lives of ",
        " follows ",
        " revolves around ",
        " centers on ",
        " centres on ",
        " about ",
        " depicts ",
        " explores ",
        " explore ",
    ];
    let (at, len) = MARKERS
        .iter()
        .filter_map(|m| description.find(m).map(|p| (p, m.len())))
        .min_by_key(|&(p, l)| (p, std::cmp::Reverse(l)))?;
    let rest = &description[at + len..];
    let end = rest
        .find([',', '.', ';', '(', ':', '!', '?'])
        .unwrap_or(rest.len());
    let mut words: Vec<&str> = Vec::new();
    let mut cut = false;
    let mut it = rest[..end].split_whitespace().peekable();
    while let Some(w) = it.next() {
        if matches!(
            w,
            "who" | "that" | "which" | "where" | "when" | "while" | "as" | "whose" | "after"
        ) {
            break;
        }
        // A participle after a noun phrase starts a clause of its own ("toys belonging to").
        if words.len() >= 3 && w.len() > 4 && w.ends_with("ing") {
            break;
        }
        words.push(w);
        if words.len() == PHRASE_WORDS {
            cut = it.peek().is_some_and(|n| n.starts_with(char::is_uppercase));
            break;
        }
    }
    // A name cut in the middle ("a man named Captain" of "Captain Howdy") goes entirely.
    while cut
        && words
            .last()
            .is_some_and(|w| w.starts_with(char::is_uppercase))
    {
        words.pop();
    }
    while words
        .last()
        .is_some_and(|w| DANGLING.contains(&w.to_lowercase().as_str()))
    {
        words.pop();
    }
    let clean = |w: &str| !w.contains(['<', '>', '"']);
    (words.len() >= 2 && words.iter().all(|w| clean(w))).then(|| words.join(" "))
}

/// What kind of film a description says the item is: the words between "is a"/"is an" and
/// "film"/"movie" ("a crime thriller movie" → "crime thriller film"), years and "American"
/// dropped, at most 4 words, always ending in "film"; `None` when it does not say.
///
/// # Examples
/// ```
/// use recagent::decision::words::kind_phrase;
/// let d = "<The Presidio> is a 1988 American crime drama film directed by Peter Hyams.";
/// assert_eq!(kind_phrase(d).as_deref(), Some("crime drama film"));
/// assert_eq!(kind_phrase("<Babe> is a movie about a pig."), None);
/// ```
pub fn kind_phrase(description: &str) -> Option<String> {
    let at = description
        .find(" is a ")
        .map(|p| p + 6)
        .or_else(|| description.find(" is an ").map(|p| p + 7))?;
    let rest = &description[at..];
    let mut words: Vec<&str> = Vec::new();
    for w in rest.split_whitespace() {
        let bare = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-');
        if bare == "film" || bare == "movie" || bare == "films" || bare == "movies" {
            let keep: Vec<&str> = words
                .iter()
                .copied()
                .filter(|w| !w.chars().all(|c| c.is_ascii_digit()) && *w != "American")
                .collect();
            let n = keep.len();
            if n == 0 || n > 3 || keep.iter().any(|w| w.contains(['<', '>', '"', ',', '.'])) {
                return None;
            }
            return Some(format!("{} film", keep.join(" ").to_lowercase()));
        }
        words.push(w);
        if words.len() > 5 {
            return None;
        }
    }
    None
}

/// One of the profile's traits (its comma list), trimmed and lower case; `None` when empty.
pub fn a_trait(p: &Profile, rng: &mut ChaCha8Rng) -> Option<String> {
    let traits: Vec<&str> = p
        .traits
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_alphabetic() || c == '-'))
        .collect();
    (!traits.is_empty()).then(|| traits[rng.random_range(0..traits.len())].to_lowercase())
}

/// The profile's occupation (`status`), trimmed and lower case, when it is a short phrase of
/// letters (at most 3 words); else `None`.
pub fn occupation(p: &Profile) -> Option<String> {
    let s = p.status.trim();
    let ok = !s.is_empty()
        && s.split_whitespace().count() <= 3
        && s.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-');
    ok.then(|| s.to_lowercase())
}

/// One of the genres in `liked` (lower case), drawn from `rng`; `None` when it is empty.
pub fn liked_genre(cat: &Catalog, liked: GenreSet, rng: &mut ChaCha8Rng) -> Option<String> {
    let gs: Vec<usize> = liked.iter().collect();
    if gs.is_empty() {
        return None;
    }
    let g = gs[rng.random_range(0..gs.len())];
    cat.genre_names().get(g).map(|n| n.to_lowercase())
}

/// A short first-person aside from the profile's feature codes, occupation, one trait or
/// age, about an item rated `rating` (1..=5; 0 = not rated) with genre phrase `genre`; one of
/// the options that apply, or `None` (with probability ½, and always when none applies).
pub fn profile_aside(
    p: &Profile,
    rating: u8,
    genre: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let good = rating >= 4;
    let bad = (1..=2).contains(&rating);
    let f = p.features;
    let mut options: Vec<String> = Vec::new();
    if f.has(FeatureSet::WATCHER) {
        options.push(if good {
            "I will be watching more like it".into()
        } else {
            "on to the next one on my list".into()
        });
    }
    if f.has(FeatureSet::EXPLORER) {
        options.push(if bad {
            "not every experiment pays off".into()
        } else {
            "glad I tried something different".into()
        });
    }
    if f.has(FeatureSet::CHATTER) {
        options.push(if bad {
            "I will warn my friends".into()
        } else {
            "I have to tell my friends about it".into()
        });
    }
    if f.has(FeatureSet::POSTER) {
        options.push(if bad {
            "this deserves a warning post".into()
        } else {
            "this one is worth a post".into()
        });
    }
    if let Some(job) = occupation(p) {
        let what = if good {
            pick(
                rng,
                &[
                    "could relate to a lot of it",
                    "noticed details others might miss",
                ],
            )
        } else if bad {
            pick(rng, &["found it hard to believe", "saw through it quickly"])
        } else {
            pick(rng, &["had a few quibbles", "recognised some of it"])
        };
        options.push(format!("as {} I {what}", with_article(&job)));
    }
    if let Some(t) = a_trait(p, rng) {
        let what = if good {
            "loved it"
        } else if bad {
            "wanted much more from it"
        } else {
            "was only half convinced"
        };
        options.push(format!("the {t} side of me {what}"));
    }
    if let (Some(g), true) = (genre, p.age >= 30) {
        let verdict = if good {
            "this one stands out"
        } else if bad {
            "this is one of the weaker ones"
        } else {
            "this one blends in"
        };
        options.push(format!(
            "at {} I have seen plenty of {g} films, and {verdict}",
            p.age
        ));
    }
    if options.is_empty() || !chance(rng, 0.5) {
        return None;
    }
    let i = rng.random_range(0..options.len());
    Some(options.swap_remove(i))
}

/// The mention ids a line keeps when its words are replaced by `text` (hybrid backend): the
/// items the decided line names as the engine resolves them
/// ([`crate::social::resolve_mentions`] of `decided` and `decided_text`), so what listeners
/// hear is the decision's, not the words'.
///
/// # Errors
/// When the decided line names no item but `text` does ([`crate::social::detect_mentions`]):
/// the engine would then take the words' items, a decision the offline model did not make.
pub fn kept_mentions(
    cat: &Catalog,
    decided: &[ItemId],
    decided_text: &str,
    text: &str,
) -> Result<Vec<ItemId>, super::ParseError> {
    let kept = crate::social::resolve_mentions(cat, decided, decided_text);
    if kept.is_empty() {
        let named = crate::social::detect_mentions(cat, text);
        if !named.is_empty() {
            let titles: Vec<String> = named
                .iter()
                .filter_map(|i| cat.by_id(*i))
                .map(|i| format!("<{}>", i.title))
                .collect();
            return Err(super::ParseError(format!(
                "this text must not name any movie, but it names {}",
                titles.join(", ")
            )));
        }
    }
    Ok(kept)
}

/// `s` with its first character in upper case.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn description_phrases_of_real_catalogue_sentences() {
        // Sentences of RecAgent's item.csv (ids 0, 2, 1100-ish), phrases read off by hand.
        let toy = "Toy Story is a computer-animated comedy film that tells the story of a group of toys belonging to a young boy named Andy.";
        // The phrase after "tells the story of", cut before the participle "belonging".
        assert_eq!(about_phrase(toy).as_deref(), Some("a group of toys"));
        assert_eq!(
            kind_phrase(toy).as_deref(),
            Some("computer-animated comedy film")
        );
        let grumpy = "<Grumpier Old Men> is a comedy film about two lifelong friends, Max and John, who have been feuding for years over a woman.";
        assert_eq!(
            about_phrase(grumpy).as_deref(),
            Some("two lifelong friends")
        );
        assert_eq!(kind_phrase(grumpy).as_deref(), Some("comedy film"));
        let trial = "<Trial by Jury> is a crime thriller movie that revolves around a young woman named Valerie Alston who is a juror.";
        // A name cut at the seventh word is dropped with the "named" before it.
        let strange = "<Strangeland> is a horror film about a sadistic and twisted man named Captain Howdy who kidnaps.";
        assert_eq!(
            about_phrase(strange).as_deref(),
            Some("a sadistic and twisted man")
        );
        // Six words, then "who" ends the phrase.
        assert_eq!(
            about_phrase(trial).as_deref(),
            Some("a young woman named Valerie Alston")
        );
        assert_eq!(kind_phrase(trial).as_deref(), Some("crime thriller film"));
        // No phrase: a year and a director only.
        let heat = "<One False Move> is a crime thriller movie released in 1991.";
        assert_eq!(about_phrase(heat), None);
        assert_eq!(about_phrase(""), None);
        assert_eq!(kind_phrase(""), None);
        // Too long between "is a" and "film": not a kind.
        let long = "<X> is a very long and winding and strange film.";
        assert_eq!(kind_phrase(long), None);
    }

    #[test]
    fn articles_and_capitals() {
        assert_eq!(with_article("epic"), "an epic");
        assert_eq!(with_article("drama film"), "a drama film");
        assert_eq!(capitalise("<Heat> was fine"), "<Heat> was fine");
        assert_eq!(capitalise("on to it"), "On to it");
        assert_eq!(capitalise(""), "");
    }

    #[test]
    fn genre_phrases_use_every_genre() {
        let w = ItemWords {
            title: "X".into(),
            genres: vec!["animation".into(), "children's".into(), "comedy".into()],
            about: None,
            kind: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            seen.insert(w.genre(&mut rng).unwrap());
        }
        // 3 singles + 3 pairs, each pair in catalogue order.
        let want: std::collections::BTreeSet<String> = [
            "animation",
            "children's",
            "comedy",
            "animation and children's",
            "animation and comedy",
            "children's and comedy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(seen, want);
    }
}
