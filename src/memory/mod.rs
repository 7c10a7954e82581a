//! RecAgent's memory model (spec §3), pure: no ECS, no I/O, no LLM. The LLM-backed steps
//! (compression, importance, insight, reflection) are typed requests made by the remember phase
//! (`systems/remember.rs`); this module holds the state and the arithmetic.
//!
//! - [`MemoryState`]: short-term entries ([`StmEntry`]) and the long-term stream ([`LtmRecord`]).
//! - [`stm_add`]: reinforcement and transfer (spec §3.2 step 2).
//! - [`retrieve`]: scoring and top-k (spec §3.6), a pure function.
//! - [`forget`]: the forgetting pass (spec §3.4).
//! - [`merge_into`]: reflection's near-duplicate merge (spec §3.5).
//! - [`MemoryParams`]: the `memory:` config section.
//!
//! Fixed on purpose (spec marks these as bugs/hazards): importance replies are clamped to 1..=10;
//! relevance is the cosine of unit vectors for every record (the original used `1 − d/√2` with a
//! squared distance, and only for the top-100 hits); reflection cites only ids inside trailing
//! `[...]` spans and ignores empty lines; forgotten and merged records are removed, not kept as
//! `[FORGET]`/`[MERGE]` markers; retrieval does not mutate (its access-time update and STM
//! reinforcement are applied in the remember phase, in id order); long-term memory is capped.

mod params;
mod record;
mod reflection;
mod scoring;
mod stream;
mod vector;

pub use params::MemoryParams;
pub use record::{approx_bytes, sigmoid, LtmRecord, MemoryState, StmEntry};
pub use reflection::{forget, forget_probabilities, merge_into, reflection_due};
pub use scoring::{recalled_texts, recency, retrieval_score, retrieve};
pub use stream::{enforce_cap, ltm_add, stm_add, touch, StmOp, Transfer};
pub use vector::{quantise_unit, QRef, QVec};

#[cfg(test)]
mod tests;
