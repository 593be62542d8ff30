//! `kbs-double`: a TEST DOUBLE of Trustee's KBS for the peer-pod tests and
//! demo. See the crate documentation and `--help`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use pp_testdoubles::admin_auth::{AdminVerifier, parse_admin_public_key};
use pp_testdoubles::cli::{Command, Flags, parse_args};
use pp_testdoubles::kbs_double::{KbsDouble, server};

const USAGE: &str = "\
kbs-double: a TEST DOUBLE of Trustee's KBS (key broker service). Not a KBS:
it keeps everything in memory, verifies only the \"sample\" TEE evidence and
serves plain HTTP on loopback. For tests and demos only.

Speaks KBS protocol 0.4.0: POST /kbs/v0/auth, POST /kbs/v0/attest,
GET /kbs/v0/resource/<repo>/<type>/<tag> (answer: a JWE encrypted to the
attested TEE key). Admin API (Authorization: Bearer <EdDSA JWT with role and
exp>): POST/DELETE /kbs/v0/resource/<repo>/<type>/<tag> (raw body),
POST /kbs/v0/resource-policy, POST /kbs/v0/attestation-policy,
POST /kbs/v0/reference-value, GET /kbs/v0/reference-value/<name>.
Test listing: GET /kbs-double/resources.

Prints \"kbs-double listening on ADDR\" when ready, then one line per
request: \"kbs-double: METHOD PATH -> STATUS WHAT\".

USAGE: kbs-double --admin-public-key FILE [--listen 127.0.0.1:PORT]
                  [--admin-issuer ISS] [--admin-audience AUD]

  --admin-public-key FILE  Ed25519 public key that signs admin JWTs, as PEM
                           (BEGIN PUBLIC KEY) or OpenSSH (ssh-ed25519 AAAA..)
  --listen ADDR            loopback IP:PORT to listen on (default
                           127.0.0.1:8080; port 0 picks a free port)
  --admin-issuer ISS       require admin JWT claim iss == ISS
  --admin-audience AUD     require admin JWT claim aud to contain AUD
  -h, --help               this text
";

fn config(flags: &Flags) -> Result<(SocketAddr, AdminVerifier), String> {
    let listen = flags.get("listen").unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen.parse().map_err(|_| {
        format!("--listen {listen:?} is not IP:PORT (IP literals only, no host names)")
    })?;
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen}: a test double listens on loopback only (127.0.0.0/8 or ::1)"
        ));
    }
    let key_file = flags
        .get("admin-public-key")
        .ok_or("--admin-public-key FILE is required (the admin JWT verification key)")?;
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| format!("cannot read --admin-public-key {key_file}: {e}"))?;
    let key = parse_admin_public_key(&text).map_err(|e| format!("{key_file}: {e}"))?;
    Ok((
        listen,
        AdminVerifier {
            key,
            issuer: flags.get("admin-issuer").map(str::to_string),
            audience: flags.get("admin-audience").map(str::to_string),
        },
    ))
}

async fn run(listen: SocketAddr, admin: AdminVerifier) -> Result<(), String> {
    let double = KbsDouble::new(admin).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("kbs-double listening on {bound}");
    server::serve(listener, Arc::new(double))
        .await
        .map_err(|e| format!("accepting connections failed: {e}"))
}

fn main() -> ExitCode {
    let flags = match parse_args(
        std::env::args().skip(1),
        &[
            "listen",
            "admin-public-key",
            "admin-issuer",
            "admin-audience",
        ],
    ) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(flags)) => flags,
        Err(e) => {
            eprintln!("kbs-double (test double): {e}");
            return ExitCode::from(2);
        }
    };
    let (listen, admin) = match config(&flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kbs-double (test double): {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kbs-double (test double): cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(listen, admin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbs-double (test double): {e}");
            ExitCode::FAILURE
        }
    }
}
