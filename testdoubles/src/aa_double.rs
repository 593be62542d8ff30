//! The attestation agent TEST DOUBLE (guest-components' `attestation-agent`,
//! ttrpc build) as the production image starts it: `-c aa.toml` must be
//! readable (the real one exits 1 otherwise), then it listens on AA's real
//! socket. It does not speak ttrpc: the CDH double only needs to find AA
//! there (the real CDH exits when it cannot reach AA, and gets its evidence
//! from it for every request), and the KBS evidence is made by the CDH
//! double's KBS client.
//!
//! A test can make it start late, as a real AA does on a TEE whose attester
//! talks to firmware or a quote service: [`start_delay`] reads
//! `pp.test.aa_start_delay_ms=N` from the kernel command line (how a QEMU
//! test reaches a service whose command line is the production one) or
//! `AA_DOUBLE_START_DELAY_MS` from the environment.

use std::time::Duration;
use tokio::net::UnixListener;

/// AA's ttrpc socket in guest-components v0.21.0.
pub const AA_SOCKET_ADDRESS: &str =
    "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock";
/// The kernel command-line word that delays the start (milliseconds).
pub const START_DELAY_CMDLINE: &str = "pp.test.aa_start_delay_ms";
/// The environment variable that delays the start (milliseconds).
pub const START_DELAY_ENV: &str = "AA_DOUBLE_START_DELAY_MS";

/// The start delay: the environment variable wins over the kernel command
/// line; neither means none.
pub fn start_delay(env: Option<&str>, cmdline: &str) -> Result<Duration, String> {
    let prefix = format!("{START_DELAY_CMDLINE}=");
    let (source, text) = match env {
        Some(value) => (START_DELAY_ENV, value),
        None => match cmdline
            .split_ascii_whitespace()
            .find_map(|word| word.strip_prefix(prefix.as_str()))
        {
            Some(value) => (START_DELAY_CMDLINE, value),
            None => return Ok(Duration::ZERO),
        },
    };
    text.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("{source}={text:?} is not a number of milliseconds"))
}

/// Accepts connections and closes them: being reachable is the service.
pub async fn serve(listener: UnixListener) -> std::io::Result<()> {
    loop {
        drop(listener.accept().await?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_comes_from_the_environment_or_the_kernel_command_line() {
        let cmdline = "console=ttyS0 pp.test.aa_start_delay_ms=12000 quiet";
        assert_eq!(start_delay(None, cmdline), Ok(Duration::from_secs(12)));
        assert_eq!(
            start_delay(Some("5"), cmdline),
            Ok(Duration::from_millis(5))
        );
        assert_eq!(start_delay(None, "console=ttyS0"), Ok(Duration::ZERO));
        assert!(start_delay(None, "pp.test.aa_start_delay_ms=soon").is_err());
        assert!(start_delay(Some("-1"), "").is_err());
    }
}
