//! Serving the control API: the unix socket (mode 0600 in a 0700 directory
//! it creates when missing), the request limits, the dispatch to
//! [`Pods`], and the optional loopback TCP listener for metrics only.
//!
//! Contract: a request's head must arrive within [`HEAD_DEADLINE`] (else
//! the connection is closed) and its body within [`BODY_DEADLINE`] and
//! [`MAX_BODY_BYTES`] (else a JSON `408`/`413` and the connection is
//! closed); heads larger than [`MAX_HEAD_BYTES`] are refused by hyper.
//! Such a client changes nothing. At most [`MAX_CONNECTIONS`] connections
//! are served at once; more wait to be accepted. A socket file left by a
//! killed daemon is replaced; one a live daemon answers on is not (start
//! fails with a message). The metrics listener answers `GET /metrics` and
//! `GET /v1/metrics` only and refuses every other request with 404.

use crate::control::reply::ApiError;
use crate::control::request::{ControlRequest, parse};
use crate::metrics::render;
use crate::pods::Pods;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// The request line and headers must arrive within this time.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// The body must arrive within this time.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest request head (hyper's read buffer).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Which requests a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The whole API (the unix socket).
    Control,
    /// `GET /metrics` and `GET /v1/metrics` only (the TCP listener).
    MetricsOnly,
}

/// Binds the control socket at `path`: creates its directory (0700) when
/// missing, replaces a stale socket file, sets mode 0600.
pub async fn bind_control_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| {
                format!(
                    "cannot create the control socket's directory {}: {error}",
                    dir.display()
                )
            })?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another pp-adaptor serves the control socket {}; stop it, or give this one another --socket",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|error| {
            format!(
                "cannot remove the stale control socket {}: {error}",
                path.display()
            )
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|error| {
        format!(
            "cannot listen on the control socket {}: {error}",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|error| {
        format!(
            "cannot make the control socket {} mode 0600: {error}",
            path.display()
        )
    })?;
    Ok(listener)
}

/// Binds the metrics listener; refuses a non-loopback address unless
/// `allow_non_loopback`.
pub async fn bind_metrics(
    address: std::net::SocketAddr,
    allow_non_loopback: bool,
) -> Result<TcpListener, String> {
    if !address.ip().is_loopback() && !allow_non_loopback {
        return Err(format!(
            "--metrics-listen {address} is not a loopback address; metrics name every pod, so use 127.0.0.1:PORT (or add --metrics-allow-non-loopback if a network policy protects it)"
        ));
    }
    TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen for metrics on {address}: {error}"))
}

/// Serves the control API on `listener` forever.
pub async fn serve_control(listener: UnixListener, pods: Pods) {
    let listener = &listener;
    accept_loop(
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        pods,
        Exposure::Control,
    )
    .await;
}

/// Serves metrics on `listener` forever.
pub async fn serve_metrics(listener: TcpListener, pods: Pods) {
    let listener = &listener;
    accept_loop(
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        pods,
        Exposure::MetricsOnly,
    )
    .await;
}

async fn accept_loop<S, Accept, Accepting>(mut accept: Accept, pods: Pods, exposure: Exposure)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Accept: FnMut() -> Accepting,
    Accepting: Future<Output = std::io::Result<S>>,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match accept().await {
            Ok(stream) => {
                let pods = pods.clone();
                tokio::spawn(async move {
                    serve_connection(stream, pods, exposure).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!("control API ({exposure:?}): accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection<S>(stream: S, pods: Pods, exposure: Exposure)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let pods = pods.clone();
        async move { Ok::<_, Infallible>(handle(&pods, request, exposure).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::info!("control API: connection closed: {error}");
    }
}

async fn handle(
    pods: &Pods,
    request: Request<Incoming>,
    exposure: Exposure,
) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let body = match tokio::time::timeout(
        BODY_DEADLINE,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            let too_large = error.is::<http_body_util::LengthLimitError>();
            let refusal = if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes; send less"),
                )
            } else {
                ApiError::bad_request(format!("the request body could not be read: {error}"))
            };
            return closing(refusal);
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s; send the whole request at once",
                    BODY_DEADLINE.as_secs()
                ),
            ));
        }
    };
    let decoded = parse(&head.method, head.uri.path(), head.uri.query(), &body);
    let reply = match decoded {
        Ok(ControlRequest::Metrics) => Ok(Reply::metrics(render(&pods.metrics()))),
        Ok(_) if exposure == Exposure::MetricsOnly => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this listener serves GET /metrics only; the control API is on the unix socket",
        )),
        Err(_) if exposure == Exposure::MetricsOnly => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this listener serves GET /metrics only",
        )),
        Ok(request) => answer(pods, request).await,
        Err(error) => Err(error),
    };
    match reply {
        Ok(reply) => reply.into_response(),
        Err(error) => {
            tracing::info!(
                "control API: {} {} refused: {} {}",
                head.method,
                head.uri.path(),
                error.status.as_u16(),
                error.message
            );
            json_response(error.status, error.to_json())
        }
    }
}

/// What a request gets when it succeeded.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn json(status: StatusCode, value: impl serde::Serialize) -> Self {
        Self {
            status,
            content_type: "application/json",
            // Views of plain strings and numbers always serialize.
            body: serde_json::to_string(&value).unwrap_or_default(),
        }
    }

    fn metrics(text: String) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: text,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        response
    }
}

/// Carries out one decoded request.
async fn answer(pods: &Pods, request: ControlRequest) -> Result<Reply, ApiError> {
    Ok(match request {
        ControlRequest::Create { sid } => {
            let line = pods.create(&sid).await?;
            tracing::info!("control API: pod {sid} created");
            Reply::json(
                StatusCode::CREATED,
                serde_json::json!({ "sid": sid.as_str(), "wn_public_key": line }),
            )
        }
        ControlRequest::Attach { sid, request } => {
            let view = pods.attach(&sid, request).await?;
            tracing::info!("control API: pod {sid} attached");
            Reply::json(StatusCode::OK, view)
        }
        ControlRequest::Status { sid } => Reply::json(StatusCode::OK, pods.status(&sid)?),
        ControlRequest::List => {
            Reply::json(StatusCode::OK, serde_json::json!({ "pods": pods.list() }))
        }
        ControlRequest::Wait { sid, from, timeout } => {
            let (view, changed) = pods.wait_change(&sid, from, timeout).await?;
            Reply::json(
                StatusCode::OK,
                serde_json::json!({ "changed": changed, "pod": view }),
            )
        }
        ControlRequest::Delete { sid } => {
            pods.delete(&sid).await?;
            tracing::info!("control API: pod {sid} deleted");
            Reply::json(
                StatusCode::OK,
                serde_json::json!({ "sid": sid.as_str(), "deleted": true }),
            )
        }
        ControlRequest::Metrics => Reply::metrics(render(&pods.metrics())),
    })
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Reply {
        status,
        content_type: "application/json",
        body,
    }
    .into_response()
}

/// A refusal after which the connection is closed (its request was not
/// read whole, so the stream cannot be trusted to hold the next one).
fn closing(error: ApiError) -> Response<Full<Bytes>> {
    tracing::info!("control API: request refused: {}", error.message);
    let mut response = json_response(error.status, error.to_json());
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_listen_on_loopback_only_unless_told() {
        let refused = bind_metrics("0.0.0.0:0".parse().unwrap(), false)
            .await
            .unwrap_err();
        assert!(refused.contains("not a loopback address"), "{refused}");
        assert!(
            bind_metrics("127.0.0.1:0".parse().unwrap(), false)
                .await
                .is_ok()
        );
        assert!(
            bind_metrics("0.0.0.0:0".parse().unwrap(), true)
                .await
                .is_ok()
        );
    }
}
