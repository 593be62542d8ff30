//! Unauthenticated connection floods against a forwarder on loopback, as an
//! attacker without any key would send them, from several source addresses
//! of 127.0.0.0/8 (each client socket is bound to its source first).
//!
//! A [`Flood`] runs as tokio tasks and stops (every socket closed) when
//! dropped. Used by the pre-auth e2e test and by `pp-bench-flood`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// What each flood connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// Connects and never sends a byte.
    Silent,
    /// Sends an SSH version line, then nothing.
    BannerThenStall,
    /// Sends a version line one byte every 500 ms, then one junk byte
    /// every 500 ms.
    ByteDribble,
    /// Silent, and connects again as soon as the forwarder closes it.
    ReopenOnClose,
}

impl FloodKind {
    pub const ALL: [FloodKind; 4] = [
        FloodKind::Silent,
        FloodKind::BannerThenStall,
        FloodKind::ByteDribble,
        FloodKind::ReopenOnClose,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FloodKind::Silent => "silent",
            FloodKind::BannerThenStall => "banner-then-stall",
            FloodKind::ByteDribble => "byte-dribble",
            FloodKind::ReopenOnClose => "reopen-on-close",
        }
    }
}

/// The flood's source addresses: 127.0.0.2 and up (127.0.0.1 is left to
/// the legitimate client).
pub fn sources(count: u8) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
        .collect()
}

/// A running flood; dropping it closes every connection.
pub struct Flood {
    tasks: JoinSet<()>,
    connects: Arc<AtomicU64>,
}

impl Flood {
    /// Starts `connections` flood connections to `target`, spread over
    /// `sources` in turn.
    pub fn start(
        kind: FloodKind,
        target: SocketAddr,
        connections: usize,
        sources: &[Ipv4Addr],
    ) -> Flood {
        let connects = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for i in 0..connections {
            let source = sources[i % sources.len()];
            let connects = connects.clone();
            tasks.spawn(async move {
                loop {
                    if let Some(stream) = connect_from(source, target).await {
                        connects.fetch_add(1, Ordering::Relaxed);
                        behave(kind, stream).await;
                    } else {
                        // Refused or out of ports: try again shortly.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    if kind != FloodKind::ReopenOnClose {
                        return;
                    }
                }
            });
        }
        Flood { tasks, connects }
    }

    /// TCP connections made so far (reopens included).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Closes every connection and waits until the tasks are gone.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((source, 0))).ok()?;
    socket.connect(target).await.ok()
}

/// Plays one connection of the flood until the forwarder closes it.
async fn behave(kind: FloodKind, mut stream: TcpStream) {
    let (mut reader, mut writer) = stream.split();
    let talk = async {
        match kind {
            FloodKind::Silent | FloodKind::ReopenOnClose => {}
            FloodKind::BannerThenStall => {
                let _ = writer.write_all(b"SSH-2.0-flood\r\n").await;
            }
            FloodKind::ByteDribble => {
                for byte in b"SSH-2.0-dribble\r\n".iter().chain(std::iter::repeat(&0u8)) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if writer.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    // Read (and drop) whatever comes until the forwarder closes.
    let drain = async {
        let mut buf = [0u8; 4096];
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = talk => {}
        () = drain => {}
    }
}
