//! The forwarder's trusted core: what decides who gets in and when, with no
//! sockets, files or clocks. The phase machine, the persisted phase record
//! and the forwarder's configuration; the wire and file formats it reads
//! live in their own crates (`pp-ssh-key`, `pp-tag`, `pp-initdata`,
//! `pp-minitoml`). Drivers feed it events and carry out the decisions it
//! returns.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        missing_docs
    )
)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod phase;
pub mod record;
