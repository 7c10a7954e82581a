//! Checkpointed state, registered by the plugin that owns it: a component on agents and items
//! ([`ComponentPart`]), a resource ([`ResourcePart`]), or any part with its own save and
//! restore ([`CheckpointPart`]). A checkpoint stores every registered part under its name and
//! records the names; resuming with a different set of names is refused, naming the
//! difference ([`crate::checkpoint`]).

use std::marker::PhantomData;

use bevy_ecs::component::Component;
use bevy_ecs::resource::Resource;
use bevy_ecs::world::World;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ids::{ItemId, UserId};
use crate::world::{ItemEntities, Roster};

/// One part of a checkpoint.
pub trait CheckpointPart: Send + Sync + 'static {
    /// The part's name in checkpoints (snake case, stable across versions: a renamed part makes
    /// older checkpoints unreadable).
    fn name(&self) -> &str;
    /// The part's bytes (MessagePack with named fields is the convention).
    ///
    /// # Errors
    /// A message saying what could not be saved.
    fn save(&self, world: &mut World) -> Result<Vec<u8>, String>;
    /// Restores the part into a world freshly built from the same data.
    ///
    /// # Errors
    /// A message saying what could not be read.
    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String>;
    /// True when a checkpoint may lack this part: one written before the part existed (a
    /// shipped plugin that gained state later) is resumed with the world as the plugin built it.
    /// Default: false (a checkpoint without the part is refused).
    fn absent_ok(&self) -> bool {
        false
    }
}

/// The registered parts (a world resource), sorted by name.
#[derive(Resource, Default)]
pub struct CheckpointParts {
    parts: Vec<Box<dyn CheckpointPart>>,
}

impl CheckpointParts {
    /// Registers `part` (a second part with the same name is ignored: registration is
    /// idempotent).
    pub fn add(&mut self, part: impl CheckpointPart) {
        if self.parts.iter().any(|p| p.name() == part.name()) {
            return;
        }
        self.parts.push(Box::new(part));
        self.parts.sort_by(|a, b| a.name().cmp(b.name()));
    }
    /// The parts, by name.
    pub fn iter(&self) -> impl Iterator<Item = &dyn CheckpointPart> {
        self.parts.iter().map(|p| &**p)
    }
    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.name().to_string()).collect()
    }
    /// The names of the parts a checkpoint may lack ([`CheckpointPart::absent_ok`]), sorted.
    pub fn optional_names(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter(|p| p.absent_ok())
            .map(|p| p.name().to_string())
            .collect()
    }
}

/// Encodes `v` as MessagePack with named fields.
///
/// # Errors
/// The encoder's message.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(v).map_err(|e| e.to_string())
}

/// Decodes MessagePack.
///
/// # Errors
/// The decoder's message.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(b).map_err(|e| e.to_string())
}

/// A component on agents and items, saved by their ids (agents in id order, items in
/// catalogue order) and restored onto the entities of the same ids.
pub struct ComponentPart<C> {
    name: &'static str,
    _c: PhantomData<fn() -> C>,
}

impl<C> ComponentPart<C> {
    /// The part `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            _c: PhantomData,
        }
    }
}

impl<C: Component + Serialize + DeserializeOwned> CheckpointPart for ComponentPart<C> {
    fn name(&self) -> &str {
        self.name
    }

    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        let roster = world.get_resource::<Roster>().cloned().unwrap_or_default();
        let items = world
            .get_resource::<ItemEntities>()
            .map(|i| i.0.clone())
            .unwrap_or_default();
        let mut q = world.query::<(&C, Option<&UserId>, Option<&ItemId>)>();
        let agents: Vec<(UserId, &C)> = roster
            .entities
            .iter()
            .filter_map(|&e| q.get(world, e).ok())
            .filter_map(|(c, u, _)| Some((*u?, c)))
            .collect();
        let items: Vec<(ItemId, &C)> = items
            .iter()
            .filter_map(|&e| q.get(world, e).ok())
            .filter_map(|(c, _, i)| Some((*i?, c)))
            .collect();
        encode(&(agents, items))
    }

    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let (agents, items): (Vec<(UserId, C)>, Vec<(ItemId, C)>) = decode(bytes)?;
        let roster = world.get_resource::<Roster>().cloned().unwrap_or_default();
        let item_entities = world
            .get_resource::<ItemEntities>()
            .map(|i| i.0.clone())
            .unwrap_or_default();
        let by_item = |world: &World, id: ItemId| {
            let cat = world.get_resource::<crate::catalog::Catalog>()?;
            item_entities.get(cat.index_of(id)? as usize).copied()
        };
        let mut batch = Vec::with_capacity(agents.len() + items.len());
        for (u, c) in agents {
            match roster.entity(u) {
                Some(e) => batch.push((e, c)),
                None => return Err(format!("agent {u} is not in this simulation")),
            }
        }
        for (i, c) in items {
            match by_item(world, i) {
                Some(e) => batch.push((e, c)),
                None => return Err(format!("item {i} is not in the catalogue")),
            }
        }
        world.insert_batch(batch);
        Ok(())
    }
}

/// A resource, saved whole (absent resources as `None`).
pub struct ResourcePart<R> {
    name: &'static str,
    _r: PhantomData<fn() -> R>,
}

impl<R> ResourcePart<R> {
    /// The part `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            _r: PhantomData,
        }
    }
}

impl<R: Resource + Serialize + DeserializeOwned> CheckpointPart for ResourcePart<R> {
    fn name(&self) -> &str {
        self.name
    }

    fn save(&self, world: &mut World) -> Result<Vec<u8>, String> {
        encode(&world.get_resource::<R>())
    }

    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        if let Some(r) = decode::<Option<R>>(bytes)? {
            world.insert_resource(r);
        }
        Ok(())
    }
}
