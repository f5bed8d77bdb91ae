//! The keys a config type accepts, derived from its serde declaration: one declaration per
//! config section (the struct), no hand-written field list beside it.
//!
//! serde's derive hands a struct's field names to `Deserializer::deserialize_struct` before it
//! reads any value. [`Probe`] is a deserializer that records them, recurses into every field
//! with itself (so sub-tables are recorded too) and answers every scalar with a placeholder (0,
//! false, "", the first enum variant, an empty array), which config sections, whose fields all
//! have defaults and no validating deserializers, accept. Each type is probed once.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::Field;

/// The keys `T` accepts, table by table (probed once per type, then cached).
///
/// Panics if `T` cannot be probed (a field whose deserializer rejects every placeholder): a bug
/// in the config type that the config tests catch, never a user's input.
pub fn fields_of<T: DeserializeOwned + 'static>() -> &'static [Field] {
    static CACHE: Mutex<Option<HashMap<TypeId, &'static [Field]>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(f) = map.get(&TypeId::of::<T>()) {
        return f;
    }
    let mut root = Node::default();
    if let Err(e) = T::deserialize(Probe { node: &mut root }) {
        panic!(
            "config type {} cannot be probed for its keys: {e}",
            std::any::type_name::<T>()
        );
    }
    let fields = root.into_fields();
    map.insert(TypeId::of::<T>(), fields);
    fields
}

/// What the probe saw of one value: the fields of a struct, or nothing (a scalar or array).
#[derive(Default)]
struct Node {
    fields: Option<Vec<(&'static str, Node)>>,
}

impl Node {
    /// The recorded struct's keys, leaked once per config type (a handful of small lists).
    fn into_fields(self) -> &'static [Field] {
        let fields: Vec<Field> = self
            .fields
            .unwrap_or_default()
            .into_iter()
            .map(|(name, node)| Field {
                name,
                table: node.fields.is_some().then(|| node.into_fields()),
            })
            .collect();
        Box::leak(fields.into_boxed_slice())
    }
}

#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

/// A deserializer that records struct fields into `node` and answers scalars with placeholders.
struct Probe<'a> {
    node: &'a mut Node,
}

macro_rules! placeholder {
    ($($method:ident => $visit:ident($($value:expr)?);)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    placeholder! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i64(0);
        deserialize_i16 => visit_i64(0);
        deserialize_i32 => visit_i64(0);
        deserialize_i64 => visit_i64(0);
        deserialize_u8 => visit_u64(0);
        deserialize_u16 => visit_u64(0);
        deserialize_u32 => visit_u64(0);
        deserialize_u64 => visit_u64(0);
        deserialize_f32 => visit_f64(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char('a');
        deserialize_str => visit_str("");
        deserialize_string => visit_str("");
        deserialize_bytes => visit_bytes(&[]);
        deserialize_byte_buf => visit_bytes(&[]);
        deserialize_unit => visit_unit();
        deserialize_identifier => visit_str("");
        deserialize_ignored_any => visit_unit();
        deserialize_any => visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(Empty)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(Empty)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(Empty)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_map(Empty)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let entries = self
            .node
            .fields
            .insert(fields.iter().map(|f| (*f, Node::default())).collect());
        visitor.visit_map(Fields {
            entries: entries.iter_mut(),
            current: None,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let variant = variants.first().copied().unwrap_or_default();
        visitor.visit_enum(FirstVariant {
            variant,
            node: self.node,
        })
    }
}

/// An empty array or table.
struct Empty;

impl<'de> SeqAccess<'de> for Empty {
    type Error = ProbeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Empty {
    type Error = ProbeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        _seed: V,
    ) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom("no value without a key"))
    }
}

/// A struct's fields, each value probed into its own node.
struct Fields<'a> {
    entries: std::slice::IterMut<'a, (&'static str, Node)>,
    current: Option<&'a mut Node>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some((name, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(node);
        let key: de::value::StrDeserializer<'_, ProbeError> = (*name).into_deserializer();
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let node = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("value before key"))?;
        seed.deserialize(Probe { node })
    }
}

/// An enum answered with its first variant.
struct FirstVariant<'a> {
    variant: &'static str,
    node: &'a mut Node,
}

impl<'de, 'a> EnumAccess<'de> for FirstVariant<'a> {
    type Error = ProbeError;
    type Variant = Probe<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Probe<'a>), ProbeError> {
        let name: de::value::StrDeserializer<'_, ProbeError> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, Probe { node: self.node }))
    }
}

impl<'de> VariantAccess<'de> for Probe<'_> {
    type Error = ProbeError;
    fn unit_variant(self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ProbeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(Empty)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
