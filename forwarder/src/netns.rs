//! Sockets on 127.0.0.1 inside another network namespace (tunnel tags
//! `PHASE:NAME:/run/netns/x:PORT` and `PHASE:NAME:udp:/run/netns/x:PORT`).
//!
//! A socket belongs to the namespace it was created in, so the thread
//! enters the target namespace, creates the socket, and goes back. The
//! forwarder runs on one thread, so nothing else runs while the thread is in
//! the other namespace; connecting to loopback returns at once.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio::net::{TcpListener, TcpStream};

pub async fn connect_loopback(netns_path: &str, port: u16) -> io::Result<TcpStream> {
    let stream = in_namespace(netns_path, || {
        std::net::TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    })?;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

pub fn listen_loopback(netns_path: &str, port: u16) -> io::Result<TcpListener> {
    let listener = in_namespace(netns_path, || {
        std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    })?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// A UDP socket on 127.0.0.1 in the namespace, connected to `port` there.
pub fn udp_connect_loopback(netns_path: &str, port: u16) -> io::Result<std::net::UdpSocket> {
    in_namespace(netns_path, || {
        let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        Ok(socket)
    })
}

/// A UDP socket bound to 127.0.0.1:`port` in the namespace.
pub fn udp_bind_loopback(netns_path: &str, port: u16) -> io::Result<std::net::UdpSocket> {
    in_namespace(netns_path, || {
        std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    })
}

fn in_namespace<T>(netns_path: &str, make: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let target = File::open(netns_path)?;
    let home = File::open("/proc/thread-self/ns/net")?;
    move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network))?;
    let made = make();
    // Go back before anything else can run on this thread; staying in the
    // wrong namespace would misroute every later socket.
    if let Err(e) = move_into_link_name_space(home.as_fd(), Some(LinkNameSpaceType::Network)) {
        crate::fail_closed::abort_process(&format!(
            "cannot return to the forwarder's network namespace: {e}"
        ));
    }
    made
}
