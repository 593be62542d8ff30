//! `attestation-agent-double`: a TEST DOUBLE of guest-components'
//! attestation-agent (ttrpc build) for the production-shaped test image.
//! See `aa_double` and `--help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use pp_testdoubles::aa_double::{
    AA_SOCKET_ADDRESS, START_DELAY_CMDLINE, START_DELAY_ENV, serve, start_delay,
};
use pp_testdoubles::cli::run_main;
use pp_testdoubles::unix_socket::{bind_fresh, path_of_address};

const USAGE: &str = "\
attestation-agent-double: a TEST DOUBLE of guest-components' attestation-agent
(ttrpc build). Not the real thing: it serves no ttrpc and makes no evidence
(the CDH double's KBS client makes sample evidence). For tests only.

Like the real one it exits 1 when -c names a file it cannot read, and
listens on AA's ttrpc socket (a stale socket file is replaced). The CDH
double needs to reach that socket at start and for every request.

A test can delay the start (as a slow attester would):
pp.test.aa_start_delay_ms=N on the kernel command line, or the environment
variable AA_DOUBLE_START_DELAY_MS=N (wins).

Prints \"attestation-agent-double listening on PATH\" when ready.

USAGE: attestation-agent-double [-c aa.toml] [--attestation_sock unix:///PATH]
  -c FILE             AA's configuration (only read)
  --attestation_sock  default unix:///run/confidential-containers/attestation-agent/attestation-agent.sock
  -h, --help          this text
";

fn main() -> ExitCode {
    run_main(
        "attestation-agent-double",
        USAGE,
        &["c", "attestation_sock"],
        |flags| {
            let address = flags
                .get("attestation_sock")
                .unwrap_or(AA_SOCKET_ADDRESS)
                .to_string();
            let config = flags.get("c").map(str::to_string);
            Ok(async move {
                if let Some(config) = config {
                    std::fs::read(&config)
                        .map_err(|e| format!("failed to read config file {config}: {e}"))?;
                }
                let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
                let delay = start_delay(std::env::var(START_DELAY_ENV).ok().as_deref(), &cmdline)?;
                if !delay.is_zero() {
                    println!(
                        "attestation-agent-double: starting in {} ms ({START_DELAY_CMDLINE} / {START_DELAY_ENV})",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                }
                let path = path_of_address(&address)?;
                let listener = bind_fresh(path)?;
                println!("attestation-agent-double listening on {}", path.display());
                serve(listener)
                    .await
                    .map_err(|e| format!("accepting connections failed: {e}"))
            })
        },
    )
}
