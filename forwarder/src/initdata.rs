//! Reads the init-data file at start and turns it into the forwarder's
//! init-data settings (WN key for the attestation phase, tunnels).
//!
//! A missing file is an error unless `--initdata-optional` was given: a
//! provisioning failure must not silently open the attestation phase to
//! clients without a key.

use std::fs;
use std::io::Read;
use std::path::Path;

use log::{info, warn};
use pp_forwarder_core::config::ForwarderConfig;
use pp_initdata::{InitData, MAX_DELIVERED_LEN, decode_delivery};

pub fn load(path: &Path, optional: bool) -> Result<ForwarderConfig, String> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => {
            warn!(
                "no init-data at {}: using the built-in defaults",
                path.display()
            );
            return describe(ForwarderConfig::default());
        }
        Err(e) => {
            return Err(format!(
                "cannot read init-data {}: {e} (pp-provision writes it at boot; \
                 pass --initdata-optional to run with the defaults)",
                path.display()
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_DELIVERED_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read init-data {}: {e}", path.display()))?;
    let in_file = |e: &dyn std::fmt::Display| format!("init-data {}: {e}", path.display());
    let toml = decode_delivery(&bytes).map_err(|e| in_file(&e))?;
    let init_data = InitData::parse(&toml).map_err(|e| in_file(&e))?;
    let config = ForwarderConfig::from_init_data(Some(&init_data)).map_err(|e| in_file(&e))?;
    describe(config)
}

fn describe(config: ForwarderConfig) -> Result<ForwarderConfig, String> {
    match &config.wn_public_key {
        Some(key) => info!(
            "init-data: the attestation phase requires the WN key {}",
            key.fingerprint()
        ),
        None => warn!(
            "init-data has no WN key: the attestation phase admits the first client \
             without a key (the attestation deadline bounds a hijack)"
        ),
    }
    for tag in config.inbounds.iter() {
        info!("inbound tunnel {}", tag.emit());
    }
    for tag in config.outbounds.iter() {
        info!("outbound tunnel {}", tag.emit());
    }
    Ok(config)
}
