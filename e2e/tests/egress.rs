//! Image pulls through the one SSH connection: a client in the PP asks the
//! forwarder's `EGRESS` listener (what CDH's `image_pull_proxy` points at)
//! to `CONNECT` to a registry; the adaptor checks its allow-list, resolves
//! the name on the worker node, refuses internal addresses, and connects.
//! The registry is a TEST DOUBLE (TLS with a test CA) serving one OCI
//! manifest and its blob; the client checks the blob's digest.

use std::net::SocketAddr;
use std::time::Duration;

use pp_adaptor::egress_policy::{AllowPattern, EgressPolicy};
use pp_adaptor::pp_status::PpStatus;
use pp_e2e::free_port;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;
use pp_http::{Progress, ResponseParser};
use pp_ipnet::SourceNetwork;
use pp_test_support::tls::{TestPki, test_pki};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const REPOSITORY: &str = "test/pause";
const LAYER: &[u8] = b"a layer that is not really a tar, but its digest is checked";

fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn manifest() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest(LAYER),
        LAYER.len()
    )
}

/// A registry TEST DOUBLE: HTTPS, one request per connection, the OCI
/// distribution paths of one manifest and its layer; 404 otherwise.
async fn serve_registry(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let head = read_head(&mut tls).await;
            let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
            let manifest_path = format!("/v2/{REPOSITORY}/manifests/latest");
            let blob_path = format!("/v2/{REPOSITORY}/blobs/{}", digest(LAYER));
            let (status, body) = if path == manifest_path {
                ("200 OK", manifest().into_bytes())
            } else if path == blob_path {
                ("200 OK", LAYER.to_vec())
            } else {
                (
                    "404 Not Found",
                    b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}".to_vec(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(&body).await;
            let _ = tls.shutdown().await;
        });
    }
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends `CONNECT target` into the PP's egress listener and returns the
/// proxy's answer head and the stream.
async fn connect(egress: SocketAddr, target: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(egress)
        .await
        .expect("the PP's EGRESS listener accepts");
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("send CONNECT");
    let head = read_head(&mut stream).await;
    (head, stream)
}

/// `GET path` over TLS through the egress tunnel; the status and body.
async fn get(egress: SocketAddr, pki: &TestPki, target: &str, path: &str) -> (u16, Vec<u8>) {
    let (head, stream) = connect(egress, target).await;
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "CONNECT {target}: {head}"
    );
    let name = rustls_name("localhost");
    let mut tls = pki
        .connector()
        .connect(name, stream)
        .await
        .expect("TLS to the registry");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send GET");
    response(&mut tls).await
}

fn rustls_name(name: &str) -> tokio_rustls::rustls::pki_types::ServerName<'static> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(name.to_owned()).expect("a DNS name")
}

async fn response<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, Vec<u8>) {
    let mut parser = ResponseParser::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let progress = if n == 0 {
            parser.finish().map(Progress::Done)
        } else {
            parser.feed(&buf[..n])
        };
        match progress.expect("a well-formed response") {
            Progress::Done(response) => return (response.status, response.body),
            Progress::NeedMore => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_through_the_tunnel_and_other_hosts_are_refused() {
    let world = World::start();
    let pki = test_pki("test registry CA");
    let registry = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the registry double");
    let registry_port = registry.local_addr().expect("its address").port();
    let registry_double = tokio::spawn(serve_registry(registry, pki.acceptor.clone()));
    let policy = EgressPolicy {
        allow: [
            format!("localhost:{registry_port}"),
            format!("127.0.0.3:{registry_port}"),
        ]
        .iter()
        .map(|entry| AllowPattern::parse(entry).expect("a valid allow entry"))
        .collect(),
        // The registry double is on loopback; a real registry never is.
        permit_networks: vec![SourceNetwork::parse("127.0.0.1/32").expect("a network")],
        ..EgressPolicy::default()
    };
    let adaptor = World::adaptor_with_egress(
        world.dir.path().join("egress-adaptor"),
        &world.admin_key_path(),
        world.kbs_port,
        policy,
    );
    let egress_port = free_port();
    let pp = Pp::start(PpOptions {
        wn_key: Some(adaptor.wn_public_key()),
        extra_inbounds: vec![format!("KUBERNETES_PHASE:EGRESS:127.0.0.1:{egress_port}")],
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_tunnels(&adaptor, "egress1", &pp, &["KATAAGENT"])
        .await;
    handle
        .wait_for(Duration::from_secs(90), |s| {
            matches!(s, PpStatus::Kubernetes { .. })
        })
        .await
        .unwrap_or_else(|last| panic!("no Kubernetes phase: {last}\n{}", pp.forwarder().output()));
    let egress: SocketAddr = format!("127.0.0.1:{egress_port}")
        .parse()
        .expect("an address");
    let target = format!("localhost:{registry_port}");

    let (status, body) = get(
        egress,
        &pki,
        &target,
        &format!("/v2/{REPOSITORY}/manifests/latest"),
    )
    .await;
    assert_eq!(status, 200);
    let manifest = String::from_utf8(body).expect("a JSON manifest");
    assert_eq!(manifest, self::manifest());
    let (status, blob) = get(
        egress,
        &pki,
        &target,
        &format!("/v2/{REPOSITORY}/blobs/{}", digest(LAYER)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        manifest.contains(&digest(&blob)),
        "the blob matches the manifest's digest"
    );

    let (head, _) = connect(egress, "registry.invalid:443").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (head, mut stream) = connect(egress, &format!("127.0.0.3:{registry_port}")).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let mut reason = String::new();
    stream
        .read_to_string(&mut reason)
        .await
        .expect("the reason");
    assert!(
        reason.contains("127.0.0.3 is a loopback address"),
        "{reason}"
    );
    registry_double.abort();
    adaptor
        .teardown(&pp_adaptor::sid::Sid::parse("egress1").expect("sid"))
        .await
        .expect("teardown");
}
