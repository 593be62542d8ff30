//! The TDVF metadata of a TDX firmware image ("TDVF" descriptor and its
//! sections, Intel TDVF design guide section 11) and the MRTD a TDX module
//! computes while the VMM adds and extends those pages.
//!
//! Contract: [`TdvfMetadata::parse`] never panics; it accepts only sections
//! that are page aligned, whose raw data lies inside the image and, when
//! they are extended into MRTD, covers their memory size. At most
//! [`MAX_SECTIONS`] sections are read.

use sha2::{Digest, Sha384};

use super::{FooterTable, guid, offset_from_end};
use crate::bytes::{slice_at, u32_at, u64_at};
use crate::error::{Result, bad_input};

pub const MAX_SECTIONS: usize = 64;
/// Upper bound on the memory the VMM adds page by page (real TDVF images
/// add a few MiB); keeps MRTD computation bounded on hostile metadata.
pub const MAX_ADDED_MEMORY: u64 = 256 * 1024 * 1024;
const HEADER_LEN: usize = 16;
const SECTION_LEN: usize = 32;
const PAGE_SIZE: u64 = 4096;
const EXTEND_CHUNK: usize = 256;
const ATTRIBUTE_MR_EXTEND: u32 = 1;
const ATTRIBUTE_PAGE_AUG: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdvfSection {
    pub data_offset: u32,
    pub raw_size: u32,
    pub memory_address: u64,
    pub memory_size: u64,
    pub kind: u32,
    pub attributes: u32,
}

/// In which order the VMM issues TDH.MEM.PAGE.ADD and TDH.MR.EXTEND for a
/// section; the two give different MRTDs for the same firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAddOrder {
    /// Add a page, then extend it, page by page (Linux KVM's
    /// KVM_TDX_INIT_MEM_REGION with MEASURE, used by upstream QEMU).
    Interleaved,
    /// Add all pages of a section first, then extend them all (older
    /// TDX QEMU/KVM trees and some cloud VMMs).
    AddAllThenExtend,
}

impl PageAddOrder {
    pub const ALL: [PageAddOrder; 2] = [PageAddOrder::Interleaved, PageAddOrder::AddAllThenExtend];

    /// The label used in reference-values.json.
    pub fn label(self) -> &'static str {
        match self {
            PageAddOrder::Interleaved => "interleaved",
            PageAddOrder::AddAllThenExtend => "add-all-then-extend",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdvfMetadata<'a> {
    image: &'a [u8],
    pub sections: Vec<TdvfSection>,
}

impl<'a> TdvfMetadata<'a> {
    pub fn parse(image: &'a [u8]) -> Result<Self> {
        let fail = |detail: String| bad_input("TDX firmware", detail);
        let table = FooterTable::parse(image)?;
        let pointer = table.entry(guid::TDX_METADATA_OFFSET).ok_or_else(|| {
            fail(format!(
                "no TDVF metadata (footer table entry {}): this firmware was not built with TDX support (OvmfPkg/IntelTdx or an OVMF.fd with TDX enabled)",
                guid::TDX_METADATA_OFFSET
            ))
        })?;
        let descriptor = offset_from_end(image, pointer, "TDVF metadata")?;
        if slice_at(image, descriptor, 4) != Some(b"TDVF") {
            return Err(fail(format!(
                "no 'TDVF' signature at the TDVF metadata offset {descriptor:#x}"
            )));
        }
        let [length, version, count] =
            [4, 8, 12].map(|delta| u32_at(image, descriptor + delta).unwrap_or_default() as usize);
        if version != 1 {
            return Err(fail(format!(
                "TDVF metadata version {version}, only version 1 is known"
            )));
        }
        if count > MAX_SECTIONS || HEADER_LEN + count * SECTION_LEN > length {
            return Err(fail(format!(
                "TDVF metadata claims {count} sections in {length} bytes: inconsistent"
            )));
        }
        let metadata = slice_at(image, descriptor, length)
            .ok_or_else(|| fail("the TDVF metadata runs past the end of the image".into()))?;
        let mut sections = Vec::with_capacity(count);
        for index in 0..count {
            let at = HEADER_LEN + index * SECTION_LEN;
            let section = TdvfSection {
                data_offset: u32_at(metadata, at).unwrap_or_default(),
                raw_size: u32_at(metadata, at + 4).unwrap_or_default(),
                memory_address: u64_at(metadata, at + 8).unwrap_or_default(),
                memory_size: u64_at(metadata, at + 16).unwrap_or_default(),
                kind: u32_at(metadata, at + 24).unwrap_or_default(),
                attributes: u32_at(metadata, at + 28).unwrap_or_default(),
            };
            check_section(image, index, &section).map_err(fail)?;
            sections.push(section);
        }
        let added: u64 = sections
            .iter()
            .filter(|section| section.attributes & ATTRIBUTE_PAGE_AUG == 0)
            .map(|section| section.memory_size)
            .fold(0, u64::saturating_add);
        if added > MAX_ADDED_MEMORY {
            return Err(fail(format!(
                "TDVF sections add {added:#x} bytes page by page, more than the {MAX_ADDED_MEMORY:#x} this tool accepts"
            )));
        }
        Ok(Self { image, sections })
    }

    /// MRTD for `order`: SHA-384 over a 128-byte "MEM.PAGE.ADD" record per
    /// added page and, for sections with the MR.EXTEND attribute, a
    /// "MR.EXTEND" record plus the 256 data bytes per chunk.
    pub fn mrtd(&self, order: PageAddOrder) -> [u8; 48] {
        let mut hasher = Sha384::new();
        let measured = self
            .sections
            .iter()
            .filter(|section| section.attributes & ATTRIBUTE_PAGE_AUG == 0);
        for section in measured {
            let pages = section.memory_size / PAGE_SIZE;
            match order {
                PageAddOrder::Interleaved => {
                    for page in 0..pages {
                        self.page_add(&mut hasher, section, page);
                        self.extend(&mut hasher, section, page);
                    }
                }
                PageAddOrder::AddAllThenExtend => {
                    for page in 0..pages {
                        self.page_add(&mut hasher, section, page);
                    }
                    for page in 0..pages {
                        self.extend(&mut hasher, section, page);
                    }
                }
            }
        }
        hasher.finalize().into()
    }

    fn page_add(&self, hasher: &mut Sha384, section: &TdvfSection, page: u64) {
        if section.attributes & ATTRIBUTE_PAGE_AUG == 0 {
            hasher.update(record(
                b"MEM.PAGE.ADD",
                section.memory_address + page * PAGE_SIZE,
            ));
        }
    }

    fn extend(&self, hasher: &mut Sha384, section: &TdvfSection, page: u64) {
        if section.attributes & ATTRIBUTE_MR_EXTEND == 0 {
            return;
        }
        for chunk in 0..(PAGE_SIZE as usize / EXTEND_CHUNK) {
            let in_section = page as usize * PAGE_SIZE as usize + chunk * EXTEND_CHUNK;
            hasher.update(record(
                b"MR.EXTEND",
                section.memory_address + in_section as u64,
            ));
            let data = slice_at(
                self.image,
                section.data_offset as usize + in_section,
                EXTEND_CHUNK,
            );
            hasher.update(data.unwrap_or(&[0u8; EXTEND_CHUNK]));
        }
    }
}

fn record(operation: &[u8], gpa: u64) -> [u8; 128] {
    let mut buffer = [0u8; 128];
    buffer[..operation.len()].copy_from_slice(operation);
    buffer[16..24].copy_from_slice(&gpa.to_le_bytes());
    buffer
}

fn check_section(image: &[u8], index: usize, section: &TdvfSection) -> Result<(), String> {
    if !section.memory_address.is_multiple_of(PAGE_SIZE)
        || !section.memory_size.is_multiple_of(PAGE_SIZE)
    {
        return Err(format!(
            "TDVF section {index} at {:#x} size {:#x} is not page aligned",
            section.memory_address, section.memory_size
        ));
    }
    if section
        .memory_address
        .checked_add(section.memory_size)
        .is_none()
    {
        return Err(format!("TDVF section {index} wraps the address space"));
    }
    if slice_at(
        image,
        section.data_offset as usize,
        section.raw_size as usize,
    )
    .is_none()
    {
        return Err(format!(
            "TDVF section {index} raw data lies outside the image"
        ));
    }
    if section.attributes & ATTRIBUTE_MR_EXTEND != 0
        && u64::from(section.raw_size) < section.memory_size
    {
        return Err(format!(
            "TDVF section {index} is extended into MRTD but its raw data ({:#x}) is smaller than its memory size ({:#x})",
            section.raw_size, section.memory_size
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::firmware::FirmwareBuilder;

    #[test]
    fn the_two_page_add_orders_give_different_mrtds() {
        let image = FirmwareBuilder::tdx_only().build();
        let metadata = TdvfMetadata::parse(&image).unwrap();
        assert_eq!(metadata.sections.len(), 5);
        assert_ne!(
            metadata.mrtd(PageAddOrder::Interleaved),
            metadata.mrtd(PageAddOrder::AddAllThenExtend)
        );
    }

    #[test]
    fn mrtd_of_one_extended_page_is_the_documented_record_stream() {
        let mut builder = FirmwareBuilder::tdx_only();
        builder.tdvf_sections = Some(vec![(0, 0x1000, 0x10_0000, 0x1000, 0, 1)]);
        let image = builder.build();
        let mut expected = Sha384::new();
        let mut add = [0u8; 128];
        add[..12].copy_from_slice(b"MEM.PAGE.ADD");
        add[16..24].copy_from_slice(&0x10_0000u64.to_le_bytes());
        expected.update(add);
        for chunk in 0..16u64 {
            let mut extend = [0u8; 128];
            extend[..9].copy_from_slice(b"MR.EXTEND");
            extend[16..24].copy_from_slice(&(0x10_0000 + chunk * 256).to_le_bytes());
            expected.update(extend);
            expected.update(&image[(chunk * 256) as usize..(chunk * 256 + 256) as usize]);
        }
        let expected: [u8; 48] = expected.finalize().into();
        let metadata = TdvfMetadata::parse(&image).unwrap();
        assert_eq!(metadata.mrtd(PageAddOrder::Interleaved), expected);
        assert_eq!(metadata.mrtd(PageAddOrder::AddAllThenExtend), expected);
    }

    #[test]
    fn sections_added_by_page_aug_do_not_change_mrtd() {
        let image = FirmwareBuilder::tdx_only().build();
        let metadata = TdvfMetadata::parse(&image).unwrap();
        let mut with_more_aug = metadata.clone();
        with_more_aug.sections.push(TdvfSection {
            data_offset: 0,
            raw_size: 0,
            memory_address: 0x200_0000,
            memory_size: 0x10_0000,
            kind: 4,
            attributes: ATTRIBUTE_PAGE_AUG,
        });
        let order = PageAddOrder::Interleaved;
        assert_eq!(metadata.mrtd(order), with_more_aug.mrtd(order));
    }

    #[test]
    fn metadata_adding_more_than_the_bound_is_refused() {
        let mut builder = FirmwareBuilder::tdx_only();
        builder.tdvf_sections = Some(vec![(0, 0, 0, 1 << 40, 3, 0)]);
        let error = TdvfMetadata::parse(&builder.build())
            .unwrap_err()
            .to_string();
        assert!(error.contains("page by page"), "{error}");
    }

    #[test]
    fn an_snp_only_firmware_has_no_tdvf_metadata() {
        let image = FirmwareBuilder::snp_with_kernel_hashes().build();
        let error = TdvfMetadata::parse(&image).unwrap_err().to_string();
        assert!(error.contains("no TDVF metadata"), "{error}");
    }

    #[test]
    fn an_extended_section_with_too_little_raw_data_is_refused() {
        let mut builder = FirmwareBuilder::tdx_only();
        builder.tdvf_sections = Some(vec![(0, 0x800, 0x10_0000, 0x1000, 0, 1)]);
        let error = TdvfMetadata::parse(&builder.build())
            .unwrap_err()
            .to_string();
        assert!(error.contains("smaller than its memory size"), "{error}");
    }
}
