//! The CDH TEST DOUBLE: guest-components' api-server-rest in front of CDH
//! and the attestation agent, as in the peer pod. Serves
//! `GET /cdh/resource/<repo>/<type>/<tag>` to loopback peers only (others
//! get 403) and answers 200 `application/octet-stream` with the plaintext,
//! or 500 with a short text saying what failed (a KBS 404 included), like
//! the real one. One log line per request on stdout.
//!
//! Where a resource comes from is a [`ResourceSource`]: [`CdhConfig`] runs
//! a full KBS round trip (`kbs_client`) per request, in this process (the
//! all-in-one `cdh-double`, and the CDH process of the split doubles);
//! `api_server_double::CdhSocket` asks a CDH double over its unix socket.
//! The same routing and serving code answers on TCP (api-server-rest) and
//! on a unix socket (CDH).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::http1::{Connection, HttpError, Request, Response, keeps_alive};
use crate::kbs_client::fetch_resource;
use crate::kbs_url::KbsUrl;
use crate::resource_path::ResourcePath;

/// The whole KBS round trip of one request must end within this time.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The path prefix of the resource endpoint.
pub const RESOURCE_PREFIX: &str = "/cdh/resource/";

/// Where the plaintext of a resource comes from; an error is the short
/// text of the 500 answer.
pub trait ResourceSource: Send + Sync + 'static {
    fn get(&self, resource: &ResourcePath) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// What the CDH double talks to.
#[derive(Debug, Clone)]
pub struct CdhConfig {
    pub kbs: KbsUrl,
    /// The init-data TOML sent with the evidence, when given.
    pub initdata_toml: Option<String>,
}

impl ResourceSource for CdhConfig {
    async fn get(&self, resource: &ResourcePath) -> Result<Vec<u8>, String> {
        let fetched = tokio::time::timeout(
            FETCH_TIMEOUT,
            fetch_resource(self.kbs, self.initdata_toml.as_deref(), resource),
        )
        .await;
        match fetched {
            Ok(Ok(plaintext)) => Ok(plaintext),
            Ok(Err(e)) => Err(format!("get resource {resource}: {e}")),
            Err(_) => Err(format!("get resource {resource}: KBS round trip timed out")),
        }
    }
}

/// Answers one request from `peer` (None: a unix socket, local by
/// construction); returns the response and a summary.
pub async fn handle<S: ResourceSource>(
    source: &S,
    request: &Request,
    peer: Option<SocketAddr>,
) -> (Response, String) {
    let text =
        |status: u16, body: String| (Response::new(status, "text/plain", body.clone()), body);
    if let Some(peer) = peer
        && !peer.ip().is_loopback()
    {
        return text(403, format!("forbidden: peer {peer} is not on loopback"));
    }
    let path = request.head.target.split('?').next().unwrap_or_default();
    let Some(resource) = path.strip_prefix(RESOURCE_PREFIX) else {
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
    match source.get(&resource).await {
        Ok(plaintext) => {
            let summary = format!("released {resource} ({} bytes)", plaintext.len());
            (
                Response::new(200, "application/octet-stream", plaintext),
                summary,
            )
        }
        Err(why) => text(500, why),
    }
}

/// Accepts TCP connections forever; `name` prefixes the log lines.
pub async fn serve<S: ResourceSource>(
    name: &'static str,
    listener: TcpListener,
    source: Arc<S>,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(name, stream, Some(peer), &*source).await {
                println!("{name}: connection from {peer} ended: {e}");
            }
        });
    }
}

/// Accepts unix-socket connections forever; `name` prefixes the log lines.
pub async fn serve_unix<S: ResourceSource>(
    name: &'static str,
    listener: UnixListener,
    source: Arc<S>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(name, stream, None, &*source).await {
                println!("{name}: connection ended: {e}");
            }
        });
    }
}

async fn serve_connection<St, S>(
    name: &str,
    stream: St,
    peer: Option<SocketAddr>,
    source: &S,
) -> Result<(), HttpError>
where
    St: AsyncRead + AsyncWrite + Unpin,
    S: ResourceSource,
{
    let mut connection = Connection::new(stream);
    let from = peer.map_or("a local peer".to_string(), |peer| peer.to_string());
    loop {
        let request = match connection.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e @ (HttpError::Malformed(_) | HttpError::TooLarge(_))) => {
                println!("{name}: bad request from {from} -> 400 {e}");
                let response = Response::new(400, "text/plain", e.to_string());
                return connection.write_response(&response, false).await;
            }
            Err(e) => return Err(e),
        };
        let (response, summary) = handle(source, &request, peer).await;
        println!(
            "{name}: {} {} -> {} {}",
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
        let (response, _) = handle(
            &config(),
            &request("GET", "/cdh/resource/a/b/c"),
            Some(peer),
        )
        .await;
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
            let (response, summary) = handle(&config(), &request(method, target), Some(peer)).await;
            assert_eq!(response.status, status, "{method} {target}: {summary}");
        }
    }
}
