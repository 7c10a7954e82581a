//! One batch of requests of one decision kind, behind an object-safe trait ([`Batch`]) so that
//! backends (offline, LLM, replay, scripted) are written once for every kind.
//!
//! A backend answers by filling the batch's slots: with the offline model
//! ([`Batch::answer_offline`]), with parsed text ([`Batch::render`] then [`Batch::accept`]),
//! with a test script ([`Batch::answer_scripted`]), or with a failure ([`Batch::fail`]). The
//! caller ([`crate::behaviour::Behaviour::ask`]) then validates every answer with
//! [`super::Decision::fits`] and replaces failures and misfits by the kind's fallback.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::offline::{Offline, OfflineParams};
use super::parse::{clean, ParseError};
use super::prompt::{Prompts, Rendered};
use super::schema::Constraint;
use super::{Context, Decision, Phase, Request, RequestKey};
use crate::config::StructuredOutput;

/// A failed request (the caller falls back and counts it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Batches of more requests than this are answered on the rayon pool by the offline model
/// (when `execution_mode: parallel`); below it, the pool's overhead outweighs the work.
pub const PARALLEL_THRESHOLD: usize = 256;

/// A batch of requests of one kind, in key order, seen by a backend.
pub trait Batch: Sync {
    /// The kind ([`Decision::KIND`]).
    fn kind(&self) -> &'static str;
    /// The kind's phase.
    fn phase(&self) -> Phase;
    /// Number of requests.
    fn len(&self) -> usize;
    /// True for an empty batch.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The key of request `i`.
    fn key(&self, i: usize) -> RequestKey;
    /// [`Decision::TYPICAL_COMPLETION_TOKENS`].
    fn typical_completion_tokens(&self) -> u64;
    /// Answers every unanswered request with the offline model (on the rayon pool when
    /// `parallel` and the batch is large).
    fn answer_offline(&self, ctx: &Context<'_>, params: &OfflineParams, parallel: bool);
    /// Answers the requests `script` has a handler for; the others as `script` says
    /// (fallback or offline model).
    fn answer_scripted(&self, script: &Script, ctx: &Context<'_>, params: &OfflineParams);
    /// Renders request `i`'s prompt (and keeps what parsing its answer needs).
    fn render(&self, i: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered;
    /// Parses `raw` as the answer to request `i` (rendered before) and keeps it when it parses
    /// and fits the request.
    ///
    /// # Errors
    /// [`ParseError`] for an empty, unparseable or ill-fitting answer (nothing is kept).
    fn accept(&self, i: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError>;
    /// The constraint on request `i`'s answer under `mode` (rendered before): the kind's
    /// schema, and in `grammar` mode its grammar; `None` when `mode` is off, the kind gives no
    /// schema, or request `i` was not rendered.
    fn constraint(&self, i: usize, mode: StructuredOutput) -> Option<Constraint>;
    /// Records that request `i` failed (kept unless it has an answer already).
    fn fail(&self, i: usize, why: BackendError);
    /// True when request `i` has an answer or a failure.
    fn is_answered(&self, i: usize) -> bool;

    /// The name of the kind's words template ([`Decision::WORDS`]), `None` when it has none.
    fn words_name(&self) -> Option<&'static str>;
    /// Renders the words prompt of request `i` from its answer (the decisions: answer the
    /// batch first, e.g. with [`Batch::answer_offline`]); `None` when the kind has no words or
    /// request `i` has no answer.
    fn render_words(&self, i: usize, prompts: &Prompts, ctx: &Context<'_>) -> Option<Rendered>;
    /// Parses `raw` as the words of request `i` (rendered before) and keeps its answer with
    /// those words ([`Decision::with_words`]); the decisions stay as they were.
    ///
    /// # Errors
    /// [`ParseError`] when the reply has no usable words (the answer keeps its own words).
    fn accept_words(&self, i: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError>;
    /// The constraint on request `i`'s words under `mode` (rendered before), as
    /// [`Batch::constraint`].
    fn words_constraint(&self, i: usize, mode: StructuredOutput) -> Option<Constraint>;
    /// Records that the words of request `i` failed: its answer keeps its own words, and the
    /// failure is counted ([`Batch::words_counts`]).
    fn fail_words(&self, i: usize, why: BackendError);
    /// `(asked, failed)`: requests whose words were rendered, and those of them whose words
    /// failed (the answer kept its own words).
    fn words_counts(&self) -> (u64, u64);
}

/// The requests of a batch: borrowed from the caller, or owned (a chain's one request,
/// [`super::chain`]).
enum Requests<'r, 'a, D: Decision> {
    Borrowed(&'r [Request<'a, D>]),
    Owned(Vec<Request<'a, D>>),
}

impl<'a, D: Decision> std::ops::Deref for Requests<'_, 'a, D> {
    type Target = [Request<'a, D>];
    fn deref(&self) -> &Self::Target {
        match self {
            Requests::Borrowed(r) => r,
            Requests::Owned(r) => r,
        }
    }
}

/// The batch of one kind: the requests and one answer slot each.
pub struct DecisionBatch<'r, 'a, D: Decision> {
    requests: Requests<'r, 'a, D>,
    /// Allocated on the first render (the offline model never renders).
    specs: OnceLock<Vec<OnceLock<D::Spec>>>,
    answers: Vec<OnceLock<Result<D::Answer, BackendError>>>,
    /// The words of the hybrid backend: allocated on the first words render.
    words: OnceLock<Vec<WordsSlot<D>>>,
}

/// One request's words: what parsing them needs, and the answer with them (or why not).
struct WordsSlot<D: Decision> {
    spec: OnceLock<D::Spec>,
    answer: OnceLock<Result<D::Answer, BackendError>>,
}

impl<'r, 'a, D: Decision> DecisionBatch<'r, 'a, D> {
    /// An unanswered batch of `requests`.
    pub fn new(requests: &'r [Request<'a, D>]) -> Self {
        Self::of(Requests::Borrowed(requests))
    }
    /// An unanswered batch that owns its `requests`.
    pub fn owned(requests: Vec<Request<'a, D>>) -> Self {
        Self::of(Requests::Owned(requests))
    }
    fn of(requests: Requests<'r, 'a, D>) -> Self {
        Self {
            answers: (0..requests.len()).map(|_| OnceLock::new()).collect(),
            requests,
            specs: OnceLock::new(),
            words: OnceLock::new(),
        }
    }
    /// The requests.
    pub fn requests(&self) -> &[Request<'a, D>] {
        &self.requests
    }
    /// One answer per request, in order, and the number of fallbacks among them: a failed,
    /// missing or ill-fitting answer is replaced by [`Decision::fallback`] and logged with its
    /// reason (one agent's failure never fails the batch).
    pub fn finish(self) -> (Vec<D::Answer>, u64) {
        let DecisionBatch {
            requests,
            answers,
            words,
            ..
        } = self;
        let mut fallbacks = 0;
        let out = requests
            .iter()
            .zip(merged(answers, words))
            .map(|(req, res)| match res {
                Some(Ok(a)) if D::fits(req, &a) => a,
                other => {
                    fallbacks += 1;
                    let why = match other {
                        Some(Ok(a)) => format!("answer does not fit the request: {a:?}"),
                        Some(Err(e)) => e.0,
                        None => "the backend left the request unanswered".into(),
                    };
                    tracing::warn!(key = ?req.key, kind = D::KIND, "fallback: {why}");
                    D::fallback(req)
                }
            })
            .collect();
        (out, fallbacks)
    }
    /// Stores an answer for request `i` (ignored when it has one).
    pub fn set(&self, i: usize, answer: Result<D::Answer, BackendError>) {
        let _ = self.answers[i].set(answer);
    }
    /// The answers in request order, `None` where a backend left a request unanswered. An
    /// answer whose words were written separately ([`Batch::accept_words`]) comes with them.
    pub fn into_answers(self) -> impl Iterator<Item = Option<Result<D::Answer, BackendError>>> {
        merged(self.answers, self.words)
    }

    fn words_slots(&self) -> &[WordsSlot<D>] {
        self.words.get_or_init(|| {
            (0..self.requests.len())
                .map(|_| WordsSlot {
                    spec: OnceLock::new(),
                    answer: OnceLock::new(),
                })
                .collect()
        })
    }
}

/// The answers in request order with their separately written words
/// ([`Batch::accept_words`]) in place.
fn merged<D: Decision>(
    answers: Vec<OnceLock<Result<D::Answer, BackendError>>>,
    words: OnceLock<Vec<WordsSlot<D>>>,
) -> impl Iterator<Item = Option<Result<D::Answer, BackendError>>> {
    let mut words: Vec<Option<D::Answer>> = match words.into_inner() {
        Some(w) => w
            .into_iter()
            .map(|s| s.answer.into_inner().and_then(Result::ok))
            .collect(),
        None => Vec::new(),
    };
    words.resize_with(answers.len(), || None);
    answers
        .into_iter()
        .zip(words)
        .map(|(a, w)| match (a.into_inner(), w) {
            (Some(Ok(_)), Some(w)) => Some(Ok(w)),
            (a, _) => a,
        })
}

impl<D: Decision> Batch for DecisionBatch<'_, '_, D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }
    fn phase(&self) -> Phase {
        D::PHASE
    }
    fn len(&self) -> usize {
        self.requests.len()
    }
    fn key(&self, i: usize) -> RequestKey {
        self.requests[i].key
    }
    fn typical_completion_tokens(&self) -> u64 {
        D::TYPICAL_COMPLETION_TOKENS
    }
    fn answer_offline(&self, ctx: &Context<'_>, params: &OfflineParams, parallel: bool) {
        let one = |i: usize| {
            if self.answers[i].get().is_none() {
                let r = &self.requests[i];
                let a = D::offline(r, &mut Offline::for_key(ctx, params, &r.key));
                self.set(i, Ok(a));
            }
        };
        if parallel && self.requests.len() > PARALLEL_THRESHOLD {
            (0..self.requests.len()).into_par_iter().for_each(one);
        } else {
            (0..self.requests.len()).for_each(one);
        }
    }
    fn answer_scripted(&self, script: &Script, ctx: &Context<'_>, params: &OfflineParams) {
        let handler = script
            .handlers
            .get(D::KIND)
            .and_then(|h| h.downcast_ref::<Handler<D>>());
        for (i, r) in self.requests.iter().enumerate() {
            if let Some(a) = handler.and_then(|h| h(r, ctx)) {
                self.set(i, Ok(a));
            } else if script.unscripted == Unscripted::Offline {
                let a = D::offline(r, &mut Offline::for_key(ctx, params, &r.key));
                self.set(i, Ok(a));
            } else {
                self.set(i, Ok(D::fallback(r)));
            }
        }
    }
    fn render(&self, i: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered {
        let (rendered, spec) = prompts.render(ctx, &self.requests[i]);
        let specs = self
            .specs
            .get_or_init(|| (0..self.requests.len()).map(|_| OnceLock::new()).collect());
        let _ = specs[i].set(spec);
        rendered
    }
    fn accept(&self, i: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError> {
        let spec = self
            .specs
            .get()
            .and_then(|s| s[i].get())
            .ok_or_else(|| ParseError("no prompt was rendered".into()))?;
        let text = clean(raw);
        if text.is_empty() {
            return Err(ParseError("the answer was empty".into()));
        }
        let a = D::parse(spec, &text, ctx.catalog)?;
        if !D::fits(&self.requests[i], &a) {
            return Err(ParseError(
                "the answer does not fit the options offered".into(),
            ));
        }
        self.set(i, Ok(a));
        Ok(())
    }
    fn constraint(&self, i: usize, mode: StructuredOutput) -> Option<Constraint> {
        if mode == StructuredOutput::Off {
            return None;
        }
        let spec = self.specs.get().and_then(|s| s[i].get())?;
        let schema = D::answer_schema(spec)?;
        let grammar = match mode {
            StructuredOutput::Grammar => Some(D::answer_grammar(spec)?),
            _ => None,
        };
        Some(Constraint {
            mode,
            name: D::KIND,
            schema,
            grammar,
        })
    }
    fn fail(&self, i: usize, why: BackendError) {
        self.set(i, Err(why));
    }
    fn is_answered(&self, i: usize) -> bool {
        self.answers[i].get().is_some()
    }
    fn words_name(&self) -> Option<&'static str> {
        D::WORDS.map(|w| w.0)
    }
    fn render_words(&self, i: usize, prompts: &Prompts, ctx: &Context<'_>) -> Option<Rendered> {
        let decided = self.answers[i].get()?.as_ref().ok()?;
        let (rendered, spec) = prompts.render_words(ctx, &self.requests[i], decided)?;
        let _ = self.words_slots()[i].spec.set(spec);
        Some(rendered)
    }
    fn accept_words(&self, i: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError> {
        let slot = self
            .words
            .get()
            .map(|w| &w[i])
            .ok_or_else(|| ParseError("no words prompt was rendered".into()))?;
        let spec = slot
            .spec
            .get()
            .ok_or_else(|| ParseError("no words prompt was rendered".into()))?;
        let decided = match self.answers[i].get() {
            Some(Ok(a)) => a,
            _ => {
                return Err(ParseError(
                    "the request has no decisions to add words to".into(),
                ))
            }
        };
        let text = clean(raw);
        if text.is_empty() {
            return Err(ParseError("the answer was empty".into()));
        }
        let a = D::with_words(spec, decided, &text, ctx.catalog)?;
        if !D::fits(&self.requests[i], &a) {
            return Err(ParseError(
                "the words do not fit the decisions (speakers, lines)".into(),
            ));
        }
        let _ = slot.answer.set(Ok(a));
        Ok(())
    }
    fn words_constraint(&self, i: usize, mode: StructuredOutput) -> Option<Constraint> {
        if mode == StructuredOutput::Off {
            return None;
        }
        let spec = self.words.get()?[i].spec.get()?;
        let decided = self.answers[i].get()?.as_ref().ok()?;
        let schema = D::words_schema(spec, decided)?;
        let grammar = match mode {
            StructuredOutput::Grammar => Some(super::schema::gbnf(&schema).ok()?),
            _ => None,
        };
        Some(Constraint {
            mode,
            name: D::WORDS.map_or(D::KIND, |w| w.0),
            schema,
            grammar,
        })
    }
    fn fail_words(&self, i: usize, why: BackendError) {
        let _ = self.words_slots()[i].answer.set(Err(why));
    }
    fn words_counts(&self) -> (u64, u64) {
        let Some(w) = self.words.get() else {
            return (0, 0);
        };
        let asked = w.iter().filter(|s| s.spec.get().is_some()).count() as u64;
        let failed = w
            .iter()
            .filter(|s| s.spec.get().is_some() && !matches!(s.answer.get(), Some(Ok(_))))
            .count() as u64;
        (asked, failed)
    }
}

/// A scripted answer for one request: `None` leaves it to [`Script`]'s default.
pub type Handler<D> =
    Box<dyn Fn(&Request<'_, D>, &Context<'_>) -> Option<<D as Decision>::Answer> + Send + Sync>;

/// What a script does with a request it has no answer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unscripted {
    /// The kind's deterministic fallback (counted as an answer, not as a fallback).
    #[default]
    Fallback,
    /// The offline model's answer.
    Offline,
}

/// Fixed answers for tests and benches, per decision kind (see
/// [`crate::behaviour::scripted::ScriptedBackend`]).
#[derive(Default)]
pub struct Script {
    handlers: BTreeMap<&'static str, Box<dyn Any + Send + Sync>>,
    /// What unscripted requests get.
    pub unscripted: Unscripted,
}

impl Script {
    /// An empty script: every request gets its kind's fallback.
    pub fn new() -> Self {
        Self::default()
    }
    /// Unscripted requests get the offline model's answer instead of the fallback.
    pub fn offline_otherwise(mut self) -> Self {
        self.unscripted = Unscripted::Offline;
        self
    }
    /// Answers requests of kind `D` with `f` (`None`: the default for unscripted requests).
    pub fn on<D: Decision>(
        mut self,
        f: impl Fn(&Request<'_, D>, &Context<'_>) -> Option<D::Answer> + Send + Sync + 'static,
    ) -> Self {
        let h: Handler<D> = Box::new(f);
        self.handlers.insert(D::KIND, Box::new(h));
        self
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .field("unscripted", &self.unscripted)
            .finish()
    }
}
