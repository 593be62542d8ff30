//! The CDH TEST DOUBLE: guest-components' api-server-rest in front of CDH
//! and the attestation agent, as in the peer pod. Serves
//! `GET /cdh/resource/<repo>/<type>/<tag>` to loopback peers only (others
//! get 403): each request runs a full KBS round trip (`kbs_client`) and
//! answers 200 `application/octet-stream` with the plaintext, or 500 with a
//! short text saying what failed (a KBS 404 included), like the real one.
//! One log line per request on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

use crate::http1::{Connection, HttpError, Request, Response, keeps_alive};
use crate::kbs_client::fetch_resource;
use crate::kbs_url::KbsUrl;
use crate::resource_path::ResourcePath;

/// The whole KBS round trip of one request must end within this time.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the CDH double talks to.
#[derive(Debug, Clone)]
pub struct CdhConfig {
    pub kbs: KbsUrl,
    /// The init-data TOML sent with the evidence, when given.
    pub initdata_toml: Option<String>,
}

/// Answers one request from `peer`; returns the response and a summary.
pub async fn handle(config: &CdhConfig, request: &Request, peer: SocketAddr) -> (Response, String) {
    let text =
        |status: u16, body: String| (Response::new(status, "text/plain", body.clone()), body);
    if !peer.ip().is_loopback() {
        return text(403, format!("forbidden: peer {peer} is not on loopback"));
    }
    let path = request.head.target.split('?').next().unwrap_or_default();
    let Some(resource) = path.strip_prefix("/cdh/resource/") else {
        return text(404, format!("no such endpoint {path}"));
    };
    if request.head.method != "GET" {
        return text(
            405,
            format!("{} is not allowed on {path}", request.head.method),
        );
    }
    let resource = match ResourcePath::parse(resource) {
        Ok(resource) => resource,
        Err(e) => return text(500, e.to_string()),
    };
    let fetched = tokio::time::timeout(
        FETCH_TIMEOUT,
        fetch_resource(config.kbs, config.initdata_toml.as_deref(), &resource),
    )
    .await;
    match fetched {
        Ok(Ok(plaintext)) => {
            let summary = format!("released {resource} ({} bytes)", plaintext.len());
            (
                Response::new(200, "application/octet-stream", plaintext),
                summary,
            )
        }
        Ok(Err(e)) => text(500, format!("get resource {resource}: {e}")),
        Err(_) => text(
            500,
            format!("get resource {resource}: KBS round trip timed out"),
        ),
    }
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, config: Arc<CdhConfig>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, peer, &config).await {
                println!("cdh-double: connection from {peer} ended: {e}");
            }
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: &CdhConfig,
) -> Result<(), HttpError> {
    let mut connection = Connection::new(stream);
    loop {
        let request = match connection.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e @ (HttpError::Malformed(_) | HttpError::TooLarge(_))) => {
                println!("cdh-double: bad request from {peer} -> 400 {e}");
                let response = Response::new(400, "text/plain", e.to_string());
                return connection.write_response(&response, false).await;
            }
            Err(e) => return Err(e),
        };
        let (response, summary) = handle(config, &request, peer).await;
        println!(
            "cdh-double: {} {} -> {} {}",
            request.head.method,
            request.head.target.escape_debug(),
            response.status,
            summary.escape_debug()
        );
        let keep_alive = keeps_alive(&request.head.headers) && response.status != 403;
        connection.write_response(&response, keep_alive).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::RequestHead;

    fn request(method: &str, target: &str) -> Request {
        Request {
            head: RequestHead {
                method: method.into(),
                target: target.into(),
                headers: Vec::new(),
            },
            body: Vec::new(),
        }
    }

    fn config() -> CdhConfig {
        // Port 1 on loopback: nothing listens, so a KBS round trip fails fast.
        CdhConfig {
            kbs: KbsUrl::parse("http://127.0.0.1:1").unwrap(),
            initdata_toml: None,
        }
    }

    #[tokio::test]
    async fn a_peer_off_loopback_is_refused_with_403() {
        let peer: SocketAddr = "10.0.0.7:40000".parse().unwrap();
        let (response, _) = handle(&config(), &request("GET", "/cdh/resource/a/b/c"), peer).await;
        assert_eq!(response.status, 403);
    }

    #[tokio::test]
    async fn other_endpoints_methods_and_bad_paths_are_refused() {
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let cases = [
            ("GET", "/aa/token?token_type=kbs", 404),
            ("POST", "/cdh/resource/a/b/c", 405),
            ("GET", "/cdh/resource/a/../c", 500),
            ("GET", "/cdh/resource/a/b/c", 500),
        ];
        for (method, target, status) in cases {
            let (response, summary) = handle(&config(), &request(method, target), peer).await;
            assert_eq!(response.status, status, "{method} {target}: {summary}");
        }
    }
}
