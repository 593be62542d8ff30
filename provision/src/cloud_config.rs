//! cloud-config user-data: parse it strictly and pick out the `write_files`
//! entry that carries init-data (`/run/peerpod/initdata`).
//!
//! Contract: [`initdata_entry`] takes untrusted bytes and never panics. The
//! user-data must be UTF-8, start with the `#cloud-config` line, and be one
//! YAML document (parsed by serde-saphyr with a small budget: anchors,
//! aliases, nodes and depth are capped, duplicate keys are an error). Other
//! top-level keys are ignored; every `write_files` entry must match
//! cloud-init's schema for such entries (unknown keys, a missing `path`, a
//! wrong type are errors naming the entry), while only the init-data entry
//! is used. That entry must be unique, inline (`content`, no `source`, no
//! `append`) and use an encoding pp-provision supports. Its decoded content
//! is returned as bytes; nothing else from user-data is written anywhere,
//! since only init-data is bound to the TEE launch.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::encoding::{self, EncodingError};

/// The `write_files` path peer pods use for init-data.
pub const INITDATA_PATH: &str = "/run/peerpod/initdata";
const CLOUD_CONFIG_HEADER: &str = "#cloud-config";

/// Why the user-data was refused.
#[derive(Debug, thiserror::Error)]
pub enum CloudConfigError {
    #[error("user-data is empty (was the pod created with init-data?)")]
    Empty,
    #[error("user-data is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error(
        "user-data does not start with a {CLOUD_CONFIG_HEADER:?} line (scripts and MIME multi-part user-data are not supported)"
    )]
    NoHeader,
    #[error("user-data is not valid cloud-config YAML: {0}")]
    Yaml(String),
    #[error("user-data has no write_files entry with path {INITDATA_PATH:?}")]
    NoInitdataEntry,
    #[error("user-data has {0} write_files entries with path {INITDATA_PATH:?}; expected one")]
    DuplicateInitdataEntry(usize),
    #[error("write_files entry {INITDATA_PATH:?}: field `{field}` {reason}")]
    BadInitdataEntry { field: &'static str, reason: String },
}

/// One `write_files` entry, as cloud-init's schema defines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFile {
    path: String,
    content: Option<String>,
    source: Option<RemoteSource>,
    owner: Option<String>,
    permissions: Option<String>,
    encoding: Option<String>,
    append: Option<bool>,
    /// cloud-init's "write after users are created" flag: type-checked only.
    #[serde(rename = "defer")]
    _defer: Option<bool>,
}

/// `source:` fetches content from a URI; parsed so that a valid entry is
/// accepted, refused for init-data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSource {
    #[serde(rename = "uri")]
    _uri: String,
    #[serde(rename = "headers", default)]
    _headers: BTreeMap<String, String>,
}

/// The parts of cloud-config pp-provision looks at; other keys are ignored.
#[derive(Debug, Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

/// Parse user-data and return the decoded content of its init-data entry.
pub fn initdata_entry(user_data: &[u8]) -> Result<Vec<u8>, CloudConfigError> {
    if user_data.trim_ascii().is_empty() {
        return Err(CloudConfigError::Empty);
    }
    let text =
        std::str::from_utf8(user_data).map_err(|e| CloudConfigError::NotUtf8(e.valid_up_to()))?;
    let first_line = text.lines().next().unwrap_or("");
    if first_line.trim_end() != CLOUD_CONFIG_HEADER {
        return Err(CloudConfigError::NoHeader);
    }
    let config: CloudConfig = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| CloudConfigError::Yaml(e.to_string()))?;
    let mut matching = config
        .write_files
        .into_iter()
        .filter(|entry| entry.path == INITDATA_PATH);
    let entry = matching.next().ok_or(CloudConfigError::NoInitdataEntry)?;
    let extra = matching.count();
    if extra > 0 {
        return Err(CloudConfigError::DuplicateInitdataEntry(extra + 1));
    }
    decode_entry(entry)
}

fn decode_entry(entry: WriteFile) -> Result<Vec<u8>, CloudConfigError> {
    let bad = |field, reason: &str| CloudConfigError::BadInitdataEntry {
        field,
        reason: reason.to_owned(),
    };
    if entry.source.is_some() {
        return Err(bad("source", "is not supported: init-data must be inline"));
    }
    if entry.append == Some(true) {
        return Err(bad("append", "must not be true"));
    }
    // Owner and permissions of the written files are pp-provision's choice
    // (root, 0600); an entry may still carry them.
    let _ = (entry.owner, entry.permissions);
    let content = entry.content.ok_or_else(|| bad("content", "is missing"))?;
    encoding::decode_write_files_content(entry.encoding.as_deref(), &content).map_err(|err| {
        let field = match err {
            EncodingError::UnknownEncoding(_) | EncodingError::BinaryNotSupported(_) => "encoding",
            _ => "content",
        };
        CloudConfigError::BadInitdataEntry {
            field,
            reason: err.to_string(),
        }
    })
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_anchors = 64;
    budget.max_aliases = 64;
    budget.max_recorded_anchor_bytes = 256 * 1024;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_documents = 1;
    budget.max_depth = 32;
    budget.max_nodes = 50_000;
    budget.max_events = 200_000;
    budget.max_total_scalar_bytes = 1024 * 1024;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_data(entries: &str) -> String {
        format!("#cloud-config\nhostname: pod\nwrite_files:\n{entries}")
    }

    #[test]
    fn the_initdata_entry_content_is_returned_and_other_entries_ignored() {
        let yaml = user_data(
            "- path: /etc/other\n  content: hello\n  permissions: 0644\n  owner: root:root\n  defer: true\n\
             - path: /run/peerpod/initdata\n  content: SGVsbG8=\n",
        );
        assert_eq!(initdata_entry(yaml.as_bytes()).unwrap(), b"SGVsbG8=");
    }

    #[test]
    fn a_b64_encoded_entry_is_decoded() {
        let yaml = user_data("- path: /run/peerpod/initdata\n  encoding: b64\n  content: aGk=\n");
        assert_eq!(initdata_entry(yaml.as_bytes()).unwrap(), b"hi");
    }

    #[test]
    fn empty_user_data_is_named_as_such() {
        assert!(matches!(initdata_entry(b""), Err(CloudConfigError::Empty)));
        assert!(matches!(
            initdata_entry(b" \n"),
            Err(CloudConfigError::Empty)
        ));
    }

    #[test]
    fn user_data_without_the_header_is_refused() {
        let err = initdata_entry(b"write_files: []\n").unwrap_err();
        assert!(matches!(err, CloudConfigError::NoHeader));
    }

    #[test]
    fn non_utf8_user_data_is_refused_with_the_offset() {
        let err = initdata_entry(b"#cloud-config\n\xff").unwrap_err();
        assert!(matches!(err, CloudConfigError::NotUtf8(14)));
    }

    #[test]
    fn a_missing_initdata_entry_is_reported() {
        let yaml = user_data("- path: /etc/other\n  content: x\n");
        assert!(matches!(
            initdata_entry(yaml.as_bytes()),
            Err(CloudConfigError::NoInitdataEntry)
        ));
        assert!(matches!(
            initdata_entry(b"#cloud-config\n{}\n"),
            Err(CloudConfigError::NoInitdataEntry)
        ));
    }

    #[test]
    fn two_initdata_entries_are_refused() {
        let yaml = user_data(
            "- path: /run/peerpod/initdata\n  content: a\n- path: /run/peerpod/initdata\n  content: b\n",
        );
        assert!(matches!(
            initdata_entry(yaml.as_bytes()),
            Err(CloudConfigError::DuplicateInitdataEntry(2))
        ));
    }

    #[test]
    fn a_malformed_unrelated_entry_is_refused_naming_the_field() {
        let yaml = user_data("- path: /etc/other\n  contents: typo\n");
        let err = initdata_entry(yaml.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("contents"), "{err}");
        let yaml = user_data("- content: no path\n");
        let err = initdata_entry(yaml.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn an_entry_without_content_names_the_content_field() {
        let yaml = user_data("- path: /run/peerpod/initdata\n");
        let err = initdata_entry(yaml.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            CloudConfigError::BadInitdataEntry {
                field: "content",
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_encoding_names_the_encoding_field() {
        let yaml = user_data("- path: /run/peerpod/initdata\n  encoding: rot13\n  content: abc\n");
        let err = initdata_entry(yaml.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            CloudConfigError::BadInitdataEntry {
                field: "encoding",
                ..
            }
        ));
    }

    #[test]
    fn a_remote_source_or_append_is_refused_for_initdata() {
        let yaml = user_data(
            "- path: /run/peerpod/initdata\n  source:\n    uri: http://example.invalid/x\n",
        );
        assert!(initdata_entry(yaml.as_bytes()).is_err());
        let yaml = user_data("- path: /run/peerpod/initdata\n  append: true\n  content: a\n");
        assert!(initdata_entry(yaml.as_bytes()).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let yaml = user_data("- path: /run/peerpod/initdata\n  content: a\n  content: b\n");
        assert!(matches!(
            initdata_entry(yaml.as_bytes()),
            Err(CloudConfigError::Yaml(_))
        ));
    }

    #[test]
    fn an_alias_bomb_is_stopped_by_the_budget() {
        let mut yaml = String::from("#cloud-config\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..30 {
            let prev = level - 1;
            yaml.push_str(&format!(
                "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(matches!(
            initdata_entry(yaml.as_bytes()),
            Err(CloudConfigError::Yaml(_))
        ));
    }
}
