//! Size limits for every input pp-provision reads. One place, so the
//! documentation (docs/provisioning.md) and the code cannot drift apart.

/// Largest user-data accepted from any source (config drive or metadata
/// service), after transport decoding (Azure's base64).
pub const MAX_USER_DATA_BYTES: usize = 256 * 1024;

/// Largest HTTP response body accepted from a metadata service: Azure sends
/// the user-data base64-encoded (4/3 of its size, plus slack for line
/// breaks). The head is bounded by the core's parser (16 KiB).
pub const MAX_METADATA_BODY_BYTES: usize = MAX_USER_DATA_BYTES / 3 * 4 + 16 * 1024;

/// Largest AWS IMDSv2 session token accepted (AWS tokens are ~56 bytes).
pub const MAX_AWS_TOKEN_BYTES: usize = 1024;

/// Largest ISO9660 directory extent read while looking for `user-data`.
pub const MAX_ISO_DIRECTORY_BYTES: u32 = 64 * 1024;

/// Largest TEE evidence blob (configfs-tsm outblob, SNP report, TDX quote
/// with its certification data).
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024;
