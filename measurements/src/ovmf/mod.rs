//! OVMF/TDVF firmware images: the GUID-tagged footer table near the end of
//! the image and the metadata it points to.
//!
//! Contract: [`FooterTable::parse`] never panics and reads only inside the
//! image; entries are found by walking the table backwards from the footer
//! exactly as QEMU and the `sev` crate do. At most [`MAX_TABLE_ENTRIES`]
//! entries are read. The SEV metadata ([`sev_metadata`]) and TDVF metadata
//! ([`tdvf`]) parsers build on it with the same contract.

pub mod guid;
pub mod sev_metadata;
pub mod tdvf;

use crate::bytes::{array_at, slice_at, u16_at};
use crate::error::{Result, bad_input};
use guid::Guid;

/// Bytes between the end of the footer entry and the end of the image
/// (the reset vector).
pub const FOOTER_GAP: usize = 32;
/// Size of an entry's trailer: a u16 length and a GUID.
pub const ENTRY_TRAILER_LEN: usize = 18;
/// Upper bound on entries walked; real firmware has fewer than ten.
pub const MAX_TABLE_ENTRIES: usize = 64;

/// The footer table: (GUID, entry data) pairs, innermost entry last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterTable<'a> {
    entries: Vec<(Guid, &'a [u8])>,
}

impl<'a> FooterTable<'a> {
    pub fn parse(image: &'a [u8]) -> Result<Self> {
        let fail = |detail: String| bad_input("firmware", detail);
        let footer_start = image
            .len()
            .checked_sub(FOOTER_GAP + ENTRY_TRAILER_LEN)
            .ok_or_else(|| {
                fail(format!(
                    "{} bytes is too small for an OVMF image",
                    image.len()
                ))
            })?;
        let footer_guid: [u8; 16] = array_at(image, footer_start + 2).unwrap_or_default();
        if Guid(footer_guid) != guid::OVMF_TABLE_FOOTER {
            return Err(fail(
                "no OVMF footer table (GUID 96b582de-1fb2-45f7-baea-a366c55a082d) 50 bytes before the end: not an OVMF/TDVF image built for confidential guests".into(),
            ));
        }
        let table_len = (u16_at(image, footer_start).unwrap_or_default() as usize)
            .checked_sub(ENTRY_TRAILER_LEN)
            .ok_or_else(|| {
                fail("the OVMF footer table length is smaller than its own header".into())
            })?;
        let table_start = footer_start.checked_sub(table_len).ok_or_else(|| {
            fail("the OVMF footer table length points before the start of the image".into())
        })?;
        let table = slice_at(image, table_start, table_len).unwrap_or_default();
        let mut entries = Vec::new();
        let mut end = table.len();
        while end >= ENTRY_TRAILER_LEN && entries.len() < MAX_TABLE_ENTRIES {
            let trailer = end - ENTRY_TRAILER_LEN;
            let entry_len = u16_at(table, trailer).unwrap_or_default() as usize;
            let entry_guid = Guid(array_at(table, trailer + 2).unwrap_or_default());
            if entry_len < ENTRY_TRAILER_LEN {
                return Err(fail(format!(
                    "OVMF footer table entry {entry_guid} has length {entry_len}, shorter than its header"
                )));
            }
            let Some(start) = end.checked_sub(entry_len) else {
                break;
            };
            let data = table.get(start..trailer).unwrap_or_default();
            entries.push((entry_guid, data));
            end = start;
        }
        Ok(Self { entries })
    }

    /// The data of the entry tagged `guid`.
    pub fn entry(&self, guid: Guid) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(entry_guid, _)| *entry_guid == guid)
            .map(|(_, data)| *data)
    }
}

/// Resolves a metadata pointer entry (a u32 "offset from the end of the
/// image" in the first four bytes of the entry) to an offset from the start.
pub(crate) fn offset_from_end(image: &[u8], entry: &[u8], what: &str) -> Result<usize> {
    let from_end = crate::bytes::u32_at(entry, 0).ok_or_else(|| {
        bad_input(
            "firmware",
            format!("the {what} table entry is shorter than 4 bytes"),
        )
    })? as usize;
    if from_end == 0 || from_end > image.len() {
        return Err(bad_input(
            "firmware",
            format!(
                "the {what} offset {from_end:#x} points outside the image ({} bytes)",
                image.len()
            ),
        ));
    }
    Ok(image.len() - from_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::firmware::FirmwareBuilder;

    #[test]
    fn entries_of_a_built_firmware_are_found_by_guid() {
        let image = FirmwareBuilder::snp_with_kernel_hashes().build();
        let table = FooterTable::parse(&image).unwrap();
        let eip = table.entry(guid::SEV_ES_RESET_BLOCK).unwrap();
        assert_eq!(eip.get(..4), Some(0xffff_f000u32.to_le_bytes().as_slice()));
        assert!(table.entry(guid::SEV_HASH_TABLE_RV).is_some());
    }

    #[test]
    fn an_image_without_the_footer_guid_is_refused_with_what_is_missing() {
        let error = FooterTable::parse(&[0u8; 8192]).unwrap_err().to_string();
        assert!(error.contains("no OVMF footer table"), "{error}");
    }

    #[test]
    fn a_footer_length_reaching_before_the_image_is_refused() {
        let mut image = vec![0u8; 100];
        let footer = image.len() - FOOTER_GAP - ENTRY_TRAILER_LEN;
        image[footer..footer + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        image[footer + 2..footer + 18].copy_from_slice(&guid::OVMF_TABLE_FOOTER.0);
        assert!(FooterTable::parse(&image).is_err());
    }
}
