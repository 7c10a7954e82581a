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
    ///
    /// Its fields are written by position (a MessagePack array per struct, see
    /// [`ComponentPart`]): a field added later goes last with `#[serde(default)]`, and
    /// `#[serde(skip_serializing_if)]` must not be used (a skipped field would shift the
    /// others). Checkpoints written with named fields (before 2026-12-04) still read.
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

/// Makes `C` (its default) a component of every entity spawned with `K` from now on: bevy's
/// required components, so [`crate::world::populate`] spawns every agent (or item) with the
/// plugins' components in one batch, in one table. Registered after such an entity exists (an
/// app built by hand that spawned agents first), it is a setup error naming `C`: bevy adds
/// required components only to entities spawned after the registration.
fn require<K: Component, C: Component + Default>(world: &mut bevy_ecs::world::World, what: &str) {
    use bevy_ecs::component::RequiredComponentsError as E;
    match world.try_register_required_components::<K, C>() {
        Ok(()) | Err(E::DuplicateRegistration(..)) => {}
        Err(e) => world
            .get_resource_or_insert_with(SetupErrors::default)
            .0
            .push(ConfigError::Invalid {
                origin: "plugin".into(),
                line: None,
                key: std::any::type_name::<C>().into(),
                message: format!(
                    "registered as a component of every {what} after the world was built ({e}): add the plugin before spawning {what}s"
                ),
            }),
    }
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
        require::<crate::ids::UserId, C>(self.world_mut(), "agent");
        self
    }

    fn add_item_component<C: Component + Default>(&mut self) -> &mut Self {
        require::<crate::ids::ItemId, C>(self.world_mut(), "item");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ItemId, UserId};

    #[derive(Component, Default, PartialEq, Debug)]
    struct Mark(u8);

    #[derive(Component, Default)]
    struct Late;

    #[test]
    fn a_component_registered_before_the_world_is_built_is_on_every_agent_and_later_is_an_error() {
        let mut app = App::empty();
        app.add_agent_component::<Mark>()
            .add_item_component::<Late>();
        let agent = app.world_mut().spawn(UserId(1)).id();
        let item = app.world_mut().spawn(ItemId(2)).id();
        assert_eq!(app.world().get::<Mark>(agent), Some(&Mark(0)));
        assert!(app.world().get::<Late>(agent).is_none());
        assert!(app.world().get::<Late>(item).is_some());
        assert!(app.world().get_resource::<SetupErrors>().is_none());
        // Once agents exist, an error naming the component.
        app.add_agent_component::<Late>();
        let errors = &app.world().resource::<SetupErrors>().0;
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(text.contains("Late") && text.contains("agent"), "{text}");
    }
}
