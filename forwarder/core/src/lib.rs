//! The forwarder's sans-IO core: everything the peer-pod forwarder decides,
//! with no sockets, files or clocks. Drivers feed it bytes and events and
//! carry out the decisions it returns.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod http;
pub mod initdata;
pub mod key;
pub mod minitoml;
pub mod mux;
pub mod phase;
pub mod record;
pub mod tag;

#[cfg(test)]
mod test_support;
