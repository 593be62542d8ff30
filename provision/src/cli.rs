//! Command-line parsing for `pp-provision`.
//!
//! Contract: [`parse`] either returns complete [`Options`] or an error
//! message naming the flag and the expected form; `--on-mismatch` has no
//! default (the fail-closed action is always an explicit choice), and
//! `--tee none` requires `--allow-no-tee`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::binding::SystemPaths;
use crate::provision::{Options, TeeChoice};
use crate::source::imds::Cloud;
use crate::source::{SourceChoice, SourceOptions};

pub const HELP: &str = "\
pp-provision: peer-pod init-data provisioning. Runs once per boot, as root,
before the forwarder: reads cloud user-data, takes init-data from its
cloud-config write_files entry /run/peerpod/initdata (base64(gzip(TOML))),
checks that the TEE was launched with this init-data (SNP HOST_DATA, TDX
MRCONFIGID) or extends vTPM PCR 8 with its digest, and only then writes it.

Usage: pp-provision --on-mismatch poweroff|exit [OPTIONS]

Options:
  --source auto|config-drive|azure|aws|gcp
                        where user-data comes from [default: auto: a config
                        drive labelled cidata, else the cloud the DMI data
                        names]
  --device PATH         the config drive (block device or ISO9660 image
                        file) instead of searching /sys/class/block
  --imds-addr IP:PORT   metadata service address [default: 169.254.169.254:80]
  --out-dir DIR         output directory, created 0700 [default: /run/peerpod]
  --tee auto|sim:DIR|none
                        binding check: auto-detect (/sys/.../tdx_guest
                        mrconfigid, /dev/sev-guest, configfs-tsm, /dev/tpmrm0),
                        a simulated configfs-tsm report entry DIR holding
                        `provider` (sev_guest|tdx_guest) and `outblob`, or
                        none (needs --allow-no-tee) [default: auto]
  --allow-no-tee        DEVELOPMENT ONLY: provision even when no TEE is found
                        (init-data is then not bound; a WARNING is logged)
  --on-mismatch poweroff|exit
                        what to do when the TEE was launched with other
                        init-data: power the VM off, or just exit 3 (required)
  --timeout SECONDS     keep retrying while the config drive or metadata
                        service is not there yet [default: 120]
  -h, --help            show this help
  -V, --version         show the version

Writes (mode 0600) into the output directory:
  initdata          init-data as delivered (the forwarder's --initdata)
  initdata.toml     the decoded TOML, the exact bytes the digest covers
  initdata.digest   the digest, lowercase hex
  aa.toml cdh.toml  the init-data [data] entries of those names, checked
                    (their KBS URL must be the forwarder's KBS tunnel,
                    http://127.0.0.1:8080), or defaults when init-data
                    has none (see docs/provisioning.md)
  policy.rego forwarder.toml
                    the init-data [data] entries of those names, if present

Exit status: 0 provisioned; 1 missing or malformed input, unreadable
evidence, I/O error; 2 usage error; 3 binding mismatch (after the
--on-mismatch action); 4 no TEE found.
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Options>, MismatchAction),
    Help,
    Version,
}

/// `--on-mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchAction {
    PowerOff,
    Exit,
}

const DEFAULT_IMDS: &str = "169.254.169.254:80";
const DEFAULT_OUT_DIR: &str = "/run/peerpod";
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Parse the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut choice = SourceChoice::Auto;
    let mut device = None;
    let mut imds_addr: SocketAddr = DEFAULT_IMDS.parse().map_err(|_| "bad default")?;
    let mut out_dir = PathBuf::from(DEFAULT_OUT_DIR);
    let mut tee = TeeChoice::Auto;
    let mut allow_no_tee = false;
    let mut on_mismatch = None;
    let mut timeout = Duration::from_secs(DEFAULT_TIMEOUT_SECONDS);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("source") => choice = parse_source(&string_value(&mut parser, "source")?)?,
            Long("device") => device = Some(PathBuf::from(string_value(&mut parser, "device")?)),
            Long("imds-addr") => {
                let text = string_value(&mut parser, "imds-addr")?;
                imds_addr = text.parse().map_err(|_| {
                    format!("--imds-addr {text:?}: expected IP:PORT (an IP literal, no names)")
                })?;
            }
            Long("out-dir") => out_dir = PathBuf::from(string_value(&mut parser, "out-dir")?),
            Long("tee") => tee = parse_tee(&string_value(&mut parser, "tee")?)?,
            Long("allow-no-tee") => allow_no_tee = true,
            Long("on-mismatch") => {
                on_mismatch = Some(match string_value(&mut parser, "on-mismatch")?.as_str() {
                    "poweroff" => MismatchAction::PowerOff,
                    "exit" => MismatchAction::Exit,
                    other => {
                        return Err(format!(
                            "--on-mismatch {other:?}: expected poweroff or exit"
                        ));
                    }
                })
            }
            Long("timeout") => {
                let text = string_value(&mut parser, "timeout")?;
                let seconds: u64 = text
                    .parse()
                    .map_err(|_| format!("--timeout {text:?}: expected whole seconds"))?;
                timeout = Duration::from_secs(seconds);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let on_mismatch = on_mismatch.ok_or("--on-mismatch poweroff|exit is required")?;
    if tee == TeeChoice::None && !allow_no_tee {
        return Err(
            "--tee none skips the binding check and needs --allow-no-tee (development only)".into(),
        );
    }
    if device.is_some() && matches!(choice, SourceChoice::Metadata(_)) {
        return Err(
            "--device names a config drive; it cannot be used with a metadata --source".into(),
        );
    }
    let source = SourceOptions {
        choice,
        device,
        imds_addr,
        request_timeout: timeout.min(MAX_REQUEST_TIMEOUT).max(Duration::from_secs(1)),
        deadline: timeout,
    };
    let options = Options {
        source,
        out_dir,
        tee,
        allow_no_tee,
        system: SystemPaths::default(),
    };
    Ok(Command::Run(Box::new(options), on_mismatch))
}

fn string_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| format!("--{flag}: {e}"))?
        .into_string()
        .map_err(|_| format!("--{flag}: value is not UTF-8"))
}

fn parse_source(text: &str) -> Result<SourceChoice, String> {
    Ok(match text {
        "auto" => SourceChoice::Auto,
        "config-drive" => SourceChoice::ConfigDrive,
        "azure" => SourceChoice::Metadata(Cloud::Azure),
        "aws" => SourceChoice::Metadata(Cloud::Aws),
        "gcp" => SourceChoice::Metadata(Cloud::Gcp),
        other => {
            return Err(format!(
                "--source {other:?}: expected auto, config-drive, azure, aws or gcp"
            ));
        }
    })
}

fn parse_tee(text: &str) -> Result<TeeChoice, String> {
    match text {
        "auto" => Ok(TeeChoice::Auto),
        "none" => Ok(TeeChoice::None),
        _ => match text.strip_prefix("sim:") {
            Some(dir) if !dir.is_empty() => Ok(TeeChoice::Simulated(PathBuf::from(dir))),
            _ => Err(format!("--tee {text:?}: expected auto, sim:DIR or none")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_apply_when_only_the_mismatch_action_is_given() {
        let Command::Run(options, action) = run(&["--on-mismatch", "exit"]).unwrap() else {
            panic!("expected Run");
        };
        assert_eq!(action, MismatchAction::Exit);
        assert_eq!(options.source.choice, SourceChoice::Auto);
        assert_eq!(options.source.imds_addr.to_string(), DEFAULT_IMDS);
        assert_eq!(options.out_dir, PathBuf::from("/run/peerpod"));
        assert_eq!(options.tee, TeeChoice::Auto);
    }

    #[test]
    fn the_mismatch_action_is_required() {
        assert!(run(&[]).unwrap_err().contains("--on-mismatch"));
    }

    #[test]
    fn tee_none_needs_the_development_flag() {
        assert!(run(&["--on-mismatch", "exit", "--tee", "none"]).is_err());
        assert!(run(&["--on-mismatch", "exit", "--tee", "none", "--allow-no-tee"]).is_ok());
    }

    #[test]
    fn sim_names_a_directory_and_bad_values_name_the_flag() {
        let Command::Run(options, _) = run(&[
            "--on-mismatch=poweroff",
            "--tee=sim:/tmp/x",
            "--source",
            "aws",
        ])
        .unwrap() else {
            panic!("expected Run");
        };
        assert_eq!(options.tee, TeeChoice::Simulated(PathBuf::from("/tmp/x")));
        assert_eq!(options.source.choice, SourceChoice::Metadata(Cloud::Aws));
        assert!(
            run(&["--on-mismatch", "exit", "--tee", "sim:"])
                .unwrap_err()
                .contains("--tee")
        );
        assert!(
            run(&["--on-mismatch", "exit", "--imds-addr", "metadata"])
                .unwrap_err()
                .contains("--imds-addr")
        );
        assert!(
            run(&["--on-mismatch", "exit", "--source", "openstack"])
                .unwrap_err()
                .contains("--source")
        );
    }

    #[test]
    fn help_wins_over_missing_flags() {
        assert!(matches!(run(&["--help"]).unwrap(), Command::Help));
    }
}
