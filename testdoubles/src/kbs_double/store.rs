//! The KBS double's in-memory state: handshake sessions (bounded in number
//! and lifetime), resources, and the admin uploads (resource policy,
//! attestation policies, reference values), which are stored as given and
//! listed for tests but not evaluated.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

use crate::resource_path::ResourcePath;

/// How long a handshake session lives, in seconds.
pub const SESSION_LIFETIME_SECS: u64 = 300;
/// At most this many sessions are kept; the oldest goes first.
pub const MAX_SESSIONS: usize = 1024;

/// One RCAR handshake session.
#[derive(Debug, Clone)]
pub struct Session {
    pub nonce: String,
    pub created: u64,
    /// The TEE key once the session has attested.
    pub attested_key: Option<Value>,
}

/// Everything the double remembers.
#[derive(Debug, Default)]
pub struct Store {
    sessions: HashMap<String, Session>,
    pub resources: BTreeMap<ResourcePath, Vec<u8>>,
    pub resource_policy: Option<String>,
    pub attestation_policies: BTreeMap<String, String>,
    pub reference_values: BTreeMap<String, Value>,
}

impl Store {
    /// Adds a session, dropping expired ones and, when full, the oldest.
    pub fn insert_session(&mut self, id: String, session: Session, now: u64) {
        self.sessions
            .retain(|_, s| s.created + SESSION_LIFETIME_SECS > now);
        while self.sessions.len() >= MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.sessions.remove(&id),
                None => break,
            };
        }
        self.sessions.insert(id, session);
    }

    /// The live session with this id.
    pub fn session_mut(&mut self, id: &str, now: u64) -> Option<&mut Session> {
        self.sessions
            .get_mut(id)
            .filter(|s| s.created + SESSION_LIFETIME_SECS > now)
    }

    /// The test listing served at `GET /kbs-double/resources`.
    pub fn listing(&self) -> Value {
        json!({
            "resources": self.resources.iter().map(|(path, bytes)| json!({"path": path.to_string(), "bytes": bytes.len()})).collect::<Vec<_>>(),
            "resource_policy": self.resource_policy,
            "attestation_policies": self.attestation_policies,
            "reference_values": self.reference_values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: u64) -> Session {
        Session {
            nonce: "n".into(),
            created,
            attested_key: None,
        }
    }

    #[test]
    fn sessions_expire_after_their_lifetime() {
        let mut store = Store::default();
        store.insert_session("a".into(), session(100), 100);
        assert!(
            store
                .session_mut("a", 100 + SESSION_LIFETIME_SECS - 1)
                .is_some()
        );
        assert!(
            store
                .session_mut("a", 100 + SESSION_LIFETIME_SECS)
                .is_none()
        );
    }

    #[test]
    fn the_oldest_session_goes_when_the_store_is_full() {
        let mut store = Store::default();
        for i in 0..MAX_SESSIONS as u64 {
            store.insert_session(format!("s{i}"), session(10 + i), 10);
        }
        store.insert_session("new".into(), session(10), 10);
        assert!(store.session_mut("s0", 10).is_none());
        assert!(store.session_mut("s1", 10).is_some());
        assert!(store.session_mut("new", 10).is_some());
    }
}
