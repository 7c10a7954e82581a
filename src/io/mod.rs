//! Input loaders and output writers.

pub mod data;
pub mod output;
