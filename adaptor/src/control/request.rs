//! Requests of the control API, decoded: method + path + query + body →
//! [`ControlRequest`], or an [`ApiError`] naming what is wrong and what to
//! send instead.
//!
//! Contract: [`parse`] never panics and never touches a socket; every
//! field is checked here (SID syntax, JSON shape, unknown fields, query
//! parameters), so what reaches [`crate::pods::Pods`] is well-formed. The
//! routes:
//!
//! | method | path | body / query |
//! |---|---|---|
//! | POST | `/v1/pods` | `{"sid": "..."}` |
//! | GET | `/v1/pods` | |
//! | GET | `/v1/pods/{sid}` | |
//! | GET | `/v1/pods/{sid}/wait` | `?from=PHASE&timeout_secs=N` |
//! | POST | `/v1/pods/{sid}/attach` | `{"forwarder": "IP[:PORT]", "tunnels": [...], "targets": [...], "init_data_has_wn_key": true}` |
//! | DELETE | `/v1/pods/{sid}` | |
//! | GET | `/v1/metrics`, `/metrics` | |

use crate::control::reply::ApiError;
use crate::pods::{AttachRequest, PodPhase};
use crate::sid::Sid;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// Longest long poll a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The long poll when `timeout_secs` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// One decoded request.
#[derive(Debug)]
pub enum ControlRequest {
    Create {
        sid: Sid,
    },
    Attach {
        sid: Sid,
        request: AttachRequest,
    },
    Status {
        sid: Sid,
    },
    List,
    Wait {
        sid: Sid,
        from: Option<PodPhase>,
        timeout: Duration,
    },
    Delete {
        sid: Sid,
    },
    Metrics,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    sid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    forwarder: String,
    #[serde(default)]
    tunnels: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default = "yes")]
    init_data_has_wn_key: bool,
}

fn yes() -> bool {
    true
}

/// Decodes one request.
pub fn parse(
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<ControlRequest, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let no_query = |request: ControlRequest| match query {
        Some(query) if !query.is_empty() => Err(ApiError::bad_request(format!(
            "{path} takes no query parameters (got {query:?})"
        ))),
        _ => Ok(request),
    };
    match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "metrics"] | ["metrics"]) => no_query(ControlRequest::Metrics),
        (&Method::GET, ["v1", "pods"]) => no_query(ControlRequest::List),
        (&Method::POST, ["v1", "pods"]) => {
            let body: CreateBody = json_body(body, r#"{"sid": "SANDBOX_ID"}"#)?;
            no_query(ControlRequest::Create {
                sid: parse_sid(&body.sid)?,
            })
        }
        (&Method::GET, ["v1", "pods", sid]) => no_query(ControlRequest::Status {
            sid: parse_sid(sid)?,
        }),
        (&Method::DELETE, ["v1", "pods", sid]) => no_query(ControlRequest::Delete {
            sid: parse_sid(sid)?,
        }),
        (&Method::GET, ["v1", "pods", sid, "wait"]) => {
            let (from, timeout) = parse_wait_query(query.unwrap_or(""))?;
            Ok(ControlRequest::Wait {
                sid: parse_sid(sid)?,
                from,
                timeout,
            })
        }
        (&Method::POST, ["v1", "pods", sid, "attach"]) => {
            let sid = parse_sid(sid)?;
            let body: AttachBody = json_body(
                body,
                r#"{"forwarder": "IP[:PORT]", "tunnels": ["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0"], "init_data_has_wn_key": true}"#,
            )?;
            no_query(ControlRequest::Attach {
                sid,
                request: AttachRequest {
                    forwarder: body.forwarder,
                    tunnels: body.tunnels,
                    targets: body.targets,
                    init_data_has_wn_key: body.init_data_has_wn_key,
                },
            })
        }
        (_, ["v1", "metrics"] | ["metrics"] | ["v1", "pods", ..]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; see docs/control-api.md"),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no endpoint {path}; the API is POST/GET /v1/pods, GET/DELETE /v1/pods/SID, POST /v1/pods/SID/attach, GET /v1/pods/SID/wait, GET /v1/metrics"
            ),
        )),
    }
}

fn parse_sid(text: &str) -> Result<Sid, ApiError> {
    Sid::parse(text).map_err(|error| ApiError::bad_request(format!("bad sid {text:?}: {error}")))
}

fn json_body<'a, T: Deserialize<'a>>(body: &'a [u8], example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not the expected JSON ({error}); send e.g. {example}"
        ))
    })
}

fn parse_wait_query(query: &str) -> Result<(Option<PodPhase>, Duration), ApiError> {
    let mut from = None;
    let mut timeout = DEFAULT_WAIT;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "from" => {
                from = Some(PodPhase::parse(value).ok_or_else(|| {
                    let names: Vec<&str> = PodPhase::ALL.iter().map(|p| p.as_str()).collect();
                    ApiError::bad_request(format!(
                        "unknown phase {value:?}; use one of {}",
                        names.join(", ")
                    ))
                })?);
            }
            "timeout_secs" => {
                let secs: u64 = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "timeout_secs must be a whole number of seconds, got {value:?}"
                    ))
                })?;
                timeout = Duration::from_secs(secs).min(MAX_WAIT);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; wait takes from=PHASE and timeout_secs=N"
                )));
            }
        }
    }
    Ok((from, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(method: Method, path: &str, query: Option<&str>, body: &[u8]) -> ApiError {
        match parse(&method, path, query, body) {
            Err(error) => error,
            Ok(request) => panic!("{method} {path} was accepted as {request:?}"),
        }
    }

    #[test]
    fn every_route_decodes() {
        assert!(matches!(
            parse(&Method::POST, "/v1/pods", None, br#"{"sid":"abc"}"#),
            Ok(ControlRequest::Create { sid }) if sid.as_str() == "abc"
        ));
        assert!(matches!(
            parse(&Method::GET, "/v1/pods/", None, b""),
            Ok(ControlRequest::List)
        ));
        assert!(matches!(
            parse(&Method::GET, "/v1/pods/abc", None, b""),
            Ok(ControlRequest::Status { .. })
        ));
        assert!(matches!(
            parse(&Method::DELETE, "/v1/pods/abc", None, b""),
            Ok(ControlRequest::Delete { .. })
        ));
        assert!(matches!(
            parse(&Method::GET, "/metrics", None, b""),
            Ok(ControlRequest::Metrics)
        ));
        let Ok(ControlRequest::Wait { from, timeout, .. }) = parse(
            &Method::GET,
            "/v1/pods/abc/wait",
            Some("from=connecting&timeout_secs=9999"),
            b"",
        ) else {
            panic!("wait decodes");
        };
        assert_eq!((from, timeout), (Some(PodPhase::Connecting), MAX_WAIT));
        let Ok(ControlRequest::Attach { request, .. }) = parse(
            &Method::POST,
            "/v1/pods/abc/attach",
            None,
            br#"{"forwarder":"10.0.0.5","tunnels":["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0"]}"#,
        ) else {
            panic!("attach decodes");
        };
        assert_eq!(request.forwarder, "10.0.0.5");
        assert!(
            request.init_data_has_wn_key,
            "the WN key is in init-data by default"
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_message_saying_what_to_send() {
        type Case<'a> = (
            Method,
            &'a str,
            Option<&'a str>,
            &'a [u8],
            StatusCode,
            &'a str,
        );
        let cases: [Case; 9] = [
            (
                Method::POST,
                "/v1/pods",
                None,
                b"{",
                StatusCode::BAD_REQUEST,
                "send e.g.",
            ),
            (
                Method::POST,
                "/v1/pods",
                None,
                br#"{"sid":"a","x":1}"#,
                StatusCode::BAD_REQUEST,
                "unknown field",
            ),
            (
                Method::POST,
                "/v1/pods",
                None,
                br#"{"sid":"../etc"}"#,
                StatusCode::BAD_REQUEST,
                "bad sid",
            ),
            (
                Method::GET,
                "/v1/pods/a%20b",
                None,
                b"",
                StatusCode::BAD_REQUEST,
                "bad sid",
            ),
            (
                Method::POST,
                "/v1/pods/a/attach",
                None,
                br#"{"tunnels":[]}"#,
                StatusCode::BAD_REQUEST,
                "forwarder",
            ),
            (
                Method::GET,
                "/v1/pods/a/wait",
                Some("from=up"),
                b"",
                StatusCode::BAD_REQUEST,
                "unknown phase",
            ),
            (
                Method::GET,
                "/v1/pods/a/wait",
                Some("timeout_secs=-1"),
                b"",
                StatusCode::BAD_REQUEST,
                "whole number",
            ),
            (
                Method::PUT,
                "/v1/pods/a",
                None,
                b"",
                StatusCode::METHOD_NOT_ALLOWED,
                "not allowed",
            ),
            (
                Method::GET,
                "/v2/pods",
                None,
                b"",
                StatusCode::NOT_FOUND,
                "no endpoint",
            ),
        ];
        for (method, path, query, body, status, words) in cases {
            let error = refused(method, path, query, body);
            assert_eq!(error.status, status, "{path}: {}", error.message);
            assert!(error.message.contains(words), "{path}: {}", error.message);
        }
    }
}
