//! Local listeners on the WN for a PP's tunnels (tags such as
//! `KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150`): each accepted connection
//! becomes a mux stream `OPEN(NAME)` to the PP. A datagram tunnel
//! (`udp:HOST:PORT`, `unixgram:PATH`) gets one mux flow `OPEN_FLOW(NAME)`
//! per client address instead (`pp_tunnel::datagram`), opened on the
//! client's first datagram under the same phase rule, idle flows reset,
//! counted in the tunnel's [`TunnelStats::datagrams`].
//!
//! Contract: [`LocalTunnels::bind`] binds every listener at once (so a bad
//! address fails the PP's start, and port 0 gets its real port, reported by
//! [`LocalTunnels::addresses`]). An accepted connection waits at most
//! `wait` for a current connection whose phase the tag allows (published in
//! the [`MuxSlot`] by the PP's driver), then is carried to the PP; if none
//! comes it is closed with a log line. Dropping [`LocalTunnels`] (or the
//! task running it) closes the listeners and every carried connection. A
//! unix socket file nobody listens on (left by a killed adaptor) is
//! replaced; a live one is not.

use crate::sid::Sid;
use crate::tunnel_stats::{Counted, TunnelStats};
use pp_tag::{ConnectionPhase, Tag, Target, TunnelSet};
use pp_tunnel::MuxHandle;
use pp_tunnel::datagram::{DatagramSocket, RelaySettings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The PP's current mux connection, if any, and its phase.
#[derive(Clone, Debug)]
pub struct ActiveMux {
    pub phase: ConnectionPhase,
    pub handle: MuxHandle,
}

/// Published by the PP driver, watched by the listeners.
pub type MuxSlot = watch::Receiver<Option<ActiveMux>>;

/// Where a listener is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddress {
    Tcp(SocketAddr),
    Unix(String),
    Udp(SocketAddr),
    UnixDatagram(String),
}

impl std::fmt::Display for LocalAddress {
    /// `IP:PORT`, `unix:PATH`, `udp:IP:PORT` or `unixgram:PATH` (the forms
    /// tunnel tags use).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(address) => write!(f, "{address}"),
            Self::Unix(path) => write!(f, "unix:{path}"),
            Self::Udp(address) => write!(f, "udp:{address}"),
            Self::UnixDatagram(path) => write!(f, "unixgram:{path}"),
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
    Datagram(DatagramSocket),
}

struct BoundTunnel {
    tag: Tag,
    listener: Listener,
    stats: Arc<TunnelStats>,
}

/// The bound listeners of one PP.
pub struct LocalTunnels {
    sid: Sid,
    bound: Vec<BoundTunnel>,
    addresses: Vec<(String, LocalAddress)>,
}

/// One bound tunnel as callers see it: name, address, live counters.
#[derive(Clone, Debug)]
pub struct TunnelInfo {
    pub name: String,
    pub address: LocalAddress,
    pub stats: Arc<TunnelStats>,
}

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("pp {sid}: cannot listen for tunnel {tag}: {source}")]
pub struct BindError {
    pub sid: Sid,
    pub tag: String,
    pub source: std::io::Error,
}

impl LocalTunnels {
    /// Binds one listener per tag of `tunnels`.
    pub async fn bind(sid: &Sid, tunnels: &TunnelSet) -> Result<Self, BindError> {
        let mut bound = Vec::new();
        let mut addresses = Vec::new();
        for tag in tunnels.iter() {
            let bind_error = |source| BindError {
                sid: sid.clone(),
                tag: tag.emit(),
                source,
            };
            let (listener, address) = match tag.target() {
                Target::Tcp { ip, port } => {
                    let listener = TcpListener::bind((*ip, *port)).await.map_err(bind_error)?;
                    let address = listener.local_addr().map_err(bind_error)?;
                    (Listener::Tcp(listener), LocalAddress::Tcp(address))
                }
                Target::Unix { path } => (
                    Listener::Unix({
                        remove_stale_socket(path);
                        UnixListener::bind(path).map_err(bind_error)?
                    }),
                    LocalAddress::Unix(path.clone()),
                ),
                Target::Udp { ip, port } => {
                    let socket = DatagramSocket::bind_udp((*ip, *port).into())
                        .await
                        .map_err(bind_error)?;
                    let address = socket.local_udp_addr().ok_or_else(|| {
                        bind_error(std::io::Error::other("no local address after bind"))
                    })?;
                    (Listener::Datagram(socket), LocalAddress::Udp(address))
                }
                Target::UnixDatagram { path } => (
                    Listener::Datagram(DatagramSocket::bind_unix(path).map_err(bind_error)?),
                    LocalAddress::UnixDatagram(path.clone()),
                ),
                Target::NetnsTcp { .. } | Target::NetnsUdp { .. } => {
                    return Err(bind_error(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "network namespaces are not supported on the worker node",
                    )));
                }
            };
            tracing::info!(
                "pp {sid}: listening on {address:?} for tunnel {}",
                tag.emit()
            );
            addresses.push((tag.name().to_owned(), address));
            bound.push(BoundTunnel {
                tag: tag.clone(),
                listener,
                stats: Arc::default(),
            });
        }
        Ok(Self {
            sid: sid.clone(),
            bound,
            addresses,
        })
    }

    /// Tunnel name → where its listener is bound.
    pub fn addresses(&self) -> &[(String, LocalAddress)] {
        &self.addresses
    }

    /// Every bound tunnel with its counters.
    pub fn infos(&self) -> Vec<TunnelInfo> {
        self.bound
            .iter()
            .zip(&self.addresses)
            .map(|(tunnel, (name, address))| TunnelInfo {
                name: name.clone(),
                address: address.clone(),
                stats: tunnel.stats.clone(),
            })
            .collect()
    }

    /// Accepts and carries connections until dropped; never returns (also
    /// when there are no tunnels), so it can run beside the PP's driver.
    /// Datagram flows idle for `udp_idle` are reset.
    pub async fn run(self, slot: MuxSlot, wait: Duration, udp_idle: Duration) {
        let mut listeners = JoinSet::new();
        for tunnel in self.bound {
            match tunnel.listener {
                Listener::Datagram(socket) => listeners.spawn(serve_datagrams(
                    self.sid.clone(),
                    tunnel.tag,
                    socket,
                    tunnel.stats,
                    slot.clone(),
                    (wait, udp_idle),
                )),
                listener => listeners.spawn(serve_listener(
                    self.sid.clone(),
                    BoundTunnel { listener, ..tunnel },
                    slot.clone(),
                    wait,
                )),
            };
        }
        while listeners.join_next().await.is_some() {}
        std::future::pending::<()>().await;
    }
}

async fn serve_listener(sid: Sid, tunnel: BoundTunnel, slot: MuxSlot, wait: Duration) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&tunnel.listener) => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok(Accepted::Tcp(socket)) => {
                connections.spawn(carry(
                    sid.clone(),
                    tunnel.tag.clone(),
                    Counted {
                        socket,
                        stats: tunnel.stats.clone(),
                    },
                    slot.clone(),
                    wait,
                ));
            }
            Ok(Accepted::Unix(socket)) => {
                connections.spawn(carry(
                    sid.clone(),
                    tunnel.tag.clone(),
                    Counted {
                        socket,
                        stats: tunnel.stats.clone(),
                    },
                    slot.clone(),
                    wait,
                ));
            }
            Err(error) => {
                tracing::warn!(
                    "pp {sid}: accepting on tunnel {} failed: {error}",
                    tunnel.tag.name()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Removes a socket file at `path` that nobody listens on any more (left
/// by a killed adaptor), so the listener can come back on the same path.
/// Anything else (a live socket, a regular file) is left for bind to fail on.
fn remove_stale_socket(path: &str) {
    use std::os::unix::fs::FileTypeExt as _;
    let is_socket =
        std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Relays a datagram tunnel's clients; `(wait, idle)`: how long a new
/// client's flow waits for an allowed connection, and the flow idle timeout.
async fn serve_datagrams(
    sid: Sid,
    tag: Tag,
    socket: DatagramSocket,
    stats: Arc<TunnelStats>,
    slot: MuxSlot,
    (wait, idle): (Duration, Duration),
) {
    let opener = || {
        let (sid, tag, slot) = (sid.clone(), tag.clone(), slot.clone());
        async move {
            let active = wait_for_allowed(&sid, &tag, slot, wait).await?;
            match active.handle.open_flow(tag.name()).await {
                Ok(flow) => {
                    tracing::debug!("pp {sid}: tunnel {} flow {} opened", tag.name(), flow.id());
                    Some(flow)
                }
                Err(error) => {
                    tracing::warn!(
                        "pp {sid}: tunnel {}: cannot open a flow, datagrams dropped: {error}",
                        tag.name()
                    );
                    None
                }
            }
        }
    };
    let settings = RelaySettings {
        idle,
        ..RelaySettings::default()
    };
    pp_tunnel::datagram::serve_listener(socket, opener, settings, stats.datagrams.clone()).await;
}

/// Waits at most `wait` for a current connection whose phase `tag` allows.
async fn wait_for_allowed(
    sid: &Sid,
    tag: &Tag,
    mut slot: MuxSlot,
    wait: Duration,
) -> Option<ActiveMux> {
    let allowed = |current: &Option<ActiveMux>| {
        current
            .as_ref()
            .is_some_and(|mux| tag.phase().allows(mux.phase))
    };
    match tokio::time::timeout(wait, slot.wait_for(allowed)).await {
        Ok(Ok(current)) => current.clone(),
        Ok(Err(_)) => None,
        Err(_) => {
            tracing::warn!(
                "pp {sid}: tunnel {}: no connection in an allowed phase ({}) within {} s",
                tag.name(),
                tag.phase().as_str(),
                wait.as_secs()
            );
            None
        }
    }
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener
            .accept()
            .await
            .map(|(socket, _)| Accepted::Tcp(socket)),
        Listener::Unix(listener) => listener
            .accept()
            .await
            .map(|(socket, _)| Accepted::Unix(socket)),
        // Served by serve_datagrams, never accepted from.
        Listener::Datagram(_) => std::future::pending().await,
    }
}

/// Waits for an allowed connection, opens the stream and copies both ways.
async fn carry<S>(sid: Sid, tag: Tag, socket: Counted<S>, slot: MuxSlot, wait: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(active) = wait_for_allowed(&sid, &tag, slot, wait).await else {
        return;
    };
    match active.handle.open(tag.name()).await {
        Ok(stream) => {
            let _open = socket.stats.open_stream();
            tracing::info!(
                "pp {sid}: tunnel {} opened (stream {})",
                tag.name(),
                stream.id()
            );
            if let Err(error) = pp_tunnel::pump(stream, socket).await {
                tracing::info!("pp {sid}: tunnel {} stream ended: {error}", tag.name());
            }
        }
        Err(error) => tracing::warn!(
            "pp {sid}: tunnel {}: cannot open a stream: {error}",
            tag.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_local_tunnels;

    #[tokio::test]
    async fn a_unix_socket_left_by_a_killed_adaptor_is_replaced_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let tags = parse_local_tunnels(&[format!(
            "KUBERNETES_PHASE:KATAAGENT:unix:{}",
            path.display()
        )])
        .unwrap();
        let sid = Sid::parse("s").unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "the dead listener's file stays behind");
        let tunnels = LocalTunnels::bind(&sid, &tags).await.unwrap();
        assert!(
            LocalTunnels::bind(&sid, &tags).await.is_err(),
            "a live socket is kept"
        );
        drop(tunnels);
    }
}
