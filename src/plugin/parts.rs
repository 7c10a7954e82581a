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
    /// The part's bytes decoded without the world, for [`CheckpointPart::apply`]: a checkpoint
    /// decodes every part that has one on the rayon pool, then applies them one by one in name
    /// order. Default `Ok(None)`: the part is restored by [`CheckpointPart::restore`] alone.
    ///
    /// # Errors
    /// A message saying what could not be read.
    fn decode(&self, _bytes: &[u8]) -> Result<Option<Decoded>, String> {
        Ok(None)
    }
    /// Restores what [`CheckpointPart::decode`] returned. Only called with its value.
    ///
    /// # Errors
    /// A message saying what could not be restored.
    fn apply(&self, _world: &mut World, _decoded: Decoded) -> Result<(), String> {
        Err(format!("part {} decodes nothing to apply", self.name()))
    }
    /// True when a checkpoint may lack this part: one written before the part existed (a
    /// shipped plugin that gained state later) is resumed with the world as the plugin built it.
    /// Default: false (a checkpoint without the part is refused).
    fn absent_ok(&self) -> bool {
        false
    }
}

/// A part's decoded state, between [`CheckpointPart::decode`] and [`CheckpointPart::apply`].
pub type Decoded = Box<dyn std::any::Any + Send>;

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

/// Elements per piece when a part's elements are encoded in parallel.
const PIECE: usize = 4096;

/// Appends the MessagePack encoding (named fields) of each of `elements`, in order, to `out`;
/// pieces of [`PIECE`] elements are encoded on the rayon pool. The bytes are those of encoding
/// them one after another on one thread.
fn encode_elements<T: Serialize + Sync>(elements: &[T], out: &mut Vec<u8>) -> Result<(), String> {
    use rayon::prelude::*;
    // A batch of pieces at a time, so the pieces waiting to be appended stay a small part of
    // the part's bytes (a checkpoint write must not hold its state twice).
    for batch in elements.chunks(PIECE * 64) {
        let pieces: Vec<Vec<u8>> = batch
            .par_chunks(PIECE)
            .map(|piece| {
                let mut buf = Vec::new();
                for e in piece {
                    rmp_serde::encode::write_named(&mut buf, e).map_err(|e| e.to_string())?;
                }
                Ok(buf)
            })
            .collect::<Result<_, String>>()?;
        for p in pieces {
            out.extend_from_slice(&p);
        }
    }
    Ok(())
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
        // The bytes of `encode(&(agents, items))`, with the elements encoded in parallel pieces:
        // a MessagePack array is its length followed by its elements, one after another.
        let mut out = Vec::new();
        let header = |out: &mut Vec<u8>, n: usize| {
            rmp::encode::write_array_len(out, n as u32)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        header(&mut out, 2)?;
        header(&mut out, agents.len())?;
        encode_elements(&agents, &mut out)?;
        header(&mut out, items.len())?;
        encode_elements(&items, &mut out)?;
        Ok(out)
    }

    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let decoded = CheckpointPart::decode(self, bytes)?.expect("invariant: a component decodes");
        self.apply(world, decoded)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<Decoded>, String> {
        let parts: (Vec<(UserId, C)>, Vec<(ItemId, C)>) = decode(bytes)?;
        Ok(Some(Box::new(parts)))
    }

    fn apply(&self, world: &mut World, decoded: Decoded) -> Result<(), String> {
        let (agents, items) = *decoded
            .downcast::<(Vec<(UserId, C)>, Vec<(ItemId, C)>)>()
            .map_err(|_| format!("part {}: decoded state of another type", self.name))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Component, Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    struct Note {
        text: String,
        weight: f32,
    }

    #[test]
    fn a_component_part_encodes_in_pieces_to_the_bytes_of_one_encoding() {
        // More agents than one batch of pieces, and items: the pieces must join to
        // `encode(&(agents, items))`.
        let mut world = World::new();
        // Past one batch of 64 pieces, so batches join too.
        let n = PIECE * 65 + 17;
        let note = |i: usize| Note {
            text: "x".repeat(i % 7),
            weight: i as f32 / 4.0,
        };
        let entities: Vec<_> = (0..n)
            .map(|i| world.spawn((UserId(i as u32 * 3), note(i))).id())
            .collect();
        let ids = (0..n).map(|i| UserId(i as u32 * 3)).collect();
        world.insert_resource(Roster { entities, ids });
        let items: Vec<_> = (0..3)
            .map(|i| world.spawn((ItemId(i), note(100 + i as usize))).id())
            .collect();
        world.insert_resource(ItemEntities(items));
        let part = ComponentPart::<Note>::new("notes");
        let bytes = part.save(&mut world).unwrap();
        let agents: Vec<(UserId, Note)> = (0..n).map(|i| (UserId(i as u32 * 3), note(i))).collect();
        let items: Vec<(ItemId, Note)> = (0..3)
            .map(|i| (ItemId(i), note(100 + i as usize)))
            .collect();
        assert_eq!(bytes, encode(&(&agents, &items)).unwrap());
        // Restored onto the same ids (agents only: the items' entities need a catalogue).
        let (back, _): (Vec<(UserId, Note)>, Vec<(ItemId, Note)>) = decode(&bytes).unwrap();
        assert_eq!(back, agents);
    }
}
