//! Stock OpenSSH tools for tests and the benchmark: `ssh-keygen` keys and
//! an `ssh` command line with no user configuration.

use std::path::Path;
use std::process::Command;

/// `ssh-keygen -t ed25519` without a passphrase, at `path` (+ `.pub`).
pub fn ssh_keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

/// `ssh` with `identity` to port `port` on loopback, batch mode, no user
/// config. With `known_hosts` the host key is verified strictly against
/// it; without, any host key is taken (benchmarks only).
pub fn ssh_command(identity: &Path, port: u16, known_hosts: Option<&Path>) -> Command {
    let mut command = Command::new("ssh");
    command.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]);
    match known_hosts {
        Some(file) => command
            .args(["-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", file.display())),
        None => command.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ]),
    };
    command
        .arg("-i")
        .arg(identity)
        .args(["-p", &port.to_string()]);
    command
}
