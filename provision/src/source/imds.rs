//! Cloud metadata services that hand out user-data: Azure IMDS, AWS IMDSv2
//! and GCP's metadata server, all at a configurable IP:PORT (normally
//! 169.254.169.254:80; tests use a double inside a network namespace).
//!
//! * Azure: `GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text`
//!   with `Metadata: true`; the body is the user-data in base64.
//! * AWS IMDSv2: `PUT /latest/api/token` with
//!   `X-aws-ec2-metadata-token-ttl-seconds`, then `GET /latest/user-data`
//!   with `X-aws-ec2-metadata-token: <token>`; the body is the user-data.
//! * GCP: `GET /computeMetadata/v1/instance/attributes/user-data` with
//!   `Metadata-Flavor: Google` (the response's own `Metadata-Flavor` header
//!   is not checked: the core's parser does not expose headers).
//!
//! Contract: every response is bounded (`MAX_METADATA_BODY_BYTES`), the
//! user-data itself by `MAX_USER_DATA_BYTES`; a status other than 200 is an
//! error naming the service, the path and the status. Errors say whether a
//! retry could help ([`MetadataError::is_transient`]).

use std::net::SocketAddr;
use std::time::Duration;

use pp_http::Response;

use super::http_request::{self, ExchangeError, Request};
use crate::encoding::{self, EncodingError};
use crate::limits::{MAX_AWS_TOKEN_BYTES, MAX_METADATA_BODY_BYTES, MAX_USER_DATA_BYTES};

const AZURE_USER_DATA: &str =
    "/metadata/instance/compute/userData?api-version=2021-01-01&format=text";
const AWS_TOKEN: &str = "/latest/api/token";
const AWS_USER_DATA: &str = "/latest/user-data";
const AWS_TOKEN_TTL_SECONDS: &str = "60";
const GCP_USER_DATA: &str = "/computeMetadata/v1/instance/attributes/user-data";
const GCP_HOST: &str = "metadata.google.internal";

/// A cloud with a metadata service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Azure,
    Aws,
    Gcp,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Azure => "Azure IMDS",
            Cloud::Aws => "AWS IMDSv2",
            Cloud::Gcp => "GCP metadata server",
        }
    }
}

/// Why user-data could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{service} {path}: {source}")]
    Exchange {
        service: &'static str,
        path: &'static str,
        source: ExchangeError,
    },
    #[error("{service} {path}: HTTP status {status} (expected 200)")]
    Status {
        service: &'static str,
        path: &'static str,
        status: u16,
    },
    #[error("{service}: {what}")]
    Invalid { service: &'static str, what: String },
}

impl MetadataError {
    /// Whether trying again later could succeed (the service not up yet,
    /// user-data not yet published) as opposed to a final answer.
    pub fn is_transient(&self) -> bool {
        match self {
            MetadataError::Exchange { source, .. } => {
                matches!(
                    source,
                    ExchangeError::Connect { .. } | ExchangeError::Io { .. }
                )
            }
            MetadataError::Status { status, .. } => *status == 404 || *status >= 500,
            _ => false,
        }
    }
}

/// Fetch the raw user-data from `cloud`'s metadata service at `addr`.
pub fn fetch_user_data(
    cloud: Cloud,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<u8>, MetadataError> {
    let service = cloud.name();
    let host = addr.ip().to_string();
    let user_data = match cloud {
        Cloud::Azure => {
            let body = get_ok(
                service,
                addr,
                timeout,
                &Request {
                    method: "GET",
                    path: AZURE_USER_DATA,
                    host: &host,
                    headers: &[("Metadata", "true")],
                },
            )?
            .body;
            let text = std::str::from_utf8(&body)
                .map_err(|_| invalid(service, "user-data is not base64 text"))?;
            encoding::decode_base64(text)
                .map_err(|e: EncodingError| invalid(service, &format!("user-data {e}")))?
        }
        Cloud::Aws => {
            let token = get_ok(
                service,
                addr,
                timeout,
                &Request {
                    method: "PUT",
                    path: AWS_TOKEN,
                    host: &host,
                    headers: &[(
                        "X-aws-ec2-metadata-token-ttl-seconds",
                        AWS_TOKEN_TTL_SECONDS,
                    )],
                },
            )?
            .body;
            if token.is_empty() || token.len() > MAX_AWS_TOKEN_BYTES {
                return Err(invalid(
                    service,
                    &format!(
                        "session token is {} bytes (expected 1 to {MAX_AWS_TOKEN_BYTES})",
                        token.len()
                    ),
                ));
            }
            let token = String::from_utf8(token)
                .map_err(|_| invalid(service, "session token is not text"))?;
            get_ok(
                service,
                addr,
                timeout,
                &Request {
                    method: "GET",
                    path: AWS_USER_DATA,
                    host: &host,
                    headers: &[("X-aws-ec2-metadata-token", token.trim())],
                },
            )?
            .body
        }
        Cloud::Gcp => {
            get_ok(
                service,
                addr,
                timeout,
                &Request {
                    method: "GET",
                    path: GCP_USER_DATA,
                    host: GCP_HOST,
                    headers: &[("Metadata-Flavor", "Google")],
                },
            )?
            .body
        }
    };
    if user_data.len() > MAX_USER_DATA_BYTES {
        return Err(invalid(
            service,
            &format!(
                "user-data is {} bytes, more than the {MAX_USER_DATA_BYTES}-byte limit",
                user_data.len()
            ),
        ));
    }
    Ok(user_data)
}

fn invalid(service: &'static str, what: &str) -> MetadataError {
    MetadataError::Invalid {
        service,
        what: what.to_owned(),
    }
}

/// Send one request and require a 200 response.
fn get_ok(
    service: &'static str,
    addr: SocketAddr,
    timeout: Duration,
    request: &Request<'_>,
) -> Result<Response, MetadataError> {
    let path = request.path;
    let exchange = |source| MetadataError::Exchange {
        service,
        path,
        source,
    };
    let bytes = request.emit().map_err(exchange)?;
    let response =
        http_request::exchange(addr, &bytes, MAX_METADATA_BODY_BYTES, timeout).map_err(exchange)?;
    if response.status != 200 {
        return Err(MetadataError::Status {
            service,
            path,
            status: response.status,
        });
    }
    Ok(response)
}
