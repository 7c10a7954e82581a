//! Integration tests (one binary). Tests that need `../shared` print a message and return early
//! when it is absent.

mod checkpoint;
mod common;
mod config_errors;
mod determinism;
mod loaders;
mod recommender_eval;
mod memory;
mod run_shared;
mod social;
