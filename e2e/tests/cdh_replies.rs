//! What CDH answers is untrusted: errors (500 for everything, per
//! api-server-rest), garbage, oversized and slow replies, and unusable keys
//! are retried with a log line each; nothing panics; good keys then win.

use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::random_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A scripted stand-in for CDH on the forwarder's CDH port: the n-th
/// request for a path gets that path's n-th reply (raw bytes); the last
/// one repeats. `SLOW` sends half a reply and stalls.
async fn scripted_cdh(listener: TcpListener, replies: Vec<(&'static str, Vec<u8>)>) {
    let mut served: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut request = [0u8; 2048];
        let n = socket.read(&mut request).await.unwrap_or(0);
        let request = String::from_utf8_lossy(&request[..n]).to_string();
        let Some(path) = ["sshclient", "pp-sid"]
            .into_iter()
            .find(|p| request.contains(p))
        else {
            continue;
        };
        let for_path: Vec<&Vec<u8>> = replies
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, r)| r)
            .collect();
        let count = served.entry(path).or_default();
        let Some(reply) = for_path.get((*count).min(for_path.len().saturating_sub(1))) else {
            continue;
        };
        *count += 1;
        if reply.starts_with(b"SLOW") {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nss")
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            let _ = socket.write_all(reply).await;
        }
    }
}

fn http(status: &str, body: &[u8]) -> Vec<u8> {
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(body);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cdh_replies_are_retried_until_good_keys_arrive() {
    let wn = random_key();
    let host = random_key();
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        cdh_double: false,
        extra_args: vec!["--cdh-timeout".into(), "2s".into()],
        ..PpOptions::default()
    });
    let listener = TcpListener::bind(("127.0.0.1", pp.cdh_port))
        .await
        .expect("take over the CDH port");
    let big = vec![b'a'; 200_000];
    let replies = vec![
        (
            "sshclient",
            http(
                "500 Internal Server Error",
                b"get resource failed: not found",
            ),
        ),
        ("sshclient", b"this is not HTTP at all\r\n\r\n".to_vec()),
        ("sshclient", http("200 OK", &big)),
        ("sshclient", b"SLOW".to_vec()),
        (
            "sshclient",
            http("200 OK", b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bad"),
        ),
        (
            "sshclient",
            http("200 OK", wn.public().emit(Some("wn")).as_bytes()),
        ),
        ("pp-sid", http("200 OK", host.emit(1).as_bytes())),
    ];
    tokio::spawn(scripted_cdh(listener, replies));
    pp.wait_listening();

    let winner = ssh::attempt(&pp.ssh_addr(), Some(&wn), Duration::from_secs(30)).await;
    assert!(winner.authenticated);
    let forwarder = pp.forwarder();
    forwarder.wait_for("keys obtained from CDH", Duration::from_secs(120));
    let log = forwarder.output();
    for expected in [
        "not found",
        "bad reply",
        "larger",
        "no complete reply within",
        "Ed25519",
        "attempt 5",
    ] {
        assert!(
            log.contains(expected),
            "no retry line mentioning {expected:?}:\n{log}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
    forwarder.wait_for(
        &format!("host key {}", host.public().fingerprint()),
        Duration::from_secs(5),
    );
}
