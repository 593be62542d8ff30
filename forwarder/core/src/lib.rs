//! The forwarder's trusted core: what decides who gets in and when, with no
//! sockets, files or clocks. The phase machine, the persisted phase record,
//! the tunnel policy per phase and the forwarder's configuration; the wire and file formats it reads
//! live in their own crates (`pp-ssh-key`, `pp-tag`, `pp-initdata`,
//! `pp-minitoml`). Drivers feed it events and carry out the decisions it
//! returns.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

pub mod config;
pub mod phase;
pub mod policy;
pub mod record;
