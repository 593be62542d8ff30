//! What the control API was told about each pod, kept so that a restarted
//! adaptor (also after `kill -9`) serves every pod it knew again: the pod
//! exists (`create`), and once attached, its forwarder address and its
//! tunnel tags with the local addresses actually bound (a port 0 in the
//! request is stored as the port it got, so the listener comes back on the
//! same address).
//!
//! Contract: one file `<state dir>/pod-<SID>.json` per pod, written whole
//! (mode 0600, temporary file + rename). [`PodSpecStore::list`] returns
//! every readable spec and names every file it could not read; it never
//! guesses. The file name carries the SID; the content never overrides it.

use crate::pp_record::{RecordError, remove_if_present, write_whole};
use crate::sid::Sid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One pod as the control API left it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// Set by `attach`; `None` while the pod is only created.
    pub attach: Option<AttachSpec>,
}

/// How an attached pod is served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// `HOST:PORT` of the PP's forwarder.
    pub forwarder: String,
    pub init_data_has_wn_key: bool,
    /// Tunnel tags with the bound local addresses (no port 0).
    pub tunnels: Vec<String>,
    /// WN-side targets of the PP's inbound tunnels (absent in specs
    /// written before targets existed).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// The pod specs in the state directory.
#[derive(Clone, Debug)]
pub struct PodSpecStore {
    dir: PathBuf,
}

const PREFIX: &str = "pod-";
const SUFFIX: &str = ".json";

impl PodSpecStore {
    /// Uses `dir` (the adaptor's state directory, already created).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, sid: &Sid) -> PathBuf {
        self.dir.join(format!("{PREFIX}{sid}{SUFFIX}"))
    }

    /// Replaces the spec of `sid`.
    pub fn save(&self, sid: &Sid, spec: &PodSpec) -> Result<(), RecordError> {
        // Strings and bools always serialize.
        let bytes = serde_json::to_vec_pretty(spec).unwrap_or_default();
        write_whole(&self.path(sid), &bytes)
    }

    /// Forgets `sid`; a missing spec is not an error.
    pub fn remove(&self, sid: &Sid) -> Result<(), RecordError> {
        remove_if_present(&self.path(sid))
    }

    /// Every pod spec in the directory, sorted by SID, and the errors of
    /// the files that could not be used.
    pub fn list(&self) -> (Vec<(Sid, PodSpec)>, Vec<RecordError>) {
        let mut specs = Vec::new();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(source) => {
                errors.push(RecordError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                });
                return (specs, errors);
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(sid) = name
                .to_str()
                .and_then(|name| name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX))
            else {
                continue;
            };
            let path = entry.path();
            let damaged = |reason: String| RecordError::Damaged {
                path: path.clone(),
                reason,
            };
            let parsed = Sid::parse(sid)
                .map_err(|error| damaged(error.to_string()))
                .and_then(|sid| {
                    let bytes = std::fs::read(&path).map_err(|source| RecordError::Io {
                        action: "read",
                        path: path.clone(),
                        source,
                    })?;
                    let spec = serde_json::from_slice(&bytes)
                        .map_err(|error| damaged(error.to_string()))?;
                    Ok((sid, spec))
                });
            match parsed {
                Ok(found) => specs.push(found),
                Err(error) => errors.push(error),
            }
        }
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        (specs, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_specs_are_listed_by_sid_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = PodSpecStore::new(dir.path());
        let attached = PodSpec {
            attach: Some(AttachSpec {
                forwarder: "127.0.0.1:2222".into(),
                init_data_has_wn_key: true,
                tunnels: vec!["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150".into()],
                targets: vec!["BOTH_PHASES:DNS:udp:10.96.0.10:53".into()],
            }),
        };
        store.save(&Sid::parse("b").unwrap(), &attached).unwrap();
        store
            .save(&Sid::parse("a").unwrap(), &PodSpec::default())
            .unwrap();
        std::fs::write(dir.path().join("pod-c.json"), b"{").unwrap();
        std::fs::write(dir.path().join("pp-a.json"), b"{}").unwrap();
        let (specs, errors) = store.list();
        assert_eq!(
            specs,
            vec![
                (Sid::parse("a").unwrap(), PodSpec::default()),
                (Sid::parse("b").unwrap(), attached)
            ]
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("pod-c.json"),
            "{}",
            errors[0]
        );
        store.remove(&Sid::parse("b").unwrap()).unwrap();
        store.remove(&Sid::parse("b").unwrap()).unwrap();
        assert_eq!(store.list().0.len(), 1);
    }
}
