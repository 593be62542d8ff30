//! Shared helpers of the black-box tests: start a double's binary and wait
//! for its "listening on" line (the child is killed when the guard drops,
//! also when a test fails), collect its log lines, mint admin JWTs, and
//! send HTTP requests with the crate's own HTTP/1.1 framing.
#![allow(dead_code)] // each test binary uses a different subset

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use pp_testdoubles::http1::{Connection, Response};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

/// A running double; killed and reaped on drop.
pub struct RunningDouble {
    child: Child,
    /// What followed "listening on " in its ready line.
    pub address: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for RunningDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningDouble {
    /// Starts `binary` with `args` and waits (10 s at most) for its ready
    /// line `<name> listening on <address>`.
    pub fn start(binary: &str, args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once(" listening on ") {
                    let address = address.split(' ').next().unwrap_or_default().to_string();
                    let _ = ready_tx.send(address);
                }
                collected.lock().unwrap().push(line);
            }
        });
        let mut running = Self {
            child,
            address: String::new(),
            lines,
        };
        running.address = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{binary} did not print its listening line"));
        running
    }

    /// Waits (5 s at most) until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_log_count(needle, 1)
    }

    /// Waits (5 s at most) until `count` log lines contain `needle`;
    /// returns the first.
    pub fn wait_for_log_count(&self, needle: &str, count: usize) -> String {
        for _ in 0..500 {
            let lines = self.lines.lock().unwrap();
            let matching: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if let Some(first) = matching.first().filter(|_| matching.len() >= count) {
                return (*first).clone();
            }
            drop(lines);
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "fewer than {count} log lines contain {needle:?}; got {:?}",
            self.lines.lock().unwrap()
        );
    }
}

/// Starts the KBS double on loopback, trusting `admin`'s public key, with
/// `extra` flags after the usual ones.
pub fn start_kbs(admin: &AdminKey, extra: &[&str]) -> RunningDouble {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--admin-public-key",
        admin.public_pem_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    RunningDouble::start(env!("CARGO_BIN_EXE_kbs-double"), &args)
}

/// The admin key of the tests and its public half written as PEM.
pub struct AdminKey {
    pub signing: SigningKey,
    pub public_pem_file: PathBuf,
}

impl AdminKey {
    pub fn new(test_name: &str) -> Self {
        let signing = SigningKey::from_bytes(&[42; 32]);
        let pem = signing
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let public_pem_file = std::env::temp_dir().join(format!(
            "kbs-double-admin-{test_name}-{}.pem",
            std::process::id()
        ));
        std::fs::write(&public_pem_file, pem).unwrap();
        Self {
            signing,
            public_pem_file,
        }
    }

    /// A bearer header for a JWT with exactly `claims`, signed by `key`.
    pub fn bearer_signed_by(key: &SigningKey, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes());
        format!("Bearer {input}.{signature}")
    }

    pub fn bearer(&self, claims: &Value) -> String {
        Self::bearer_signed_by(&self.signing, claims)
    }

    /// A bearer header for a valid admin token.
    pub fn valid_bearer(&self) -> String {
        self.bearer(&json!({"role": "admin", "exp": unix_now() + 300}))
    }
}

impl Drop for AdminKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.public_pem_file);
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HTTP/1.1 connection to a double.
pub async fn connect(address: &str) -> Connection<TcpStream> {
    Connection::new(TcpStream::connect(address).await.unwrap())
}

/// Sends one request on `connection` and reads the answer.
pub async fn send(
    connection: &mut Connection<TcpStream>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    connection
        .write_request(method, target, headers, body)
        .await
        .unwrap();
    connection.read_response().await.unwrap()
}

/// Sends one request on a new connection.
pub async fn send_once(
    address: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    send(&mut connect(address).await, method, target, headers, body).await
}

/// POSTs `body` to the KBS at `kbs_address` as the resource `resource`
/// (`repository/type/tag`), authorised by the header `bearer`.
pub async fn post_resource(
    kbs_address: &str,
    bearer: &str,
    resource: &str,
    body: &[u8],
) -> Response {
    send_once(
        kbs_address,
        "POST",
        &format!("/kbs/v0/resource/{resource}"),
        &[("Authorization", bearer)],
        body,
    )
    .await
}

/// The `detail` of a Trustee-shaped error body (panics if not one).
pub fn error_detail(response: &Response) -> (String, String) {
    let body: Value = serde_json::from_slice(&response.body).expect("error body is JSON");
    (
        body["type"].as_str().expect("type").to_string(),
        body["detail"].as_str().expect("detail").to_string(),
    )
}
