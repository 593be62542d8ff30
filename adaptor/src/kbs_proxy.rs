//! The reverse proxy behind a PP's `KBS` tunnel: each stream the PP opens
//! is an HTTP/1.1 connection from its attestation-agent/CDH, served here and
//! forwarded to Trustee.
//!
//! Contract: requests are forwarded with method, headers, cookies and body
//! untouched, except that (1) the path `/kbs/v0/resource/<repo>/pp-sid/privateKey`
//! is rewritten to `.../pp-<SID>/privateKey` (see [`crate::rewrite`]),
//! (2) `Host` names Trustee, as a proxy must, and (3) hop-by-hop headers
//! (RFC 9110 section 7.6.1) are dropped in both directions. Bodies stream
//! through without buffering. Keep-alive works: any number of requests per
//! stream. Trustee unreachable → `502` with a one-line text body. One log
//! line per request: method, original path, rewritten path if any, status.

use crate::rewrite::rewrite_resource_path;
use crate::sid::Sid;
use crate::trustee_admin::error_chain;
use crate::upstream::{Upstream, UpstreamBody};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::io::{AsyncRead, AsyncWrite};

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The KBS reverse proxy of one PP.
#[derive(Clone)]
pub struct KbsProxy {
    upstream: Upstream,
    sid: Sid,
}

impl KbsProxy {
    pub fn new(upstream: Upstream, sid: Sid) -> Self {
        Self { upstream, sid }
    }

    /// Serves HTTP/1.1 on `stream` until the PP side closes it.
    pub async fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.forward(request).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(error) = served {
            tracing::info!(sid = %self.sid, "pp {}: KBS tunnel stream ended with an error: {}", self.sid, error_chain(&error));
        }
    }

    async fn forward(&self, request: Request<Incoming>) -> Response<UpstreamBody> {
        let method = request.method().clone();
        let original_path = request.uri().path().to_owned();
        let rewritten_path = rewrite_resource_path(&original_path, &self.sid);
        let upstream_path = rewritten_path.as_deref().unwrap_or(&original_path);
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{upstream_path}?{query}"),
            None => upstream_path.to_owned(),
        };
        let rewrite_note = rewritten_path
            .as_deref()
            .map(|path| format!(" (rewritten to {path})"))
            .unwrap_or_default();
        let response = match self.upstream_request(request, &path_and_query) {
            Ok(upstream_request) => self
                .upstream
                .send(upstream_request)
                .await
                .map_err(|error| error_chain(&error)),
            Err(error) => Err(error.to_string()),
        };
        match response {
            Ok(response) => {
                tracing::info!(
                    "pp {}: KBS {method} {original_path}{rewrite_note} -> {}",
                    self.sid,
                    response.status().as_u16()
                );
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(reason) => {
                tracing::warn!(
                    "pp {}: KBS {method} {original_path}{rewrite_note} -> 502: Trustee at {} unreachable: {reason}",
                    self.sid,
                    self.upstream.url()
                );
                bad_gateway(&format!(
                    "Trustee unreachable from the worker node: {reason}"
                ))
            }
        }
    }

    fn upstream_request(
        &self,
        request: Request<Incoming>,
        path_and_query: &str,
    ) -> Result<Request<UpstreamBody>, hyper::http::Error> {
        let (mut parts, body) = request.into_parts();
        parts.uri = self.upstream.uri_for(path_and_query)?;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(
            header::HOST,
            header::HeaderValue::from_str(self.upstream.url().authority())?,
        );
        Ok(Request::from_parts(parts, body.boxed()))
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named_in_connection) {
        headers.remove(name);
    }
}

fn bad_gateway(message: &str) -> Response<UpstreamBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped_and_others_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert(header::COOKIE, "kbs-session-id=abc".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "cookie"]);
    }
}
