//! Harness for the end-to-end tests: starts the project's binaries (the
//! forwarder and the test doubles) on loopback ports, captures their
//! output, and kills them when the test ends, also when it fails.
//!
//! The binaries are found next to the test executable's target directory;
//! build them first with `cargo build --workspace --bins`.
#![forbid(unsafe_code)]

pub mod daemon;
pub mod flood;
pub mod openssh;
pub mod pp;
pub mod process;
pub mod raw_ssh;
pub mod ssh;
pub mod udp;
pub mod world;

use std::path::PathBuf;

/// The path of a workspace binary built in the same profile as the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // Tests live in target/<profile>/deps/, pp-bench in target/<profile>/.
    let mut dir = exe.parent().expect("the executable is in a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps/ is inside target/<profile>");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before these tests",
        path.display()
    );
    path
}

/// A loopback TCP port that was free a moment ago, for a process the test
/// starts next. It comes from below Linux's ephemeral range (32768 and up),
/// so the many outgoing connections of a test cannot take it meanwhile,
/// and it is never handed out twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    // Spread the processes of parallel test binaries over the range.
    let start = 20_000 + (std::process::id() as usize * 7919) % 12_000;
    (0..12_000)
        .map(|i| (20_000 + (start - 20_000 + i) % 12_000) as u16)
        .find(|port| {
            !handed_out.contains(port) && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
        })
        .inspect(|port| handed_out.push(*port))
        .expect("a free loopback port between 20000 and 32000")
}

/// Raises this process's open-file limit (soft) to `wanted`, or to the hard
/// limit when that is lower; children inherit it. Returns the new limit.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let current = limit.current.unwrap_or(u64::MAX);
    if current < wanted {
        limit.current = Some(wanted.min(hard));
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A scratch directory on tmpfs when the machine has one (like the PP's
/// /run), removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("pp-e2e-")
        .tempdir_in(if shm.is_dir() {
            shm
        } else {
            std::path::Path::new("/tmp")
        });
    builder.expect("can create a scratch directory")
}
