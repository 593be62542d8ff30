//! One gzip member (RFC 1952) in memory: header parsing, bounded raw
//! inflate with miniz_oxide, and the CRC-32/ISIZE trailer check; and the
//! writer for the same format.

use super::{InitDataError, crc32};
use alloc::vec;
use alloc::vec::Vec;
use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

pub(super) const MAGIC: [u8; 2] = [0x1f, 0x8b];
const METHOD_DEFLATE: u8 = 8;
const FLAG_HEADER_CRC: u8 = 0x02;
const FLAG_EXTRA: u8 = 0x04;
const FLAG_NAME: u8 = 0x08;
const FLAG_COMMENT: u8 = 0x10;
const FLAGS_RESERVED: u8 = 0xe0;
/// Operating system "unknown" in the header we write.
const OS_UNKNOWN: u8 = 255;
const TRAILER_LEN: usize = 8;
/// How much is inflated per step; the most the limit can be overshot in memory.
const CHUNK: usize = 32 * 1024;
const COMPRESSION_LEVEL: u8 = 9;

fn damaged(what: &'static str) -> InitDataError {
    InitDataError::BadGzip { what }
}

/// Decodes one gzip member that must fill `bytes` exactly, producing at
/// most `limit` bytes.
pub(super) fn decompress(bytes: &[u8], limit: usize) -> Result<Vec<u8>, InitDataError> {
    let deflate = skip_header(bytes)?;
    let (output, consumed) = inflate_bounded(deflate, limit)?;
    let trailer = deflate
        .get(consumed..)
        .ok_or(damaged("inflate consumed too much"))?;
    let Ok(trailer) = <[u8; TRAILER_LEN]>::try_from(trailer) else {
        return Err(damaged(if trailer.len() < TRAILER_LEN {
            "the CRC-32/length trailer is missing or cut short"
        } else {
            "extra bytes after the gzip member"
        }));
    };
    let (crc, size) = trailer.split_at(4);
    if crc32::crc32(&output).to_le_bytes() != crc {
        return Err(damaged("CRC-32 mismatch"));
    }
    // ISIZE is the length modulo 2^32; our limit keeps it far below that.
    if u32::try_from(output.len())
        .map(u32::to_le_bytes)
        .ok()
        .as_ref()
        != size.first_chunk()
    {
        return Err(damaged("length mismatch"));
    }
    Ok(output)
}

/// Returns the deflate data that follows the header.
fn skip_header(bytes: &[u8]) -> Result<&[u8], InitDataError> {
    let truncated = || damaged("the header is cut short");
    let (fixed, mut rest) = bytes.split_first_chunk::<10>().ok_or_else(truncated)?;
    if fixed[..2] != MAGIC {
        return Err(damaged("no gzip magic"));
    }
    if fixed[2] != METHOD_DEFLATE {
        return Err(damaged("compression method is not deflate"));
    }
    let flags = fixed[3];
    if flags & FLAGS_RESERVED != 0 {
        return Err(damaged("reserved header flags are set"));
    }
    if flags & FLAG_EXTRA != 0 {
        let (len, after) = rest.split_first_chunk::<2>().ok_or_else(truncated)?;
        rest = after
            .get(usize::from(u16::from_le_bytes(*len))..)
            .ok_or_else(truncated)?;
    }
    for flag in [FLAG_NAME, FLAG_COMMENT] {
        if flags & flag != 0 {
            let end = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            rest = rest.get(end.saturating_add(1)..).ok_or_else(truncated)?;
        }
    }
    if flags & FLAG_HEADER_CRC != 0 {
        rest = rest.get(2..).ok_or_else(truncated)?;
    }
    Ok(rest)
}

/// Inflates raw deflate data, stopping with an error before the output
/// passes `limit`. Returns the output and the input bytes consumed.
fn inflate_bounded(input: &[u8], limit: usize) -> Result<(Vec<u8>, usize), InitDataError> {
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    let mut chunk = vec![0u8; CHUNK];
    let mut output = Vec::new();
    let mut consumed = 0;
    loop {
        let rest = input.get(consumed..).unwrap_or_default();
        let step = inflate(&mut state, rest, &mut chunk, MZFlush::None);
        consumed = consumed.saturating_add(step.bytes_consumed);
        let produced = chunk.get(..step.bytes_written).unwrap_or_default();
        if output.len().saturating_add(produced.len()) > limit {
            return Err(InitDataError::InflatesTooLarge { limit });
        }
        output.extend_from_slice(produced);
        match step.status {
            Ok(MZStatus::StreamEnd) => return Ok((output, consumed)),
            Ok(MZStatus::Ok) if step.bytes_consumed > 0 || step.bytes_written > 0 => {}
            Ok(_) | Err(MZError::Buf) => return Err(damaged("the deflate data is cut short")),
            Err(_) => return Err(damaged("the deflate data is corrupt")),
        }
    }
}

/// Writes `data` as one gzip member (no name, no time stamp).
pub(super) fn compress(data: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, COMPRESSION_LEVEL);
    let mut out = Vec::with_capacity(deflated.len().saturating_add(10 + TRAILER_LEN));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[METHOD_DEFLATE, 0, 0, 0, 0, 0, 0, OS_UNKNOWN]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32::crc32(data).to_le_bytes());
    // ISIZE is defined modulo 2^32.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf 'version = "0.1.0"\n' | gzip -n`
    const GZIP_CLI_OUTPUT: [u8; 38] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x2b, 0x4b, 0x2d, 0x2a, 0xce,
        0xcc, 0xcf, 0x53, 0xb0, 0x55, 0x50, 0x32, 0xd0, 0x33, 0xd4, 0x33, 0x50, 0xe2, 0x02, 0x00,
        0xef, 0x19, 0x9e, 0xaa, 0x12, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn output_of_the_gzip_tool_decompresses() {
        assert_eq!(
            decompress(&GZIP_CLI_OUTPUT, 100).unwrap(),
            b"version = \"0.1.0\"\n"
        );
    }

    #[test]
    fn optional_header_fields_are_skipped() {
        let mut with_fields = GZIP_CLI_OUTPUT[..10].to_vec();
        with_fields[3] = FLAG_EXTRA | FLAG_NAME | FLAG_COMMENT | FLAG_HEADER_CRC;
        with_fields.extend_from_slice(&[3, 0, b'x', b'y', b'z']);
        with_fields.extend_from_slice(b"name\0comment\0");
        with_fields.extend_from_slice(&[0xaa, 0xbb]);
        with_fields.extend_from_slice(&GZIP_CLI_OUTPUT[10..]);
        assert_eq!(
            decompress(&with_fields, 100).unwrap(),
            b"version = \"0.1.0\"\n"
        );
    }

    #[test]
    fn written_gzip_reads_back() {
        let data = b"[data]\n\"forwarder.toml\" = '''\ninbounds = []\n'''\n".repeat(50);
        assert_eq!(decompress(&compress(&data), data.len()).unwrap(), data);
    }

    #[test]
    fn inflating_stops_at_the_limit_for_a_bomb() {
        let bomb = compress(&vec![0u8; 8 * 1024 * 1024]);
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        assert_eq!(
            decompress(&bomb, 1024 * 1024),
            Err(InitDataError::InflatesTooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn damaged_crc_length_and_truncation_are_refused() {
        let mut bad_crc = GZIP_CLI_OUTPUT;
        bad_crc[30] ^= 1;
        assert_eq!(decompress(&bad_crc, 100), Err(damaged("CRC-32 mismatch")));
        let mut bad_len = GZIP_CLI_OUTPUT;
        bad_len[34] ^= 1;
        assert_eq!(decompress(&bad_len, 100), Err(damaged("length mismatch")));
        for cut in 0..GZIP_CLI_OUTPUT.len() {
            assert!(
                decompress(&GZIP_CLI_OUTPUT[..cut], 100).is_err(),
                "cut at {cut}"
            );
        }
        let mut extra = GZIP_CLI_OUTPUT.to_vec();
        extra.push(0);
        assert_eq!(
            decompress(&extra, 100),
            Err(damaged("extra bytes after the gzip member"))
        );
    }
}
