//! The KBS reverse proxy seen from outside: a full KBS client conversation
//! (auth, attest, resource) through it reaches the PP's own key via
//! `pp-sid`, and against a recording upstream only the resource path and
//! `Host` change while several requests share one connection.

mod common;

use bytes::Bytes;
use common::{Trustee, fetch_pp_sid_key, proxy_on_tcp};
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pp_adaptor::kbs_proxy::KbsProxy;
use pp_adaptor::sid::Sid;
use pp_adaptor::upstream::{TrusteeUrl, Upstream};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_kbs_client_asking_for_pp_sid_gets_the_pps_own_key_after_attesting_through_the_proxy() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[21; 32])).await;
    let upstream = Upstream::new(trustee.url(), None).unwrap();
    let admin = trustee.admin(upstream.clone());
    let sid = Sid::parse("podA").unwrap();
    admin
        .set_pp_private_key(&sid, b"the key of pod A")
        .await
        .unwrap();
    admin
        .set_pp_private_key(&Sid::parse("podB").unwrap(), b"the key of pod B")
        .await
        .unwrap();
    let proxy = proxy_on_tcp(upstream, "podA").await;

    let key = fetch_pp_sid_key(proxy).await;

    assert_eq!(key, b"the key of pod A");
}

/// What the recording upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An upstream that records every request and answers `200 seen <n>` with
/// a `Set-Cookie` header.
async fn recording_upstream() -> (TrusteeUrl, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = TrusteeUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let record = record.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let record = record.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes().to_vec();
                    let headers = parts
                        .headers
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                        .collect();
                    let mut seen = record.lock().unwrap();
                    seen.push(Seen {
                        method: parts.method.to_string(),
                        path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                        headers,
                        body,
                    });
                    let response = Response::builder()
                        .header("set-cookie", "kbs-session-id=s1")
                        .body(Full::new(Bytes::from(format!("seen {}", seen.len()))))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service),
            );
        }
    });
    (url, seen)
}

#[tokio::test]
async fn only_the_pp_sid_resource_path_and_host_change_and_one_connection_carries_several_requests()
{
    let (url, seen) = recording_upstream().await;
    let authority = url.authority().to_owned();
    let proxy = KbsProxy::new(
        Upstream::new(url, None).unwrap(),
        Sid::parse("abc").unwrap(),
    );
    let (client_side, proxy_side) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { proxy.serve_stream(proxy_side).await });
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client_side))
        .await
        .unwrap();
    tokio::spawn(connection);

    let requests = [
        (
            "POST",
            "/kbs/v0/auth",
            vec![("content-type", "application/json")],
            &br#"{"version":"0.4.0"}"#[..],
        ),
        (
            "POST",
            "/kbs/v0/attest",
            vec![("cookie", "kbs-session-id=s1")],
            &b"evidence"[..],
        ),
        (
            "GET",
            "/kbs/v0/resource/default/pp-sid/privateKey?x=1",
            vec![("cookie", "kbs-session-id=s1")],
            &b""[..],
        ),
        (
            "GET",
            "/kbs/v0/resource/default/sshclient/publicKey",
            vec![("authorization", "Bearer tok")],
            &b""[..],
        ),
        (
            "GET",
            "/kbs/v0/resource/other/pp-sid/publicKey",
            vec![("x-custom", "kept")],
            &b""[..],
        ),
    ];
    for (index, (method, path, headers, body)) in requests.iter().enumerate() {
        let mut builder = Request::builder()
            .method(*method)
            .uri(*path)
            .header("host", "127.0.0.1:8080");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = sender
            .send_request(builder.body(Full::new(Bytes::from_static(body))).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["set-cookie"], "kbs-session-id=s1");
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(answer, format!("seen {}", index + 1));
    }

    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen
        .iter()
        .map(|request| request.path_and_query.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/kbs/v0/auth",
            "/kbs/v0/attest",
            "/kbs/v0/resource/default/pp-abc/privateKey?x=1",
            "/kbs/v0/resource/default/sshclient/publicKey",
            "/kbs/v0/resource/other/pp-sid/publicKey",
        ]
    );
    for (request, (method, _, headers, body)) in seen.iter().zip(&requests) {
        assert_eq!(request.method, *method);
        assert_eq!(request.body, *body);
        assert_eq!(request.header("host"), Some(authority.as_str()));
        for (name, value) in headers {
            assert_eq!(
                request.header(name),
                Some(*value),
                "{name} of {}",
                request.path_and_query
            );
        }
    }
}

#[tokio::test]
async fn an_unreachable_trustee_gives_the_pp_a_502_with_a_reason() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = TrusteeUrl::parse(&format!("http://{}", unused.local_addr().unwrap())).unwrap();
    drop(unused);
    let proxy = KbsProxy::new(
        Upstream::new(url, None).unwrap(),
        Sid::parse("abc").unwrap(),
    );
    let (client_side, proxy_side) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { proxy.serve_stream(proxy_side).await });
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client_side))
        .await
        .unwrap();
    tokio::spawn(connection);

    let request = Request::get("/kbs/v0/auth")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();

    assert_eq!(response.status(), 502);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Trustee unreachable"));
}
