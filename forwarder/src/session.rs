//! One SSH connection: runs sunset over the TCP socket and answers its
//! events with the controller's decisions.
//!
//! What this file owns: the order of things around authentication (hold the
//! write gate, allow, learn from the very next event whether it was a real
//! login, ask the controller to admit it, then release or drop), the login
//! grace deadlines (a short one for the SSH version and key exchange, the
//! login grace for authentication), and which channel requests are
//! accepted (`pp-mux-v2` or `pp-mux-v1` subsystem, `tunnel NAME` exec;
//! a refused subsystem request leaves the channel open for another). It decides nothing
//! about phases itself: the machine answers whether a connection may have
//! its mux channel.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, info, warn};
use pp_forwarder_core::phase::AuthMethod;
use pp_ssh_key::PublicKey;
use pp_tunnel::MuxVersion;
use sunset::{ChanHandle, PubKey, ServEvent};
use sunset_async::{ProgressHolder, SSHServer};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::channels::{self, ChannelJob};
use crate::controller::{ConnId, Controller};
use crate::end_reason::EndReason;
use crate::gate::{Gate, GatedWriter};
use crate::refusal::Refusal;

/// The exec command prefix of a raw tunnel channel (docs/protocol.md 1.2).
const RAW_TUNNEL_EXEC: &str = "tunnel ";
/// Receive window each accepted channel announces: the WN may send this
/// much before it waits for a window adjustment (sunset's default of 1000
/// bytes stalls it after every packet). It costs no memory here: sunset
/// reads one packet at a time, the rest waits in the kernel's socket buffer.
const CHANNEL_WINDOW: u32 = 2 * 1024 * 1024;
/// Largest data packet each accepted channel accepts (OpenSSH's default).
const CHANNEL_MAX_PACKET: u32 = 32 * 1024;
/// sunset-async reads the socket 1024 bytes at a time; a buffer in front
/// of it turns that into one system call per half packet or so.
const SOCKET_READ_BYTES: usize = 16 * 1024;

/// The time limits of a connection before it is admitted, both counted
/// from the TCP accept.
#[derive(Clone, Copy, Debug)]
pub struct Graces {
    /// To send the SSH version and finish key exchange (a client that does
    /// not even say hello holds a pre-auth slot only this long).
    pub handshake: Duration,
    /// To authenticate and be admitted.
    pub login: Duration,
}

/// What the event loop tells the connection's deadlines about.
enum Progress {
    KeyExchangeDone,
    Admitted,
}

/// Serves one accepted TCP connection until it ends. `admitted` is called
/// once the connection is authenticated and admitted (pre-auth accounting).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    ctrl: Rc<Controller>,
    graces: Graces,
    admitted: impl FnOnce(),
) -> EndReason {
    let _ = stream.set_nodelay(true);
    let (rsock, wsock) = stream.into_split();
    let mut rsock = BufReader::with_capacity(SOCKET_READ_BYTES, rsock);
    let gate = Rc::new(Gate::default());
    let mut wsock = GatedWriter::new(wsock, gate.clone());
    let server = SSHServer::new_owned();
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let authed = RefCell::new(false);
    // Set by the first authentication request, which comes only after the
    // version exchange and the key exchange.
    let kex_done = Cell::new(false);
    let mut admitted = Some(admitted);
    let mut on_progress = |step: Progress| match step {
        Progress::KeyExchangeDone => kex_done.set(true),
        Progress::Admitted => {
            *authed.borrow_mut() = true;
            if let Some(f) = admitted.take() {
                f();
            }
        }
    };
    let closer = ctrl.closer(conn);

    let events = handle_events(&server, conn, peer, &ctrl, &gate, jobs_tx, &mut on_progress);
    let channel_work = channels::run(&server, conn, &ctrl, jobs_rx);
    let grace = async {
        tokio::time::sleep(graces.handshake).await;
        if !kex_done.get() && !*authed.borrow() {
            return EndReason::HandshakeGraceExpired(graces.handshake);
        }
        tokio::time::sleep(graces.login.saturating_sub(graces.handshake)).await;
        if !*authed.borrow() {
            return EndReason::LoginGraceExpired(graces.login);
        }
        std::future::pending().await
    };
    tokio::select! {
        r = server.run_tokio(&mut rsock, &mut wsock) => match r {
            Ok(()) => EndReason::ClientClosed,
            Err(e) => EndReason::Transport(e.to_string()),
        },
        reason = events => reason,
        reason = channel_work => EndReason::Channel(reason),
        reason = grace => reason,
        reason = closer.closed() => EndReason::Closed(reason),
    }
}

/// The event loop: answers every sunset event. Returns why the connection
/// must end (the caller then drops it).
async fn handle_events(
    server: &SSHServer<'_>,
    conn: ConnId,
    peer: SocketAddr,
    ctrl: &Rc<Controller>,
    gate: &Gate,
    jobs: mpsc::UnboundedSender<ChannelJob>,
    on_progress: &mut dyn FnMut(Progress),
) -> EndReason {
    let mut opened: HashMap<u32, ChanHandle> = HashMap::new();
    let mut username = String::new();
    // The method last allowed; the Authenticated event that follows is
    // about it.
    let mut allowed: Option<AuthMethod> = None;
    loop {
        let mut holder = ProgressHolder::new();
        let event = match server.progress(&mut holder).await {
            Ok(event) => event,
            Err(e) => return EndReason::Protocol(e.to_string()),
        };
        // After an allow() the gate is held. The very next event tells
        // whether that was a real login (Authenticated) or only a
        // public-key query; see gate.rs.
        if gate.is_held() && !matches!(event, ServEvent::Authenticated) {
            gate.release();
        }
        if matches!(
            event,
            ServEvent::FirstAuth(_) | ServEvent::PubkeyAuth(_) | ServEvent::PasswordAuth(_)
        ) {
            on_progress(Progress::KeyExchangeDone);
        }
        let outcome: Result<(), String> = match event {
            ServEvent::Hostkeys(h) => {
                let key = ctrl.host_key_for(conn);
                h.hostkeys(&[&key])
                    .map_err(|e| format!("cannot offer the host key: {e}"))
            }
            ServEvent::FirstAuth(mut a) => {
                username = a.username().unwrap_or("?").to_string();
                match ctrl.offer_auth(conn, peer, &username, AuthMethod::None) {
                    Ok(()) => {
                        allowed = Some(AuthMethod::None);
                        gate.hold();
                        a.allow().map_err(|e| e.to_string())
                    }
                    Err(_) => {
                        // Not an error: the client learns which methods exist
                        // and goes on with publickey.
                        let _ = a.set_auth_methods(false, true);
                        Ok(())
                    }
                }
            }
            ServEvent::PubkeyAuth(a) => {
                let offered = match a.pubkey() {
                    Ok(PubKey::Ed25519(k)) => PublicKey::from_bytes(k.key.0).ok(),
                    _ => None,
                };
                let decision = match offered {
                    Some(key) => ctrl
                        .offer_auth(conn, peer, &username, AuthMethod::PublicKey(key))
                        .ok()
                        .map(|()| key),
                    None => {
                        info!("conn {conn} from {peer}: refused a key that is not Ed25519");
                        None
                    }
                };
                match decision {
                    Some(key) => {
                        allowed = Some(AuthMethod::PublicKey(key));
                        gate.hold();
                        a.allow().map_err(|e| e.to_string())
                    }
                    // The controller (or the branch above) logged why.
                    None => a.reject().map_err(|e| e.to_string()),
                }
            }
            ServEvent::PasswordAuth(a) => {
                info!("conn {conn} from {peer}: password authentication refused: not offered");
                a.reject().map_err(|e| e.to_string())
            }
            ServEvent::Authenticated => match allowed
                .take()
                .ok_or(Refusal::NoAllowedMethod)
                .and_then(|method| ctrl.authenticated(conn, peer, method))
            {
                Ok(()) => {
                    on_progress(Progress::Admitted);
                    gate.release();
                    Ok(())
                }
                // The gate is still held: the success message never leaves.
                Err(reason) => return EndReason::Refused(reason),
            },
            ServEvent::OpenSession(mut a) => match a
                .set_recv_window(CHANNEL_WINDOW, CHANNEL_MAX_PACKET)
                .and_then(|()| a.accept())
            {
                Ok(handle) => {
                    opened.insert(handle.num().0, handle);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            ServEvent::SessionSubsystem(a) => {
                let num = a.channel().0;
                let name = a.command().unwrap_or("").to_string();
                let handle = opened.remove(&num);
                let version = MuxVersion::from_subsystem(&name);
                let decision = match (&handle, version) {
                    (None, _) => Err("no such channel".to_string()),
                    (Some(_), Some(version)) => ctrl
                        .mux_requested(conn)
                        .map(|()| version)
                        .map_err(|r| r.to_string()),
                    (Some(_), None) => Err("unknown subsystem".to_string()),
                };
                match (decision, handle) {
                    (Ok(version), Some(handle)) => {
                        info!("conn {conn}: mux channel opened ({})", version.subsystem());
                        a.succeed()
                            .map_err(|e| e.to_string())
                            .and_then(|()| send_job(&jobs, ChannelJob::Mux(handle, version)))
                    }
                    (decision, other) => {
                        if let Some(h) = other {
                            opened.insert(num, h);
                        }
                        let why = decision.err().unwrap_or_default();
                        info!("conn {conn}: subsystem {name:?} refused: {why}");
                        a.fail().map_err(|e| e.to_string())
                    }
                }
            }
            ServEvent::SessionExec(a) => {
                let num = a.channel().0;
                let command = a.command().unwrap_or("").to_string();
                let wanted = command.strip_prefix(RAW_TUNNEL_EXEC).map(str::trim);
                let decision = match wanted {
                    Some(name) => ctrl.outbound_for(conn, name).map_err(|r| r.to_string()),
                    None => Err(format!(
                        "unknown command {command:?}; expected \"tunnel NAME\""
                    )),
                };
                match (decision, opened.remove(&num)) {
                    (Ok(target), Some(handle)) => {
                        info!("conn {conn}: raw tunnel {command:?} opened");
                        a.succeed()
                            .map_err(|e| e.to_string())
                            .and_then(|()| send_job(&jobs, ChannelJob::Raw(handle, target)))
                    }
                    (decision, handle) => {
                        if let Some(h) = handle {
                            opened.insert(num, h);
                        }
                        let why = decision.err().unwrap_or_else(|| "no such channel".into());
                        info!("conn {conn}: exec refused: {why}");
                        a.fail().map_err(|e| e.to_string())
                    }
                }
            }
            ServEvent::SessionShell(a) => {
                info!("conn {conn}: shell refused: this is not a shell server");
                a.fail().map_err(|e| e.to_string())
            }
            ServEvent::SessionPty(a) => a.fail().map_err(|e| e.to_string()),
            ServEvent::SessionEnv(a) => a.fail().map_err(|e| e.to_string()),
            ServEvent::Defunct => return EndReason::SessionEnded,
            ServEvent::PollAgain => Ok(()),
        };
        if let Err(e) = outcome {
            return EndReason::Session(e);
        }
        debug!("conn {conn}: event handled");
    }
}

fn send_job(jobs: &mpsc::UnboundedSender<ChannelJob>, job: ChannelJob) -> Result<(), String> {
    jobs.send(job)
        .map_err(|_| "the channel worker is gone".to_string())
}

/// Logs the end of a connection, once.
pub fn log_end(conn: ConnId, peer: SocketAddr, reason: &EndReason) {
    if reason.is_refusal() {
        warn!("conn {conn} from {peer}: {reason}");
    } else {
        info!("conn {conn} from {peer}: closed: {reason}");
    }
}
