//! Remember: the round's observations are appended to each agent's memory in user-id order
//! (stable within a user: the order they happened), so memory never depends on how the round's
//! work was scheduled.
//!
//! Phase: `SimPhase::Remember`. Writes: `Memory`.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::components::Memory;
use crate::sim::{PendingObservations, SimPhase, SimTick};
use crate::world::Roster;

/// Registers the remember system.
pub struct RememberPlugin;

impl Plugin for RememberPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, write_memories.in_set(SimPhase::Remember));
    }
}

/// Appends the pending observations to memories.
pub fn write_memories(roster: Res<Roster>, mut pending: ResMut<PendingObservations>, mut memories: Query<&mut Memory>) {
    let mut list = std::mem::take(&mut pending.0);
    list.sort_by_key(|(u, _)| *u); // stable
    for (u, rec) in list.drain(..) {
        if let Some(mut m) = roster.entity(u).and_then(|e| memories.get_mut(e).ok()) {
            m.records.push(rec);
        }
    }
    pending.0 = list; // keep the allocation
}
