//! Errors shared across layers: field-level validation failures and the retryable/permanent class
//! every error carries so orchestration (ASL `Retry`/`Catch`, the embedded runner) can act on it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether trying the same operation again may succeed. The ASL retries exactly the retryable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Retryable,
    Permanent,
}

/// Longest run of a caller's input an error message repeats. Echoes help a caller find the bad
/// value; past this they only make the answer (and the log line) as big as the attack.
pub const ECHO_MAX_CHARS: usize = 40;

/// A caller's string as an error quotes it: debug-quoted (so control characters show), capped at
/// [`ECHO_MAX_CHARS`] with an ellipsis.
pub fn echo(raw: &str) -> String {
    cap(format!("{raw:?}"))
}

/// The same cap without quoting, for input that becomes a name (a JSON path built from a
/// caller's keys).
pub fn echo_unquoted(raw: &str) -> String {
    cap(raw.to_owned())
}

/// A caller's number as an error quotes it: as written when short, in exponent form when its
/// plain form is long (`1e308`, not 309 digits), and capped like [`echo`].
pub fn echo_number(value: f64) -> String {
    let plain = value.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        cap(format!("{value:e}"))
    }
}

fn cap(text: String) -> String {
    if text.chars().count() <= ECHO_MAX_CHARS {
        return text;
    }
    let mut capped: String = text.chars().take(ECHO_MAX_CHARS - 1).collect();
    capped.push('…');
    capped
}

/// One violated rule on one field, addressed by a dotted path such as `brand.logo.opacity`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every violation found in one request, not just the first, so a caller can fix them in one go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn single(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError::new(field, rule)],
        }
    }

    /// True when some error names `field` exactly.
    pub fn names(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid request: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_capped() {
        assert_eq!(echo("3:2"), "\"3:2\"");
        let long = echo(&"a".repeat(10_000));
        assert_eq!(long.chars().count(), ECHO_MAX_CHARS);
        assert!(long.starts_with("\"aaa") && long.ends_with('…'), "{long}");
        assert_eq!(echo_number(1e308), "1e308");
        assert_eq!(echo_number(-2.5), "-2.5");
        assert_eq!(echo_number(301.0), "301");
        assert_eq!(
            echo_number(1.234_567_890_123_456_7e-300),
            "1.2345678901234568e-300"
        );
        assert!(echo_number(f64::MAX).chars().count() <= ECHO_MAX_CHARS);
    }
}
