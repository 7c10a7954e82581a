//! The `hybrid` behaviour backend: the offline model makes every decision, an LLM writes the
//! words.
//!
//! Each batch is first answered by the offline backend ([`OfflineBackend`], whatever model its
//! `offline:` settings select), exactly as `backend: offline` answers it. For a kind with words
//! ([`crate::decision::Decision::WORDS`]: feelings, dialogues, posts), the requests of the
//! agents chosen to write ([`writes_words`]) then get their words from the LLM
//! ([`LlmBackend::answer_words`]): the words prompt shows the decisions (the rating, who says
//! each line and which movie it names, the post's subject), and the reply replaces only the
//! text ([`crate::decision::Decision::with_words`]). A failed call or a reply without usable
//! words (after `llm_options.parse_retries` corrective retries) keeps the offline words and is
//! counted (`text_fallbacks` in the manifest).
//!
//! # Determinism
//! The decisions are the offline backend's, drawn from the same per-request streams, so a
//! hybrid run makes the same decisions as an offline run of the same configuration whatever
//! the LLM writes: interactions, ratings, pages, chat partners and lengths, which lines name
//! which items (tested byte for byte against the mock server). One path from words to decisions
//! remains, through memory: chat and post texts enter the agents' memories, and the offline
//! top-level choice reads whether an agent recalls any long-term memory
//! ([`crate::decision::top`]), which depends on how similar its memories' texts are. It matters
//! only for an agent that has neither watched nor heard of anything (otherwise that term is
//! already on).
//!
//! Words calls are keyed, recorded and replayed as decisions are (`transcript.jsonl`;
//! `hybrid.text_source: replay` answers from it).

use super::offline::OfflineBackend;
use super::BehaviourBackend;
use crate::decision::{Batch, Context};
use crate::ids::UserId;
use crate::llm::LlmBackend;
use crate::rng::{unit_hash, Stream};

/// The hybrid backend.
pub struct HybridBackend {
    /// The decisions.
    pub offline: OfflineBackend,
    /// The words (an `llm` or `replay` LLM backend with the words templates loaded,
    /// [`LlmBackend::load_words_prompts`]); `None` when `text_share` is 0.
    pub words: Option<LlmBackend>,
    /// Share of agents whose words the LLM writes, [0, 1] (`hybrid.text_share`).
    pub text_share: f64,
}

/// True when agent `user` has its words written by the LLM at share `text_share` ∈ [0, 1]:
/// `unit_hash(seed, HybridText, user) < text_share`, a fixed draw per agent, so the set of
/// writing agents is stable over the run (and over runs with the same seed), and grows with the
/// share (every agent chosen at 0.2 is chosen at 0.5). 1 chooses every agent, 0 none.
///
/// # Examples
/// ```
/// use recagent::behaviour::hybrid::writes_words;
/// use recagent::ids::UserId;
/// assert!(writes_words(7, UserId(3), 1.0));
/// assert!(!writes_words(7, UserId(3), 0.0));
/// let n = (0..10_000).filter(|&u| writes_words(7, UserId(u), 0.25)).count();
/// assert!((2_300..2_700).contains(&n), "{n}");
/// ```
pub fn writes_words(seed: u64, user: UserId, text_share: f64) -> bool {
    text_share >= 1.0 || unit_hash(seed, Stream::HybridText, &[u64::from(user.0)]) < text_share
}

impl BehaviourBackend for HybridBackend {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        self.offline.answer_batch(ctx, batch);
        let Some(words) = &self.words else {
            return;
        };
        if batch.words_name().is_none() || self.text_share <= 0.0 {
            return;
        }
        let picks: Vec<usize> = (0..batch.len())
            .filter(|&i| writes_words(ctx.seed, batch.key(i).user, self.text_share))
            .collect();
        words.answer_words(ctx, batch, &picks);
    }
}
