//! `pp-provision`: parse the command line, run the provisioning step, log
//! one line per outcome, and carry out the fail-closed action on a binding
//! mismatch. See `pp-provision --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use pp_provision::cli::{self, Command, MismatchAction};
use pp_provision::provision::{self, Binding, ProvisionError};

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_MISMATCH: u8 = 3;
const EXIT_NO_TEE: u8 = 4;

fn main() -> ExitCode {
    let (options, on_mismatch) = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options, action)) => (options, action),
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("pp-provision {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("pp-provision: {message}\nTry `pp-provision --help`.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if options.allow_no_tee {
        eprintln!(
            "pp-provision: WARNING: --allow-no-tee is set: if no TEE is found, init-data is used WITHOUT any binding to the launch. Development only."
        );
    }
    match provision::run(&options) {
        Ok(done) => {
            let binding = match &done.binding {
                Binding::Launch(register) => format!("matches {}", register.name()),
                Binding::PcrExtended(device) => {
                    format!("extended into PCR 8 of {}", device.display())
                }
                Binding::Unbound => "NOT BOUND (no TEE, --allow-no-tee)".to_owned(),
            };
            if done.binding == Binding::Unbound {
                eprintln!(
                    "pp-provision: WARNING: no TEE found; init-data is NOT bound to the launch"
                );
            }
            for name in &done.defaulted {
                eprintln!(
                    "pp-provision: init-data has no {name}: wrote the default (KBS through the forwarder's tunnel; docs/provisioning.md)"
                );
            }
            for name in &done.ignored_data_entries {
                eprintln!(
                    "pp-provision: init-data [data] entry {name:?} ignored (not one pp-provision writes)"
                );
            }
            let files: Vec<String> = done
                .written
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            eprintln!(
                "pp-provision: init-data from {}: {} digest {} {}; wrote {}",
                done.source,
                done.algorithm,
                done.digest_hex,
                binding,
                files.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(ProvisionError::Mismatch(mismatch)) => {
            eprintln!("pp-provision: {mismatch}; refusing to provision");
            if on_mismatch == MismatchAction::PowerOff {
                eprintln!("pp-provision: powering off (--on-mismatch poweroff)");
                if let Err(err) = rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
                    eprintln!("pp-provision: power-off failed: {err}");
                }
            }
            ExitCode::from(EXIT_MISMATCH)
        }
        Err(err @ ProvisionError::NoTee) => {
            eprintln!("pp-provision: {err}");
            ExitCode::from(EXIT_NO_TEE)
        }
        Err(err) => {
            eprintln!("pp-provision: {err}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
