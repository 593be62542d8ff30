//! The local control API of `pp-adaptor serve`: HTTP/1.1 + JSON on a unix
//! socket (default `/run/pp-adaptor/control.sock`, mode 0600), under
//! `/v1/`; documented for callers in docs/control-api.md.
//!
//! * [`request`] turns method, path, query and body into a
//!   [`request::ControlRequest`] or a refusal (pure, no sockets);
//! * [`reply`] turns what [`crate::pods::Pods`] answered into status codes
//!   and JSON, and refusals into `{"error": "..."}` (pure);
//! * [`server`] owns the socket, the limits (request size, time to send
//!   the request) and the optional loopback metrics listener;
//! * [`client`] is what the CLI (and the tests) use to talk to a daemon.

pub mod client;
pub mod reply;
pub mod request;
pub mod server;
