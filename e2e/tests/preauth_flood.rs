//! Pre-auth fairness seen from outside: while floods of unauthenticated
//! connections from other sources run (1,000 silent ones and a
//! reopen-on-close flood), the WN still gets in, and the forwarder logs
//! the refusals as counts, not a line each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pp_e2e::flood::{Flood, FloodKind, sources};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::random_key;
use pp_ssh_key::PrivateKey;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous: a retrying client under flood on a loaded test machine.
const MOST_ATTEMPTS: usize = 300;

/// Connects from 127.0.0.1 with `key` until admitted, like the adaptor's
/// reconnect loop.
async fn get_in(pp: &Pp, key: &PrivateKey) -> ssh::Attempt {
    for _ in 0..MOST_ATTEMPTS {
        let attempt = ssh::attempt(&pp.ssh_addr(), Some(key), ATTEMPT_TIMEOUT).await;
        if attempt.authenticated {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the WN was kept out for {MOST_ATTEMPTS} attempts; forwarder said:\n{}",
        pp.forwarder().output()
    );
}

/// Waits until `flood` made at least `n` connections.
async fn until_connected(flood: &Flood, n: u64) {
    for _ in 0..600 {
        if flood.connects() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the flood made only {} of {n} connections",
        flood.connects()
    );
}

fn refusal_lines(pp: &Pp) -> usize {
    pp.forwarder()
        .output()
        .lines()
        .filter(|l| l.contains("refused a connection from") || l.contains("more connections from"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wn_gets_in_while_1000_silent_connections_and_a_reopen_flood_run() {
    let wn = random_key();
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        max_startups: 32,
        ..PpOptions::default()
    });
    pp.wait_listening();
    let target: SocketAddr = pp.ssh_addr().parse().expect("an address");
    let started = Instant::now();
    let silent = Flood::start(FloodKind::Silent, target, 1000, &sources(8));
    let reopen = Flood::start(FloodKind::ReopenOnClose, target, 200, &sources(8));
    until_connected(&silent, 1000).await;
    until_connected(&reopen, 1000).await;

    let admitted = get_in(&pp, &wn).await;
    pp.forwarder()
        .wait_for("admitted in the attestation phase", Duration::from_secs(30));
    let flood_connects = silent.connects() + reopen.connects();
    let lines = refusal_lines(&pp);
    // At most one line per reason (4) per 10 s interval, plus the first.
    let intervals = started.elapsed().as_secs() as usize / 10 + 2;
    assert!(
        lines <= 4 * intervals,
        "{lines} refusal lines for {flood_connects} flood connections in {intervals} intervals"
    );
    assert!(
        flood_connects > 2000,
        "the floods ran ({flood_connects} connections)"
    );
    silent.stop().await;
    reopen.stop().await;
    drop(admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wn_source_networks_only_other_sources_are_refused_at_accept() {
    let wn = random_key();
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        extra_forwarder_toml: "wn-source-networks = [\"127.0.0.1/32\"]\n\
                               wn-source-networks-only = true\n"
            .into(),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let target: SocketAddr = pp.ssh_addr().parse().expect("an address");
    let reopen = Flood::start(FloodKind::ReopenOnClose, target, 200, &sources(4));
    until_connected(&reopen, 1000).await;
    pp.forwarder()
        .wait_for("is not in wn-source-networks", Duration::from_secs(30));
    assert_eq!(
        pp.forwarder().count("accepted, phase"),
        0,
        "no flood connection got as far as the SSH handshake"
    );
    let admitted = get_in(&pp, &wn).await;
    reopen.stop().await;
    drop(admitted);
}
