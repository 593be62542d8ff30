//! Which PP host keys the adaptor accepts, as pure decisions (no sockets).
//!
//! Contract (docs/protocol.md section 1.1 and 2.3 "Upgrade"):
//! * A host key equal to the PP's own registered public key means the
//!   Kubernetes phase and is always accepted.
//! * Any other Ed25519 key means the attestation phase: accepted (and its
//!   fingerprint recorded, it cannot be proven) only while the adaptor has
//!   not yet seen the upgrade for this PP; refused afterwards.
//! * A key of another type, or a certificate, is always refused.
//! * An `UPGRADE` key must equal the PP's registered public key, else the
//!   adaptor stops serving that PP.

use pp_ssh_key::PublicKey;

/// What the adaptor still allows for one PP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// The upgrade was not seen yet: attestation phase, or the Kubernetes
    /// phase directly when the PP already shows its own key.
    AttestationOrKubernetes,
    /// The upgrade was seen: only the PP's own key is acceptable.
    KubernetesOnly,
}

/// The host key the server presented, reduced to what the policy needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresentedKey {
    Ed25519(PublicKey),
    /// Anything else: named by its algorithm, for the log line.
    Other {
        algorithm: String,
    },
}

/// The decision on one presented host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// An unproven key: this connection is the attestation phase.
    Attestation { fingerprint: String },
    /// The PP's own key: this connection is the Kubernetes phase.
    Kubernetes { fingerprint: String },
    /// Refused, with the reason for the log line.
    Refused { reason: String },
}

impl HostKeyVerdict {
    pub fn accepts(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }
}

/// Decides on `presented` for the PP whose registered key is `pp_key`.
pub fn judge_host_key(
    presented: &PresentedKey,
    pp_key: &PublicKey,
    expectation: Expectation,
) -> HostKeyVerdict {
    let key = match presented {
        PresentedKey::Ed25519(key) => key,
        PresentedKey::Other { algorithm } => {
            return HostKeyVerdict::Refused {
                reason: format!(
                    "host key type {algorithm} is not ssh-ed25519, which the forwarder always uses"
                ),
            };
        }
    };
    let fingerprint = key.fingerprint();
    if key == pp_key {
        return HostKeyVerdict::Kubernetes { fingerprint };
    }
    match expectation {
        Expectation::AttestationOrKubernetes => HostKeyVerdict::Attestation { fingerprint },
        Expectation::KubernetesOnly => HostKeyVerdict::Refused {
            reason: format!(
                "host key {fingerprint} is not the PP's key {} and the attestation phase is over",
                pp_key.fingerprint()
            ),
        },
    }
}

/// Why an `UPGRADE` frame was not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeError {
    #[error("UPGRADE carries an unreadable host key ({reason})")]
    Unreadable { reason: String },
    #[error(
        "UPGRADE announces host key {announced} but this PP's registered key is {registered}: \
         wrong PP or wrong key at Trustee"
    )]
    Mismatch {
        announced: String,
        registered: String,
    },
}

/// Checks the host key line of an `UPGRADE` frame against the PP's key.
pub fn check_upgrade_key(host_key_line: &str, pp_key: &PublicKey) -> Result<(), UpgradeError> {
    let announced = PublicKey::parse(host_key_line).map_err(|error| UpgradeError::Unreadable {
        reason: error.to_string(),
    })?;
    if &announced == pp_key {
        Ok(())
    } else {
        Err(UpgradeError::Mismatch {
            announced: announced.fingerprint(),
            registered: pp_key.fingerprint(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_ssh_key::PrivateKey;

    fn key(seed: u8) -> PublicKey {
        PrivateKey::from_seed([seed; 32]).public()
    }

    #[test]
    fn before_the_upgrade_any_ed25519_key_is_accepted_as_attestation_with_its_fingerprint() {
        let ephemeral = key(1);
        let verdict = judge_host_key(
            &PresentedKey::Ed25519(ephemeral),
            &key(2),
            Expectation::AttestationOrKubernetes,
        );
        assert_eq!(
            verdict,
            HostKeyVerdict::Attestation {
                fingerprint: ephemeral.fingerprint()
            }
        );
        assert!(verdict.accepts());
    }

    #[test]
    fn the_pps_own_key_means_kubernetes_phase_before_and_after_the_upgrade() {
        let pp = key(2);
        for expectation in [
            Expectation::AttestationOrKubernetes,
            Expectation::KubernetesOnly,
        ] {
            let verdict = judge_host_key(&PresentedKey::Ed25519(pp), &pp, expectation);
            assert_eq!(
                verdict,
                HostKeyVerdict::Kubernetes {
                    fingerprint: pp.fingerprint()
                }
            );
        }
    }

    #[test]
    fn after_the_upgrade_only_the_pps_key_is_accepted() {
        let verdict = judge_host_key(
            &PresentedKey::Ed25519(key(1)),
            &key(2),
            Expectation::KubernetesOnly,
        );
        assert!(!verdict.accepts());
    }

    #[test]
    fn non_ed25519_host_keys_are_always_refused() {
        let rsa = PresentedKey::Other {
            algorithm: "ssh-rsa".into(),
        };
        assert!(!judge_host_key(&rsa, &key(2), Expectation::AttestationOrKubernetes).accepts());
    }

    #[test]
    fn an_upgrade_to_the_registered_key_passes_and_any_other_key_stops() {
        let pp = key(2);
        assert_eq!(check_upgrade_key(&pp.emit(None), &pp), Ok(()));
        assert!(matches!(
            check_upgrade_key(&key(3).emit(None), &pp),
            Err(UpgradeError::Mismatch { .. })
        ));
        assert!(matches!(
            check_upgrade_key("ssh-ed25519 !!", &pp),
            Err(UpgradeError::Unreadable { .. })
        ));
    }
}
