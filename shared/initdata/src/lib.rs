//! Init-data: the TOML document the peer pod is launched with
//! (`version`, `algorithm`, `[data]` file name -> text), how peer pods
//! deliver it (`/run/peerpod/initdata`: base64(gzip(TOML)), or plain TOML),
//! and the digest that binds it to the TEE launch (SNP HOST_DATA, TDX
//! MRCONFIGID).
//!
//! Contract:
//! * [`decode_delivery`] and [`InitData::parse`] never panic on any input.
//!   Hard limits keep memory bounded: the delivered bytes are at most
//!   [`MAX_DELIVERED_LEN`], the decoded TOML at most [`MAX_TOML_LEN`], and
//!   inflating stops as soon as the output would pass that limit (a gzip
//!   bomb costs at most the limit plus one chunk).
//! * The gzip CRC-32 and length are checked; a delivery is one gzip member
//!   with nothing after it.
//! * [`InitData::parse`] is strict: `version` must be `0.1.0`, `algorithm`
//!   one of `sha256`/`sha384`/`sha512`, unknown top-level keys are errors.
//! * [`digest`] covers the exact TOML bytes as decoded, with no
//!   canonicalisation; [`emit_delivery`] writes the base64(gzip) form.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

mod crc32;
mod delivery;
mod document;
mod error;
mod gzip;

pub use delivery::{decode_delivery, emit_delivery};
pub use document::{Algorithm, InitData, SUPPORTED_VERSION, digest, host_data, mrconfigid};
pub use error::InitDataError;

/// The most bytes accepted as delivered (base64 text, gzip or plain TOML).
pub const MAX_DELIVERED_LEN: usize = 256 * 1024;
/// The most bytes of TOML accepted after decoding.
pub const MAX_TOML_LEN: usize = 1024 * 1024;
