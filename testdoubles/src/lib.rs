//! TEST DOUBLES for the systems around the peer-pod forwarder. Nothing in
//! this crate is a production component: every binary names itself a test
//! double in its `--help` and in every log line.
//!
//! - `kbs-double`: a stand-in for Trustee's KBS (protocol "0.4.0", sample
//!   TEE only, admin API with an Ed25519 admin JWT), in memory.
//! - `cdh-double`: a stand-in for guest-components' api-server-rest + CDH +
//!   attestation-agent as they run in the peer pod: each
//!   `GET /cdh/resource/..` runs the KBS client protocol with "sample"
//!   evidence.
//! - `attestation-agent-double`, `confidential-data-hub-double`,
//!   `api-server-rest-double`: the same three as SEPARATE processes, with
//!   the real ones' command lines, sockets and start-up failures, for the
//!   production image's service files (`aa_double`, `cdh_process_double`,
//!   `api_server_double`).
//! - `agent-echo`: a stand-in for the kata-agent that echoes bytes.
//! - `dns_double`: the cluster's DNS resolver (CoreDNS) for `A` queries
//!   over UDP, in the real wire format, in process (UDP tunnel tests).
//! - `secrets_api_double`: the Secrets part of kube-apiserver's REST API
//!   (versions, 409 AlreadyExists/Conflict, 404 Status objects), in
//!   process, for the adaptor's Kubernetes key store.
//!
//! The wire formats (HTTP/1.1 framing, canonical JSON, sample evidence,
//! JWK/JWE/JWS) live in one module each and are shared by the server and
//! client sides, so both doubles speak exactly the same protocol.
//!
//! Contract: no function here panics on bytes from the network; every
//! parser of untrusted input is a plain function tested with garbage.
#![forbid(unsafe_code)]

pub mod aa_double;
pub mod admin_auth;
pub mod admin_messages;
pub mod agent_echo;
pub mod api_server_double;
pub mod canonical_json;
pub mod cdh_double;
pub mod cdh_process_double;
pub mod cli;
pub mod dns_double;
pub mod evidence;
pub mod http1;
pub mod jwe;
pub mod jws;
pub mod kbs_client;
pub mod kbs_double;
pub mod kbs_error;
pub mod kbs_protocol;
pub mod kbs_token;
pub mod kbs_url;
pub mod random;
pub mod resource_path;
pub mod secrets_api_double;
pub mod tee_key;
pub mod unix_socket;
