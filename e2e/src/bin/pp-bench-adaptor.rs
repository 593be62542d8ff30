//! `pp-bench-adaptor`: one `pp-adaptor serve` with 256 pods attached
//! through the control API (waves of 32, as in the e2e scale test), then
//! idle in the Kubernetes phase; prints a markdown table: the adaptor's
//! RSS and CPU while idle (goal: <= 100 MB RSS), the CPU it spent getting
//! them there, and the time from `attach` to the Kubernetes phase (p50,
//! p99, max over the 256; from the daemon's own `since_unix_ms`). Run it
//! through `scripts/bench-adaptor.sh`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pp_e2e::daemon::Daemon;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::raise_fd_limit;
use pp_e2e::world::World;

const PODS: usize = 256;
const WAVE: usize = 32;
const IDLE: Duration = Duration::from_secs(20);
const RSS_GOAL_MB: f64 = 100.0;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Resident set size of `pid` in MB (VmRSS).
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) `pid` used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th of those; clock ticks of 1/100 s on Linux.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    raise_fd_limit(16_384);
    let world = World::start();
    let daemon = Daemon::start(&world, "bench-daemon", &[]);
    let pid = daemon.process.pid();
    let cpu_at_start = cpu_secs(pid);
    let rss_at_start = rss_mb(pid);
    let sids: Vec<String> = (0..PODS).map(|i| format!("bench-{i}")).collect();
    let mut pps: Vec<Pp> = Vec::with_capacity(PODS);
    let mut latencies_ms = Vec::with_capacity(PODS);
    for wave in sids.chunks(WAVE) {
        let mut started = Vec::new();
        for sid in wave {
            let wn = daemon.create(sid).await;
            let pp = Pp::start(PpOptions {
                wn_key: Some(wn),
                ..PpOptions::default()
            });
            pp.wait_listening();
            started.push(pp);
        }
        let mut attached_at = Vec::new();
        for (sid, pp) in wave.iter().zip(&started) {
            attached_at.push(now_ms());
            daemon.attach(sid, pp).await;
        }
        for (sid, at) in wave.iter().zip(attached_at) {
            let pod = daemon
                .wait_phase(sid, "kubernetes", Duration::from_secs(300))
                .await;
            let since = pod["since_unix_ms"].as_u64().unwrap_or(at);
            latencies_ms.push(since.saturating_sub(at));
        }
        pps.extend(started);
    }
    let cpu_attaching = cpu_secs(pid) - cpu_at_start;
    let cpu_before_idle = cpu_secs(pid);
    tokio::time::sleep(IDLE).await;
    let cpu_idle = cpu_secs(pid) - cpu_before_idle;
    let rss = rss_mb(pid);
    let reconnects: u64 = {
        let listed = daemon.call(hyper::Method::GET, "/v1/pods", None).await;
        listed["pods"]
            .as_array()
            .map(|pods| {
                pods.iter()
                    .filter_map(|pod| pod["reconnects"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    latencies_ms.sort_unstable();

    println!("| adaptor with {PODS} pods (Kubernetes phase) | value | goal |");
    println!("|---|---|---|");
    println!(
        "| RSS idle ({} s after the last attach) | {rss:.1} MB | <= {RSS_GOAL_MB} MB ({}) |",
        IDLE.as_secs(),
        if rss <= RSS_GOAL_MB { "met" } else { "missed" }
    );
    println!("| RSS at start, no pods | {rss_at_start:.1} MB | |");
    println!(
        "| CPU idle | {:.2} % of one core ({cpu_idle:.2} s in {} s) | |",
        cpu_idle / IDLE.as_secs_f64() * 100.0,
        IDLE.as_secs()
    );
    println!("| CPU to create + attach all {PODS} | {cpu_attaching:.2} s | |");
    println!(
        "| attach → Kubernetes phase p50 / p99 / max | {} / {} / {} ms | |",
        percentile(&latencies_ms, 0.50),
        percentile(&latencies_ms, 0.99),
        latencies_ms.last().copied().unwrap_or(0)
    );
    println!("| reconnects (all pods) | {reconnects} | 0 |");
    drop(pps);
}
