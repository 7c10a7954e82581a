//! Integration tests (one binary). Tests that need `../shared` print a message and return early
//! when it is absent.

mod calibrate;
mod checkpoint;
mod cli_log;
mod common;
mod compat;
mod config_errors;
mod custom_behaviour;
mod demo;
mod determinism;
mod embed_minilm;
mod export;
mod fidelity;
mod fuzz;
mod golden;
mod hybrid;
mod intervention;
mod lifecycle;
mod llm_bridge;
mod llm_mock;
mod llm_parse_corpus;
mod llm_structured;
mod loaders;
mod memory;
mod metrics;
mod outputs;
mod recommender_eval;
mod report;
mod robust;
mod run_shared;
mod scenario;
mod social;
