//! The persisted phase record: what the forwarder writes to tmpfs (guest
//! memory) so that a restarted process resumes its phase and never reopens
//! the attestation phase within one boot.
//!
//! Bytes on disk: postcard encoding of `{ version: u16, boot_id: [u8; 16],
//! phase }`, followed by SHA-256 over those encoded bytes. A `Kubernetes`
//! record holds the PP keys itself, so keys and phase are one atomic write:
//! a kill at any point leaves either the claim or the keys, never keys
//! without the phase that says they exist.
//!
//! Contract: [`PhaseRecord::parse`] never panics. It returns `Ok(None)` for
//! a record of another boot (to be ignored), `Ok(Some(_))` for an intact
//! record of this boot, and `Err` for anything damaged, truncated, too
//! large or of an unknown version; the driver fails closed on `Err`.
//! [`PhaseRecord::emit`] output always parses back to the same record.

mod boot_id;

pub use boot_id::{BootId, BootIdError, parse_boot_id};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The record format version written by this code.
pub const RECORD_VERSION: u16 = 2;
/// Records are small; anything larger is damage.
pub const MAX_RECORD_LEN: usize = 16 * 1024;
const CHECKSUM_LEN: usize = 32;

/// The phase as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordedPhase {
    /// The attestation phase is open; it began `began_ms` after boot (the
    /// deadline counts from there, across restarts).
    AttestationOpen {
        /// When the attestation phase began, in milliseconds since boot.
        began_ms: u64,
    },
    /// One connection was admitted in the attestation phase; keys were
    /// being fetched.
    AttestationClaimed {
        /// The connection.
        conn: u64,
        /// The TCP peer.
        peer: SocketAddr,
        /// `SHA256:...` of the ephemeral host key that connection saw.
        attestation_host_key_fingerprint: String,
    },
    /// Keys were obtained; the Kubernetes phase is on.
    Kubernetes {
        /// `SHA256:...` of the ephemeral host key the attestation connection saw.
        attestation_host_key_fingerprint: String,
        /// The TCP peer of the attestation connection.
        attestation_peer: SocketAddr,
        /// The Kubernetes-phase keys.
        keys: KeyBytes,
    },
    /// The forwarder failed closed for this boot.
    Failed {
        /// Why, for the log line.
        reason: String,
    },
}

/// The Kubernetes-phase keys as stored: the PP host key's Ed25519 seed and
/// the Trustee WN public key. The seed is zeroized on drop and never
/// printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBytes {
    /// The PP host key's seed (`default/pp-<SID>/privateKey`).
    pub host_key_seed: [u8; 32],
    /// The WN public key (`default/sshclient/publicKey`).
    pub wn_key: [u8; 32],
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBytes")
            .field("host_key_seed", &"<secret>")
            .field("wn_key", &self.wn_key)
            .finish()
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.host_key_seed.zeroize();
    }
}

/// A phase record of one boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// The boot this record belongs to.
    pub boot_id: BootId,
    /// The recorded phase.
    pub phase: RecordedPhase,
}

/// The encoded layout (version first, so it can be read on its own).
#[derive(Serialize, Deserialize)]
struct Encoded {
    version: u16,
    record: PhaseRecord,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u16,
}

/// Why a record file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Larger than any record.
    TooLarge {
        /// The size found.
        len: usize,
    },
    /// Truncated, altered or undecodable.
    Damaged {
        /// What is wrong.
        what: &'static str,
    },
    /// Written by another version of the format.
    UnknownVersion {
        /// What the store found.
        found: u16,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => {
                write!(
                    f,
                    "phase record is {len} bytes, more than {MAX_RECORD_LEN}: damaged"
                )
            }
            Self::Damaged { what } => write!(f, "phase record is damaged: {what}"),
            Self::UnknownVersion { found } => write!(
                f,
                "phase record has version {found}; this forwarder reads version {RECORD_VERSION}"
            ),
        }
    }
}

impl core::error::Error for RecordError {}

impl PhaseRecord {
    /// Encodes the record followed by its SHA-256.
    pub fn emit(&self) -> Vec<u8> {
        let encoded = Encoded {
            version: RECORD_VERSION,
            record: self.clone(),
        };
        // Encoding plain structs into a Vec cannot fail.
        let mut bytes = postcard::to_allocvec(&encoded).unwrap_or_default();
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum);
        bytes
    }

    /// Reads a record file's bytes for the boot `current_boot_id`.
    pub fn parse(bytes: &[u8], current_boot_id: &BootId) -> Result<Option<Self>, RecordError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge { len: bytes.len() });
        }
        let (body, checksum) = bytes
            .split_at_checked(bytes.len().saturating_sub(CHECKSUM_LEN))
            .filter(|(_, checksum)| checksum.len() == CHECKSUM_LEN)
            .ok_or(RecordError::Damaged {
                what: "shorter than its checksum",
            })?;
        if Sha256::digest(body).as_slice() != checksum {
            return Err(RecordError::Damaged {
                what: "checksum mismatch",
            });
        }
        let (VersionOnly { version }, _) = postcard::take_from_bytes(body)
            .map_err(|_| RecordError::Damaged { what: "no version" })?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion { found: version });
        }
        let (encoded, rest): (Encoded, _) =
            postcard::take_from_bytes(body).map_err(|_| RecordError::Damaged {
                what: "undecodable contents",
            })?;
        if !rest.is_empty() {
            return Err(RecordError::Damaged {
                what: "extra bytes after the record",
            });
        }
        Ok(Some(encoded.record).filter(|record| record.boot_id == *current_boot_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: BootId = [7; 16];

    fn samples() -> [PhaseRecord; 4] {
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let fingerprint = String::from("SHA256:YZBWncr0kLKPquuT7yy1tBNW64tWvezdaiY0Y6Zf/VI");
        [
            RecordedPhase::AttestationOpen { began_ms: 1234 },
            RecordedPhase::AttestationClaimed {
                conn: 3,
                peer,
                attestation_host_key_fingerprint: fingerprint.clone(),
            },
            RecordedPhase::Kubernetes {
                attestation_host_key_fingerprint: fingerprint,
                attestation_peer: "[2001:db8::1]:2222".parse().unwrap(),
                keys: KeyBytes {
                    host_key_seed: [4; 32],
                    wn_key: [5; 32],
                },
            },
            RecordedPhase::Failed {
                reason: "attestation deadline expired".into(),
            },
        ]
        .map(|phase| PhaseRecord {
            boot_id: BOOT,
            phase,
        })
    }

    #[test]
    fn every_phase_round_trips() {
        for record in samples() {
            assert_eq!(PhaseRecord::parse(&record.emit(), &BOOT), Ok(Some(record)));
        }
    }

    #[test]
    fn a_record_of_another_boot_is_ignored() {
        let record = &samples()[1];
        assert_eq!(PhaseRecord::parse(&record.emit(), &[8; 16]), Ok(None));
    }

    #[test]
    fn any_flipped_bit_or_cut_is_detected() {
        let bytes = samples()[2].emit();
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x10;
            assert!(
                PhaseRecord::parse(&damaged, &BOOT).is_err(),
                "flip at {index}"
            );
            assert!(
                PhaseRecord::parse(&bytes[..index], &BOOT).is_err(),
                "cut at {index}"
            );
        }
    }

    #[test]
    fn another_version_is_refused_even_with_a_valid_checksum() {
        let mut body = postcard::to_allocvec(&Encoded {
            version: 3,
            record: samples()[3].clone(),
        })
        .unwrap();
        let checksum = Sha256::digest(&body);
        body.extend_from_slice(&checksum);
        assert_eq!(
            PhaseRecord::parse(&body, &BOOT),
            Err(RecordError::UnknownVersion { found: 3 })
        );
    }

    #[test]
    fn oversized_files_are_refused_before_hashing() {
        let big = alloc::vec![0u8; MAX_RECORD_LEN + 1];
        assert_eq!(
            PhaseRecord::parse(&big, &BOOT),
            Err(RecordError::TooLarge {
                len: MAX_RECORD_LEN + 1
            })
        );
    }

    #[test]
    fn the_host_key_seed_is_never_printed() {
        let printed = alloc::format!("{:?}", samples()[2]);
        assert!(printed.contains("<secret>"), "{printed}");
        assert!(!printed.contains("[4, 4"), "{printed}");
    }

    #[test]
    fn parse_never_panics_on_mutated_records() {
        let encoded = samples().map(|record| record.emit());
        let seeds: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        pp_test_support::feed_mutations(&seeds, 3000, |input| {
            let _ = PhaseRecord::parse(input, &BOOT);
        });
    }
}
