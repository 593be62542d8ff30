//! `agent-echo`: a TEST DOUBLE of the kata-agent that echoes bytes. See
//! `--help`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use pp_testdoubles::agent_echo::{prepare_socket_path, serve_tcp, serve_unix};
use pp_testdoubles::cli::run_main;

const USAGE: &str = "\
agent-echo: a TEST DOUBLE of the kata-agent. It speaks no agent protocol:
it echoes every byte it receives on each connection, and after the peer's
end of stream flushes and shuts down its writing side (half-close). Many
connections are served concurrently. For tests and demos only.

Prints \"agent-echo listening on unix:PATH\" or \"agent-echo listening on
tcp:ADDR\" when ready, then one line per closed connection.

USAGE: agent-echo [--unix PATH | --tcp IP:PORT]

  --unix PATH   unix socket to listen on (default
                /run/kata-containers/agent.sock); the parent directory is
                created and a stale socket removed
  --tcp ADDR    listen on TCP IP:PORT instead (IP literal)
  -h, --help    this text
";

fn main() -> ExitCode {
    run_main("agent-echo", USAGE, &["unix", "tcp"], |flags| {
        let tcp = match (flags.get("tcp"), flags.get("unix")) {
            (Some(_), Some(_)) => return Err("give --unix or --tcp, not both".into()),
            (Some(text), None) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|_| format!("--tcp {text:?} is not IP:PORT (IP literals only)"))?,
            ),
            (None, _) => None,
        };
        let unix = PathBuf::from(
            flags
                .get("unix")
                .unwrap_or("/run/kata-containers/agent.sock"),
        );
        Ok(async move {
            match tcp {
                Some(addr) => {
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    let bound = listener.local_addr().map_err(|e| e.to_string())?;
                    println!("agent-echo listening on tcp:{bound}");
                    serve_tcp(listener).await
                }
                None => {
                    prepare_socket_path(&unix)
                        .map_err(|e| format!("cannot prepare {}: {e}", unix.display()))?;
                    let listener = tokio::net::UnixListener::bind(&unix)
                        .map_err(|e| format!("cannot listen on {}: {e}", unix.display()))?;
                    println!("agent-echo listening on unix:{}", unix.display());
                    serve_unix(listener).await
                }
            }
            .map_err(|e| format!("accepting connections failed: {e}"))
        })
    })
}
