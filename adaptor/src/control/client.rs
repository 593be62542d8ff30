//! A client of the control API over its unix socket, for the CLI
//! (`pp-adaptor pp ...`) and the tests.
//!
//! Contract: [`ControlClient::call`] sends one request on a fresh
//! connection and returns the status and body; [`ControlClient::json`]
//! turns a non-2xx answer into [`ClientError::Refused`] carrying the
//! daemon's `error` message. No daemon (no socket file, or nobody
//! listening) is [`ClientError::NoDaemon`], so callers can fall back to
//! working without one.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one call may take beyond the long poll it asks for.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no pp-adaptor daemon answers on {path} ({source}); start `pp-adaptor serve`")]
    NoDaemon {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the pp-adaptor daemon on {path} failed: {reason}")]
    Transport { path: PathBuf, reason: String },
    #[error("the pp-adaptor daemon refused: {status}: {message}")]
    Refused { status: StatusCode, message: String },
}

/// The control socket of a daemon.
#[derive(Clone, Debug)]
pub struct ControlClient {
    path: PathBuf,
}

impl ControlClient {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// Sends `method path_and_query` with an optional JSON body; waits at
    /// most `extra_wait` + one minute.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        extra_wait: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let transport = |reason: String| ClientError::Transport {
            path: self.path.clone(),
            reason,
        };
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NoDaemon {
                    path: self.path.clone(),
                    source,
                },
                _ => transport(source.to_string()),
            })?;
        let exchange = async {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|error| transport(error.to_string()))?;
            tokio::spawn(connection);
            let body = body.map(ToString::to_string).unwrap_or_default();
            let request = Request::builder()
                .method(method)
                .uri(path_and_query)
                .header(HOST, "pp-adaptor")
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|error| transport(error.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| transport(error.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| transport(error.to_string()))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(CALL_DEADLINE + extra_wait, exchange)
            .await
            .map_err(|_| transport("no answer in time".into()))?
    }

    /// Like [`ControlClient::call`], for JSON answers: a 2xx body as JSON,
    /// anything else as [`ClientError::Refused`].
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        extra_wait: Duration,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, bytes) = self.call(method, path_and_query, body, extra_wait).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|error| ClientError::Transport {
                path: self.path.clone(),
                reason: format!("the answer ({status}) is not JSON: {error}"),
            })?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(ClientError::Refused {
                status,
                message: value["error"]
                    .as_str()
                    .unwrap_or("(no error message)")
                    .to_owned(),
            })
        }
    }
}
