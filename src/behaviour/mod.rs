//! Behaviour backends: what answers the agents' typed decisions ([`crate::decision`]).
//!
//! Systems build one batch per phase step, in key order, and get the answers back in that
//! same order from [`Behaviour::ask`] (or paired with their own items from
//! [`Behaviour::ask_each`]); they never know which backend answered. A backend answers a whole
//! batch at once (so the LLM backend can run the calls concurrently) by filling its slots; it
//! is written once for every decision kind.
//!
//! Backends: [`offline::OfflineBackend`] (the default user model), the LLM and replay backends
//! ([`crate::llm::LlmBackend`]), [`hybrid::HybridBackend`] (the offline model's decisions with
//! an LLM's words), and [`scripted::ScriptedBackend`] for tests and benches.

pub mod hybrid;
pub mod offline;
pub mod scripted;

use std::collections::BTreeMap;

use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

pub use crate::decision::chat::Utterance;
pub use crate::decision::feel::Feeling;
pub use crate::decision::page::PageAction;
pub use crate::decision::post::PostDraft;
pub use crate::decision::reflect_insights::CitedInsight;
pub use crate::decision::social::SocialAction;
pub use crate::decision::{
    AgentView, BackendError, Batch, ChainRun, Chains, Context, Decision, DecisionBatch, Phase,
    Request, RequestKey,
};

/// A behaviour backend.
pub trait BehaviourBackend: Send + Sync {
    /// Name recorded in the manifest (`offline`, `llm`, `replay`, `hybrid`, `scripted`).
    fn name(&self) -> &'static str;
    /// Answers every request of `batch` (one decision kind, in key order) by filling its
    /// slots, whatever order the work completed in. A request left unanswered, or answered
    /// with a failure, gets its kind's fallback and is counted.
    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch);
    /// True when the backend answers chains itself ([`BehaviourBackend::answer_chains`]),
    /// sending each chain's next request as soon as its previous answer is in. The default:
    /// chains are answered step by step, one [`BehaviourBackend::answer_batch`] per step across
    /// every chain, which gives the same answers (each request is built from its own chain).
    fn runs_chains(&self) -> bool {
        false
    }
    /// True when a phase may split a batch across agents into parts answered side by side,
    /// each part its own batches in key order: the answers are those of one batch because each
    /// request is answered from its own key alone (the offline model's per-request stream).
    /// The default, false, keeps one batch per step across all agents (an LLM backend runs that
    /// batch's calls concurrently, and its transcript follows the batches). A backend that says
    /// true also lets a phase run per-answer work on the rayon pool (the `prepare` of
    /// [`Behaviour::ask_chains`]); the offline backend says so under `execution_mode: parallel`.
    fn splits_batches(&self) -> bool {
        false
    }
    /// Answers every request of `chains` and settles each ([`Chains::settle`]), which may build
    /// the chain's next request, until every chain is done. The default answers the requests
    /// one at a time, in order (a backend that says [`BehaviourBackend::runs_chains`] should do
    /// better).
    fn answer_chains(&self, ctx: &Context<'_>, chains: &dyn Chains) {
        let mut i = 0;
        while i < chains.len() {
            if let Some(b) = chains.batch(i) {
                self.answer_batch(ctx, &*b);
            }
            chains.settle(i);
            i += 1;
        }
    }
}

/// Requests and fallbacks per decision kind (keyed by [`Decision::KIND`]), for the manifest.
#[derive(Resource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BehaviourStats {
    /// Requests sent.
    pub requests: BTreeMap<String, u64>,
    /// Answers that failed or did not fit their request and were replaced by the fallback, and
    /// adjustments the engine made to an answer (a chat length snapped to `chat_hours`).
    pub fallbacks: BTreeMap<String, u64>,
    /// Items a system could not turn into a request (an agent without its components): an
    /// engine error, logged; never silently skipped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unbuilt: BTreeMap<String, u64>,
    /// Hybrid backend: requests whose words (feeling, dialogue, post text) were asked of the
    /// LLM, per kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text_requests: BTreeMap<String, u64>,
    /// Hybrid backend: of those, the requests whose LLM words failed (the call failed, or the
    /// reply had no usable words after the corrective retries) and kept the offline words; the
    /// decisions are the offline model's either way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text_fallbacks: BTreeMap<String, u64>,
}

impl BehaviourStats {
    fn bump(map: &mut BTreeMap<String, u64>, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        match map.get_mut(kind) {
            Some(v) => *v += n,
            None => {
                map.insert(kind.to_string(), n);
            }
        }
    }
    /// Counts one fallback (or engine adjustment) of `kind`.
    pub fn fallback(&mut self, kind: &str) {
        Self::bump(&mut self.fallbacks, kind, 1);
    }
    /// Adds `other`'s counts to these (the stats of a phase's parts, [`BehaviourBackend::splits_batches`]).
    pub fn absorb(&mut self, other: BehaviourStats) {
        for (mine, theirs) in [
            (&mut self.requests, other.requests),
            (&mut self.fallbacks, other.fallbacks),
            (&mut self.unbuilt, other.unbuilt),
            (&mut self.text_requests, other.text_requests),
            (&mut self.text_fallbacks, other.text_fallbacks),
        ] {
            for (kind, n) in theirs {
                Self::bump(mine, &kind, n);
            }
        }
    }
    /// Requests of `kind` so far.
    pub fn requests_of(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }
    /// Fallbacks of `kind` so far.
    pub fn fallbacks_of(&self, kind: &str) -> u64 {
        self.fallbacks.get(kind).copied().unwrap_or(0)
    }
}

/// The backend resource systems call.
#[derive(Resource)]
pub struct Behaviour(pub Box<dyn BehaviourBackend>);

impl Behaviour {
    /// Answers `requests` (one kind, in key order) and returns one answer per request, in order.
    /// A failed, missing or ill-fitting answer is replaced by [`Decision::fallback`], counted
    /// in `stats` and logged with its reason; one agent's failure never fails the batch.
    pub fn ask<D: Decision>(
        &self,
        ctx: &Context<'_>,
        requests: &[Request<'_, D>],
        stats: &mut BehaviourStats,
    ) -> Vec<D::Answer> {
        if requests.is_empty() {
            return Vec::new();
        }
        let batch = DecisionBatch::new(requests);
        self.0.answer_batch(ctx, &batch);
        BehaviourStats::bump(&mut stats.requests, D::KIND, requests.len() as u64);
        let (asked, failed) = batch.words_counts();
        BehaviourStats::bump(&mut stats.text_requests, D::KIND, asked);
        BehaviourStats::bump(&mut stats.text_fallbacks, D::KIND, failed);
        let (out, fallbacks) = batch.finish();
        BehaviourStats::bump(&mut stats.fallbacks, D::KIND, fallbacks);
        out
    }

    /// Runs one chain of requests per state (states in key order; see [`crate::decision::chain`]):
    /// `make` builds a state's next request from the state alone (`None`: its chain is done),
    /// `prepare` computes what applying the answers needs from `env` (read only), the states and
    /// their answers, for a whole step at once (a batch the caller may split across the rayon
    /// pool, or answer with one batched model call: the pages of a step's `Next` answers), and
    /// `step` applies each answer (or the kind's fallback, counted as in [`Behaviour::ask`]) with
    /// what was prepared for it to its state, with `env` writable. Returns the states once every
    /// chain is done.
    ///
    /// A backend that [`BehaviourBackend::runs_chains`] sends each chain's next request as soon
    /// as its previous answer is in, and prepares one answer at a time; the others get one batch
    /// per step across all chains. The requests, answers and final states are the same either
    /// way, so `prepare` must give for an answer what it would give for it alone; `step` sees
    /// the chains in another order, so it may change nothing but its own state and what in `env`
    /// does not depend on order (what the answers do to the world is applied by the caller
    /// afterwards, in key order).
    #[allow(clippy::too_many_arguments)]
    pub fn ask_chains<'w, D: Decision, S: Sync, E, P: Send>(
        &self,
        ctx: &Context<'_>,
        stats: &mut BehaviourStats,
        states: Vec<S>,
        env: &mut E,
        make: impl Fn(&S) -> Option<Request<'w, D>>,
        prepare: impl Fn(&E, &[(&S, &D::Answer)]) -> Vec<P>,
        mut step: impl FnMut(&mut E, &mut S, D::Answer, P),
    ) -> Vec<S> {
        if self.0.runs_chains() {
            let run = ChainRun::new(states, make, |s: &mut S, a: D::Answer| {
                let p = prepare(env, &[(&*s, &a)])
                    .pop()
                    .expect("invariant: prepare gives one value per answer");
                step(env, s, a, p)
            });
            self.0.answer_chains(ctx, &run);
            let (states, requests, fallbacks) = run.into_states();
            BehaviourStats::bump(&mut stats.requests, D::KIND, requests);
            BehaviourStats::bump(&mut stats.fallbacks, D::KIND, fallbacks);
            return states;
        }
        let mut states = states;
        // Sized up front: a filtered collect grows by doubling, and at a million sessions each
        // growth was fresh memory the kernel zeroed (half of `browse`'s time on the main thread).
        let mut live: Vec<(usize, Request<'w, D>)> = Vec::with_capacity(states.len());
        live.extend(
            states
                .iter()
                .enumerate()
                .filter_map(|(c, s)| make(s).map(|r| (c, r))),
        );
        while !live.is_empty() {
            let (chains, requests): (Vec<usize>, Vec<Request<'w, D>>) = live.into_iter().unzip();
            let answers = self.ask(ctx, &requests, stats);
            drop(requests);
            let prepared: Vec<P> = {
                let wave: Vec<(&S, &D::Answer)> =
                    chains.iter().map(|&c| &states[c]).zip(&answers).collect();
                prepare(env, &wave)
            };
            assert_eq!(
                prepared.len(),
                chains.len(),
                "invariant: prepare gives one value per answer"
            );
            live = Vec::with_capacity(chains.len());
            for ((c, a), p) in chains.into_iter().zip(answers).zip(prepared) {
                step(env, &mut states[c], a, p);
                if let Some(r) = make(&states[c]) {
                    live.push((c, r));
                }
            }
        }
        states
    }

    /// Asks one request per item and returns each item beside its answer, in item order:
    /// `make` turns an item into its request (keys must ascend with the items). An item
    /// `make` cannot turn into a request (an agent without its components) is dropped,
    /// counted in [`BehaviourStats::unbuilt`] and logged as an error: a bug, never a silent
    /// skip.
    pub fn ask_each<'w, D: Decision, T>(
        &self,
        ctx: &Context<'_>,
        stats: &mut BehaviourStats,
        items: impl IntoIterator<Item = T>,
        mut make: impl FnMut(&T) -> Option<Request<'w, D>>,
    ) -> Vec<(T, D::Answer)> {
        let mut kept = Vec::new();
        let mut requests = Vec::new();
        let mut unbuilt = 0u64;
        for t in items {
            match make(&t) {
                Some(r) => {
                    requests.push(r);
                    kept.push(t);
                }
                None => unbuilt += 1,
            }
        }
        if unbuilt > 0 {
            tracing::error!(
                kind = D::KIND,
                unbuilt,
                "requests that could not be built (agents without their components) were dropped"
            );
            BehaviourStats::bump(&mut stats.unbuilt, D::KIND, unbuilt);
        }
        let answers = self.ask(ctx, &requests, stats);
        kept.into_iter().zip(answers).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_every_count_per_kind() {
        let mut a = BehaviourStats::default();
        a.requests.insert("compress".into(), 3);
        a.fallbacks.insert("compress".into(), 1);
        let mut b = BehaviourStats::default();
        b.requests.insert("compress".into(), 4);
        b.requests.insert("importance".into(), 2);
        b.unbuilt.insert("page".into(), 5);
        b.text_requests.insert("feel".into(), 6);
        b.text_fallbacks.insert("feel".into(), 7);
        a.absorb(b);
        let map = |v: &[(&str, u64)]| -> BTreeMap<String, u64> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(a.requests, map(&[("compress", 7), ("importance", 2)]));
        assert_eq!(a.fallbacks, map(&[("compress", 1)]));
        assert_eq!(a.unbuilt, map(&[("page", 5)]));
        assert_eq!(a.text_requests, map(&[("feel", 6)]));
        assert_eq!(a.text_fallbacks, map(&[("feel", 7)]));
    }
}
