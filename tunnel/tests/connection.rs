//! The mux connection as a whole: HELLO and control frames, protocol
//! errors, EOF, and running on a single thread with a non-`Send` pipe.

mod common;

use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use common::{pair, round_trip, serve_echo};
use pp_tunnel::{CommandError, MuxError, MuxEvent, Phase, ProtocolError, Side, start};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

#[tokio::test]
async fn hello_upgrade_and_info_reach_the_other_side() {
    let (mut pp, mut wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    assert!(matches!(
        wn.events.recv().await,
        Some(MuxEvent::Hello(Side::Pp(Phase::Kubernetes)))
    ));
    assert!(matches!(
        pp.events.recv().await,
        Some(MuxEvent::Hello(Side::Wn))
    ));

    wn.handle.send_info_request().await.unwrap();
    assert!(matches!(
        pp.events.recv().await,
        Some(MuxEvent::InfoRequest)
    ));
    pp.handle.send_info("phase=kubernetes").await.unwrap();
    pp.handle
        .send_upgrade("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
        .await
        .unwrap();
    let Some(MuxEvent::Info(text)) = wn.events.recv().await else {
        panic!("INFO expected")
    };
    assert_eq!(text, "phase=kubernetes");
    let Some(MuxEvent::Upgrade(key)) = wn.events.recv().await else {
        panic!("UPGRADE expected")
    };
    assert_eq!(key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5");

    let refused = wn
        .handle
        .send_upgrade("ssh-ed25519 AAAA")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, MuxError::Command(CommandError::WrongRole { .. })),
        "{refused}"
    );
    let bad_name = wn.handle.open("no spaces").await.unwrap_err();
    assert!(
        matches!(bad_name, MuxError::Command(CommandError::Invalid(_))),
        "{bad_name}"
    );
}

#[tokio::test]
async fn a_peer_breaking_the_protocol_ends_run_with_an_error() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let (_handle, _events, driver) = start(ours, Side::Wn);
    // DATA on stream 1 before any HELLO.
    theirs
        .write_all(&[0x02, 0, 0, 0, 1, 0, 1, 0xff])
        .await
        .unwrap();
    let error = driver.run().await.unwrap_err();
    assert!(
        matches!(error, MuxError::Protocol(ProtocolError::HelloMissing)),
        "{error}"
    );
    assert!(error.to_string().contains("before HELLO"), "{error}");
}

#[tokio::test]
async fn eof_on_the_pipe_ends_run_cleanly_and_fails_open_streams() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let (handle, mut events, driver) = start(ours, Side::Pp(Phase::Attestation));
    let run = tokio::spawn(driver.run());
    let mut stream = handle.open("KBS").await.unwrap();
    let mut hello_and_open = [0u8; 10 + 10];
    theirs.read_exact(&mut hello_and_open).await.unwrap();
    assert_eq!(
        &hello_and_open[10..17],
        [0x01, 0, 0, 0, 2, 0, 3],
        "OPEN of stream 2"
    );
    drop(theirs);

    assert!(run.await.unwrap().is_ok());
    let error = stream.read_u8().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionAborted);
    assert!(
        events.recv().await.is_none(),
        "the event channel closes with the driver"
    );
    assert!(matches!(handle.open("KBS").await, Err(MuxError::Stopped)));
}

/// A pipe that is not `Send`, like the PP's sunset channel.
struct NotSendPipe(DuplexStream, PhantomData<Rc<()>>);

impl AsyncRead for NotSendPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NotSendPipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_driver_runs_on_one_thread_over_a_pipe_that_is_not_send() {
    let (pp_io, wn_io) = tokio::io::duplex(4096);
    let (_pp_handle, pp_events, pp_driver) =
        start(NotSendPipe(pp_io, PhantomData), Side::Pp(Phase::Kubernetes));
    let (wn_handle, _wn_events, wn_driver) = start(wn_io, Side::Wn);
    let local = tokio::task::LocalSet::new();
    local.spawn_local(pp_driver.run());
    local.spawn_local(wn_driver.run());
    local.spawn_local(serve_echo(pp_events));
    local
        .run_until(async move {
            let stream = wn_handle.open("KATAAGENT").await.unwrap();
            round_trip(stream, 3, 300_000).await;
        })
        .await;
}
