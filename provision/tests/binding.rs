//! Each binding outcome, through the binary with a simulated TEE
//! (`--tee sim:DIR`) and through the library for TEE detection: match
//! (SNP and TDX, digests padded and truncated), mismatch, truncated and
//! garbage evidence, and no TEE with and without `--allow-no-tee`.

mod common;

use std::path::Path;

use common::*;
use pp_initdata::{self as initdata, Algorithm};
use pp_provision::binding::{Register, SystemPaths};
use pp_provision::provision::{self, Binding, Options, ProvisionError, TeeChoice};
use pp_provision::source::{SourceChoice, SourceOptions};

/// Run the binary on a config drive holding `toml`, against `sim`.
fn provision_with_sim(toml: &str, sim: &Path, out: &Path) -> std::process::Output {
    let work = tempfile::tempdir().unwrap();
    let iso = user_data_drive(work.path(), user_data_for(toml).as_bytes());
    pp_provision_with_sim(&["--device", iso.to_str().unwrap()], sim, out)
}

#[test]
fn snp_host_data_holding_the_digest_sized_to_32_bytes_matches() {
    for (name, algorithm) in [
        ("sha256", Algorithm::Sha256),
        ("sha384", Algorithm::Sha384),
        ("sha512", Algorithm::Sha512),
    ] {
        let toml = initdata_toml(name);
        let sim = snp_sim_dir(&initdata::host_data(&digest_of(&toml, algorithm)));
        let out = tempfile::tempdir().unwrap();
        let result = provision_with_sim(&toml, sim.path(), out.path());
        assert!(result.status.success(), "{name}: {}", stderr(&result));
        assert!(out.path().join("initdata").exists());
    }
}

#[test]
fn tdx_mrconfigid_holding_the_digest_sized_to_48_bytes_matches() {
    for (name, algorithm) in [("sha256", Algorithm::Sha256), ("sha512", Algorithm::Sha512)] {
        let toml = initdata_toml(name);
        let sim = tdx_sim_dir(&initdata::mrconfigid(&digest_of(&toml, algorithm)));
        let out = tempfile::tempdir().unwrap();
        let result = provision_with_sim(&toml, sim.path(), out.path());
        assert!(result.status.success(), "{name}: {}", stderr(&result));
        assert!(stderr(&result).contains("matches TDX MRCONFIGID"));
    }
}

#[test]
fn a_mismatch_exits_3_logs_both_values_and_writes_nothing() {
    let toml = initdata_toml("sha256");
    let other = initdata::host_data(&digest_of(&initdata_toml("sha384"), Algorithm::Sha384));
    let sim = snp_sim_dir(&other);
    let out = tempfile::tempdir().unwrap();
    let result = provision_with_sim(&toml, sim.path(), &out.path().join("peerpod"));
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    let log = stderr(&result);
    let expected = hex::encode(initdata::host_data(&digest_of(&toml, Algorithm::Sha256)));
    let mismatch_lines: Vec<_> = log.lines().filter(|l| l.contains("mismatch")).collect();
    assert_eq!(mismatch_lines.len(), 1, "{log}");
    assert!(
        mismatch_lines[0].contains(&hex::encode(other)) && mismatch_lines[0].contains(&expected),
        "{log}"
    );
    assert!(
        !out.path().join("peerpod").exists(),
        "nothing may be written on a mismatch"
    );
}

#[test]
fn a_truncated_report_is_refused_and_nothing_written() {
    let toml = initdata_toml("sha256");
    let report = pp_provision::binding::snp_report::synthetic_report(&initdata::host_data(
        &digest_of(&toml, Algorithm::Sha256),
    ));
    let sim = sim_dir("sev_guest", &report[..0xC0 + 16]);
    let out = tempfile::tempdir().unwrap();
    let result = provision_with_sim(&toml, sim.path(), &out.path().join("peerpod"));
    assert_eq!(result.status.code(), Some(1));
    assert!(stderr(&result).contains("truncated"), "{}", stderr(&result));
    assert!(!out.path().join("peerpod").exists());
}

#[test]
fn garbage_evidence_is_refused_for_both_providers() {
    let toml = initdata_toml("sha256");
    for provider in ["sev_guest", "tdx_guest"] {
        let sim = sim_dir(provider, &[0x5Au8; 4096]);
        let out = tempfile::tempdir().unwrap();
        let result = provision_with_sim(&toml, sim.path(), &out.path().join("peerpod"));
        assert_eq!(result.status.code(), Some(1), "{provider}");
        assert!(
            stderr(&result).contains("is this really"),
            "{}",
            stderr(&result)
        );
        assert!(!out.path().join("peerpod").exists());
    }
}

#[test]
fn an_unknown_provider_is_refused() {
    let toml = initdata_toml("sha256");
    let sim = sim_dir("cca_guest", &[0u8; 2048]);
    let out = tempfile::tempdir().unwrap();
    let result = provision_with_sim(&toml, sim.path(), out.path());
    assert_eq!(result.status.code(), Some(1));
    assert!(stderr(&result).contains("cca_guest"));
}

fn library_options(iso: &Path, out: &Path, system_root: &Path, allow_no_tee: bool) -> Options {
    Options {
        source: SourceOptions {
            choice: SourceChoice::ConfigDrive,
            device: Some(iso.to_owned()),
            imds_addr: "127.0.0.1:9".parse().unwrap(),
            request_timeout: std::time::Duration::from_secs(1),
            deadline: std::time::Duration::ZERO,
        },
        out_dir: out.to_owned(),
        tee: TeeChoice::Auto,
        allow_no_tee,
        system: SystemPaths {
            sev_guest: system_root.join("dev/sev-guest"),
            tdx_mr_config_id: system_root.join("sys/mrconfigid"),
            tsm_report: system_root.join("sys/tsm/report"),
            tpm: system_root.join("dev/tpmrm0"),
        },
    }
}

#[test]
fn no_tee_is_refused_without_the_development_flag_and_allowed_with_it() {
    let work = tempfile::tempdir().unwrap();
    let toml = initdata_toml("sha256");
    let iso = user_data_drive(work.path(), user_data_for(&toml).as_bytes());
    let empty_system = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    let refused = provision::run(&library_options(&iso, &out, empty_system.path(), false));
    assert!(matches!(refused, Err(ProvisionError::NoTee)));
    assert!(!out.exists());

    let allowed = provision::run(&library_options(&iso, &out, empty_system.path(), true)).unwrap();
    assert_eq!(allowed.binding, Binding::Unbound);
    assert!(out.join("initdata").exists());
}

#[test]
fn auto_detection_reads_a_tdx_mrconfigid_from_sysfs() {
    let work = tempfile::tempdir().unwrap();
    let toml = initdata_toml("sha384");
    let iso = user_data_drive(work.path(), user_data_for(&toml).as_bytes());
    let system = tempfile::tempdir().unwrap();
    std::fs::create_dir(system.path().join("sys")).unwrap();
    let mrconfigid = initdata::mrconfigid(&digest_of(&toml, Algorithm::Sha384));
    std::fs::write(system.path().join("sys/mrconfigid"), mrconfigid).unwrap();
    let done = provision::run(&library_options(
        &iso,
        &work.path().join("out"),
        system.path(),
        false,
    ))
    .unwrap();
    assert_eq!(done.binding, Binding::Launch(Register::TdxMrConfigId));
}

#[test]
fn the_binary_warns_on_every_start_with_the_development_flag() {
    let work = tempfile::tempdir().unwrap();
    let toml = initdata_toml("sha256");
    let iso = user_data_drive(work.path(), user_data_for(&toml).as_bytes());
    let out = work.path().join("out");
    let args = [
        "--device",
        iso.to_str().unwrap(),
        "--tee",
        "none",
        "--allow-no-tee",
        "--out-dir",
        out.to_str().unwrap(),
        "--on-mismatch",
        "exit",
    ];
    let result = pp_provision(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(stderr(&result).contains("WARNING: --allow-no-tee"));
    assert!(stderr(&result).contains("NOT BOUND"));
    let without_flag = pp_provision(
        &args
            .iter()
            .copied()
            .filter(|a| *a != "--allow-no-tee")
            .collect::<Vec<_>>(),
    );
    assert_eq!(without_flag.status.code(), Some(2));
}
