//! Inbound tunnels: local listeners in the PP (default 127.0.0.1:8080,
//! `KBS`) whose connections travel to the WN as PP-opened mux streams
//! (datagram tunnels are bound here too, and served by `datagram`).
//!
//! A connection that arrives while no admitted WN connection allows the
//! tunnel waits up to `WAIT_FOR_WN` for one, then is closed with a log line.

use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};
use pp_tag::{Tag, Target};
use tokio::net::{TcpListener, UnixListener};

use crate::controller::Controller;
use crate::datagram;
use crate::netns;
use crate::targets::{self, TargetStream};

/// How long a local client waits for a WN connection (docs/protocol.md 2.4).
pub const WAIT_FOR_WN: Duration = Duration::from_secs(10);

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn bind(target: &Target) -> std::io::Result<Self> {
        Ok(match target {
            Target::Tcp { ip, port } => {
                let std = std::net::TcpListener::bind((*ip, *port))?;
                std.set_nonblocking(true)?;
                Self::Tcp(TcpListener::from_std(std)?)
            }
            Target::NetnsTcp { netns_path, port } => {
                Self::Tcp(netns::listen_loopback(netns_path, *port)?)
            }
            Target::Unix { path } => {
                // A socket file left by an earlier run of this process.
                let _ = std::fs::remove_file(path);
                Self::Unix(UnixListener::bind(path)?)
            }
            Target::Udp { .. } | Target::NetnsUdp { .. } | Target::UnixDatagram { .. } => {
                return Err(targets::wrong_kind("a datagram tunnel (see datagram.rs)"));
            }
        })
    }

    async fn accept(&self) -> std::io::Result<TargetStream> {
        Ok(match self {
            Self::Tcp(l) => TargetStream::Tcp(l.accept().await?.0),
            Self::Unix(l) => TargetStream::Unix(l.accept().await?.0),
        })
    }
}

/// Binds every inbound tunnel; an address that cannot be bound is a start
/// error naming the tag.
pub fn start(tags: Vec<Tag>, ctrl: &Rc<Controller>) -> Result<(), String> {
    for tag in tags {
        if tag.target().is_datagram() {
            datagram::start_listener(tag, ctrl)?;
            continue;
        }
        let listener = Listener::bind(tag.target()).map_err(|e| {
            format!(
                "inbound tunnel {}: cannot listen on {}: {e}",
                tag.emit(),
                tag.target()
            )
        })?;
        info!(
            "inbound tunnel {} listening on {}",
            tag.name(),
            tag.target()
        );
        tokio::task::spawn_local(accept_loop(listener, tag, ctrl.clone()));
    }
    Ok(())
}

async fn accept_loop(listener: Listener, tag: Tag, ctrl: Rc<Controller>) {
    loop {
        match listener.accept().await {
            Ok(socket) => {
                tokio::task::spawn_local(carry(socket, tag.clone(), ctrl.clone()));
            }
            Err(e) => {
                warn!("inbound tunnel {}: accept failed: {e}", tag.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn carry(socket: TargetStream, tag: Tag, ctrl: Rc<Controller>) {
    let name = tag.name();
    let Some((conn, mux)) = ctrl.wait_for_mux(tag.phase(), WAIT_FOR_WN).await else {
        warn!(
            "inbound tunnel {name}: no WN connection allows it within {WAIT_FOR_WN:?}; local connection closed"
        );
        return;
    };
    let stream = match mux.open(name).await {
        Ok(stream) => stream,
        Err(e) => {
            warn!("inbound tunnel {name}: cannot open a stream on conn {conn}: {e}");
            return;
        }
    };
    info!(
        "conn {conn}: inbound stream {} for {name} opened",
        stream.id()
    );
    match pp_tunnel::pump(stream, socket).await {
        Ok((out, back)) => {
            info!("conn {conn}: inbound stream for {name} done ({out} B out, {back} B back)")
        }
        Err(e) => info!("conn {conn}: inbound stream for {name} ended: {e}"),
    }
}
