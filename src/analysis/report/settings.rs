//! The `report` setting: a run writes its report when it finishes.

use bevy_app::{App, Plugin};
use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

use crate::plugin::{Settings, SimApp};

/// Report settings: the flat key `report` (default `false`). With `report: true`,
/// `recagent run`, `resume` and `branch` write `<output_dir>/report.html` (see
/// [`super::write_run_report`]) once the last round is done; a run stopped early writes none.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSettings {
    /// Write the run's HTML report at the end of the run.
    pub report: bool,
}

impl Settings for ReportSettings {
    const SECTION: Option<&'static str> = None;
}

/// Registers [`ReportSettings`]. It adds no system: the report is written from the finished
/// run's output files, by whoever drives the run (the CLI does).
pub struct ReportPlugin;

impl Plugin for ReportPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<ReportSettings>();
    }
}
