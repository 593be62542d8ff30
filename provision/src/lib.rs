//! pp-provision: the peer-pod boot step that turns cloud user-data into
//! init-data files, but only init-data the TEE was launched with.
//!
//! Map: [`source`] fetches user-data (config drive via a bounded ISO9660
//! reader, or a metadata service); [`cloud_config`] picks the init-data
//! `write_files` entry; init-data itself is decoded, parsed and digested by
//! `pp_initdata`; [`binding`] checks SNP HOST_DATA / TDX
//! MRCONFIGID or extends vTPM PCR 8; [`guest_components`] checks or
//! defaults AA's and CDH's configuration; [`output`] writes the files;
//! [`provision`] runs those steps in order and [`cli`] parses the command
//! line. The crate has no unsafe code: `/dev/sev-guest` is reached through
//! the `sev` crate, TDX through sysfs/configfs, the TPM with read/write.
#![forbid(unsafe_code)]

pub mod binding;
pub mod bounded_read;
pub mod cli;
pub mod cloud_config;
pub mod encoding;
pub mod guest_components;
pub mod limits;
pub mod output;
pub mod provision;
pub mod read_at;
pub mod source;
