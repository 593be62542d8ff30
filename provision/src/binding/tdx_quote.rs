//! The Intel TDX quote (DCAP quote format v4 and v5): just enough to take
//! MRCONFIGID out of the TD report body it carries.
//!
//! Layout: a 48-byte header (version u16, attestation key type u16, TEE
//! type u32 = 0x81 for TDX, ...). Version 4: the TD report body follows at
//! byte 48. Version 5: a body descriptor (type u16, size u32) follows, the
//! body at byte 54 (type 2 = TD report 1.0, 3 = TD report 1.5). In the body,
//! MRCONFIGID is 48 bytes at offset 184 (after TEE_TCB_SVN 16, MRSEAM 48,
//! MRSIGNERSEAM 48, SEAMATTRIBUTES 8, TDATTRIBUTES 8, XFAM 8, MRTD 48).
//!
//! Contract: [`mr_config_id`] takes untrusted bytes and never panics; it
//! checks version, key type, TEE type and lengths so that truncated or
//! garbage quotes are refused. Signatures are not verified (see
//! `snp_report` for why that is fine here).

const HEADER_BYTES: usize = 48;
const TEE_TYPE_TDX: u32 = 0x81;
const KEY_TYPES: [u16; 2] = [2, 3]; // ECDSA-256, ECDSA-384
const TD_REPORT_10_BYTES: usize = 584;
const TD_REPORT_15_BYTES: usize = 648;
const MR_CONFIG_ID_OFFSET_IN_BODY: usize = 184;
pub const MR_CONFIG_ID_BYTES: usize = 48;

/// Why a blob is not a usable TDX quote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdxQuoteError {
    #[error(
        "TDX quote is {got} bytes, shorter than the {needed} bytes its header announces (truncated?)"
    )]
    Truncated { got: usize, needed: usize },
    #[error(
        "TDX quote version {0} is not supported (expected 4 or 5); is this really a TDX quote?"
    )]
    UnsupportedVersion(u16),
    #[error(
        "TDX quote attestation key type {0} is not ECDSA (2 or 3); is this really a TDX quote?"
    )]
    UnexpectedKeyType(u16),
    #[error("quote TEE type {0:#x} is not TDX (0x81)")]
    NotTdx(u32),
    #[error("TDX quote v5 body type {0} is not a TD report (2 or 3)")]
    UnexpectedBodyType(u16),
}

/// MRCONFIGID from a raw TDX quote.
pub fn mr_config_id(quote: &[u8]) -> Result<[u8; MR_CONFIG_ID_BYTES], TdxQuoteError> {
    let truncated = |needed| TdxQuoteError::Truncated {
        got: quote.len(),
        needed,
    };
    let header = quote.get(..HEADER_BYTES).ok_or(truncated(HEADER_BYTES))?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    let key_type = u16::from_le_bytes([header[2], header[3]]);
    let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(4..=5).contains(&version) {
        return Err(TdxQuoteError::UnsupportedVersion(version));
    }
    if !KEY_TYPES.contains(&key_type) {
        return Err(TdxQuoteError::UnexpectedKeyType(key_type));
    }
    if tee_type != TEE_TYPE_TDX {
        return Err(TdxQuoteError::NotTdx(tee_type));
    }
    let (body_start, body_bytes) = if version == 4 {
        (HEADER_BYTES, TD_REPORT_10_BYTES)
    } else {
        let descriptor = quote
            .get(HEADER_BYTES..HEADER_BYTES + 6)
            .ok_or(truncated(HEADER_BYTES + 6))?;
        let body_type = u16::from_le_bytes([descriptor[0], descriptor[1]]);
        let body_bytes = match body_type {
            2 => TD_REPORT_10_BYTES,
            3 => TD_REPORT_15_BYTES,
            other => return Err(TdxQuoteError::UnexpectedBodyType(other)),
        };
        (HEADER_BYTES + 6, body_bytes)
    };
    let body = quote
        .get(body_start..body_start + body_bytes)
        .ok_or(truncated(body_start + body_bytes))?;
    let mut mr_config_id = [0u8; MR_CONFIG_ID_BYTES];
    mr_config_id.copy_from_slice(
        &body[MR_CONFIG_ID_OFFSET_IN_BODY..MR_CONFIG_ID_OFFSET_IN_BODY + MR_CONFIG_ID_BYTES],
    );
    Ok(mr_config_id)
}

/// Build a v4 quote (no signature data) with the given MRCONFIGID, for tests
/// and simulated-TEE fixtures.
pub fn synthetic_quote_v4(mr_config_id: &[u8; MR_CONFIG_ID_BYTES]) -> Vec<u8> {
    let mut quote = vec![0u8; HEADER_BYTES + TD_REPORT_10_BYTES];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&TEE_TYPE_TDX.to_le_bytes());
    let at = HEADER_BYTES + MR_CONFIG_ID_OFFSET_IN_BODY;
    quote[at..at + MR_CONFIG_ID_BYTES].copy_from_slice(mr_config_id);
    quote
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrconfigid_is_read_from_a_v4_quote() {
        let quote = synthetic_quote_v4(&[0x5A; 48]);
        assert_eq!(mr_config_id(&quote).unwrap(), [0x5A; 48]);
    }

    #[test]
    fn mrconfigid_is_read_from_a_v5_quote_with_a_td15_body() {
        let v4 = synthetic_quote_v4(&[0x11; 48]);
        let mut quote = v4[..HEADER_BYTES].to_vec();
        quote[0..2].copy_from_slice(&5u16.to_le_bytes());
        quote.extend_from_slice(&3u16.to_le_bytes());
        quote.extend_from_slice(&(TD_REPORT_15_BYTES as u32).to_le_bytes());
        quote.extend_from_slice(&v4[HEADER_BYTES..]);
        quote.resize(HEADER_BYTES + 6 + TD_REPORT_15_BYTES, 0);
        assert_eq!(mr_config_id(&quote).unwrap(), [0x11; 48]);
    }

    #[test]
    fn a_truncated_quote_is_refused() {
        let quote = synthetic_quote_v4(&[1; 48]);
        assert!(matches!(
            mr_config_id(&quote[..quote.len() - 1]),
            Err(TdxQuoteError::Truncated { .. })
        ));
        assert!(matches!(
            mr_config_id(&quote[..10]),
            Err(TdxQuoteError::Truncated { got: 10, .. })
        ));
    }

    #[test]
    fn garbage_and_sgx_quotes_are_refused() {
        assert_eq!(
            mr_config_id(&[0xEE; 700]),
            Err(TdxQuoteError::UnsupportedVersion(0xEEEE))
        );
        let mut sgx = synthetic_quote_v4(&[1; 48]);
        sgx[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(mr_config_id(&sgx), Err(TdxQuoteError::NotTdx(0)));
    }
}
