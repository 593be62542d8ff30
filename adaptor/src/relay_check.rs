//! The relay check of docs/protocol.md section 2.3 "Info": in the
//! Kubernetes phase the PP reports which attestation connection it served
//! (`attestation-hostkey`, `attestation-peer`); if that is not the
//! connection the adaptor itself made, someone else relayed the attestation
//! phase.
//!
//! Contract: [`check_info`] is pure. With [`RelayCheck::HostKeyAndPeer`]
//! (the default) it passes only when both keys are present and equal what
//! the adaptor saw (addresses compared after mapping IPv4-mapped IPv6 to
//! IPv4). With [`RelayCheck::HostKeyOnly`] (NAT between WN and PP, where
//! the PP sees the translated address) only the host key must be present
//! and equal; the peer is not looked at. Anything else is a
//! [`RelayVerdict`] naming the first difference.

use crate::pp_record::AttestationSighting;
use serde::Deserialize;
use std::net::SocketAddr;

/// What the relay check compares (`relay_check` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayCheck {
    /// The attestation host key and the TCP peer the PP saw.
    #[default]
    HostKeyAndPeer,
    /// The attestation host key alone: for a NAT between WN and PP, which
    /// changes the peer address the PP sees. A relay that forwards the
    /// connection unchanged to the PP (same host key) is then not detected
    /// (docs/threat-model.md, "Attestation phase").
    HostKeyOnly,
}

/// The outcome of comparing `INFO` with the adaptor's own sighting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayVerdict {
    /// The PP served the adaptor's own attestation connection.
    SameConnection,
    /// The PP reports another attestation connection: relayed.
    Relayed { reason: String },
}

/// Compares the `INFO` text with `sighting`, as far as `mode` asks.
pub fn check_info(
    info_text: &str,
    sighting: &AttestationSighting,
    mode: RelayCheck,
) -> RelayVerdict {
    let value_of = |key: &str| {
        info_text.lines().find_map(|line| {
            line.split_once('=')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
        })
    };
    let Some(hostkey) = value_of("attestation-hostkey") else {
        return RelayVerdict::Relayed {
            reason: "INFO has no attestation-hostkey".into(),
        };
    };
    if hostkey != sighting.hostkey_fingerprint {
        return RelayVerdict::Relayed {
            reason: format!(
                "the PP's attestation connection had host key {hostkey}, the adaptor saw {}",
                sighting.hostkey_fingerprint
            ),
        };
    }
    if mode == RelayCheck::HostKeyOnly {
        return RelayVerdict::SameConnection;
    }
    let Some(peer) = value_of("attestation-peer") else {
        return RelayVerdict::Relayed {
            reason: "INFO has no attestation-peer".into(),
        };
    };
    match peer.parse::<SocketAddr>() {
        Ok(peer) if canonical(peer) == canonical(sighting.local_addr) => {
            RelayVerdict::SameConnection
        }
        Ok(_) | Err(_) => RelayVerdict::Relayed {
            reason: format!(
                "the PP's attestation peer was {peer}, the adaptor's own address was {} \
                 (if a NAT between the worker node and the PP translates addresses, set \
                 relay_check = \"host-key-only\" for this pod or globally)",
                sighting.local_addr
            ),
        },
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting() -> AttestationSighting {
        AttestationSighting {
            hostkey_fingerprint: "SHA256:abc".into(),
            local_addr: "10.0.0.5:40000".parse().unwrap(),
        }
    }

    #[test]
    fn the_adaptors_own_attestation_connection_passes() {
        let info =
            "phase=kubernetes\nattestation-hostkey=SHA256:abc\nattestation-peer=10.0.0.5:40000\n";
        assert_eq!(
            check_info(info, &sighting(), RelayCheck::HostKeyAndPeer),
            RelayVerdict::SameConnection
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_address_counts_as_the_same() {
        let info = "attestation-hostkey=SHA256:abc\nattestation-peer=[::ffff:10.0.0.5]:40000";
        assert_eq!(
            check_info(info, &sighting(), RelayCheck::HostKeyAndPeer),
            RelayVerdict::SameConnection
        );
    }

    #[test]
    fn another_host_key_another_peer_or_missing_keys_mean_relayed() {
        for info in [
            "attestation-hostkey=SHA256:xyz\nattestation-peer=10.0.0.5:40000",
            "attestation-hostkey=SHA256:abc\nattestation-peer=10.0.0.6:40000",
            "attestation-hostkey=SHA256:abc\nattestation-peer=10.0.0.5:40001",
            "attestation-hostkey=SHA256:abc\nattestation-peer=garbage",
            "attestation-hostkey=SHA256:abc",
            "phase=kubernetes",
        ] {
            assert!(
                matches!(
                    check_info(info, &sighting(), RelayCheck::HostKeyAndPeer),
                    RelayVerdict::Relayed { .. }
                ),
                "{info}"
            );
        }
    }

    #[test]
    fn host_key_only_ignores_the_peer_but_still_refuses_another_or_missing_host_key() {
        let natted = "attestation-hostkey=SHA256:abc\nattestation-peer=198.51.100.9:61000";
        assert!(matches!(
            check_info(natted, &sighting(), RelayCheck::HostKeyAndPeer),
            RelayVerdict::Relayed { .. }
        ));
        assert_eq!(
            check_info(natted, &sighting(), RelayCheck::HostKeyOnly),
            RelayVerdict::SameConnection
        );
        assert_eq!(
            check_info(
                "attestation-hostkey=SHA256:abc",
                &sighting(),
                RelayCheck::HostKeyOnly
            ),
            RelayVerdict::SameConnection
        );
        for info in [
            "attestation-hostkey=SHA256:xyz\nattestation-peer=10.0.0.5:40000",
            "attestation-peer=10.0.0.5:40000",
            "",
        ] {
            assert!(
                matches!(
                    check_info(info, &sighting(), RelayCheck::HostKeyOnly),
                    RelayVerdict::Relayed { .. }
                ),
                "{info}"
            );
        }
    }

    #[test]
    fn arbitrary_info_text_never_panics_and_never_passes_without_both_keys() {
        let mut state: u32 = 0x9e37_79b9;
        let alphabet = ['=', '\n', 'a', ':', '[', ']', '1', '.', ' ', '\u{e9}', 'S'];
        for length in 0..200 {
            let text: String = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    alphabet[state as usize % alphabet.len()]
                })
                .collect();
            assert!(
                matches!(
                    check_info(&text, &sighting(), RelayCheck::HostKeyAndPeer),
                    RelayVerdict::Relayed { .. }
                ),
                "{text:?}"
            );
        }
    }
}
