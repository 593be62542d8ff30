//! Trustee's admin API as the adaptor uses it: set and delete resources.
//!
//! Contract: every request carries `Authorization: Bearer <fresh admin
//! JWT>`; the body of a set is the raw resource bytes. A non-2xx answer
//! becomes [`TrusteeError::Refused`] holding the status and Trustee's
//! `{"type","detail"}` (or the raw body when it is not that JSON). A delete
//! answered 404 counts as done (the resource is gone either way). Each call
//! has a deadline, so an unreachable Trustee cannot hang the caller.

use crate::admin_jwt::AdminTokenSigner;
use crate::sid::Sid;
use crate::upstream::{Upstream, UpstreamBody};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode, header};
use std::time::Duration;

/// The resource repository the adaptor writes to.
pub const REPOSITORY: &str = "default";
/// Where the WN public key lives: `default/sshclient/publicKey`.
pub const WN_PUBLIC_KEY_RESOURCE: (&str, &str) = ("sshclient", "publicKey");
/// The tag of each PP's private key: `default/pp-<SID>/privateKey`.
pub const PP_PRIVATE_KEY_TAG: &str = "privateKey";
/// How long one admin request may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// How much of an unexpected error body is kept for the report.
const MAX_ERROR_BODY: usize = 512;

/// What went wrong talking to Trustee's admin API.
#[derive(Debug, thiserror::Error)]
pub enum TrusteeError {
    #[error(
        "cannot reach Trustee at {url} for {method} {path}: {reason}; is Trustee running and the URL right?"
    )]
    Unreachable {
        url: String,
        method: Method,
        path: String,
        reason: String,
    },
    #[error("Trustee did not answer {method} {path} within {seconds} s")]
    Timeout {
        method: Method,
        path: String,
        seconds: u64,
    },
    #[error("Trustee refused {method} {path}: {status}: {message}{hint}")]
    Refused {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
        hint: &'static str,
    },
}

/// A client of Trustee's admin API.
pub struct TrusteeAdmin {
    upstream: Upstream,
    signer: AdminTokenSigner,
}

impl TrusteeAdmin {
    pub fn new(upstream: Upstream, signer: AdminTokenSigner) -> Self {
        Self { upstream, signer }
    }

    /// Stores the WN public key (one authorized_keys line) as
    /// `default/sshclient/publicKey`.
    pub async fn set_wn_public_key(&self, authorized_keys_line: &str) -> Result<(), TrusteeError> {
        let (resource_type, tag) = WN_PUBLIC_KEY_RESOURCE;
        self.set_resource(resource_type, tag, authorized_keys_line.as_bytes().to_vec())
            .await
    }

    /// Stores a PP's OpenSSH private key as `default/pp-<SID>/privateKey`.
    pub async fn set_pp_private_key(
        &self,
        sid: &Sid,
        openssh_private_key: &[u8],
    ) -> Result<(), TrusteeError> {
        self.set_resource(
            &sid.pp_name(),
            PP_PRIVATE_KEY_TAG,
            openssh_private_key.to_vec(),
        )
        .await
    }

    /// Deletes `default/pp-<SID>/privateKey`.
    pub async fn delete_pp_private_key(&self, sid: &Sid) -> Result<(), TrusteeError> {
        let path = resource_path(&sid.pp_name(), PP_PRIVATE_KEY_TAG);
        match self.call(Method::DELETE, &path, Bytes::new()).await {
            Err(TrusteeError::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    async fn set_resource(
        &self,
        resource_type: &str,
        tag: &str,
        bytes: Vec<u8>,
    ) -> Result<(), TrusteeError> {
        self.call(
            Method::POST,
            &resource_path(resource_type, tag),
            Bytes::from(bytes),
        )
        .await
    }

    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<(), TrusteeError> {
        let unreachable = |reason: String| TrusteeError::Unreachable {
            url: self.upstream.url().to_string(),
            method: method.clone(),
            path: path.to_owned(),
            reason,
        };
        let uri = self
            .upstream
            .uri_for(path)
            .map_err(|error| unreachable(error.to_string()))?;
        let body: UpstreamBody = Full::new(body).map_err(|never| match never {}).boxed();
        let request = hyper::Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::HOST, self.upstream.url().authority())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.signer.token()),
            )
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .map_err(|error| unreachable(error.to_string()))?;
        let exchange = async {
            let response = self
                .upstream
                .send(request)
                .await
                .map_err(|error| unreachable(error_chain(&error)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, TrusteeError>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_DEADLINE, exchange)
            .await
            .map_err(|_| TrusteeError::Timeout {
                method: method.clone(),
                path: path.to_owned(),
                seconds: REQUEST_DEADLINE.as_secs(),
            })??;
        if status.is_success() {
            return Ok(());
        }
        Err(TrusteeError::Refused {
            hint: hint_for(status),
            method,
            path: path.to_owned(),
            status,
            message: describe_error_body(&body),
        })
    }
}

/// `/kbs/v0/resource/default/<type>/<tag>`.
fn resource_path(resource_type: &str, tag: &str) -> String {
    format!("/kbs/v0/resource/{REPOSITORY}/{resource_type}/{tag}")
}

/// Trustee's `{"type": ".../errors/<Kind>", "detail": ".."}` as
/// `<Kind>: <detail>`, or the start of the raw body.
pub fn describe_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "type")]
        kind: String,
        detail: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => {
            let kind = error
                .kind
                .rsplit('/')
                .next()
                .unwrap_or(&error.kind)
                .to_owned();
            format!("{kind}: {}", error.detail)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let shortened: String = text.chars().take(MAX_ERROR_BODY).collect();
            if shortened.is_empty() {
                "(empty body)".to_owned()
            } else {
                shortened
            }
        }
    }
}

fn hint_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (check that Trustee's admin public key matches the adaptor's admin key, and the role/iss/aud claims)"
        }
        _ => "",
    }
}

/// The error and its sources on one line (hyper's top error says little).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trustee_error_body_shows_its_kind_and_detail() {
        let body = br#"{"type":"https://github.com/confidential-containers/kbs/errors/TokenNotFound","detail":"no token"}"#;
        assert_eq!(describe_error_body(body), "TokenNotFound: no token");
    }

    #[test]
    fn a_body_that_is_not_trustee_json_is_shown_as_text() {
        assert_eq!(describe_error_body(b"bad gateway"), "bad gateway");
        assert_eq!(describe_error_body(b""), "(empty body)");
    }

    #[test]
    fn resource_paths_live_in_the_default_repository() {
        assert_eq!(
            resource_path("pp-x", "privateKey"),
            "/kbs/v0/resource/default/pp-x/privateKey"
        );
    }
}
