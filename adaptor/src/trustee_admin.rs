//! Trustee's admin API as the adaptor uses it: set and delete resources.
//!
//! Contract: every request carries `Authorization: Bearer <fresh admin
//! JWT>`; the body of a set is the raw resource bytes. A non-2xx answer
//! becomes [`TrusteeError::Refused`] holding the status and Trustee's
//! `{"type","detail"}` (or the raw body when it is not that JSON). A delete
//! of a resource Trustee does not have counts as done (the resource is gone
//! either way): the real KBS answers it with 401 `PluginInternalError` whose
//! detail says the resource was not found (404 is accepted too). Any other
//! 401 carries a hint: Trustee's `Cannot verify token with any of the
//! issuers` (a wrong key or a wrong issuer/audience: Trustee does not say
//! which) names both, the rest the admin key. Each call has a deadline, so an unreachable Trustee cannot hang the
//! caller.

use crate::admin_jwt::AdminTokenSigner;
use crate::sid::Sid;
use crate::upstream::{Upstream, UpstreamBody};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode, header};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// Trustee's answer to an admin token none of its identity providers accepts.
const ISSUERS_REFUSAL: &str = "Cannot verify token with any of the issuers";
/// The hint for [`ISSUERS_REFUSAL`].
const ISSUER_HINT: &str = " (Trustee verified the admin token with none of its identity providers: \
     check that Trustee's admin public key (the `public_key_uri` of an entry in its \
     `[admin.authentication.bearer_jwt] identity_providers`) matches the adaptor's admin key, and \
     that the token's `iss` and `aud` equal that entry's `issuer` and `audience`: set them as \
     `[admin_token] issuer` and `audience` in the adaptor's configuration)";
/// The hint for any other refusal of the admin token.
const ADMIN_KEY_HINT: &str = " (check that Trustee's admin public key matches the adaptor's admin key, and the role/iss/aud claims)";

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
    errors: AtomicU64,
}

impl TrusteeAdmin {
    pub fn new(upstream: Upstream, signer: AdminTokenSigner) -> Self {
        Self {
            upstream,
            signer,
            errors: AtomicU64::new(0),
        }
    }

    /// How many admin calls failed (unreachable, timed out or refused) since
    /// start; an already-missing key on delete is not a failure.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
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
                status, message, ..
            }) if is_missing_resource(status, &message) => {
                tracing::info!("pp {sid}: its private key was already gone at Trustee ({message})");
                Ok(())
            }
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
        let outcome = self.exchange(method, path, body).await;
        if outcome.as_ref().is_err_and(|error| {
            !matches!(error, TrusteeError::Refused { status, message, .. } if is_missing_resource(*status, message))
        }) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    async fn exchange(&self, method: Method, path: &str, body: Bytes) -> Result<(), TrusteeError> {
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
        let message = describe_error_body(&body);
        Err(TrusteeError::Refused {
            hint: hint_for(status, &message),
            method,
            path: path.to_owned(),
            status,
            message,
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

/// Whether a refused DELETE means the resource is not there: 404, or the
/// real KBS's 401 `PluginInternalError: ... not found`.
fn is_missing_resource(status: StatusCode, message: &str) -> bool {
    status == StatusCode::NOT_FOUND
        || (status == StatusCode::UNAUTHORIZED
            && message.starts_with("PluginInternalError:")
            && message.to_ascii_lowercase().contains("not found"))
}

fn hint_for(status: StatusCode, message: &str) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED if message.contains(ISSUERS_REFUSAL) => ISSUER_HINT,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ADMIN_KEY_HINT,
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
    fn only_a_not_found_plugin_error_or_a_404_counts_as_already_deleted() {
        let missing = "PluginInternalError: Plugin internal error: resource not found";
        assert!(is_missing_resource(StatusCode::UNAUTHORIZED, missing));
        assert!(is_missing_resource(StatusCode::NOT_FOUND, "anything"));
        for (status, message) in [
            (
                StatusCode::UNAUTHORIZED,
                "AdminAuthAccess: admin access denied",
            ),
            (
                StatusCode::UNAUTHORIZED,
                "PluginInternalError: storage failed",
            ),
            (StatusCode::UNAUTHORIZED, "resource not found"),
            (StatusCode::FORBIDDEN, missing),
        ] {
            assert!(!is_missing_resource(status, message), "{status} {message}");
        }
    }

    #[test]
    fn the_hint_names_issuer_and_audience_for_trustees_issuer_refusal() {
        let issuers = "AdminAuthAccess: admin access denied for endpoint resource: \
                       Cannot verify token with any of the issuers";
        let hint = hint_for(StatusCode::UNAUTHORIZED, issuers);
        assert!(
            hint.contains("[admin_token] issuer") && hint.contains("identity_providers"),
            "{hint}"
        );
        assert_eq!(
            hint_for(StatusCode::UNAUTHORIZED, "AdminAuthAccess: no header"),
            ADMIN_KEY_HINT
        );
        assert_eq!(hint_for(StatusCode::BAD_GATEWAY, issuers), "");
    }

    #[test]
    fn resource_paths_live_in_the_default_repository() {
        assert_eq!(
            resource_path("pp-x", "privateKey"),
            "/kbs/v0/resource/default/pp-x/privateKey"
        );
    }
}
