//! `pp-bench-udp`: the UDP tunnel row of `scripts/bench.sh` (issue 16).
//! Measures, in one run on this machine, a UDP echo reached through a UDP
//! tunnel (the adaptor's local `udp:` listener → mux flow over the SSH
//! connection → the forwarder → a UDP echo server on the PP side) against
//! the same echo server reached directly on loopback, and prints a table:
//! round trip of one 64-byte datagram at a time (p50, p99), and echoed
//! datagrams per second with 32 of 512 bytes in flight. Run it through
//! `scripts/bench.sh`, which builds release binaries first.

use std::net::SocketAddr;
use std::time::Duration;

use pp_adaptor::local_tunnels::LocalAddress;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::udp::{percentile, start_echo, windowed_echo};
use pp_e2e::world::World;

const ROUND_TRIPS: u64 = 2000;
const RATE_COUNT: u64 = 20_000;
const RATE_WINDOW: u64 = 32;
const RATE_BYTES: usize = 512;

struct Row {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

async fn measure(what: &str, to: SocketAddr) -> Row {
    let mut single = windowed_echo(what, to, ROUND_TRIPS, 1, |_| 64).await;
    let rate = windowed_echo(what, to, RATE_COUNT, RATE_WINDOW, |_| RATE_BYTES).await;
    Row {
        p50: percentile(&mut single.round_trips, 50),
        p99: percentile(&mut single.round_trips, 99),
        per_second: RATE_COUNT as f64 / rate.elapsed.as_secs_f64(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (_echo, echo) = start_echo().await;
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        extra_outbounds: vec![format!("KUBERNETES_PHASE:UECHO:udp:{}", echo.port())],
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_tags_until_kubernetes(
            "bench-udp",
            &pp,
            &["KUBERNETES_PHASE:UECHO:udp:127.0.0.1:0"],
            &[] as &[&str],
        )
        .await;
    let Some(LocalAddress::Udp(tunnel)) = handle.tunnel_address("UECHO").cloned() else {
        panic!("UECHO listens on UDP");
    };
    let ours = measure("UDP tunnel", tunnel).await;
    let plain = measure("loopback", echo).await;
    let micros = |d: Duration| format!("{} µs", d.as_micros());
    println!("| UDP echo | through the tunnel | plain loopback | ratio |");
    println!("|---|---|---|---|");
    for (name, a, b, ratio) in [
        (
            "round trip 64 B p50",
            micros(ours.p50),
            micros(plain.p50),
            ours.p50.as_secs_f64() / plain.p50.as_secs_f64(),
        ),
        (
            "round trip 64 B p99",
            micros(ours.p99),
            micros(plain.p99),
            ours.p99.as_secs_f64() / plain.p99.as_secs_f64(),
        ),
        (
            "datagrams/s (512 B, 32 in flight, echoed)",
            format!("{:.0}", ours.per_second),
            format!("{:.0}", plain.per_second),
            ours.per_second / plain.per_second,
        ),
    ] {
        println!("| {name} | {a} | {b} | {ratio:.2} |");
    }
}
