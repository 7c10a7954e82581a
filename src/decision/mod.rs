//! Decisions: every choice an agent makes is a typed request of one *decision kind*, answered by
//! a behaviour backend ([`crate::behaviour`]) in one batch per phase step.
//!
//! A kind is one file here implementing [`Decision`]: its name (the prompt template
//! `config/prompts/<name>.txt`), its request phase, the question (`Ask`), the answer type, how an
//! answer is validated, its deterministic fallback, its prompt variables and parser (LLM
//! backend), its offline answer (the offline user model, [`offline`]) and its typical answer
//! length (cost estimate). The bridge, the transcript, the replay, the offline dispatch and the
//! cost estimate are generic over the trait ([`batch`]); nothing outside a kind's file matches on
//! kinds. [`BuiltinDecisions`] registers the shipped kinds, one line each.
//!
//! # Determinism
//! A request's identity is its [`RequestKey`] `(round, phase, user, step)`: systems build batches
//! in key order and apply answers in that order; the offline model draws from a stream derived
//! from the key, so which backend answered, and in what order work finished, never changes a
//! result.

pub mod batch;
pub mod chain;
pub mod offline;
pub mod parse;
pub mod prompt;
pub mod registry;
pub mod schema;

pub mod chat;
pub mod compress;
pub mod feel;
pub mod importance;
pub mod insight;
pub mod interview;
pub mod page;
pub mod post;
pub mod reflect_insights;
pub mod reflect_topic;
pub mod social;
pub mod top;
pub mod words;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Histories, Memory, Profile, Relationships, Taste};
use crate::ids::UserId;

pub use batch::{BackendError, Batch, DecisionBatch, Script};
pub use chain::{ChainRun, Chains};
pub use offline::{Offline, OfflineParams};
pub use parse::ParseError;
pub use prompt::{PromptVars, Prompts, Rendered};
pub use registry::{DecisionKinds, KindInfo};

/// One decision kind. Implemented by a unit type per kind (`struct Page;`), one file each.
///
/// # Example
/// A kind whose agents answer yes or no, offline with probability `p` from the question:
/// ```
/// use recagent::decision::{Decision, Offline, ParseError, Phase, PromptVars, Request};
/// use rand::Rng;
///
/// pub struct YesNo;
/// impl Decision for YesNo {
///     const KIND: &'static str = "yes_no";
///     const PHASE: Phase = Phase::new("YesNo", 40);
///     const TEMPLATE: &'static str = "{context}\n{question} Answer YES or NO.";
///     const TYPICAL_COMPLETION_TOKENS: u64 = 2;
///     type Ask<'a> = (&'a str, f64);
///     type Answer = bool;
///     type Spec = ();
///     fn fallback(_: &Request<'_, Self>) -> bool {
///         false
///     }
///     fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> bool {
///         m.rng.random::<f64>() < req.ask.1
///     }
///     fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) {
///         vars.set("question", req.ask.0);
///     }
///     fn parse(_: &(), text: &str, _: &recagent::catalog::Catalog) -> Result<bool, ParseError> {
///         match text.trim().to_ascii_uppercase().as_str() {
///             "YES" => Ok(true),
///             "NO" => Ok(false),
///             _ => Err(ParseError("expected YES or NO".into())),
///         }
///     }
/// }
/// ```
pub trait Decision: Sized + Send + Sync + 'static {
    /// Kind name: the prompt template `config/prompts/<KIND>.txt`, the request and fallback
    /// counters, token usage and logs. Lower case, unique among the registered kinds.
    const KIND: &'static str;
    /// The request phase (part of every key; see [`Phase`]).
    const PHASE: Phase;
    /// The embedded prompt template (`{name}` placeholders; `{context}` is the shared agent
    /// context). A `llm_options.prompt_dir` file `<KIND>.txt` replaces it.
    const TEMPLATE: &'static str;
    /// Typical answer length in tokens, for the cost estimate before an LLM run.
    const TYPICAL_COMPLETION_TOKENS: u64;
    /// The question, borrowed from the world for the duration of one batch.
    type Ask<'a>: Send + Sync + fmt::Debug;
    /// The answer.
    type Answer: Clone + fmt::Debug + Send + Sync + 'static;
    /// What parsing an answer needs to know about its request (owned: no borrows of the world).
    type Spec: Send + Sync + 'static;

    /// True when `answer` is a valid answer to `req` (an index on the page, a partner that is
    /// available, a rating in range). An answer that does not fit is replaced by the fallback
    /// and counted; with the LLM backend it first gets a corrective retry.
    fn fits(req: &Request<'_, Self>, answer: &Self::Answer) -> bool {
        let _ = (req, answer);
        true
    }
    /// The deterministic answer used when the backend failed or its answer did not fit ("do
    /// nothing", leave, a neutral rating).
    fn fallback(req: &Request<'_, Self>) -> Self::Answer;
    /// The offline user model's answer, drawing only from `m.rng` (seeded by the key).
    fn offline(req: &Request<'_, Self>, m: &mut Offline<'_>) -> Self::Answer;
    /// Sets the template variables of the kind (the agent's context is already set) and returns
    /// what the parser will need.
    fn prompt(req: &Request<'_, Self>, vars: &mut PromptVars<'_>) -> Self::Spec;
    /// Parses a model's reply (already cleaned by [`parse::clean`] and not empty).
    ///
    /// # Errors
    /// [`ParseError`] naming what was expected; it is sent back in the corrective retry.
    fn parse(spec: &Self::Spec, text: &str, catalog: &Catalog) -> Result<Self::Answer, ParseError>;

    /// The JSON schema of an answer to a request with this `spec`, sent when
    /// `llm_options.structured_output` is on (built with the helpers of [`schema`]). Every
    /// JSON text it accepts must parse with [`Decision::parse`] (the built-in kinds test this).
    /// `None` (the default): answers of this kind are never constrained.
    fn answer_schema(spec: &Self::Spec) -> Option<serde_json::Value> {
        let _ = spec;
        None
    }

    /// The words of a kind whose answer carries free text beside its decisions (a feeling, a
    /// dialogue, a post): `(name, embedded template)` of the prompt that asks only for that
    /// text, given the decisions (`config/prompts/<name>.txt`, e.g. `feel_words`). The hybrid
    /// backend ([`crate::behaviour::hybrid`]) takes every decision from the offline model and
    /// asks the LLM for these words. `None` (the default): the kind has no words of its own.
    const WORDS: Option<(&'static str, &'static str)> = None;

    /// Sets the words prompt's variables for `req`, whose decisions are `decided` (the offline
    /// answer), and returns what [`Decision::with_words`] will need. The default sets the
    /// kind's own prompt variables ([`Decision::prompt`]).
    fn words_prompt(
        req: &Request<'_, Self>,
        decided: &Self::Answer,
        vars: &mut PromptVars<'_>,
    ) -> Self::Spec {
        let _ = decided;
        Self::prompt(req, vars)
    }

    /// `decided` with its words replaced by those of the model's reply `text` (already cleaned
    /// and not empty); every decision of `decided` (a rating, speakers, the number of lines,
    /// mentioned items) is kept as it is.
    ///
    /// # Errors
    /// [`ParseError`] when the reply has no usable words (the offline words stay, counted as a
    /// text fallback). The default: the kind has no words.
    fn with_words(
        spec: &Self::Spec,
        decided: &Self::Answer,
        text: &str,
        catalog: &Catalog,
    ) -> Result<Self::Answer, ParseError> {
        let _ = (spec, decided, text, catalog);
        Err(ParseError(format!(
            "decision kind `{}` has no words",
            Self::KIND
        )))
    }

    /// The JSON schema of a words answer to a request with this `spec` and `decided` answer
    /// (`structured_output`); `None` (the default): not constrained.
    fn words_schema(spec: &Self::Spec, decided: &Self::Answer) -> Option<serde_json::Value> {
        let _ = (spec, decided);
        None
    }

    /// The GBNF grammar of an answer (`structured_output: grammar`). The default derives it from
    /// [`Decision::answer_schema`] ([`schema::gbnf`]); a kind may write its own.
    fn answer_grammar(spec: &Self::Spec) -> Option<String> {
        let s = Self::answer_schema(spec)?;
        match schema::gbnf(&s) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(kind = Self::KIND, "no grammar for the answer schema: {e}");
                None
            }
        }
    }
}

/// The request phase of a decision: a name (written in transcripts) and a numeric code (mixed
/// into the offline model's random streams). Kinds of one behaviour may share a phase and
/// tell their requests apart by the key's `step`.
///
/// Codes 0..=6 are the built-in phases; a plugin picks an unused code (the registry refuses a
/// code or name already taken by another phase). Changing a code changes every offline draw of
/// that phase, so codes are frozen once runs were recorded.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Phase {
    code: u16,
    name: &'static str,
}

impl Phase {
    /// A phase named `name` with code `code`.
    pub const fn new(name: &'static str, code: u16) -> Self {
        Self { code, name }
    }
    /// The name (as written in transcripts).
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The numeric code.
    pub const fn code(&self) -> u16 {
        self.code
    }
}

impl fmt::Debug for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// Identity and sort key of one request: `(round, phase, user, step)`.
///
/// Serialised with the phase's name; read back (transcripts) as a [`RecordedKey`] and resolved
/// against the registered phases ([`DecisionKinds::resolve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestKey {
    /// Round, 1-based.
    pub round: u32,
    /// Phase.
    pub phase: Phase,
    /// The deciding agent.
    pub user: UserId,
    /// Step within the phase (page decision number, or a sub-kind and sequence number).
    pub step: u16,
}

impl RequestKey {
    /// The key as four integers, for seeding per-request random streams.
    pub fn as_ids(&self) -> [u64; 4] {
        [
            u64::from(self.round),
            u64::from(self.phase.code),
            u64::from(self.user.0),
            u64::from(self.step),
        ]
    }
}

/// A request key as read from a file: the phase by name only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordedKey {
    /// Round, 1-based.
    pub round: u32,
    /// Phase name.
    pub phase: String,
    /// The deciding agent.
    pub user: UserId,
    /// Step within the phase.
    pub step: u16,
}

/// Read-only view of an agent, borrowed from the world for the duration of one batch.
#[derive(Clone, Copy, Debug)]
pub struct AgentView<'a> {
    /// Agent id.
    pub id: UserId,
    /// Profile.
    pub profile: &'a Profile,
    /// Genre tastes.
    pub taste: &'a Taste,
    /// Watched / heard histories.
    pub histories: &'a Histories,
    /// Social ties (sorted by id).
    pub contacts: &'a Relationships,
    /// Memory.
    pub memory: &'a Memory,
}

/// Shared read-only context of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The catalogue.
    pub catalog: &'a Catalog,
    /// The clock.
    pub clock: &'a SimClock,
    /// Root seed.
    pub seed: u64,
}

/// One request of kind `D`.
pub struct Request<'a, D: Decision> {
    /// Key (sort order and random-stream identity).
    pub key: RequestKey,
    /// The deciding agent.
    pub agent: AgentView<'a>,
    /// The question.
    pub ask: D::Ask<'a>,
}

impl<'a, D: Decision> Request<'a, D> {
    /// A request of `agent` in `round` at `step`, keyed with `D`'s phase.
    pub fn new(round: u32, step: u16, agent: AgentView<'a>, ask: D::Ask<'a>) -> Self {
        Self {
            key: RequestKey {
                round,
                phase: D::PHASE,
                user: agent.id,
                step,
            },
            agent,
            ask,
        }
    }
}

impl<D: Decision> fmt::Debug for Request<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("kind", &D::KIND)
            .field("key", &self.key)
            .field("ask", &self.ask)
            .finish()
    }
}

impl DecisionKinds {
    /// The shipped kinds, as [`BuiltinDecisions`] registers them.
    pub fn builtin() -> Self {
        let mut app = bevy_app::App::empty();
        app.add_plugins(BuiltinDecisions);
        app.world()
            .get_resource::<DecisionKinds>()
            .cloned()
            .unwrap_or_default()
    }
}

/// Registers the shipped decision kinds (their templates, phases and counters), one line per
/// kind. Part of [`crate::SimPlugins`].
pub struct BuiltinDecisions;

impl bevy_app::Plugin for BuiltinDecisions {
    fn build(&self, app: &mut bevy_app::App) {
        let mut k = app
            .world_mut()
            .get_resource_or_insert_with(DecisionKinds::default);
        k.add::<top::Top>();
        k.add::<page::Page>();
        k.add::<feel::Feel>();
        k.add::<social::Social>();
        k.add::<chat::Chat>();
        k.add::<post::Post>();
        k.add::<compress::Compress>();
        k.add::<importance::Importance>();
        k.add::<insight::Insight>();
        k.add::<reflect_topic::ReflectTopic>();
        k.add::<reflect_insights::ReflectInsights>();
        k.add::<interview::Interview>();
    }
}

#[cfg(test)]
mod structured_tests {
    //! Every built-in kind's answer schema: a grammar derives from it, and JSON answers that
    //! conform to it (checked with [`schema::validate`]) parse into the answers written here by
    //! hand from the prompt's meaning.
    use super::chat::{Chat, ChatSpec, Utterance};
    use super::feel::{Feel, Feeling};
    use super::page::{Page, PageAction, PageSpec};
    use super::reflect_insights::{CitedInsight, ReflectInsights};
    use super::social::{Social, SocialAction};
    use super::top::{Top, TopAction};
    use super::*;
    use crate::ids::ItemId;
    use crate::io::data::ItemRecord;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::new(
            ["Babe (1995)", "Heat (1995)"]
                .iter()
                .enumerate()
                .map(|(i, t)| ItemRecord {
                    id: i as u32,
                    title: (*t).into(),
                    genres: vec!["Drama".into()],
                    description: String::new(),
                })
                .collect(),
        )
        .unwrap()
    }

    /// `answer` conforms to `D`'s schema for `spec`, its grammar derives, and it parses to
    /// `want`.
    fn conforms<D: Decision>(spec: &D::Spec, answer: serde_json::Value, want: D::Answer)
    where
        D::Answer: PartialEq,
    {
        let s = D::answer_schema(spec).unwrap_or_else(|| panic!("{} has no schema", D::KIND));
        schema::validate(&s, &answer).unwrap_or_else(|e| panic!("{}: {e}", D::KIND));
        let g = D::answer_grammar(spec).unwrap_or_else(|| panic!("{} has no grammar", D::KIND));
        assert!(g.starts_with("root ::= "), "{}: {g}", D::KIND);
        let got = D::parse(spec, &parse::clean(&answer.to_string()), &catalog());
        assert_eq!(got, Ok(want), "{}: {answer}", D::KIND);
    }

    #[test]
    fn a_schema_conforming_answer_parses_for_every_builtin_kind() {
        use super::compress::Compress;
        use super::importance::Importance;
        use super::insight::Insight;
        use super::interview::Interview;
        use super::post::Post;
        use super::reflect_topic::ReflectTopic;
        conforms::<Top>(&(), json!({"action": "SOCIAL"}), TopAction::Social);
        let answer = json!({"answer": "Mostly comedies; <Heat (1995)> was great."});
        conforms::<Interview>(
            &(),
            answer,
            "Mostly comedies; <Heat (1995)> was great.".into(),
        );
        let page = PageSpec {
            titles: vec!["Babe (1995)".into(), "Heat (1995)".into()],
            can_search: true,
        };
        // BUY 2 is the second title: slot 1.
        let buy = json!({"action": "BUY", "index": 2, "query": ""});
        conforms::<Page>(&page, buy, PageAction::Watch(vec![1]));
        let next = json!({"action": "NEXT", "index": 0, "query": ""});
        conforms::<Page>(&page, next, PageAction::Next);
        // A search takes its query, not the (required) index.
        let search = json!({"action": "SEARCH", "index": 0, "query": "Toy Story"});
        conforms::<Page>(&page, search, PageAction::Search("Toy Story".into()));
        let leave = json!({"action": "LEAVE", "index": 0, "query": ""});
        conforms::<Page>(&page, leave, PageAction::Leave);
        let feel = json!({"rating": 4, "feeling": "I liked <Heat (1995)>."});
        let felt = Feeling {
            rating: 4,
            text: "I liked <Heat (1995)>.".into(),
        };
        conforms::<Feel>(&(), feel, felt);
        let avail = vec![(UserId(3), "Ann Lee".to_string()), (UserId(9), "Bo".into())];
        let chat = json!({"action": "CHAT", "name": "Bo"});
        // No length asked for: 60 minutes.
        let with_bo = SocialAction::Chat {
            with: UserId(9),
            minutes: 60,
        };
        conforms::<Social>(&avail, chat, with_bo);
        let post = json!({"action": "POST", "name": "Ann Lee"});
        conforms::<Social>(&avail, post, SocialAction::Post);
        conforms::<Social>(&vec![], json!({"action": "POST"}), SocialAction::Post);
        let spec = ChatSpec {
            me: (UserId(3), "Ann Lee".into()),
            partner: (UserId(9), "Bo".into()),
            max_turns: 2,
        };
        let dialogue = json!({"dialogue": [
            {"speaker": "Ann Lee", "text": "Seen <Heat (1995)>?"},
            {"speaker": "Bo", "text": "Yes!"}
        ]});
        let lines = vec![
            Utterance {
                speaker: UserId(3),
                text: "Seen <Heat (1995)>?".into(),
                mentions: vec![ItemId(1)],
            },
            Utterance {
                speaker: UserId(9),
                text: "Yes!".into(),
                mentions: vec![],
            },
        ];
        conforms::<Chat>(&spec, dialogue, lines);
        let post = json!({"post": "Loved <Babe (1995)>!"});
        let draft = super::post::PostDraft {
            text: "Loved <Babe (1995)>!".into(),
            mentions: vec![ItemId(0)],
        };
        conforms::<Post>(&(), post, draft);
        let s = json!({"sentence": "Ann likes dramas."});
        conforms::<Compress>(&(), s, "Ann likes dramas.".to_string());
        conforms::<Importance>(&(), json!({"importance": 8}), 8);
        let s = json!({"insight": "Ann values quiet films."});
        conforms::<Insight>(&(), s, "Ann values quiet films.".to_string());
        let q = json!({"question": "What does Ann value?"});
        conforms::<ReflectTopic>(&(), q, vec!["What does Ann value?".to_string()]);
        let ins = json!({"insight": "Ann prefers films from 1999", "cites": [3, 7]});
        let cited = vec![CitedInsight {
            text: "Ann prefers films from 1999".into(),
            cites: vec![3, 7],
        }];
        conforms::<ReflectInsights>(&(), ins, cited);
    }

    #[test]
    fn schemas_refuse_what_the_request_does_not_offer() {
        // The schema is per request: no SEARCH when searching is not allowed, no index past the
        // page, no partner who is not available, no rating outside 1..=5.
        let page = PageSpec {
            titles: vec!["Babe (1995)".into()],
            can_search: false,
        };
        let s = Page::answer_schema(&page).unwrap();
        let search = json!({"action": "SEARCH", "index": 0, "query": "Heat"});
        assert!(schema::validate(&s, &search).is_err());
        let far = json!({"action": "BUY", "index": 2, "query": ""});
        assert!(schema::validate(&s, &far).is_err());
        let avail = vec![(UserId(3), "Ann".to_string())];
        let s = Social::answer_schema(&avail).unwrap();
        assert!(schema::validate(&s, &json!({"action": "CHAT", "name": "Zed"})).is_err());
        let s = Feel::answer_schema(&()).unwrap();
        assert!(schema::validate(&s, &json!({"rating": 6, "feeling": "x"})).is_err());
        assert!(schema::validate(&s, &json!({"rating": 3})).is_err());
        let extra = json!({"rating": 3, "feeling": "x", "why": "y"});
        assert!(schema::validate(&s, &extra).is_err());
    }
}
