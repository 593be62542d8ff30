//! `cdh-double`: a TEST DOUBLE of guest-components' api-server-rest + CDH
//! for the peer-pod guest test image. See the crate documentation and
//! `--help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use pp_testdoubles::cdh_double::{CdhConfig, serve};
use pp_testdoubles::cli::{loopback_listen_addr, run_main};
use pp_testdoubles::kbs_url::KbsUrl;

const USAGE: &str = "\
cdh-double: a TEST DOUBLE of guest-components' api-server-rest + CDH +
attestation-agent as they run in a peer pod. Not the real thing: it attests
with the \"sample\" TEE evidence only. For tests and demos only.

Serves GET /cdh/resource/<repo>/<type>/<tag> to loopback peers (others get
403). Each request runs a full KBS protocol 0.4.0 round trip against
--kbs-url (auth, attest with sample evidence bound to a fresh P-256 key,
resource, JWE decryption) and answers 200 application/octet-stream with the
plaintext, or 500 with a short text saying what failed (including a KBS 404).

Prints \"cdh-double listening on ADDR\" when ready, then one line per
request: \"cdh-double: METHOD PATH -> STATUS WHAT\".

USAGE: cdh-double [--listen 127.0.0.1:8006] [--kbs-url http://127.0.0.1:8080]
                  [--initdata FILE]

  --listen ADDR     loopback IP:PORT to listen on (default 127.0.0.1:8006)
  --kbs-url URL     the KBS, http://IP:PORT, IP literals only (default
                    http://127.0.0.1:8080, the forwarder's KBS tunnel)
  --initdata FILE   init-data TOML sent with the evidence as
                    {\"format\":\"toml\",\"body\":...}
  -h, --help        this text
";

fn main() -> ExitCode {
    run_main(
        "cdh-double",
        USAGE,
        &["listen", "kbs-url", "initdata"],
        |flags| {
            let listen = loopback_listen_addr(flags, "127.0.0.1:8006")?;
            let kbs = KbsUrl::parse(flags.get("kbs-url").unwrap_or("http://127.0.0.1:8080"))
                .map_err(|e| format!("--kbs-url: {e}"))?;
            let initdata_toml = match flags.get("initdata") {
                Some(file) => Some(
                    std::fs::read_to_string(file)
                        .map_err(|e| format!("cannot read --initdata {file}: {e}"))?,
                ),
                None => None,
            };
            let config = Arc::new(CdhConfig { kbs, initdata_toml });
            Ok(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let bound = listener.local_addr().map_err(|e| e.to_string())?;
                println!(
                    "cdh-double listening on {bound} (KBS at http://{})",
                    config.kbs.addr
                );
                serve("cdh-double", listener, config)
                    .await
                    .map_err(|e| format!("accepting connections failed: {e}"))
            })
        },
    )
}
