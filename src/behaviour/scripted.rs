//! A backend with fixed answers, for tests and benches: every decision kind the [`Script`] has
//! a handler for is answered by it, the rest by the kind's fallback (or, with
//! [`Script::offline_otherwise`], by the offline model).
//!
//! ```
//! use recagent::behaviour::scripted::ScriptedBackend;
//! use recagent::decision::top::{Top, TopAction};
//! use recagent::decision::Script;
//!
//! // Agent 0 goes to social media; everyone else does nothing.
//! let backend = ScriptedBackend::new(Script::new().on::<Top>(|req, _| {
//!     Some(if req.agent.id.0 == 0 { TopAction::Social } else { TopAction::Nothing })
//! }));
//! ```

pub use crate::decision::Script;

use super::BehaviourBackend;
use crate::decision::{Batch, Context, OfflineParams};

/// The scripted backend.
#[derive(Debug)]
pub struct ScriptedBackend {
    /// The answers.
    pub script: Script,
    /// Parameters of the offline model, for [`Script::offline_otherwise`].
    pub params: OfflineParams,
}

impl ScriptedBackend {
    /// A backend answering from `script`, with the default offline parameters.
    pub fn new(script: Script) -> Self {
        Self {
            script,
            params: OfflineParams::default(),
        }
    }
}

impl BehaviourBackend for ScriptedBackend {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        batch.answer_scripted(&self.script, ctx, &self.params);
    }
}
