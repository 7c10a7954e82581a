//! The run manifest (`manifest.json`): configuration (secrets redacted, every plugin's resolved
//! settings), seed, version, backend, data report, counters so far and the plugins' summary
//! values ([`crate::plugin::SimApp::add_summary_value`]). Rewritten atomically after
//! each round. Deterministic: no wall-clock time.

use super::{Lineage, RecState, RunId, Sim, SimError};
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::clock::{format_timestamp, SimClock};
use crate::config::SimConfig;
use crate::io::output::OutputSink;
use crate::plugin::{Counters, SettingsRegistry, SummaryValues};
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

/// A per-kind counter as the manifest writes it: an object keyed by decision kind name
/// ([`crate::decision::Decision::KIND`]), sorted by name, with every registered kind present
/// (0 when it never counted), so a reader finds each kind's label whether or not it occurred;
/// counts of a kind no longer registered are kept.
pub fn per_kind(
    world: &bevy_ecs::world::World,
    counts: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    let mut out = counts.clone();
    if let Some(kinds) = world.get_resource::<crate::decision::DecisionKinds>() {
        for k in kinds.iter() {
            out.entry(k.kind.to_string()).or_insert(0);
        }
    }
    out
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
        let mut m = serde_json::json!({
            "engine": "recagent",
            "version": env!("CARGO_PKG_VERSION"),
            "status": status,
            "run_id": w.get_resource::<RunId>().map(|r| r.0.as_str()),
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
            "messages_format": if sink.paths.messages_document().is_some() { "json" } else { "jsonl" },
            "summary": w.resource::<Counters>().snapshot(),
            "behaviour_requests": per_kind(w, &stats.requests),
            "behaviour_fallbacks": per_kind(w, &stats.fallbacks),
            "base_dir": cfg.base_dir,
            "config": resolved_config(w, true),
            "parent_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.parent.clone()),
            "last_checkpoint": w.get_resource::<Lineage>().and_then(|l| l.last.clone()),
        });
        if sink.paths.messages_document().is_some() {
            m["messages_stream"] = sink.paths.messages_stream().display().to_string().into();
        }
        if let Some(values) = w.get_resource::<SummaryValues>() {
            for (name, v) in values.values(w) {
                m["summary"][name] = v;
            }
        }
        if let Some(u) = w.get_resource::<crate::llm::LlmStats>() {
            m["llm_usage"] = serde_json::to_value(u.snapshot()).unwrap_or_default();
        }
        if !stats.unbuilt.is_empty() {
            m["behaviour_unbuilt"] = serde_json::to_value(&stats.unbuilt).unwrap_or_default();
        }
        if !stats.text_requests.is_empty() {
            // Hybrid backend: the words the LLM was asked for, and those that kept the offline
            // words (the decisions are the offline model's either way).
            m["text_requests"] = serde_json::to_value(&stats.text_requests).unwrap_or_default();
            let failed: std::collections::BTreeMap<&String, u64> = stats
                .text_requests
                .keys()
                .map(|k| (k, stats.text_fallbacks.get(k).copied().unwrap_or(0)))
                .collect();
            m["text_fallbacks"] = serde_json::to_value(failed).unwrap_or_default();
        }
        let bytes = serde_json::to_vec_pretty(&m).expect("invariant: JSON values serialise");
        let write = || {
            crate::io::output::write_atomic(&sink.paths.manifest, &bytes).map_err(|source| {
                SimError::Io {
                    path: sink.paths.manifest.display().to_string(),
                    source,
                }
            })
        };
        match w.get_resource::<ManifestGuard>() {
            None => write(),
            Some(g) => {
                let mut last = g.lock();
                // A forced stop has written the final word; the process is exiting.
                if last.as_ref().is_some_and(|l| l.sealed) {
                    return Ok(());
                }
                write()?;
                *last = Some(LastManifest {
                    path: sink.paths.manifest.clone(),
                    value: m,
                    sealed: false,
                });
                Ok(())
            }
        }
    }
}

/// The manifest this simulation wrote last, kept so that another thread (the CLI's second
/// Ctrl-C, which quits without waiting for the round to end) can leave the manifest saying
/// `interrupted` instead of `running`. Insert one (a shared handle) into the world to enable
/// it; [`Sim::write_manifest`] then writes under its lock, so the two never interleave.
#[derive(bevy_ecs::prelude::Resource, Clone, Debug, Default)]
pub struct ManifestGuard(std::sync::Arc<std::sync::Mutex<Option<LastManifest>>>);

/// What [`ManifestGuard`] holds.
#[derive(Debug)]
pub struct LastManifest {
    path: std::path::PathBuf,
    value: serde_json::Value,
    /// Set by [`ManifestGuard::interrupt`]: later writes are skipped.
    sealed: bool,
}

/// What [`ManifestGuard::interrupt`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptedAt {
    /// `rounds_completed` of the last manifest (the outputs are complete up to it).
    pub rounds_completed: u32,
    /// `rounds_planned`.
    pub rounds_planned: u32,
    /// `last_checkpoint`, to resume from.
    pub last_checkpoint: Option<std::path::PathBuf>,
}

impl ManifestGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<LastManifest>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rewrites the last manifest, if it says `running`, with the status
    /// `interrupted during round N (<why>)` (N = `rounds_completed + 1`, the round that was
    /// cut short), and seals it: later [`Sim::write_manifest`] calls write nothing. Waits for a
    /// manifest write in progress. Returns `None` when there is nothing to rewrite (no manifest
    /// yet, or it already says `finished`, `interrupted ...` or `failed ...`).
    ///
    /// # Errors
    /// I/O errors writing the manifest.
    pub fn interrupt(&self, why: &str) -> std::io::Result<Option<InterruptedAt>> {
        let mut last = self.lock();
        let Some(l) = last.as_mut() else {
            return Ok(None);
        };
        if l.sealed || l.value["status"] != "running" {
            return Ok(None);
        }
        let num = |k: &str| {
            l.value[k]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        let at = InterruptedAt {
            rounds_completed: num("rounds_completed"),
            rounds_planned: num("rounds_planned"),
            last_checkpoint: l.value["last_checkpoint"].as_str().map(Into::into),
        };
        l.value["status"] = format!(
            "interrupted during round {} ({why})",
            at.rounds_completed + 1
        )
        .into();
        let bytes = serde_json::to_vec_pretty(&l.value).expect("invariant: JSON values serialise");
        l.sealed = true;
        crate::io::output::write_atomic(&l.path, &bytes)?;
        Ok(Some(at))
    }
}
