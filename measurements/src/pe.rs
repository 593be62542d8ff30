//! PE/COFF images (kernels with an EFI stub, UKIs): a validated view of the
//! headers and section table, and the Authenticode digest firmware uses when
//! it measures an image.
//!
//! Contract: [`PeImage::parse`] never panics and reads only inside the given
//! bytes; it rejects an image whose headers, section table, section data or
//! certificate table lie outside the file (a truncated file), so everything
//! later code touches is known to be in bounds. At most
//! [`MAX_SECTIONS`] sections are accepted, each with at most
//! [`MAX_ZERO_FILL`] bytes of in-memory zero fill.

use sha2::Digest;

use crate::bytes::{array_at, slice_at, u16_at, u32_at};
use crate::error::{Result, bad_input};

/// The PE loader limit; real kernels and UKIs have a dozen at most.
pub const MAX_SECTIONS: usize = 96;
/// How far a section's in-memory size may exceed its file data (a kernel's
/// zero-filled tail is tens of MiB); bounds what
/// [`PeImage::section_in_memory`] allocates.
pub const MAX_ZERO_FILL: usize = 256 * 1024 * 1024;

const PE32_MAGIC: u16 = 0x10b;
const PE32_PLUS_MAGIC: u16 = 0x20b;
const SECTION_HEADER_LEN: usize = 40;
const CERTIFICATE_TABLE_INDEX: usize = 4;

/// One section header, with its raw data known to be inside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name with trailing NULs removed (e.g. `.linux`).
    pub name: Vec<u8>,
    pub virtual_size: u32,
    pub raw_offset: usize,
    pub raw_size: usize,
}

/// A parsed PE image borrowing the file bytes.
#[derive(Debug)]
pub struct PeImage<'a> {
    bytes: &'a [u8],
    checksum_offset: usize,
    certificate_entry_offset: usize,
    size_of_headers: usize,
    certificate_table_size: usize,
    sections: Vec<Section>,
}

impl<'a> PeImage<'a> {
    /// Parses and bounds-checks `bytes`. `role` names the file in errors
    /// ("kernel", "UKI").
    pub fn parse(role: &str, bytes: &'a [u8]) -> Result<Self> {
        let fail = |detail: String| bad_input(role, detail);
        if slice_at(bytes, 0, 2) != Some(b"MZ") {
            return Err(fail(format!(
                "not a PE image: no 'MZ' DOS header ({} bytes); expected a kernel built with an EFI stub or a UKI",
                bytes.len()
            )));
        }
        let pe_offset = u32_at(bytes, 0x3c)
            .ok_or_else(|| fail("file is truncated inside the DOS header".into()))?
            as usize;
        if slice_at(bytes, pe_offset, 4) != Some(b"PE\0\0") {
            return Err(fail(format!(
                "no 'PE' signature at offset {pe_offset:#x}: the file is truncated or not a PE image"
            )));
        }
        let coff = pe_offset + 4;
        let section_count = u16_at(bytes, coff + 2)
            .ok_or_else(|| fail("file is truncated inside the COFF header".into()))?
            as usize;
        let optional_header_size = u16_at(bytes, coff + 16)
            .ok_or_else(|| fail("file is truncated inside the COFF header".into()))?
            as usize;
        let optional = coff + 20;
        let magic = u16_at(bytes, optional)
            .ok_or_else(|| fail("file is truncated before the optional header".into()))?;
        let (rva_count_offset, directories_offset) = match magic {
            PE32_MAGIC => (optional + 92, optional + 96),
            PE32_PLUS_MAGIC => (optional + 108, optional + 112),
            other => {
                return Err(fail(format!(
                    "unknown optional header magic {other:#x} (expected 0x10b or 0x20b)"
                )));
            }
        };
        let rva_count = u32_at(bytes, rva_count_offset)
            .ok_or_else(|| fail("file is truncated inside the optional header".into()))?
            as usize;
        if rva_count <= CERTIFICATE_TABLE_INDEX {
            return Err(fail(format!(
                "the optional header has {rva_count} data directories, so no certificate table entry; Authenticode needs one"
            )));
        }
        let certificate_entry_offset = directories_offset + CERTIFICATE_TABLE_INDEX * 8;
        let directories_end = directories_offset + rva_count.min(16) * 8;
        if directories_end > optional + optional_header_size {
            return Err(fail(
                "the data directories run past the optional header size".into(),
            ));
        }
        let [cert_offset, cert_size] = [0, 4].map(|delta| {
            u32_at(bytes, certificate_entry_offset + delta).map(|value| value as usize)
        });
        let (cert_offset, certificate_table_size) = cert_offset
            .zip(cert_size)
            .ok_or_else(|| fail("file is truncated inside the data directories".into()))?;
        if certificate_table_size != 0
            && cert_offset
                .checked_add(certificate_table_size)
                .is_none_or(|end| end > bytes.len())
        {
            return Err(fail(format!(
                "the certificate table (offset {cert_offset:#x}, {certificate_table_size} bytes) runs past the end of the file ({} bytes): the file is truncated",
                bytes.len()
            )));
        }
        let size_of_headers = u32_at(bytes, optional + 60)
            .ok_or_else(|| fail("file is truncated inside the optional header".into()))?
            as usize;
        if size_of_headers > bytes.len() || size_of_headers < certificate_entry_offset + 8 {
            return Err(fail(format!(
                "SizeOfHeaders {size_of_headers:#x} does not fit the file ({} bytes): the file is truncated",
                bytes.len()
            )));
        }
        if section_count > MAX_SECTIONS {
            return Err(fail(format!(
                "{section_count} sections, more than the {MAX_SECTIONS} a PE loader accepts"
            )));
        }
        let table = optional + optional_header_size;
        let mut sections = Vec::with_capacity(section_count);
        for index in 0..section_count {
            let header = slice_at(
                bytes,
                table + index * SECTION_HEADER_LEN,
                SECTION_HEADER_LEN,
            )
            .ok_or_else(|| fail(format!("file is truncated inside section header {index}")))?;
            let section = parse_section_header(header)
                .ok_or_else(|| fail(format!("section header {index} is malformed")))?;
            if slice_at(bytes, section.raw_offset, section.raw_size).is_none() {
                return Err(fail(format!(
                    "section {} data (offset {:#x}, {} bytes) runs past the end of the file ({} bytes): the file is truncated",
                    String::from_utf8_lossy(&section.name),
                    section.raw_offset,
                    section.raw_size,
                    bytes.len()
                )));
            }
            if (section.virtual_size as usize).saturating_sub(section.raw_size) > MAX_ZERO_FILL {
                return Err(fail(format!(
                    "section {} is {:#x} bytes in memory but only {:#x} in the file; more than {MAX_ZERO_FILL:#x} of zero fill is not accepted",
                    String::from_utf8_lossy(&section.name),
                    section.virtual_size,
                    section.raw_size
                )));
            }
            sections.push(section);
        }
        Ok(Self {
            bytes,
            checksum_offset: optional + 64,
            certificate_entry_offset,
            size_of_headers,
            certificate_table_size,
            sections,
        })
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The first section called `name`.
    pub fn section(&self, name: &[u8]) -> Option<&Section> {
        self.sections.iter().find(|section| section.name == name)
    }

    /// The section as the loader maps it: `VirtualSize` bytes, the part
    /// beyond the raw data zero-filled (what systemd-stub measures).
    pub fn section_in_memory(&self, section: &Section) -> Vec<u8> {
        let virtual_size = section.virtual_size as usize;
        let raw = slice_at(self.bytes, section.raw_offset, section.raw_size).unwrap_or_default();
        let mut data = raw
            .get(..virtual_size.min(raw.len()))
            .unwrap_or(raw)
            .to_vec();
        data.resize(virtual_size, 0);
        data
    }

    /// The Authenticode digest (PE/COFF spec, "Calculating the PE Image
    /// Hash") with the hash `D`: headers without the checksum and the
    /// certificate table entry, section data in file order, then any data
    /// after the sections that is not the certificate table.
    pub fn authenticode<D: Digest>(&self) -> sha2::digest::Output<D> {
        let mut hasher = D::new();
        let headers = [
            (0, self.checksum_offset),
            (self.checksum_offset + 4, self.certificate_entry_offset),
            (self.certificate_entry_offset + 8, self.size_of_headers),
        ];
        for (start, end) in headers {
            hasher.update(self.bytes.get(start..end).unwrap_or_default());
        }
        let mut in_file_order: Vec<&Section> =
            self.sections.iter().filter(|s| s.raw_size > 0).collect();
        in_file_order.sort_by_key(|section| section.raw_offset);
        let mut hashed = self.size_of_headers;
        for section in in_file_order {
            hasher.update(
                slice_at(self.bytes, section.raw_offset, section.raw_size).unwrap_or_default(),
            );
            hashed = hashed.saturating_add(section.raw_size);
        }
        let trailing_end = self.bytes.len().saturating_sub(self.certificate_table_size);
        if trailing_end > hashed {
            hasher.update(self.bytes.get(hashed..trailing_end).unwrap_or_default());
        }
        hasher.finalize()
    }
}

fn parse_section_header(header: &[u8]) -> Option<Section> {
    let raw_name: [u8; 8] = array_at(header, 0)?;
    let name_len = raw_name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw_name.len());
    Some(Section {
        name: raw_name.get(..name_len)?.to_vec(),
        virtual_size: u32_at(header, 8)?,
        raw_size: u32_at(header, 16)? as usize,
        raw_offset: u32_at(header, 20)? as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::pe::pe_image;

    #[test]
    fn a_built_image_parses_with_its_sections() {
        let image = pe_image(&[(".linux", b"kernel"), (".osrel", b"ID=test\n")]);
        let pe = PeImage::parse("UKI", &image).unwrap();
        let names: Vec<&[u8]> = pe.sections().iter().map(|s| s.name.as_slice()).collect();
        assert_eq!(names, vec![b".linux".as_slice(), b".osrel".as_slice()]);
        let linux = pe.section(b".linux").unwrap();
        assert_eq!(pe.section_in_memory(linux), b"kernel");
    }

    #[test]
    fn authenticode_ignores_the_checksum_field() {
        let image = pe_image(&[(".text", b"code")]);
        let mut patched = image.clone();
        let checksum = 0x80 + 24 + 64;
        patched[checksum] ^= 0xff;
        let digest = |bytes: &[u8]| {
            PeImage::parse("kernel", bytes)
                .unwrap()
                .authenticode::<sha2::Sha384>()
        };
        assert_eq!(digest(&image), digest(&patched));
        let mut changed = image.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_ne!(digest(&image), digest(&changed));
    }

    /// The digests of a fixed two-section image as computed independently
    /// by python `signify` 0.9.3 (`SignedPEFile(f).get_fingerprint(...)`);
    /// firmware extends PCR 4 with the SHA-256 one when it starts the image.
    #[test]
    fn authenticode_equals_an_independent_implementation_on_a_fixed_image() {
        let image = pe_image(&[(".text", b"code"), (".data", &[0x5a; 700])]);
        let pe = PeImage::parse("UKI", &image).unwrap();
        assert_eq!(
            hex::encode(pe.authenticode::<sha2::Sha256>()),
            "2137b5ab7a6212bcf0d9ecfe24a7a99ed2871c43baf0cd46553b9ce0de49d32b"
        );
        assert_eq!(
            hex::encode(pe.authenticode::<sha2::Sha384>()),
            "97eac9406510d6a86cf436428dadbe41b34a30b6cae6711ec09ca524912416236a238d992e542db9149c2a78de62080b"
        );
    }

    #[test]
    fn a_truncated_image_names_the_section_that_runs_past_the_end() {
        let image = pe_image(&[(".text", &[7u8; 1000])]);
        let truncated = &image[..image.len() - 100];
        let error = PeImage::parse("kernel", truncated).unwrap_err().to_string();
        assert!(
            error.contains("kernel") && error.contains(".text") && error.contains("truncated"),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_pe_is_refused_with_a_hint() {
        let error = PeImage::parse("kernel", b"\x7fELF")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a PE image"), "{error}");
    }

    #[test]
    fn every_prefix_of_an_image_parses_or_fails_without_panicking() {
        let image = pe_image(&[(".linux", &[1u8; 700]), (".initrd", &[2u8; 300])]);
        for len in 0..image.len() {
            let _ = PeImage::parse("kernel", &image[..len]);
        }
    }
}
