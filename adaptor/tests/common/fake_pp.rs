//! A FAKE PEER POD for the adaptor's tests: an SSH server (russh) that
//! behaves like the forwarder of docs/protocol.md as seen from the WN, with
//! knobs to misbehave. It is not the forwarder (that is built on sunset in
//! forwarder/); it exists so the adaptor's two-phase driver can be tested
//! on its own.
//!
//! Attestation phase: an ephemeral host key; exactly one connection is
//! admitted (WN key when `init_data_wn_key` is set, else `none`). On its
//! mux channel the fake fetches `default/sshclient/publicKey` and
//! `default/pp-sid/privateKey` through the KBS tunnel with the KBS client
//! of pp-testdoubles (auth, attest, resource), sends `UPGRADE` and switches
//! to the Kubernetes phase: the fetched key as host key, only the fetched
//! WN key admitted, `INFO` answered, `KATAAGENT` streams echoed.

use pp_ssh_key::{PrivateKey, PublicKey};
use pp_tunnel::{MuxEvent, MuxHandle, MuxLimits, MuxVersion, Phase, Side};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// How the fake PP (mis)behaves.
#[derive(Clone, Default)]
pub struct FakePpOptions {
    /// The WN key from init-data (attestation auth); `none` auth when unset.
    pub init_data_wn_key: Option<PublicKey>,
    /// Announce this key in UPGRADE instead of the fetched one.
    pub upgrade_key_override: Option<PublicKey>,
    /// Report this attestation peer in INFO instead of the real one.
    pub info_peer_override: Option<SocketAddr>,
}

#[derive(Default)]
struct State {
    attestation_claimed: bool,
    /// (host key, WN key) once upgraded.
    kubernetes: Option<(PrivateKey, PublicKey)>,
    /// What INFO reports.
    attestation_seen: Option<(String, SocketAddr)>,
    log: Vec<String>,
}

/// A running fake PP; stops when dropped.
pub struct FakePp {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    options: FakePpOptions,
    ephemeral: PrivateKey,
    state: Arc<Mutex<State>>,
}

impl FakePp {
    pub async fn start(options: FakePpOptions) -> Self {
        Self::start_on("127.0.0.1:0", options).await
    }

    /// Starts on `address` (to bring a PP "back" on the same port).
    pub async fn start_on(address: &str, options: FakePpOptions) -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new(Shared {
            options,
            ephemeral: PrivateKey::from_seed(seed),
            state: state.clone(),
        });
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((socket, peer)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move { serve_ssh(shared, socket, peer).await });
            }
        });
        Self {
            address,
            state,
            task,
        }
    }

    /// What the fake did, one line per step.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Whether the fake reached its Kubernetes phase.
    pub fn upgraded(&self) -> bool {
        self.state.lock().unwrap().kubernetes.is_some()
    }
}

fn note(state: &Mutex<State>, line: String) {
    state.lock().unwrap().log.push(line);
}

fn russh_key(key: &PrivateKey) -> russh::keys::PrivateKey {
    russh::keys::PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        key.seed(),
    ))
}

async fn serve_ssh(shared: Arc<Shared>, socket: tokio::net::TcpStream, peer: SocketAddr) {
    let kubernetes = shared
        .state
        .lock()
        .unwrap()
        .kubernetes
        .as_ref()
        .map(|(host, wn)| (host.clone(), *wn));
    let (host_key, phase) = match &kubernetes {
        Some((host, _)) => (host.clone(), Phase::Kubernetes),
        None => (shared.ephemeral.clone(), Phase::Attestation),
    };
    let config = russh::server::Config {
        keys: vec![russh_key(&host_key)],
        auth_rejection_time: std::time::Duration::ZERO,
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        ..Default::default()
    };
    let handler = Connection {
        shared: shared.clone(),
        phase,
        kubernetes_wn_key: kubernetes.map(|(_, wn)| wn),
        peer,
        channels: HashMap::new(),
    };
    if let Ok(running) = russh::server::run_stream(Arc::new(config), socket, handler).await {
        let _ = running.await;
    }
}

struct Connection {
    shared: Arc<Shared>,
    phase: Phase,
    kubernetes_wn_key: Option<PublicKey>,
    peer: SocketAddr,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    /// The one-shot attestation admission.
    fn claim_attestation(&self) -> bool {
        let mut state = self.shared.state.lock().unwrap();
        if state.attestation_claimed {
            state.log.push(format!(
                "refused a second attestation connection from {}",
                self.peer
            ));
            return false;
        }
        state.attestation_claimed = true;
        state.attestation_seen = Some((self.shared.ephemeral.public().fingerprint(), self.peer));
        true
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        let allowed =
            self.phase == Phase::Attestation && self.shared.options.init_data_wn_key.is_none();
        Ok(if allowed && self.claim_attestation() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let presented = key
            .public_key
            .key_data()
            .ed25519()
            .and_then(|k| PublicKey::from_bytes(k.0).ok());
        let accepted = match self.phase {
            Phase::Attestation => {
                presented.is_some()
                    && presented == self.shared.options.init_data_wn_key
                    && self.claim_attestation()
            }
            Phase::Kubernetes => presented.is_some() && presented == self.kubernetes_wn_key,
        };
        Ok(if accepted {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // An old PP: only pp-mux-v1; a refused channel is gone.
        note(&self.shared.state, format!("subsystem {name} requested"));
        match self
            .channels
            .remove(&channel)
            .filter(|_| name == "pp-mux-v1")
        {
            Some(open) => {
                session.channel_success(channel)?;
                let (mux, events, driver) = pp_tunnel::start_with(
                    open.into_stream(),
                    Side::Pp(self.phase),
                    MuxVersion::V1,
                    MuxLimits::default(),
                );
                let shared = self.shared.clone();
                let phase = self.phase;
                tokio::spawn(async move {
                    tokio::select! {
                        _ = driver.run() => {}
                        () = serve_mux(shared, phase, mux, events) => {}
                    }
                });
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }
}

async fn serve_mux(
    shared: Arc<Shared>,
    phase: Phase,
    mux: MuxHandle,
    mut events: pp_tunnel::MuxEvents,
) {
    if phase == Phase::Attestation {
        let mux = mux.clone();
        let shared = shared.clone();
        tokio::spawn(async move { attest_and_upgrade(shared, mux).await });
    }
    while let Some(event) = events.recv().await {
        match event {
            MuxEvent::InfoRequest => {
                let info = {
                    let state = shared.state.lock().unwrap();
                    match (phase, &state.attestation_seen) {
                        (Phase::Kubernetes, Some((fingerprint, peer))) => {
                            let peer = shared.options.info_peer_override.unwrap_or(*peer);
                            format!(
                                "phase=kubernetes\nattestation-hostkey={fingerprint}\nattestation-peer={peer}"
                            )
                        }
                        _ => "phase=attestation".to_owned(),
                    }
                };
                let _ = mux.send_info(&info).await;
            }
            MuxEvent::Incoming(incoming)
                if incoming.name == "KATAAGENT" && phase == Phase::Kubernetes =>
            {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = tokio::io::split(incoming.stream);
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut writer).await;
                });
            }
            MuxEvent::Incoming(incoming) => incoming.stream.reset("no such tunnel in this phase"),
            _ => {}
        }
    }
}

/// The CDH side of the attestation phase: fetch both keys through the KBS
/// tunnel, then announce the upgrade.
async fn attest_and_upgrade(shared: Arc<Shared>, mux: MuxHandle) {
    let kbs = kbs_tunnel_listener(mux.clone()).await;
    let url = pp_testdoubles::kbs_url::KbsUrl::parse(&format!("http://{kbs}")).unwrap();
    let fetch = |path: &str| {
        let resource = pp_testdoubles::resource_path::ResourcePath::parse(path).unwrap();
        async move { pp_testdoubles::kbs_client::fetch_resource(url, None, &resource).await }
    };
    let wn = match fetch("default/sshclient/publicKey").await {
        Ok(bytes) => PublicKey::parse(&String::from_utf8_lossy(&bytes)).unwrap(),
        Err(error) => {
            return note(
                &shared.state,
                format!("fetching the WN key failed: {error}"),
            );
        }
    };
    let host = match fetch("default/pp-sid/privateKey").await {
        Ok(bytes) => PrivateKey::parse(&String::from_utf8_lossy(&bytes)).unwrap(),
        Err(error) => {
            return note(
                &shared.state,
                format!("fetching the PP key failed: {error}"),
            );
        }
    };
    note(
        &shared.state,
        format!(
            "fetched both keys; host key will be {}",
            host.public().fingerprint()
        ),
    );
    let announced = shared.options.upgrade_key_override.unwrap_or(host.public());
    shared.state.lock().unwrap().kubernetes = Some((host, wn));
    let _ = mux.send_upgrade(&announced.emit(None)).await;
}

/// A loopback listener whose connections become `OPEN(KBS)` streams, as
/// the forwarder's inbound `BOTH_PHASES:KBS:8080` tunnel does.
async fn kbs_tunnel_listener(mux: MuxHandle) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let Ok(stream) = mux.open("KBS").await else {
                return;
            };
            tokio::spawn(pp_tunnel::pump(stream, socket));
        }
    });
    address
}
