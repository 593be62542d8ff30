//! RFC 8785 (JCS) canonical JSON for the values the KBS protocol hashes:
//! object keys sorted by UTF-16 code units, no whitespace, strings escaped
//! as ECMAScript's `JSON.stringify` does. Numbers: integers only; a
//! non-integer number is refused with an error (the runtime data hashed by
//! the protocol holds strings only, and refusing is safer than emitting a
//! different form than RFC 8785's ECMAScript number formatting).

use serde_json::Value;
use std::fmt;

/// A value this canonicaliser does not support.
#[derive(Debug, PartialEq, Eq)]
pub struct CanonicalJsonError(String);

impl fmt::Display for CanonicalJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot canonicalise {} (this double's RFC 8785 writer supports integers only)",
            self.0
        )
    }
}

impl std::error::Error for CanonicalJsonError {}

/// Writes `value` in RFC 8785 canonical form.
pub fn to_canonical_json(value: &Value) -> Result<String, CanonicalJsonError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                return Err(CanonicalJsonError(format!("the number {n}")));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_is_dropped() {
        let value = json!({"nonce": "n", "additional-evidence": "", "tee-pubkey": {"y": "2", "x": "1", "crv": "P-256"}});
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            r#"{"additional-evidence":"","nonce":"n","tee-pubkey":{"crv":"P-256","x":"1","y":"2"}}"#
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_by_code_points() {
        // U+E000 sorts after a surrogate pair (U+1F600 -> D83D DE00) in UTF-16.
        let value = json!({"\u{e000}": 1, "\u{1f600}": 2});
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "{\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    #[test]
    fn control_characters_are_escaped_like_ecmascript() {
        let value = json!(["\u{1f}\u{8}\t\n\u{c}\r\"\\/\u{7f}é"]);
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "[\"\\u001f\\b\\t\\n\\f\\r\\\"\\\\/\u{7f}é\"]"
        );
    }

    #[test]
    fn integers_and_literals_are_written_plainly() {
        let value = json!([-3, 18446744073709551615u64, true, false, null]);
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "[-3,18446744073709551615,true,false,null]"
        );
    }

    #[test]
    fn non_integer_numbers_are_refused() {
        assert!(to_canonical_json(&json!({"a": 1.5})).is_err());
    }
}
