//! Feeling and rating after watching an item (spec §2.3, the BUY step).
//!
//! - Prompt `feel.txt`; answer `RATING: 4; FEELING: text` (Agent4Rec's `MOVIE: x; RATING: 4;
//!   FEELING: y`), `4/5`, `4 stars`, or JSON `{"rating": 4, "feeling": "..."}`; `N/A` or a title
//!   in place of the rating is a parse failure.
//! - Offline: `q = rating_intercept + rating_affinity·a(u,i) + rating_idiosyncrasy·ζ(u,i) +
//!   rating_noise·ε + critic_shift·Critic`, ε ~ N(0,1); stars = clamp(round(q), 1, 5); the
//!   sentence is assembled by [`feeling_text`] from the rating, the item's description and
//!   genres and the agent's profile.
//! - Fallback: 3 stars, "I have no strong feelings about it.".

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::offline::{affinity, idiosyncrasy, normal, Offline};
use super::parse::{field, json_object, json_str, one_line, strip_line, ParseError};
use super::words::{capitalise, pick, profile_aside, ItemWords};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
use crate::components::Profile;
use crate::domain::FeatureSet;
use crate::ids::ItemId;

/// The phase of feelings (code 3).
pub const FEEL: Phase = Phase::new("Feel", 3);

/// A feeling about a watched item.
pub struct Feel;

/// Feeling after watching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feeling {
    /// Stars, 1..=5.
    pub rating: u8,
    /// One first-person line.
    pub text: String,
}

impl Decision for Feel {
    const KIND: &'static str = "feel";
    const PHASE: Phase = FEEL;
    const TEMPLATE: &'static str = include_str!("../../config/prompts/feel.txt");
    const TYPICAL_COMPLETION_TOKENS: u64 = 40;
    /// The watched item.
    type Ask<'a> = ItemId;
    type Answer = Feeling;
    type Spec = ();

    fn fits(_: &Request<'_, Self>, f: &Feeling) -> bool {
        (1..=5).contains(&f.rating)
    }

    fn fallback(_: &Request<'_, Self>) -> Feeling {
        Feeling {
            rating: 3,
            text: "I have no strong feelings about it.".into(),
        }
    }

    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> Feeling {
        let (p, ctx, a, item) = (m.params, m.ctx, &req.agent, req.ask);
        let critic = a.profile.features.has(FeatureSet::CRITIC);
        let cat = ctx.catalog;
        let it = cat.by_id(item);
        let g = it.map(|i| i.genres).unwrap_or_default();
        let q = p.rating_intercept
            + p.rating_affinity * affinity(a.taste.liked, g)
            + p.rating_idiosyncrasy * idiosyncrasy(ctx.seed, a.id, item)
            + p.rating_noise * normal(&mut m.rng)
            + p.critic_shift * if critic { 1.0 } else { 0.0 };
        let rating = q.round().clamp(1.0, 5.0) as u8;
        let rating = m.calibrated().map_or(rating, |model| {
            calibrated_rating(model, a, item, ctx, &mut m.rng)
        });
        Feeling {
            rating,
            text: feeling_text(cat, item, rating, a.profile, &mut m.rng),
        }
    }

    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
        let (title, genre, desc) = vars.item_parts(req.ask);
        vars.set("item", title);
        vars.set("genre", genre);
        vars.set("description", desc);
    }

    fn parse(_: &(), text: &str, _: &Catalog) -> Result<Feeling, ParseError> {
        parse_feel(text)
    }

    /// `{"rating": 1..=5, "feeling": text}`, the prompt's `RATING` and `FEELING`.
    fn answer_schema(_: &()) -> Option<serde_json::Value> {
        Some(schema::object(&[
            ("rating", schema::integer(1, 5)),
            ("feeling", schema::text("one first-person sentence")),
        ]))
    }

    /// `feel_words.txt`: the item (with all its genres) and the decided rating; the answer is
    /// the sentence only.
    const WORDS: Option<(&'static str, &'static str)> = Some((
        "feel_words",
        include_str!("../../config/prompts/feel_words.txt"),
    ));

    fn words_prompt(req: &Request<'_, Self>, decided: &Feeling, vars: &mut PromptVars<'_>) {
        Self::prompt(req, vars);
        let genres = vars.item_genres(req.ask);
        vars.set(
            "genres",
            if genres.is_empty() {
                "none".into()
            } else {
                genres
            },
        );
        vars.set("rating", decided.rating.to_string());
    }

    /// The decided rating with the reply's sentence ([`parse_feeling_words`]).
    fn with_words(
        _: &(),
        decided: &Feeling,
        text: &str,
        _: &Catalog,
    ) -> Result<Feeling, ParseError> {
        Ok(Feeling {
            rating: decided.rating,
            text: parse_feeling_words(text)?,
        })
    }

    /// `{"feeling": text}`.
    fn words_schema(_: &(), _: &Feeling) -> Option<serde_json::Value> {
        Some(schema::object(&[(
            "feeling",
            schema::text("one first-person sentence"),
        )]))
    }
}

/// The sentence of a words reply: JSON `{"feeling": ...}` (or `text`, `comment`), a
/// `FEELING:` field, else the first line that is not a `RATING:` line; quotes around it
/// dropped.
///
/// # Errors
/// No sentence.
pub fn parse_feeling_words(text: &str) -> Result<String, ParseError> {
    let found = if let Some(m) = json_object(text) {
        json_str(&m, &["feeling", "feelings", "text", "comment"])
    } else {
        text.lines()
            .find_map(|l| field(strip_line(l), "FEELING").map(str::to_string))
    };
    let line = found.unwrap_or_else(|| {
        text.lines()
            .map(strip_line)
            .find(|l| !l.is_empty() && field(l, "RATING").is_none())
            .unwrap_or("")
            .to_string()
    });
    let line = one_line(line.trim().trim_matches('"').trim());
    if line.is_empty() {
        return Err(ParseError(
            "expected one line: `FEELING: <one first-person sentence>`".into(),
        ));
    }
    Ok(line)
}

/// The offline feeling: one first-person line about `item` for a `rating` of 1..=5, built from
/// parts drawn from `rng` ([`super::words`]): an opening by rating (six per star count) naming
/// the item, a reason drawn from its description ([`super::words::about_phrase`]), its kind
/// ([`super::words::kind_phrase`]) or one or two of its genres, and an aside from the profile
/// ([`super::words::profile_aside`]: feature codes, occupation, a trait, age). A Critic rating 3 or
/// less always adds a word about the recommender.
pub fn feeling_text(
    cat: &Catalog,
    item: ItemId,
    rating: u8,
    profile: &Profile,
    rng: &mut ChaCha8Rng,
) -> String {
    let w = ItemWords::of(cat, item).unwrap_or_else(|| ItemWords {
        title: "it".into(),
        genres: Vec::new(),
        about: None,
        kind: None,
    });
    let t = format!("<{}>", w.title);
    let opener = match rating {
        5 => pick(
            rng,
            &[
                "I loved {t}",
                "{t} blew me away",
                "{t} was a real treat",
                "I am still thinking about {t}",
                "{t} is exactly why I watch movies",
                "what a pleasure {t} was",
            ],
        ),
        4 => pick(
            rng,
            &[
                "I really enjoyed {t}",
                "{t} was a good watch",
                "I had a good time with {t}",
                "{t} was better than I expected",
                "{t} kept me interested all the way",
                "I liked {t} a lot",
            ],
        ),
        3 => pick(
            rng,
            &[
                "{t} was fine",
                "{t} was okay, nothing more",
                "I have mixed feelings about {t}",
                "{t} had its moments",
                "I found {t} decent enough",
                "{t} was watchable",
            ],
        ),
        2 => pick(
            rng,
            &[
                "I was disappointed by {t}",
                "{t} did not really work for me",
                "{t} was a letdown",
                "I struggled to stay interested in {t}",
                "{t} never quite clicked for me",
                "I expected more from {t}",
            ],
        ),
        _ => pick(
            rng,
            &[
                "I did not enjoy {t} at all",
                "{t} was a waste of my evening",
                "I almost stopped watching {t}",
                "{t} was painful to sit through",
                "I really disliked {t}",
                "{t} was not for me, not at all",
            ],
        ),
    }
    .replace("{t}", &t);
    let genre = w.genre(rng);
    // Reasons: about the story when the description says what it is about, else about the
    // kind of film or its genres.
    let about: &[&str] = match rating {
        4..=5 => &[
            "the story of {about} really drew me in",
            "I did not expect to care so much about {about}",
            "{about} made for a gripping story",
            "the part about {about} was the best",
        ],
        3 => &[
            "the idea of {about} was better than the execution",
            "{about} held my attention only part of the time",
            "the part about {about} was the most interesting",
        ],
        _ => &[
            "the story about {about} never came together",
            "I could not bring myself to care about {about}",
            "{about} should have been more interesting than this",
        ],
    };
    let kind: &[&str] = match rating {
        4..=5 => &[
            "it is {noun} done right",
            "it works beautifully as {noun}",
            "{noun} with real heart",
            "as {noun} it has everything I want",
        ],
        3 => &[
            "as {noun} it is solid but forgettable",
            "{noun} like many others",
            "a middling entry for {noun}",
        ],
        _ => &[
            "as {noun} it felt flat",
            "{noun} without any spark",
            "it is {noun} that forgets to be interesting",
        ],
    };
    let reason = match (&w.about, rng.random_range(0..3)) {
        (Some(ab), 0 | 1) => pick(rng, about).replace("{about}", ab),
        _ => pick(rng, kind).replace("{noun}", &w.noun(rng)),
    };
    let sep = pick(rng, &["; ", ": ", ", and ", " - "]);
    let sep = if rating <= 2 && sep == ", and " {
        "; "
    } else {
        sep
    };
    let mut s = capitalise(&format!("{opener}{sep}{reason}."));
    let critic = profile.features.has(FeatureSet::CRITIC);
    if critic && rating <= 3 {
        let _ = write!(
            s,
            " {}",
            pick(
                rng,
                &[
                    "The recommender should do better.",
                    "I expected a better pick from the recommender.",
                    "My standards are high, and this did not meet them.",
                ]
            )
        );
    } else if let Some(aside) = profile_aside(profile, rating, genre.as_deref(), rng) {
        let _ = write!(s, " {}.", capitalise(&aside));
    }
    s
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
                    // The byte after the last other character (which may be multi-byte).
                    let start = head
                        .char_indices()
                        .rfind(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
                        .map_or(0, |(i, c)| i + c.len_utf8());
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

/// The calibrated model's rating of `item` ([`crate::calibration`], "Rating").
fn calibrated_rating(
    model: &crate::calibration::CalibratedModel,
    a: &crate::decision::AgentView<'_>,
    item: crate::ids::ItemId,
    ctx: &crate::decision::Context<'_>,
    rng: &mut ChaCha8Rng,
) -> u8 {
    let (r, cat) = (&model.rating, ctx.catalog);
    let (mean, sd) = model.user_rating(a, ctx.seed);
    let dev = cat.index_of(item).map_or(0.0, |ix| {
        r.w_bias * f64::from(r.item_bias[ix as usize])
            + r.w_pref * model.relative_preference(a, cat, ix)
            + r.intercept
    });
    let noise = if r.noise > 0.0 {
        r.noise * sd * normal(rng)
    } else {
        0.0
    };
    (mean + r.spread * dev + noise).round().clamp(1.0, 5.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::parse::clean;

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
    fn words_keep_the_rating() {
        let decided = Feeling {
            rating: 2,
            text: "offline".into(),
        };
        let cat = Catalog::new(vec![]).unwrap();
        let w = |s: &str| Feel::with_words(&(), &decided, &clean(s), &cat);
        let want = |t: &str| {
            Ok(Feeling {
                rating: 2,
                text: t.into(),
            })
        };
        assert_eq!(w("FEELING: Too slow for me."), want("Too slow for me."));
        // A rating in the reply is not a decision: the decided 2 stays.
        assert_eq!(w("RATING: 5; FEELING: Loved it."), want("Loved it."));
        assert_eq!(w("RATING: 5\n\"It dragged.\""), want("It dragged."));
        assert_eq!(w("{\"feeling\": \"Meh.\"}"), want("Meh."));
        assert!(w("FEELING:").is_err());
    }

    #[test]
    fn offline_feelings_name_the_item_and_critics_blame_the_recommender() {
        use crate::io::data::ItemRecord;
        use rand::SeedableRng;
        let cat = Catalog::new(vec![ItemRecord {
            id: 7,
            title: "Jumanji".into(),
            genres: vec!["Adventure".into(), "Fantasy".into()],
            description: "<Jumanji> is a fantasy adventure film about a magical board game that unleashes creatures.".into(),
        }])
        .unwrap();
        let mut profile = Profile {
            name: "Ann Lee".into(),
            gender: "female".into(),
            age: 41,
            traits: "curious, patient".into(),
            status: "teacher".into(),
            interest: "".into(),
            features: FeatureSet(FeatureSet::CRITIC),
            observations: "".into(),
        };
        let mut texts = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let t = feeling_text(&cat, ItemId(7), 2, &profile, &mut rng);
            assert!(t.contains("<Jumanji>"), "{t}");
            let blames = [
                "The recommender should do better.",
                "I expected a better pick from the recommender.",
                "My standards are high, and this did not meet them.",
            ];
            assert!(blames.iter().any(|b| t.ends_with(b)), "{t}");
            // Same stream, same words.
            let mut again = ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(feeling_text(&cat, ItemId(7), 2, &profile, &mut again), t);
            texts.insert(t);
        }
        // 6 openings x (3 story reasons + 3 kind reasons x nouns) x 3 blames: many distinct.
        assert!(texts.len() > 100, "{}", texts.len());
        // The description's phrase and both genres appear over the draws.
        let all: String = texts.iter().cloned().collect();
        assert!(all.contains("a magical board game"));
        assert!(all.contains("adventure and fantasy"));
        // Not a Critic: a rating of 5 never blames the recommender.
        profile.features = FeatureSet(0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = feeling_text(&cat, ItemId(7), 5, &profile, &mut rng);
        assert!(!t.contains("recommender"), "{t}");
    }

    /// Found by the fuzz test (`tests/it/fuzz.rs`): a multi-byte character right before `/5`
    /// was cut in the middle (a panic). Now: nothing before `/5` is a number, so no rating; and
    /// `é4/5` reads the digit after the `é` (2 bytes).
    #[test]
    fn multibyte_character_before_out_of_five() {
        assert!(parse_feel("é/5").is_err());
        assert_eq!(parse_feel("é4/5").unwrap().rating, 4);
        assert_eq!(parse_feel("très bien：3 out of 5").unwrap().rating, 3);
    }
}
