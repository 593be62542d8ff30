//! UDP tunnels end to end (issue 16), through the real forwarder and the
//! adaptor library, in the Kubernetes phase:
//!
//! * WN → PP: the adaptor's local `udp:` listener (UECHO) carries each
//!   client's datagrams as one mux flow to a UDP echo server behind the
//!   forwarder; PP → WN: the forwarder's inbound `udp:` listener (WECHO)
//!   carries them to a UDP echo server that is the adaptor's WN-side
//!   target for that tunnel.
//! * 10,000 datagrams of mixed sizes (1 B to `MAX_DATAGRAM`, 16384) each
//!   way at once, 8 in flight per direction: every echo is the datagram
//!   sent, byte for byte, in order (a lost one stops the run: nothing on
//!   loopback should drop at that window).
//! * Idle flows expire (`udp-idle-secs = 2` on the forwarder): the
//!   forwarder logs the reset, the adaptor's listener forgets the flows.
//! * 100 clients at once, each its own flow: each gets its own echoes.
//! * A datagram of `MAX_DATAGRAM + 1` bytes is dropped and counted, on
//!   the WN (the tunnel's counters, as in the metrics) and on the PP (the
//!   forwarder's log).
//! * One client floods (never reads, as fast as it can send) while
//!   another does 100 round trips: the second gets all 100 echoes (a
//!   datagram lost to the flood is sent again) while the flood goes on.
//! * After the flood every flow idles out again, and a client's next
//!   datagram gets a new flow.
//! * DNS: the resolver double on the WN side is the target of the PP's
//!   inbound `DNS` tunnel; a query sent to the forwarder's UDP listener
//!   gets its answer.
//!
//! Untimed (no assertion on speed); in a debug build on two busy cores
//! both together take about 25 s (the first one; the DNS one about 1 s).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pp_adaptor::adaptor::PpHandle;
use pp_adaptor::local_tunnels::LocalAddress;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::udp::{self, STUCK, datagram, free_udp_port, mixed_len, windowed_echo};
use pp_e2e::world::World;
use pp_testdoubles::dns_double;
use tokio::net::UdpSocket;

const MAX_DATAGRAM: usize = 16_384;
const MIXED_COUNT: u64 = 10_000;
const WINDOW: u64 = 8;
const CLIENTS: u64 = 100;
const ROUND_TRIPS: u64 = 100;

fn udp_entrance(handle: &PpHandle, name: &str) -> SocketAddr {
    match handle.tunnel_address(name) {
        Some(LocalAddress::Udp(address)) => *address,
        other => panic!("{name} listens on UDP, not {other:?}"),
    }
}

fn tunnel_counts(handle: &PpHandle, name: &str) -> pp_tunnel::datagram::DatagramCounts {
    handle
        .tunnels()
        .iter()
        .find(|tunnel| tunnel.name == name)
        .map(|tunnel| tunnel.stats.counts().datagrams)
        .expect("the tunnel is served")
}

/// Polls `check` (every 50 ms, at most `STUCK`) until it holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..(STUCK.as_millis() / 50) {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(check(), "{what}");
}

/// One round trip of datagram `seq` from `socket`, sending again after
/// each second without its echo; returns how many sends it took. Echoes
/// of earlier sends that arrive late are skipped.
async fn round_trip(socket: &UdpSocket, seq: u64, len: usize) -> u64 {
    let want = datagram(seq, len);
    let mut buf = vec![0u8; 65_536];
    for sends in 1..=(STUCK.as_secs()) {
        socket.send(&want).await.expect("send");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            if buf[..n] == want[..] {
                return sends;
            }
        }
    }
    panic!("datagram {seq}: no echo within {STUCK:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_tunnels_carry_datagrams_whole_and_in_order_both_ways() {
    let (_pp_echo, pp_echo) = udp::start_echo().await;
    let (_wn_echo, wn_echo) = udp::start_echo().await;
    let wecho_port = free_udp_port();
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        extra_outbounds: vec![format!("KUBERNETES_PHASE:UECHO:udp:{}", pp_echo.port())],
        extra_inbounds: vec![format!("KUBERNETES_PHASE:WECHO:udp:{wecho_port}")],
        extra_forwarder_toml: "udp-idle-secs = 2\n".into(),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_tags_until_kubernetes(
            "e2e-udp",
            &pp,
            &["KUBERNETES_PHASE:UECHO:udp:127.0.0.1:0"],
            &[format!(
                "KUBERNETES_PHASE:WECHO:udp:127.0.0.1:{}",
                wn_echo.port()
            )],
        )
        .await;
    let uecho = udp_entrance(&handle, "UECHO");
    let wecho = SocketAddr::from((Ipv4Addr::LOCALHOST, wecho_port));

    // 10,000 mixed-size datagrams each way at once, whole and in order.
    let len_of = |seq| mixed_len(seq, MAX_DATAGRAM);
    let (to_pp, to_wn) = tokio::join!(
        windowed_echo("WN → PP", uecho, MIXED_COUNT, WINDOW, len_of),
        windowed_echo("PP → WN", wecho, MIXED_COUNT, WINDOW, len_of),
    );
    assert_eq!(to_pp.round_trips.len() as u64, MIXED_COUNT);
    assert_eq!(to_wn.round_trips.len() as u64, MIXED_COUNT);
    let counts = tunnel_counts(&handle, "UECHO");
    assert!(counts.to_peer >= MIXED_COUNT, "{counts:?}");
    assert!(counts.from_peer >= MIXED_COUNT, "{counts:?}");
    // The WN-side target's counters (the metrics' `tunnel="target:WECHO"`).
    let target = handle.targets().of("WECHO").counts().datagrams;
    assert!(target.from_peer >= MIXED_COUNT, "{target:?}");
    assert!(target.to_peer >= MIXED_COUNT, "{target:?}");

    // Idle flows expire: the forwarder resets its end after 2 s and the
    // WN's listener forgets the flow (so no client below can inherit the
    // flow of an earlier client that had the same port).
    eventually("the first flows idled out", || {
        tunnel_counts(&handle, "UECHO").flows_open == 0
    })
    .await;
    pp.forwarder()
        .wait_for("ended (idle for 2 s)", Duration::from_secs(30));

    // 100 clients at once (all sockets open until the end), each with its
    // own flow: each gets exactly its own echoes (its own sequence numbers
    // and length; anything else is skipped and would stall it).
    let opened_before = tunnel_counts(&handle, "UECHO").flows_opened;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            tokio::spawn(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                socket.connect(uecho).await.expect("connect");
                for i in 0..10 {
                    round_trip(&socket, client * 1000 + i, 100 + client as usize).await;
                }
                socket
            })
        })
        .collect();
    let mut sockets = Vec::new();
    for client in clients {
        sockets.push(client.await.expect("a client got all its echoes"));
    }
    let opened = tunnel_counts(&handle, "UECHO").flows_opened - opened_before;
    assert!(opened >= CLIENTS, "{opened} flows for {CLIENTS} clients");
    drop(sockets);

    // Too large: dropped and counted on both sides.
    let oversized = vec![7u8; MAX_DATAGRAM + 1];
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let too_large_before = tunnel_counts(&handle, "UECHO").dropped_too_large;
    client.send_to(&oversized, uecho).await.expect("send");
    client.send_to(&oversized, wecho).await.expect("send");
    eventually("the WN listener counts the oversized datagram", || {
        tunnel_counts(&handle, "UECHO").dropped_too_large == too_large_before + 1
    })
    .await;
    pp.forwarder()
        .wait_for("dropped: 1 too large", Duration::from_secs(30));

    // A flood from one client does not starve another.
    let flooding = Arc::new(AtomicBool::new(true));
    let flooded = Arc::new(AtomicU64::new(0));
    let flood = {
        let (flooding, flooded) = (flooding.clone(), flooded.clone());
        tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            socket.connect(uecho).await.expect("connect");
            let bytes = datagram(0, 1024);
            while flooding.load(Ordering::Relaxed) {
                if socket.send(&bytes).await.is_ok() {
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    eventually("the flood is under way", || {
        flooded.load(Ordering::Relaxed) > 1000
    })
    .await;
    let quiet = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    quiet.connect(uecho).await.expect("connect");
    let mut sends = 0;
    for seq in 0..ROUND_TRIPS {
        sends += round_trip(&quiet, seq, 64).await;
    }
    let during = flooded.load(Ordering::Relaxed);
    flooding.store(false, Ordering::Relaxed);
    flood.await.expect("the flood ends");
    assert!(
        during > 10 * ROUND_TRIPS,
        "the flood sent only {during} datagrams meanwhile"
    );
    eprintln!(
        "{ROUND_TRIPS} round trips took {sends} sends while {during} flood datagrams went out"
    );

    // After the flood, too, every flow idles out, and a client's next
    // datagram opens a new flow.
    eventually("every flow of the WN listener ended", || {
        tunnel_counts(&handle, "UECHO").flows_open == 0
    })
    .await;
    let opened_before = tunnel_counts(&handle, "UECHO").flows_opened;
    round_trip(&quiet, 1_000_000, 10).await;
    assert_eq!(
        tunnel_counts(&handle, "UECHO").flows_opened,
        opened_before + 1,
        "a new flow after the idle reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_query_from_the_pp_gets_its_answer_from_the_wn_resolver() {
    let resolver = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind the resolver");
    let resolver_addr = resolver.local_addr().expect("its address");
    let records = HashMap::from([(
        "kubernetes.default.svc.cluster.local".to_owned(),
        Ipv4Addr::new(10, 96, 0, 1),
    )]);
    let _resolver = tokio::spawn(dns_double::serve(resolver, records));
    let dns_port = free_udp_port();
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        extra_inbounds: vec![format!("KUBERNETES_PHASE:DNS:udp:{dns_port}")],
        ..PpOptions::default()
    });
    pp.wait_listening();
    let _handle = world
        .serve_tags_until_kubernetes(
            "e2e-dns",
            &pp,
            &[] as &[&str],
            &[format!("KUBERNETES_PHASE:DNS:udp:{resolver_addr}")],
        )
        .await;
    // A pod's stub resolver: the PP's DNS tunnel is its nameserver.
    let stub = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    stub.connect(("127.0.0.1", dns_port))
        .await
        .expect("connect");
    let mut buf = [0u8; 512];
    let mut answers = Vec::new();
    for (id, name) in [
        (0x5151, "kubernetes.default.svc.cluster.local"),
        (0x5152, "nowhere.example"),
    ] {
        let query = dns_double::build_query(id, name).expect("a query");
        // As a stub resolver does: ask again after a second without answer.
        let answer = loop {
            stub.send(&query).await.expect("send the query");
            if let Ok(received) =
                tokio::time::timeout(Duration::from_secs(1), stub.recv(&mut buf)).await
            {
                let len = received.expect("receive the answer");
                break dns_double::parse_answer(&buf[..len]).expect("a DNS answer");
            }
            assert!(answers.len() < 100, "no answer for {name}");
        };
        assert_eq!(answer.id, id);
        answers.push(answer);
    }
    assert_eq!(answers[0].rcode, dns_double::RCODE_NOERROR);
    assert_eq!(answers[0].addresses, [Ipv4Addr::new(10, 96, 0, 1)]);
    assert_eq!(answers[1].rcode, dns_double::RCODE_NXDOMAIN);
}
