//! Answers of the control API: [`ApiError`] (status + message, sent as
//! `{"error": "..."}`) and the status code each refusal of
//! [`crate::pods::Pods`] gets.
//!
//! Contract: every message says what went wrong and what to do; a refusal
//! caused by the caller is 4xx, by Trustee 502, by this host 500.

use crate::adaptor::AdaptorError;
use crate::pods::PodsError;
use hyper::StatusCode;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `{"error": "..."}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl From<PodsError> for ApiError {
    fn from(error: PodsError) -> Self {
        let status = match &error {
            PodsError::NotCreated { .. } => StatusCode::NOT_FOUND,
            PodsError::AlreadyCreated { .. }
            | PodsError::AlreadyAttached { .. }
            | PodsError::Busy { .. } => StatusCode::CONFLICT,
            PodsError::BadTunnels { .. } | PodsError::BadForwarder { .. } => {
                StatusCode::BAD_REQUEST
            }
            PodsError::Adaptor { source, .. } => match **source {
                AdaptorError::Trustee(_) | AdaptorError::TrusteeTls(_) => StatusCode::BAD_GATEWAY,
                AdaptorError::Bind(_) | AdaptorError::AlreadyServed { .. } => StatusCode::CONFLICT,
                AdaptorError::Teardown { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        };
        let hint = match status {
            StatusCode::BAD_GATEWAY => "; nothing was changed that a retry would not fix: retry",
            _ => "",
        };
        Self::new(status, format!("{error}{hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sid::Sid;

    #[test]
    fn refusals_get_the_status_of_whose_fault_they_are() {
        let sid = Sid::parse("a").unwrap();
        let cases = [
            (
                PodsError::NotCreated { sid: sid.clone() },
                StatusCode::NOT_FOUND,
            ),
            (
                PodsError::AlreadyCreated { sid: sid.clone() },
                StatusCode::CONFLICT,
            ),
            (PodsError::Busy { sid: sid.clone() }, StatusCode::CONFLICT),
            (
                PodsError::BadTunnels { reason: "x".into() },
                StatusCode::BAD_REQUEST,
            ),
            (
                PodsError::Adaptor {
                    sid: sid.clone(),
                    source: Box::new(AdaptorError::Teardown {
                        sid,
                        reason: "Trustee down".into(),
                    }),
                },
                StatusCode::BAD_GATEWAY,
            ),
        ];
        for (error, status) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status, status, "{}", api.message);
            let json: serde_json::Value = serde_json::from_str(&api.to_json()).unwrap();
            assert_eq!(json["error"], api.message.as_str());
        }
    }
}
