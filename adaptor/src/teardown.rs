//! Tearing a PP down: its private key deleted at Trustee, its local key
//! pair and its record removed.
//!
//! Contract: Trustee first; the local key pair and record are removed only
//! when Trustee confirmed (or the key was already gone there), so a failed
//! teardown can simply be repeated (`pp-adaptor pp delete --sid SID`).

use crate::keystore::KeyStore;
use crate::pp_record::RecordStore;
use crate::sid::Sid;
use crate::trustee_admin::TrusteeAdmin;

/// What teardown needs.
pub struct Teardown {
    pub trustee: TrusteeAdmin,
    pub keys: KeyStore,
    pub records: RecordStore,
}

impl Teardown {
    /// Deletes everything the adaptor holds for `sid`.
    pub async fn run(&self, sid: &Sid) -> Result<(), String> {
        self.trustee
            .delete_pp_private_key(sid)
            .await
            .map_err(|error| error.to_string())?;
        self.keys
            .remove_pp(sid)
            .await
            .map_err(|error| error.to_string())?;
        self.records
            .remove(sid)
            .map_err(|error| error.to_string())?;
        tracing::info!(
            "pp {sid}: torn down: private key deleted at Trustee, key pair removed from the key store, record removed"
        );
        Ok(())
    }
}
