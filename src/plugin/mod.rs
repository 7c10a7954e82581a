//! What a behaviour plugin registers, through [`SimApp`] on bevy's `App`: its settings (read
//! once from the configuration into a typed resource), its components (inserted on every agent
//! or item when the world is built), its counters (manifest, summary, checkpoints), its
//! checkpointed state, and the decision kinds it asks. The core iterates these registries and
//! knows no behaviour by name.
//!
//! ```
//! use bevy_app::{App, Plugin};
//! use recagent::plugin::{Counter, SimApp};
//!
//! const GREETINGS: Counter = Counter::new("greetings", "greetings");
//!
//! struct GreetPlugin;
//! impl Plugin for GreetPlugin {
//!     fn build(&self, app: &mut App) {
//!         app.add_counters("greet", &[GREETINGS]);
//!     }
//! }
//! ```

pub mod counters;
pub mod parts;
pub mod settings;

use bevy_app::App;
use bevy_ecs::component::Component;
use bevy_ecs::resource::Resource;
use bevy_ecs::world::EntityWorldMut;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::config::validate::check_range;
pub use counters::{Counter, Counters, SummaryLine, SummaryValue, SummaryValues};
pub use parts::{CheckpointPart, CheckpointParts, ComponentPart, Decoded, ResourcePart};
pub use settings::{Settings, SettingsRegistry};

use crate::config::{ConfigError, SimConfig};
use crate::decision::{Decision, DecisionKinds};

/// Configuration errors found while plugins registered their settings; the builder reports the
/// first one (plugin `build` cannot return errors).
#[derive(Resource, Default, Debug)]
pub struct SetupErrors(pub Vec<ConfigError>);

/// Registration calls for simulation plugins, on bevy's [`App`].
pub trait SimApp {
    /// Reads `S` from the configuration (its section or its top-level keys, see
    /// [`Settings`]) and inserts it as a resource; the manifest and checkpoints record its
    /// resolved values. A bad value is reported by the builder as a configuration error naming
    /// the key and line.
    fn add_settings<S: Settings>(&mut self) -> &mut Self;
    /// Registers counters, shown together in the summary under `group`.
    fn add_counters(&mut self, group: &'static str, counters: &[Counter]) -> &mut Self;
    /// Shows counter `c` in the CLI's progress bar.
    fn show_in_progress(&mut self, c: Counter) -> &mut Self;
    /// Replaces `group`'s default summary line (its counters as `label value · ...`).
    fn add_summary(&mut self, group: &'static str, line: SummaryLine) -> &mut Self;
    /// Adds `f`'s value to the manifest's `summary` under `name` (beside the counters; a
    /// counter of the same name is replaced), computed each time the manifest is written.
    fn add_summary_value(&mut self, name: &'static str, f: SummaryValue) -> &mut Self;
    /// Puts component `C` of agents and items into checkpoints, as the part `name`.
    fn checkpoint_component<C: Component + Serialize + DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> &mut Self;
    /// Puts resource `R` into checkpoints, as the part `name`.
    fn checkpoint_resource<R: Resource + Serialize + DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> &mut Self;
    /// Puts a part with its own save and restore into checkpoints.
    fn checkpoint_part(&mut self, part: impl CheckpointPart) -> &mut Self;
    /// Registers decision kind `D` (its template for the LLM backend, its phase for
    /// transcripts).
    fn add_decision<D: Decision>(&mut self) -> &mut Self;
    /// Inserts `C::default()` on every agent when the world is built.
    fn add_agent_component<C: Component + Default>(&mut self) -> &mut Self;
    /// Inserts `C::default()` on every item when the world is built.
    fn add_item_component<C: Component + Default>(&mut self) -> &mut Self;
}

/// Inserts one component on a freshly spawned entity.
pub type Inserter = fn(&mut EntityWorldMut<'_>);

/// The components plugins put on every agent and item, inserted as each is spawned
/// ([`crate::world::populate`]), so the world is built without moving entities between tables
/// afterwards.
#[derive(Resource, Clone, Default)]
pub struct SpawnComponents {
    /// Inserted on every agent, in registration order.
    pub agents: Vec<Inserter>,
    /// Inserted on every item.
    pub items: Vec<Inserter>,
}

fn insert_default<C: Component + Default>(e: &mut EntityWorldMut<'_>) {
    e.insert(C::default());
}

impl SimApp for App {
    fn add_settings<S: Settings>(&mut self) -> &mut Self {
        let world = self.world_mut();
        let cfg = world.get_resource::<SimConfig>();
        let resolved = match cfg {
            Some(cfg) => settings::resolve::<S>(cfg),
            // An app built by hand (unit tests): the defaults.
            None => Ok((S::default(), Vec::new())),
        };
        match resolved {
            Ok((s, keys)) => {
                settings::register::<S>(world, keys);
                world.insert_resource(s);
            }
            Err(e) => {
                world
                    .get_resource_or_insert_with(SetupErrors::default)
                    .0
                    .push(e);
                world.insert_resource(S::default());
            }
        }
        self
    }

    fn add_counters(&mut self, group: &'static str, counters: &[Counter]) -> &mut Self {
        let mut c = self
            .world_mut()
            .get_resource_or_insert_with(Counters::default);
        for k in counters {
            c.register(group, *k);
        }
        self
    }

    fn show_in_progress(&mut self, c: Counter) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(Counters::default)
            .show_in_progress(&c);
        self
    }

    fn add_summary(&mut self, group: &'static str, line: SummaryLine) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(Counters::default)
            .set_summary(group, line);
        self
    }

    fn add_summary_value(&mut self, name: &'static str, f: SummaryValue) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(SummaryValues::default)
            .add(name, f);
        self
    }

    fn checkpoint_component<C: Component + Serialize + DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> &mut Self {
        self.checkpoint_part(ComponentPart::<C>::new(name))
    }

    fn checkpoint_resource<R: Resource + Serialize + DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> &mut Self {
        self.checkpoint_part(ResourcePart::<R>::new(name))
    }

    fn checkpoint_part(&mut self, part: impl CheckpointPart) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(CheckpointParts::default)
            .add(part);
        self
    }

    fn add_decision<D: Decision>(&mut self) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(DecisionKinds::default)
            .add::<D>();
        self
    }

    fn add_agent_component<C: Component + Default>(&mut self) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(SpawnComponents::default)
            .agents
            .push(insert_default::<C>);
        self
    }

    fn add_item_component<C: Component + Default>(&mut self) -> &mut Self {
        self.world_mut()
            .get_resource_or_insert_with(SpawnComponents::default)
            .items
            .push(insert_default::<C>);
        self
    }
}
