//! Cost estimate before an LLM run: round one is simulated with the offline model while every
//! request's prompt is rendered (not sent) and its tokens counted; the figure is scaled by the
//! number of rounds. Beside it, the `hybrid` backend's cost on the same round: only the words
//! calls (feelings, dialogues, posts: [`crate::decision::Decision::WORDS`]) of the agents that
//! write at `hybrid.text_share` ([`crate::behaviour::hybrid::writes_words`]), their words
//! prompts rendered from the offline decisions.
//!
//! # Units
//! Tokens are estimated as `chars / 4` (see [`approx_tokens`]); completion tokens per request are
//! the typical answer lengths in [`typical_completion_tokens`] (capped by `max_token`). Corrective
//! retries and prompts growing with memory are not in the estimate; it is a planning figure.

use std::sync::{Arc, Mutex};

use crate::behaviour::hybrid::writes_words;
use crate::behaviour::BehaviourBackend;
use crate::config::{BackendKind, SimConfig};
use crate::decision::prompt::approx_tokens;
use crate::decision::{Batch, Context, DecisionKinds, OfflineParams, Prompts};
use crate::io::output::OutputPaths;
use crate::llm::Usage;
use crate::sim::{Sim, SimError};

/// The estimate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Requests in round one.
    pub requests_round_one: u64,
    /// Estimated tokens of round one.
    pub round_one: Usage,
    /// Estimated tokens of the whole run (round one x rounds).
    pub run: Usage,
    /// Estimated cost of the run at the configured prices.
    pub cost: f64,
    /// Hybrid backend: words requests in round one (at `hybrid.text_share`).
    pub hybrid_requests_round_one: u64,
    /// Hybrid backend: estimated tokens of round one's words requests.
    pub hybrid_round_one: Usage,
    /// Hybrid backend: estimated tokens of the whole run (round one x rounds).
    pub hybrid_run: Usage,
    /// Hybrid backend: estimated cost of the run at the configured prices.
    pub hybrid_cost: f64,
}

struct DryRender {
    params: OfflineParams,
    parallel: bool,
    prompts: Prompts,
    max_token: u64,
    text_share: f64,
    /// `(requests, usage)` of the full LLM backend, then of the hybrid backend's words.
    acc: Arc<Mutex<[(u64, Usage); 2]>>,
}

impl BehaviourBackend for DryRender {
    fn name(&self) -> &'static str {
        "dry-render"
    }
    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        let mut u = Usage::default();
        for i in 0..batch.len() {
            u.prompt_tokens += approx_tokens(&batch.render(i, &self.prompts, ctx).text) as u64;
            u.completion_tokens += batch.typical_completion_tokens().min(self.max_token);
        }
        batch.answer_offline(ctx, &self.params, self.parallel);
        // The hybrid backend asks only for the words of the writing agents, rendered from the
        // offline decisions just made.
        let mut words = (0u64, Usage::default());
        if batch.words_name().is_some() && self.text_share > 0.0 {
            for i in 0..batch.len() {
                if !writes_words(ctx.seed, batch.key(i).user, self.text_share) {
                    continue;
                }
                if let Some(r) = batch.render_words(i, &self.prompts, ctx) {
                    words.0 += 1;
                    words.1.prompt_tokens += approx_tokens(&r.text) as u64;
                    words.1.completion_tokens +=
                        batch.typical_completion_tokens().min(self.max_token);
                }
            }
        }
        if let Ok(mut a) = self.acc.lock() {
            a[0].0 += batch.len() as u64;
            a[0].1.add(u);
            a[1].0 += words.0;
            a[1].1.add(words.1);
        }
    }
}

/// Estimates the tokens and cost of running `cfg` with the LLM backend, and with the hybrid
/// backend at `cfg.hybrid.text_share`. Writes round one's
/// outputs to a scratch directory under the system temp dir, removed afterwards.
///
/// # Errors
/// [`SimError`] as in [`Sim::new`] and [`Sim::step`].
pub fn estimate(cfg: &SimConfig) -> Result<Estimate, SimError> {
    let mut dry = cfg.clone();
    dry.backend = BackendKind::Offline;
    dry.round = 1;
    let scratch = std::env::temp_dir().join(format!("recagent-estimate-{}", std::process::id()));
    let outputs = OutputPaths {
        messages: scratch.join("messages.jsonl"),
        interactions: scratch.join("interaction.csv"),
        manifest: scratch.join("manifest.json"),
        log: scratch.join("run.log"),
    };
    let result = (|| {
        let mut sim = Sim::new(dry.clone(), outputs)?;
        let names = Arc::new(
            sim.agent_names()
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        let dir = cfg.prompt_dir();
        let kinds = sim
            .world()
            .get_resource::<DecisionKinds>()
            .cloned()
            .unwrap_or_default();
        let mut prompts = Prompts::load(
            dir.as_deref(),
            names,
            cfg.llm_options.prompt_token_budget as usize,
            kinds.iter().map(|k| (k.kind, k.template)),
        )
        .map_err(crate::llm::LlmSetupError::from)?;
        prompts
            .add_templates(dir.as_deref(), kinds.words_templates())
            .map_err(crate::llm::LlmSetupError::from)?;
        let acc = Arc::new(Mutex::new([(0u64, Usage::default()); 2]));
        sim.set_backend(Box::new(DryRender {
            params: cfg.offline.clone(),
            parallel: cfg.runs_parallel(),
            prompts,
            max_token: u64::from(cfg.max_token),
            text_share: cfg.hybrid.text_share,
            acc: acc.clone(),
        }));
        sim.step()?;
        let [(n, u), (hn, hu)] = acc.lock().map(|g| *g).unwrap_or_default();
        let rounds = u64::from(cfg.round);
        let scale = |u: Usage| Usage {
            prompt_tokens: u.prompt_tokens * rounds,
            completion_tokens: u.completion_tokens * rounds,
        };
        let (run, hybrid_run) = (scale(u), scale(hu));
        Ok(Estimate {
            requests_round_one: n,
            round_one: u,
            run,
            cost: cfg
                .llm_options
                .cost(run.prompt_tokens, run.completion_tokens),
            hybrid_requests_round_one: hn,
            hybrid_round_one: hu,
            hybrid_run,
            hybrid_cost: cfg
                .llm_options
                .cost(hybrid_run.prompt_tokens, hybrid_run.completion_tokens),
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
