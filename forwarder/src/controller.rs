//! The controller: owns the phase machine of `pp_forwarder_core::phase` and
//! carries out its actions (persist, admit, refuse, close, upgrade, fetch
//! keys, fail closed). Sessions, listeners and the key fetcher call it;
//! it never blocks (persisting is a small write to tmpfs).
//!
//! Single-threaded: the forwarder runs on one thread, so the controller is
//! shared as `Rc` and uses `RefCell`; no borrow is held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};
use pp_forwarder_core::config::ForwarderConfig;
use pp_forwarder_core::phase::{
    Action, AuthMethod, Event, PhaseKeys, PhaseMachine, Restored, Settings as MachineSettings,
    State,
};
use pp_forwarder_core::policy;
use pp_forwarder_core::record::RecordedPhase;
use pp_ssh_key::PrivateKey;
use pp_tag::{Availability, ConnectionPhase, Target};
use pp_tunnel::MuxHandle;
use sunset::SignKey;
use tokio::sync::{Notify, watch};

use crate::cdh;
use crate::fail_closed::fail_closed;
use crate::refusal::Refusal;
use crate::settings::Settings;
use crate::store::Store;

pub use pp_forwarder_core::phase::ConnId;

/// The admitted connection that PP-side streams go to, with its phase.
type CurrentMux = Option<(ConnId, ConnectionPhase, MuxHandle)>;

/// Ends one connection from elsewhere (superseded, upgrade grace over).
#[derive(Default)]
pub struct Closer {
    reason: RefCell<Option<String>>,
    notify: Notify,
}

impl Closer {
    pub fn close(&self, reason: String) {
        self.reason.borrow_mut().get_or_insert(reason);
        self.notify.notify_one();
    }

    /// Resolves with the reason once `close` was called.
    pub async fn closed(&self) -> String {
        loop {
            if let Some(reason) = self.reason.borrow().clone() {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

#[derive(Default)]
struct Conn {
    closer: Rc<Closer>,
    /// The phase of the host key this connection was shown.
    kex_phase: Option<ConnectionPhase>,
    /// The phase it was admitted to.
    admitted: Option<ConnectionPhase>,
    mux: Option<MuxHandle>,
}

pub struct Controller {
    settings: Settings,
    config: ForwarderConfig,
    store: Store,
    ephemeral_host_key: SignKey,
    machine: RefCell<PhaseMachine>,
    conns: RefCell<HashMap<ConnId, Conn>>,
    next_conn: Cell<ConnId>,
    current_mux: watch::Sender<CurrentMux>,
}

/// sunset's key type for one of our private keys.
fn sign_key(key: &PrivateKey) -> SignKey {
    SignKey::Ed25519(sunset::ed25519_dalek::SigningKey::from_bytes(key.seed()))
}

impl Controller {
    /// Builds the controller and restores the phase from what the store
    /// found (`now_ms`: time since boot). A damaged record fails closed
    /// inside.
    pub fn start(
        settings: Settings,
        config: ForwarderConfig,
        store: Store,
        loaded: Result<Option<RecordedPhase>, String>,
        now_ms: u64,
    ) -> Result<Rc<Self>, String> {
        let ephemeral = sunset::SignKey::generate(sunset::KeyType::Ed25519, None)
            .map_err(|e| format!("cannot generate the attestation host key: {e}"))?;
        let SignKey::Ed25519(dalek) = &ephemeral else {
            return Err("the attestation host key is not Ed25519".into());
        };
        let ephemeral_public = PrivateKey::from_seed(dalek.to_bytes()).public();
        info!(
            "attestation-phase host key (ephemeral): {}",
            ephemeral_public.fingerprint()
        );
        let deadline_ms =
            u64::try_from(settings.attestation_deadline.as_millis()).unwrap_or(u64::MAX);
        let machine = PhaseMachine::new(MachineSettings {
            boot_id: store.boot_id(),
            attestation_host_key: ephemeral_public,
            init_data_wn_key: config.wn_public_key,
            attestation_deadline_ms: deadline_ms,
        });
        let ctrl = Rc::new(Self {
            settings,
            config,
            store,
            ephemeral_host_key: ephemeral,
            machine: RefCell::new(machine),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(1),
            current_mux: watch::Sender::new(None),
        });
        let found = match loaded {
            Err(reason) => Restored::Damaged { reason },
            Ok(None) => Restored::NoRecord,
            Ok(Some(phase)) => Restored::Record(phase),
        };
        ctrl.step(Event::Restored { found, now_ms })
            .map_err(|refusal| refusal.to_string())?;
        if let Some(key) = ctrl.machine.borrow().state().host_key() {
            info!("Kubernetes-phase host key: {}", key.public().fingerprint());
        }
        Ok(ctrl)
    }

    pub fn inbound_tags(&self) -> Vec<pp_tag::Tag> {
        self.config.inbounds.iter().cloned().collect()
    }

    /// The machine's state, named as the core names it for log lines.
    pub fn phase_name(&self) -> &'static str {
        self.machine.borrow().state().name()
    }

    pub fn new_connection(&self) -> ConnId {
        let conn = self.next_conn.get();
        self.next_conn.set(conn + 1);
        self.conns.borrow_mut().insert(conn, Conn::default());
        conn
    }

    /// Connections in the table (tests check that none is left behind).
    #[cfg(test)]
    pub fn connection_count(&self) -> usize {
        self.conns.borrow().len()
    }

    pub fn closer(&self, conn: ConnId) -> Rc<Closer> {
        self.conns
            .borrow_mut()
            .entry(conn)
            .or_default()
            .closer
            .clone()
    }

    /// The host key to show this connection, fixed at its key exchange.
    pub fn host_key_for(&self, conn: ConnId) -> SignKey {
        let machine = self.machine.borrow();
        if let Some(c) = self.conns.borrow_mut().get_mut(&conn) {
            c.kex_phase = machine.state().connection_phase();
        }
        match machine.state().host_key() {
            Some(key) => sign_key(key),
            None => self.ephemeral_host_key.clone(),
        }
    }

    /// The phase whose host key `conn` was shown at key exchange.
    fn shown(&self, conn: ConnId) -> Option<ConnectionPhase> {
        self.conns.borrow().get(&conn).and_then(|c| c.kex_phase)
    }

    /// Answers an offered authentication method: `Ok` to accept it.
    pub fn offer_auth(
        self: &Rc<Self>,
        conn: ConnId,
        peer: SocketAddr,
        user: &str,
        method: AuthMethod,
    ) -> Result<(), Refusal> {
        let described = describe_method(&method);
        let shown = self.shown(conn);
        let verdict = self.step(Event::AuthOffered {
            conn,
            shown,
            method,
        });
        if let Err(reason) = &verdict {
            info!("conn {conn} from {peer}: user {user:?} {described} refused: {reason}");
        }
        verdict
    }

    /// The decision point of the one-shot rule: the connection has proved
    /// `method`. `Ok` means admitted (the claim is on disk already); `Err`
    /// means drop the connection before the success message leaves.
    pub fn authenticated(
        self: &Rc<Self>,
        conn: ConnId,
        peer: SocketAddr,
        method: AuthMethod,
    ) -> Result<(), Refusal> {
        let described = describe_method(&method);
        let shown = self.shown(conn);
        self.step(Event::Authenticated {
            conn,
            peer,
            shown,
            method,
        })?;
        info!("conn {conn} from {peer}: authenticated with {described}");
        Ok(())
    }

    /// The mux phase to announce in HELLO.
    pub fn mux_phase(&self, conn: ConnId) -> ConnectionPhase {
        self.conns
            .borrow()
            .get(&conn)
            .and_then(|c| c.admitted)
            .unwrap_or(ConnectionPhase::Attestation)
    }

    /// Asks the machine for this connection's one mux channel; `Err` says
    /// why not.
    pub fn mux_requested(self: &Rc<Self>, conn: ConnId) -> Result<(), Refusal> {
        self.step(Event::MuxRequested { conn })
    }

    pub fn register_mux(&self, conn: ConnId, mux: MuxHandle) {
        if let Some(c) = self.conns.borrow_mut().get_mut(&conn) {
            c.mux = Some(mux);
        }
        self.refresh_current_mux();
    }

    /// The target of outbound tunnel `name` if this connection's phase
    /// allows it.
    pub fn outbound_for(&self, conn: ConnId, name: &str) -> Result<Target, Refusal> {
        let phase = self
            .conns
            .borrow()
            .get(&conn)
            .and_then(|c| c.admitted)
            .ok_or(Refusal::NotAdmitted)?;
        policy::may_open(&self.config.outbounds, name, phase)
            .map(|tag| tag.target().clone())
            .map_err(Refusal::Tunnel)
    }

    /// How long a datagram flow may carry nothing (`udp-idle-secs`).
    pub fn udp_idle(&self) -> Duration {
        Duration::from_secs(self.config.udp_idle_secs.into())
    }

    pub fn info_text(&self, conn: ConnId) -> String {
        let info = self.machine.borrow().info().unwrap_or_default();
        info!("conn {conn}: answering INFO_REQUEST");
        info
    }

    /// Waits until an admitted connection whose phase `tunnel_phase` allows
    /// has a mux channel; `None` after `timeout`.
    pub async fn wait_for_mux(
        &self,
        tunnel_phase: Availability,
        timeout: Duration,
    ) -> Option<(ConnId, MuxHandle)> {
        let mut current = self.current_mux.subscribe();
        let wait =
            current.wait_for(|c| c.as_ref().is_some_and(|(_, p, _)| tunnel_phase.allows(*p)));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(guard)) => guard.as_ref().map(|(conn, _, mux)| (*conn, mux.clone())),
            _ => None,
        }
    }

    pub fn connection_closed(self: &Rc<Self>, conn: ConnId) {
        self.conns.borrow_mut().remove(&conn);
        let _ = self.step(Event::ConnectionClosed { conn });
    }

    pub fn deadline_expired(self: &Rc<Self>) {
        let _ = self.step(Event::DeadlineExpired);
    }

    pub fn keys_obtained(self: &Rc<Self>, keys: PhaseKeys) {
        let _ = self.step(Event::KeysObtained(keys));
    }

    pub fn cdh_addr(&self) -> SocketAddr {
        self.settings.cdh
    }

    pub fn cdh_timeout(&self) -> Duration {
        self.settings.cdh_timeout
    }

    /// Feeds one event and carries out the actions in order. Returns the
    /// verdict on the connection the event was about: `Err` for a
    /// rejection or refusal, or when persisting failed (the rest of the
    /// actions are then not carried out).
    fn step(self: &Rc<Self>, event: Event) -> Result<(), Refusal> {
        let actions = self.machine.borrow_mut().step(event);
        let mut verdict = Ok(());
        for action in actions {
            match self.carry_out(action) {
                Ok(()) => {}
                Err(Refusal::PersistFailed(persist_error)) => {
                    warn!("{persist_error}");
                    let _ = self.step(Event::PersistFailed {
                        reason: persist_error.clone(),
                    });
                    return Err(Refusal::PersistFailed(persist_error));
                }
                Err(refusal) => verdict = Err(refusal),
            }
        }
        self.refresh_current_mux();
        verdict
    }

    /// One action. `Err(Refusal::PersistFailed)` means persisting failed;
    /// any other `Err` is a refusal of the connection in question.
    fn carry_out(self: &Rc<Self>, action: Action) -> Result<(), Refusal> {
        match &action {
            Action::AcceptAuth { .. }
            | Action::RejectAuth { .. }
            | Action::Refuse { .. }
            | Action::RefuseMux { .. } => {}
            _ => info!("{action}"),
        }
        match action {
            Action::AcceptAuth { .. } | Action::OpenMux { .. } => {}
            Action::RejectAuth { reason, .. }
            | Action::Refuse { reason, .. }
            | Action::RefuseMux { reason, .. } => {
                return Err(Refusal::PhaseMachine(reason));
            }
            Action::Persist(record) => self.store.save(&record).map_err(Refusal::PersistFailed)?,
            Action::StartDeadline { after_ms } => {
                let ctrl = self.clone();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    ctrl.deadline_expired();
                });
            }
            Action::Admit { conn, phase } => {
                if let Some(c) = self.conns.borrow_mut().get_mut(&conn) {
                    c.admitted = Some(phase);
                }
            }
            Action::FetchKeys => {
                tokio::task::spawn_local(cdh::fetch_keys(self.clone()));
            }
            Action::Close { conn, reason } => self.close(conn, reason),
            Action::SignalUpgrade { conn, host_key } => {
                let mux = self.conns.borrow().get(&conn).and_then(|c| c.mux.clone());
                match mux {
                    Some(mux) => {
                        let line = host_key.emit(None);
                        tokio::task::spawn_local(async move {
                            if let Err(e) = mux.send_upgrade(&line).await {
                                warn!("conn {conn}: cannot send UPGRADE: {e}");
                            }
                        });
                    }
                    None => warn!("conn {conn}: no mux channel to send UPGRADE on"),
                }
            }
            Action::CloseAfterGrace { conn, reason } => {
                let grace = self.settings.upgrade_grace;
                let ctrl = self.clone();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(grace).await;
                    ctrl.close(conn, reason);
                });
            }
            Action::FailClosed { reason } => fail_closed(self.settings.deadline_action, &reason),
            Action::Note { .. } => {}
        }
        Ok(())
    }

    fn close(&self, conn: ConnId, reason: String) {
        if let Some(c) = self.conns.borrow().get(&conn) {
            c.closer.close(reason);
        }
    }

    /// Publishes the mux of the connection the machine calls current.
    fn refresh_current_mux(&self) {
        let current = match self.machine.borrow().state() {
            State::AttestationClaimed { owner, .. } => Some(owner.conn),
            State::Kubernetes { current, .. } => current.map(|admitted| admitted.conn),
            _ => None,
        };
        let found = current.and_then(|conn| {
            let conns = self.conns.borrow();
            let c = conns.get(&conn)?;
            Some((conn, c.admitted?, c.mux.clone()?))
        });
        self.current_mux.send_if_modified(|old| {
            let changed =
                old.as_ref().map(|(c, p, _)| (*c, *p)) != found.as_ref().map(|(c, p, _)| (*c, *p));
            if changed {
                *old = found;
            }
            changed
        });
    }
}

fn describe_method(method: &AuthMethod) -> String {
    match method {
        AuthMethod::None => "no key".into(),
        AuthMethod::PublicKey(key) => format!("key {}", key.fingerprint()),
    }
}
