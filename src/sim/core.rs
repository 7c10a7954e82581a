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

/// The part as read: (log, the model's state, the model's name). The state is a [`Blob`] (one
/// binary value; checkpoints before it hold a sequence of bytes, which it reads too), borrowed
/// from the checkpoint's bytes.
///
/// [`Blob`]: crate::io::blob::Blob
type SavedRecommender<'a> = (
    InteractionLog,
    Option<crate::io::blob::BlobRef<'a>>,
    Option<String>,
);

impl CheckpointPart for RecommenderPart {
    fn name(&self) -> &str {
        "recommender"
    }
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        crate::plugin::parts::pieces_joined(self, world)
    }
    /// The MessagePack array `[log, state, name]` in three pieces, the model's state handed on
    /// as the model wrote it: at a million agents with MF it is 0.8 GB, which encoding the
    /// array in one buffer copied twice more.
    fn save_to(
        &self,
        world: &mut World,
        out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        let rec = world.resource::<RecState>();
        let mut head = Vec::new();
        rmp::encode::write_array_len(&mut head, 3).map_err(|e| e.to_string())?;
        head.extend_from_slice(&encode(&rec.log)?);
        out(head)?;
        match rec.model.save_state() {
            Some(state) => {
                let len = u32::try_from(state.len())
                    .map_err(|_| "the model's state is over 4 GiB".to_string())?;
                let mut bin = Vec::with_capacity(5);
                rmp::encode::write_bin_len(&mut bin, len).map_err(|e| e.to_string())?;
                out(bin)?;
                out(state)?;
            }
            None => out(encode(&())?)?,
        }
        out(encode(&Some(rec.model.name()))?)
    }
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        // Checkpoints written before the name was saved hold a pair.
        let (log, state, saved): SavedRecommender<'_> = rmp_serde::from_slice(bytes)
            .or_else(|e| {
                rmp_serde::from_slice::<(InteractionLog, Option<crate::io::blob::BlobRef<'_>>)>(
                    bytes,
                )
                .map(|(l, s)| (l, s, None))
                .map_err(|_| e)
            })
            .map_err(|e| e.to_string())?;
        let mut rec = world.resource_mut::<RecState>();
        let rec = &mut *rec;
        rec.log = log;
        let outcome = crate::recommender::restore_model(
            rec.model.as_mut(),
            &rec.log,
            saved.as_deref(),
            state.as_ref().map(|b| &b.0[..]),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Script;
    use crate::io::blob::Blob;
    use crate::testing::tiny;

    /// The part handed on in pieces is the array `save` always wrote, `[log, state, name]`
    /// encoded at once, with the model's state its own piece (moved, not copied); and it
    /// restores into a fresh simulation to the same bytes.
    #[test]
    fn the_recommender_part_in_pieces_is_the_array_it_always_was_and_restores() {
        let mut with_state = Vec::new();
        for model in ["MF", "Popularity", "Random"] {
            let extra = format!("rec_model: {model}\nepoch_num: 2\n");
            let mut t = tiny(6, &[(0, 1)], &extra, Script::new());
            {
                let mut rec = t.world_mut().resource_mut::<RecState>();
                let rec = &mut *rec;
                for (u, i, r) in [(0, 0, 5), (1, 0, 4), (2, 1, 3), (3, 2, 5), (4, 1, 2)] {
                    rec.log.expose(u, i);
                    rec.log.watch(u, i, r, 1);
                }
                rec.model.fit(&rec.log);
            }
            let world = t.world_mut();
            let mut pieces = Vec::new();
            RecommenderPart
                .save_to(world, &mut |p| {
                    pieces.push(p);
                    Ok(())
                })
                .unwrap();
            let rec = world.resource::<RecState>();
            let state = rec.model.save_state();
            assert!(state.is_some() || model != "MF");
            let n_pieces = if state.is_some() { 4 } else { 3 };
            with_state.push(state.is_some());
            let whole =
                encode(&(&rec.log, state.clone().map(Blob), Some(rec.model.name()))).unwrap();
            let watches = rec.log.watches().to_vec();
            assert_eq!(pieces.len(), n_pieces, "{model}");
            assert_eq!(pieces.concat(), whole, "{model}");
            if let Some(s) = &state {
                assert_eq!(&pieces[2], s);
            }
            assert_eq!(RecommenderPart.save(world).unwrap(), whole);
            let mut fresh = tiny(6, &[(0, 1)], &extra, Script::new());
            RecommenderPart.restore(fresh.world_mut(), &whole).unwrap();
            let back = fresh.world().resource::<RecState>();
            assert_eq!(back.log.watches(), &watches[..]);
            assert_eq!(back.model.save_state(), state, "{model}");
            assert_eq!(RecommenderPart.save(fresh.world_mut()).unwrap(), whole);
        }
        // Every shipped model saves a state; a model without one (an External or custom model)
        // gets the nil a `None` was written as.
        assert_eq!(with_state, [true, true, true]);
        assert_eq!(encode(&()).unwrap(), encode(&None::<Blob>).unwrap());
        assert_eq!(encode(&()).unwrap(), [0xc0]);
    }
}
