//! Datagram flows between a PP-side and a WN-side driver over an in-memory
//! pipe: datagrams whole and in order, the per-flow bounds (drop and
//! count, never block), fairness between flows, the flow cap, how flows
//! end, and that a v1 channel has no flows. Assertions are on counts and
//! contents, never on time.

mod common;

use common::{End, pair, payload};
use pp_tunnel::{
    FLOW_LIMIT_REASON, FLOW_QUEUE_BYTES, FLOW_QUEUE_DATAGRAMS, FlowClosed, FlowSendError,
    IncomingFlow, MAX_DATAGRAM, MuxError, MuxEvent, MuxEvents, MuxFlow, MuxHandle, MuxLimits,
    MuxVersion, Phase, Side, start_with,
};

/// The next flow the peer opens, skipping other events.
async fn next_flow(events: &mut MuxEvents) -> IncomingFlow {
    loop {
        match events.recv().await {
            Some(MuxEvent::IncomingFlow(incoming)) => return incoming,
            Some(_) => continue,
            None => panic!("the mux ended before the peer opened a flow"),
        }
    }
}

/// One end of a v2 pair whose driver is running.
struct Running {
    handle: MuxHandle,
    events: MuxEvents,
}

/// A PP and a WN over an in-memory pipe, both drivers running.
fn running() -> (Running, Running) {
    let (pp, wn) = pair();
    let start = |end: End| {
        tokio::spawn(end.driver.run());
        Running {
            handle: end.handle,
            events: end.events,
        }
    };
    (start(pp), start(wn))
}

/// Sends `datagram`, yielding to the drivers while the queue is full.
async fn send_paced(flow: &MuxFlow, datagram: &[u8]) {
    loop {
        match flow.send(datagram) {
            Ok(()) => return,
            Err(FlowSendError::QueueFull) => tokio::task::yield_now().await,
            Err(e) => panic!("send failed: {e}"),
        }
    }
}

/// Sends every datagram it receives back on the same flow.
async fn echo(flow: MuxFlow) {
    while let Ok(datagram) = flow.recv().await {
        send_paced(&flow, &datagram).await;
    }
}

/// Mixed sizes from 0 bytes to `MAX_DATAGRAM`.
fn size_of(index: usize) -> usize {
    match index % 7 {
        0 => 0,
        1 => 1,
        2 => MAX_DATAGRAM,
        _ => (index * 977) % MAX_DATAGRAM,
    }
}

#[test]
fn a_flow_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<MuxFlow>();
}

#[tokio::test]
async fn datagrams_arrive_whole_and_in_order_both_ways() {
    echo_batches(40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_arrive_whole_and_in_order_across_threads() {
    echo_batches(10).await;
}

/// Sends `batches` batches of mixed-size datagrams through an echo on the
/// PP side and checks each comes back whole and in order.
async fn echo_batches(batches: usize) {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("DNS").await.unwrap();
    let incoming = next_flow(&mut pp.events).await;
    assert_eq!(incoming.name, "DNS");
    assert_eq!(incoming.flow.id(), flow.id());
    tokio::spawn(echo(incoming.flow));

    // Batches of 16 fit every queue (16 x 16 KiB = 256 KiB), so nothing
    // may be lost: each batch must come back whole and in order.
    const BATCH: usize = 16;
    let mut index = 0;
    for _ in 0..batches {
        let batch: Vec<Vec<u8>> = (index..index + BATCH)
            .map(|i| payload(i as u64, size_of(i)))
            .collect();
        for datagram in &batch {
            flow.send(datagram).unwrap();
        }
        for (offset, datagram) in batch.iter().enumerate() {
            let back = flow.recv().await.unwrap();
            assert!(
                back == *datagram,
                "datagram {} came back as {} bytes, sent {}",
                index + offset,
                back.len(),
                datagram.len()
            );
        }
        index += BATCH;
    }
    let stats = flow.stats();
    assert_eq!(stats.sent_datagrams, index as u64);
    assert_eq!(stats.received_datagrams, index as u64);
    assert_eq!(stats.sent_bytes, stats.received_bytes);
    assert_eq!(
        stats.dropped_send_queue_full + stats.dropped_receive_queue_full,
        0
    );
}

#[tokio::test]
async fn an_oversized_datagram_is_refused_and_counted_and_the_flow_goes_on() {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("DNS").await.unwrap();
    let incoming = next_flow(&mut pp.events).await;
    assert_eq!(
        flow.send(&vec![0; MAX_DATAGRAM + 1]),
        Err(FlowSendError::TooLarge {
            len: MAX_DATAGRAM + 1
        })
    );
    assert_eq!(flow.stats().dropped_too_large, 1);
    flow.send(&vec![7; MAX_DATAGRAM]).unwrap();
    assert_eq!(incoming.flow.recv().await.unwrap(), vec![7; MAX_DATAGRAM]);
    assert_eq!(flow.stats().sent_datagrams, 1);
}

#[tokio::test]
async fn a_full_send_queue_drops_and_counts_without_waiting() {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("LOG").await.unwrap();
    let incoming = next_flow(&mut pp.events).await;
    // No await between sends: the driver cannot move anything meanwhile.
    let results: Vec<_> = (0..FLOW_QUEUE_DATAGRAMS + 10)
        .map(|_| flow.send(b""))
        .collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, FLOW_QUEUE_DATAGRAMS);
    assert!(
        results[FLOW_QUEUE_DATAGRAMS..]
            .iter()
            .all(|r| *r == Err(FlowSendError::QueueFull))
    );
    assert_eq!(flow.stats().dropped_send_queue_full, 10);
    for _ in 0..FLOW_QUEUE_DATAGRAMS {
        assert_eq!(incoming.flow.recv().await.unwrap(), b"");
    }
    // The byte bound holds as well: 256 KiB of 16 KiB datagrams.
    let big = vec![1; MAX_DATAGRAM];
    let accepted = (0..20).filter(|_| flow.send(&big).is_ok()).count();
    assert_eq!(accepted, FLOW_QUEUE_BYTES / MAX_DATAGRAM);
    assert_eq!(
        flow.stats().dropped_send_queue_full,
        10 + 20 - accepted as u64
    );
}

#[tokio::test]
async fn a_full_receive_queue_drops_and_counts_and_keeps_the_first_datagrams() {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("LOG").await.unwrap();
    let incoming = next_flow(&mut pp.events).await;
    const SENT: usize = 200;
    for i in 0..SENT {
        send_paced(&flow, &(i as u32).to_be_bytes()).await;
    }
    // Nobody reads on the PP side: wait until every datagram was either
    // queued or dropped there.
    while {
        let s = incoming.flow.stats();
        s.received_datagrams + s.dropped_receive_queue_full < SENT as u64
    } {
        tokio::task::yield_now().await;
    }
    let stats = incoming.flow.stats();
    assert_eq!(stats.received_datagrams, FLOW_QUEUE_DATAGRAMS as u64);
    assert_eq!(
        stats.dropped_receive_queue_full,
        (SENT - FLOW_QUEUE_DATAGRAMS) as u64
    );
    for i in 0..FLOW_QUEUE_DATAGRAMS {
        assert_eq!(
            incoming.flow.recv().await.unwrap(),
            (i as u32).to_be_bytes()
        );
    }
    assert_eq!(flow.stats().sent_datagrams, SENT as u64);
}

#[tokio::test]
async fn a_flooding_flow_does_not_starve_a_second_flow() {
    let (mut pp, wn) = running();
    let flood = wn.handle.open_flow("FLOOD").await.unwrap();
    let quiet = wn.handle.open_flow("QUIET").await.unwrap();
    let flood_in = next_flow(&mut pp.events).await.flow;
    let quiet_in = next_flow(&mut pp.events).await.flow;
    const ROUNDS: u32 = 300;
    let drain_flood = tokio::spawn(async move {
        let mut count = 0u64;
        while flood_in.recv().await.is_ok() {
            count += 1;
        }
        count
    });
    let read_quiet = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < ROUNDS as usize {
            got.push(quiet_in.recv().await.unwrap());
        }
        (got, quiet_in.stats())
    });
    let big = vec![0xf1; 1000];
    for round in 0..ROUNDS {
        // Far more than its queue holds, every round, without waiting.
        for _ in 0..200 {
            let _ = flood.send(&big);
        }
        quiet.send(&round.to_be_bytes()).unwrap();
        tokio::task::yield_now().await;
    }
    let (got, quiet_in_stats) = read_quiet.await.unwrap();
    let expected: Vec<Vec<u8>> = (0..ROUNDS).map(|r| r.to_be_bytes().to_vec()).collect();
    assert!(
        got == expected,
        "the quiet flow's datagrams, whole and in order"
    );
    assert_eq!(quiet_in_stats.dropped_receive_queue_full, 0);
    let quiet_stats = quiet.stats();
    assert_eq!(quiet_stats.dropped_send_queue_full, 0);
    assert_eq!(quiet_stats.sent_datagrams, u64::from(ROUNDS));
    let flood_stats = flood.stats();
    assert!(
        flood_stats.dropped_send_queue_full > 0,
        "the flood overflowed its own queue: {flood_stats:?}"
    );
    assert!(flood_stats.sent_datagrams > 0, "{flood_stats:?}");
    flood.reset("done");
    assert!(drain_flood.await.unwrap() > 0);
}

#[tokio::test]
async fn an_open_flow_over_the_cap_is_refused_with_the_reason() {
    let (pp_io, wn_io) = tokio::io::duplex(64 * 1024);
    let limits = MuxLimits {
        max_peer_flows: 2,
        ..MuxLimits::default()
    };
    let (_pp, mut pp_events, pp_driver) =
        start_with(pp_io, Side::Pp(Phase::Kubernetes), MuxVersion::V2, limits);
    let (wn, _wn_events, wn_driver) =
        start_with(wn_io, Side::Wn, MuxVersion::V2, MuxLimits::default());
    tokio::spawn(pp_driver.run());
    tokio::spawn(wn_driver.run());
    let first = wn.open_flow("DNS").await.unwrap();
    let second = wn.open_flow("DNS").await.unwrap();
    let over = wn.open_flow("DNS").await.unwrap();
    // Dropped with its flow (or refused, if the RESET is back already).
    let _ = over.send(b"lost with its flow");
    let held = [
        next_flow(&mut pp_events).await,
        next_flow(&mut pp_events).await,
    ];
    assert_eq!(
        held.iter().map(|f| f.flow.id()).collect::<Vec<_>>(),
        [first.id(), second.id()]
    );
    let Err(FlowClosed::PeerReset(reason)) = over.recv().await else {
        panic!("the third flow should be reset by the PP");
    };
    assert!(reason.starts_with(FLOW_LIMIT_REASON), "{reason}");
    // Streams are counted apart: one still opens.
    assert!(wn.open("WEB").await.is_ok());
}

#[tokio::test]
async fn a_v1_channel_refuses_open_flow_and_a_v2_channel_says_so() {
    let (pp_io, wn_io) = tokio::io::duplex(64 * 1024);
    let (pp, pp_events, pp_driver) = start_with(
        pp_io,
        Side::Pp(Phase::Kubernetes),
        MuxVersion::V1,
        MuxLimits::default(),
    );
    let (wn, _wn_events, wn_driver) =
        start_with(wn_io, Side::Wn, MuxVersion::V1, MuxLimits::default());
    tokio::spawn(pp_driver.run());
    tokio::spawn(wn_driver.run());
    assert_eq!(wn.version(), MuxVersion::V1);
    assert!(matches!(
        wn.open_flow("DNS").await,
        Err(MuxError::NeedsVersion2)
    ));
    assert!(matches!(
        pp.open_flow("DNS").await,
        Err(MuxError::NeedsVersion2)
    ));
    // Streams work as before on v1.
    tokio::spawn(common::serve_echo(pp_events));
    common::round_trip(wn.open("ECHO").await.unwrap(), 1, 100_000).await;
    let (pp2, _wn2) = running();
    assert_eq!(pp2.handle.version(), MuxVersion::V2);
}

#[tokio::test]
async fn a_reset_reaches_the_peer_with_its_reason_and_is_idempotent() {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("DNS").await.unwrap();
    let incoming = next_flow(&mut pp.events).await.flow;
    let clone = flow.clone();
    flow.reset("idle for 60 s");
    clone.reset("a second reason is not sent");
    assert_eq!(
        incoming.recv().await,
        Err(FlowClosed::PeerReset("idle for 60 s".into()))
    );
    assert_eq!(
        flow.send(b"late"),
        Err(FlowSendError::Closed(FlowClosed::LocalReset(
            "idle for 60 s".into()
        )))
    );
    assert_eq!(flow.stats().dropped_closed, 1);
}

#[tokio::test]
async fn dropping_the_last_clone_or_an_unused_incoming_flow_resets_it() {
    let (mut pp, wn) = running();
    let flow = wn.handle.open_flow("DNS").await.unwrap();
    let incoming = next_flow(&mut pp.events).await.flow;
    let clone = flow.clone();
    drop(flow);
    clone.send(b"still open").unwrap();
    assert_eq!(incoming.recv().await.unwrap(), b"still open");
    drop(clone);
    assert_eq!(
        incoming.recv().await,
        Err(FlowClosed::PeerReset("flow dropped".into()))
    );

    let unused = wn.handle.open_flow("DNS").await.unwrap();
    drop(next_flow(&mut pp.events).await);
    assert_eq!(
        unused.recv().await,
        Err(FlowClosed::PeerReset("flow dropped".into()))
    );
}

#[tokio::test]
async fn flows_close_with_the_reason_when_the_connection_ends() {
    let (pp, wn) = pair();
    let pp_run = tokio::spawn(pp.driver.run());
    let wn_run = tokio::spawn(wn.driver.run());
    let mut pp_events = pp.events;
    let flow = wn.handle.open_flow("DNS").await.unwrap();
    let incoming = next_flow(&mut pp_events).await.flow;
    flow.send(b"before the end").unwrap();
    assert_eq!(incoming.recv().await.unwrap(), b"before the end");
    wn_run.abort();
    let _ = wn_run.await;
    let closed = flow.recv().await.unwrap_err();
    assert!(matches!(closed, FlowClosed::ConnectionEnded(_)), "{closed}");
    assert!(matches!(flow.send(b"x"), Err(FlowSendError::Closed(_))));
    let closed = incoming.recv().await.unwrap_err();
    assert!(matches!(closed, FlowClosed::ConnectionEnded(_)), "{closed}");
    assert!(pp_run.await.unwrap().is_ok());
}
