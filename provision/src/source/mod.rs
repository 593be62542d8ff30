//! Where user-data comes from: the config drive or a cloud metadata
//! service, chosen by `--source` or, with `auto`, by what the machine shows.
//!
//! `auto`: a config drive labelled `cidata` (or `--device`) wins; otherwise
//! the DMI strings in `/sys/class/dmi/id` name the cloud. Early in boot the
//! drive or the metadata service may not be there yet, so missing drives
//! and transient metadata errors are retried once a second until the
//! deadline; a final answer (malformed data, a refused request) is not.

pub mod config_drive;
pub mod http_request;
pub mod imds;
pub mod iso9660;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use config_drive::ConfigDriveError;
use imds::{Cloud, MetadataError};

const RETRY_PAUSE: Duration = Duration::from_secs(1);
const DMI_DIR: &str = "/sys/class/dmi/id";
const SYS_CLASS_BLOCK: &str = "/sys/class/block";
const DEV_DIR: &str = "/dev";
/// Azure sets this chassis asset tag on every VM.
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// `--source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    Auto,
    ConfigDrive,
    Metadata(Cloud),
}

/// Everything needed to fetch user-data.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub choice: SourceChoice,
    /// `--device`: the config drive (block device or ISO image file).
    pub device: Option<PathBuf>,
    /// `--imds-addr`.
    pub imds_addr: SocketAddr,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long to keep retrying.
    pub deadline: Duration,
}

/// Why no user-data could be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    ConfigDrive(#[from] ConfigDriveError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(
        "no config drive labelled cidata and the DMI data ({0}) names no supported cloud; pass --source"
    )]
    NothingFound(String),
}

impl SourceError {
    fn is_transient(&self) -> bool {
        match self {
            SourceError::ConfigDrive(e) => matches!(e, ConfigDriveError::NotFound { .. }),
            SourceError::Metadata(e) => e.is_transient(),
            SourceError::NothingFound(_) => true,
        }
    }
}

/// Fetch user-data, retrying transient failures until the deadline.
pub fn fetch_user_data(options: &SourceOptions) -> Result<(Vec<u8>, String), SourceError> {
    let started = Instant::now();
    loop {
        match fetch_once(options) {
            Ok(found) => return Ok(found),
            Err(err)
                if err.is_transient() && started.elapsed() + RETRY_PAUSE < options.deadline =>
            {
                eprintln!("pp-provision: {err}; retrying");
                std::thread::sleep(RETRY_PAUSE);
            }
            Err(err) => return Err(err),
        }
    }
}

/// One attempt; returns the user-data and a description of where it came from.
fn fetch_once(options: &SourceOptions) -> Result<(Vec<u8>, String), SourceError> {
    let from_drive = |device: &Path| -> Result<(Vec<u8>, String), SourceError> {
        let data = config_drive::read_user_data(device)?;
        Ok((data, format!("config drive {}", device.display())))
    };
    let from_cloud = |cloud: Cloud| -> Result<(Vec<u8>, String), SourceError> {
        let data = imds::fetch_user_data(cloud, options.imds_addr, options.request_timeout)?;
        Ok((data, format!("{} at {}", cloud.name(), options.imds_addr)))
    };
    let find_drive =
        || config_drive::find_config_drive(Path::new(SYS_CLASS_BLOCK), Path::new(DEV_DIR));
    match (options.choice, &options.device) {
        (SourceChoice::Metadata(cloud), _) => from_cloud(cloud),
        (_, Some(device)) => from_drive(device),
        (SourceChoice::ConfigDrive, None) => from_drive(&find_drive()?),
        (SourceChoice::Auto, None) => match find_drive() {
            Ok(device) => from_drive(&device),
            Err(ConfigDriveError::NotFound { .. }) => {
                let dmi = DmiStrings::read(Path::new(DMI_DIR));
                match dmi.cloud() {
                    Some(cloud) => from_cloud(cloud),
                    None => Err(SourceError::NothingFound(dmi.describe())),
                }
            }
            Err(other) => Err(other.into()),
        },
    }
}

/// The DMI strings that tell clouds apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmiStrings {
    pub sys_vendor: String,
    pub product_name: String,
    pub chassis_asset_tag: String,
}

impl DmiStrings {
    fn read(dir: &Path) -> Self {
        let read = |name: &str| {
            crate::bounded_read::read_bounded(&dir.join(name), 256)
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default()
        };
        DmiStrings {
            sys_vendor: read("sys_vendor"),
            product_name: read("product_name"),
            chassis_asset_tag: read("chassis_asset_tag"),
        }
    }

    /// The cloud these strings belong to, if any.
    pub fn cloud(&self) -> Option<Cloud> {
        if self.chassis_asset_tag == AZURE_ASSET_TAG {
            Some(Cloud::Azure)
        } else if self.sys_vendor == "Amazon EC2" || self.product_name.starts_with("Amazon EC2") {
            Some(Cloud::Aws)
        } else if self.sys_vendor == "Google" || self.product_name == "Google Compute Engine" {
            Some(Cloud::Gcp)
        } else {
            None
        }
    }

    fn describe(&self) -> String {
        format!(
            "sys_vendor {:?}, product_name {:?}, chassis_asset_tag {:?}",
            self.sys_vendor, self.product_name, self.chassis_asset_tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(vendor: &str, product: &str, tag: &str) -> DmiStrings {
        DmiStrings {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            chassis_asset_tag: tag.into(),
        }
    }

    #[test]
    fn dmi_strings_name_the_cloud() {
        assert_eq!(
            dmi("Microsoft Corporation", "Virtual Machine", AZURE_ASSET_TAG).cloud(),
            Some(Cloud::Azure)
        );
        assert_eq!(dmi("Amazon EC2", "m5.large", "").cloud(), Some(Cloud::Aws));
        assert_eq!(
            dmi("Google", "Google Compute Engine", "").cloud(),
            Some(Cloud::Gcp)
        );
        assert_eq!(dmi("QEMU", "Standard PC", "").cloud(), None);
    }

    #[test]
    fn dmi_strings_are_read_from_files_and_missing_ones_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sys_vendor"), "Amazon EC2\n").unwrap();
        let found = DmiStrings::read(dir.path());
        assert_eq!(found, dmi("Amazon EC2", "", ""));
    }
}
