//! `confidential-data-hub-double`: a TEST DOUBLE of guest-components'
//! confidential-data-hub (ttrpc build) for the production-shaped test
//! image. See `cdh_process_double` and `--help`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use pp_testdoubles::aa_double::AA_SOCKET_ADDRESS;
use pp_testdoubles::cdh_double::{CdhConfig, serve_unix};
use pp_testdoubles::cdh_process_double::{CdhFile, CdhWithAa, reach_aa};
use pp_testdoubles::cli::run_main;
use pp_testdoubles::unix_socket::{bind_fresh, path_of_address};

const NAME: &str = "confidential-data-hub-double";

const USAGE: &str = "\
confidential-data-hub-double: a TEST DOUBLE of guest-components'
confidential-data-hub (ttrpc build). Not the real thing: it serves HTTP/1.1
(GET /cdh/resource/<repo>/<type>/<tag>) on its unix socket instead of
ttrpc, for the api-server-rest double. For tests only.

Like the real one it exits 1 when the -c file is missing or not usable
(TOML with [kbc] url), and when the attestation agent's socket does not
accept a connection. Each request checks AA again and runs a full KBS
protocol 0.4.0 round trip against [kbc] url (sample evidence, no init-data,
as v0.21.0's KBS client).

Prints \"confidential-data-hub-double listening on PATH\" when ready, then one
line per request.

USAGE: confidential-data-hub-double -c cdh.toml [--aa-socket unix:///PATH]
  -c FILE       CDH's configuration: [kbc] url, optional socket (default
                unix:///run/confidential-containers/cdh.sock)
  --aa-socket   where AA listens (default: AA's real socket,
                unix:///run/confidential-containers/attestation-agent/attestation-agent.sock;
                the real CDH has no such flag: for host tests only)
  -h, --help    this text
";

fn main() -> ExitCode {
    run_main(NAME, USAGE, &["c", "aa-socket"], |flags| {
        let config = flags
            .get("c")
            .map(PathBuf::from)
            .ok_or("-c cdh.toml is required (the image passes /run/peerpod/cdh.toml)")?;
        let aa_socket =
            path_of_address(flags.get("aa-socket").unwrap_or(AA_SOCKET_ADDRESS))?.to_path_buf();
        Ok(async move {
            let path = config.display();
            let text = std::fs::read_to_string(&config)
                .map_err(|e| format!("failed to read config file {path}: {e}"))?;
            let file = CdhFile::parse(&text).map_err(|e| format!("config file {path}: {e}"))?;
            reach_aa(&aa_socket).await?;
            let listener = bind_fresh(&file.socket)?;
            println!(
                "{NAME} listening on {} (KBS at http://{})",
                file.socket.display(),
                file.kbs.addr
            );
            let source = CdhWithAa {
                cdh: CdhConfig {
                    kbs: file.kbs,
                    initdata_toml: None,
                },
                aa_socket,
            };
            serve_unix(NAME, listener, Arc::new(source))
                .await
                .map_err(|e| format!("accepting connections failed: {e}"))
        })
    })
}
