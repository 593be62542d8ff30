//! The control API on its unix socket, against the in-process KBS double:
//! create → duplicate create → status → delete (twice), and bad input —
//! unknown SID, bad tags, attach before create, a forwarder that is not an
//! IP, oversized and malformed JSON, a client that never finishes its
//! request — each answered with a JSON error that says what to do, with
//! nothing changed at Trustee or in the daemon's pods. Also: the socket is
//! mode 0600, and a second daemon on the same socket refuses to start.

mod common;

use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use hyper::{Method, StatusCode};
use pp_adaptor::adaptor::Adaptor;
use pp_adaptor::control::client::{ClientError, ControlClient};
use pp_adaptor::control::server::{MAX_BODY_BYTES, bind_control_socket, serve_control};
use pp_adaptor::pods::Pods;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Daemon {
    client: ControlClient,
    socket: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(workspace: &Workspace, trustee: &Trustee) -> Daemon {
    let config = workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));
    let adaptor = Adaptor::new(&config).unwrap();
    let pods = Pods::new(adaptor, &config.state_dir, false);
    pods.restore(&[]).await;
    let socket = workspace.path("run/control.sock");
    let listener = bind_control_socket(&socket).await.unwrap();
    Daemon {
        client: ControlClient::new(&socket),
        task: tokio::spawn(serve_control(listener, pods)),
        socket,
    }
}

async fn refused(
    client: &ControlClient,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    match client
        .json(method, path, body.as_ref(), Duration::ZERO)
        .await
    {
        Err(ClientError::Refused { status, message }) => (status, message),
        other => panic!("{path} was not refused: {other:?}"),
    }
}

/// Sends `bytes` as they are and reads what comes back until the daemon
/// closes the connection.
async fn raw(socket: &std::path::Path, bytes: &[u8]) -> String {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back).await;
    String::from_utf8_lossy(&back).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_created_once_shown_and_deleted_idempotently() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[71; 32])).await;
    let workspace = Workspace::new();
    let daemon = start(&workspace, &trustee).await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let body = serde_json::json!({ "sid": "ctl1" });
    let created = daemon
        .client
        .json(Method::POST, "/v1/pods", Some(&body), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        created["wn_public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 "),
        "{created}"
    );
    assert!(
        trustee
            .resource_paths()
            .await
            .contains(&"default/pp-ctl1/privateKey".to_owned())
    );
    let (status, message) = refused(&daemon.client, Method::POST, "/v1/pods", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(message.contains("already exists"), "{message}");

    let pod = daemon
        .client
        .json(Method::GET, "/v1/pods/ctl1", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(pod["phase"], "created");
    let waited = daemon
        .client
        .json(
            Method::GET,
            "/v1/pods/ctl1/wait?from=created&timeout_secs=0",
            None,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(waited["changed"], false);

    for _ in 0..2 {
        daemon
            .client
            .json(Method::DELETE, "/v1/pods/ctl1", None, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        !trustee
            .resource_paths()
            .await
            .contains(&"default/pp-ctl1/privateKey".to_owned())
    );
    let (status, _) = refused(&daemon.client, Method::GET, "/v1/pods/ctl1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!workspace.path("state/pod-ctl1.json").exists());

    let second = bind_control_socket(&daemon.socket).await.unwrap_err();
    assert!(second.contains("another pp-adaptor"), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_error_and_changes_nothing() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[72; 32])).await;
    let workspace = Workspace::new();
    let daemon = start(&workspace, &trustee).await;
    let client = &daemon.client;
    client
        .json(
            Method::POST,
            "/v1/pods",
            Some(&serde_json::json!({ "sid": "kept" })),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let resources_before = trustee.resource_paths().await;
    let pods_before = client
        .json(Method::GET, "/v1/pods", None, Duration::ZERO)
        .await
        .unwrap();

    let attach = |forwarder: &str, tags: &[&str]| {
        Some(serde_json::json!({ "forwarder": forwarder, "tunnels": tags }))
    };
    let cases = [
        (
            Method::GET,
            "/v1/pods/nobody",
            None,
            StatusCode::NOT_FOUND,
            "create it first",
        ),
        (
            Method::POST,
            "/v1/pods/nobody/attach",
            attach("127.0.0.1", &[]),
            StatusCode::NOT_FOUND,
            "create it first",
        ),
        (
            Method::POST,
            "/v1/pods/kept/attach",
            attach("127.0.0.1", &["LATER:KATAAGENT:127.0.0.1:0"]),
            StatusCode::BAD_REQUEST,
            "bad tunnels",
        ),
        (
            Method::POST,
            "/v1/pods/kept/attach",
            Some(serde_json::json!({
                "forwarder": "127.0.0.1",
                "targets": ["BOTH_PHASES:KBS:127.0.0.1:8080"],
            })),
            StatusCode::BAD_REQUEST,
            "reserved",
        ),
        (
            Method::POST,
            "/v1/pods/kept/attach",
            attach("pp.example", &[]),
            StatusCode::BAD_REQUEST,
            "IP address",
        ),
        (
            Method::POST,
            "/v1/pods",
            Some(serde_json::json!({ "sid": "kept" })),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            Method::POST,
            "/v1/pods",
            Some(serde_json::json!({ "id": "x" })),
            StatusCode::BAD_REQUEST,
            "send e.g.",
        ),
        (
            Method::POST,
            "/v1/pods",
            Some(serde_json::json!({ "sid": "a/b" })),
            StatusCode::BAD_REQUEST,
            "bad sid",
        ),
    ];
    for (method, path, body, status, words) in cases {
        let (got, message) = refused(client, method, path, body).await;
        assert_eq!(got, status, "{path}: {message}");
        assert!(message.contains(words), "{path}: {message}");
    }

    let malformed = raw(
        &daemon.socket,
        b"POST /v1/pods HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"sid\":[}",
    )
    .await;
    assert!(
        malformed.starts_with("HTTP/1.1 400") && malformed.contains("{\"error\":"),
        "{malformed}"
    );
    let big = format!("{{\"sid\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let oversized = raw(
        &daemon.socket,
        format!(
            "POST /v1/pods HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(
        oversized.starts_with("HTTP/1.1 413") && oversized.contains("larger than"),
        "{oversized}"
    );
    // Never finishing: a head without its end, and a body shorter than
    // announced. The first is closed, the second gets a JSON 408.
    let (unfinished_head, unfinished_body) = tokio::join!(
        raw(&daemon.socket, b"GET /v1/pods HTTP/1.1\r\nHost: x\r\n"),
        raw(
            &daemon.socket,
            b"POST /v1/pods HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"sid\":"
        ),
    );
    assert!(
        !unfinished_head.contains("200 OK"),
        "a request never finished is not served: {unfinished_head}"
    );
    assert!(
        unfinished_body.starts_with("HTTP/1.1 408") && unfinished_body.contains("did not arrive"),
        "{unfinished_body}"
    );

    assert_eq!(trustee.resource_paths().await, resources_before);
    let pods_after = client
        .json(Method::GET, "/v1/pods", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(pods_after, pods_before);
}
