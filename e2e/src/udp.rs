//! UDP helpers for the datagram tunnel tests and the UDP bench row: an
//! echo server, the datagrams a test sends (each one's bytes follow from
//! its sequence number and length, so a merged, split, reordered or
//! corrupted datagram is seen), and a client that keeps a window of
//! datagrams in flight and checks every echo.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// How long a client waits for one echo before it calls the run stuck
/// (a hang guard, not a speed goal).
pub const STUCK: Duration = Duration::from_secs(30);

/// A UDP echo server on 127.0.0.1: every datagram goes back to its sender
/// as it came. Stops when the returned task is aborted.
pub async fn start_echo() -> (tokio::task::JoinHandle<()>, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind the echo");
    roomy(&socket);
    let address = socket.local_addr().expect("the echo's address");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..len], from).await;
        }
    });
    (task, address)
}

/// Asks for 1 MiB socket buffers (the kernel caps it at `rmem_max`, then
/// doubles it): a window of 16 KiB datagrams whose reader is briefly not
/// scheduled must not overflow the default 208 KiB, whose skbs take about
/// twice their payload.
fn roomy(socket: &UdpSocket) {
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(socket, 1 << 20);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(socket, 1 << 20);
}

/// Datagram `seq` of length `len`: 8 bytes of `seq` (as far as they fit),
/// then bytes that depend on both.
pub fn datagram(seq: u64, len: usize) -> Vec<u8> {
    let head = seq.to_be_bytes();
    (0..len)
        .map(|i| match head.get(i) {
            Some(byte) => *byte,
            None => (seq.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64 * 31) >> 3) as u8,
        })
        .collect()
}

/// The length of datagram `seq` in a mixed run: 1 and `max` first, then
/// spread over 1..=`max` (pseudo-random, the same every run).
pub fn mixed_len(seq: u64, max: usize) -> usize {
    match seq {
        0 => 1,
        1 => max,
        _ => {
            let mixed = seq.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 17;
            1 + (mixed % max as u64) as usize
        }
    }
}

/// What a windowed run saw.
#[derive(Debug)]
pub struct Run {
    /// Round-trip time of every datagram.
    pub round_trips: Vec<Duration>,
    pub elapsed: Duration,
}

/// Sends datagrams `0..count` (lengths from `len_of`) from a fresh socket
/// to `to`, at most `window` unanswered at a time, and checks that every
/// echo is the next one expected, byte for byte: whole and in order. The
/// first datagram goes alone: through a tunnel its echo means the client's
/// flow is open, so the window never meets the smaller queue a listener
/// keeps for a client whose flow is still being opened.
/// Panics (naming `what`) on a wrong, out-of-order or missing echo.
pub async fn windowed_echo(
    what: &str,
    to: SocketAddr,
    count: u64,
    window: u64,
    len_of: impl Fn(u64) -> usize,
) -> Run {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind a client");
    roomy(&socket);
    socket.connect(to).await.expect("connect the client");
    let started = Instant::now();
    let mut sent_at = std::collections::VecDeque::new();
    let mut round_trips = Vec::with_capacity(count as usize);
    let (mut next_send, mut next_echo) = (0u64, 0u64);
    let mut buf = vec![0u8; 65_536];
    while next_echo < count {
        let in_flight = if next_echo == 0 { 1 } else { window };
        while next_send < count && next_send - next_echo < in_flight {
            socket
                .send(&datagram(next_send, len_of(next_send)))
                .await
                .expect("send a datagram");
            sent_at.push_back(Instant::now());
            next_send += 1;
        }
        let len = tokio::time::timeout(STUCK, socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: no echo of datagram {next_echo} of {count}"))
            .expect("receive an echo");
        let want = datagram(next_echo, len_of(next_echo));
        assert!(
            buf[..len] == want[..],
            "{what}: echo {next_echo} is not datagram {next_echo} ({len} bytes, want {})",
            want.len()
        );
        round_trips.push(
            sent_at
                .pop_front()
                .map_or(Duration::ZERO, |at| at.elapsed()),
        );
        next_echo += 1;
    }
    Run {
        round_trips,
        elapsed: started.elapsed(),
    }
}

/// `p`-th percentile (0..=100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    let index = (samples.len().saturating_sub(1) * p) / 100;
    samples.get(index).copied().unwrap_or_default()
}

/// A UDP port on 127.0.0.1 that was free a moment ago, for a listener a
/// process of the test binds next: like [`crate::free_port`], from below
/// the ephemeral range (so no client socket can take it meanwhile) and
/// never handed out twice.
pub fn free_udp_port() -> u16 {
    loop {
        let port = crate::free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
