//! Why init-data could not be read; every message names what to check.

use alloc::string::String;
use core::fmt;

/// An init-data decoding or parsing failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDataError {
    /// More than `limit` bytes were delivered.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The TOML would inflate beyond `limit` bytes.
    InflatesTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The text looked like base64 (it starts with `H4sI`, gzip's magic in
    /// base64) but is not valid padded standard base64.
    BadBase64,
    /// The gzip data is damaged; `what` says where.
    BadGzip {
        /// What is wrong.
        what: &'static str,
    },
    /// The TOML is not UTF-8.
    NotUtf8,
    /// The TOML does not parse or does not have the init-data shape.
    Toml {
        /// What the TOML parser said.
        message: String,
    },
    /// `version` is not the one this parser knows.
    UnsupportedVersion {
        /// The text found.
        found: String,
    },
}

impl fmt::Display for InitDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => {
                write!(f, "init-data is larger than {limit} bytes as delivered")
            }
            Self::InflatesTooLarge { limit } => write!(
                f,
                "init-data inflates to more than {limit} bytes of TOML; refusing to go on"
            ),
            Self::BadBase64 => f.write_str(
                "init-data starts like base64-encoded gzip (`H4sI`) but is not valid padded base64",
            ),
            Self::BadGzip { what } => write!(f, "init-data gzip is damaged: {what}"),
            Self::NotUtf8 => f.write_str("init-data TOML is not valid UTF-8"),
            Self::Toml { message } => write!(f, "init-data TOML: {message}"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "init-data `version = \"{found}\"` is not supported; expected `version = \"0.1.0\"`"
            ),
        }
    }
}

impl core::error::Error for InitDataError {}
