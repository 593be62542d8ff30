//! The worker-node side of peer-pod secure comms (the **adaptor**): it
//! keeps the WN and per-PP Ed25519 keys, registers them at Trustee, connects
//! to each PP's forwarder over SSH in two phases (attestation, then
//! Kubernetes), serves the PP's KBS tunnel with a reverse proxy to Trustee
//! that rewrites `pp-sid` to `pp-<SID>`, and listens locally for the PP's
//! other tunnels. The wire contract is docs/protocol.md; the reasons are in
//! docs/decisions/adaptor.md.
//!
//! Driving it (as the CLI and the tests do):
//!
//! ```no_run
//! # async fn demo(config: pp_adaptor::config::AdaptorConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use pp_adaptor::{adaptor::Adaptor, config::PpConfig, pp_status::PpStatus, sid::Sid};
//! use std::time::Duration;
//! let adaptor = Adaptor::new(&config)?;                 // key dir, WN key, admin key
//! let sid = Sid::parse("abc123")?;
//! adaptor.create_pp(&sid).await?;                       // PP key pair + Trustee registration
//! let init_data_line = adaptor.wn_public_key_line();    // goes into the PP's init-data
//! let pp = PpConfig::new(sid.clone(), "192.0.2.7:2222", true)
//!     .with_tunnels(&["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0"])?;
//! let handle = adaptor.serve_pp(pp).await?;             // its own task
//! let status = handle
//!     .wait_for(Duration::from_secs(60), |s| matches!(s, PpStatus::Kubernetes { .. }))
//!     .await;
//! let kata_agent = handle.tunnel_address("KATAAGENT");  // where to connect locally
//! adaptor.teardown(&sid).await?;                        // Trustee key + local keys gone
//! # let _ = (init_data_line, status, kata_agent); Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod adaptor;
pub mod admin_jwt;
pub mod admin_key;
pub mod backoff;
pub mod config;
pub mod control;
pub mod egress_policy;
pub mod egress_proxy;
pub mod host_key_policy;
pub mod kbs_proxy;
pub mod keystore;
pub mod local_tunnels;
pub mod metrics;
pub mod mux_connection;
pub mod pod_spec;
pub mod pods;
pub mod pp_driver;
pub mod pp_record;
pub mod pp_status;
pub mod relay_check;
pub mod rewrite;
pub mod sid;
pub mod ssh_connect;
pub mod teardown;
pub mod trustee_admin;
pub mod tunnel_stats;
pub mod upstream;
pub mod wn_targets;
