//! Conversions between `serde_json::Value` and the smithy `Document` the Bedrock SDK uses for
//! free-form JSON (tool schemas, tool inputs, async model inputs). The SDK exposes serde support
//! for documents only behind an unstable cfg, so the mapping is spelled out here.

use aws_smithy_types::{Document, Number};
use serde_json::Value;

pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            // serde_json without arbitrary precision always has an f64 view of a number.
            Number::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
    }
}

/// A non-finite float has no JSON form and becomes `null`, which any schema check downstream
/// then refuses.
pub fn document_to_json(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_survives_a_round_trip_through_a_document() {
        let value = serde_json::json!({
            "a": [1, -2, 2.5, "x", null, true],
            "b": {"c": {"d": u64::MAX}},
        });
        assert_eq!(document_to_json(&json_to_document(&value)), value);
    }
}
