//! The cloud-init config drive: find the block device whose ISO9660 volume
//! is labelled `cidata` and read `user-data` from its root directory.
//!
//! The drive is read directly through the bounded reader in
//! [`iso9660`](super::iso9660), not mounted: no mount point, no kernel
//! filesystem code exposed to host-built bytes, and tests pass an `.iso`
//! file with `--device` (see docs/decisions/provision.md).
//!
//! Contract: a device that cannot be opened or read is skipped while
//! searching; a vfat drive labelled `cidata` is recognised only to say that
//! it is not supported.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::iso9660::{self, IsoError};
use crate::limits::MAX_USER_DATA_BYTES;
use crate::read_at::ReadAt;

/// The volume label cloud-init's NoCloud data source looks for.
pub const CONFIG_DRIVE_LABEL: &str = "cidata";
/// The file on the drive holding the user-data.
pub const USER_DATA_FILE: &str = "user-data";

/// What went wrong finding or reading the config drive.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error("opening config drive {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config drive {path}: {source}")]
    Iso { path: PathBuf, source: IsoError },
    #[error(
        "config drive {path} is labelled {found:?}, expected {CONFIG_DRIVE_LABEL:?} (check the --device path)"
    )]
    WrongLabel { path: PathBuf, found: String },
    #[error(
        "{path} is a vfat volume labelled {CONFIG_DRIVE_LABEL:?}; only ISO9660 config drives are supported"
    )]
    VfatNotSupported { path: PathBuf },
    #[error(
        "no block device listed in {sys_block} holds an ISO9660 volume labelled {CONFIG_DRIVE_LABEL:?}"
    )]
    NotFound { sys_block: PathBuf },
    #[error("listing block devices in {sys_block}: {source}")]
    List {
        sys_block: PathBuf,
        source: std::io::Error,
    },
}

/// Find the config drive: each entry of `sys_block` (normally
/// `/sys/class/block`) names a device node in `dev_dir` (normally `/dev`).
pub fn find_config_drive(sys_block: &Path, dev_dir: &Path) -> Result<PathBuf, ConfigDriveError> {
    let entries = std::fs::read_dir(sys_block).map_err(|source| ConfigDriveError::List {
        sys_block: sys_block.to_owned(),
        source,
    })?;
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    names.sort();
    let mut vfat_drive = None;
    for name in names {
        let path = dev_dir.join(&name);
        let Ok(device) = File::open(&path) else {
            continue;
        };
        if iso9660::probe_volume_id(&device)
            .is_some_and(|label| label.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL))
        {
            return Ok(path);
        }
        if vfat_label(&device).is_some_and(|label| label.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL)) {
            vfat_drive = Some(path);
        }
    }
    Err(match vfat_drive {
        Some(path) => ConfigDriveError::VfatNotSupported { path },
        None => ConfigDriveError::NotFound {
            sys_block: sys_block.to_owned(),
        },
    })
}

/// Read `user-data` from the ISO9660 config drive at `path` (a block device
/// or an image file), checking its label first.
pub fn read_user_data(path: &Path) -> Result<Vec<u8>, ConfigDriveError> {
    let device = File::open(path).map_err(|source| ConfigDriveError::Open {
        path: path.to_owned(),
        source,
    })?;
    let iso = |source| ConfigDriveError::Iso {
        path: path.to_owned(),
        source,
    };
    let volume = iso9660::read_volume(&device).map_err(iso)?;
    if !volume.volume_id.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL) {
        return Err(ConfigDriveError::WrongLabel {
            path: path.to_owned(),
            found: volume.volume_id,
        });
    }
    iso9660::read_root_file(&device, &volume, USER_DATA_FILE, MAX_USER_DATA_BYTES).map_err(iso)
}

/// The volume label of a FAT boot sector, if the device holds one.
fn vfat_label(device: &(impl ReadAt + ?Sized)) -> Option<String> {
    let mut sector = [0u8; 512];
    device.read_exact_at(&mut sector, 0).ok()?;
    if sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let label = if &sector[82..87] == b"FAT32" {
        &sector[71..82]
    } else if &sector[54..57] == b"FAT" {
        &sector[43..54]
    } else {
        return None;
    };
    Some(String::from_utf8_lossy(label).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat16_boot_sector(label: &str) -> Vec<u8> {
        let mut sector = vec![0u8; 512];
        sector[43..54].fill(b' ');
        sector[43..43 + label.len()].copy_from_slice(label.as_bytes());
        sector[54..62].copy_from_slice(b"FAT16   ");
        sector[510] = 0x55;
        sector[511] = 0xAA;
        sector
    }

    #[test]
    fn a_fat_boot_sector_label_is_read() {
        assert_eq!(
            vfat_label(&fat16_boot_sector("CIDATA")[..]).as_deref(),
            Some("CIDATA")
        );
        assert_eq!(vfat_label(&[0u8; 512][..]), None);
    }

    #[test]
    fn a_vfat_cidata_drive_is_named_as_unsupported() {
        let sys = tempfile::tempdir().unwrap();
        let dev = tempfile::tempdir().unwrap();
        std::fs::create_dir(sys.path().join("vdb")).unwrap();
        std::fs::write(dev.path().join("vdb"), fat16_boot_sector("cidata")).unwrap();
        let err = find_config_drive(sys.path(), dev.path()).unwrap_err();
        assert!(matches!(err, ConfigDriveError::VfatNotSupported { .. }));
    }

    #[test]
    fn no_labelled_device_means_not_found() {
        let sys = tempfile::tempdir().unwrap();
        let dev = tempfile::tempdir().unwrap();
        std::fs::create_dir(sys.path().join("vda")).unwrap();
        std::fs::create_dir(sys.path().join("sr0")).unwrap();
        std::fs::write(dev.path().join("vda"), vec![0u8; 64 * 1024]).unwrap();
        let err = find_config_drive(sys.path(), dev.path()).unwrap_err();
        assert!(matches!(err, ConfigDriveError::NotFound { .. }));
    }
}
