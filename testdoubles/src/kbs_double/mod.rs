//! The KBS TEST DOUBLE: Trustee's KBS protocol 0.4.0 for the "sample" TEE
//! and its admin API, answered from memory. `KbsDouble::handle` is a pure
//! function of (request, time) over the store that returns the response and
//! the one log line the demo prints; `server` runs it on a TCP listener.
//!
//! Routes (all under `/kbs/v0/`): `POST auth`, `POST attest`,
//! `GET resource/<r>/<t>/<g>` (session cookie or attestation token),
//! admin `POST`/`DELETE resource/<r>/<t>/<g>`, `POST resource-policy`,
//! `POST attestation-policy`, `POST reference-value`,
//! `GET reference-value/<name>`; plus the test listing
//! `GET /kbs-double/resources`.
//!
//! As the real KBS (facts.md): any admin token that fails verification
//! (key, `role`, `exp`, `iss`/`aud` when configured) gets 401 `Cannot
//! verify token with any of the issuers`; a `DELETE` of a missing resource
//! is 401 `PluginInternalError` (not 404); an admin token cannot `GET` a
//! resource (401 `TokenVerifierError`).

mod routes;
pub mod server;
pub mod store;

pub use routes::{KbsDouble, Outcome};
