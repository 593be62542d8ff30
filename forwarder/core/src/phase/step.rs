//! The transition table: `step(settings, state, event) -> (state, actions)`.
//! Organised by event; inside each event every state is listed explicitly
//! (no wildcard), so a new state forces a decision here.

use super::{
    Action, AttestationFacts, AuthMethod, ConnId, Event, PhaseKeys, Restored, Settings, State,
};
use crate::record::{PhaseRecord, RecordedPhase};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;
use pp_ssh_key::PublicKey;
use pp_tag::ConnectionPhase;

/// The one transition function of the forwarder's phases.
pub fn step(settings: &Settings, state: State, event: Event) -> (State, Vec<Action>) {
    match event {
        Event::Restored(restored) => on_restored(settings, state, restored),
        Event::AuthOffered { conn, method } => on_auth_offered(settings, state, conn, &method),
        Event::Authenticated { conn, peer, method } => {
            on_authenticated(settings, state, conn, peer, &method)
        }
        Event::KeysObtained(keys) => on_keys_obtained(settings, state, keys),
        Event::ConnectionClosed { conn } => on_connection_closed(state, conn),
        Event::DeadlineExpired => on_deadline(settings, state),
        Event::PersistFailed { reason } => {
            fail_without_persisting(state, format!("could not persist the phase: {reason}"))
        }
        Event::KeyFetchFailed { reason } => on_key_fetch_failed(settings, state, reason),
    }
}

fn note(state: State, reason: String) -> (State, Vec<Action>) {
    (state, vec![Action::Note { reason }])
}

fn record(settings: &Settings, phase: RecordedPhase) -> Action {
    Action::Persist(PhaseRecord {
        boot_id: settings.boot_id,
        phase,
    })
}

/// Enters `Failed`, persisting it so a restart stays failed. An already
/// failed machine keeps its first reason.
fn fail(settings: &Settings, state: State, reason: String) -> (State, Vec<Action>) {
    if let State::Failed { .. } = state {
        return note(state, format!("already failed; also: {reason}"));
    }
    let persist = record(
        settings,
        RecordedPhase::Failed {
            reason: reason.clone(),
        },
    );
    (
        State::Failed {
            reason: reason.clone(),
        },
        vec![persist, Action::FailClosed { reason }],
    )
}

/// Enters `Failed` without asking to persist (persisting is what failed,
/// or the record is already `Failed`/damaged).
fn fail_without_persisting(state: State, reason: String) -> (State, Vec<Action>) {
    let reason = match state {
        State::Failed { reason: first } => first,
        State::Restoring
        | State::AttestationOpen
        | State::AttestationClaimed { .. }
        | State::Kubernetes { .. } => reason,
    };
    (
        State::Failed {
            reason: reason.clone(),
        },
        vec![Action::FailClosed { reason }],
    )
}

fn on_restored(settings: &Settings, state: State, restored: Restored) -> (State, Vec<Action>) {
    match state {
        State::Restoring => {}
        State::AttestationOpen
        | State::AttestationClaimed { .. }
        | State::Kubernetes { .. }
        | State::Failed { .. } => {
            return note(
                state,
                String::from("ignored a second Restored event: the phase is already restored"),
            );
        }
    }
    match restored {
        Restored::NoRecord => (
            State::AttestationOpen,
            vec![Action::Note {
                reason: String::from("no phase record for this boot: attestation phase open"),
            }],
        ),
        Restored::Damaged { reason } => fail_without_persisting(
            state,
            format!("the phase record cannot be trusted: {reason}"),
        ),
        Restored::Record {
            phase: RecordedPhase::Failed { reason },
            ..
        } => fail_without_persisting(state, format!("failed earlier in this boot: {reason}")),
        Restored::Record {
            phase: RecordedPhase::AttestationClaimed { conn, peer, .. },
            ..
        } => fail(
            settings,
            state,
            format!(
                "restarted during the attestation phase (claimed by connection {conn} from {peer}); \
                 the attestation phase is never reopened"
            ),
        ),
        Restored::Record {
            phase: RecordedPhase::Kubernetes { .. },
            keys: None,
        } => fail(
            settings,
            state,
            String::from("the phase record says Kubernetes phase but the stored keys are missing"),
        ),
        Restored::Record {
            phase:
                RecordedPhase::Kubernetes {
                    attestation_host_key_fingerprint,
                    attestation_peer,
                },
            keys: Some(keys),
        } => (
            State::Kubernetes {
                current: None,
                wn_key: keys.wn_key,
                attestation: AttestationFacts {
                    host_key_fingerprint: attestation_host_key_fingerprint,
                    peer: attestation_peer,
                },
            },
            vec![Action::Note {
                reason: String::from("restored the Kubernetes phase"),
            }],
        ),
    }
}

/// Whether `method` is what the attestation phase accepts.
fn check_attestation_method(settings: &Settings, method: &AuthMethod) -> Result<(), String> {
    match (&settings.init_data_wn_key, method) {
        (None, AuthMethod::None) => Ok(()),
        (None, AuthMethod::PublicKey(_)) => Err(String::from(
            "init-data has no WN key, so the attestation phase accepts only `none` authentication",
        )),
        (Some(expected), AuthMethod::PublicKey(key)) if key == expected => Ok(()),
        (Some(expected), AuthMethod::PublicKey(key)) => Err(format!(
            "key {} is not the init-data WN key {}",
            key.fingerprint(),
            expected.fingerprint()
        )),
        (Some(_), AuthMethod::None) => Err(String::from(
            "init-data names a WN key; `none` authentication is not accepted",
        )),
    }
}

/// Whether `method` is the Trustee WN key the Kubernetes phase accepts.
fn check_kubernetes_method(wn_key: &PublicKey, method: &AuthMethod) -> Result<(), String> {
    match method {
        AuthMethod::PublicKey(key) if key == wn_key => Ok(()),
        AuthMethod::PublicKey(key) => Err(format!(
            "key {} is not the Trustee WN key {}",
            key.fingerprint(),
            wn_key.fingerprint()
        )),
        AuthMethod::None => Err(String::from(
            "the Kubernetes phase accepts only the Trustee WN key, not `none` authentication",
        )),
    }
}

fn already_claimed(conn: ConnId, peer: SocketAddr) -> String {
    format!("attestation phase already used by connection {conn} from {peer}")
}

fn not_serving(state: &State) -> Option<String> {
    match state {
        State::Restoring => Some(String::from("the phase record is not restored yet")),
        State::Failed { reason } => Some(format!("the forwarder failed closed: {reason}")),
        State::AttestationOpen | State::AttestationClaimed { .. } | State::Kubernetes { .. } => {
            None
        }
    }
}

fn on_auth_offered(
    settings: &Settings,
    state: State,
    conn: ConnId,
    method: &AuthMethod,
) -> (State, Vec<Action>) {
    let verdict = match &state {
        State::Restoring | State::Failed { .. } => Err(not_serving(&state).unwrap_or_default()),
        State::AttestationOpen => check_attestation_method(settings, method),
        State::AttestationClaimed { conn: owner, peer } => Err(already_claimed(*owner, *peer)),
        State::Kubernetes { wn_key, .. } => check_kubernetes_method(wn_key, method),
    };
    let action = match verdict {
        Ok(()) => Action::AcceptAuth { conn },
        Err(reason) => Action::RejectAuth { conn, reason },
    };
    (state, vec![action])
}

fn on_authenticated(
    settings: &Settings,
    state: State,
    conn: ConnId,
    peer: SocketAddr,
    method: &AuthMethod,
) -> (State, Vec<Action>) {
    let refuse = |state, reason| (state, vec![Action::Refuse { conn, reason }]);
    match state {
        State::Restoring | State::Failed { .. } => {
            let reason = not_serving(&state).unwrap_or_default();
            refuse(state, reason)
        }
        State::AttestationOpen => match check_attestation_method(settings, method) {
            Err(reason) => refuse(state, reason),
            Ok(()) => (
                State::AttestationClaimed { conn, peer },
                vec![
                    record(
                        settings,
                        RecordedPhase::AttestationClaimed {
                            conn,
                            peer,
                            attestation_host_key_fingerprint: settings
                                .attestation_host_key
                                .fingerprint(),
                        },
                    ),
                    Action::Admit {
                        conn,
                        phase: ConnectionPhase::Attestation,
                    },
                    Action::FetchKeys,
                ],
            ),
        },
        State::AttestationClaimed { conn: owner, .. } if owner == conn => note(
            state,
            format!("connection {conn} authenticated again: already admitted"),
        ),
        State::AttestationClaimed {
            conn: owner,
            peer: owner_peer,
        } => refuse(state, already_claimed(owner, owner_peer)),
        State::Kubernetes {
            current: Some(current),
            ..
        } if current == conn => note(
            state,
            format!("connection {conn} authenticated again: already admitted"),
        ),
        State::Kubernetes {
            current,
            wn_key,
            attestation,
        } => {
            if let Err(reason) = check_kubernetes_method(&wn_key, method) {
                return refuse(
                    State::Kubernetes {
                        current,
                        wn_key,
                        attestation,
                    },
                    reason,
                );
            }
            let mut actions = vec![Action::Admit {
                conn,
                phase: ConnectionPhase::Kubernetes,
            }];
            if let Some(old) = current {
                actions.push(Action::Close {
                    conn: old,
                    reason: format!("superseded by newer connection {conn} from {peer}"),
                });
            }
            (
                State::Kubernetes {
                    current: Some(conn),
                    wn_key,
                    attestation,
                },
                actions,
            )
        }
    }
}

fn on_keys_obtained(settings: &Settings, state: State, keys: PhaseKeys) -> (State, Vec<Action>) {
    match state {
        State::AttestationClaimed { conn, peer } => {
            let fingerprint = settings.attestation_host_key.fingerprint();
            let host_key = keys.host_key.public();
            let wn_key = keys.wn_key;
            (
                State::Kubernetes {
                    current: None,
                    wn_key,
                    attestation: AttestationFacts {
                        host_key_fingerprint: fingerprint.clone(),
                        peer,
                    },
                },
                vec![
                    Action::PersistKeys(keys),
                    record(
                        settings,
                        RecordedPhase::Kubernetes {
                            attestation_host_key_fingerprint: fingerprint,
                            attestation_peer: peer,
                        },
                    ),
                    Action::SignalUpgrade { conn, host_key },
                    Action::CloseAfterGrace {
                        conn,
                        reason: String::from(
                            "attestation phase over; the WN reconnects for the Kubernetes phase",
                        ),
                    },
                ],
            )
        }
        State::Restoring
        | State::AttestationOpen
        | State::Kubernetes { .. }
        | State::Failed { .. } => {
            let name = state.name();
            note(
                state,
                format!(
                    "ignored keys obtained in state {name}: keys are expected only while the attestation phase is claimed"
                ),
            )
        }
    }
}

fn on_connection_closed(state: State, conn: ConnId) -> (State, Vec<Action>) {
    match state {
        State::AttestationClaimed { conn: owner, .. } if owner == conn => note(
            state,
            format!(
                "attestation connection {conn} closed before the keys arrived; \
                 the attestation phase stays claimed"
            ),
        ),
        State::Kubernetes {
            current: Some(current),
            wn_key,
            attestation,
        } if current == conn => (
            State::Kubernetes {
                current: None,
                wn_key,
                attestation,
            },
            vec![Action::Note {
                reason: format!("connection {conn} closed; waiting for the WN to reconnect"),
            }],
        ),
        State::Restoring
        | State::AttestationOpen
        | State::AttestationClaimed { .. }
        | State::Kubernetes { .. }
        | State::Failed { .. } => note(state, format!("connection {conn} closed")),
    }
}

fn on_deadline(settings: &Settings, state: State) -> (State, Vec<Action>) {
    match state {
        State::Restoring | State::AttestationOpen | State::AttestationClaimed { .. } => fail(
            settings,
            state,
            String::from(
                "the attestation phase did not reach the Kubernetes phase before the deadline",
            ),
        ),
        State::Kubernetes { .. } | State::Failed { .. } => note(
            state,
            String::from("attestation deadline passed after the attestation phase ended"),
        ),
    }
}

fn on_key_fetch_failed(settings: &Settings, state: State, reason: String) -> (State, Vec<Action>) {
    match state {
        State::AttestationClaimed { .. } => fail(
            settings,
            state,
            format!("could not obtain the Kubernetes-phase keys: {reason}"),
        ),
        State::Restoring
        | State::AttestationOpen
        | State::Kubernetes { .. }
        | State::Failed { .. } => note(
            state,
            format!("ignored a key fetch failure outside the attestation claim: {reason}"),
        ),
    }
}
