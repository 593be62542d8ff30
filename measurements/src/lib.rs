//! `pp-measure`: the reference values of a peer-pod image and the Trustee
//! documents that publish them.
//!
//! Contract: every parser of firmware, PE and init-data bytes
//! ([`pe`], [`ovmf`], [`initdata`]) treats its input as untrusted: it never
//! panics, reads only inside the input, bounds every loop, and reports what
//! is missing in an error naming the input. Computations ([`snp`], [`tdx`],
//! [`uki`]) work only on parsed values.
#![forbid(unsafe_code)]

pub mod bytes;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod image;
pub mod initdata;
pub mod ovmf;
pub mod pe;
pub mod policy;
pub mod reference;
pub mod snp;
pub mod tdx;
pub mod uki;
