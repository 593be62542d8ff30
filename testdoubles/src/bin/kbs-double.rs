//! `kbs-double`: a TEST DOUBLE of Trustee's KBS for the peer-pod tests and
//! demo. See the crate documentation and `--help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use pp_testdoubles::admin_auth::{AdminVerifier, parse_admin_public_key};
use pp_testdoubles::cli::{Flags, loopback_listen_addr, run_main};
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
Test listing (no auth): GET /kbs-double/resources.

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

fn admin_verifier(flags: &Flags) -> Result<AdminVerifier, String> {
    let key_file = flags
        .get("admin-public-key")
        .ok_or("--admin-public-key FILE is required (the admin JWT verification key)")?;
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| format!("cannot read --admin-public-key {key_file}: {e}"))?;
    Ok(AdminVerifier {
        key: parse_admin_public_key(&text).map_err(|e| format!("{key_file}: {e}"))?,
        issuer: flags.get("admin-issuer").map(str::to_string),
        audience: flags.get("admin-audience").map(str::to_string),
    })
}

fn main() -> ExitCode {
    let known = [
        "listen",
        "admin-public-key",
        "admin-issuer",
        "admin-audience",
    ];
    run_main("kbs-double", USAGE, &known, |flags| {
        let listen = loopback_listen_addr(flags, "127.0.0.1:8080")?;
        let double = KbsDouble::new(admin_verifier(flags)?).map_err(|e| e.to_string())?;
        Ok(async move {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            println!("kbs-double listening on {bound}");
            server::serve(listener, Arc::new(double))
                .await
                .map_err(|e| format!("accepting connections failed: {e}"))
        })
    })
}
