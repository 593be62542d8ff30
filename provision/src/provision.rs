//! The whole provisioning step, in order: fetch user-data, take the
//! init-data entry out of it, decode and parse init-data, check its binding
//! to the TEE, and only then write the files.
//!
//! `aa.toml` and `cdh.toml` are checked (or defaulted) by
//! [`guest_components`] before the binding check, so init-data whose AA or
//! CDH configuration cannot work is refused before anything else happens.
//!
//! Contract: nothing is written before the binding check has passed (or,
//! on a vTPM, before PCR 8 has been extended), so a mismatch leaves no
//! init-data for the forwarder, AA or CDH. Only init-data leaves this
//! function: other user-data entries are not bound to the launch and are
//! never written.

use std::path::PathBuf;

use pp_initdata::{self as initdata, InitData, InitDataError};

use crate::binding::{
    self, BindingMismatch, EvidenceError, LaunchSource, Platform, Register, SystemPaths, tpm,
};
use crate::cloud_config::{self, CloudConfigError};
use crate::guest_components::{self, GuestConfigError};
use crate::output::{self, OutputError};
use crate::source::{self, SourceError, SourceOptions};

/// `--tee`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeChoice {
    Auto,
    Simulated(PathBuf),
    None,
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: SourceOptions,
    pub out_dir: PathBuf,
    pub tee: TeeChoice,
    pub allow_no_tee: bool,
    pub system: SystemPaths,
}

/// How init-data was bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The launch register holds the digest.
    Launch(Register),
    /// PCR 8 of this vTPM was extended with the digest.
    PcrExtended(PathBuf),
    /// No TEE, and `--allow-no-tee` let it pass.
    Unbound,
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub source: String,
    pub algorithm: &'static str,
    pub digest_hex: String,
    pub binding: Binding,
    pub written: Vec<PathBuf>,
    pub ignored_data_entries: Vec<String>,
    /// `aa.toml` / `cdh.toml` written from the defaults (init-data had none).
    pub defaulted: Vec<&'static str>,
}

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    CloudConfig(#[from] CloudConfigError),
    #[error("write_files entry {path:?}: {0}", path = cloud_config::INITDATA_PATH)]
    InitData(InitDataError),
    #[error("{0}; refusing init-data that cannot work")]
    GuestConfig(#[from] GuestConfigError),
    #[error("reading the TEE launch register: {0}")]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Mismatch(#[from] BindingMismatch),
    #[error("vTPM binding: {0}")]
    Tpm(#[from] tpm::TpmError),
    #[error(
        "no TEE found (no SNP or TDX launch register, no vTPM); init-data cannot be bound. Pass --allow-no-tee only for development"
    )]
    NoTee,
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Run the provisioning step.
pub fn run(options: &Options) -> Result<Provisioned, ProvisionError> {
    let (user_data, source) = source::fetch_user_data(&options.source)?;
    let delivered = cloud_config::initdata_entry(&user_data)?;
    let toml = initdata::decode_delivery(&delivered).map_err(ProvisionError::InitData)?;
    let document = InitData::parse(&toml).map_err(ProvisionError::InitData)?;
    let algorithm = document.algorithm().as_str();
    let digest = initdata::digest(&toml, document.algorithm());
    let guest = guest_components::plan(&document)?;
    let binding = bind(options, &digest, algorithm)?;

    output::prepare_dir(&options.out_dir)?;
    let dir = options.out_dir.as_path();
    let mut written = Vec::new();
    let mut ignored_data_entries = Vec::new();
    written.push(output::write_file(
        dir,
        guest_components::AA_FILE,
        guest.aa_toml.as_bytes(),
    )?);
    written.push(output::write_file(
        dir,
        guest_components::CDH_FILE,
        guest.cdh_toml.as_bytes(),
    )?);
    for (name, text) in document.files() {
        if output::DATA_FILES.contains(&name) {
            written.push(output::write_file(dir, name, text.as_bytes())?);
        } else if ![guest_components::AA_FILE, guest_components::CDH_FILE].contains(&name) {
            ignored_data_entries.push(name.to_owned());
        }
    }
    let digest_hex = hex::encode(&digest);
    written.push(output::write_file(dir, output::INITDATA_TOML_FILE, &toml)?);
    written.push(output::write_file(
        dir,
        output::INITDATA_DIGEST_FILE,
        digest_hex.as_bytes(),
    )?);
    // Last: the forwarder's input, so its presence means "all written".
    written.push(output::write_file(dir, output::INITDATA_FILE, &delivered)?);
    Ok(Provisioned {
        source,
        algorithm,
        digest_hex,
        binding,
        written,
        ignored_data_entries,
        defaulted: guest.defaulted,
    })
}

fn bind(options: &Options, digest: &[u8], algorithm: &str) -> Result<Binding, ProvisionError> {
    let platform = match &options.tee {
        TeeChoice::Auto => binding::detect(&options.system),
        TeeChoice::Simulated(dir) => Platform::Launch(LaunchSource::Simulated(dir.clone())),
        TeeChoice::None => Platform::NoTee,
    };
    match platform {
        Platform::Launch(source) => {
            let launch = binding::read_launch_value(&source)?;
            binding::check(&launch, digest, algorithm)?;
            Ok(Binding::Launch(launch.register))
        }
        Platform::Vtpm(device) => {
            tpm::extend_initdata_pcr(&device, digest)?;
            Ok(Binding::PcrExtended(device))
        }
        Platform::NoTee if options.allow_no_tee => Ok(Binding::Unbound),
        Platform::NoTee => Err(ProvisionError::NoTee),
    }
}
