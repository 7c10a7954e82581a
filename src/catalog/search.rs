//! Word and title search over the catalogue: title normalisation, word splitting, stop words
//! and the `search` methods of [`Catalog`].

use std::collections::BTreeMap;

use super::Catalog;

/// Lower-cases, drops punctuation and moves a trailing article ("Matrix, The") to the front, so
/// "The Matrix", "Matrix, The" and "the matrix!" compare equal. A trailing `(1999)` year is dropped.
pub fn normalize_title(t: &str) -> String {
    let mut s = t.trim().to_lowercase();
    if let Some(open) = s.rfind('(') {
        let tail = s[open + 1..].trim_end_matches(')');
        if tail.len() == 4 && tail.chars().all(|c| c.is_ascii_digit()) {
            s.truncate(open);
        }
    }
    let s = s.trim().to_string();
    let s = [
        "the", "a", "an", "les", "la", "le", "il", "el", "das", "der", "die",
    ]
    .iter()
    .find_map(|art| {
        s.strip_suffix(&format!(", {art}"))
            .map(|rest| format!("{art} {rest}"))
    })
    .unwrap_or(s);
    words_of(&s).join(" ")
}

/// Lower-case alphanumeric words of `s`.
pub fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Words left out of the word index and ignored in word search queries.
pub(super) const STOP_WORDS: [&str; 24] = [
    "a", "an", "the", "of", "and", "or", "in", "on", "to", "is", "it", "its", "for", "with", "by",
    "at", "as", "from", "that", "this", "his", "her", "their", "who",
];

impl Catalog {
    /// Items whose normalised title equals the query's (ascending index).
    pub fn exact_title(&self, query: &str) -> &[u32] {
        self.titles
            .get(&normalize_title(query))
            .map_or(&[], Vec::as_slice)
    }

    /// Every normalised title ([`normalize_title`]) with its item indices (ascending), in
    /// title order. Used by fuzzy title matching ([`crate::social::detect_mentions`]).
    pub fn normalized_titles(&self) -> impl Iterator<Item = (&str, &[u32])> {
        self.titles.iter().map(|(t, v)| (t.as_str(), v.as_slice()))
    }

    /// Search for the `search` action: up to `k` item indices, best first.
    ///
    /// With a vector index attached: exact title matches first (ascending index), then the index's
    /// nearest items by cosine similarity of the query's embedding (only those with cosine > 0).
    /// If the query cannot be embedded, or without an index, the word ranking below is used.
    pub fn search(&self, query: &str, k: usize) -> Vec<u32> {
        if let Some(ix) = &self.index {
            if let Some(hits) = ix.search(query, k) {
                let mut out: Vec<u32> = self.exact_title(query).to_vec();
                out.extend(
                    hits.iter()
                        .map(|h| h.0)
                        .filter(|i| !out.contains(i))
                        .collect::<Vec<_>>(),
                );
                out.truncate(k);
                return out;
            }
        }
        self.word_search(query, k)
    }

    /// Word search: up to `k` item indices, best first.
    ///
    /// Ranking: exact title matches (normalised, see [`normalize_title`]) first; then items by the
    /// number of distinct query words in their title (weight 3) and description (weight 1);
    /// ties by index. Stop words are ignored. Returns nothing when no word matches.
    pub fn word_search(&self, query: &str, k: usize) -> Vec<u32> {
        let mut out: Vec<u32> = self.exact_title(query).to_vec();
        let mut qw = words_of(query);
        qw.sort();
        qw.dedup();
        qw.retain(|w| !STOP_WORDS.contains(&w.as_str()));
        let mut score: BTreeMap<u32, u32> = BTreeMap::new();
        for w in &qw {
            if let Some(list) = self.words.get(w) {
                for &i in list {
                    let in_title = words_of(&self.items[i as usize].title)
                        .iter()
                        .any(|t| t == w);
                    *score.entry(i).or_default() += if in_title { 3 } else { 1 };
                }
            }
        }
        let mut ranked: Vec<(u32, u32)> = score
            .into_iter()
            .filter(|(i, _)| !out.contains(i))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(ranked.into_iter().map(|(i, _)| i));
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::GenreSet;
    use crate::ids::ItemId;
    use crate::io::data::ItemRecord;

    fn rec(id: u32, title: &str, genres: &[&str], d: &str) -> ItemRecord {
        ItemRecord {
            id,
            title: title.into(),
            genres: genres.iter().map(|s| s.to_string()).collect(),
            description: d.into(),
        }
    }

    #[test]
    fn normalises_titles() {
        assert_eq!(normalize_title("Matrix, The"), "the matrix");
        assert_eq!(normalize_title("The Matrix (1999)"), "the matrix");
        assert_eq!(normalize_title("  Run, Mira, Run! "), "run mira run");
    }

    #[test]
    fn search_ranks_exact_title_first() {
        let c = Catalog::new(vec![
            rec(2, "Space Cowboys", &["Action"], "Old pilots go to space."),
            rec(0, "Space", &["Sci-Fi"], "A quiet film."),
            rec(
                1,
                "Matrix, The",
                &["Sci-Fi", "Action"],
                "A hacker learns the world is a simulation in space.",
            ),
        ])
        .unwrap();
        assert_eq!(c.items()[0].id, ItemId(0));
        assert_eq!(c.search("The Matrix", 3), vec![1]);
        // "space": exact title (idx 0), then title word (idx 2, score 3+1), then description (idx 1).
        assert_eq!(c.search("space", 3), vec![0, 2, 1]);
        assert!(c.search("zebra", 3).is_empty());
        assert_eq!(c.genre_set(&["sci-fi"]), GenreSet(1));
        assert_eq!(c.first_genre(1), "Sci-Fi");
    }
}
