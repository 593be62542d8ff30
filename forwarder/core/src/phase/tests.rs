//! Tests of the phase machine: every (state, event) pair against the
//! specification table below, and random event sequences against the
//! one-shot and never-back invariants.

use super::*;
use crate::record::PhaseRecord;
use alloc::collections::BTreeSet;
use alloc::string::ToString;
use alloc::vec;
use pp_tag::ConnectionPhase::{Attestation, Kubernetes};
use pp_test_support::XorShift;

/// Keys by seed 1..=5, derived once: derivation is slow in debug builds.
static KEYS: std::sync::LazyLock<Vec<PrivateKey>> = std::sync::LazyLock::new(|| {
    (0..=5)
        .map(|seed| PrivateKey::from_seed([seed; 32]))
        .collect()
});

fn key(seed: u8) -> PrivateKey {
    KEYS[usize::from(seed)].clone()
}
fn init_data_key() -> PublicKey {
    key(1).public()
}
fn trustee_wn_key() -> PublicKey {
    key(2).public()
}
fn stranger_key() -> PublicKey {
    key(3).public()
}
fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}
fn facts() -> AttestationFacts {
    AttestationFacts {
        host_key_fingerprint: "SHA256:old".into(),
        peer: peer(1),
    }
}
fn phase_keys() -> PhaseKeys {
    PhaseKeys {
        host_key: key(4),
        wn_key: trustee_wn_key(),
    }
}

fn admitted(conn: ConnId, mux_open: bool) -> Admitted {
    Admitted { conn, mux_open }
}
fn stored_keys() -> crate::record::KeyBytes {
    crate::record::KeyBytes {
        host_key_seed: *key(4).seed(),
        wn_key: *trustee_wn_key().as_bytes(),
    }
}
fn restored(found: Restored) -> Event {
    Event::Restored {
        found,
        now_ms: 1_000,
    }
}

fn settings(with_init_data_key: bool) -> Settings {
    Settings {
        boot_id: [9; 16],
        attestation_host_key: key(5).public(),
        init_data_wn_key: with_init_data_key.then(init_data_key),
        attestation_deadline_ms: 600_000,
    }
}

fn sample_states() -> Vec<State> {
    vec![
        State::Restoring,
        State::AttestationOpen,
        State::AttestationClaimed {
            owner: admitted(1, false),
            peer: peer(1),
        },
        State::AttestationClaimed {
            owner: admitted(1, true),
            peer: peer(1),
        },
        State::Kubernetes {
            current: Some(admitted(5, false)),
            keys: phase_keys(),
            attestation: facts(),
        },
        State::Kubernetes {
            current: Some(admitted(5, true)),
            keys: phase_keys(),
            attestation: facts(),
        },
        State::Kubernetes {
            current: None,
            keys: phase_keys(),
            attestation: facts(),
        },
        State::Failed {
            reason: "earlier".into(),
        },
    ]
}

fn methods() -> Vec<AuthMethod> {
    vec![
        AuthMethod::None,
        AuthMethod::PublicKey(init_data_key()),
        AuthMethod::PublicKey(trustee_wn_key()),
        AuthMethod::PublicKey(stranger_key()),
    ]
}

fn sample_events() -> Vec<Event> {
    let kubernetes_record = RecordedPhase::Kubernetes {
        attestation_host_key_fingerprint: "SHA256:old".into(),
        attestation_peer: peer(1),
        keys: stored_keys(),
    };
    let mut events = vec![
        restored(Restored::NoRecord),
        restored(Restored::Damaged {
            reason: "checksum mismatch".into(),
        }),
        restored(Restored::Record(RecordedPhase::Failed {
            reason: "deadline".into(),
        })),
        restored(Restored::Record(RecordedPhase::AttestationOpen {
            began_ms: 400,
        })),
        restored(Restored::Record(RecordedPhase::AttestationOpen {
            began_ms: 4_000,
        })),
        restored(Restored::Record(RecordedPhase::AttestationClaimed {
            conn: 1,
            peer: peer(1),
            attestation_host_key_fingerprint: "SHA256:old".into(),
        })),
        restored(Restored::Record(kubernetes_record)),
        Event::KeysObtained(phase_keys()),
        Event::DeadlineExpired,
        Event::PersistFailed {
            reason: "disk full".into(),
        },
    ];
    for conn in [1, 2, 5] {
        events.push(Event::ConnectionClosed { conn });
        events.push(Event::MuxRequested { conn });
        for method in methods() {
            for shown in [Some(Attestation), Some(Kubernetes), None] {
                events.push(Event::AuthOffered {
                    conn,
                    shown,
                    method: method.clone(),
                });
                events.push(Event::Authenticated {
                    conn,
                    peer: peer(2),
                    shown,
                    method: method.clone(),
                });
            }
        }
    }
    events
}

/// Which `Event` variant this is. Keep `EVENT_VARIANTS` equal to the
/// number of arms: the coverage test checks every index is sampled.
fn event_index(event: &Event) -> usize {
    match event {
        Event::Restored { .. } => 0,
        Event::AuthOffered { .. } => 1,
        Event::Authenticated { .. } => 2,
        Event::KeysObtained(_) => 3,
        Event::ConnectionClosed { .. } => 4,
        Event::DeadlineExpired => 5,
        Event::PersistFailed { .. } => 6,
        Event::MuxRequested { .. } => 7,
    }
}
const EVENT_VARIANTS: usize = 8;
const STATE_VARIANTS: u8 = 5;

/// The shape of an action, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AcceptAuth,
    RejectAuth,
    Refuse,
    Persist,
    Admit,
    OpenMux,
    RefuseMux,
    StartDeadline,
    FetchKeys,
    Close,
    SignalUpgrade,
    CloseAfterGrace,
    FailClosed,
    Note,
}

fn kind(action: &Action) -> Kind {
    match action {
        Action::AcceptAuth { .. } => Kind::AcceptAuth,
        Action::RejectAuth { .. } => Kind::RejectAuth,
        Action::Refuse { .. } => Kind::Refuse,
        Action::Persist(_) => Kind::Persist,
        Action::Admit { .. } => Kind::Admit,
        Action::OpenMux { .. } => Kind::OpenMux,
        Action::RefuseMux { .. } => Kind::RefuseMux,
        Action::StartDeadline { .. } => Kind::StartDeadline,
        Action::FetchKeys => Kind::FetchKeys,
        Action::Close { .. } => Kind::Close,
        Action::SignalUpgrade { .. } => Kind::SignalUpgrade,
        Action::CloseAfterGrace { .. } => Kind::CloseAfterGrace,
        Action::FailClosed { .. } => Kind::FailClosed,
        Action::Note { .. } => Kind::Note,
    }
}

/// Whether `method` passes in the attestation phase under `settings`.
fn attestation_ok(settings: &Settings, method: &AuthMethod) -> bool {
    match (&settings.init_data_wn_key, method) {
        (None, AuthMethod::None) => true,
        (Some(expected), AuthMethod::PublicKey(key)) => key == expected,
        (None, AuthMethod::PublicKey(_)) | (Some(_), AuthMethod::None) => false,
    }
}

fn kubernetes_ok(method: &AuthMethod) -> bool {
    *method == AuthMethod::PublicKey(trustee_wn_key())
}

/// THE specification table: the expected next state (by name) and action
/// kinds for each (state, event). No wildcards: a new state or event
/// variant does not compile until it is specified here.
fn expected(settings: &Settings, state: &State, event: &Event) -> (&'static str, Vec<Kind>) {
    use Kind::*;
    let same = state.name();
    let fail_persisted = ("failed", vec![Persist, FailClosed]);
    match (state, event) {
        // Restored: only the first one counts.
        (State::Restoring, Event::Restored { found, now_ms }) => match found {
            Restored::NoRecord => ("attestation-open", vec![Persist, Note, StartDeadline]),
            Restored::Damaged { .. } => ("failed", vec![FailClosed]),
            Restored::Record(RecordedPhase::Failed { .. }) => ("failed", vec![FailClosed]),
            Restored::Record(RecordedPhase::AttestationOpen { began_ms }) => {
                if began_ms <= now_ms {
                    ("attestation-open", vec![Note, StartDeadline])
                } else {
                    fail_persisted
                }
            }
            Restored::Record(RecordedPhase::AttestationClaimed { .. }) => fail_persisted,
            Restored::Record(RecordedPhase::Kubernetes { .. }) => ("kubernetes", vec![Note]),
        },
        (
            State::AttestationOpen
            | State::AttestationClaimed { .. }
            | State::Kubernetes { .. }
            | State::Failed { .. },
            Event::Restored { .. },
        ) => (same, vec![Note]),

        // Offers are answered, never change the state.
        (
            State::Restoring | State::Failed { .. } | State::AttestationClaimed { .. },
            Event::AuthOffered { .. },
        ) => (same, vec![RejectAuth]),
        (State::AttestationOpen, Event::AuthOffered { method, shown, .. }) => (
            same,
            vec![
                if *shown == Some(Attestation) && attestation_ok(settings, method) {
                    AcceptAuth
                } else {
                    RejectAuth
                },
            ],
        ),
        (State::Kubernetes { .. }, Event::AuthOffered { method, shown, .. }) => (
            same,
            vec![if *shown == Some(Kubernetes) && kubernetes_ok(method) {
                AcceptAuth
            } else {
                RejectAuth
            }],
        ),

        // Authentication: the one-shot rule.
        (State::Restoring | State::Failed { .. }, Event::Authenticated { .. }) => {
            (same, vec![Refuse])
        }
        (State::AttestationOpen, Event::Authenticated { method, shown, .. }) => {
            if *shown == Some(Attestation) && attestation_ok(settings, method) {
                ("attestation-claimed", vec![Persist, Admit, FetchKeys])
            } else {
                (same, vec![Refuse])
            }
        }
        (State::AttestationClaimed { owner, .. }, Event::Authenticated { conn, .. }) => {
            (same, vec![if owner.conn == *conn { Note } else { Refuse }])
        }
        (
            State::Kubernetes { current, .. },
            Event::Authenticated {
                conn,
                method,
                shown,
                ..
            },
        ) => {
            if current.map(|c| c.conn) == Some(*conn) {
                (same, vec![Note])
            } else if *shown != Some(Kubernetes) || !kubernetes_ok(method) {
                (same, vec![Refuse])
            } else if current.is_some() {
                (same, vec![Admit, Close])
            } else {
                (same, vec![Admit])
            }
        }

        // One mux channel, on the admitted connection only.
        (State::AttestationClaimed { owner, .. }, Event::MuxRequested { conn })
        | (
            State::Kubernetes {
                current: Some(owner),
                ..
            },
            Event::MuxRequested { conn },
        ) => (
            same,
            vec![if owner.conn == *conn && !owner.mux_open {
                OpenMux
            } else {
                RefuseMux
            }],
        ),
        (
            State::Restoring
            | State::AttestationOpen
            | State::Kubernetes { current: None, .. }
            | State::Failed { .. },
            Event::MuxRequested { .. },
        ) => (same, vec![RefuseMux]),

        // Keys only count while the attestation phase is claimed.
        (State::AttestationClaimed { .. }, Event::KeysObtained(_)) => {
            ("kubernetes", vec![Persist, SignalUpgrade, CloseAfterGrace])
        }
        (
            State::Restoring
            | State::AttestationOpen
            | State::Kubernetes { .. }
            | State::Failed { .. },
            Event::KeysObtained(_),
        ) => (same, vec![Note]),

        // Closing never reopens anything.
        (
            State::Restoring
            | State::AttestationOpen
            | State::AttestationClaimed { .. }
            | State::Kubernetes { .. }
            | State::Failed { .. },
            Event::ConnectionClosed { .. },
        ) => (same, vec![Note]),

        (
            State::Restoring | State::AttestationOpen | State::AttestationClaimed { .. },
            Event::DeadlineExpired,
        ) => fail_persisted,
        (State::Kubernetes { .. } | State::Failed { .. }, Event::DeadlineExpired) => {
            (same, vec![Note])
        }

        (
            State::Restoring
            | State::AttestationOpen
            | State::AttestationClaimed { .. }
            | State::Kubernetes { .. }
            | State::Failed { .. },
            Event::PersistFailed { .. },
        ) => ("failed", vec![FailClosed]),
    }
}

#[test]
fn every_state_event_pair_follows_the_specification_table() {
    let mut covered = BTreeSet::new();
    for with_key in [false, true] {
        let settings = settings(with_key);
        for state in sample_states() {
            for event in sample_events() {
                covered.insert((state.rank(), event_index(&event)));
                let (want_state, want_actions) = expected(&settings, &state, &event);
                let (next, actions) = step(&settings, state.clone(), event.clone());
                let kinds: Vec<Kind> = actions.iter().map(kind).collect();
                assert_eq!(
                    (next.name(), &kinds),
                    (want_state, &want_actions),
                    "state {state:?}, event {event:?}, actions {actions:?}"
                );
                assert!(actions.iter().all(|action| !action.to_string().is_empty()));
            }
        }
    }
    for rank in 0..STATE_VARIANTS {
        for event in 0..EVENT_VARIANTS {
            assert!(
                covered.contains(&(rank, event)),
                "pair ({rank}, {event}) not exercised"
            );
        }
    }
}

#[test]
fn the_attestation_winner_is_persisted_before_it_is_admitted() {
    let mut machine = PhaseMachine::new(settings(false));
    machine.step(restored(Restored::NoRecord));
    let actions = machine.step(Event::Authenticated {
        conn: 7,
        peer: peer(7),
        shown: Some(Attestation),
        method: AuthMethod::None,
    });
    let Action::Persist(record) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        record.phase,
        RecordedPhase::AttestationClaimed {
            conn: 7,
            peer: peer(7),
            attestation_host_key_fingerprint: key(5).public().fingerprint(),
        }
    );
    assert_eq!(
        actions[1],
        Action::Admit {
            conn: 7,
            phase: ConnectionPhase::Attestation
        }
    );
    let second = machine.step(Event::Authenticated {
        conn: 8,
        peer: peer(8),
        shown: Some(Attestation),
        method: AuthMethod::None,
    });
    assert_eq!(
        second,
        [Action::Refuse {
            conn: 8,
            reason: "attestation phase already used by connection 7 from 192.0.2.1:7".into()
        }]
    );
}

#[test]
fn keys_lead_to_upgrade_on_the_attestation_connection_and_info_for_the_transcript_check() {
    let mut machine = PhaseMachine::new(settings(false));
    machine.step(restored(Restored::NoRecord));
    assert_eq!(machine.info().as_deref(), Some("phase=attestation\n"));
    machine.step(Event::Authenticated {
        conn: 7,
        peer: peer(7),
        shown: Some(Attestation),
        method: AuthMethod::None,
    });
    let actions = machine.step(Event::KeysObtained(phase_keys()));
    let Action::Persist(PhaseRecord {
        phase: RecordedPhase::Kubernetes { keys, .. },
        ..
    }) = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*keys, stored_keys(), "keys and phase are one record");
    assert_eq!(
        actions[1],
        Action::SignalUpgrade {
            conn: 7,
            host_key: key(4).public()
        }
    );
    assert!(matches!(
        actions[2],
        Action::CloseAfterGrace { conn: 7, .. }
    ));
    let info = machine.info().unwrap();
    assert_eq!(
        info,
        alloc::format!(
            "phase=kubernetes\nattestation-hostkey={}\nattestation-peer=192.0.2.1:7\n",
            key(5).public().fingerprint()
        )
    );
}

#[test]
fn a_newer_kubernetes_connection_supersedes_the_older() {
    let mut machine = PhaseMachine::new(settings(false));
    machine.step(restored(Restored::Record(RecordedPhase::Kubernetes {
        attestation_host_key_fingerprint: "SHA256:x".into(),
        attestation_peer: peer(1),
        keys: stored_keys(),
    })));
    let wn = AuthMethod::PublicKey(trustee_wn_key());
    machine.step(Event::Authenticated {
        conn: 1,
        peer: peer(1),
        shown: Some(Kubernetes),
        method: wn.clone(),
    });
    let actions = machine.step(Event::Authenticated {
        conn: 2,
        peer: peer(2),
        shown: Some(Kubernetes),
        method: wn,
    });
    assert_eq!(
        actions[0],
        Action::Admit {
            conn: 2,
            phase: ConnectionPhase::Kubernetes
        }
    );
    assert_eq!(
        actions[1],
        Action::Close {
            conn: 1,
            reason: "superseded by newer connection 2 from 192.0.2.1:2".into()
        }
    );
}

/// Inputs for random sequences, built once (deriving keys is slow in
/// debug builds).
struct World {
    methods: Vec<AuthMethod>,
    events: Vec<Event>,
}

impl World {
    fn new() -> Self {
        Self {
            methods: methods(),
            events: sample_events(),
        }
    }

    /// A random event among a few connections, keys and records.
    fn random_event(&self, rng: &mut XorShift) -> Event {
        let conn = rng.below(4);
        let method = self.methods[rng.below(self.methods.len() as u64) as usize].clone();
        let shown = [Some(Attestation), Some(Kubernetes)][rng.below(2) as usize];
        match rng.below(10) {
            0..=2 => Event::AuthOffered {
                conn,
                shown,
                method,
            },
            3..=5 => Event::Authenticated {
                conn,
                peer: peer(conn as u16),
                shown,
                method,
            },
            6 => Event::ConnectionClosed { conn },
            _ => self.events[rng.below(self.events.len() as u64) as usize].clone(),
        }
    }
}

#[test]
fn over_random_event_sequences_one_attestation_connection_at_most_and_never_back() {
    let mut rng = XorShift::new(0x5eed);
    let world = World::new();
    let wn = AuthMethod::PublicKey(trustee_wn_key());
    let both_settings = [settings(false), settings(true)];
    for run in 0..3000 {
        let mut machine = PhaseMachine::new(both_settings[run % 2].clone());
        if run % 3 != 0 {
            machine.step(restored(Restored::NoRecord));
        }
        let mut attestation_admitted = BTreeSet::new();
        for _ in 0..40 {
            let before = machine.state().clone();
            let event = world.random_event(&mut rng);
            let actions = machine.step(event.clone());
            let after = machine.state();
            assert!(
                after.rank() >= before.rank(),
                "went back: {before:?} -> {after:?} on {event:?}"
            );
            let mut persisted = false;
            for action in &actions {
                match action {
                    Action::Persist(_) => persisted = true,
                    Action::Admit {
                        conn,
                        phase: ConnectionPhase::Attestation,
                    } => {
                        assert!(persisted, "admitted before persisting: {actions:?}");
                        attestation_admitted.insert(*conn);
                    }
                    Action::Admit {
                        phase: ConnectionPhase::Kubernetes,
                        ..
                    } => {
                        let Event::Authenticated { method, .. } = &event else {
                            panic!("{event:?}")
                        };
                        assert_eq!(method, &wn, "admitted a stranger in the Kubernetes phase");
                    }
                    _ => {}
                }
            }
            assert!(
                attestation_admitted.len() <= 1,
                "admitted {attestation_admitted:?}"
            );
        }
    }
}
