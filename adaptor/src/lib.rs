//! The worker-node side of peer-pod secure comms (the **adaptor**): it
//! keeps the WN and per-PP Ed25519 keys, registers them at Trustee, connects
//! to each PP's forwarder over SSH in two phases (attestation, then
//! Kubernetes), serves the PP's KBS tunnel with a reverse proxy to Trustee
//! that rewrites `pp-sid` to `pp-<SID>`, and listens locally for the PP's
//! other tunnels. The wire contract is docs/protocol.md.
#![forbid(unsafe_code)]

pub mod adaptor;
pub mod admin_jwt;
pub mod admin_key;
pub mod backoff;
pub mod config;
pub mod host_key_policy;
pub mod kbs_proxy;
pub mod keystore;
pub mod local_tunnels;
pub mod mux_connection;
pub mod pp_driver;
pub mod pp_record;
pub mod pp_status;
pub mod relay_check;
pub mod rewrite;
pub mod sid;
pub mod ssh_connect;
pub mod teardown;
pub mod trustee_admin;
pub mod upstream;
