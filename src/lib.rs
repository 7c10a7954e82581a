//! # recagent
//!
//! An entity-component-system engine that simulates how people behave in front of a recommender
//! system, after RecAgent (Wang et al., "User Behavior Simulation with Large Language Model based
//! Agents", arXiv 2306.02552). Users, items and posts are bevy entities; one round is one run of a
//! schedule of phase systems (activate → recommend → watch → feel → chat → broadcast → remember →
//! record). Every agent decision is a typed request ([`decision`]) answered in batches by a
//! behaviour backend (the embedded `offline` user model by default), applied in user-id order, so
//! a seeded run is reproducible byte for byte.
//!
//! Start with [`sim::Sim`] or [`sim::SimBuilder`]; the CLI (`recagent run`) is a thin layer over
//! them. Behaviours are plugins ([`SimPlugins`], [`plugin`]).

pub mod analysis;
pub mod behaviour;
pub mod calibration;
pub mod catalog;
pub mod checkpoint;
pub mod clock;
pub mod components;
pub mod config;
pub mod decision;
pub mod demo;
pub mod domain;
pub mod embed;
pub mod ids;
pub mod intervention;
pub mod io;
pub mod llm;
pub mod memory;
pub mod observation;
pub mod plugin;
pub mod recommender;
pub mod rng;
pub mod schedule;
pub mod sim;
pub mod social;
pub mod world;

#[cfg(test)]
pub(crate) mod testing;

#[path = "../systems/mod.rs"]
pub mod systems;

/// The shipped behaviours, one line each: the decision kinds, then one plugin per behaviour
/// (`systems/`), then the report's setting (`report: true`, [`analysis::report::ReportPlugin`]).
/// [`sim::SimBuilder`] adds them unless told not to.
pub struct SimPlugins;

impl bevy_app::Plugin for SimPlugins {
    fn build(&self, app: &mut bevy_app::App) {
        app.add_plugins((
            decision::BuiltinDecisions,
            systems::activate::ActivatePlugin,
            systems::recommend::RecommendPlugin,
            systems::watch::WatchPlugin,
            systems::feel::FeelPlugin,
            systems::chat::ChatPlugin,
            systems::broadcast::BroadcastPlugin,
            systems::remember::RememberPlugin,
            systems::record::RecordPlugin,
            systems::metrics::MetricsPlugin,
            analysis::report::ReportPlugin,
            intervention::InterventionPlugin,
        ));
    }
}

/// The types most users of the library need.
pub mod prelude {
    pub use crate::config::SimConfig;
    pub use crate::ids::{ItemId, PostId, UserId};
    pub use crate::io::output::OutputPaths;
    pub use crate::plugin::{Counter, Settings, SimApp};
    pub use crate::sim::{Sim, SimBuilder, SimError, SimPhase, SimTick};
    pub use crate::SimPlugins;
}
