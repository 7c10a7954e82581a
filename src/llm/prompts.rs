//! Prompt templates (`config/prompts/*.txt`, one per decision kind) and their rendering from an
//! agent view and the catalogue, under a token budget.
//!
//! Templates are plain text with `{name}` placeholders. `_context.txt` is the shared context
//! block (profile, histories, memories, time: spec §2.1) and is inserted as `{context}`; the
//! stable part (the profile) comes first so servers with a prefix cache reuse it. `correct.txt`
//! is the corrective follow-up sent after an unparseable answer (`{problem}`).
//!
//! # Token budget
//! Tokens are estimated as `ceil(chars / 4)` (the rule of thumb of spec §9.4). When a prompt
//! exceeds `budget`, memories are dropped oldest first, then the partner's memories (chats);
//! a prompt still over budget after that is sent as is and counted in
//! [`Rendered::over_budget`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::behaviour::{AgentView, Ask, Context, Request};
use crate::catalog::Catalog;
use crate::clock::format_timestamp;
use crate::components::{MemoryRecord, ObservationKind};
use crate::ids::UserId;
use crate::llm::parse::ParseSpec;

/// The template files, by name (without `.txt`).
pub const KINDS: [&str; 13] = [
    "_context",
    "top",
    "page",
    "feel",
    "social",
    "chat",
    "post",
    "correct",
    "compress",
    "importance",
    "insight",
    "reflect_topic",
    "reflect_insights",
];

/// The templates shipped in `config/prompts/`, embedded for runs without a prompt directory.
const EMBEDDED: [(&str, &str); 13] = [
    (
        "_context",
        include_str!("../../config/prompts/_context.txt"),
    ),
    ("top", include_str!("../../config/prompts/top.txt")),
    ("page", include_str!("../../config/prompts/page.txt")),
    ("feel", include_str!("../../config/prompts/feel.txt")),
    ("social", include_str!("../../config/prompts/social.txt")),
    ("chat", include_str!("../../config/prompts/chat.txt")),
    ("post", include_str!("../../config/prompts/post.txt")),
    ("correct", include_str!("../../config/prompts/correct.txt")),
    (
        "compress",
        include_str!("../../config/prompts/compress.txt"),
    ),
    (
        "importance",
        include_str!("../../config/prompts/importance.txt"),
    ),
    ("insight", include_str!("../../config/prompts/insight.txt")),
    (
        "reflect_topic",
        include_str!("../../config/prompts/reflect_topic.txt"),
    ),
    (
        "reflect_insights",
        include_str!("../../config/prompts/reflect_insights.txt"),
    ),
];

/// Most memory records considered for a prompt (the newest ones).
pub const MAX_MEMORIES: usize = 15;

/// Word budget of the recalled memories in a prompt.
pub const MEMORY_WORDS: usize = 300;

/// Errors loading templates.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PromptError {
    /// The template file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Loaded templates plus the agent-name directory the prompts need.
#[derive(Clone, Debug)]
pub struct Prompts {
    templates: BTreeMap<String, String>,
    names: Arc<BTreeMap<UserId, Arc<str>>>,
    /// Token budget per prompt (estimated tokens).
    pub budget: usize,
}

/// A rendered prompt and what parsing its answer needs.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The prompt text (one user message).
    pub text: String,
    /// How to parse the answer.
    pub spec: ParseSpec,
    /// Memory lines dropped to fit the budget.
    pub dropped_memories: usize,
    /// Still over budget after dropping every memory.
    pub over_budget: bool,
}

/// Estimated tokens of `s`: `ceil(chars / 4)`.
pub fn approx_tokens(s: &str) -> usize {
    s.chars().count().div_ceil(4)
}

/// Replaces `{key}` placeholders; unknown placeholders stay as written.
pub fn fill(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if vars.contains_key(&after[..close]) => {
                out.push_str(&vars[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Prompts {
    /// Loads every template from `dir`, or the embedded copies when `dir` is `None`.
    ///
    /// # Errors
    /// [`PromptError`] naming a missing or unreadable file.
    pub fn load(
        dir: Option<&Path>,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        budget: usize,
    ) -> Result<Self, PromptError> {
        let mut templates = BTreeMap::new();
        for (k, embedded) in EMBEDDED {
            let text = match dir {
                None => embedded.to_string(),
                Some(d) => {
                    let p = d.join(format!("{k}.txt"));
                    std::fs::read_to_string(&p).map_err(|e| PromptError {
                        path: p.display().to_string(),
                        message: format!("cannot read prompt template: {e}"),
                    })?
                }
            };
            templates.insert(k.to_string(), text);
        }
        Ok(Self {
            templates,
            names,
            budget,
        })
    }

    fn name(&self, u: UserId) -> String {
        self.names
            .get(&u)
            .map_or_else(|| format!("user {u}"), |n| n.to_string())
    }

    fn title(catalog: &Catalog, id: crate::ids::ItemId) -> String {
        catalog
            .by_id(id)
            .map_or_else(|| format!("item {id}"), |i| i.title.to_string())
    }

    /// One memory record as a sentence.
    pub fn memory_line(&self, catalog: &Catalog, m: &MemoryRecord) -> String {
        let item = m.item.map(|i| format!("<{}>", Self::title(catalog, i)));
        let other = m.other.map(|u| self.name(u));
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
            other_kind => format!("{other_kind:?}"),
        };
        format!("- round {}: {body}", m.round)
    }

    /// What the agent remembers (retrieved long-term records and short-term entries, spec §3.8),
    /// then its latest raw observations, at most [`MAX_MEMORIES`] lines, oldest dropped first.
    fn memories(&self, catalog: &Catalog, a: &AgentView<'_>) -> Vec<String> {
        let mut out: Vec<String> = a
            .memory
            .recalled(MEMORY_WORDS)
            .into_iter()
            .map(|t| format!("- {t}"))
            .collect();
        out.extend(
            a.memory
                .observed
                .iter()
                .map(|m| self.memory_line(catalog, m)),
        );
        let extra = out.len().saturating_sub(MAX_MEMORIES);
        out.drain(..extra);
        out
    }

    fn list(items: Vec<String>) -> String {
        if items.is_empty() {
            "nothing".into()
        } else {
            items.join(", ")
        }
    }

    fn agent_vars(&self, vars: &mut BTreeMap<&str, String>, catalog: &Catalog, a: &AgentView<'_>) {
        let p = a.profile;
        vars.insert("name", p.name.to_string());
        vars.insert("age", p.age.to_string());
        vars.insert("gender", p.gender.to_string());
        vars.insert("traits", p.traits.to_string());
        vars.insert("status", p.status.to_string());
        vars.insert("interest", p.interest.to_string());
        vars.insert("features", p.features.describe());
        vars.insert(
            "watched",
            Self::list(
                a.histories
                    .watched
                    .iter()
                    .map(|(i, _)| format!("<{}>", Self::title(catalog, *i)))
                    .collect(),
            ),
        );
        vars.insert(
            "heard",
            Self::list(
                a.histories
                    .heard
                    .iter()
                    .map(|(i, _)| format!("<{}>", Self::title(catalog, *i)))
                    .collect(),
            ),
        );
    }

    fn template(&self, k: &str) -> &str {
        self.templates.get(k).map_or("", String::as_str)
    }

    /// Renders the prompt for `req`.
    pub fn render(&self, ctx: &Context<'_>, req: &Request<'_>) -> Rendered {
        let cat = ctx.catalog;
        let a = &req.agent;
        let mut vars: BTreeMap<&str, String> = BTreeMap::new();
        self.agent_vars(&mut vars, cat, a);
        vars.insert("time", format_timestamp(ctx.clock.now()));
        let mut mems = self.memories(cat, a);
        let mut partner_mems: Vec<String> = Vec::new();
        let (kind, spec) = match &req.ask {
            Ask::TopLevel => ("top", ParseSpec::Top),
            Ask::Page {
                items,
                page,
                search,
                can_search,
                ..
            } => {
                let mut lines = Vec::new();
                let mut titles = Vec::new();
                for (n, id) in items.iter().enumerate() {
                    let (title, genre, desc) = match cat.index_of(*id) {
                        Some(ix) => {
                            let it = cat.get(ix);
                            (
                                it.title.to_string(),
                                cat.first_genre(ix).to_string(),
                                it.description.to_string(),
                            )
                        }
                        None => (format!("item {id}"), String::new(), String::new()),
                    };
                    lines.push(format!("{}. <{title}>;; {desc};; Genre: {genre}", n + 1));
                    titles.push(title);
                }
                vars.insert("page", lines.join("\n"));
                vars.insert("page_size", items.len().to_string());
                vars.insert(
                    "observation",
                    match search {
                        Some(q) => format!(
                            "{} searched for <{q}>; the results, page {}:",
                            a.profile.name,
                            page + 1
                        ),
                        None => format!("{} is recommended, page {}:", a.profile.name, page + 1),
                    },
                );
                vars.insert(
                    "search_option",
                    if *can_search {
                        "3. search for one specific movie: [SEARCH]:: <movie name>\n".to_string()
                    } else {
                        String::new()
                    },
                );
                (
                    "page",
                    ParseSpec::Page {
                        titles,
                        can_search: *can_search,
                    },
                )
            }
            Ask::Feel { item } => {
                let (title, genre, desc) = match cat.index_of(*item) {
                    Some(ix) => {
                        let it = cat.get(ix);
                        (
                            it.title.to_string(),
                            cat.first_genre(ix).to_string(),
                            it.description.to_string(),
                        )
                    }
                    None => (format!("item {item}"), String::new(), String::new()),
                };
                vars.insert("item", title);
                vars.insert("genre", genre);
                vars.insert("description", desc);
                ("feel", ParseSpec::Feel)
            }
            Ask::Social { available } => {
                let av: Vec<(UserId, String)> =
                    available.iter().map(|u| (*u, self.name(*u))).collect();
                vars.insert(
                    "contacts",
                    Self::list(av.iter().map(|(_, n)| n.clone()).collect()),
                );
                ("social", ParseSpec::Social { available: av })
            }
            Ask::Chat { partner, max_turns } => {
                let mut pv: BTreeMap<&str, String> = BTreeMap::new();
                self.agent_vars(&mut pv, cat, partner);
                for (k, dst) in [
                    ("name", "partner_name"),
                    ("age", "partner_age"),
                    ("interest", "partner_interest"),
                    ("watched", "partner_watched"),
                    ("heard", "partner_heard"),
                ] {
                    vars.insert(dst, pv.remove(k).unwrap_or_default());
                }
                vars.insert("max_turns", max_turns.to_string());
                partner_mems = self.memories(cat, partner);
                (
                    "chat",
                    ParseSpec::Chat {
                        me: (a.id, a.profile.name.to_string()),
                        partner: (partner.id, partner.profile.name.to_string()),
                        max_turns: *max_turns,
                    },
                )
            }
            Ask::Post => ("post", ParseSpec::Post),
            Ask::Compress { observations } => {
                let lines: Vec<String> = observations
                    .iter()
                    .enumerate()
                    .map(|(i, o)| format!("[{}] {o}", i + 1))
                    .collect();
                vars.insert("observations", lines.join("\n"));
                ("compress", ParseSpec::Sentence)
            }
            Ask::Importance { text, .. } => {
                vars.insert("memory", (*text).to_string());
                ("importance", ParseSpec::Importance)
            }
            Ask::Insight {
                memory,
                related,
                current,
            } => {
                let mut all: Vec<&str> = vec![memory];
                all.extend(related.iter().map(|r| &**r));
                all.push(current);
                vars.insert("memories_joined", all.join("; "));
                ("insight", ParseSpec::Sentence)
            }
            Ask::ReflectTopic { recent } => {
                let lines: Vec<String> = recent.iter().map(|(i, t)| format!("[{i}] {t}")).collect();
                vars.insert("statements", lines.join("\n"));
                ("reflect_topic", ParseSpec::Topics)
            }
            Ask::ReflectInsights { topic, statements } => {
                let lines: Vec<String> = statements
                    .iter()
                    .map(|(i, t)| format!("[{i}] {t}"))
                    .collect();
                vars.insert("statements", lines.join("\n"));
                vars.insert("topic", (*topic).to_string());
                ("reflect_insights", ParseSpec::Insights)
            }
        };
        let mut dropped = 0;
        loop {
            vars.insert(
                "memories",
                if mems.is_empty() {
                    "- nothing yet".into()
                } else {
                    mems.join("\n")
                },
            );
            vars.insert(
                "partner_memories",
                if partner_mems.is_empty() {
                    "- nothing yet".into()
                } else {
                    partner_mems.join("\n")
                },
            );
            let context = fill(self.template("_context"), &vars);
            vars.insert("context", context.trim_end().to_string());
            let text = fill(self.template(kind), &vars);
            let fits = approx_tokens(&text) <= self.budget;
            if fits || (mems.is_empty() && partner_mems.is_empty()) {
                return Rendered {
                    text,
                    spec,
                    dropped_memories: dropped,
                    over_budget: !fits,
                };
            }
            if !mems.is_empty() {
                mems.remove(0);
            } else {
                partner_mems.remove(0);
            }
            dropped += 1;
        }
    }

    /// The corrective follow-up for an answer that did not parse.
    pub fn correction(&self, problem: &str) -> String {
        let mut vars = BTreeMap::new();
        vars.insert("problem", problem.to_string());
        fill(self.template("correct"), &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_and_keeps_unknown() {
        let mut v = BTreeMap::new();
        v.insert("a", "1".to_string());
        assert_eq!(fill("x{a}y{b}z{", &v), "x1y{b}z{");
        assert_eq!(approx_tokens("abcde"), 2);
    }

    #[test]
    fn embedded_templates_match_the_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts");
        let a = Prompts::load(Some(&dir), Arc::default(), 100).unwrap();
        let b = Prompts::load(None, Arc::default(), 100).unwrap();
        assert_eq!(a.templates, b.templates);
        assert_eq!(a.templates.len(), KINDS.len());
    }
}
