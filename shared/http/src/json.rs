//! Reading a request body's JSON strictly and answering in the API's words. A key given twice at
//! any depth is refused (serde_json would keep the last one silently, so two readers of the same
//! body could disagree), and a field of the wrong type is told as `must be a number (got a
//! string)`, naming its path, never in serde's words (`invalid type: string "10", expected f64`).

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_path_to_error::Segment;
use std::cell::RefCell;
use std::fmt;
use vidpipe_domain::error::{FieldError, echo_number, echo_unquoted};

/// Why a body is not one JSON document with unique keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not JSON; serde_json's description (a position, never the input).
    Syntax(String),
    /// The dotted path of a key given twice in one object.
    Duplicate(String),
}

/// Parses one JSON document, refusing a key repeated within an object.
pub fn parse(bytes: &[u8]) -> Result<Value, ReadError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Node {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| match duplicate.into_inner() {
        Some(path) => ReadError::Duplicate(path),
        None => ReadError::Syntax(e.to_string()),
    })
}

/// Reads `value` as `T`; the first mismatch becomes a field error at its path in API words.
pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let segments: Vec<&Segment> = e.path().iter().collect();
        let field = match e.path().to_string() {
            root if root == "." => "body".to_owned(),
            path => echo_unquoted(&path),
        };
        let got = at(value, &segments).map(describe);
        FieldError::new(field, rule(&e.inner().to_string(), got))
    })
}

/// The value a path leads to, when it leads to one.
fn at<'v>(value: &'v Value, path: &[&Segment]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match segment {
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Seq { index } => v.get(*index),
        Segment::Enum { .. } | Segment::Unknown => Some(v),
    })
}

/// What the caller sent, as a rule quotes it: a number as written (capped), anything else by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), echo_number),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// serde's message as the rule the field broke. serde words every type mismatch as
/// `invalid type: X, expected Y` (or `invalid value: ...` for a negative unsigned), where `Y` is
/// the target's own description; only `Y` is read, and `X` is replaced by [`describe`].
fn rule(serde_message: &str, got: Option<String>) -> String {
    let got = |rule: &str| match &got {
        Some(got) => format!("{rule} (got {got})"),
        None => rule.to_owned(),
    };
    if let Some(rest) = serde_message.strip_prefix("unknown field `") {
        // `expected one of `a`, `b``, or `expected `a`` when there is one field.
        let allowed = rest.split_once(", expected ").map(|(_, names)| {
            names
                .strip_prefix("one of ")
                .unwrap_or(names)
                .replace('`', "")
        });
        return match allowed {
            Some(names) => format!("is not a field here; the fields are {names}"),
            None => "is not a field here".to_owned(),
        };
    }
    let expected = ["invalid type: ", "invalid value: "]
        .iter()
        .any(|p| serde_message.starts_with(p))
        .then(|| serde_message.rsplit_once(", expected "))
        .flatten()
        .map(|(_, expected)| expected);
    match expected {
        Some("f64" | "f32") => got("must be a number"),
        Some("u64" | "u32" | "u16" | "u8" | "usize") => got("must be a whole number ≥ 0"),
        Some("i64" | "i32" | "i16" | "i8" | "isize") => got("must be a whole number"),
        Some("a boolean") => got("must be true or false"),
        Some("a string") => got("must be a string"),
        Some(e) if e.starts_with("struct ") || e == "a map" => got("must be an object"),
        Some(e) if e.starts_with("one of: ") || e.starts_with("must be ") => got(e),
        _ => got("is not a value this field takes"),
    }
}

/// Builds a `Value` like serde_json's own, tracking the path to refuse a repeated key.
struct Node<'a> {
    path: String,
    /// The first repeated key's path, set just before the parse is failed.
    duplicate: &'a RefCell<Option<String>>,
}

impl Node<'_> {
    fn child(&self, name: fmt::Arguments<'_>) -> Self {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        Node {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            path: format!("{}[{}]", self.path, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(format_args!("{key}"));
            if fields.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(echo_unquoted(&child.path));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(child)?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_with_its_path() {
        assert_eq!(
            parse(br#"{"a": 1, "a": 2}"#),
            Err(ReadError::Duplicate("a".into()))
        );
        assert_eq!(
            parse(br#"{"brand": {"logo": {"opacity": 1, "scale": 0.1, "opacity": 0.5}}}"#),
            Err(ReadError::Duplicate("brand.logo.opacity".into()))
        );
        assert_eq!(
            parse(br#"{"x": [{"k": 1}, {"k": 1, "k": 2}]}"#),
            Err(ReadError::Duplicate("x[1].k".into()))
        );
        // The same key in sibling objects is no repetition.
        let v = parse(br#"{"a": {"k": 1}, "b": {"k": 2}, "c": [1, 2.5, "s", null, true]}"#)
            .expect("valid");
        assert_eq!(
            v,
            serde_json::json!({"a": {"k": 1}, "b": {"k": 2}, "c": [1, 2.5, "s", null, true]})
        );
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_syntax() {
        for bad in [&b"{"[..], b"{} x", b"{\"a\" 1}", b"1e400"] {
            assert!(
                matches!(parse(bad), Err(ReadError::Syntax(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        n: Option<f64>,
        u: Option<u64>,
        i: Option<i64>,
        b: Option<bool>,
        s: Option<String>,
        o: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        k: Option<u64>,
    }

    fn error(json: serde_json::Value) -> FieldError {
        typed::<Shape>(&json).expect_err("must fail")
    }

    #[test]
    fn type_errors_are_worded_for_people_with_the_path() {
        use serde_json::json;
        let cases = [
            (json!({"n": "10"}), "n", "must be a number (got a string)"),
            (json!({"u": -1}), "u", "must be a whole number ≥ 0 (got -1)"),
            (
                json!({"u": 1.5}),
                "u",
                "must be a whole number ≥ 0 (got 1.5)",
            ),
            (
                json!({"u": 1e308}),
                "u",
                "must be a whole number ≥ 0 (got 1e308)",
            ),
            (json!({"i": true}), "i", "must be a whole number (got true)"),
            (
                json!({"b": "yes"}),
                "b",
                "must be true or false (got a string)",
            ),
            (json!({"s": 3}), "s", "must be a string (got 3)"),
            (json!({"o": "x"}), "o", "must be an object (got a string)"),
            (
                json!({"o": {"k": {}}}),
                "o.k",
                "must be a whole number ≥ 0 (got an object)",
            ),
            (json!("x"), "body", "must be an object (got a string)"),
            (
                json!({"o": {"z": 1}}),
                "o.z",
                "is not a field here; the fields are k",
            ),
        ];
        for (json, field, rule) in cases {
            assert_eq!(error(json.clone()), FieldError::new(field, rule), "{json}");
        }
    }
}
