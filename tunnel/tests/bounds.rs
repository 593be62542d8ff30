//! What a peer can make one side hold: the limit on open streams (refused
//! with a reason, the connection goes on), what waits for a pipe the peer
//! does not read (bounded whatever window it grants), and that closing the
//! connection frees every stream and the target socket behind it.

mod common;

use std::time::Duration;

use common::{MIB, echo, next_incoming};
use pp_mux::{MAX_WINDOW, MuxSession};
use pp_tunnel::{
    IncomingStream, MuxEvent, MuxLimits, MuxVersion, Phase, STREAM_LIMIT_REASON, Side, pump, start,
    start_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Guards against a hang only; nothing here measures time.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_open_over_the_limit_is_refused_with_the_reason_and_the_connection_goes_on() {
    let (pp_io, wn_io) = tokio::io::duplex(64 * 1024);
    let limits = MuxLimits {
        max_peer_streams: 4,
        ..MuxLimits::default()
    };
    let (_pp, mut pp_events, pp_driver) =
        start_with(pp_io, Side::Pp(Phase::Kubernetes), MuxVersion::V2, limits);
    let (wn, _wn_events, wn_driver) = start(wn_io, Side::Wn);
    tokio::spawn(pp_driver.run());
    tokio::spawn(wn_driver.run());

    let mut held: Vec<IncomingStream> = Vec::new();
    let mut openers = Vec::new();
    for _ in 0..4 {
        openers.push(wn.open("HOLD").await.unwrap());
        held.push(next_incoming(&mut pp_events).await);
    }
    let mut over = wn.open("HOLD").await.unwrap();
    let error = over.read_u8().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(error.to_string().contains(STREAM_LIMIT_REASON), "{error}");

    // The application saw only the four streams it holds; freeing one lets
    // the next OPEN through on the same connection.
    held.pop().unwrap().stream.reset("done with it");
    let mut next = wn.open("ECHO").await.unwrap();
    // The next incoming stream is this one: the refused OPEN never came.
    let incoming = next_incoming(&mut pp_events).await;
    assert_eq!(incoming.name, "ECHO");
    tokio::spawn(echo(incoming.stream));
    next.write_all(b"still usable").await.unwrap();
    next.shutdown().await.unwrap();
    let mut back = Vec::new();
    next.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"still usable");
}

/// A WN that grants a stream the largest window (2^31 - 1 bytes) and then
/// never reads the pipe: the PP's writer must end up waiting, having handed
/// over no more than what the pipe, the driver and the stream may hold
/// (64 KiB pipe + 64 KiB backlog + one stream's 128 KiB taken + 128 KiB
/// unsent, and frame headers), instead of the whole window.
#[tokio::test(start_paused = true)]
async fn a_peer_that_grants_a_huge_window_and_does_not_read_makes_writers_wait() {
    const PIPE: usize = 64 * 1024;
    const MAX_HELD: usize = 512 * 1024;
    let (pp_io, mut wn_io) = tokio::io::duplex(PIPE);
    let (_pp, mut pp_events, pp_driver) = start(pp_io, Side::Pp(Phase::Kubernetes));
    tokio::spawn(pp_driver.run());
    // The WN as a bare session: HELLO, OPEN and a CREDIT for the rest of
    // the largest window, then it never reads the pipe.
    let mut wn = MuxSession::with_limits(
        Side::Wn,
        MuxVersion::V2,
        MuxLimits {
            stream_window: MAX_WINDOW,
            window_budget: MAX_WINDOW,
            ..MuxLimits::default()
        },
    );
    wn.open("SOURCE").unwrap();
    wn_io.write_all(&wn.take_transmit()).await.unwrap();
    let mut stream = next_incoming(&mut pp_events).await.stream;

    let chunk = vec![0x5a; 32 * 1024];
    let mut accepted = 0;
    // The clock is paused: the timeout fires as soon as every task waits.
    // The cap only keeps a broken bound from buffering the whole window.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while accepted < 8 * MIB {
            accepted += stream.write(&chunk).await.unwrap();
        }
    })
    .await;
    assert!(accepted >= PIPE, "the writer got going: {accepted} bytes");
    assert!(
        accepted <= MAX_HELD,
        "{accepted} bytes accepted for a peer that reads nothing"
    );
}

#[tokio::test]
async fn closing_the_connection_closes_every_target_socket() {
    const STREAMS: usize = 64;
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    // The target accepts and reads until EOF, then reports the socket closed.
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = target.accept().await.unwrap();
            accepted_tx.send(()).unwrap();
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = socket.read_to_end(&mut sink).await;
                closed_tx.send(sink.len()).unwrap();
            });
        }
    });

    let (pp_io, wn_io) = tokio::io::duplex(64 * 1024);
    let (_pp, mut pp_events, pp_driver) = start(pp_io, Side::Pp(Phase::Kubernetes));
    let (wn, _wn_events, wn_driver) = start(wn_io, Side::Wn);
    let pp_run = tokio::spawn(pp_driver.run());
    let wn_run = tokio::spawn(wn_driver.run());
    // The PP side does what the forwarder does: dial the target, pump.
    tokio::spawn(async move {
        while let Some(event) = pp_events.recv().await {
            if let MuxEvent::Incoming(incoming) = event {
                let socket = tokio::net::TcpStream::connect(target_addr).await.unwrap();
                tokio::spawn(pump(incoming.stream, socket));
            }
        }
    });

    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut stream = wn.open("TARGET").await.unwrap();
        stream.write_all(b"x").await.unwrap();
        streams.push(stream);
    }
    let guarded = tokio::time::timeout(HANG_GUARD, async {
        for _ in 0..STREAMS {
            accepted.recv().await.unwrap();
        }
        // The WN goes away without ending or resetting any stream.
        wn_run.abort();
        assert!(pp_run.await.unwrap().is_ok(), "the PP sees a clean EOF");
        let mut bytes = 0;
        for _ in 0..STREAMS {
            bytes += closed.recv().await.unwrap();
        }
        bytes
    });
    let bytes = guarded.await.expect("every target socket closes");
    assert_eq!(bytes, STREAMS, "each target got its byte before the close");
    drop(streams);
}
