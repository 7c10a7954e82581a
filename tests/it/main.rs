//! Integration tests (one binary). Tests that need `../shared` print a message and return early
//! when it is absent.

mod checkpoint;
mod cli_log;
mod common;
mod compat;
mod config_errors;
mod custom_behaviour;
mod determinism;
mod embed_minilm;
mod export;
mod golden;
mod llm_bridge;
mod llm_mock;
mod llm_parse_corpus;
mod loaders;
mod memory;
mod metrics;
mod recommender_eval;
mod report;
mod run_shared;
mod scenario;
mod social;
