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
    /// The bytes of [`CheckpointPart::save`] handed to `out` in pieces, in order, as they are
    /// encoded: a checkpoint hashes, compresses and writes them while the rest is encoded, so
    /// a part of hundreds of MiB (a million agents' memories) is never held whole. Default:
    /// `save` whole, one piece.
    ///
    /// # Errors
    /// As [`CheckpointPart::save`], or `out`'s error (then stop and return it).
    fn save_to(
        &self,
        world: &mut World,
        out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        out(self.save(world)?)
    }
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

/// The bytes of `part`'s [`CheckpointPart::save_to`] pieces, joined: the `save` of a part that
/// hands its bytes on in pieces.
///
/// # Errors
/// The part's.
pub fn pieces_joined<P: CheckpointPart + ?Sized>(
    part: &P,
    world: &mut World,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    part.save_to(world, &mut |p| {
        bytes.extend_from_slice(&p);
        Ok(())
    })?;
    Ok(bytes)
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

/// Elements per piece of a [`ComponentPart`].
const PIECE: usize = 4096;

/// Pieces encoded side by side before they are handed on, per rayon thread: what a write
/// holds of a part at once (2 threads: 4 pieces, 16,384 agents, about 40 MiB of memories after
/// 3 rounds). With 16 per batch, a 100,000-agent write peaked at 1.37x the run's RSS.
const PIECES_PER_THREAD: usize = 2;

/// Each piece of [`PIECE`] of `elements` (in order), encoded on the rayon pool as a
/// MessagePack `bin` whose content is the array of the piece's elements (fields by position): the
/// `bin` header and the content handed to `out` as two byte strings, a batch of
/// [`PIECES_PER_THREAD`] pieces per thread at a time.
fn encode_pieces<T: Serialize + Sync>(
    elements: &[T],
    out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let per_batch = PIECES_PER_THREAD * rayon::current_num_threads().max(1);
    for batch in elements.chunks(PIECE * per_batch) {
        for (head, body) in encode_batch(batch)? {
            out(head)?;
            out(body)?;
        }
    }
    Ok(())
}

/// The `(bin header, content)` of each piece of `elements`, encoded on the rayon pool.
fn encode_batch<T: Serialize + Sync>(elements: &[T]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    use rayon::prelude::*;
    // Each piece is encoded into a buffer its worker reuses, then copied out at its exact
    // size: grown in place, a million agents' pieces left their growth's freed blocks in the
    // process (about 0.4 GiB of the write's peak at 1M agents).
    elements
        .par_chunks(PIECE)
        .map_init(Vec::new, |buf: &mut Vec<u8>, piece| {
            buf.clear();
            rmp::encode::write_array_len(buf, piece.len() as u32).map_err(|e| e.to_string())?;
            for e in piece {
                rmp_serde::encode::write(buf, e).map_err(|e| e.to_string())?;
            }
            let body = buf.to_vec();
            let len = u32::try_from(body.len())
                .map_err(|_| "a checkpoint piece is over 4 GiB".to_string())?;
            let mut head = Vec::with_capacity(5);
            rmp::encode::write_bin_len(&mut head, len).map_err(|e| e.to_string())?;
            Ok((head, body))
        })
        .collect()
}

/// The `bin` values of the MessagePack array at the start of `rd` (advanced past it), as
/// slices.
fn read_bins<'a>(rd: &mut &'a [u8]) -> Result<Vec<&'a [u8]>, String> {
    let n = rmp::decode::read_array_len(rd).map_err(|e| format!("piece list: {e}"))?;
    (0..n)
        .map(|_| {
            let len = rmp::decode::read_bin_len(rd).map_err(|e| format!("piece: {e}"))? as usize;
            if rd.len() < len {
                return Err("a piece ends past the part's bytes".to_string());
            }
            let (piece, rest) = rd.split_at(len);
            *rd = rest;
            Ok(piece)
        })
        .collect()
}

/// The elements of each of `pieces` (each a MessagePack array), decoded on the rayon pool, in
/// order. Not joined: [`ComponentPart`]'s apply moves them out piece by piece.
fn decode_pieces<T: DeserializeOwned + Send>(pieces: &[&[u8]]) -> Result<Vec<Vec<T>>, String> {
    use rayon::prelude::*;
    pieces
        .par_iter()
        .map(|p| decode::<Vec<T>>(p))
        .collect::<Result<_, String>>()
}

/// A [`ComponentPart`]'s decoded state: the agents' and the items' pieces.
type DecodedComponents<C> = (Vec<Vec<(UserId, C)>>, Vec<Vec<(ItemId, C)>>);

/// A component on agents and items, saved by their ids (agents in id order, items in
/// catalogue order) and restored onto the entities of the same ids.
///
/// Bytes (MessagePack): `[agents, items]`, each an array of `bin` pieces, each piece the
/// array of up to [`PIECE`] `(id, component)` pairs, structs as arrays of their fields in
/// declaration order. The pieces are encoded and decoded side by side on the rayon pool; the
/// bytes do not depend on the thread count.
///
/// Positional rather than named fields: at a million agents after three rounds the names were
/// a fifth of the memories' bytes and two thirds of the relationships' (977 against 1,243 MiB,
/// 119 against 320 MiB), and matching them a large part of the decoding. Pieces with named
/// fields (checkpoints written before) decode as well: serde's derived structs read both.
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
        pieces_joined(self, world)
    }

    fn save_to(
        &self,
        world: &mut World,
        out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
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
        let header = |n: usize| -> Result<Vec<u8>, String> {
            let mut out = Vec::new();
            rmp::encode::write_array_len(&mut out, n as u32).map_err(|e| e.to_string())?;
            Ok(out)
        };
        out(header(2)?)?;
        out(header(agents.len().div_ceil(PIECE))?)?;
        encode_pieces(&agents, out)?;
        out(header(items.len().div_ceil(PIECE))?)?;
        encode_pieces(&items, out)
    }

    fn restore(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let decoded = CheckpointPart::decode(self, bytes)?.expect("invariant: a component decodes");
        self.apply(world, decoded)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<Decoded>, String> {
        let mut rd = bytes;
        let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if n != 2 {
            return Err(format!("{n} lists where agents and items were expected"));
        }
        let agents = read_bins(&mut rd)?;
        let items = read_bins(&mut rd)?;
        if !rd.is_empty() {
            return Err(format!("{} bytes after the items", rd.len()));
        }
        let parts: DecodedComponents<C> = (decode_pieces(&agents)?, decode_pieces(&items)?);
        Ok(Some(Box::new(parts)))
    }

    fn apply(&self, world: &mut World, decoded: Decoded) -> Result<(), String> {
        let (agents, items) = *decoded
            .downcast::<DecodedComponents<C>>()
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
        let n =
            agents.iter().map(Vec::len).sum::<usize>() + items.iter().map(Vec::len).sum::<usize>();
        let mut batch = Vec::with_capacity(n);
        // Each piece is freed once moved into the batch.
        for (u, c) in agents.into_iter().flatten() {
            match roster.entity(u) {
                Some(e) => batch.push((e, c)),
                None => return Err(format!("agent {u} is not in this simulation")),
            }
        }
        for (i, c) in items.into_iter().flatten() {
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
    fn a_component_part_is_its_pieces_as_bins_and_decodes_back() {
        // Agents in three pieces (the last one short) and items in one.
        let mut world = World::new();
        let n = PIECE * 2 + 17;
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
        // Handed on in pieces: 2 headers, a bin header and content per piece, the items'
        // header, and their one piece.
        let mut pieces = Vec::new();
        part.save_to(&mut world, &mut |p| {
            pieces.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(pieces.len(), 2 + 2 * 3 + 1 + 2);
        assert_eq!(pieces.concat(), bytes);
        // An output's error stops the save and is returned.
        let mut seen = 0;
        let err = part.save_to(&mut world, &mut |_| {
            seen += 1;
            if seen == 3 {
                Err("disk full".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(err, Err("disk full".to_string()));
        assert_eq!(seen, 3);
        let agents: Vec<(UserId, Note)> = (0..n).map(|i| (UserId(i as u32 * 3), note(i))).collect();
        let items: Vec<(ItemId, Note)> = (0..3)
            .map(|i| (ItemId(i), note(100 + i as usize)))
            .collect();
        // The layout written out: [agents, items], each a list of bins holding one encoded
        // array of up to PIECE pairs, fields by position (`named`: by name, the older form).
        fn bins<T: Serialize>(out: &mut Vec<u8>, v: &[T], named: bool) {
            let chunks: Vec<&[T]> = v.chunks(PIECE).collect();
            rmp::encode::write_array_len(out, chunks.len() as u32).unwrap();
            for c in chunks {
                let b = if named {
                    encode(c).unwrap()
                } else {
                    rmp_serde::to_vec(c).unwrap()
                };
                rmp::encode::write_bin(out, &b).unwrap();
            }
        }
        let layout = |named| {
            let mut out = Vec::new();
            rmp::encode::write_array_len(&mut out, 2).unwrap();
            bins(&mut out, &agents, named);
            bins(&mut out, &items, named);
            out
        };
        assert_eq!(bytes, layout(false));
        // Agent 1's pair by hand: [3, ["x", 0.25]] is fixarray(2), 3, fixarray(2), fixstr(1)
        // "x", float32 0x3e800000; no field names.
        let pair = [0x92, 0x03, 0x92, 0xa1, b'x', 0xca, 0x3e, 0x80, 0x00, 0x00];
        assert!(bytes.windows(pair.len()).any(|w| w == pair));
        assert!(!bytes.windows(6).any(|w| w == b"weight"));
        // The older form, with field names, decodes to the same components.
        let d = CheckpointPart::decode(&part, &layout(true))
            .unwrap()
            .unwrap();
        let (old, old_items) = *d.downcast::<DecodedComponents<Note>>().unwrap();
        assert_eq!(
            (old.concat(), old_items.concat()),
            (agents.clone(), items.clone())
        );
        // Decoded back, in order.
        let d = CheckpointPart::decode(&part, &bytes).unwrap().unwrap();
        let (back, back_items) = *d.downcast::<DecodedComponents<Note>>().unwrap();
        assert_eq!(
            back.iter().map(Vec::len).collect::<Vec<_>>(),
            [PIECE, PIECE, 17]
        );
        assert_eq!(back.concat(), agents);
        assert_eq!(back_items.concat(), items);
        // Damaged bytes are errors, never panics: cut short, a bin past the end, trailing
        // bytes, another shape.
        for bad in [
            &bytes[..bytes.len() - 1],
            &bytes[..40],
            &[&bytes[..], &[0xc0]].concat()[..],
            &encode(&(1, 2, 3)).unwrap()[..],
        ] {
            assert!(CheckpointPart::decode(&part, bad).is_err());
        }
    }
}
