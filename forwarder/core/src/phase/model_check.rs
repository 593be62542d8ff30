//! Exhaustive model check of the composed system: the REAL [`step`] plus a
//! model of the driver's duties, explored breadth-first over every
//! interleaving within the bounds below, with a visited set.
//!
//! The driver model does what `forwarder/src/controller.rs` does: it carries
//! out one step's actions in order, stops them when a persist fails and
//! feeds `PersistFailed`, writes `Failed` always (the spare record), exits
//! on `FailClosed`, and restarts from what was persisted (or from a damaged
//! record). Between any two actions the process may crash.
//!
//! Clients: the WN (init-data key in the attestation phase, Trustee key in
//! the Kubernetes phase), a stranger with a wrong key, and one with `none`
//! authentication. Each may connect twice per boot, authenticate, ask for a
//! mux channel and drop. Bounds: 2 crashes, 1 persist failure, 1 damaged
//! record per run. Invariants, checked on every transition:
//!
//! 1. at most one attestation-phase admission per boot, across restarts;
//! 2. the persisted phase never goes back, and within a process the
//!    machine's phase never goes back;
//! 3. no admission whose claim is not persisted;
//! 4. the Kubernetes phase admits only with both keys and only the Trustee
//!    WN key;
//! 5. `Failed` is terminal, on disk and in the machine.

use super::*;
use crate::record::PhaseRecord;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::ToString;
use pp_tag::ConnectionPhase::{Attestation, Kubernetes};
use std::collections::HashSet;

const CLIENTS: usize = 3;
const CONNECTIONS_PER_CLIENT: u8 = 2;
const MAX_CRASHES: u8 = 2;
const MAX_PERSIST_FAILURES: u8 = 1;
const MAX_DAMAGES: u8 = 1;

/// How the driver orders a step's actions: as the machine says, or (the
/// deliberately broken variant) admitting before persisting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Faithful,
    AdmitBeforePersist,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Disk {
    Empty,
    Damaged,
    Record(String, u8),
}

fn disk_rank(phase: &RecordedPhase) -> u8 {
    match phase {
        RecordedPhase::AttestationOpen { .. } => 1,
        RecordedPhase::AttestationClaimed { .. } => 2,
        RecordedPhase::Kubernetes { .. } => 3,
        RecordedPhase::Failed { .. } => 4,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Conn {
    client: usize,
    shown: Option<ConnectionPhase>,
    admitted: Option<ConnectionPhase>,
    asked_mux: bool,
}

#[derive(Debug, Clone)]
struct Process {
    machine: PhaseMachine,
    pending: VecDeque<Action>,
    conns: BTreeMap<ConnId, Conn>,
    fetching: bool,
    keys_given: bool,
    deadline_armed: bool,
    deadline_fired: bool,
}

#[derive(Debug, Clone)]
struct World {
    /// What is on disk, and the record itself (for restarts).
    disk: Disk,
    record: Option<RecordedPhase>,
    process: Option<Process>,
    connections_made: [u8; CLIENTS],
    next_conn: ConnId,
    crashes: u8,
    persist_failures: u8,
    damages: u8,
    /// Ghost: attestation-phase admissions in this boot.
    attestation_admissions: u8,
}

/// The visited-set key: everything that decides the future.
fn fingerprint(world: &World) -> String {
    let process = world.process.as_ref().map(|p| {
        (
            format!("{:?}", p.machine.state()),
            format!("{:?}", p.pending),
            format!("{:?}", p.conns),
            (p.fetching, p.keys_given, p.deadline_armed, p.deadline_fired),
        )
    });
    format!(
        "{:?}|{:?}|{:?}|{:?}|{}|{}|{}|{}",
        world.disk,
        process,
        world.connections_made,
        world.next_conn,
        world.crashes,
        world.persist_failures,
        world.damages,
        world.attestation_admissions
    )
}

struct Fixture {
    settings: Settings,
    init_data_key: PublicKey,
    trustee_wn_key: PublicKey,
    stranger_key: PublicKey,
    keys: PhaseKeys,
}

impl Fixture {
    fn new() -> Self {
        let init_data_key = PrivateKey::from_seed([1; 32]).public();
        let trustee_wn_key = PrivateKey::from_seed([2; 32]).public();
        Self {
            settings: Settings {
                boot_id: [9; 16],
                attestation_host_key: PrivateKey::from_seed([5; 32]).public(),
                init_data_wn_key: Some(init_data_key),
                attestation_deadline_ms: 1_000,
            },
            init_data_key,
            trustee_wn_key,
            stranger_key: PrivateKey::from_seed([3; 32]).public(),
            keys: PhaseKeys {
                host_key: PrivateKey::from_seed([4; 32]),
                wn_key: trustee_wn_key,
            },
        }
    }

    /// What client `client` offers on a connection shown `shown`.
    fn method(&self, client: usize, shown: Option<ConnectionPhase>) -> AuthMethod {
        match (client, shown) {
            (0, Some(Kubernetes)) => AuthMethod::PublicKey(self.trustee_wn_key),
            (0, _) => AuthMethod::PublicKey(self.init_data_key),
            (1, _) => AuthMethod::PublicKey(self.stranger_key),
            _ => AuthMethod::None,
        }
    }
}

type Violation = String;

struct Explorer<'a> {
    fixture: &'a Fixture,
    driver: Driver,
}

impl Explorer<'_> {
    /// Feeds one event to the running process and queues its actions.
    fn feed(&self, process: &mut Process, event: Event) -> Result<(), Violation> {
        let before = process.machine.state().rank();
        let was_failed = matches!(process.machine.state(), State::Failed { .. });
        let mut actions = process.machine.step(event.clone());
        let after = process.machine.state();
        if after.rank() < before {
            return Err(format!("the phase went back on {event:?}"));
        }
        if was_failed && !matches!(after, State::Failed { .. }) {
            return Err(format!("left Failed on {event:?}"));
        }
        if self.driver == Driver::AdmitBeforePersist {
            let admit = actions
                .iter()
                .position(|action| matches!(action, Action::Admit { .. }));
            let persist = actions
                .iter()
                .position(|action| matches!(action, Action::Persist(_)));
            if let (Some(admit), Some(persist)) = (admit, persist)
                && persist < admit
            {
                let admit = actions.remove(admit);
                actions.insert(persist, admit);
            }
        }
        process.pending.extend(actions);
        Ok(())
    }

    fn restart(&self, world: &mut World) -> Result<(), Violation> {
        let mut process = Process {
            machine: PhaseMachine::new(self.fixture.settings.clone()),
            pending: VecDeque::new(),
            conns: BTreeMap::new(),
            fetching: false,
            keys_given: false,
            deadline_armed: false,
            deadline_fired: false,
        };
        let found = match (&world.disk, &world.record) {
            (Disk::Damaged, _) => Restored::Damaged {
                reason: "checksum mismatch".to_string(),
            },
            (Disk::Empty, _) | (Disk::Record(..), None) => Restored::NoRecord,
            (Disk::Record(..), Some(record)) => Restored::Record(record.clone()),
        };
        self.feed(&mut process, Event::Restored { found, now_ms: 0 })?;
        world.process = Some(process);
        Ok(())
    }

    /// Writes a record, checking that the persisted phase never goes back.
    fn write(&self, world: &mut World, phase: RecordedPhase) -> Result<(), Violation> {
        let rank = disk_rank(&phase);
        if let Disk::Record(_, old) = world.disk
            && rank < old
        {
            return Err(format!("persisted phase went back to {phase:?}"));
        }
        world.disk = Disk::Record(format!("{phase:?}"), rank);
        world.record = Some(phase);
        Ok(())
    }

    /// Carries out the next pending action; `persist_ok` says whether a
    /// `Persist` succeeds.
    fn carry_out(&self, world: &mut World, persist_ok: bool) -> Result<(), Violation> {
        let Some(mut process) = world.process.take() else {
            return Ok(());
        };
        let Some(action) = process.pending.pop_front() else {
            world.process = Some(process);
            return Ok(());
        };
        match action {
            Action::Persist(PhaseRecord { phase, .. }) => {
                let is_failed = matches!(phase, RecordedPhase::Failed { .. });
                if persist_ok || is_failed {
                    self.write(world, phase)?;
                } else {
                    world.persist_failures += 1;
                    process.pending.clear();
                    self.feed(
                        &mut process,
                        Event::PersistFailed {
                            reason: "disk full".to_string(),
                        },
                    )?;
                }
            }
            Action::Admit { conn, phase } => {
                self.admit(world, &process, conn, phase)?;
                if let Some(c) = process.conns.get_mut(&conn) {
                    c.admitted = Some(phase);
                }
            }
            Action::FetchKeys => process.fetching = true,
            Action::StartDeadline { .. } => process.deadline_armed = true,
            Action::Refuse { conn, .. } | Action::Close { conn, .. } => {
                if process.conns.remove(&conn).is_some() {
                    self.feed(&mut process, Event::ConnectionClosed { conn })?;
                }
            }
            Action::FailClosed { .. } => {
                // The process exits (or the VM powers off).
                return Ok(());
            }
            Action::AcceptAuth { .. }
            | Action::RejectAuth { .. }
            | Action::OpenMux { .. }
            | Action::RefuseMux { .. }
            | Action::SignalUpgrade { .. }
            | Action::CloseAfterGrace { .. }
            | Action::Note { .. } => {}
        }
        world.process = Some(process);
        Ok(())
    }

    /// Invariants 1, 3 and 4 at the moment of an admission.
    fn admit(
        &self,
        world: &mut World,
        process: &Process,
        conn: ConnId,
        phase: ConnectionPhase,
    ) -> Result<(), Violation> {
        let client = process.conns.get(&conn).map(|c| c.client);
        match phase {
            Attestation => {
                let claimed = matches!(
                    &world.record,
                    Some(RecordedPhase::AttestationClaimed { conn: owner, .. }) if *owner == conn
                );
                if !claimed {
                    return Err(format!(
                        "connection {conn} admitted in the attestation phase without its claim on disk"
                    ));
                }
                world.attestation_admissions += 1;
                if world.attestation_admissions > 1 {
                    return Err("a second attestation-phase admission in this boot".to_string());
                }
            }
            Kubernetes => {
                let keys_on_disk = matches!(world.record, Some(RecordedPhase::Kubernetes { .. }));
                let keys_in_machine = process.machine.state().host_key().is_some();
                if !keys_on_disk || !keys_in_machine || client != Some(0) {
                    return Err(format!(
                        "connection {conn} (client {client:?}) admitted in the Kubernetes phase \
                         without both keys or without the Trustee WN key"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every successor of `world`, with a label for traces.
    fn successors(&self, world: &World) -> Vec<(String, Result<World, Violation>)> {
        let mut next = Vec::new();
        let mut push = |label: String, result: Result<World, Violation>| next.push((label, result));
        let Some(process) = &world.process else {
            let mut restarted = world.clone();
            push(
                "restart".into(),
                self.restart(&mut restarted).map(|()| restarted),
            );
            if world.damages < MAX_DAMAGES && world.disk != Disk::Empty {
                let mut damaged = world.clone();
                damaged.damages += 1;
                damaged.disk = Disk::Damaged;
                push(
                    "restart with a damaged record".into(),
                    self.restart(&mut damaged).map(|()| damaged),
                );
            }
            return next;
        };
        if world.crashes < MAX_CRASHES {
            let mut crashed = world.clone();
            crashed.crashes += 1;
            crashed.process = None;
            push("crash".into(), Ok(crashed));
        }
        if let Some(action) = process.pending.front() {
            let label = format!("driver: {action}");
            let mut done = world.clone();
            push(
                label.clone(),
                self.carry_out(&mut done, true).map(|()| done),
            );
            if matches!(action, Action::Persist(_)) && world.persist_failures < MAX_PERSIST_FAILURES
            {
                let mut failed = world.clone();
                push(
                    format!("{label} FAILS"),
                    self.carry_out(&mut failed, false).map(|()| failed),
                );
            }
            return next;
        }
        // No action pending: any event may come.
        for client in 0..CLIENTS {
            let open = process.conns.iter().find(|(_, c)| c.client == client);
            match open {
                None if world.connections_made[client] < CONNECTIONS_PER_CLIENT => {
                    let mut w = world.clone();
                    w.connections_made[client] += 1;
                    let conn = w.next_conn;
                    w.next_conn += 1;
                    if let Some(p) = w.process.as_mut() {
                        let shown = p.machine.state().connection_phase();
                        p.conns.insert(
                            conn,
                            Conn {
                                client,
                                shown,
                                admitted: None,
                                asked_mux: false,
                            },
                        );
                    }
                    push(format!("client {client} connects as {conn}"), Ok(w));
                }
                None => {}
                Some((&conn, c)) => {
                    let c = c.clone();
                    let mut w = world.clone();
                    let result = w.process.as_mut().map_or(Ok(()), |p| {
                        p.conns.remove(&conn);
                        self.feed(p, Event::ConnectionClosed { conn })
                    });
                    push(format!("connection {conn} drops"), result.map(|()| w));
                    if c.admitted.is_none() {
                        let mut w = world.clone();
                        let result = w
                            .process
                            .as_mut()
                            .map_or(Ok(()), |p| self.authenticate(p, conn, c.client, c.shown));
                        push(
                            format!("connection {conn} authenticates"),
                            result.map(|()| w),
                        );
                    } else if !c.asked_mux {
                        let mut w = world.clone();
                        let result = w.process.as_mut().map_or(Ok(()), |p| {
                            if let Some(c) = p.conns.get_mut(&conn) {
                                c.asked_mux = true;
                            }
                            self.feed(p, Event::MuxRequested { conn })
                        });
                        push(
                            format!("connection {conn} asks for its mux"),
                            result.map(|()| w),
                        );
                    }
                }
            }
        }
        if process.fetching && !process.keys_given {
            let mut w = world.clone();
            let result = w.process.as_mut().map_or(Ok(()), |p| {
                p.keys_given = true;
                self.feed(p, Event::KeysObtained(self.fixture.keys.clone()))
            });
            push("CDH returns the keys".into(), result.map(|()| w));
        }
        if process.deadline_armed && !process.deadline_fired {
            let mut w = world.clone();
            let result = w.process.as_mut().map_or(Ok(()), |p| {
                p.deadline_fired = true;
                self.feed(p, Event::DeadlineExpired)
            });
            push("the deadline passes".into(), result.map(|()| w));
        }
        next
    }

    /// Offers the client's method and, if acceptable, authenticates.
    fn authenticate(
        &self,
        process: &mut Process,
        conn: ConnId,
        client: usize,
        shown: Option<ConnectionPhase>,
    ) -> Result<(), Violation> {
        let method = self.fixture.method(client, shown);
        let answer = process.machine.step(Event::AuthOffered {
            conn,
            shown,
            method: method.clone(),
        });
        if answer.contains(&Action::AcceptAuth { conn }) {
            let peer = SocketAddr::from(([192, 0, 2, 1], 4000));
            self.feed(
                process,
                Event::Authenticated {
                    conn,
                    peer,
                    shown,
                    method,
                },
            )
        } else {
            process.conns.remove(&conn);
            self.feed(process, Event::ConnectionClosed { conn })
        }
    }

    /// Breadth-first over every reachable world. `Ok(states)` or the trace
    /// to the first violation.
    fn explore(&self) -> Result<usize, Vec<String>> {
        let start = World {
            disk: Disk::Empty,
            record: None,
            process: None,
            connections_made: [0; CLIENTS],
            next_conn: 1,
            crashes: 0,
            persist_failures: 0,
            damages: 0,
            attestation_admissions: 0,
        };
        let mut seen: HashSet<String> = HashSet::new();
        // index -> (parent, label)
        let mut parents: Vec<(usize, String)> = vec![(0, "boot".into())];
        let mut queue: VecDeque<(usize, World)> = VecDeque::new();
        seen.insert(fingerprint(&start));
        queue.push_back((0, start));
        let trace = |parents: &Vec<(usize, String)>, mut at: usize, last: String| {
            let mut steps = vec![last];
            while at != 0 {
                steps.push(parents[at].1.clone());
                at = parents[at].0;
            }
            steps.reverse();
            steps
        };
        while let Some((index, world)) = queue.pop_front() {
            for (label, result) in self.successors(&world) {
                match result {
                    Err(violation) => {
                        return Err(trace(
                            &parents,
                            index,
                            format!("{label}: VIOLATION: {violation}"),
                        ));
                    }
                    Ok(next) => {
                        if seen.insert(fingerprint(&next)) {
                            parents.push((index, label));
                            queue.push_back((parents.len() - 1, next));
                        }
                    }
                }
            }
        }
        Ok(seen.len())
    }
}

const INVARIANTS: &str = "one attestation admission per boot; never back (disk and machine); \
    no admission without its persisted claim; Kubernetes phase only with both keys and the \
    Trustee WN key; Failed terminal";

#[test]
fn the_composed_system_keeps_every_invariant_in_every_interleaving() {
    let fixture = Fixture::new();
    let explorer = Explorer {
        fixture: &fixture,
        driver: Driver::Faithful,
    };
    match explorer.explore() {
        Ok(states) => std::println!(
            "model check: {states} states explored ({CLIENTS} clients, {CONNECTIONS_PER_CLIENT} \
             connections each, {MAX_CRASHES} crashes, {MAX_PERSIST_FAILURES} persist failure, \
             {MAX_DAMAGES} damaged record); invariants hold: {INVARIANTS}"
        ),
        Err(trace) => panic!("counterexample:\n  {}", trace.join("\n  ")),
    }
}

#[test]
fn a_driver_that_admits_before_persisting_is_caught_with_a_trace() {
    let fixture = Fixture::new();
    let explorer = Explorer {
        fixture: &fixture,
        driver: Driver::AdmitBeforePersist,
    };
    let trace = explorer
        .explore()
        .expect_err("the broken driver must violate an invariant");
    std::println!(
        "counterexample for the broken driver:\n  {}",
        trace.join("\n  ")
    );
    assert!(
        trace
            .last()
            .is_some_and(|last| last.contains("without its claim on disk")),
        "{trace:?}"
    );
}
