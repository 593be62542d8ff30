//! The datagram relay (`pp_tunnel::datagram`) over a real mux pair on an
//! in-memory pipe: a listener on the WN side, targets on the PP side (a
//! UDP echo server), checked through the relay's counters. No timed
//! assertions: waits poll the counters with a generous bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pp_tunnel::datagram::{
    ConnectedDatagram, DatagramCounters, DatagramCounts, DatagramSocket, RelaySettings,
    serve_listener, serve_target,
};
use pp_tunnel::{MAX_DATAGRAM, MuxEvent, MuxHandle, Phase, Side};
use tokio::net::{UdpSocket, UnixDatagram};

/// A UDP echo server; returns its address.
async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    address
}

/// A WN/PP mux pair whose PP side serves every incoming flow with a socket
/// from `connect`, idle after `idle`; returns the WN handle.
async fn mux_pair<C, F>(connect: C, idle: Duration) -> MuxHandle
where
    C: Fn() -> F + Send + 'static,
    F: Future<Output = ConnectedDatagram> + Send,
{
    let (wn_io, pp_io) = tokio::io::duplex(1 << 20);
    let (wn, _wn_events, wn_driver) = pp_tunnel::start(wn_io, Side::Wn);
    let (_pp, mut pp_events, pp_driver) = pp_tunnel::start(pp_io, Side::Pp(Phase::Kubernetes));
    tokio::spawn(async move {
        let _keep = _wn_events;
        wn_driver.run().await
    });
    tokio::spawn(async move {
        let _keep = _pp;
        pp_driver.run().await
    });
    tokio::spawn(async move {
        while let Some(event) = pp_events.recv().await {
            if let MuxEvent::IncomingFlow(incoming) = event {
                let socket = connect().await;
                tokio::spawn(async move {
                    serve_target(incoming.flow, socket, idle, &DatagramCounters::default()).await
                });
            }
        }
    });
    wn
}

/// Starts a UDP listener relaying to flows `ECHO` of `wn`; returns its
/// address and counters.
async fn udp_listener(
    wn: MuxHandle,
    settings: RelaySettings,
) -> (SocketAddr, Arc<DatagramCounters>) {
    let opener = move || {
        let wn = wn.clone();
        async move { wn.open_flow("ECHO").await.ok() }
    };
    listener_with(opener, settings).await
}

/// Starts a UDP listener whose flows come from `opener`.
async fn listener_with<O, F>(
    opener: O,
    settings: RelaySettings,
) -> (SocketAddr, Arc<DatagramCounters>)
where
    O: Fn() -> F + Send + 'static,
    F: Future<Output = Option<pp_tunnel::MuxFlow>> + Send + 'static,
{
    let socket = DatagramSocket::bind_udp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = socket.local_udp_addr().unwrap();
    let counters = Arc::new(DatagramCounters::default());
    tokio::spawn(serve_listener(socket, opener, settings, counters.clone()));
    (address, counters)
}

async fn until(counters: &DatagramCounters, what: &str, check: impl Fn(&DatagramCounts) -> bool) {
    for _ in 0..600 {
        if check(&counters.counts()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", counters.counts());
}

async fn echo_once(client: &UdpSocket, payload: &[u8]) -> Vec<u8> {
    client.send(payload).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let n = tokio::time::timeout(Duration::from_secs(30), client.recv(&mut buf))
        .await
        .expect("an echo")
        .unwrap();
    buf.truncate(n);
    buf
}

async fn client_of(address: SocketAddr) -> UdpSocket {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(address).await.unwrap();
    client
}

fn echo_target(
    echo: SocketAddr,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ConnectedDatagram> + Send>> + Send + 'static
{
    move || Box::pin(async move { ConnectedDatagram::connect_udp(echo).await.unwrap() })
}

#[tokio::test]
async fn datagrams_go_both_ways_whole_and_an_oversized_one_is_dropped_and_counted() {
    let echo = udp_echo().await;
    let wn = mux_pair(echo_target(echo), Duration::from_secs(60)).await;
    let (address, counters) = udp_listener(wn, RelaySettings::default()).await;
    let client = client_of(address).await;
    for len in [0, 1, 1000, MAX_DATAGRAM] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        assert_eq!(echo_once(&client, &payload).await, payload, "{len} bytes");
    }
    client.send(&vec![1u8; MAX_DATAGRAM + 1]).await.unwrap();
    until(&counters, "the oversized datagram is counted", |c| {
        c.dropped_too_large == 1
    })
    .await;
    assert_eq!(echo_once(&client, b"after").await, b"after");
    let counts = counters.counts();
    assert_eq!((counts.to_peer, counts.from_peer), (5, 5));
    assert_eq!(
        (counts.flows_opened, counts.flows_open),
        (1, 1),
        "one client, one flow"
    );
}

#[tokio::test]
async fn each_client_has_its_flow_up_to_the_cap_and_idle_flows_are_reset() {
    let echo = udp_echo().await;
    let wn = mux_pair(echo_target(echo), Duration::from_secs(60)).await;
    let settings = RelaySettings {
        idle: Duration::from_millis(300),
        max_flows: 2,
    };
    let (address, counters) = udp_listener(wn, settings).await;
    let (a, b, c) = (
        client_of(address).await,
        client_of(address).await,
        client_of(address).await,
    );
    assert_eq!(echo_once(&a, b"a").await, b"a");
    assert_eq!(echo_once(&b, b"b").await, b"b");
    c.send(b"c").await.unwrap();
    until(&counters, "the third client is over the cap", |c| {
        c.dropped_flow_limit == 1
    })
    .await;
    until(&counters, "both flows idle out", |c| {
        c.flows_expired == 2 && c.flows_open == 0
    })
    .await;
    assert_eq!(echo_once(&c, b"c again").await, b"c again", "room again");
    assert_eq!(counters.counts().flows_opened, 3);
}

#[tokio::test]
async fn without_a_connection_the_datagrams_are_dropped_and_counted() {
    let (address, counters) = listener_with(|| async { None }, RelaySettings::default()).await;
    let client = client_of(address).await;
    client.send(b"lost").await.unwrap();
    until(&counters, "the datagram is counted", |c| {
        c.dropped_no_tunnel == 1
    })
    .await;
    assert_eq!(counters.counts().flows_opened, 0);
}

#[tokio::test]
async fn a_unix_datagram_listener_carries_an_unnamed_clients_datagrams_one_way() {
    let dir = std::env::temp_dir().join(format!("pp-tunnel-unixgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let echo = udp_echo().await;
    let wn = mux_pair(echo_target(echo), Duration::from_secs(60)).await;
    let socket = DatagramSocket::bind_unix(path.to_str().unwrap()).unwrap();
    let counters = Arc::new(DatagramCounters::default());
    let opener = move || {
        let wn = wn.clone();
        async move { wn.open_flow("ECHO").await.ok() }
    };
    tokio::spawn(serve_listener(
        socket,
        opener,
        RelaySettings::default(),
        counters.clone(),
    ));
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(b"syslog line", &path).await.unwrap();
    // The echo comes back, but an unnamed client has no address to get it.
    until(&counters, "the reply is counted as undeliverable", |c| {
        c.to_peer == 1 && c.dropped_no_reply_address == 1
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn what_waits_for_a_flow_to_open_is_bounded() {
    // No connection ever comes, and the opener never gives up.
    let (address, counters) = listener_with(
        std::future::pending::<Option<pp_tunnel::MuxFlow>>,
        RelaySettings::default(),
    )
    .await;
    let client = client_of(address).await;
    // 16 datagrams of one client wait (PENDING_DATAGRAMS); the other 4 are
    // dropped and counted. (Small ones: the kernel's socket buffer must
    // not be what drops them.)
    for _ in 0..20 {
        client.send(&[3u8; 100]).await.unwrap();
        tokio::task::yield_now().await;
    }
    until(
        &counters,
        "the datagrams beyond the bound are counted",
        |c| c.dropped_queue_full == 4,
    )
    .await;
    assert_eq!(counters.counts().flows_opened, 0);
}
