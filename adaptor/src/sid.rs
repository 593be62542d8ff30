//! The peer pod's sandbox id (SID): the name under which the adaptor keeps
//! the PP's key pair (`pp-<SID>` in the key directory) and registers its
//! private key at Trustee (`default/pp-<SID>/privateKey`).
//!
//! Contract: a [`Sid`] is always 1..=128 characters of `[A-Za-z0-9_.-]` and
//! does not start with `.`, so `pp-<SID>` is both a safe file name and a
//! valid Trustee resource path segment (`[A-Za-z0-9_-][A-Za-z0-9_.-]*`).

use std::fmt;
use std::str::FromStr;

/// Longest SID accepted (Kubernetes sandbox ids are 64 hex characters).
pub const MAX_SID_LEN: usize = 128;

/// A validated sandbox id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(String);

/// Why a string is not a usable SID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SidError {
    #[error("the sandbox id is empty")]
    Empty,
    #[error("the sandbox id is longer than {MAX_SID_LEN} characters")]
    TooLong,
    #[error("the sandbox id must not start with '.'")]
    LeadingDot,
    #[error("the sandbox id may hold only A-Z a-z 0-9 _ . - (found {found:?})")]
    BadCharacter { found: char },
}

impl Sid {
    /// Checks `text` against the SID rules.
    pub fn parse(text: &str) -> Result<Self, SidError> {
        if text.is_empty() {
            return Err(SidError::Empty);
        }
        if text.len() > MAX_SID_LEN {
            return Err(SidError::TooLong);
        }
        if text.starts_with('.') {
            return Err(SidError::LeadingDot);
        }
        if let Some(found) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(SidError::BadCharacter { found });
        }
        Ok(Self(text.to_owned()))
    }

    /// The SID as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The per-PP name used for key files and the Trustee resource type:
    /// `pp-<SID>`.
    pub fn pp_name(&self) -> String {
        format!("pp-{}", self.0)
    }
}

impl FromStr for Sid {
    type Err = SidError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Sid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_sandbox_id_is_accepted_and_named_pp_dash_sid() {
        let sid = Sid::parse("0123abcdef").unwrap();
        assert_eq!(sid.pp_name(), "pp-0123abcdef");
    }

    #[test]
    fn path_separators_and_leading_dots_are_refused() {
        assert_eq!(
            Sid::parse("a/b"),
            Err(SidError::BadCharacter { found: '/' })
        );
        assert_eq!(Sid::parse(".."), Err(SidError::LeadingDot));
        assert_eq!(Sid::parse(""), Err(SidError::Empty));
        assert_eq!(
            Sid::parse(&"a".repeat(MAX_SID_LEN + 1)),
            Err(SidError::TooLong)
        );
    }
}
