//! KBS error responses in Trustee's shape: a status (401 or 404 in the KBS
//! protocol, 400 for the double's strict admin-message checks) and the body
//! `{"type":"https://github.com/confidential-containers/kbs/errors/<Kind>",
//! "detail":"<what went wrong>"}`. `parse_error_detail` reads such a body on
//! the client side and never panics.

use serde_json::{Value, json};

use crate::http1::Response;

/// The prefix of every error `type`.
pub const ERROR_TYPE_PREFIX: &str = "https://github.com/confidential-containers/kbs/errors";

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbsError {
    pub status: u16,
    /// Trustee's error kind, e.g. `TokenNotFound`.
    pub kind: &'static str,
    pub detail: String,
}

impl KbsError {
    /// An error answer.
    pub fn new(status: u16, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
        }
    }

    /// The HTTP response carrying this error.
    pub fn to_response(&self) -> Response {
        let body =
            json!({"type": format!("{ERROR_TYPE_PREFIX}/{}", self.kind), "detail": self.detail});
        Response::new(self.status, "application/json", body.to_string())
    }
}

/// The `detail` of a Trustee-shaped error body, or the body as lossy text.
pub fn parse_error_detail(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_trustees_type_and_detail() {
        let response =
            KbsError::new(401, "TokenNotFound", "Attestation Token not found").to_response();
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(
            body["type"],
            "https://github.com/confidential-containers/kbs/errors/TokenNotFound"
        );
        assert_eq!(
            parse_error_detail(&response.body),
            "Attestation Token not found"
        );
    }

    #[test]
    fn a_body_that_is_not_an_error_object_is_shown_as_text() {
        assert_eq!(parse_error_detail(b"plain failure"), "plain failure");
        assert_eq!(parse_error_detail(b"\xff"), "\u{fffd}");
    }
}
