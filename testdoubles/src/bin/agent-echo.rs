//! `agent-echo`: a TEST DOUBLE of the kata-agent that echoes bytes. See
//! `--help`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use pp_testdoubles::agent_echo::{serve_tcp, serve_unix};
use pp_testdoubles::cli::run_main;
use pp_testdoubles::unix_socket::{bind_fresh, path_of_address};

const USAGE: &str = "\
agent-echo: a TEST DOUBLE of the kata-agent. It speaks no agent protocol:
it echoes every byte it receives on each connection, and after the peer's
end of stream flushes and shuts down its writing side (half-close). Many
connections are served concurrently. For tests and demos only.

Prints \"agent-echo listening on unix:PATH\" or \"agent-echo listening on
tcp:ADDR\" when ready, then one line per closed connection.

USAGE: agent-echo [--unix PATH | --tcp IP:PORT | --config FILE]

  --unix PATH   unix socket to listen on (default
                /run/kata-containers/agent.sock); the parent directory is
                created and a stale socket removed
  --tcp ADDR    listen on TCP IP:PORT instead (IP literal)
  --config FILE a kata-agent configuration: listen on its server_addr
                (unix:///PATH), as the real agent does (so the double can
                run with the production image's kata-agent command line)
  -h, --help    this text
";

fn main() -> ExitCode {
    run_main("agent-echo", USAGE, &["unix", "tcp", "config"], |flags| {
        let given = ["unix", "tcp", "config"]
            .iter()
            .filter(|name| flags.get(name).is_some())
            .count();
        if given > 1 {
            return Err("give one of --unix, --tcp and --config".into());
        }
        let tcp = match flags.get("tcp") {
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|_| format!("--tcp {text:?} is not IP:PORT (IP literals only)"))?,
            ),
            None => None,
        };
        let unix = match flags.get("config") {
            Some(file) => socket_of_kata_config(file)?,
            None => PathBuf::from(
                flags
                    .get("unix")
                    .unwrap_or("/run/kata-containers/agent.sock"),
            ),
        };
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
                    let listener = bind_fresh(&unix)?;
                    println!("agent-echo listening on unix:{}", unix.display());
                    serve_unix(listener).await
                }
            }
            .map_err(|e| format!("accepting connections failed: {e}"))
        })
    })
}

/// The unix socket a kata-agent configuration file names (`server_addr`).
fn socket_of_kata_config(file: &str) -> Result<PathBuf, String> {
    #[derive(serde::Deserialize)]
    struct KataAgentConfig {
        server_addr: String,
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("cannot read --config {file}: {e}"))?;
    let config: KataAgentConfig =
        toml::from_str(&text).map_err(|e| format!("--config {file}: {}", e.message()))?;
    Ok(path_of_address(&config.server_addr)
        .map_err(|e| format!("--config {file}: server_addr: {e}"))?
        .to_path_buf())
}
