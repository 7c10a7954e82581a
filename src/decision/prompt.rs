//! Prompt templates (one per decision kind, `config/prompts/<kind>.txt`) and their rendering
//! from an agent view and the catalogue, under a token budget.
//!
//! Templates are plain text with `{name}` placeholders. `_context.txt` is the shared context
//! block (profile, histories, memories, time: spec §2.1) and is inserted as `{context}`; the
//! stable part (the profile) comes first so servers with a prefix cache reuse it. `correct.txt`
//! is the corrective follow-up sent after an unparseable answer (`{problem}`). A kind sets its
//! own variables in [`super::Decision::prompt`] through [`PromptVars`].
//!
//! # Token budget
//! Tokens are estimated as `ceil(chars / 4)` (the rule of thumb of spec §9.4). When a prompt
//! exceeds `budget`, memories are dropped oldest first, then the partner's memories (chats);
//! a prompt still over budget after that is sent as is and counted in
//! [`Rendered::over_budget`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::{AgentView, Context, Decision, Request};
use crate::catalog::Catalog;
use crate::clock::format_timestamp;
use crate::ids::{ItemId, UserId};

/// The engine's own templates (not of a decision kind), embedded for runs without a prompt
/// directory: the shared context block and the corrective follow-up.
const CORE: [(&str, &str); 2] = [
    (
        "_context",
        include_str!("../../config/prompts/_context.txt"),
    ),
    ("correct", include_str!("../../config/prompts/correct.txt")),
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

/// A rendered prompt.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The prompt text (one user message).
    pub text: String,
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

/// The variables of one prompt, set by the engine (the agent's context) and by the kind.
pub struct PromptVars<'a> {
    vars: BTreeMap<&'static str, String>,
    prompts: &'a Prompts,
    ctx: &'a Context<'a>,
    partner_memories: Vec<String>,
}

impl<'a> PromptVars<'a> {
    /// Sets `{key}`.
    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.vars.insert(key, value.into());
    }
    /// The batch context (catalogue, clock, seed).
    pub fn context(&self) -> &Context<'a> {
        self.ctx
    }
    /// The catalogue.
    pub fn catalog(&self) -> &'a Catalog {
        self.ctx.catalog
    }
    /// An agent's name (`user <id>` when unknown).
    pub fn name_of(&self, u: UserId) -> String {
        self.prompts.name(u)
    }
    /// An item's title (`item <id>` when unknown).
    pub fn title_of(&self, id: ItemId) -> String {
        title(self.ctx.catalog, id)
    }
    /// `(title, first genre, description)` of an item (`item <id>` and empty strings when
    /// unknown).
    pub fn item_parts(&self, id: ItemId) -> (String, String, String) {
        let cat = self.ctx.catalog;
        match cat.index_of(id) {
            Some(ix) => {
                let it = cat.get(ix);
                (
                    it.title.to_string(),
                    cat.first_genre(ix).to_string(),
                    it.description.to_string(),
                )
            }
            None => (format!("item {id}"), String::new(), String::new()),
        }
    }
    /// Every genre of an item, joined by ", " (empty when unknown or genre-less).
    pub fn item_genres(&self, id: ItemId) -> String {
        let cat = self.ctx.catalog;
        cat.by_id(id).map_or_else(String::new, |it| {
            let names = cat.genre_names();
            let gs: Vec<&str> = it
                .genres
                .iter()
                .filter_map(|g| names.get(g).map(String::as_str))
                .collect();
            gs.join(", ")
        })
    }
    /// A second agent in the prompt (a chat partner): `{partner_name}`, `{partner_age}`,
    /// `{partner_interest}`, `{partner_watched}`, `{partner_heard}` and `{partner_memories}`
    /// (which the token budget drops after the agent's own memories).
    pub fn partner(&mut self, partner: &AgentView<'_>) {
        let mut pv: BTreeMap<&'static str, String> = BTreeMap::new();
        self.prompts.agent_vars(&mut pv, self.ctx.catalog, partner);
        for (k, dst) in [
            ("name", "partner_name"),
            ("age", "partner_age"),
            ("interest", "partner_interest"),
            ("watched", "partner_watched"),
            ("heard", "partner_heard"),
        ] {
            self.vars.insert(dst, pv.remove(k).unwrap_or_default());
        }
        self.partner_memories = self.prompts.memories(self.ctx.catalog, partner);
    }
}

fn title(catalog: &Catalog, id: ItemId) -> String {
    catalog
        .by_id(id)
        .map_or_else(|| format!("item {id}"), |i| i.title.to_string())
}

impl Prompts {
    /// Loads the engine's templates and one per kind of `kinds` (`(kind, embedded template)`)
    /// from `dir`, or uses the embedded copies when `dir` is `None`.
    ///
    /// # Errors
    /// [`PromptError`] naming a missing or unreadable file.
    pub fn load<'k>(
        dir: Option<&Path>,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        budget: usize,
        kinds: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<Self, PromptError> {
        let mut templates = BTreeMap::new();
        for (k, embedded) in CORE.into_iter().chain(kinds) {
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

    /// The loaded template names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    fn name(&self, u: UserId) -> String {
        self.names
            .get(&u)
            .map_or_else(|| format!("user {u}"), |n| n.to_string())
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
            a.memory.observed.iter().map(|m| {
                crate::observation::memory_line(m, catalog, m.other.map(|u| self.name(u)))
            }),
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

    fn agent_vars(
        &self,
        vars: &mut BTreeMap<&'static str, String>,
        catalog: &Catalog,
        a: &AgentView<'_>,
    ) {
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
                    .map(|(i, _)| format!("<{}>", title(catalog, *i)))
                    .collect(),
            ),
        );
        vars.insert(
            "heard",
            Self::list(
                a.histories
                    .heard
                    .iter()
                    .map(|(i, _)| format!("<{}>", title(catalog, *i)))
                    .collect(),
            ),
        );
    }

    /// The template of `kind` (`embedded` when it was not loaded: a kind nobody registered).
    fn template<'s>(&'s self, kind: &str, embedded: &'s str) -> &'s str {
        self.templates.get(kind).map_or(embedded, String::as_str)
    }

    /// Renders the prompt for `req` and returns it with what parsing its answer needs.
    pub fn render<D: Decision>(
        &self,
        ctx: &Context<'_>,
        req: &Request<'_, D>,
    ) -> (Rendered, D::Spec) {
        self.render_with(ctx, req, (D::KIND, D::TEMPLATE), |r, v| D::prompt(r, v))
    }

    /// Renders the words prompt ([`Decision::WORDS`]) for `req`, whose decisions are `decided`,
    /// and returns it with what [`Decision::with_words`] needs; `None` when `D` has no words.
    pub fn render_words<D: Decision>(
        &self,
        ctx: &Context<'_>,
        req: &Request<'_, D>,
        decided: &D::Answer,
    ) -> Option<(Rendered, D::Spec)> {
        let words = D::WORDS?;
        Some(self.render_with(ctx, req, words, |r, v| D::words_prompt(r, decided, v)))
    }

    /// Loads more templates `(name, embedded text)` (the words templates of the hybrid
    /// backend), from `dir` as in [`Prompts::load`].
    ///
    /// # Errors
    /// [`PromptError`] naming a missing or unreadable file.
    pub fn add_templates<'k>(
        &mut self,
        dir: Option<&Path>,
        templates: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<(), PromptError> {
        let more = Self::load(dir, self.names.clone(), self.budget, templates)?;
        for (k, t) in more.templates {
            self.templates.entry(k).or_insert(t);
        }
        Ok(())
    }

    fn render_with<D: Decision>(
        &self,
        ctx: &Context<'_>,
        req: &Request<'_, D>,
        (name, embedded): (&str, &str),
        kind_vars: impl FnOnce(&Request<'_, D>, &mut PromptVars<'_>) -> D::Spec,
    ) -> (Rendered, D::Spec) {
        let cat = ctx.catalog;
        let a = &req.agent;
        let mut pv = PromptVars {
            vars: BTreeMap::new(),
            prompts: self,
            ctx,
            partner_memories: Vec::new(),
        };
        self.agent_vars(&mut pv.vars, cat, a);
        pv.vars.insert("time", format_timestamp(ctx.clock.now()));
        let spec = kind_vars(req, &mut pv);
        let PromptVars {
            mut vars,
            partner_memories: mut partner_mems,
            ..
        } = pv;
        let mut mems = self.memories(cat, a);
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
            let context = fill(self.template("_context", CORE[0].1), &vars);
            vars.insert("context", context.trim_end().to_string());
            let text = fill(self.template(name, embedded), &vars);
            let fits = approx_tokens(&text) <= self.budget;
            if fits || (mems.is_empty() && partner_mems.is_empty()) {
                let r = Rendered {
                    text,
                    dropped_memories: dropped,
                    over_budget: !fits,
                };
                return (r, spec);
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
        fill(self.template("correct", CORE[1].1), &vars)
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
    fn every_builtin_template_is_a_file_in_config_prompts() {
        // The embedded copies must be the shipped files, and a prompt directory must hold one
        // file per registered kind.
        let kinds = crate::decision::DecisionKinds::builtin();
        let pairs: Vec<(&str, &str)> = kinds.iter().map(|k| (k.kind, k.template)).collect();
        assert_eq!(pairs.len(), 12);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts");
        let a = Prompts::load(Some(&dir), Arc::default(), 100, pairs.clone()).unwrap();
        let b = Prompts::load(None, Arc::default(), 100, pairs).unwrap();
        assert_eq!(a.templates, b.templates);
        assert_eq!(a.templates.len(), 14);
    }
}
