//! Many concurrent streams over one mux: data integrity, flow control
//! isolation, both sides opening at once, refusals, and `pump`.

mod common;

use common::{MIB, checksum, echo, next_incoming, pair, payload, round_trip, serve_echo};
use pp_tunnel::{MuxEvent, MuxHandle, pump};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

async fn echo_many(handle: MuxHandle, streams: u64, seed_base: u64) {
    let mut tasks = Vec::new();
    for i in 0..streams {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            let stream = handle.open("ECHO").await.unwrap();
            round_trip(stream, seed_base + i, MIB).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn wn_opens_streams_that_the_pp_echoes(streams: u64) {
    let (pp, wn) = pair();
    let pp_run = tokio::spawn(pp.driver.run());
    let wn_run = tokio::spawn(wn.driver.run());
    tokio::spawn(serve_echo(pp.events));
    echo_many(wn.handle, streams, 0).await;
    drop(pp.handle);
    pp_run.abort();
    assert!(
        wn_run.await.unwrap().is_ok(),
        "WN sees a clean EOF once the PP is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_streams_echo_a_mebibyte_each() {
    wn_opens_streams_that_the_pp_echoes(16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_streams_echo_a_mebibyte_each() {
    wn_opens_streams_that_the_pp_echoes(64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pp_and_wn_open_streams_at_the_same_time() {
    let (pp, wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    tokio::spawn(serve_echo(pp.events));
    tokio::spawn(serve_echo(wn.events));
    tokio::join!(echo_many(pp.handle, 8, 100), echo_many(wn.handle, 8, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_block_the_others() {
    let (mut pp, wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    let (stalled_tx, stalled_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut stalled_tx = Some(stalled_tx);
        while let Some(event) = pp.events.recv().await {
            let MuxEvent::Incoming(incoming) = event else {
                continue;
            };
            match (incoming.name.as_str(), stalled_tx.take()) {
                ("STALL", Some(tx)) => tx.send(incoming.stream).unwrap(),
                _ => drop(tokio::spawn(echo(incoming.stream))),
            }
        }
    });

    // Twice the stream's raised window (1 MiB), so the writer must wait.
    let data = payload(7, 2 * MIB);
    let expected = checksum(&data);
    let mut stalled_writer = wn.handle.open("STALL").await.unwrap();
    let writer = tokio::spawn(async move {
        stalled_writer.write_all(&data).await.unwrap();
        stalled_writer.shutdown().await.unwrap();
        stalled_writer
    });
    echo_many(wn.handle.clone(), 16, 1000).await;
    assert!(
        !writer.is_finished(),
        "the stalled stream is held back by its window"
    );

    let mut stalled_reader = stalled_rx.await.unwrap();
    let mut received = Vec::new();
    stalled_reader.read_to_end(&mut received).await.unwrap();
    assert_eq!(
        checksum(&received),
        expected,
        "the stalled stream resumes intact"
    );
    writer.await.unwrap();
}

#[tokio::test]
async fn a_refusal_reaches_the_opener_with_its_reason() {
    let (mut pp, wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    tokio::spawn(async move {
        while let Some(event) = pp.events.recv().await {
            if let MuxEvent::Incoming(incoming) = event {
                incoming
                    .stream
                    .reset(&format!("no tunnel {} in this phase", incoming.name));
            }
        }
    });
    let mut stream = wn.handle.open("NOPE").await.unwrap();
    let error = stream.read_u8().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(
        error.to_string().contains("no tunnel NOPE in this phase"),
        "{error}"
    );
}

#[tokio::test]
async fn pump_carries_a_request_and_its_reply_with_half_closes() {
    let (mut pp, wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    let (target_side, mut service) = tokio::io::duplex(1024);
    let pumped = tokio::spawn(async move {
        let incoming = next_incoming(&mut pp.events).await;
        pump(incoming.stream, target_side).await.unwrap()
    });
    let service = tokio::spawn(async move {
        let mut request = Vec::new();
        service.read_to_end(&mut request).await.unwrap();
        service.write_all(b"reply to ").await.unwrap();
        service.write_all(&request).await.unwrap();
        service.shutdown().await.unwrap();
    });

    let mut stream = wn.handle.open("TARGET").await.unwrap();
    stream.write_all(b"request").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"reply to request");
    service.await.unwrap();
    assert_eq!(pumped.await.unwrap(), (7, 16));
}

#[tokio::test]
async fn dropping_a_stream_without_shutdown_resets_it_at_the_peer() {
    let (mut pp, wn) = pair();
    tokio::spawn(pp.driver.run());
    tokio::spawn(wn.driver.run());
    let mut stream = wn.handle.open("KBS").await.unwrap();
    stream.write_all(b"partial").await.unwrap();
    drop(stream);
    let mut incoming = next_incoming(&mut pp.events).await.stream;
    let mut received = Vec::new();
    let error = incoming.read_to_end(&mut received).await.unwrap_err();
    assert_eq!(
        received, b"partial",
        "data sent before the reset is still delivered"
    );
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(error.to_string().contains("closed by its user"), "{error}");
}
