//! Harness for the end-to-end tests: starts the project's binaries (the
//! forwarder and the test doubles) on loopback ports, captures their
//! output, and kills them when the test ends, also when it fails.
//!
//! The binaries are found next to the test executable's target directory;
//! build them first with `cargo build --workspace --bins`.
#![forbid(unsafe_code)]

pub mod pp;
pub mod process;
pub mod ssh;
pub mod world;

use std::path::PathBuf;

/// The path of a workspace binary built in the same profile as the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before these tests",
        path.display()
    );
    path
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("can bind a loopback port")
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
