//! Feeling and rating after watching an item (spec §2.3, the BUY step).
//!
//! - Prompt `feel.txt`; answer `RATING: 4; FEELING: text` (Agent4Rec's `MOVIE: x; RATING: 4;
//!   FEELING: y`), `4/5`, `4 stars`, or JSON `{"rating": 4, "feeling": "..."}`; `N/A` or a title
//!   in place of the rating is a parse failure.
//! - Offline: `q = rating_intercept + rating_affinity·a(u,i) + rating_idiosyncrasy·ζ(u,i) +
//!   rating_noise·ε + critic_shift·Critic`, ε ~ N(0,1); stars = clamp(round(q), 1, 5); the
//!   sentence is one of two templates per star count.
//! - Fallback: 3 stars, "I have no strong feelings about it.".

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::offline::{affinity, idiosyncrasy, normal, Offline};
use super::parse::{field, json_object, json_str, one_line, strip_line, ParseError};
use super::{schema, Decision, Phase, PromptVars, Request};
use crate::catalog::Catalog;
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
        let title = it.map_or("it", |i| &i.title);
        let genre = cat
            .index_of(item)
            .map_or("", |x| cat.first_genre(x))
            .to_lowercase();
        Feeling {
            rating,
            text: feeling_text(rating, title, &genre, critic, &mut m.rng),
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
}

fn feeling_text(
    rating: u8,
    title: &str,
    genre: &str,
    critic: bool,
    rng: &mut ChaCha8Rng,
) -> String {
    let g = if genre.is_empty() {
        "movie".to_string()
    } else {
        format!("{genre} film")
    };
    let options: [String; 2] = match rating {
        5 => [
            format!("I loved <{title}>; a {g} that stayed with me long after it ended."),
            format!("<{title}> was wonderful, one of the best {g}s I have seen in a while."),
        ],
        4 => [
            format!("<{title}> was really enjoyable; I liked it as a {g}."),
            format!("I had a good time with <{title}>, a solid {g}."),
        ],
        3 => [
            format!("<{title}> was fine, a decent {g} but nothing I will remember for long."),
            format!("I found <{title}> okay; some parts worked, others dragged."),
        ],
        2 => [
            format!("I was disappointed by <{title}>; as a {g} it felt flat."),
            format!("<{title}> did not really work for me, it was slow and predictable."),
        ],
        _ => [
            format!("I did not enjoy <{title}> at all; it was a waste of my evening."),
            format!("<{title}> was a poor {g}, I almost stopped watching."),
        ],
    };
    let mut s = options[rng.random_range(0..2)].clone();
    if critic && rating <= 3 {
        let _ = write!(s, " The recommender should do better.");
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
