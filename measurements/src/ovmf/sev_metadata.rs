//! The SEV metadata of an OVMF image ("ASEV" header and section
//! descriptors, edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`) and the
//! checks that make an image safe to hand to the `sev` crate's digest
//! engine.
//!
//! Contract: [`SevMetadata::parse`] never panics; it accepts only images
//! whose footer table, metadata header and descriptors are inside the
//! image, whose descriptor types are known, whose sections are page sized,
//! and which carry the SEV-ES reset block. At most [`MAX_DESCRIPTORS`]
//! descriptors are read.

use super::{FooterTable, guid, offset_from_end};
use crate::bytes::{slice_at, u32_at};
use crate::error::{Result, bad_input};

pub const MAX_DESCRIPTORS: usize = 64;
/// Upper bound on the memory all sections cover (real images: under 1 MiB);
/// keeps the digest engine's page loop bounded on hostile metadata.
pub const MAX_SECTION_MEMORY: u64 = 256 * 1024 * 1024;
const HEADER_LEN: usize = 16;
const DESCRIPTOR_LEN: usize = 12;
const PAGE_SIZE: u32 = 4096;

/// Section types of the SEV metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    SnpSecMemory = 1,
    SnpSecrets = 2,
    Cpuid = 3,
    SvsmCaa = 4,
    SnpKernelHashes = 0x10,
}

impl SectionKind {
    fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::SnpSecMemory,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDescriptor {
    pub gpa: u32,
    pub size: u32,
    pub kind: SectionKind,
}

/// The validated SEV view of an OVMF image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SevMetadata {
    pub sections: Vec<SectionDescriptor>,
    pub reset_eip: u32,
    /// Guest address of the kernel hashes table, if the image has one.
    pub hashes_table_gpa: Option<u32>,
}

impl SevMetadata {
    pub fn parse(image: &[u8]) -> Result<Self> {
        let fail = |detail: String| bad_input("firmware", detail);
        if image.is_empty() || !image.len().is_multiple_of(PAGE_SIZE as usize) {
            return Err(fail(format!(
                "{} bytes is not a whole number of 4 KiB pages; an OVMF image is",
                image.len()
            )));
        }
        let table = FooterTable::parse(image)?;
        let pointer = table.entry(guid::OVMF_SEV_METADATA).ok_or_else(|| {
            fail(format!(
                "no SEV metadata (footer table entry {}): this OVMF was not built with SEV support; use one built from OvmfPkg/AmdSev/AmdSevX64.dsc",
                guid::OVMF_SEV_METADATA
            ))
        })?;
        let header = offset_from_end(image, pointer, "SEV metadata")?;
        if slice_at(image, header, 4) != Some(b"ASEV") {
            return Err(fail(format!(
                "no 'ASEV' signature at the SEV metadata offset {header:#x}"
            )));
        }
        let [size, version, count] =
            [4, 8, 12].map(|delta| u32_at(image, header + delta).unwrap_or_default() as usize);
        if version != 1 {
            return Err(fail(format!(
                "SEV metadata version {version}, only version 1 is known"
            )));
        }
        if count > MAX_DESCRIPTORS || HEADER_LEN + count * DESCRIPTOR_LEN > size {
            return Err(fail(format!(
                "SEV metadata claims {count} descriptors in {size} bytes: inconsistent"
            )));
        }
        let descriptors = slice_at(image, header, size)
            .ok_or_else(|| fail("the SEV metadata runs past the end of the image".into()))?;
        let mut sections = Vec::with_capacity(count);
        for index in 0..count {
            let at = HEADER_LEN + index * DESCRIPTOR_LEN;
            let [gpa, section_size, kind] =
                [0, 4, 8].map(|delta| u32_at(descriptors, at + delta).unwrap_or_default());
            let kind = SectionKind::from_u32(kind).ok_or_else(|| {
                fail(format!(
                    "SEV metadata descriptor {index} has unknown section type {kind:#x}"
                ))
            })?;
            if !gpa.is_multiple_of(PAGE_SIZE)
                || section_size == 0
                || !section_size.is_multiple_of(PAGE_SIZE)
            {
                return Err(fail(format!(
                    "SEV metadata section {kind:?} at {gpa:#x} with size {section_size:#x} is not page aligned and page sized"
                )));
            }
            if kind == SectionKind::SnpKernelHashes && section_size != PAGE_SIZE {
                return Err(fail(format!(
                    "the SNP_KERNEL_HASHES section is {section_size:#x} bytes; QEMU fills exactly one page"
                )));
            }
            sections.push(SectionDescriptor {
                gpa,
                size: section_size,
                kind,
            });
        }
        let covered: u64 = sections.iter().map(|s| u64::from(s.size)).sum();
        if covered > MAX_SECTION_MEMORY {
            return Err(fail(format!(
                "SEV metadata sections cover {covered:#x} bytes, more than the {MAX_SECTION_MEMORY:#x} this tool accepts"
            )));
        }
        let reset_eip = table
            .entry(guid::SEV_ES_RESET_BLOCK)
            .and_then(|entry| u32_at(entry, 0))
            .ok_or_else(|| {
                fail(format!(
                    "no SEV-ES reset block (footer table entry {})",
                    guid::SEV_ES_RESET_BLOCK
                ))
            })?;
        let hashes_table_gpa = table
            .entry(guid::SEV_HASH_TABLE_RV)
            .and_then(|entry| u32_at(entry, 0))
            .filter(|gpa| *gpa != 0);
        Ok(Self {
            sections,
            reset_eip,
            hashes_table_gpa,
        })
    }

    /// Checks the image can measure a direct-boot kernel: it needs the
    /// SNP_KERNEL_HASHES section and the hashes table entry inside it.
    pub fn require_kernel_hashes(&self) -> Result<()> {
        let section = self
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::SnpKernelHashes)
            .ok_or_else(|| {
                bad_input(
                    "firmware",
                    "no SNP_KERNEL_HASHES section in the SEV metadata, so a kernel passed with -kernel cannot be measured; use an OVMF built from OvmfPkg/AmdSev/AmdSevX64.dsc (edk2 2023 or newer), or measure without --kernel",
                )
            })?;
        let table_gpa = self.hashes_table_gpa.ok_or_else(|| {
            bad_input(
                "firmware",
                format!(
                    "no SEV hash table entry ({}) in the footer table",
                    guid::SEV_HASH_TABLE_RV
                ),
            )
        })?;
        if table_gpa & !(PAGE_SIZE - 1) != section.gpa {
            return Err(bad_input(
                "firmware",
                format!(
                    "the SEV hash table at {table_gpa:#x} is not inside the SNP_KERNEL_HASHES page at {:#x}",
                    section.gpa
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::firmware::FirmwareBuilder;

    #[test]
    fn a_firmware_with_kernel_hashes_lists_every_section() {
        let image = FirmwareBuilder::snp_with_kernel_hashes().build();
        let metadata = SevMetadata::parse(&image).unwrap();
        let kinds: Vec<SectionKind> = metadata.sections.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![
                SectionKind::SnpSecMemory,
                SectionKind::SnpSecrets,
                SectionKind::Cpuid,
                SectionKind::SnpKernelHashes
            ]
        );
        metadata.require_kernel_hashes().unwrap();
    }

    #[test]
    fn a_firmware_without_kernel_hashes_says_which_section_is_missing() {
        let image = FirmwareBuilder::snp_without_kernel_hashes().build();
        let error = SevMetadata::parse(&image)
            .unwrap()
            .require_kernel_hashes()
            .unwrap_err();
        assert!(error.to_string().contains("SNP_KERNEL_HASHES"), "{error}");
    }

    #[test]
    fn a_firmware_without_sev_metadata_says_so() {
        let image = FirmwareBuilder::tdx_only().build();
        let error = SevMetadata::parse(&image).unwrap_err().to_string();
        assert!(error.contains("no SEV metadata"), "{error}");
    }

    #[test]
    fn corrupting_any_metadata_byte_never_panics() {
        let image = FirmwareBuilder::snp_with_kernel_hashes().build();
        let header = image.len() - FirmwareBuilder::SEV_METADATA_FROM_END;
        for offset in header..header + 80 {
            for value in [0u8, 0x7f, 0xff] {
                let mut corrupted = image.clone();
                corrupted[offset] = value;
                let _ = SevMetadata::parse(&corrupted);
            }
        }
    }
}
