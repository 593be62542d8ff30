//! `pp-bench`: measures, in one run on this machine, the forwarder's tunnel
//! against OpenSSH doing the same job, and prints a table.
//!
//! Rows: 64-byte echo round trip (p50/p99) and throughput both ways through
//! a tunnel: ours (the `pp-adaptor` daemon, a process of its own →
//! forwarder → target) and OpenSSH's (`ssh -L` through Debian's `sshd` on a
//! loopback port); the forwarder's peak RSS;
//! time from TCP connect to the first tunnel byte in the Kubernetes phase
//! (stock `ssh` client in both cases: `exec tunnel ECHO` on the forwarder,
//! `-W` on sshd). Each row has the ratio ours/OpenSSH, its goal (issue 12)
//! and whether it was met. Run it through `scripts/bench.sh`, which builds release
//! binaries first. The echo and bulk measurements run in rounds that
//! alternate the two paths (`PP_BENCH_ROUNDS`, default 3; the profile script
//! uses 1). `PP_BENCH_ADAPTOR_THREADS` (default 1, as `ssh` has one thread)
//! sets the adaptor daemon's tokio worker threads.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pp_e2e::daemon::Daemon;
use pp_e2e::openssh::{ssh_command, ssh_keygen};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::process::Process;
use pp_e2e::udp::percentile;
use pp_e2e::world::World;
use pp_e2e::{bin, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ECHO_COUNT: usize = 2000;
const BULK_BYTES: u64 = 256 * 1024 * 1024;
const CONNECT_RUNS: usize = 10;
/// Rounds of the echo and bulk measurements per path (`PP_BENCH_ROUNDS`).
const DEFAULT_ROUNDS: usize = 3;

/// Where each measured path enters on the WN side.
struct Entrances {
    echo: SocketAddr,
    sink: SocketAddr,
    source: SocketAddr,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (_echo, echo_port) = start_echo_target();
    let sink_port = start_sink().await;
    let source_port = start_source().await;
    let targets = [
        ("ECHO", echo_port),
        ("SINK", sink_port),
        ("SOURCE", source_port),
    ];

    // Ours: the whole two-phase flow, then three local tunnel listeners,
    // served by the `pp-adaptor` daemon in a process of its own, as on a
    // worker node and as `ssh` runs beside this process below. One worker
    // thread, as `ssh` has one: on this two-CPU machine a second one only
    // competes with the forwarder and this process for the CPUs (on a
    // worker node the PP runs elsewhere; docs/benchmarks.md has both).
    let world = World::start();
    let adaptor_threads =
        std::env::var("PP_BENCH_ADAPTOR_THREADS").unwrap_or_else(|_| "1".to_owned());
    let adaptor = Daemon::start_with_env(
        &world,
        "bench",
        &[],
        &[("TOKIO_WORKER_THREADS", adaptor_threads.as_str())],
    );
    let wn_key = adaptor.create("bench").await;
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn_key),
        extra_outbounds: targets
            .iter()
            .map(|(name, port)| format!("KUBERNETES_PHASE:{name}:127.0.0.1:{port}"))
            .collect(),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let addresses = adaptor
        .attach_tunnels("bench", &pp, &["ECHO", "SINK", "SOURCE"])
        .await;
    adaptor
        .wait_phase("bench", "kubernetes", Duration::from_secs(120))
        .await;
    let entrance = |i: usize| -> SocketAddr {
        addresses[i]
            .parse()
            .unwrap_or_else(|_| panic!("{} is an IP:PORT", addresses[i]))
    };
    let ours = Entrances {
        echo: entrance(0),
        sink: entrance(1),
        source: entrance(2),
    };

    // OpenSSH: sshd on loopback with the same WN key, `ssh -L` for each target.
    let scratch = pp_e2e::scratch_dir();
    let wn_key_file = adaptor.dir.join("keys").join("wn");
    let sshd = Sshd::start(scratch.path(), &wn_key_file);
    let forwards: Vec<(u16, u16)> = targets
        .iter()
        .map(|(_, port)| (free_port(), *port))
        .collect();
    let _tunnel = sshd.forward(&wn_key_file, &forwards);
    let local = |i: usize| SocketAddr::from(([127, 0, 0, 1], forwards[i].0));
    wait_until_listening(local(0)).await;
    let openssh = Entrances {
        echo: local(0),
        sink: local(1),
        source: local(2),
    };

    // Rounds alternate the two paths (ours first, then OpenSSH first, ...)
    // so that both see the same moments of this machine; each row is the
    // median (throughput) or the percentile of the pooled round trips.
    let rounds: usize = std::env::var("PP_BENCH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_ROUNDS);
    let mut runs = [Runs::default(), Runs::default()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let path = [&ours, &openssh][index];
            let run = &mut runs[index];
            run.round_trips.extend(echo_round_trips(path.echo).await);
            next_profile_phase();
            run.up.push(upload(path.sink).await);
            next_profile_phase();
            run.down.push(download(path.source).await);
            next_profile_phase();
        }
    }
    let rows = runs.map(|run| run.row());
    // The forwarder's high-water mark now covers the bulk transfers.
    let rss = peak_rss_kib(pp.forwarder().pid());
    // A newer authenticated connection supersedes the older one: stop the
    // adaptor so that the stock `ssh` clients below keep theirs.
    drop(adaptor);
    let ours_connect = median_connect(|| ssh_first_byte_forwarder(&pp, &wn_key_file));
    let openssh_connect = median_connect(|| ssh_first_byte_sshd(&sshd, &wn_key_file, echo_port));

    let (ours, theirs) = (&rows[0], &rows[1]);
    let micros = |d: Duration| format!("{} µs", d.as_micros());
    let ratio = |a: f64, b: f64| a / b;
    let metrics = [
        Metric::new(
            "echo 64 B p50",
            micros(ours.p50),
            micros(theirs.p50),
            ratio(ours.p50.as_secs_f64(), theirs.p50.as_secs_f64()),
            Goal::AtMost(1.1),
        ),
        Metric::new(
            "echo 64 B p99",
            micros(ours.p99),
            micros(theirs.p99),
            ratio(ours.p99.as_secs_f64(), theirs.p99.as_secs_f64()),
            Goal::AtMost(1.0),
        ),
        Metric::new(
            "throughput WN→PP",
            format!("{:.0} MB/s", ours.up),
            format!("{:.0} MB/s", theirs.up),
            ratio(ours.up, theirs.up),
            Goal::AtLeast(0.7),
        ),
        Metric::new(
            "throughput PP→WN",
            format!("{:.0} MB/s", ours.down),
            format!("{:.0} MB/s", theirs.down),
            ratio(ours.down, theirs.down),
            Goal::AtLeast(0.7),
        ),
        Metric::new(
            "connect → first tunnel byte (stock ssh)",
            format!("{:.1} ms", ours_connect.as_secs_f64() * 1e3),
            format!("{:.1} ms", openssh_connect.as_secs_f64() * 1e3),
            ratio(ours_connect.as_secs_f64(), openssh_connect.as_secs_f64()),
            Goal::None,
        ),
    ];
    println!(
        "(ours: the pp-adaptor daemon with {adaptor_threads} worker thread(s), PP_BENCH_ADAPTOR_THREADS)"
    );
    println!();
    println!("| metric | pp-forwarder | OpenSSH | ratio ours/OpenSSH | goal | met |");
    println!("|---|---|---|---|---|---|");
    for m in &metrics {
        println!(
            "| {} | {} | {} | {:.2} | {} | {} |",
            m.name,
            m.ours,
            m.openssh,
            m.ratio,
            m.goal.text(),
            m.goal.verdict(m.ratio)
        );
    }
    let rss_goal_kib = 6 * 1024;
    println!(
        "| forwarder peak RSS (VmHWM) after the bulk transfers | {rss} KiB | | | ≤ {rss_goal_kib} KiB | {} |",
        if rss > 0 && rss <= rss_goal_kib {
            "met"
        } else {
            "missed"
        }
    );
    let mbs = |runs: &[f64]| {
        runs.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!(
        "{rounds} rounds, paths alternating; throughput is the median, echo the percentiles of all {} round trips. MB/s per round, ours | OpenSSH: WN→PP {} | {}, PP→WN {} | {}",
        rounds * ECHO_COUNT,
        mbs(&ours.up_runs),
        mbs(&theirs.up_runs),
        mbs(&ours.down_runs),
        mbs(&theirs.down_runs)
    );
}

/// With `PP_BENCH_PERF_PID` set (scripts/bench.sh --profile), tells that
/// `perf record --switch-output` to start a new file: one per phase (echo,
/// upload, download; ours, then OpenSSH).
fn next_profile_phase() {
    if let Some(pid) = std::env::var_os("PP_BENCH_PERF_PID") {
        let _ = Command::new("kill").arg("-USR2").arg(pid).status();
        // perf writes the file before it takes new samples.
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One path's measurements over all rounds.
#[derive(Default)]
struct Runs {
    round_trips: Vec<Duration>,
    up: Vec<f64>,
    down: Vec<f64>,
}

impl Runs {
    fn row(mut self) -> Row {
        Row {
            p50: percentile(&mut self.round_trips, 50),
            p99: percentile(&mut self.round_trips, 99),
            up: median(&self.up),
            down: median(&self.down),
            up_runs: self.up,
            down_runs: self.down,
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// One path's measurements.
struct Row {
    p50: Duration,
    p99: Duration,
    up: f64,
    down: f64,
    /// Each round's MB/s, in round order.
    up_runs: Vec<f64>,
    down_runs: Vec<f64>,
}

/// What the ratio ours/OpenSSH must be (docs/benchmarks.md, issue 12).
enum Goal {
    AtMost(f64),
    AtLeast(f64),
    None,
}

impl Goal {
    fn text(&self) -> String {
        match self {
            Goal::AtMost(x) => format!("≤ {x}×"),
            Goal::AtLeast(x) => format!("≥ {x}×"),
            Goal::None => "—".into(),
        }
    }

    fn verdict(&self, ratio: f64) -> &'static str {
        match self {
            Goal::AtMost(x) if ratio <= *x => "met",
            Goal::AtLeast(x) if ratio >= *x => "met",
            Goal::None => "—",
            _ => "missed",
        }
    }
}

struct Metric {
    name: &'static str,
    ours: String,
    openssh: String,
    ratio: f64,
    goal: Goal,
}

impl Metric {
    fn new(name: &'static str, ours: String, openssh: String, ratio: f64, goal: Goal) -> Metric {
        Metric {
            name,
            ours,
            openssh,
            ratio,
            goal,
        }
    }
}

/// agent-echo on TCP, the stand-in kata-agent; killed when dropped.
fn start_echo_target() -> (Process, u16) {
    let port = free_port();
    let echo = Process::spawn(
        &bin("agent-echo"),
        &["--tcp".into(), format!("127.0.0.1:{port}")],
    );
    echo.wait_for("listening", Duration::from_secs(10));
    (echo, port)
}

/// Reads everything, then answers with the byte count (8 bytes, BE).
async fn start_sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = socket.write_all(&total.to_be_bytes()).await;
            });
        }
    });
    port
}

/// Reads a length (8 bytes, BE), sends that many bytes, closes.
async fn start_source() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind source");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 8];
                if socket.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut left = u64::from_be_bytes(len);
                let chunk = vec![0x5au8; 64 * 1024];
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

async fn wait_until_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

async fn echo_round_trips(addr: SocketAddr) -> Vec<Duration> {
    let mut stream = TcpStream::connect(addr).await.expect("connect echo");
    stream.set_nodelay(true).expect("nodelay");
    let message = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut samples = Vec::with_capacity(ECHO_COUNT);
    for _ in 0..ECHO_COUNT {
        let start = Instant::now();
        stream.write_all(&message).await.expect("write");
        stream.read_exact(&mut back).await.expect("read");
        samples.push(start.elapsed());
    }
    samples
}

async fn upload(addr: SocketAddr) -> f64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect sink");
    let chunk = vec![0xa5u8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < BULK_BYTES {
        stream.write_all(&chunk).await.expect("write");
        sent += chunk.len() as u64;
    }
    stream.shutdown().await.expect("half-close");
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.expect("sink count");
    assert_eq!(u64::from_be_bytes(count), sent, "the sink got everything");
    sent as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn download(addr: SocketAddr) -> f64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect source");
    let start = Instant::now();
    stream
        .write_all(&BULK_BYTES.to_be_bytes())
        .await
        .expect("write length");
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, BULK_BYTES, "the source sent everything");
    got as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn median_connect(mut once: impl FnMut() -> Duration) -> Duration {
    let mut runs: Vec<Duration> = (0..CONNECT_RUNS).map(|_| once()).collect();
    runs.sort();
    runs[CONNECT_RUNS / 2]
}

/// Spawns `command` (an `ssh` whose stdin/stdout are a tunnel to an echo
/// server), writes one byte and times until it comes back.
fn first_byte(mut command: Command) -> Duration {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh");
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"x")
        .expect("write");
    let mut byte = [0u8; 1];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut byte)
        .expect("the byte comes back");
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn ssh_first_byte_forwarder(pp: &Pp, key: &Path) -> Duration {
    let mut command = ssh_command(key, pp.ssh_port, None);
    command.args(["peerpod@127.0.0.1", "tunnel", "ECHO"]);
    first_byte(command)
}

fn ssh_first_byte_sshd(sshd: &Sshd, key: &Path, echo_port: u16) -> Duration {
    let mut command = ssh_command(key, sshd.port, None);
    command.args([
        "-W",
        &format!("127.0.0.1:{echo_port}"),
        &format!("{}@127.0.0.1", sshd.user),
    ]);
    first_byte(command)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Debian's sshd on a loopback port, accepting the WN key for the current user.
struct Sshd {
    _process: Process,
    port: u16,
    user: String,
}

impl Sshd {
    fn start(dir: &Path, wn_key: &Path) -> Sshd {
        let host_key = dir.join("sshd_host_key");
        ssh_keygen(&host_key, "bench-sshd");
        let public = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(wn_key)
            .output()
            .expect("ssh-keygen -y");
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, &public.stdout).expect("authorized_keys");
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nAllowTcpForwarding yes\nPidFile none\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .expect("sshd_config");
        let process = Process::spawn(
            Path::new("/usr/sbin/sshd"),
            &[
                "-D".into(),
                "-e".into(),
                "-f".into(),
                config.display().to_string(),
            ],
        );
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        Sshd {
            _process: process,
            port,
            user,
        }
    }

    /// `ssh -N -L local:127.0.0.1:remote ...` kept running.
    fn forward(&self, key: &Path, forwards: &[(u16, u16)]) -> Process {
        let mut command = ssh_command(key, self.port, None);
        command.arg("-N");
        for (local, remote) in forwards {
            command
                .arg("-L")
                .arg(format!("127.0.0.1:{local}:127.0.0.1:{remote}"));
        }
        command.arg(format!("{}@127.0.0.1", self.user));
        std::thread::sleep(Duration::from_millis(300)); // sshd binds its port
        Process::from_command(command)
    }
}
