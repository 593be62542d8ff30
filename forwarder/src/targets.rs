//! Dialling an outbound tunnel's target: a TCP address, a TCP port inside
//! a network namespace, or a unix socket; for datagram tunnels a UDP
//! address, a UDP port inside a network namespace, or a unix datagram
//! socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pp_tag::Target;
use pp_tunnel::datagram::ConnectedDatagram;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::netns;

/// A connected target socket.
pub enum TargetStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

pub async fn connect(target: &Target) -> io::Result<TargetStream> {
    Ok(match target {
        Target::Tcp { ip, port } => TargetStream::Tcp(TcpStream::connect((*ip, *port)).await?),
        Target::NetnsTcp { netns_path, port } => {
            TargetStream::Tcp(netns::connect_loopback(netns_path, *port).await?)
        }
        Target::Unix { path } => TargetStream::Unix(UnixStream::connect(path).await?),
        Target::Udp { .. } | Target::NetnsUdp { .. } | Target::UnixDatagram { .. } => {
            return Err(wrong_kind(
                "a datagram tunnel: it carries flows, not streams",
            ));
        }
    })
}

/// A socket connected to a datagram target.
pub async fn connect_datagram(target: &Target) -> io::Result<ConnectedDatagram> {
    match target {
        Target::Udp { ip, port } => ConnectedDatagram::connect_udp((*ip, *port).into()).await,
        Target::NetnsUdp { netns_path, port } => {
            ConnectedDatagram::from_std_udp(netns::udp_connect_loopback(netns_path, *port)?)
        }
        Target::UnixDatagram { path } => ConnectedDatagram::connect_unix(path),
        Target::Tcp { .. } | Target::NetnsTcp { .. } | Target::Unix { .. } => Err(wrong_kind(
            "a stream tunnel: it carries streams, not datagram flows",
        )),
    }
}

/// The error for a stream opened to a datagram tunnel, or a flow to a
/// stream tunnel.
pub fn wrong_kind(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("the tunnel is {what}"))
}

impl AsyncRead for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
