//! The shipped behaviour plugins, one file per behaviour. Compiled into the `recagent` crate as
//! its `systems` module (`src/lib.rs` includes this folder) and registered together by
//! [`crate::SimPlugins`], one line each.
//!
//! # Adding a behaviour
//! Write a plugin (here, or in your own crate or example) that registers its settings,
//! components, counters, checkpointed state and decision kinds through
//! [`crate::plugin::SimApp`], and adds its systems to the [`crate::sim::SimTick`] schedule in a
//! [`crate::sim::SimPhase`] set; then add it to the builder
//! (`SimBuilder::new(cfg).plugins(MyPlugin)`) or to `SimPlugins`. See
//! `examples/custom_behaviour.rs`.

pub mod activate;
pub mod broadcast;
pub mod chat;
pub mod feel;
pub mod metrics;
pub mod recommend;
pub mod record;
pub mod remember;
pub mod watch;
