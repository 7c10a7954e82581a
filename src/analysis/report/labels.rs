//! How the report names the columns of `metrics.csv`: a title, a unit and, for shares and
//! stars, the range the value lives in (plots clamp their padded axes to it).

/// A column's display name, unit and value range.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricLabel {
    /// Title for a plot or a table row, e.g. "View ratio".
    pub title: String,
    /// Unit for an axis, e.g. "watched / shown".
    pub unit: &'static str,
    /// The range the values live in, when bounded (shares: `(0, 1)`, stars: `(1, 5)`).
    pub bounds: Option<(f64, f64)>,
}

/// The label of a `metrics.csv` column (see `analysis::COLUMNS`); an unknown column is titled
/// by its name.
pub fn metric_label(column: &str) -> MetricLabel {
    const SHARE: Option<(f64, f64)> = Some((0.0, 1.0));
    let (title, unit, bounds) = match column {
        "round" => ("Round", "round", None),
        "active_agents" => ("Active agents", "agents", None),
        "browsing_agents" => ("Agents in the recommender", "agents", None),
        "pages_shown" => ("Pages shown", "pages", None),
        "items_shown" => ("Items shown", "items", None),
        "watches" => ("Watches", "items", None),
        "view_ratio" => ("View ratio", "watched / shown", SHARE),
        "ratings" => ("Ratings", "ratings", None),
        "mean_rating" => ("Mean rating", "stars", Some((1.0, 5.0))),
        "rating_1" => ("1-star ratings", "ratings", None),
        "rating_2" => ("2-star ratings", "ratings", None),
        "rating_3" => ("3-star ratings", "ratings", None),
        "rating_4" => ("4-star ratings", "ratings", None),
        "rating_5" => ("5-star ratings", "ratings", None),
        "entropy_shown" => (
            "Genre entropy of shown items",
            "bits",
            Some((0.0, f64::MAX)),
        ),
        "entropy_watched" => (
            "Genre entropy of watched items",
            "bits",
            Some((0.0, f64::MAX)),
        ),
        "coverage" => ("Catalogue coverage", "share of items", SHARE),
        "gini_exposure" => ("Gini of exposure", "Gini", SHARE),
        "gini_watches" => ("Gini of watches", "Gini", SHARE),
        "top10_exposure_share" => ("Exposure share of the top 10 % items", "share", SHARE),
        "ild" => ("Intra-list diversity", "Jaccard distance", SHARE),
        "exit_page" => ("Exit page", "pages", None),
        "session_length" => ("Session length", "page decisions", None),
        "chats" => ("Chats", "chats", None),
        "chat_lines" => ("Chat lines", "lines", None),
        "posts" => ("Posts", "posts", None),
        "deliveries" => ("Post deliveries", "deliveries", None),
        "mentions" => ("Item mentions", "mentions", None),
        "conformity" => ("Conformity", "stars", None),
        "conformity_pairs" => ("Ratings in conformity", "ratings", None),
        "llm_calls" => ("LLM calls", "calls", None),
        "llm_prompt_tokens" => ("LLM prompt tokens", "tokens", None),
        "llm_completion_tokens" => ("LLM completion tokens", "tokens", None),
        "llm_cost_usd" => ("LLM cost", "USD", None),
        other => {
            return MetricLabel {
                title: other.to_string(),
                unit: "",
                bounds: None,
            }
        }
    };
    MetricLabel {
        title: title.to_string(),
        unit,
        bounds,
    }
}

/// True for the columns that count things per round (agents, items, ratings, messages,
/// LLM calls and tokens): tables show them without decimals.
pub fn is_count(column: &str) -> bool {
    matches!(
        column,
        "round"
            | "active_agents"
            | "browsing_agents"
            | "pages_shown"
            | "items_shown"
            | "watches"
            | "ratings"
            | "rating_1"
            | "rating_2"
            | "rating_3"
            | "rating_4"
            | "rating_5"
            | "chats"
            | "chat_lines"
            | "posts"
            | "deliveries"
            | "mentions"
            | "conformity_pairs"
            | "llm_calls"
            | "llm_prompt_tokens"
            | "llm_completion_tokens"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_a_title() {
        for c in crate::analysis::COLUMNS {
            assert_ne!(metric_label(c).title, *c, "column {c} has no label");
        }
        assert_eq!(metric_label("x_new").title, "x_new");
        assert!(is_count("watches") && !is_count("view_ratio") && !is_count("llm_cost_usd"));
    }
}
