//! Fetching the Kubernetes-phase keys from CDH (guest-components'
//! api-server-rest) over plain HTTP on loopback.
//!
//! `GET /cdh/resource/default/sshclient/publicKey` (the WN public key) and
//! `GET /cdh/resource/default/pp-sid/privateKey` (this PP's host key; the
//! WN's KBS proxy rewrites `pp-sid` to `pp-<SID>`). Every call makes CDH run
//! a full attestation round through the KBS tunnel, and every failure is a
//! 500, so each key is retried with capped exponential backoff and one log
//! line per attempt until it arrives; the attestation deadline bounds it.
//! Parsing and the retry rule live in `pp_http`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};
use pp_forwarder_core::phase::PhaseKeys;
use pp_http::{self as http, HOST_KEY_PATH, Progress, ResponseParser, WN_KEY_PATH};
use pp_ssh_key::{PrivateKey, PublicKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::controller::Controller;

/// Keys are small; a larger reply is refused.
const MAX_BODY: usize = 64 * 1024;

pub async fn fetch_keys(ctrl: Rc<Controller>) {
    let (cdh, timeout) = (ctrl.cdh_addr(), ctrl.cdh_timeout());
    let wn_key = fetch_until_valid(cdh, timeout, WN_KEY_PATH, "WN public key", |text| {
        PublicKey::parse(text).map_err(|e| e.to_string())
    })
    .await;
    let host_key = fetch_until_valid(cdh, timeout, HOST_KEY_PATH, "PP host key", |text| {
        PrivateKey::parse(text).map_err(|e| e.to_string())
    })
    .await;
    info!(
        "keys obtained from CDH: WN key {}, PP host key {}",
        wn_key.fingerprint(),
        host_key.public().fingerprint()
    );
    ctrl.keys_obtained(PhaseKeys { host_key, wn_key });
}

async fn fetch_until_valid<T>(
    cdh: SocketAddr,
    timeout: Duration,
    path: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> T {
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let problem = match get(cdh, path, timeout).await {
            Ok(body) => match std::str::from_utf8(&body)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(&parse)
            {
                Ok(value) => return value,
                Err(e) => format!("CDH returned an unusable {what}: {e}"),
            },
            Err(reason) => reason,
        };
        let wait = http::backoff(attempt - 1, jitter());
        warn!("{what}: attempt {attempt}: GET http://{cdh}{path}: {problem}; retrying in {wait:?}");
        tokio::time::sleep(wait).await;
    }
}

/// One GET; `Ok` only for a 200 with a body within the limit. One call
/// includes a whole attestation round trip to Trustee, hence the generous
/// default timeout.
async fn get(cdh: SocketAddr, path: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let call = async {
        let mut stream = TcpStream::connect(cdh)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let request = http::emit_get(&cdh.to_string(), path).map_err(|e| e.to_string())?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut parser = ResponseParser::new(MAX_BODY);
        let mut buf = [0u8; 4096];
        let response = loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read the reply: {e}"))?;
            if n == 0 {
                break parser.finish().map_err(|e| format!("bad reply: {e}"))?;
            }
            if let Progress::Done(response) = parser
                .feed(&buf[..n])
                .map_err(|e| format!("bad reply: {e}"))?
            {
                break response;
            }
        };
        http::classify_cdh_reply(response.status, response.body).map_err(|reason| reason.0)
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(format!("no complete reply within {timeout:?}")))
}

/// Up to a second of jitter so several PPs do not retry in lockstep.
fn jitter() -> Duration {
    let mut bytes = [0u8; 2];
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    Duration::from_millis(u64::from(u16::from_ne_bytes(bytes)) % 1000)
}
