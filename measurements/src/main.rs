//! The `pp-measure` command line: one subcommand per reference value, plus
//! `image` (everything for one built image) and `admin-token` (a Trustee
//! admin bearer token for scripts/publish-trustee.sh). Results go to stdout
//! as JSON; errors to stderr with exit status 1.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use pp_measure::error::{Result, bad_input, read_file};
use pp_measure::image::{ImageInputs, SnpShape};
use pp_measure::initdata::InitDataBinding;
use pp_measure::ovmf::tdvf::{PageAddOrder, TdvfMetadata};
use pp_measure::pe::PeImage;
use pp_measure::snp::SnpLaunch;
use pp_measure::{tdx, uki};
use serde_json::{Value, json};
use sha2::{Sha256, Sha384};

#[derive(Parser)]
#[command(
    name = "pp-measure",
    version,
    about = "Reference values of a peer-pod image, and the Trustee documents that publish them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DigestName {
    Sha256,
    Sha384,
}

#[derive(Subcommand)]
enum Command {
    /// SEV-SNP launch digest for QEMU measured direct boot.
    Snp {
        /// An OVMF built from OvmfPkg/AmdSev/AmdSevX64.dsc.
        #[arg(long)]
        firmware: PathBuf,
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// Exactly what QEMU gets with -append.
        #[arg(long)]
        cmdline: Option<String>,
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// QEMU -cpu model, e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa.
        #[arg(long, default_value = "EPYC-v4")]
        vcpu_type: String,
        /// SEV_FEATURES, hex (QEMU's default is 0x1).
        #[arg(long, default_value = "0x1", value_parser = parse_hex_u64)]
        guest_features: u64,
        /// Only qemu is supported (see docs/measurements.md).
        #[arg(long, default_value = "qemu")]
        vmm: String,
    },
    /// TDX MRTD of a TDVF firmware, for both page-add orders.
    TdxMrtd {
        #[arg(long)]
        firmware: PathBuf,
    },
    /// TDX RTMR1/RTMR2 and the tdvfkernel/tdvfkernelparams event digests
    /// for direct boot of a kernel.
    TdxDirectBoot {
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: Option<PathBuf>,
        #[arg(long, default_value = "")]
        cmdline: String,
    },
    /// Authenticode digest of a PE image (kernel with EFI stub, UKI).
    Authenticode {
        #[arg(long, value_enum, default_value = "sha384")]
        digest: DigestName,
        file: PathBuf,
    },
    /// PCR 11 of a UKI after systemd-stub and after each boot phase.
    UkiPcr11 { uki: PathBuf },
    /// Digest of an init-data TOML and the HOST_DATA / MRCONFIGID values.
    Initdata { file: PathBuf },
    /// Everything for one built image, written into --out.
    Image {
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long)]
        initrd: Option<PathBuf>,
        #[arg(long, default_value = "")]
        cmdline: String,
        #[arg(long)]
        uki: Option<PathBuf>,
        /// AmdSev OVMF for the SNP launch digests.
        #[arg(long)]
        snp_firmware: Option<PathBuf>,
        /// SNP guest shapes, COUNTxTYPE, repeatable (e.g. 1xEPYC-Milan);
        /// default 1xEPYC-v4.
        #[arg(long = "snp-vcpus")]
        snp_shapes: Vec<SnpShape>,
        #[arg(long, default_value = "0x1", value_parser = parse_hex_u64)]
        guest_features: u64,
        #[arg(long, default_value = "qemu")]
        vmm: String,
        /// TDVF firmware for MRTD and the direct-boot RTMRs.
        #[arg(long)]
        tdx_firmware: Option<PathBuf>,
        /// The init-data TOML the pods are launched with (enables policies).
        #[arg(long)]
        init_data: Option<PathBuf>,
        /// JSON object of platform reference values merged into the RVPS
        /// message (snp_bootloader, snp_microcode, xfam, ...).
        #[arg(long)]
        platform_values: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// A Trustee admin bearer token, signed by the admin key.
    ///
    /// An EdDSA JWT with role, iat, exp, and iss / aud when given; the key
    /// is Ed25519 (PKCS#8 PEM or OpenSSH).
    ///
    /// Trustee's `[admin]` section must name the key's public half, and a
    /// token passes only when its `iss` and `aud` equal that entry's
    /// `issuer` and `audience` (give --issuer and --audience):
    ///
    ///   [admin.authentication.bearer_jwt]
    ///   identity_providers = [
    ///     { issuer = "ISS", audience = "AUD", public_key_uri = "/etc/kbs/admin.pub.pem" },
    ///   ]
    ///
    /// Otherwise Trustee answers 401 `Cannot verify token with any of the
    /// issuers` (also for a key it does not know).
    #[command(verbatim_doc_comment)]
    AdminToken {
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "admin")]
        role: String,
        /// The `iss` claim: the `issuer` of Trustee's identity provider.
        #[arg(long)]
        issuer: Option<String>,
        /// The `aud` claim: the `audience` of Trustee's identity provider.
        #[arg(long)]
        audience: Option<String>,
        #[arg(long, default_value_t = 300)]
        lifetime_seconds: u64,
    },
}

fn parse_hex_u64(text: &str) -> std::result::Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u64::from_str_radix(digits, 16).map_err(|_| format!("{text:?} is not a hex number"))
}

fn run(command: Command) -> Result<Value> {
    Ok(match command {
        Command::Snp {
            firmware,
            kernel,
            initrd,
            cmdline,
            vcpus,
            vcpu_type,
            guest_features,
            vmm,
        } => {
            let digest = SnpLaunch {
                firmware,
                kernel,
                initrd,
                cmdline,
                vcpus,
                vcpu_type,
                guest_features,
                vmm,
            }
            .launch_digest()?;
            json!({"snp_launch_measurement": hex::encode(digest)})
        }
        Command::TdxMrtd { firmware } => {
            let image = read_file("TDX firmware", &firmware)?;
            let metadata = TdvfMetadata::parse(&image)?;
            let by_order: serde_json::Map<String, Value> = PageAddOrder::ALL
                .iter()
                .map(|order| {
                    (
                        order.label().to_string(),
                        json!(hex::encode(metadata.mrtd(*order))),
                    )
                })
                .collect();
            json!({"mr_td": by_order})
        }
        Command::TdxDirectBoot {
            kernel,
            initrd,
            cmdline,
        } => {
            let kernel_bytes = read_file("kernel", &kernel)?;
            let authenticode: [u8; 48] = PeImage::parse("kernel", &kernel_bytes)?
                .authenticode::<Sha384>()
                .into();
            let initrd = initrd.map(|path| read_file("initrd", &path)).transpose()?;
            let boot = tdx::DirectBoot::new(authenticode, &cmdline, initrd.as_deref());
            json!({
                "rtmr_1": hex::encode(boot.rtmr1),
                "rtmr_2": hex::encode(boot.rtmr2),
                "tdvfkernel": hex::encode(boot.kernel_event),
                "tdvfkernelparams": hex::encode(boot.kernel_params_event),
            })
        }
        Command::Authenticode { digest, file } => {
            let bytes = read_file("PE image", &file)?;
            let pe = PeImage::parse("PE image", &bytes)?;
            match digest {
                DigestName::Sha256 => json!({"sha256": hex::encode(pe.authenticode::<Sha256>())}),
                DigestName::Sha384 => json!({"sha384": hex::encode(pe.authenticode::<Sha384>())}),
            }
        }
        Command::UkiPcr11 { uki: path } => {
            let bytes = read_file("UKI", &path)?;
            let pe = PeImage::parse("UKI", &bytes)?;
            json!({"stub_version": uki::stub_version(&pe)?, "sha256": uki::pcr11(&pe)?})
        }
        Command::Initdata { file } => {
            serde_json::to_value(InitDataBinding::from_toml(&read_file("init-data", &file)?)?)
                .unwrap_or_default()
        }
        Command::Image {
            kernel,
            initrd,
            cmdline,
            uki,
            snp_firmware,
            snp_shapes,
            guest_features,
            vmm,
            tdx_firmware,
            init_data,
            platform_values,
            out,
        } => {
            let inputs = ImageInputs {
                kernel,
                initrd,
                cmdline,
                uki,
                snp_firmware,
                snp_shapes,
                guest_features,
                vmm,
                tdx_firmware,
                init_data,
                platform_values,
            };
            let written = inputs.write(&out)?;
            json!({"written": written.iter().map(|path| path.display().to_string()).collect::<Vec<_>>()})
        }
        Command::AdminToken {
            key,
            role,
            issuer,
            audience,
            lifetime_seconds,
        } => {
            let key = pp_adaptor::admin_key::load_admin_key(&key)
                .map_err(|error| bad_input("--key", error.to_string()))?;
            let claims = pp_adaptor::admin_jwt::AdminClaims {
                role,
                issuer,
                audience,
                lifetime: Duration::from_secs(lifetime_seconds),
            };
            let token = pp_adaptor::admin_jwt::AdminTokenSigner::new(key, claims).token();
            println!("{token}");
            return Ok(Value::Null);
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Value::Null) => ExitCode::SUCCESS,
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pp-measure: {error}");
            ExitCode::FAILURE
        }
    }
}
