//! Chains of requests of one decision kind: one chain per agent, whose next request is built
//! from the chain's state once its previous answer is applied (a browsing session's page
//! decisions, issue 16 item 6).
//!
//! A backend that can (the LLM backend, [`crate::behaviour::BehaviourBackend::runs_chains`])
//! sends a chain's next request as soon as its previous answer arrives, so an agent never waits
//! for the slowest call of the other agents' step; the others answer the chains step by step,
//! one batch per step across all chains ([`crate::behaviour::Behaviour::ask_chains`]). Either
//! way a chain's requests and answers are the same, because each request is built from its own
//! chain's state alone; what the answers change outside the chains is for the caller to apply
//! in key order once the chains are done.

use std::cell::{Ref, RefCell};

use super::batch::{Batch, DecisionBatch};
use super::{Decision, Request};

/// Chains of requests seen by a backend (object-safe). Requests are numbered in the order they
/// are built, `0..len()`; the first [`Chains::starts`] are the chains' first requests, in key
/// order. Each request is a batch of one.
pub trait Chains {
    /// The kind ([`Decision::KIND`]).
    fn kind(&self) -> &'static str;
    /// Requests built so far (grows as chains settle).
    fn len(&self) -> usize;
    /// True when no request was built.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The chains' first requests: indices `0..starts()`.
    fn starts(&self) -> usize;
    /// Request `i` as a batch of one (its index there is 0), until it is settled; `None` after.
    fn batch(&self, i: usize) -> Option<Ref<'_, dyn Batch + '_>>;
    /// Request `i` has its final answer or failure (after any corrective retries): its chain
    /// applies it (the kind's fallback for a failure or misfit) and builds its next request.
    /// Returns that request's index, `None` when the chain is done. Call once per request.
    fn settle(&self, i: usize) -> Option<usize>;
    /// The step of request `i` in its chain (0 for a first request): outputs that list the
    /// requests (the transcript) order them by step, then key, as step-by-step batches would.
    fn generation(&self, i: usize) -> u32;
}

struct Slot<'w, D: Decision> {
    chain: usize,
    generation: u32,
    batch: Option<DecisionBatch<'w, 'w, D>>,
}

/// The chains of one kind over states `S`: `make` builds a state's next request (`None`: the
/// chain is done), `step` applies an answer to its state.
pub struct ChainRun<'w, D: Decision, S, M, F> {
    states: RefCell<Vec<S>>,
    slots: RefCell<Vec<Slot<'w, D>>>,
    starts: usize,
    make: M,
    step: RefCell<F>,
    /// Answers replaced by the fallback.
    fallbacks: std::cell::Cell<u64>,
}

impl<'w, D, S, M, F> ChainRun<'w, D, S, M, F>
where
    D: Decision,
    M: Fn(&S) -> Option<Request<'w, D>>,
    F: FnMut(&mut S, D::Answer),
{
    /// The chains of `states` (in key order), each with its first request built.
    pub fn new(states: Vec<S>, make: M, step: F) -> Self {
        let slots: Vec<Slot<'w, D>> = states
            .iter()
            .enumerate()
            .filter_map(|(c, s)| {
                make(s).map(|r| Slot {
                    chain: c,
                    generation: 0,
                    batch: Some(DecisionBatch::owned(vec![r])),
                })
            })
            .collect();
        Self {
            starts: slots.len(),
            states: RefCell::new(states),
            slots: RefCell::new(slots),
            make,
            step: RefCell::new(step),
            fallbacks: std::cell::Cell::new(0),
        }
    }

    /// The states once every chain is done, the number of requests, and of fallbacks among
    /// their answers.
    pub fn into_states(self) -> (Vec<S>, u64, u64) {
        let n = self.slots.borrow().len() as u64;
        (self.states.into_inner(), n, self.fallbacks.get())
    }
}

impl<'w, D, S, M, F> Chains for ChainRun<'w, D, S, M, F>
where
    D: Decision,
    M: Fn(&S) -> Option<Request<'w, D>>,
    F: FnMut(&mut S, D::Answer),
{
    fn kind(&self) -> &'static str {
        D::KIND
    }
    fn len(&self) -> usize {
        self.slots.borrow().len()
    }
    fn starts(&self) -> usize {
        self.starts
    }
    fn batch(&self, i: usize) -> Option<Ref<'_, dyn Batch + '_>> {
        Ref::filter_map(self.slots.borrow(), |s| {
            s.get(i)
                .and_then(|s| s.batch.as_ref())
                .map(|b| b as &dyn Batch)
        })
        .ok()
    }
    fn settle(&self, i: usize) -> Option<usize> {
        let (chain, generation, batch) = {
            let mut slots = self.slots.borrow_mut();
            let slot = slots.get_mut(i)?;
            (slot.chain, slot.generation, slot.batch.take()?)
        };
        let (answers, fallbacks) = batch.finish();
        self.fallbacks.set(self.fallbacks.get() + fallbacks);
        let answer = answers.into_iter().next()?;
        let next = {
            let mut states = self.states.borrow_mut();
            let state = states.get_mut(chain)?;
            (self.step.borrow_mut())(state, answer);
            (self.make)(state)?
        };
        let mut slots = self.slots.borrow_mut();
        slots.push(Slot {
            chain,
            generation: generation + 1,
            batch: Some(DecisionBatch::owned(vec![next])),
        });
        Some(slots.len() - 1)
    }
    fn generation(&self, i: usize) -> u32 {
        self.slots.borrow().get(i).map_or(0, |s| s.generation)
    }
}
