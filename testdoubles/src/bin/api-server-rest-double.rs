//! `api-server-rest-double`: a TEST DOUBLE of guest-components'
//! api-server-rest for the production-shaped test image. See
//! `api_server_double` and `--help`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use pp_testdoubles::api_server_double::CdhSocket;
use pp_testdoubles::cdh_double::serve;
use pp_testdoubles::cdh_process_double::CDH_SOCKET_ADDRESS;
use pp_testdoubles::cli::{loopback_listen_addr, run_main};
use pp_testdoubles::unix_socket::path_of_address;

const NAME: &str = "api-server-rest-double";

const USAGE: &str = "\
api-server-rest-double: a TEST DOUBLE of guest-components' api-server-rest.
Not the real thing: it asks the CDH double over HTTP/1.1 on CDH's unix
socket instead of ttrpc. For tests only.

Serves GET /cdh/resource/<repo>/<type>/<tag> to loopback peers (others get
403): 200 application/octet-stream with the plaintext, or 500 with a short
text (\"ttrpc request error: ...\" while CDH is not there). Only the resource
feature exists: --features resource is required, as the image passes it.

Prints \"api-server-rest-double listening on ADDR\" when ready, then one line
per request.

USAGE: api-server-rest-double --features resource [--listen 127.0.0.1:8006]
                              [--cdh-socket unix:///run/confidential-containers/cdh.sock]
  -h, --help  this text
";

fn main() -> ExitCode {
    run_main(
        NAME,
        USAGE,
        &["features", "listen", "cdh-socket"],
        |flags| {
            if flags.get("features") != Some("resource") {
                return Err(
                    "--features resource is required (the only feature this double has)".into(),
                );
            }
            let listen = loopback_listen_addr(flags, "127.0.0.1:8006")?;
            let cdh = PathBuf::from(path_of_address(
                flags.get("cdh-socket").unwrap_or(CDH_SOCKET_ADDRESS),
            )?);
            Ok(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let bound = listener.local_addr().map_err(|e| e.to_string())?;
                println!("{NAME} listening on {bound} (CDH at {})", cdh.display());
                serve(NAME, listener, Arc::new(CdhSocket { path: cdh }))
                    .await
                    .map_err(|e| format!("accepting connections failed: {e}"))
            })
        },
    )
}
