//! Behaviour plugins, one file per phase. Compiled into the `recagent` crate as its `systems`
//! module (`src/lib.rs` includes this folder).
//!
//! # Adding a behaviour
//! Write `systems/<name>.rs` with a `pub struct <Name>Plugin` that adds its systems to the
//! [`SimTick`](crate::sim::SimTick) schedule inside one [`SimPhase`](crate::sim::SimPhase) set,
//! then add one line `<name> => <Name>Plugin,` to the list below.

use bevy_app::App;

macro_rules! behaviours {
    ($($module:ident => $plugin:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Registers every behaviour plugin, in the order listed.
        pub fn add_behaviours(app: &mut App) {
            $(app.add_plugins($module::$plugin);)*
        }
    };
}

behaviours! {
    activate => ActivatePlugin,
    recommend => RecommendPlugin,
    watch => WatchPlugin,
    feel => FeelPlugin,
    chat => ChatPlugin,
    broadcast => BroadcastPlugin,
    remember => RememberPlugin,
    record => RecordPlugin,
}
