//! `pp-bench-flood`: how promptly the WN gets back in while unauthenticated
//! floods run, and what the floods cost the forwarder. Prints a table.
//!
//! For each flood (silent, banner-then-stall, byte-dribble, reopen-on-close;
//! `FLOOD_CONNECTIONS` connections from 8 sources, 127.0.0.2-9) and each
//! client: a fresh PP is taken to the Kubernetes phase by the adaptor, the
//! adaptor lets go, the flood starts, and a Kubernetes-phase client with
//! the WN key connects until admitted (as the adaptor's reconnect does).
//! Clients: the WN reconnecting from the address it used before (a
//! "proven" source), a new source (127.0.1.1), and a new source listed in
//! `wn-source-networks`. Measured: the time until admitted, the forwarder's
//! RSS and open fds before the flood, at its peak and after it stopped, and
//! the log lines the forwarder wrote meanwhile.
//!
//! Run it through `scripts/bench-flood.sh` (release build, loopback only).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use pp_e2e::flood::{Flood, FloodKind, sources};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::World;
use pp_ssh_key::PrivateKey;

const FLOOD_CONNECTIONS: usize = 1000;
const FLOOD_SOURCES: u8 = 8;
/// The most one client waits before the row counts as missed.
const GIVE_UP: Duration = Duration::from_secs(60);
const NEW_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Proven,
    NewSource,
    Listed,
}

impl Client {
    fn describe(self) -> &'static str {
        match self {
            Client::Proven => "WN reconnect (same source)",
            Client::NewSource => "new source",
            Client::Listed => "new source in wn-source-networks",
        }
    }

    fn goal(self) -> Duration {
        match self {
            Client::Listed => Duration::from_secs(1),
            _ => Duration::from_secs(5),
        }
    }
}

/// The forwarder's RSS (KiB), open fds and log lines at one moment.
#[derive(Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    lines: usize,
}

impl Sample {
    fn of(pp: &Pp) -> Sample {
        let pid = pp.forwarder().pid();
        let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let lines = pp.forwarder().output().lines().count();
        Sample {
            rss_kib,
            fds,
            lines,
        }
    }
}

struct Row {
    kind: FloodKind,
    client: Client,
    admitted_after: Option<Duration>,
    before: Sample,
    peak: Sample,
    after: Sample,
    flood_connects: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let world = World::start();
    let key_file = world.dir.path().join("adaptor").join("keys").join("wn");
    let wn_key = std::fs::read_to_string(&key_file)
        .ok()
        .and_then(|text| PrivateKey::parse(&text).ok())
        .expect("the adaptor's WN key");
    let mut rows = Vec::new();
    for client in [Client::Proven, Client::NewSource, Client::Listed] {
        for kind in FloodKind::ALL {
            let row = run(&world, &wn_key, kind, client, rows.len()).await;
            eprintln!(
                "{} / {}: {:?}",
                kind.name(),
                client.describe(),
                row.admitted_after
            );
            rows.push(row);
        }
    }
    print_table(&rows);
}

async fn run(world: &World, wn_key: &PrivateKey, kind: FloodKind, client: Client, n: usize) -> Row {
    let list = if client == Client::Listed {
        "wn-source-networks = [\"127.0.1.0/24\"]\n"
    } else {
        ""
    };
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        max_startups: 32,
        extra_forwarder_toml: list.into(),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_until_kubernetes(&format!("flood-{n}"), &pp, &["KATAAGENT"])
        .await;
    world.adaptor.stop_pp(handle.sid()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = Sample::of(&pp);

    let target: SocketAddr = pp.ssh_addr().parse().expect("an address");
    let flood = Flood::start(kind, target, FLOOD_CONNECTIONS, &sources(FLOOD_SOURCES));
    let settle = Instant::now();
    while flood.connects() < FLOOD_CONNECTIONS as u64 && settle.elapsed() < GIVE_UP {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the flood hold its slots before the WN comes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut peak = Sample::of(&pp);

    let source = (client != Client::Proven).then_some(NEW_SOURCE);
    let started = Instant::now();
    let mut admitted_after = None;
    while started.elapsed() < GIVE_UP {
        let attempt = ssh::attempt_from(
            source,
            &pp.ssh_addr(),
            Some(wn_key),
            Duration::from_secs(10),
        )
        .await;
        let now = Sample::of(&pp);
        peak.rss_kib = peak.rss_kib.max(now.rss_kib);
        peak.fds = peak.fds.max(now.fds);
        if attempt.authenticated {
            admitted_after = Some(started.elapsed());
            break;
        }
        // The adaptor's first reconnect back-off.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flood_connects = flood.connects();
    flood.stop().await;
    // The forwarder sees every flood connection close at once; give it a
    // moment to clean up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = Sample::of(&pp);
    Row {
        kind,
        client,
        admitted_after,
        before,
        peak,
        after,
        flood_connects,
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| flood ({FLOOD_CONNECTIONS} conns, {FLOOD_SOURCES} sources) | client | admitted after | goal | met | RSS before → peak → after (KiB) | RSS goal ≤ +1 MiB | fds before / peak / after | log lines | flood connects |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let goal = row.client.goal();
        let (admitted, met) = match row.admitted_after {
            Some(d) => (format!("{:.2} s", d.as_secs_f64()), d <= goal),
            None => (format!("> {} s", GIVE_UP.as_secs()), false),
        };
        let rss_met = row.after.rss_kib <= row.before.rss_kib + 1024;
        println!(
            "| {} | {} | {admitted} | ≤ {} s | {} | {} → {} → {} | {} | {} / {} / {} | {} | {} |",
            row.kind.name(),
            row.client.describe(),
            goal.as_secs(),
            if met { "met" } else { "missed" },
            row.before.rss_kib,
            row.peak.rss_kib,
            row.after.rss_kib,
            if rss_met { "met" } else { "missed" },
            row.before.fds,
            row.peak.fds,
            row.after.fds,
            row.after.lines - row.before.lines,
            row.flood_connects,
        );
    }
}
