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

fn begin_round(mut clock: ResMut<SimClock>) {
    clock.round += 1;
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

/// The recommender's interaction log and learned state (MF / LightGCN weights, optimiser
/// moments), so a warm-started model resumes exactly; a model without saved state is re-fitted
/// from the restored log (its fit is a pure function of it).
struct RecommenderPart;

impl CheckpointPart for RecommenderPart {
    fn name(&self) -> &str {
        "recommender"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        let rec = world.resource::<RecState>();
        encode(&(&rec.log, rec.model.save_state()))
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let (log, model): (InteractionLog, Option<Vec<u8>>) = decode(bytes)?;
        let mut rec = world.resource_mut::<RecState>();
        let rec = &mut *rec;
        rec.log = log;
        let restored = match &model {
            Some(bytes) => rec
                .model
                .load_state(bytes)
                .map_err(|e| tracing::warn!("model state not restored ({e}); re-fitting"))
                .is_ok(),
            None => false,
        };
        if !restored {
            rec.model.fit(&rec.log);
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
