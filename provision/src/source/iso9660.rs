//! A small, bounded ISO9660 reader: just enough to read the volume label and
//! one file from the root directory of a cloud-init config drive (`cidata`).
//!
//! Contract: every function here takes untrusted bytes (the host builds the
//! config drive) and never panics; all offsets are computed with checked
//! arithmetic; a directory is read only up to
//! [`MAX_ISO_DIRECTORY_BYTES`](crate::limits::MAX_ISO_DIRECTORY_BYTES) and a
//! file only up to the caller's limit, checked BEFORE reading.
//!
//! Supported: 2048-byte logical blocks, file names from Joliet (preferred,
//! `genisoimage -J`) or Rock Ridge `NM` entries (`genisoimage -r`), files in
//! the root directory only, single-extent files. Not supported (refused with
//! an error): multi-extent files, other block sizes. Names continued into a
//! SUSP `CE` area are not followed (a config drive's names are short).

use crate::limits::MAX_ISO_DIRECTORY_BYTES;
use crate::read_at::ReadAt;

/// ISO9660 sector and logical block size this reader accepts.
pub const SECTOR_BYTES: usize = 2048;
const FIRST_DESCRIPTOR_SECTOR: u64 = 16;
/// A volume has a handful of descriptors; stop looking after this many.
const MAX_DESCRIPTORS: u64 = 32;
const DESCRIPTOR_PRIMARY: u8 = 1;
const DESCRIPTOR_SUPPLEMENTARY: u8 = 2;
const DESCRIPTOR_TERMINATOR: u8 = 255;
const STANDARD_ID: &[u8; 5] = b"CD001";
const JOLIET_ESCAPES: [&[u8; 3]; 3] = [b"%/@", b"%/C", b"%/E"];
const FLAG_DIRECTORY: u8 = 0x02;
const FLAG_ASSOCIATED: u8 = 0x04;
const FLAG_MULTI_EXTENT: u8 = 0x80;
const MIN_RECORD_BYTES: usize = 34;
const MAX_NAME_BYTES: usize = 255;

/// What went wrong reading the config drive.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("reading {what} at byte offset {offset}: {source}")]
    Read {
        what: &'static str,
        offset: u64,
        source: std::io::Error,
    },
    #[error("not an ISO9660 volume: sector {sector} has no CD001 descriptor")]
    NotIso9660 { sector: u64 },
    #[error("ISO9660 volume has no primary volume descriptor")]
    NoPrimaryDescriptor,
    #[error("ISO9660 logical block size {0} is not supported (only 2048)")]
    UnsupportedBlockSize(u16),
    #[error("ISO9660 directory record at byte {at} of the root directory is malformed: {reason}")]
    BadRecord { at: usize, reason: &'static str },
    #[error(
        "ISO9660 root directory is {0} bytes, more than the {MAX_ISO_DIRECTORY_BYTES}-byte limit"
    )]
    DirectoryTooLarge(u32),
    #[error("no file named {0:?} in the root directory of the config drive")]
    FileNotFound(String),
    #[error("{name:?} on the config drive is {size} bytes, more than the {limit}-byte limit")]
    FileTooLarge {
        name: String,
        size: u32,
        limit: usize,
    },
    #[error("{0:?} on the config drive is a multi-extent file, which is not supported")]
    MultiExtent(String),
}

/// Where a directory or file lives on the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    block: u32,
    bytes: u32,
}

impl Extent {
    fn offset(self) -> u64 {
        u64::from(self.block) * SECTOR_BYTES as u64
    }
}

/// The parts of a volume's descriptors this reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The primary volume identifier with trailing spaces removed
    /// (`cidata` on a cloud-init config drive).
    pub volume_id: String,
    primary_root: Extent,
    joliet_root: Option<Extent>,
}

/// Read the volume descriptors starting at sector 16.
pub fn read_volume(device: &(impl ReadAt + ?Sized)) -> Result<Volume, IsoError> {
    let mut primary: Option<(String, Extent)> = None;
    let mut joliet_root = None;
    for index in 0..MAX_DESCRIPTORS {
        let sector = FIRST_DESCRIPTOR_SECTOR + index;
        let descriptor = read_sector(device, sector, "volume descriptor")?;
        if descriptor.get(1..6) != Some(&STANDARD_ID[..]) {
            return Err(IsoError::NotIso9660 { sector });
        }
        match descriptor[0] {
            DESCRIPTOR_PRIMARY if primary.is_none() => {
                check_block_size(&descriptor)?;
                primary = Some((volume_id(&descriptor), root_extent(&descriptor)?));
            }
            DESCRIPTOR_SUPPLEMENTARY if is_joliet(&descriptor) && joliet_root.is_none() => {
                check_block_size(&descriptor)?;
                joliet_root = Some(root_extent(&descriptor)?);
            }
            DESCRIPTOR_TERMINATOR => break,
            _ => {}
        }
    }
    let (volume_id, primary_root) = primary.ok_or(IsoError::NoPrimaryDescriptor)?;
    Ok(Volume {
        volume_id,
        primary_root,
        joliet_root,
    })
}

/// Read the primary volume identifier only, or `None` when the device holds
/// no ISO9660 volume (used to find the config drive among block devices).
pub fn probe_volume_id(device: &(impl ReadAt + ?Sized)) -> Option<String> {
    let descriptor = read_sector(device, FIRST_DESCRIPTOR_SECTOR, "volume descriptor").ok()?;
    let is_primary = descriptor[0] == DESCRIPTOR_PRIMARY && &descriptor[1..6] == STANDARD_ID;
    is_primary.then(|| volume_id(&descriptor))
}

/// Read the file called `name` from the root directory, refusing files
/// larger than `limit` bytes before reading them.
pub fn read_root_file(
    device: &(impl ReadAt + ?Sized),
    volume: &Volume,
    name: &str,
    limit: usize,
) -> Result<Vec<u8>, IsoError> {
    let (root, naming) = match volume.joliet_root {
        Some(root) => (root, Naming::Joliet),
        None => (volume.primary_root, Naming::RockRidge),
    };
    let directory = read_extent(device, root)?;
    let found = find_in_directory(&directory, naming, name)?;
    if found.flags & FLAG_MULTI_EXTENT != 0 {
        return Err(IsoError::MultiExtent(name.to_owned()));
    }
    if usize::try_from(found.extent.bytes).map_or(true, |size| size > limit) {
        return Err(IsoError::FileTooLarge {
            name: name.to_owned(),
            size: found.extent.bytes,
            limit,
        });
    }
    let mut contents = vec![0u8; found.extent.bytes as usize];
    device
        .read_exact_at(&mut contents, found.extent.offset())
        .map_err(|source| IsoError::Read {
            what: "file contents",
            offset: found.extent.offset(),
            source,
        })?;
    Ok(contents)
}

fn read_sector(
    device: &(impl ReadAt + ?Sized),
    sector: u64,
    what: &'static str,
) -> Result<[u8; SECTOR_BYTES], IsoError> {
    let mut buf = [0u8; SECTOR_BYTES];
    let offset = sector * SECTOR_BYTES as u64;
    device
        .read_exact_at(&mut buf, offset)
        .map_err(|source| IsoError::Read {
            what,
            offset,
            source,
        })?;
    Ok(buf)
}

fn read_extent(device: &(impl ReadAt + ?Sized), extent: Extent) -> Result<Vec<u8>, IsoError> {
    if extent.bytes > MAX_ISO_DIRECTORY_BYTES {
        return Err(IsoError::DirectoryTooLarge(extent.bytes));
    }
    let mut buf = vec![0u8; extent.bytes as usize];
    device
        .read_exact_at(&mut buf, extent.offset())
        .map_err(|source| IsoError::Read {
            what: "root directory",
            offset: extent.offset(),
            source,
        })?;
    Ok(buf)
}

fn check_block_size(descriptor: &[u8; SECTOR_BYTES]) -> Result<(), IsoError> {
    let size = u16::from_le_bytes([descriptor[128], descriptor[129]]);
    if usize::from(size) == SECTOR_BYTES {
        Ok(())
    } else {
        Err(IsoError::UnsupportedBlockSize(size))
    }
}

fn volume_id(descriptor: &[u8; SECTOR_BYTES]) -> String {
    String::from_utf8_lossy(&descriptor[40..72])
        .trim_end_matches([' ', '\0'])
        .to_owned()
}

fn is_joliet(descriptor: &[u8; SECTOR_BYTES]) -> bool {
    JOLIET_ESCAPES
        .iter()
        .any(|escape| descriptor[88..91] == escape[..])
}

fn root_extent(descriptor: &[u8; SECTOR_BYTES]) -> Result<Extent, IsoError> {
    let (record, _) = parse_record(&descriptor[156..190], 0)?;
    Ok(record.extent)
}

/// One directory record, borrowed from the directory's bytes.
struct Record<'a> {
    extent: Extent,
    flags: u8,
    name: &'a [u8],
    system_use: &'a [u8],
}

/// Parse the record at the start of `bytes`; returns it and its length.
/// `at` is only used in error messages.
fn parse_record(bytes: &[u8], at: usize) -> Result<(Record<'_>, usize), IsoError> {
    let bad = |reason| IsoError::BadRecord { at, reason };
    let length = usize::from(*bytes.first().ok_or(bad("empty"))?);
    if length < MIN_RECORD_BYTES {
        return Err(bad("shorter than 34 bytes"));
    }
    let record = bytes.get(..length).ok_or(bad("runs past its sector"))?;
    let le_u32 = |start: usize| {
        record
            .get(start..start + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(bad("truncated"))
    };
    let extent = Extent {
        block: le_u32(2)?,
        bytes: le_u32(10)?,
    };
    let flags = record[25];
    let name_length = usize::from(record[32]);
    let name = record
        .get(33..33 + name_length)
        .ok_or(bad("name runs past the record"))?;
    let padding = usize::from(name_length.is_multiple_of(2));
    let system_use = record.get(33 + name_length + padding..).unwrap_or(&[]);
    Ok((
        Record {
            extent,
            flags,
            name,
            system_use,
        },
        length,
    ))
}

#[derive(Debug, Clone, Copy)]
enum Naming {
    Joliet,
    RockRidge,
}

/// Walk the directory's records (which never cross a sector boundary; a
/// zero length byte means "continue at the next sector") and return the
/// plain file called `wanted`.
fn find_in_directory<'a>(
    directory: &'a [u8],
    naming: Naming,
    wanted: &str,
) -> Result<Record<'a>, IsoError> {
    let mut position = 0usize;
    let mut rock_ridge_skip = 0usize;
    let mut first = true;
    while position < directory.len() {
        if directory[position] == 0 {
            position = (position / SECTOR_BYTES + 1) * SECTOR_BYTES;
            continue;
        }
        let sector_end = ((position / SECTOR_BYTES + 1) * SECTOR_BYTES).min(directory.len());
        let (record, length) = parse_record(&directory[position..sector_end], position)?;
        position += length;
        if first {
            // The "." record; under Rock Ridge its SP entry says how many
            // bytes to skip at the start of every system use area.
            rock_ridge_skip = sp_skip_length(record.system_use);
            first = false;
            continue;
        }
        if record.flags & (FLAG_DIRECTORY | FLAG_ASSOCIATED) != 0 {
            continue;
        }
        let name = match naming {
            Naming::Joliet => joliet_name(record.name),
            Naming::RockRidge => record
                .system_use
                .get(rock_ridge_skip..)
                .and_then(rock_ridge_name),
        };
        if name.as_deref() == Some(wanted) {
            return Ok(record);
        }
    }
    Err(IsoError::FileNotFound(wanted.to_owned()))
}

/// Joliet names are UCS-2 big-endian, possibly with a `;1` version suffix.
fn joliet_name(raw: &[u8]) -> Option<String> {
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    let name: String = char::decode_utf16(units).collect::<Result<_, _>>().ok()?;
    Some(strip_version(&name).to_owned())
}

fn strip_version(name: &str) -> &str {
    name.rsplit_once(';').map_or(name, |(base, _)| base)
}

/// Iterate the SUSP entries (signature, length, version, data) of a system
/// use area, stopping at the first malformed one.
fn susp_entries(area: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = area;
    std::iter::from_fn(move || {
        let signature = rest.get(..2)?;
        let length = usize::from(*rest.get(2)?);
        let entry = rest.get(..length).filter(|_| length >= 4)?;
        rest = &rest[length..];
        (signature != b"ST").then(|| (signature, &entry[4..]))
    })
}

fn sp_skip_length(system_use: &[u8]) -> usize {
    susp_entries(system_use)
        .find(|(signature, data)| *signature == b"SP" && data.get(..2) == Some(&[0xBE, 0xEF][..]))
        .and_then(|(_, data)| data.get(2))
        .map_or(0, |skip| usize::from(*skip))
}

/// The Rock Ridge alternate name: the concatenated `NM` entries.
fn rock_ridge_name(system_use: &[u8]) -> Option<String> {
    const NM_CONTINUE: u8 = 0x01;
    let mut name = Vec::new();
    for (signature, data) in susp_entries(system_use) {
        if signature != b"NM" {
            continue;
        }
        let (flags, part) = data.split_first()?;
        name.extend_from_slice(part);
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        if flags & NM_CONTINUE == 0 {
            return String::from_utf8(name).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a minimal volume by hand: PVD at 16, optional Joliet SVD at 17,
    /// terminator, root directory at block 20, file data at block 21.
    fn record(block: u32, bytes: u32, flags: u8, name: &[u8], system_use: &[u8]) -> Vec<u8> {
        let padding = usize::from(name.len().is_multiple_of(2));
        let length = 33 + name.len() + padding + system_use.len();
        let mut r = vec![0u8; length];
        r[0] = length as u8;
        r[2..6].copy_from_slice(&block.to_le_bytes());
        r[10..14].copy_from_slice(&bytes.to_le_bytes());
        r[25] = flags;
        r[32] = name.len() as u8;
        r[33..33 + name.len()].copy_from_slice(name);
        r[33 + name.len() + padding..].copy_from_slice(system_use);
        r
    }

    fn descriptor(kind: u8, label: &str, root: &[u8], escape: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; SECTOR_BYTES];
        d[0] = kind;
        d[1..6].copy_from_slice(STANDARD_ID);
        d[6] = 1;
        d[40..72].fill(b' ');
        d[40..40 + label.len()].copy_from_slice(label.as_bytes());
        d[88..88 + escape.len()].copy_from_slice(escape);
        d[128..130].copy_from_slice(&2048u16.to_le_bytes());
        d[156..156 + root.len()].copy_from_slice(root);
        d
    }

    fn rock_ridge_image(file_name: &str, contents: &[u8]) -> Vec<u8> {
        let root = record(20, 2048, FLAG_DIRECTORY, &[0], &[]);
        let mut image = vec![0u8; 16 * SECTOR_BYTES];
        image.extend(descriptor(DESCRIPTOR_PRIMARY, "cidata", &root, &[]));
        image.extend(descriptor(DESCRIPTOR_TERMINATOR, "", &[], &[]));
        image.resize(20 * SECTOR_BYTES, 0);
        let sp = b"SP\x07\x01\xBE\xEF\x00";
        let mut directory = record(20, 2048, FLAG_DIRECTORY, &[0], sp);
        directory.extend(record(20, 2048, FLAG_DIRECTORY, &[1], &[]));
        let mut nm = vec![b'N', b'M', (5 + file_name.len()) as u8, 1, 0];
        nm.extend_from_slice(file_name.as_bytes());
        directory.extend(record(21, contents.len() as u32, 0, b"USER_DAT.;1", &nm));
        directory.resize(SECTOR_BYTES, 0);
        image.extend(directory);
        image.extend_from_slice(contents);
        image.resize(image.len().next_multiple_of(SECTOR_BYTES), 0);
        image
    }

    #[test]
    fn a_rock_ridge_volume_yields_its_label_and_the_named_file() {
        let image = rock_ridge_image("user-data", b"#cloud-config\n");
        let volume = read_volume(&image[..]).unwrap();
        assert_eq!(volume.volume_id, "cidata");
        assert_eq!(probe_volume_id(&image[..]).as_deref(), Some("cidata"));
        let file = read_root_file(&image[..], &volume, "user-data", 1024).unwrap();
        assert_eq!(file, b"#cloud-config\n");
    }

    #[test]
    fn a_joliet_name_is_preferred_and_its_version_suffix_ignored() {
        let root = record(20, 2048, FLAG_DIRECTORY, &[0], &[]);
        let joliet_root = record(22, 2048, FLAG_DIRECTORY, &[0], &[]);
        let mut image = vec![0u8; 16 * SECTOR_BYTES];
        image.extend(descriptor(DESCRIPTOR_PRIMARY, "cidata", &root, &[]));
        image.extend(descriptor(
            DESCRIPTOR_SUPPLEMENTARY,
            "",
            &joliet_root,
            b"%/E",
        ));
        image.extend(descriptor(DESCRIPTOR_TERMINATOR, "", &[], &[]));
        image.resize(22 * SECTOR_BYTES, 0);
        let name: Vec<u8> = "user-data;1"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let mut directory = record(22, 2048, FLAG_DIRECTORY, &[0], &[]);
        directory.extend(record(23, 5, 0, &name, &[]));
        directory.resize(SECTOR_BYTES, 0);
        image.extend(directory);
        image.extend_from_slice(b"hello");
        image.resize(24 * SECTOR_BYTES, 0);
        let volume = read_volume(&image[..]).unwrap();
        assert_eq!(
            read_root_file(&image[..], &volume, "user-data", 10).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn a_missing_file_is_reported_by_name() {
        let image = rock_ridge_image("meta-data", b"x");
        let volume = read_volume(&image[..]).unwrap();
        let err = read_root_file(&image[..], &volume, "user-data", 10).unwrap_err();
        assert!(matches!(err, IsoError::FileNotFound(ref n) if n == "user-data"));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let image = rock_ridge_image("user-data", &[b'a'; 100]);
        let volume = read_volume(&image[..]).unwrap();
        let err = read_root_file(&image[..], &volume, "user-data", 99).unwrap_err();
        assert!(matches!(err, IsoError::FileTooLarge { size: 100, .. }));
    }

    #[test]
    fn bytes_without_a_cd001_descriptor_are_not_a_volume() {
        let image = vec![0u8; 40 * SECTOR_BYTES];
        assert!(matches!(
            read_volume(&image[..]),
            Err(IsoError::NotIso9660 { sector: 16 })
        ));
        assert_eq!(probe_volume_id(&image[..]), None);
    }

    #[test]
    fn a_truncated_volume_is_an_error_not_a_panic() {
        let image = rock_ridge_image("user-data", b"data");
        for cut in [0, 16 * SECTOR_BYTES + 10, 20 * SECTOR_BYTES + 100] {
            let truncated = &image[..cut];
            if let Ok(volume) = read_volume(truncated) {
                assert!(read_root_file(truncated, &volume, "user-data", 10).is_err());
            }
        }
    }

    #[test]
    fn a_record_with_a_length_below_the_minimum_is_malformed() {
        let mut bytes = [0u8; 40];
        bytes[0] = 20;
        assert!(matches!(
            parse_record(&bytes, 7),
            Err(IsoError::BadRecord { at: 7, .. })
        ));
    }

    #[test]
    fn a_rock_ridge_name_split_over_two_nm_entries_is_joined() {
        let area = b"NM\x09\x01\x01userNM\x0A\x01\x00-data";
        assert_eq!(rock_ridge_name(area).as_deref(), Some("user-data"));
    }

    #[test]
    fn a_susp_entry_with_a_bad_length_ends_the_walk() {
        assert_eq!(rock_ridge_name(b"NM\x02\x01\x00abc"), None);
        assert_eq!(rock_ridge_name(b"NM\xFF\x01\x00abc"), None);
    }
}
