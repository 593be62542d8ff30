//! The worker-node end of a PP's `EGRESS` tunnel: each stream the PP opens
//! is one HTTP `CONNECT` from a proxy client in the pod (image-rs under CDH
//! pulling an image, with `https_proxy` pointing at the PP's loopback
//! listener), served here: the name is checked against the allow-list,
//! resolved on the worker node, every address checked, and the connection
//! made from the worker node.
//!
//! Contract: the head must arrive within [`HEAD_TIMEOUT`] and
//! [`pp_http::MAX_HEAD_LEN`] bytes. A refusal is one HTTP response with a
//! one-line text reason (`400` malformed, `405` not CONNECT, `403` not
//! allowed or only internal addresses, `502`/`504` unreachable) and one log
//! line naming the PP, the target and the reason. On success the client
//! gets `200 Connection established` and bytes flow both ways untouched
//! until either side closes; the log line at the end counts them.

use crate::egress_policy::{EgressPolicy, EgressRefusal};
use crate::sid::Sid;
use pp_http::{ConnectError, ConnectRequest, parse_connect};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long the PP's client has to send its whole `CONNECT` head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long name resolution and the TCP connect may take, each.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The egress proxy of one adaptor (the policy is the same for every PP).
#[derive(Clone, Debug, Default)]
pub struct EgressProxy {
    policy: Arc<EgressPolicy>,
}

/// Why a `CONNECT` was not carried out.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Head(ConnectError),
    #[error("no complete request head within {} s", HEAD_TIMEOUT.as_secs())]
    HeadTimeout,
    #[error("the client closed the stream before its request head ended")]
    HeadTruncated,
    #[error("{0}")]
    Refused(EgressRefusal),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("reading from the PP's client: {0}")]
    Client(std::io::Error),
}

impl Failure {
    /// The status line the client gets.
    fn status(&self) -> &'static str {
        match self {
            Self::Head(ConnectError::NotConnect) => "405 Method Not Allowed",
            Self::Head(_) | Self::HeadTruncated | Self::Client(_) => "400 Bad Request",
            Self::HeadTimeout => "408 Request Timeout",
            Self::Refused(_) => "403 Forbidden",
            Self::Resolve { .. } | Self::Connect { .. } => "502 Bad Gateway",
        }
    }
}

impl EgressProxy {
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// Whether any target is allowed (else the PP's streams are refused at once).
    pub fn is_enabled(&self) -> bool {
        !self.policy.allow.is_empty()
    }

    /// Serves one `CONNECT` on `stream` (from PP `sid`) until either end closes.
    pub async fn serve_stream<S>(&self, sid: &Sid, mut stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (request, early) = match read_head(&mut stream).await {
            Ok(head) => head,
            Err(failure) => return refuse(sid, "(no target)", &failure, &mut stream).await,
        };
        let target = format!("{}:{}", request.host, request.port);
        let mut upstream = match self.dial(&request).await {
            Ok(upstream) => upstream,
            Err(failure) => return refuse(sid, &target, &failure, &mut stream).await,
        };
        let established = stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        let forwarded_early = upstream.write_all(&early).await;
        if established.and(forwarded_early).is_err() {
            return;
        }
        match tokio::io::copy_bidirectional(&mut stream, &mut upstream).await {
            Ok((up, down)) => tracing::info!(
                "pp {sid}: egress to {target} ended: {} B to it, {down} B back",
                up.saturating_add(early.len() as u64)
            ),
            Err(error) => tracing::info!("pp {sid}: egress to {target} ended: {error}"),
        }
    }

    /// Checks the name, resolves it, and connects to the first address the
    /// policy lets through.
    async fn dial(&self, request: &ConnectRequest) -> Result<TcpStream, Failure> {
        self.policy
            .check_name(&request.host, request.port)
            .map_err(Failure::Refused)?;
        let resolve = tokio::net::lookup_host((request.host.as_str(), request.port));
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(DIAL_TIMEOUT, resolve).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(error)) => {
                return Err(Failure::Resolve {
                    host: request.host.clone(),
                    reason: error.to_string(),
                });
            }
            Err(_) => {
                return Err(Failure::Resolve {
                    host: request.host.clone(),
                    reason: format!("no answer within {} s", DIAL_TIMEOUT.as_secs()),
                });
            }
        };
        let mut last = None;
        for addr in addrs {
            if let Err(refusal) = self.policy.check_address(addr.ip()) {
                last = Some(Failure::Refused(refusal));
                continue;
            }
            match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(error)) => {
                    last = Some(Failure::Connect {
                        addr,
                        reason: error.to_string(),
                    })
                }
                Err(_) => {
                    last = Some(Failure::Connect {
                        addr,
                        reason: format!("no answer within {} s", DIAL_TIMEOUT.as_secs()),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure::Resolve {
            host: request.host.clone(),
            reason: "no addresses".into(),
        }))
    }
}

/// Reads until the head is complete: the request and the bytes after it.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(ConnectRequest, Vec<u8>), Failure> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.map_err(Failure::Client)?;
            if n == 0 {
                return Err(Failure::HeadTruncated);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(request) = parse_connect(&buf).map_err(Failure::Head)? {
                let early = buf.get(request.head_len..).unwrap_or_default().to_vec();
                return Ok((request, early));
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .unwrap_or(Err(Failure::HeadTimeout))
}

/// Logs the refusal and answers it.
async fn refuse<S: AsyncWrite + Unpin>(sid: &Sid, target: &str, failure: &Failure, stream: &mut S) {
    tracing::warn!("pp {sid}: egress to {target} refused: {failure}");
    let body = format!("{failure}\n");
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        failure.status(),
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress_policy::AllowPattern;
    use pp_ipnet::SourceNetwork;
    use tokio::io::duplex;
    use tokio::net::TcpListener;

    fn sid() -> Sid {
        Sid::parse("egress1").unwrap()
    }

    async fn exchange(proxy: &EgressProxy, request: &[u8]) -> String {
        let (mut client, server) = duplex(64 * 1024);
        let sid = sid();
        let serve = proxy.serve_stream(&sid, server);
        let talk = async move {
            client.write_all(request).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        };
        let ((), answer) = tokio::join!(serve, talk);
        answer
    }

    fn proxy(allow: &str, permit: &str) -> EgressProxy {
        EgressProxy::new(EgressPolicy {
            allow: vec![AllowPattern::parse(allow).unwrap()],
            permit_networks: vec![SourceNetwork::parse(permit).unwrap()],
            ..EgressPolicy::default()
        })
    }

    #[tokio::test]
    async fn an_allowed_target_is_connected_and_bytes_flow_both_ways() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = server.accept().await.unwrap();
            let mut hello = [0u8; 5];
            socket.read_exact(&mut hello).await.unwrap();
            socket.write_all(b"world").await.unwrap();
        });
        let proxy = proxy(&format!("localhost:{port}"), "127.0.0.0/8");
        let answer = exchange(
            &proxy,
            format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: x\r\n\r\nhello").as_bytes(),
        )
        .await;
        assert_eq!(answer, "HTTP/1.1 200 Connection established\r\n\r\nworld");
    }

    #[tokio::test]
    async fn refusals_answer_with_a_status_and_the_reason() {
        let proxy = proxy("localhost:9", "192.0.2.0/24");
        for (request, expected) in [
            (
                "CONNECT elsewhere.example:443 HTTP/1.1\r\n\r\n",
                "403 Forbidden",
            ),
            ("CONNECT localhost:9 HTTP/1.1\r\n\r\n", "403 Forbidden"),
            ("GET / HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
            ("CONNECT x HTTP/1.1\r\n\r\n", "400 Bad Request"),
            ("CONNECT x:1", "400 Bad Request"),
        ] {
            let answer = exchange(&proxy, request.as_bytes()).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {expected}\r\n")),
                "{request}: {answer}"
            );
        }
        let answer = exchange(&proxy, b"CONNECT localhost:9 HTTP/1.1\r\n\r\n").await;
        assert!(
            answer.contains("loopback address, which the egress tunnel never reaches"),
            "{answer}"
        );
        let answer = exchange(&EgressProxy::default(), b"CONNECT a:1 HTTP/1.1\r\n\r\n").await;
        assert!(answer.contains("egress is not enabled"), "{answer}");
    }
}
