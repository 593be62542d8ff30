//! The sockets of the datagram relay: [`DatagramSocket`], a bound listener
//! (UDP or unix datagram) that learns each client's address, and
//! [`ConnectedDatagram`], a socket connected to one target.
//!
//! Contract: a unix client that sent from an unnamed (or abstract) socket
//! is [`ClientAddr::UnixUnnamed`]: its datagrams are carried (a log
//! shipper never reads replies), replies to it cannot be delivered. A
//! connected unix socket binds an abstract name of its own first, so that
//! its target can answer.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{UdpSocket, UnixDatagram};

/// Where a client of a listener sent from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    Udp(SocketAddr),
    Unix(PathBuf),
    /// A unix socket without a path: all such clients share one flow.
    UnixUnnamed,
}

/// A bound listener socket.
#[derive(Debug)]
pub enum DatagramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    /// Binds a UDP listener (port 0: any free port).
    pub async fn bind_udp(address: SocketAddr) -> io::Result<Self> {
        Ok(Self::Udp(UdpSocket::bind(address).await?))
    }

    /// Binds a unix datagram listener, replacing a socket file that nobody
    /// listens on any more.
    pub fn bind_unix(path: &str) -> io::Result<Self> {
        remove_stale_socket(path);
        Ok(Self::Unix(UnixDatagram::bind(path)?))
    }

    /// Wraps a UDP socket made elsewhere (e.g. in another network namespace).
    pub fn from_std_udp(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self::Udp(UdpSocket::from_std(socket)?))
    }

    /// The bound UDP address (`None` for unix sockets).
    pub fn local_udp_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Udp(socket) => socket.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }

    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, ClientAddr)> {
        match self {
            Self::Udp(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                Ok((len, ClientAddr::Udp(from)))
            }
            Self::Unix(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                let client = from.as_pathname().map_or(ClientAddr::UnixUnnamed, |path| {
                    ClientAddr::Unix(path.to_owned())
                });
                Ok((len, client))
            }
        }
    }

    /// Sends `datagram` to `client`; `Ok(false)` when the client has no
    /// address to answer.
    pub(crate) async fn send_to(&self, datagram: &[u8], client: &ClientAddr) -> io::Result<bool> {
        match (self, client) {
            (Self::Udp(socket), ClientAddr::Udp(to)) => socket.send_to(datagram, to).await?,
            (Self::Unix(socket), ClientAddr::Unix(to)) => socket.send_to(datagram, to).await?,
            _ => return Ok(false),
        };
        Ok(true)
    }
}

/// A socket connected to one target.
#[derive(Debug)]
pub enum ConnectedDatagram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// Abstract names of this process's connected unix sockets.
static UNIX_NAMES: AtomicU64 = AtomicU64::new(0);

impl ConnectedDatagram {
    /// A UDP socket on an ephemeral port of the target's family, connected.
    pub async fn connect_udp(target: SocketAddr) -> io::Result<Self> {
        let any = match target {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = UdpSocket::bind(any).await?;
        socket.connect(target).await?;
        Ok(Self::Udp(socket))
    }

    /// A unix datagram socket with an abstract name of its own, connected
    /// to `path`.
    pub fn connect_unix(path: &str) -> io::Result<Self> {
        use std::os::linux::net::SocketAddrExt as _;
        let n = UNIX_NAMES.fetch_add(1, Ordering::Relaxed);
        let name = format!("pp-tunnel-{}-{n}", std::process::id());
        let own = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&own)?;
        socket.connect(path)?;
        socket.set_nonblocking(true)?;
        Ok(Self::Unix(UnixDatagram::from_std(socket)?))
    }

    /// Wraps a connected UDP socket made elsewhere (another namespace).
    pub fn from_std_udp(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self::Udp(UdpSocket::from_std(socket)?))
    }

    pub(crate) async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match self {
            Self::Udp(socket) => socket.send(datagram).await?,
            Self::Unix(socket) => socket.send(datagram).await?,
        };
        Ok(())
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Udp(socket) => socket.recv(buf).await,
            Self::Unix(socket) => socket.recv(buf).await,
        }
    }
}

/// Removes a socket file at `path` that nobody listens on any more (left
/// by a killed process). Anything else is left for bind to fail on.
fn remove_stale_socket(path: &str) {
    use std::os::unix::fs::FileTypeExt as _;
    let is_socket =
        std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_socket());
    let probe = std::os::unix::net::UnixDatagram::unbound();
    if is_socket && probe.and_then(|probe| probe.connect(path)).is_err() {
        let _ = std::fs::remove_file(path);
    }
}
