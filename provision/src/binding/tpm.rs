//! vTPM binding: extend PCR 8 with the init-data digest by sending one raw
//! TPM2_PCR_Extend command to the kernel's resource manager (`/dev/tpmrm0`).
//!
//! This does what guest-components' TPM attesters do in `bind_init_data`
//! (az-snp-vtpm, az-tdx-vtpm and the generic TPM attester): extend the
//! SHA-256 bank of PCR 8 with the digest as is, which must be exactly 32
//! bytes (so init-data on vTPM platforms must use `algorithm = "sha256"`).
//! The command uses the password session (TPM_RS_PW) with an empty
//! password, which PCR 8 accepts by default.
//!
//! Contract: [`extend_command`] builds the exact command bytes;
//! [`check_extend_response`] takes untrusted bytes from the TPM and never
//! panics; any response other than success is an error carrying the code.

use std::io::{Read, Write};
use std::path::Path;

/// The PCR init-data is bound to on vTPM platforms.
pub const INITDATA_PCR: u32 = 8;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_ALG_SHA256: u16 = 0x000B;
const SHA256_BYTES: usize = 32;
const RESPONSE_HEADER_BYTES: usize = 10;
const MAX_RESPONSE_BYTES: usize = 4096;

/// Why the PCR could not be extended.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error(
        "the init-data digest is {0} bytes; vTPM binding extends the SHA-256 bank of PCR 8 and needs init-data with algorithm = \"sha256\""
    )]
    NotSha256(usize),
    #[error("{path}: {source}")]
    Device {
        path: String,
        source: std::io::Error,
    },
    #[error("TPM response is malformed ({0})")]
    MalformedResponse(&'static str),
    #[error("TPM2_PCR_Extend failed with response code {0:#010x}")]
    Failed(u32),
}

/// The TPM2_PCR_Extend command extending `pcr`'s SHA-256 bank with `digest`.
pub fn extend_command(pcr: u32, digest: &[u8]) -> Result<Vec<u8>, TpmError> {
    if digest.len() != SHA256_BYTES {
        return Err(TpmError::NotSha256(digest.len()));
    }
    let mut session = Vec::with_capacity(9);
    session.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    session.extend_from_slice(&0u16.to_be_bytes()); // nonceCaller: empty
    session.push(0); // sessionAttributes
    session.extend_from_slice(&0u16.to_be_bytes()); // hmac (password): empty
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&pcr.to_be_bytes()); // pcrHandle
    body.extend_from_slice(&(session.len() as u32).to_be_bytes()); // authorizationSize
    body.extend_from_slice(&session);
    body.extend_from_slice(&1u32.to_be_bytes()); // TPML_DIGEST_VALUES.count
    body.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    body.extend_from_slice(digest);
    let size = 10 + body.len();
    let mut command = Vec::with_capacity(size);
    command.extend_from_slice(&TPM_ST_SESSIONS.to_be_bytes());
    command.extend_from_slice(&(size as u32).to_be_bytes());
    command.extend_from_slice(&TPM_CC_PCR_EXTEND.to_be_bytes());
    command.extend_from_slice(&body);
    Ok(command)
}

/// Accept a TPM response only if it is well-formed and reports success.
pub fn check_extend_response(response: &[u8]) -> Result<(), TpmError> {
    let header = response
        .get(..RESPONSE_HEADER_BYTES)
        .ok_or(TpmError::MalformedResponse(
            "shorter than the 10-byte header",
        ))?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if usize::try_from(size).ok() != Some(response.len()) {
        return Err(TpmError::MalformedResponse(
            "size field does not match its length",
        ));
    }
    let code = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    if code != 0 {
        return Err(TpmError::Failed(code));
    }
    Ok(())
}

/// Extend PCR 8 of the TPM at `device` (normally `/dev/tpmrm0`) with
/// `digest`.
pub fn extend_initdata_pcr(device: &Path, digest: &[u8]) -> Result<(), TpmError> {
    let command = extend_command(INITDATA_PCR, digest)?;
    let io = |source| TpmError::Device {
        path: device.display().to_string(),
        source,
    };
    let mut tpm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(io)?;
    let response = transact(&mut tpm, &command).map_err(io)?;
    check_extend_response(&response)
}

/// Send one command and read its whole response (the size field in the
/// response header says how long it is), over any byte transport: the
/// kernel's TPM device, or a TPM simulator's socket in tests.
pub fn transact(tpm: &mut (impl Read + Write), command: &[u8]) -> std::io::Result<Vec<u8>> {
    tpm.write_all(command)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; MAX_RESPONSE_BYTES];
    loop {
        let expected = response
            .get(2..6)
            .map(|size: &[u8]| u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize);
        if expected.is_some_and(|size| response.len() >= size) {
            return Ok(response);
        }
        let got = tpm.read(&mut chunk)?;
        if got == 0 {
            return Ok(response); // let the response check name what is missing
        }
        response.extend_from_slice(&chunk[..got]);
        if response.len() > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("TPM response longer than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extend_command_has_the_tpm2_layout() {
        let command = extend_command(8, &[0xAA; 32]).unwrap();
        let mut expected = vec![
            0x80, 0x02, 0x00, 0x00, 0x00, 0x41, // tag, size 65
            0x00, 0x00, 0x01, 0x82, // TPM_CC_PCR_Extend
            0x00, 0x00, 0x00, 0x08, // PCR 8
            0x00, 0x00, 0x00, 0x09, // authorizationSize
            0x40, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, // TPM_RS_PW session
            0x00, 0x00, 0x00, 0x01, 0x00, 0x0B, // one SHA-256 digest
        ];
        expected.extend_from_slice(&[0xAA; 32]);
        assert_eq!(command, expected);
    }

    #[test]
    fn a_non_sha256_digest_is_refused_with_advice() {
        let err = extend_command(8, &[0; 48]).unwrap_err();
        assert!(err.to_string().contains("sha256"));
    }

    #[test]
    fn a_success_response_is_accepted() {
        let response = [
            0x80, 0x02, 0, 0, 0, 0x13, 0, 0, 0, 0, // header, rc 0
            0, 0, 0, 0, // parameterSize
            0, 0, 1, 0, 0, // session: nonce, attrs, hmac
        ];
        check_extend_response(&response).unwrap();
    }

    #[test]
    fn an_error_response_reports_its_code() {
        let response = [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x09, 0x8E];
        assert!(matches!(
            check_extend_response(&response),
            Err(TpmError::Failed(0x098E))
        ));
    }

    #[test]
    fn a_short_or_inconsistent_response_is_malformed() {
        assert!(matches!(
            check_extend_response(&[0x80]),
            Err(TpmError::MalformedResponse(_))
        ));
        assert!(matches!(
            check_extend_response(&[0x80, 0x01, 0, 0, 0, 0x20, 0, 0, 0, 0]),
            Err(TpmError::MalformedResponse(_))
        ));
    }
}
