//! The run manifest (`manifest.json`): configuration (secrets redacted, every plugin's resolved
//! settings), seed, version, backend, data report, counters so far. Rewritten atomically after
//! each round. Deterministic: no wall-clock time.

use super::{Lineage, RecState, Sim, SimError};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::clock::{format_timestamp, SimClock};
use crate::config::SimConfig;
use crate::io::output::OutputSink;
use crate::plugin::{Counters, SettingsRegistry};
use crate::world::LoadReport;

/// The configuration as the manifest and checkpoints record it: the core keys and every
/// plugin's resolved settings (defaults included); API keys redacted when `redact`, removed
/// (with URL credentials) otherwise.
pub fn resolved_config(world: &bevy_ecs::world::World, redact: bool) -> serde_json::Value {
    let cfg = world.resource::<SimConfig>();
    let mut v = if redact {
        cfg.redacted_json()
    } else {
        cfg.without_secrets().to_json()
    };
    if let Some(r) = world.get_resource::<SettingsRegistry>() {
        r.merge_into(world, &mut v);
    }
    v
}

impl Sim {
    /// Writes the manifest with `status` (`running`, `finished`, `interrupted after round 3`).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_manifest(&self, status: &str) -> Result<(), SimError> {
        let w = self.app.world();
        let cfg = w.resource::<SimConfig>();
        let sink = w.resource::<OutputSink>();
        let clock = w.resource::<SimClock>();
        let stats = w.resource::<BehaviourStats>();
        let by_phase = per_phase(w, |k| stats.requests_of(k));
        let fallbacks_by_phase = per_phase(w, |k| stats.fallbacks_of(k));
        let mut m = serde_json::json!({
            "engine": "recagent",
            "version": env!("CARGO_PKG_VERSION"),
            "status": status,
            "seed": cfg.seed,
            "backend": w.resource::<Behaviour>().0.name(),
            "recommender": w.resource::<RecState>().model.name(),
            "warm_start": w.resource::<RecState>().warm_start,
            "rounds_completed": clock.round,
            "rounds_planned": cfg.round,
            "start_time": cfg.start_time,
            "last_round_start": (clock.round > 0).then(|| format_timestamp(clock.now())),
            "data": w.resource::<LoadReport>(),
            "outputs": &sink.paths,
            "messages_format": "jsonl",
            "summary": w.resource::<Counters>().snapshot(),
            "behaviour_requests": by_phase,
            "behaviour_fallbacks": fallbacks_by_phase,
            "base_dir": cfg.base_dir,
            "config": resolved_config(w, true),
            "parent_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.parent.clone()),
            "last_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.last.clone()),
        });
        if let Some(u) = w.get_resource::<crate::llm::LlmStats>() {
            let mut u = serde_json::to_value(u.snapshot()).unwrap_or_default();
            if let Some(o) = u.as_object_mut() {
                let kinds = o.remove("per_kind");
                let usage = |k: &str| {
                    kinds
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .and_then(|x| serde_json::from_value::<crate::llm::Usage>(x.clone()).ok())
                        .unwrap_or_default()
                };
                let mut phases = [crate::llm::Usage::default(); 8];
                if let Some(dk) = w.get_resource::<crate::decision::DecisionKinds>() {
                    for k in dk.iter() {
                        if let Some(p) = phases.get_mut(k.phase.code() as usize) {
                            p.add(usage(k.kind));
                        }
                    }
                }
                o.insert(
                    "per_phase".into(),
                    serde_json::to_value(phases).unwrap_or_default(),
                );
            }
            m["llm_usage"] = u;
        }
        let bytes = serde_json::to_vec_pretty(&m).expect("invariant: JSON values serialise");
        crate::io::output::write_atomic(&sink.paths.manifest, &bytes).map_err(|source| {
            SimError::Io {
                path: sink.paths.manifest.display().to_string(),
                source,
            }
        })
    }
}

/// A per-kind count summed into the phase-indexed array of the manifest (index = phase code).
fn per_phase(w: &bevy_ecs::world::World, count: impl Fn(&str) -> u64) -> [u64; 8] {
    let mut a = [0u64; 8];
    if let Some(dk) = w.get_resource::<crate::decision::DecisionKinds>() {
        for k in dk.iter() {
            if let Some(x) = a.get_mut(k.phase.code() as usize) {
                *x += count(k.kind);
            }
        }
    }
    a
}
