//! Errors of tag parsing: each names the tag, the field and the form that
//! was expected, so an operator can fix the configuration at once.

use alloc::string::String;
use core::fmt;

/// A tag that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    /// The tag as written (trimmed).
    pub tag: String,
    /// What is wrong with it.
    pub kind: TagErrorKind,
}

/// What is wrong with a tag; `found` holds the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagErrorKind {
    /// Not `PHASE:NAME:...` with enough fields.
    Shape,
    /// The PHASE field is not ATTESTATION_PHASE, KUBERNETES_PHASE or BOTH_PHASES.
    Phase {
        /// The text found.
        found: String,
    },
    /// The NAME field is not `[A-Za-z0-9_-]{1,64}`.
    Name {
        /// The text found.
        found: String,
    },
    /// The PORT field is not a port number (1-65535).
    Port {
        /// The text found.
        found: String,
    },
    /// A host name or malformed address where an IP literal belongs.
    Host {
        /// The text found.
        found: String,
    },
    /// The network namespace is not an absolute path (or a bare name, inbound).
    NetnsPath {
        /// The text found.
        found: String,
    },
    /// The unix socket path is not absolute.
    UnixPath {
        /// The text found.
        found: String,
    },
    /// Two tags in one set use the same name.
    DuplicateName {
        /// The tunnel name.
        name: String,
    },
}

impl TagErrorKind {
    /// The field of the tag the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Shape => "tag",
            Self::Phase { .. } => "PHASE",
            Self::Name { .. } | Self::DuplicateName { .. } => "NAME",
            Self::Port { .. } => "PORT",
            Self::Host { .. } => "HOST",
            Self::NetnsPath { .. } => "NETNS",
            Self::UnixPath { .. } => "PATH",
        }
    }

    /// The form the field must have.
    pub fn expected(&self) -> &'static str {
        match self {
            Self::Shape => {
                "PHASE:NAME:PORT, PHASE:NAME:HOST:PORT, PHASE:NAME:NETNS:PORT or PHASE:NAME:unix:PATH \
                 (UDP: udp: before PORT, HOST:PORT or NETNS:PORT; unix datagram: unixgram:PATH)"
            }
            Self::Phase { .. } => "ATTESTATION_PHASE, KUBERNETES_PHASE or BOTH_PHASES",
            Self::Name { .. } => "1 to 64 characters from A-Z a-z 0-9 _ -",
            Self::DuplicateName { .. } => "a name used by no other tag of the same list",
            Self::Port { .. } => "a decimal port number 1..=65535 (0 only for inbound listeners)",
            Self::Host { .. } => {
                "an IPv4 literal (10.0.0.1) or a bracketed IPv6 literal ([fd00::1]); \
                 host names are not accepted (no DNS in the peer pod)"
            }
            Self::NetnsPath { .. } => {
                "an absolute network namespace path such as /run/netns/podns (inbound tags \
                 also take a bare namespace name)"
            }
            Self::UnixPath { .. } => "an absolute socket path of at most 107 bytes",
        }
    }

    fn found(&self) -> Option<&str> {
        match self {
            Self::Shape => None,
            Self::Phase { found }
            | Self::Name { found }
            | Self::Port { found }
            | Self::Host { found }
            | Self::NetnsPath { found }
            | Self::UnixPath { found } => Some(found),
            Self::DuplicateName { name } => Some(name),
        }
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = &self.kind;
        write!(f, "tunnel tag `{}`: ", self.tag)?;
        match kind {
            TagErrorKind::DuplicateName { name } => {
                write!(f, "NAME `{name}` is used by an earlier tag too")?
            }
            _ => match kind.found() {
                Some(found) => write!(f, "{} `{found}` is not valid", kind.field())?,
                None => f.write_str("wrong number of fields")?,
            },
        }
        write!(f, "; expected {}", kind.expected())
    }
}

impl core::error::Error for TagError {}
