//! A byte string for serde: written as one binary value (MessagePack `bin`), read from a binary
//! value or from a sequence of bytes. A `Vec<u8>` is written by serde as a sequence, one value
//! per byte: a model's saved state inside a checkpoint part (800 MB at a million agents with
//! MF) then cost an encoder call per byte and up to two bytes for each.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes written as one binary value (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Bytes written as [`Blob`] writes them and read as it reads them, but borrowed where they
/// can be: written from a view (a matrix's values), read from the input when the decoder can
/// lend them (a MessagePack `bin` in a slice), so a model's state is not copied out of the
/// checkpoint before the model reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef<'a>(pub std::borrow::Cow<'a, [u8]>);

impl Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for BlobRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BlobRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<BlobRef<'de>, E> {
                Ok(BlobRef(v.into()))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<BlobRef<'de>, E> {
                Ok(BlobRef(v.to_vec().into()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<BlobRef<'de>, E> {
                Ok(BlobRef(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<BlobRef<'de>, A::Error> {
                Blob::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(|b| BlobRef(b.0.into()))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_one_binary_value_and_the_sequence_form_still_reads() {
        let bytes: Vec<u8> = vec![0, 1, 200, 255];
        let packed = rmp_serde::to_vec(&Blob(bytes.clone())).unwrap();
        // bin8: marker 0xc4, length, the bytes.
        assert_eq!(packed, vec![0xc4, 4, 0, 1, 200, 255]);
        assert_eq!(rmp_serde::from_slice::<Blob>(&packed).unwrap().0, bytes);
        // A Vec<u8> as serde writes it: an array of 4 values, 200 and 255 as uint8 (0xcc).
        let seq = rmp_serde::to_vec(&bytes).unwrap();
        assert_eq!(seq, vec![0x94, 0, 1, 0xcc, 200, 0xcc, 255]);
        assert_eq!(rmp_serde::from_slice::<Blob>(&seq).unwrap().0, bytes);
        // Written as a Blob is; borrowed from the slice when it is a binary value; the
        // sequence form is copied.
        assert_eq!(
            rmp_serde::to_vec(&BlobRef(bytes[..].into())).unwrap(),
            packed
        );
        let r: BlobRef<'_> = rmp_serde::from_slice(&packed).unwrap();
        assert!(
            matches!(&r.0, std::borrow::Cow::Borrowed(b) if b.as_ptr() == packed[2..].as_ptr())
        );
        let r: BlobRef<'_> = rmp_serde::from_slice(&seq).unwrap();
        assert!(matches!(&r.0, std::borrow::Cow::Owned(b) if *b == bytes));
    }
}
