//! A `tokenizer.json` split for its reader: the model's `vocab` and `merges`
//! (most of the file: o200k's converted file is 28 MB, 200K tokens and 446K
//! merges) parsed here, straight into what [`crate::hf_vocab::read`] takes;
//! every other member handed back as its own JSON text, for the Python reader
//! to parse and check as it always has.
//!
//! Parsing the whole file with Python's `json` made a Python object of every
//! token and merge, which the fast vocabulary reader then read back, and which
//! were then freed: three quarters of a second of the load where `tokenizers`
//! takes 0.9. Where anything here is unusual (not UTF-8, a duplicate key, an
//! id that is no integer of 64 bits, a merge in neither of the two forms, JSON
//! `serde_json` refuses where Python's `json` might not), [`split`] gives None
//! and the Python reader reads the file as before, and says what is wrong.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::hf_vocab::{ByteLevel, Merges};

/// A `tokenizer.json` in parts (see the module).
pub struct Document {
    /// The top-level members other than `model`: name and JSON text, in file order.
    pub members: Vec<(String, String)>,
    /// `model`'s members other than `vocab` and `merges`, the same way.
    pub model_members: Vec<(String, String)>,
    pub model: Model,
}

/// A model's `vocab` and `merges`.
pub struct Model {
    /// Each vocab entry's bytes (None where its text is not byte-level) and
    /// id, in file order, as [`crate::hf_vocab::read`] takes them.
    pub entries: Vec<(Option<Vec<u8>>, i64)>,
    /// The id of each entry's text (for the added tokens' checks).
    pub ids: FxHashMap<String, i64>,
    /// The merges as bytes (a missing or null `merges` is none).
    pub merges: Merges,
}

/// The parts of the `tokenizer.json` text `text`, or None where anything is
/// unusual (see the module).
pub fn split(text: &str) -> Option<Document> {
    let top: Members<'_> = serde_json::from_str(text).ok()?;
    let mut members = Vec::with_capacity(top.0.len());
    let mut model = None;
    for (name, raw) in top.0 {
        if name == "model" {
            model = Some(raw);
        } else {
            members.push((name, raw.get().to_owned()));
        }
    }
    let Members(model_members) = serde_json::from_str(model?.get()).ok()?;
    let (mut vocab, mut merges, mut rest) = (None, None, Vec::new());
    for (name, raw) in model_members {
        match name.as_str() {
            "vocab" => vocab = Some(raw),
            "merges" => merges = Some(raw),
            _ => rest.push((name, raw.get().to_owned())),
        }
    }
    let Vocab { entries, ids } = serde_json::from_str(vocab?.get()).ok()?;
    let byte_level = ByteLevel::default();
    let mut pairs = Merges::default();
    if let Some(raw) = merges.filter(|raw| raw.get() != "null") {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        MergesSeed { out: &mut pairs, byte_level: &byte_level }.deserialize(&mut de).ok()?;
        de.end().ok()?;
    }
    Some(Document { members, model_members: rest, model: Model { entries, ids, merges: pairs } })
}

/// An object's members as name and raw JSON, in order; an error where a name
/// comes twice (Python's `json` keeps the last, the reader then decides).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some((name, raw)) = map.next_entry::<String, &'de RawValue>()? {
                    if members.iter().any(|(seen, _)| *seen == name) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    members.push((name, raw));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// A `vocab` object: text -> integer id, no text twice (see [`Model`]).
struct Vocab {
    entries: Vec<(Option<Vec<u8>>, i64)>,
    ids: FxHashMap<String, i64>,
}

impl<'de> de::Deserialize<'de> for Vocab {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vocab;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of integer ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let n = map.size_hint().unwrap_or(0);
                let byte_level = ByteLevel::default();
                let mut entries = Vec::with_capacity(n);
                let mut ids = FxHashMap::default();
                ids.reserve(n);
                while let Some(text) = map.next_key::<String>()? {
                    let Id(id) = map.next_value()?;
                    entries.push((byte_level.bytes(&text), id));
                    if ids.insert(text, id).is_some() {
                        return Err(de::Error::custom("a text twice"));
                    }
                }
                Ok(Vocab { entries, ids })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// An id: an integer that fits 64 bits, nothing else (not 1.0, not true, as
/// the Python reader takes only an exact int).
struct Id(i64);

impl<'de> de::Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                i64::try_from(v).map(Id).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A `merges` array, each item pushed into `out` as it is read: "A B" (one
/// space) or [A, B], byte-level texts; an error for anything else.
struct MergesSeed<'m> {
    out: &'m mut Merges,
    byte_level: &'m ByteLevel,
}

impl<'de> DeserializeSeed<'de> for MergesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MergesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of merges")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(MergeSeed { out: &mut *self.out, byte_level: self.byte_level })?.is_some() {}
        Ok(())
    }
}

/// One merge (see [`MergesSeed`]).
struct MergeSeed<'m> {
    out: &'m mut Merges,
    byte_level: &'m ByteLevel,
}

impl MergeSeed<'_> {
    fn push<E: de::Error>(self, left: &str, right: &str) -> Result<(), E> {
        if self.out.push(self.byte_level, left, right) {
            Ok(())
        } else {
            Err(E::custom("a merge of text that is not byte-level"))
        }
    }
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MergeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"A B\" or [A, B]")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        match text.split_once(' ') {
            Some((left, right)) if !right.contains(' ') => self.push(left, right),
            _ => Err(E::custom("a merge text without exactly one space")),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let left: Text<'de> = seq.next_element()?.ok_or_else(|| de::Error::custom("a short merge"))?;
        let right: Text<'de> = seq.next_element()?.ok_or_else(|| de::Error::custom("a short merge"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a merge of more than two parts"));
        }
        self.push(&left.0, &right.0)
    }
}

/// A string, borrowed from the JSON text where it has no escapes.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(v.to_owned().into()))
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merges_of(doc: &Document) -> Vec<(Vec<u8>, Vec<u8>)> {
        doc.model.merges.iter().map(|(l, r, _)| (l.to_vec(), r.to_vec())).collect()
    }

    #[test]
    fn splits_out_vocab_and_merges_and_keeps_the_rest_as_text() {
        let text = r#"{"version": "1.0", "added_tokens": [{"id": 3, "content": "<s>"}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120x": 5},
                      "merges": ["a b", ["ab", "\u0120x"]], "ignore_merges": true},
            "decoder": null}"#;
        let doc = split(text).unwrap();
        let names: Vec<&str> = doc.members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["version", "added_tokens", "decoder"]);
        assert_eq!(doc.members[1].1, r#"[{"id": 3, "content": "<s>"}]"#);
        assert_eq!(
            doc.model_members,
            [("type".to_owned(), r#""BPE""#.to_owned()), ("ignore_merges".to_owned(), "true".to_owned())]
        );
        assert_eq!(doc.model.ids["\u{120}x"], 5);
        assert_eq!(doc.model.ids["ab"], 2);
        assert_eq!(merges_of(&doc), [(b"a".to_vec(), b"b".to_vec()), (b"ab".to_vec(), b" x".to_vec())]);
        assert_eq!(doc.model.entries[3], (Some(b" x".to_vec()), 5));
    }

    #[test]
    fn missing_or_null_merges_are_none() {
        for text in [r#"{"model": {"vocab": {"a": 0}}}"#, r#"{"model": {"vocab": {"a": 0}, "merges": null}}"#] {
            assert!(split(text).unwrap().model.merges.is_empty(), "{text}");
        }
    }

    /// Each is left to the Python reader, which reads it as Python's json does
    /// and names what is wrong (a check that the fast path refuses can fail).
    #[test]
    fn anything_unusual_is_left_to_the_python_reader() {
        let ok = r#"{"model": {"vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#;
        assert!(split(ok).is_some());
        for text in [
            r#"{"model": {"vocab": {"a": 0, "a": 1}, "merges": []}}"#,
            r#"{"model": {"vocab": {"a": 0}, "vocab": {"b": 1}}}"#,
            r#"{"model": {"vocab": {"a": 0}}, "model": {}}"#,
            r#"{"model": {"vocab": {"a": 0.0}}}"#,
            r#"{"model": {"vocab": {"a": true}}}"#,
            r#"{"model": {"vocab": {"a": 9223372036854775808}}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": ["a  b"]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": ["ab"]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": [["a", "b", "c"]]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": [["a"]]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": [["a", 1]]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": ["a b c"]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": ["a \u0100\u0100\u0200"]}}"#,
            r#"{"model": {"vocab": {"a": 0}, "merges": {}}}"#,
            r#"{"model": {"vocab": {"\ud800": 0}}}"#,
            r#"{"model": {"vocab": []}}"#,
            r#"{"model": {"merges": []}}"#,
            r#"{"model": []}"#,
            r#"{"vocab": {"a": 0}}"#,
            r#"{"model": {"vocab": {"a": 0}}} x"#,
            r#"{"model": {"vocab": {"a": NaN}}}"#,
            r#"[]"#,
        ] {
            assert!(split(text).is_none(), "{text}");
        }
        assert_eq!(split(r#"{"model": {"vocab": {"a": -7}}}"#).unwrap().model.entries[0].1, -7);
    }
}
