//! One SSH connection to a PP's forwarder, as far as the mux channel: TCP
//! connect, handshake with the host key policy, authentication, one
//! `session` channel with subsystem `pp-mux-v2` or `pp-mux-v1`
//! (docs/protocol.md 1.2).
//!
//! Contract: [`connect_mux`] either returns a [`MuxConnection`] whose host
//! key was accepted by [`crate::host_key_policy`] (the verdict says which
//! phase the connection is in) or a [`ConnectError`] saying which step
//! failed and why. The mux subsystem is asked for as `pp-mux-v2` first;
//! a PP that refuses it (one from before datagram flows) is asked for
//! `pp-mux-v1` on the same channel, or on a fresh one if that fails too,
//! and the connection runs without datagram tunnels
//! ([`MuxConnection::version`]). TCP connect and the rest of the handshake each have a
//! deadline, so a silent PP cannot hang the caller. Authentication: the WN
//! key in the Kubernetes phase; in the attestation phase the WN key when
//! the PP's init-data carries it, else `none`. SSH keepalives are sent on
//! every connection (interval and count from [`SshSettings`]).

use crate::host_key_policy::{Expectation, HostKeyVerdict, PresentedKey, judge_host_key};
use pp_ssh_key::{PrivateKey, PublicKey};
use pp_tunnel::MuxVersion;
use russh::client::{self, AuthResult, Handle, Msg};
use russh::keys::PrivateKeyWithHashAlg;
use russh::{Channel, ChannelMsg, ChannelStream};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// The user name the WN sends (the PP ignores it).
pub const SSH_USER: &str = "peerpod";

/// Deadlines and keepalives of one connection.
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// Limit for the TCP connect.
    pub connect_timeout: Duration,
    /// Limit for everything from TCP established to the mux channel open.
    pub handshake_timeout: Duration,
    /// Keepalive probe interval (protocol: 15 s).
    pub keepalive_interval: Duration,
    /// Missed keepalive answers before the connection is dropped (protocol: 3).
    pub keepalive_max: usize,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
        }
    }
}

/// How the WN authenticates.
#[derive(Clone)]
pub struct AuthPlan {
    /// The WN key pair (shared by all PPs).
    pub wn_key: Arc<russh::keys::PrivateKey>,
    /// Whether the PP's init-data carries the WN key (then the attestation
    /// phase uses it too; else `none`).
    pub attestation_uses_wn_key: bool,
}

impl AuthPlan {
    pub fn new(wn_key: &PrivateKey, attestation_uses_wn_key: bool) -> Self {
        let keypair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(wn_key.seed());
        Self {
            wn_key: Arc::new(russh::keys::PrivateKey::from(keypair)),
            attestation_uses_wn_key,
        }
    }
}

/// An established connection with its mux channel.
pub struct MuxConnection {
    /// The SSH connection; dropping it (or `disconnect`) ends the connection.
    pub handle: Handle<HostKeyGate>,
    /// The mux channel as a byte stream.
    pub stream: ChannelStream<Msg>,
    /// The mux version the PP accepted (V1: no datagram flows).
    pub version: MuxVersion,
    /// The accepted host key verdict: which phase this connection is in.
    pub verdict: HostKeyVerdict,
    /// The adaptor's own address of the TCP connection.
    pub local_addr: SocketAddr,
}

/// Which step of connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect to {address} failed: {reason}")]
    Tcp { address: String, reason: String },
    #[error("{step} with {address} did not finish within {seconds} s")]
    Timeout {
        address: String,
        step: &'static str,
        seconds: u64,
    },
    #[error("host key refused: {reason}")]
    HostKeyRefused { reason: String },
    #[error("SSH {step} failed: {reason}")]
    Ssh { step: &'static str, reason: String },
    #[error("the PP refused authentication with {method}; {hint}")]
    AuthRefused {
        method: &'static str,
        hint: &'static str,
    },
    #[error("the PP refused both the pp-mux-v2 and the pp-mux-v1 subsystem")]
    SubsystemRefused,
}

/// The russh client handler: applies the host key policy and keeps the
/// verdict for the caller.
pub struct HostKeyGate {
    pp_key: PublicKey,
    expectation: Expectation,
    verdict: Arc<Mutex<Option<HostKeyVerdict>>>,
}

impl client::Handler for HostKeyGate {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = presented_key(server_public_key);
        let verdict = judge_host_key(&presented, &self.pp_key, self.expectation);
        let accepts = verdict.accepts();
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(accepts)
    }
}

fn presented_key(key: &russh::keys::PublicKeyOrCertificate) -> PresentedKey {
    match key {
        russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
            match key.key_data().ed25519() {
                Some(ed25519) => match PublicKey::from_bytes(ed25519.0) {
                    Ok(key) => PresentedKey::Ed25519(key),
                    Err(_) => PresentedKey::Other {
                        algorithm: "ssh-ed25519 (invalid point)".into(),
                    },
                },
                None => PresentedKey::Other {
                    algorithm: key.algorithm().to_string(),
                },
            }
        }
        russh::keys::PublicKeyOrCertificate::Certificate(_) => PresentedKey::Other {
            algorithm: "an OpenSSH certificate".into(),
        },
    }
}

/// Bytes read from the SSH socket at a time: two of the forwarder's
/// largest packets (32 KiB of data each).
const SSH_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Connects to `address` and opens the mux channel.
pub async fn connect_mux(
    address: &str,
    pp_key: PublicKey,
    expectation: Expectation,
    auth: &AuthPlan,
    settings: &SshSettings,
) -> Result<MuxConnection, ConnectError> {
    let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::Timeout {
            address: address.to_owned(),
            step: "TCP connect",
            seconds: settings.connect_timeout.as_secs(),
        })?
        .map_err(|error| ConnectError::Tcp {
            address: address.to_owned(),
            reason: error.to_string(),
        })?;
    let local_addr = tcp.local_addr().map_err(|error| ConnectError::Tcp {
        address: address.to_owned(),
        reason: error.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    // russh reads each packet's length and then its body, each with a
    // read of its own; a buffer in front turns that into one system call
    // for several packets (docs/decisions/tunnel-speed.md, fourth round).
    let tcp = tokio::io::BufReader::with_capacity(SSH_READ_BUFFER_BYTES, tcp);
    let verdict_slot = Arc::new(Mutex::new(None));
    let gate = HostKeyGate {
        pp_key,
        expectation,
        verdict: verdict_slot.clone(),
    };
    let config = Arc::new(client::Config {
        keepalive_interval: Some(settings.keepalive_interval),
        keepalive_max: settings.keepalive_max,
        // The forwarder's host keys are always Ed25519; offer nothing else.
        preferred: russh::Preferred {
            key: std::borrow::Cow::Borrowed(&[russh::keys::Algorithm::Ed25519]),
            ..russh::Preferred::DEFAULT
        },
        // What the PP may send before it waits for a window adjustment, and
        // its largest data packet: as OpenSSH (russh's defaults, stated so
        // they cannot shrink unnoticed; docs/decisions/tunnel-speed.md).
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        ..Default::default()
    });
    let handshake = async {
        let handle = client::connect_stream(config, tcp, gate)
            .await
            .map_err(
                |error| match verdict_slot.lock().ok().and_then(|slot| slot.clone()) {
                    Some(HostKeyVerdict::Refused { reason }) => {
                        ConnectError::HostKeyRefused { reason }
                    }
                    _ => ConnectError::Ssh {
                        step: "handshake",
                        reason: error.to_string(),
                    },
                },
            )?;
        let verdict = verdict_slot
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .ok_or(ConnectError::Ssh {
                step: "handshake",
                reason: "the server's host key was never checked".into(),
            })?;
        let mut handle = handle;
        authenticate(&mut handle, &verdict, auth).await?;
        let (stream, version) = open_mux(&handle).await?;
        Ok(MuxConnection {
            handle,
            stream,
            version,
            verdict,
            local_addr,
        })
    };
    tokio::time::timeout(settings.handshake_timeout, handshake)
        .await
        .map_err(|_| ConnectError::Timeout {
            address: address.to_owned(),
            step: "SSH handshake",
            seconds: settings.handshake_timeout.as_secs(),
        })?
}

async fn authenticate(
    handle: &mut Handle<HostKeyGate>,
    verdict: &HostKeyVerdict,
    auth: &AuthPlan,
) -> Result<(), ConnectError> {
    let use_wn_key =
        matches!(verdict, HostKeyVerdict::Kubernetes { .. }) || auth.attestation_uses_wn_key;
    let ssh_error = |error: russh::Error| ConnectError::Ssh {
        step: "authentication",
        reason: error.to_string(),
    };
    let (result, method, hint) = if use_wn_key {
        let key = PrivateKeyWithHashAlg::new(auth.wn_key.clone(), None);
        let result = handle
            .authenticate_publickey(SSH_USER, key)
            .await
            .map_err(ssh_error)?;
        (
            result,
            "the WN key",
            "check that the PP's init-data (attestation) or Trustee's sshclient/publicKey (Kubernetes) holds the WN public key, and that no other client used the PP's one attestation connection",
        )
    } else {
        let result = handle
            .authenticate_none(SSH_USER)
            .await
            .map_err(ssh_error)?;
        (
            result,
            "none",
            "the PP's init-data may carry a WN key (set init_data_has_wn_key), or another client already used the PP's one attestation connection",
        )
    };
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure { .. } => Err(ConnectError::AuthRefused { method, hint }),
    }
}

/// The mux channel: `pp-mux-v2`, else (an old PP) `pp-mux-v1` on the same
/// channel, else `pp-mux-v1` on a fresh channel (the refused one closed).
async fn open_mux(
    handle: &Handle<HostKeyGate>,
) -> Result<(ChannelStream<Msg>, MuxVersion), ConnectError> {
    let mut channel = open_session(handle).await?;
    if ask(&mut channel, MuxVersion::V2).await? {
        return Ok((channel.into_stream(), MuxVersion::V2));
    }
    if matches!(ask(&mut channel, MuxVersion::V1).await, Ok(true)) {
        return Ok((channel.into_stream(), MuxVersion::V1));
    }
    // Best effort: a PP that dropped the refused channel may not answer.
    let _ = channel.close().await;
    let mut channel = open_session(handle).await?;
    if ask(&mut channel, MuxVersion::V1).await? {
        return Ok((channel.into_stream(), MuxVersion::V1));
    }
    Err(ConnectError::SubsystemRefused)
}

async fn open_session(handle: &Handle<HostKeyGate>) -> Result<Channel<Msg>, ConnectError> {
    handle
        .channel_open_session()
        .await
        .map_err(|error| ConnectError::Ssh {
            step: "channel open",
            reason: error.to_string(),
        })
}

/// Asks for the mux subsystem of `version` on `channel`: whether the PP
/// agreed.
async fn ask(channel: &mut Channel<Msg>, version: MuxVersion) -> Result<bool, ConnectError> {
    let failed = |reason: String| ConnectError::Ssh {
        step: "subsystem request",
        reason,
    };
    channel
        .request_subsystem(true, version.subsystem())
        .await
        .map_err(|error| failed(error.to_string()))?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Ok(true),
            Some(ChannelMsg::Failure) => return Ok(false),
            Some(ChannelMsg::WindowAdjusted { .. }) => continue,
            Some(other) => {
                return Err(failed(format!(
                    "unexpected channel message before the reply: {other:?}"
                )));
            }
            None => return Err(failed("the channel closed before the PP answered".into())),
        }
    }
}
