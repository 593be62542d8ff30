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
