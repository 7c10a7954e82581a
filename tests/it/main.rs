//! Integration tests (one binary). Tests that need `../shared` print a message and return early
//! when it is absent.

mod common;
mod config_errors;
mod determinism;
mod loaders;
mod memory;
mod run_shared;
