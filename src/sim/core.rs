//! [`CorePlugin`]: the round schedule and what the engine itself owns: the clock, the agents'
//! shared components (memory, histories, relationships, engagement), the recommender's state,
//! the counters and the output files. No behaviour is named here; behaviours are plugins
//! ([`crate::SimPlugins`]).

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, SingleThreadedExecutor};

use super::{OutputError, RecState, RoundLog, SimError, SimOutputs, SimPhase, SimSetup, SimTick};
use crate::behaviour::BehaviourStats;
use crate::clock::{format_timestamp, SimClock};
use crate::components::{Engagement, Histories, Memory, Relationships};
use crate::io::output::OutputSink;
use crate::plugin::parts::{decode, encode};
use crate::plugin::{CheckpointPart, Counter, Counters, SimApp};
use crate::recommender::InteractionLog;

/// Rounds completed (the manifest's `summary.rounds`).
pub const ROUNDS: Counter = Counter::new("rounds", "rounds");

/// The engine's schedule, systems and state (added first by [`super::SimBuilder`]).
pub struct CorePlugin;

impl Plugin for CorePlugin {
    fn build(&self, app: &mut App) {
        let mut tick = Schedule::new(SimTick);
        // Explicit: a dependency enabling `bevy_ecs/multi_threaded` must not change our order.
        tick.set_executor(SingleThreadedExecutor::new());
        tick.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            ..Default::default()
        });
        tick.configure_sets(
            (
                SimPhase::Begin,
                SimPhase::Activate,
                SimPhase::Recommend,
                SimPhase::Watch,
                SimPhase::Feel,
                SimPhase::Chat,
                SimPhase::Broadcast,
                SimPhase::Remember,
                SimPhase::Record,
                SimPhase::End,
            )
                .chain(),
        );
        tick.add_systems((
            begin_round.in_set(SimPhase::Begin),
            drain_model_counts.in_set(SimPhase::End).before(write_round),
            write_round.in_set(SimPhase::End),
        ));
        app.add_schedule(tick);
        let mut setup = Schedule::new(SimSetup);
        setup.set_executor(SingleThreadedExecutor::new());
        app.add_schedule(setup);
        let mut opened = Schedule::new(SimOutputs);
        opened.set_executor(SingleThreadedExecutor::new());
        app.add_schedule(opened);
        app.init_resource::<Counters>()
            .init_resource::<BehaviourStats>()
            .add_counters("run", &[ROUNDS])
            // The summary's first line names the rounds; no line of its own.
            .add_summary("run", |_| None)
            .checkpoint_resource::<SimClock>("clock")
            .checkpoint_resource::<BehaviourStats>("behaviour_stats")
            .checkpoint_component::<Memory>("memory")
            .checkpoint_component::<Histories>("histories")
            .checkpoint_component::<Relationships>("relationships")
            .checkpoint_component::<Engagement>("engagement")
            .checkpoint_part(CountersPart)
            .checkpoint_part(RecommenderPart)
            .checkpoint_part(LlmUsagePart);
    }
}

/// Advances the clock to the next round (the first system of every round).
pub fn begin_round(mut clock: ResMut<SimClock>) {
    clock.round += 1;
}

/// Adds what the recommender counted this round (e.g. the External model's failed requests,
/// [`crate::recommender::Recommender::take_counts`]) to the run's counters, group `recommender`.
pub fn drain_model_counts(rec: Res<RecState>, mut counters: ResMut<Counters>) {
    for c in rec.model.take_counts() {
        counters.add(&Counter::new(c.name, c.label), c.n);
    }
}

/// Appends the round's messages and interactions to the output files and flushes them.
pub fn write_round(
    clock: Res<SimClock>,
    mut log: ResMut<RoundLog>,
    mut sink: ResMut<OutputSink>,
    mut counters: ResMut<Counters>,
    mut error: ResMut<OutputError>,
) {
    let (messages, interactions) = log.take_sorted();
    let time = format_timestamp(clock.now());
    if let Err(e) = sink.write_round(clock.round, &time, &messages, &interactions) {
        error.0 = Some(SimError::File(e));
    }
    counters.set(&ROUNDS, u64::from(clock.round));
}

/// The counters, by name.
struct CountersPart;

impl CheckpointPart for CountersPart {
    fn name(&self) -> &str {
        "counters"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        encode(&world.resource::<Counters>().snapshot())
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        world.resource_mut::<Counters>().restore(decode(bytes)?);
        Ok(())
    }
}

/// The recommender's interaction log, learned state (MF / LightGCN / MultVAE weights, optimiser
/// moments) and model name, so a warm-started model resumes exactly; a model without saved
/// state is re-fitted from the restored log (its fit is a pure function of it), and a branch to
/// another model trains that model afresh on the log (see [`crate::recommender::restore_model`]).
struct RecommenderPart;

/// The part as written: (log, the model's state, the model's name). The state is a [`Blob`]
/// (one binary value; checkpoints before it hold a sequence of bytes, which it reads too).
///
/// [`Blob`]: crate::io::blob::Blob
type SavedRecommender = (
    InteractionLog,
    Option<crate::io::blob::Blob>,
    Option<String>,
);

impl CheckpointPart for RecommenderPart {
    fn name(&self) -> &str {
        "recommender"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        let rec = world.resource::<RecState>();
        encode(&(
            &rec.log,
            rec.model.save_state().map(crate::io::blob::Blob),
            Some(rec.model.name()),
        ))
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        // Checkpoints written before the name was saved hold a pair.
        let (log, state, saved): SavedRecommender = decode(bytes).or_else(|e| {
            decode::<(InteractionLog, Option<crate::io::blob::Blob>)>(bytes)
                .map(|(l, s)| (l, s, None))
                .map_err(|_| e)
        })?;
        let mut rec = world.resource_mut::<RecState>();
        let rec = &mut *rec;
        rec.log = log;
        let outcome = crate::recommender::restore_model(
            rec.model.as_mut(),
            &rec.log,
            saved.as_deref(),
            state.as_ref().map(|b| b.0.as_slice()),
        );
        match outcome {
            crate::recommender::ModelRestore::Restored => {}
            crate::recommender::ModelRestore::Changed { from } => tracing::info!(
                "recommender {from} of the checkpoint replaced by {}, trained on the {} watches so far",
                rec.model.name(),
                rec.log.watches().len()
            ),
            crate::recommender::ModelRestore::Refitted { reason: None } => {}
            crate::recommender::ModelRestore::Refitted { reason: Some(e) } => {
                tracing::warn!("model state not restored ({e}); re-fitting");
            }
        }
        Ok(())
    }
}

/// LLM call and token counters (`backend: llm`/`replay`), so a resumed run reports the whole
/// run's usage and cost, not only what it made after the resume.
struct LlmUsagePart;

impl CheckpointPart for LlmUsagePart {
    fn name(&self) -> &str {
        "llm_usage"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        encode(
            &world
                .get_resource::<crate::llm::LlmStats>()
                .map(crate::llm::LlmStats::snapshot),
        )
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let usage: Option<crate::llm::LlmUsage> = decode(bytes)?;
        if let (Some(u), Some(stats)) = (usage, world.get_resource::<crate::llm::LlmStats>()) {
            if let Ok(mut g) = stats.0.lock() {
                *g = u;
            }
        }
        Ok(())
    }
}
