//! The transition table: `step(settings, state, event) -> (state, actions)`.
//! One `match (state, event)`, grouped by state, one arm per pair (a pair
//! split by a guard lists its cases one after the other), no wildcard: a
//! new state or event does not compile until every pair has a decision.
//! The helpers below the table only build what the actions contain.

use super::{
    Action, Admitted, AttestationFacts, AuthMethod, ConnId, Event, PhaseKeys, Restored, Settings,
    State,
};
use crate::record::{KeyBytes, PhaseRecord, RecordedPhase};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;
use pp_ssh_key::{PrivateKey, PublicKey};
use pp_tag::ConnectionPhase::{self, Attestation, Kubernetes};

/// The one transition function of the forwarder's phases.
pub fn step(settings: &Settings, state: State, event: Event) -> (State, Vec<Action>) {
    use Event as E;
    use State as S;
    match (state, event) {
        // Restoring: nothing is served until the record is read.
        (S::Restoring, E::Restored { found, now_ms }) => restore(settings, found, now_ms),
        (s @ S::Restoring, E::AuthOffered { conn, .. }) => reject(s, conn, NOT_RESTORED.into()),
        (s @ S::Restoring, E::Authenticated { conn, .. }) => refuse(s, conn, NOT_RESTORED.into()),
        (s @ S::Restoring, E::MuxRequested { conn }) => refuse_mux(s, conn),
        (s @ S::Restoring, E::KeysObtained(_)) => ignore_keys(s),
        (s @ S::Restoring, E::ConnectionClosed { conn }) => closed(s, conn),
        (S::Restoring, E::DeadlineExpired) => fail(settings, deadline_passed()),
        (S::Restoring, E::PersistFailed { reason }) => fail_unpersisted(persist_failed(&reason)),

        // AttestationOpen: the first connection to authenticate with the
        // init-data method claims the phase; the claim is persisted first.
        (s @ S::AttestationOpen, E::Restored { .. }) => restored_twice(s),
        (
            s @ S::AttestationOpen,
            E::AuthOffered {
                conn,
                shown,
                method,
            },
        ) => {
            let verdict =
                same_phase(shown, Attestation).and_then(|()| attestation_method(settings, &method));
            answer_offer(s, conn, verdict)
        }
        (
            s @ S::AttestationOpen,
            E::Authenticated {
                conn,
                peer,
                shown,
                method,
            },
        ) => {
            match same_phase(shown, Attestation)
                .and_then(|()| attestation_method(settings, &method))
            {
                Ok(()) => claim(settings, conn, peer),
                Err(reason) => refuse(s, conn, reason),
            }
        }
        (s @ S::AttestationOpen, E::MuxRequested { conn }) => refuse_mux(s, conn),
        (s @ S::AttestationOpen, E::KeysObtained(_)) => ignore_keys(s),
        (s @ S::AttestationOpen, E::ConnectionClosed { conn }) => closed(s, conn),
        (S::AttestationOpen, E::DeadlineExpired) => fail(settings, deadline_passed()),
        (S::AttestationOpen, E::PersistFailed { reason }) => {
            fail_unpersisted(persist_failed(&reason))
        }

        // AttestationClaimed: one connection owns the phase; keys move on.
        (s @ S::AttestationClaimed { .. }, E::Restored { .. }) => restored_twice(s),
        (s @ S::AttestationClaimed { owner, peer }, E::AuthOffered { conn, .. }) => {
            reject(s, conn, already_claimed(owner.conn, peer))
        }
        (s @ S::AttestationClaimed { owner, .. }, E::Authenticated { conn, .. })
            if owner.conn == conn =>
        {
            note(
                s,
                format!("connection {conn} authenticated again: already admitted"),
            )
        }
        (s @ S::AttestationClaimed { owner, peer }, E::Authenticated { conn, .. }) => {
            refuse(s, conn, already_claimed(owner.conn, peer))
        }
        (S::AttestationClaimed { owner, peer }, E::MuxRequested { conn }) => {
            let (owner, action) = open_mux(owner, conn, Attestation);
            (S::AttestationClaimed { owner, peer }, vec![action])
        }
        (S::AttestationClaimed { owner, peer }, E::KeysObtained(keys)) => {
            upgrade(settings, owner.conn, peer, keys)
        }
        (s @ S::AttestationClaimed { owner, .. }, E::ConnectionClosed { conn })
            if owner.conn == conn =>
        {
            note(
                s,
                format!(
                    "attestation connection {conn} closed before the keys arrived; \
                     the attestation phase stays claimed"
                ),
            )
        }
        (s @ S::AttestationClaimed { .. }, E::ConnectionClosed { conn }) => closed(s, conn),
        (S::AttestationClaimed { .. }, E::DeadlineExpired) => fail(settings, deadline_passed()),
        (S::AttestationClaimed { .. }, E::PersistFailed { reason }) => {
            fail_unpersisted(persist_failed(&reason))
        }

        // Kubernetes: only the Trustee WN key; a newer connection supersedes.
        (s @ S::Kubernetes { .. }, E::Restored { .. }) => restored_twice(s),
        (
            S::Kubernetes {
                current,
                keys,
                attestation,
            },
            E::AuthOffered {
                conn,
                shown,
                method,
            },
        ) => {
            let verdict = same_phase(shown, Kubernetes)
                .and_then(|()| kubernetes_method(&keys.wn_key, &method));
            answer_offer(
                S::Kubernetes {
                    current,
                    keys,
                    attestation,
                },
                conn,
                verdict,
            )
        }
        (
            S::Kubernetes {
                current: Some(current),
                keys,
                attestation,
            },
            E::Authenticated { conn, .. },
        ) if current.conn == conn => {
            let state = S::Kubernetes {
                current: Some(current),
                keys,
                attestation,
            };
            note(
                state,
                format!("connection {conn} authenticated again: already admitted"),
            )
        }
        (
            S::Kubernetes {
                current,
                keys,
                attestation,
            },
            E::Authenticated {
                conn,
                peer,
                shown,
                method,
            },
        ) => match same_phase(shown, Kubernetes)
            .and_then(|()| kubernetes_method(&keys.wn_key, &method))
        {
            Err(reason) => refuse(
                S::Kubernetes {
                    current,
                    keys,
                    attestation,
                },
                conn,
                reason,
            ),
            Ok(()) => supersede(current, keys, attestation, conn, peer),
        },
        (
            S::Kubernetes {
                current: Some(current),
                keys,
                attestation,
            },
            E::MuxRequested { conn },
        ) => {
            let (current, action) = open_mux(current, conn, Kubernetes);
            (
                S::Kubernetes {
                    current: Some(current),
                    keys,
                    attestation,
                },
                vec![action],
            )
        }
        (s @ S::Kubernetes { current: None, .. }, E::MuxRequested { conn }) => refuse_mux(s, conn),
        (s @ S::Kubernetes { .. }, E::KeysObtained(_)) => ignore_keys(s),
        (
            S::Kubernetes {
                current: Some(current),
                keys,
                attestation,
            },
            E::ConnectionClosed { conn },
        ) if current.conn == conn => {
            let state = S::Kubernetes {
                current: None,
                keys,
                attestation,
            };
            note(
                state,
                format!("connection {conn} closed; waiting for the WN to reconnect"),
            )
        }
        (s @ S::Kubernetes { .. }, E::ConnectionClosed { conn }) => closed(s, conn),
        (s @ S::Kubernetes { .. }, E::DeadlineExpired) => note(
            s,
            "attestation deadline passed after the attestation phase ended".into(),
        ),
        (S::Kubernetes { .. }, E::PersistFailed { reason }) => {
            fail_unpersisted(persist_failed(&reason))
        }

        // Failed: terminal; every connection is refused.
        (s @ S::Failed { .. }, E::Restored { .. }) => restored_twice(s),
        (S::Failed { reason }, E::AuthOffered { conn, .. }) => {
            let why = failed(&reason);
            reject(S::Failed { reason }, conn, why)
        }
        (S::Failed { reason }, E::Authenticated { conn, .. }) => {
            let why = failed(&reason);
            refuse(S::Failed { reason }, conn, why)
        }
        (s @ S::Failed { .. }, E::MuxRequested { conn }) => refuse_mux(s, conn),
        (s @ S::Failed { .. }, E::KeysObtained(_)) => ignore_keys(s),
        (s @ S::Failed { .. }, E::ConnectionClosed { conn }) => closed(s, conn),
        (s @ S::Failed { .. }, E::DeadlineExpired) => note(
            s,
            "attestation deadline passed after the forwarder failed".into(),
        ),
        // Persisting `Failed` itself failed: keep the first reason, and
        // still stop serving.
        (S::Failed { reason }, E::PersistFailed { .. }) => fail_unpersisted(reason),
    }
}

const NOT_RESTORED: &str = "the phase record is not restored yet";

/// The first `Restored`: resume the recorded phase, or open the attestation
/// phase and start its deadline, which counts from the first start of this
/// boot.
fn restore(settings: &Settings, found: Restored, now_ms: u64) -> (State, Vec<Action>) {
    let deadline = settings.attestation_deadline_ms;
    match found {
        Restored::NoRecord => (
            State::AttestationOpen,
            vec![
                record(
                    settings,
                    RecordedPhase::AttestationOpen { began_ms: now_ms },
                ),
                Action::Note {
                    reason: String::from("no phase record for this boot: attestation phase open"),
                },
                Action::StartDeadline { after_ms: deadline },
            ],
        ),
        Restored::Record(RecordedPhase::AttestationOpen { began_ms }) if began_ms <= now_ms => (
            State::AttestationOpen,
            vec![
                Action::Note {
                    reason: format!("attestation phase open since {} ms after boot", began_ms),
                },
                Action::StartDeadline {
                    after_ms: deadline.saturating_sub(now_ms.saturating_sub(began_ms)),
                },
            ],
        ),
        Restored::Record(RecordedPhase::AttestationOpen { began_ms }) => fail(
            settings,
            format!(
                "the phase record cannot be trusted: the attestation phase began at {began_ms} ms, \
                 after now ({now_ms} ms since boot)"
            ),
        ),
        // A damaged record is left as it is: it fails every restart too.
        Restored::Damaged { reason } => {
            fail_unpersisted(format!("the phase record cannot be trusted: {reason}"))
        }
        Restored::Record(RecordedPhase::Failed { reason }) => {
            fail_unpersisted(format!("failed earlier in this boot: {reason}"))
        }
        Restored::Record(RecordedPhase::AttestationClaimed { conn, peer, .. }) => fail(
            settings,
            format!(
                "restarted during the attestation phase (claimed by connection {conn} from {peer}); \
                 the attestation phase is never reopened"
            ),
        ),
        Restored::Record(RecordedPhase::Kubernetes {
            attestation_host_key_fingerprint,
            attestation_peer,
            keys,
        }) => match PublicKey::from_bytes(keys.wn_key) {
            Err(error) => fail(
                settings,
                format!("the phase record's WN key cannot be used: {error}"),
            ),
            Ok(wn_key) => (
                State::Kubernetes {
                    current: None,
                    keys: PhaseKeys {
                        host_key: PrivateKey::from_seed(keys.host_key_seed),
                        wn_key,
                    },
                    attestation: AttestationFacts {
                        host_key_fingerprint: attestation_host_key_fingerprint,
                        peer: attestation_peer,
                    },
                },
                vec![Action::Note {
                    reason: String::from("restored the Kubernetes phase"),
                }],
            ),
        },
    }
}

/// Admits the attestation winner: persist the claim, then admit, then fetch.
fn claim(settings: &Settings, conn: ConnId, peer: SocketAddr) -> (State, Vec<Action>) {
    let owner = Admitted {
        conn,
        mux_open: false,
    };
    let claimed = RecordedPhase::AttestationClaimed {
        conn,
        peer,
        attestation_host_key_fingerprint: settings.attestation_host_key.fingerprint(),
    };
    (
        State::AttestationClaimed { owner, peer },
        vec![
            record(settings, claimed),
            Action::Admit {
                conn,
                phase: Attestation,
            },
            Action::FetchKeys,
        ],
    )
}

/// The keys arrived: persist them with the phase in one write, then tell
/// the attestation connection to reconnect with the new host key.
fn upgrade(
    settings: &Settings,
    conn: ConnId,
    peer: SocketAddr,
    keys: PhaseKeys,
) -> (State, Vec<Action>) {
    let fingerprint = settings.attestation_host_key.fingerprint();
    let host_key = keys.host_key.public();
    let stored = KeyBytes {
        host_key_seed: *keys.host_key.seed(),
        wn_key: *keys.wn_key.as_bytes(),
    };
    let kubernetes = RecordedPhase::Kubernetes {
        attestation_host_key_fingerprint: fingerprint.clone(),
        attestation_peer: peer,
        keys: stored,
    };
    (
        State::Kubernetes {
            current: None,
            keys,
            attestation: AttestationFacts {
                host_key_fingerprint: fingerprint,
                peer,
            },
        },
        vec![
            record(settings, kubernetes),
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

/// A Kubernetes-phase connection is admitted; the one before it is closed.
fn supersede(
    current: Option<Admitted>,
    keys: PhaseKeys,
    attestation: AttestationFacts,
    conn: ConnId,
    peer: SocketAddr,
) -> (State, Vec<Action>) {
    let mut actions = vec![Action::Admit {
        conn,
        phase: Kubernetes,
    }];
    if let Some(old) = current {
        actions.push(Action::Close {
            conn: old.conn,
            reason: format!("superseded by newer connection {conn} from {peer}"),
        });
    }
    let current = Some(Admitted {
        conn,
        mux_open: false,
    });
    (
        State::Kubernetes {
            current,
            keys,
            attestation,
        },
        actions,
    )
}

/// The one mux channel of the admitted connection; any other request is
/// refused. Returns the admitted connection as it is after the request.
fn open_mux(admitted: Admitted, conn: ConnId, phase: ConnectionPhase) -> (Admitted, Action) {
    if admitted.conn != conn {
        let reason = format!("connection {conn} is not the admitted connection");
        return (admitted, Action::RefuseMux { conn, reason });
    }
    if admitted.mux_open {
        let reason = String::from("a connection has at most one mux channel");
        return (admitted, Action::RefuseMux { conn, reason });
    }
    let opened = Admitted {
        conn,
        mux_open: true,
    };
    (opened, Action::OpenMux { conn, phase })
}

fn note(state: State, reason: String) -> (State, Vec<Action>) {
    (state, vec![Action::Note { reason }])
}

fn reject(state: State, conn: ConnId, reason: String) -> (State, Vec<Action>) {
    (state, vec![Action::RejectAuth { conn, reason }])
}

fn refuse(state: State, conn: ConnId, reason: String) -> (State, Vec<Action>) {
    (state, vec![Action::Refuse { conn, reason }])
}

fn refuse_mux(state: State, conn: ConnId) -> (State, Vec<Action>) {
    let reason = format!(
        "connection {conn} is not admitted in the {} state",
        state.name()
    );
    (state, vec![Action::RefuseMux { conn, reason }])
}

fn answer_offer(state: State, conn: ConnId, verdict: Result<(), String>) -> (State, Vec<Action>) {
    match verdict {
        Ok(()) => (state, vec![Action::AcceptAuth { conn }]),
        Err(reason) => reject(state, conn, reason),
    }
}

fn closed(state: State, conn: ConnId) -> (State, Vec<Action>) {
    note(state, format!("connection {conn} closed"))
}

fn ignore_keys(state: State) -> (State, Vec<Action>) {
    let name = state.name();
    let reason = format!(
        "ignored keys obtained in state {name}: keys are expected only while the attestation phase is claimed"
    );
    note(state, reason)
}

fn restored_twice(state: State) -> (State, Vec<Action>) {
    note(
        state,
        String::from("ignored a second Restored event: the phase is already restored"),
    )
}

fn record(settings: &Settings, phase: RecordedPhase) -> Action {
    Action::Persist(PhaseRecord {
        boot_id: settings.boot_id,
        phase,
    })
}

/// Enters `Failed`, persisting it so a restart stays failed.
fn fail(settings: &Settings, reason: String) -> (State, Vec<Action>) {
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
/// or the record already says `Failed`).
fn fail_unpersisted(reason: String) -> (State, Vec<Action>) {
    (
        State::Failed {
            reason: reason.clone(),
        },
        vec![Action::FailClosed { reason }],
    )
}

fn persist_failed(reason: &str) -> String {
    format!("could not persist the phase: {reason}")
}

fn deadline_passed() -> String {
    String::from("the attestation phase did not reach the Kubernetes phase before the deadline")
}

fn failed(reason: &str) -> String {
    format!("the forwarder failed closed: {reason}")
}

fn already_claimed(conn: ConnId, peer: SocketAddr) -> String {
    format!("attestation phase already used by connection {conn} from {peer}")
}

/// A connection shown one phase's host key is never admitted to the other.
fn same_phase(shown: Option<ConnectionPhase>, now: ConnectionPhase) -> Result<(), String> {
    if shown == Some(now) {
        Ok(())
    } else {
        Err(String::from(
            "the phase changed during this connection's handshake; reconnect",
        ))
    }
}

/// Whether `method` is what the attestation phase accepts.
fn attestation_method(settings: &Settings, method: &AuthMethod) -> Result<(), String> {
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
fn kubernetes_method(wn_key: &PublicKey, method: &AuthMethod) -> Result<(), String> {
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
