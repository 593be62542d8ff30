//! A KBS resource path `<repo>/<type>/<tag>`: three segments, each matching
//! `[A-Za-z0-9_-][A-Za-z0-9_.-]*` (so no `..`, no empty segment, no hidden
//! dot-files). `parse` validates untrusted text and never panics.

use std::fmt;

/// A validated resource path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourcePath {
    repository: String,
    kind: String,
    tag: String,
}

/// Text that is not a valid resource path.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourcePathError(pub String);

impl fmt::Display for ResourcePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid resource path {:?}: expected <repo>/<type>/<tag>, each matching [A-Za-z0-9_-][A-Za-z0-9_.-]*",
            self.0
        )
    }
}

impl std::error::Error for ResourcePathError {}

/// Whether `segment` matches `[A-Za-z0-9_-][A-Za-z0-9_.-]*`.
pub fn is_valid_segment(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    let body_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
    match bytes.next() {
        Some(first) if first != b'.' && body_ok(first) => bytes.all(body_ok),
        _ => false,
    }
}

impl ResourcePath {
    /// Parses `<repo>/<type>/<tag>`.
    pub fn parse(text: &str) -> Result<Self, ResourcePathError> {
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(repository), Some(kind), Some(tag), None)
                if [repository, kind, tag].iter().all(|s| is_valid_segment(s)) =>
            {
                Ok(Self {
                    repository: repository.into(),
                    kind: kind.into(),
                    tag: tag.into(),
                })
            }
            _ => Err(ResourcePathError(text.into())),
        }
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.repository, self.kind, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_segment_path_parses_and_prints_back() {
        let path = ResourcePath::parse("default/pp-sid/privateKey").unwrap();
        assert_eq!(path.to_string(), "default/pp-sid/privateKey");
        assert!(ResourcePath::parse("a.b/_x/-y.1").is_ok());
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "",
            "a/b",
            "a/b/c/d",
            "a//c",
            "../b/c",
            "a/.hidden/c",
            "a/b/c d",
            "a/b/%2e",
            "/a/b",
            "a/b/c/",
            "é/b/c",
        ] {
            assert!(ResourcePath::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
