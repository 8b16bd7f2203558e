//! Seed inputs for the `export_api` fuzz target, written as bytes that
//! `Arbitrary` decodes back to the same operations.
//!
//! `Arbitrary` has no inverse, so this is a tiny writer of the byte layout
//! `arbitrary` 1.x reads, driven by serde (the input types derive
//! `Serialize` as well as `Arbitrary`): a `u8` is one byte, an enum variant
//! is a little-endian `u32` that `(u32 * variants) >> 32` maps back to the
//! variant's index, a fixed array is its elements, and the operation list
//! (the input's last field, read to the end) is each operation behind a
//! "one more" byte. Nothing here is trusted: every seed is checked by
//! decoding it again (`sim/tests/fuzz_export_api.rs`), so a writer that
//! drifted from `arbitrary` fails that test instead of writing wrong seeds.

use super::export_api::{Input, OP_KINDS};
use serde::ser::{self, Impossible, Serialize};
use std::fmt;

/// The bytes `Input::decode` reads back as `input`.
pub fn seed_bytes(input: &Input) -> Vec<u8> {
    let mut writer = Writer { out: Vec::new() };
    writer.out.extend([input.plant, input.config]);
    for op in &input.ops {
        writer.out.push(1);
        op.serialize(&mut writer)
            .unwrap_or_else(|e| unreachable!("every operation is writable: {e}"));
    }
    writer.out
}

/// The `u32` that `arbitrary` maps to variant `index` of `count`.
fn variant_tag(index: u32, count: u32) -> u32 {
    let tag = (u64::from(index) << 32).div_ceil(u64::from(count));
    u32::try_from(tag).unwrap_or(u32::MAX)
}

struct Writer {
    out: Vec<u8>,
}

/// What the writer cannot write (a type the input never holds).
#[derive(Debug)]
pub struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the seed writer cannot write {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(what.to_string()))
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = &'a mut Writer;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = &'a mut Writer;

    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.out.push(v);
        Ok(())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Unsupported> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unsupported> {
        self.out.extend(variant_tag(index, OP_KINDS).to_le_bytes());
        Ok(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), Unsupported> {
        unsupported("bool")
    }
    fn serialize_i8(self, _: i8) -> Result<(), Unsupported> {
        unsupported("i8")
    }
    fn serialize_i16(self, _: i16) -> Result<(), Unsupported> {
        unsupported("i16")
    }
    fn serialize_i32(self, _: i32) -> Result<(), Unsupported> {
        unsupported("i32")
    }
    fn serialize_i64(self, _: i64) -> Result<(), Unsupported> {
        unsupported("i64")
    }
    fn serialize_u16(self, _: u16) -> Result<(), Unsupported> {
        unsupported("u16")
    }
    fn serialize_u32(self, _: u32) -> Result<(), Unsupported> {
        unsupported("u32")
    }
    fn serialize_u64(self, _: u64) -> Result<(), Unsupported> {
        unsupported("u64")
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        unsupported("f32")
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        unsupported("f64")
    }
    fn serialize_char(self, _: char) -> Result<(), Unsupported> {
        unsupported("char")
    }
    fn serialize_str(self, _: &str) -> Result<(), Unsupported> {
        unsupported("str")
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        unsupported("Option")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Unsupported> {
        unsupported("Option")
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        unsupported("()")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        unsupported("a unit struct")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Unsupported> {
        unsupported("a unit variant")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("a newtype struct")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("a newtype variant")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        unsupported("a sequence")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("a tuple variant")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        unsupported("a map")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        unsupported("a struct")
    }
}

impl ser::SerializeTuple for &mut Writer {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Writer {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_tag_maps_back_to_its_index() {
        for count in [1u32, 2, 3, 21, 255] {
            for index in 0..count {
                let tag = variant_tag(index, count);
                assert_eq!((u64::from(tag) * u64::from(count)) >> 32, u64::from(index));
            }
        }
    }
}
