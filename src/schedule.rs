//! The schedules of a simulation and the phases of a round: what plugins place their systems
//! in. A leaf: the engine ([`crate::sim`]) runs them, plugins ([`crate::plugin`]) join them.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// The schedule label of one round.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SimTick;

/// The schedule run once when the world is built (after the agents and items are spawned,
/// before a checkpoint is restored): plugins insert their components and initial state here.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SimSetup;

/// The schedule run once when the output files have been created (or reopened, on resume),
/// before a checkpoint is restored and before the first round: plugins that write files of their
/// own beside the outputs create them here (an error goes to `OutputError` and fails the build).
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SimOutputs;

/// The phases of a round, in order (chained). Every system of [`SimTick`] belongs to one; a
/// plugin places its systems with `.in_set(SimPhase::X)` and, inside a phase, `.before(..)` /
/// `.after(..)` another plugin's systems, or adds a set of its own between two phases
/// (`configure_sets(SimTick, MySet.after(SimPhase::Feel).before(SimPhase::Chat))`). No phase
/// belongs to a plugin: they are the steps of RecAgent's round (spec §2).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimPhase {
    /// The clock advances (core).
    Begin,
    /// What the agents see at the start of a round (posts), who is active, the top-level
    /// choice.
    Activate,
    /// First pages for agents entering the recommender.
    Recommend,
    /// Browsing: page decisions, next pages, searches, watches.
    Watch,
    /// Feelings and ratings.
    Feel,
    /// Social choice and chats.
    Chat,
    /// Posts and their delivery.
    Broadcast,
    /// Memory writes.
    Remember,
    /// Counters and model updates from the round's interactions.
    Record,
    /// The round's messages and interactions are written out (core).
    End,
}
