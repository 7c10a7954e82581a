//! Analysis of finished or running simulations: the per-round metrics table (`metrics.csv`),
//! reports, scenarios and exports. Everything here reads a run's output folder; nothing here
//! changes a simulation.

pub mod export;
pub mod fidelity;
pub mod formulas;
pub mod report;
pub mod scenario;
pub mod table;

pub use table::{MetricsTable, TableError, COLUMNS};
