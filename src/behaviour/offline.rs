//! The `offline` behaviour backend: the seeded stochastic user model of
//! [`crate::decision::offline`], no LLM, no network. Each kind's answer is its
//! [`crate::decision::Decision::offline`]; this backend only dispatches, on the rayon pool for
//! large batches when `execution_mode: parallel` (the same answers either way: each request
//! draws from its own stream).

pub use crate::decision::offline::*;

use super::BehaviourBackend;
use crate::decision::{Batch, Context};

/// The offline backend.
#[derive(Clone, Debug)]
pub struct OfflineBackend {
    /// Model parameters.
    pub params: OfflineParams,
    /// Answer batches on the rayon pool.
    pub parallel: bool,
}

impl OfflineBackend {
    /// The offline backend of a configuration: `params` (its `offline:` parameters with the
    /// calibrated model loaded, [`crate::calibration::load_for`]), on the rayon pool when
    /// `execution_mode: parallel`. The one place both `backend: offline` and the hybrid
    /// backend's decisions are built from, so they answer alike.
    pub fn for_config(cfg: &crate::config::SimConfig, params: OfflineParams) -> Self {
        Self {
            params,
            parallel: cfg.runs_parallel(),
        }
    }
}

impl BehaviourBackend for OfflineBackend {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn splits_batches(&self) -> bool {
        self.parallel
    }

    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        batch.answer_offline(ctx, &self.params, self.parallel);
    }
}
