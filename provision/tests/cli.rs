//! The command line as an operator meets it: help, version, usage errors.

mod common;

use common::*;

#[test]
fn help_describes_every_flag_and_the_exit_statuses() {
    let result = pp_provision(&["--help"]);
    assert!(result.status.success());
    let help = String::from_utf8(result.stdout).unwrap();
    for flag in [
        "--source",
        "--device",
        "--imds-addr",
        "--out-dir",
        "--tee",
        "--allow-no-tee",
        "--on-mismatch",
        "--timeout",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    assert!(help.contains("Exit status"));
}

#[test]
fn version_prints_the_crate_version() {
    let result = pp_provision(&["--version"]);
    assert!(result.status.success());
    assert_eq!(
        String::from_utf8(result.stdout).unwrap().trim(),
        format!("pp-provision {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_point_to_help() {
    for args in [
        &["--bogus"][..],
        &[][..],
        &["--on-mismatch", "reboot"][..],
        &[
            "--on-mismatch",
            "exit",
            "--source",
            "aws",
            "--device",
            "/dev/sr0",
        ][..],
    ] {
        let result = pp_provision(args);
        assert_eq!(result.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&result).contains("--help"),
            "{args:?}: {}",
            stderr(&result)
        );
    }
}
