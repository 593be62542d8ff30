//! End to end through the binary: user-data on a config drive image built
//! by genisoimage/xorriso, read by pp-provision's own ISO9660 reader
//! (`--device FILE`), checked against a simulated SNP TEE, written out.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use pp_initdata::{self as initdata, Algorithm};

fn provision_from_drive(
    iso: &std::path::Path,
    sim: &std::path::Path,
    out: &std::path::Path,
) -> std::process::Output {
    pp_provision_with_sim(
        &[
            "--source",
            "config-drive",
            "--device",
            iso.to_str().unwrap(),
        ],
        sim,
        out,
    )
}

#[test]
fn init_data_from_a_joliet_rock_ridge_drive_is_written_with_its_digest() {
    let work = tempfile::tempdir().unwrap();
    let toml = initdata_toml("sha384");
    let user_data = user_data_for(&toml);
    let iso = config_drive(
        work.path(),
        "cidata",
        &[
            ("user-data", user_data.as_bytes()),
            ("meta-data", b"instance-id: pp\n"),
        ],
        &["-joliet", "-rock"],
    );
    let digest = digest_of(&toml, Algorithm::Sha384);
    let sim = snp_sim_dir(&initdata::host_data(&digest));
    let out = work.path().join("run/peerpod");

    let result = provision_from_drive(&iso, sim.path(), &out);

    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        std::fs::read_to_string(out.join("initdata.toml")).unwrap(),
        toml
    );
    assert_eq!(
        std::fs::read_to_string(out.join("initdata.digest")).unwrap(),
        hex::encode(&digest)
    );
    let delivered = std::fs::read(out.join("initdata")).unwrap();
    assert_eq!(
        initdata::decode_delivery(&delivered).unwrap(),
        toml.as_bytes()
    );
    assert!(
        std::fs::read_to_string(out.join("cdh.toml"))
            .unwrap()
            .contains("cc_kbc")
    );
    assert!(out.join("aa.toml").exists() && out.join("policy.rego").exists());
    assert!(
        !out.join("extra.txt").exists(),
        "only allowlisted [data] entries are written"
    );
    assert!(
        !out.join("daemon.json").exists(),
        "unbound user-data entries are never written"
    );
    let mode = std::fs::metadata(out.join("initdata"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        stderr(&result).contains("matches SNP HOST_DATA"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn rock_ridge_only_and_joliet_only_drives_are_both_read() {
    for naming in [&["-rock"][..], &["-joliet"][..]] {
        let work = tempfile::tempdir().unwrap();
        let toml = initdata_toml("sha256");
        let iso = config_drive(
            work.path(),
            "cidata",
            &[("user-data", user_data_for(&toml).as_bytes())],
            naming,
        );
        let digest = digest_of(&toml, Algorithm::Sha256);
        let sim = snp_sim_dir(&initdata::host_data(&digest));
        let result = provision_from_drive(&iso, sim.path(), &work.path().join("out"));
        assert!(result.status.success(), "{naming:?}: {}", stderr(&result));
    }
}

#[test]
fn a_drive_with_another_label_is_refused_naming_the_label() {
    let work = tempfile::tempdir().unwrap();
    let iso = config_drive(
        work.path(),
        "config-2",
        &[("user-data", b"#cloud-config\n")],
        &["-joliet", "-rock"],
    );
    let sim = snp_sim_dir(&[0; 32]);
    let result = provision_from_drive(&iso, sim.path(), &work.path().join("out"));
    assert_eq!(result.status.code(), Some(1));
    assert!(stderr(&result).contains("config-2"), "{}", stderr(&result));
}

#[test]
fn a_drive_without_user_data_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let iso = config_drive(
        work.path(),
        "cidata",
        &[("meta-data", b"x")],
        &["-joliet", "-rock"],
    );
    let sim = snp_sim_dir(&[0; 32]);
    let result = provision_from_drive(&iso, sim.path(), &work.path().join("out"));
    assert_eq!(result.status.code(), Some(1));
    assert!(
        stderr(&result).contains("no file named \"user-data\""),
        "{}",
        stderr(&result)
    );
}

#[test]
fn user_data_over_256_kib_is_refused_before_it_is_read() {
    let work = tempfile::tempdir().unwrap();
    let mut huge = b"#cloud-config\n# ".to_vec();
    huge.resize(256 * 1024 + 1, b'x');
    let iso = user_data_drive(work.path(), &huge);
    let sim = snp_sim_dir(&[0; 32]);
    let out = work.path().join("out");
    let result = provision_from_drive(&iso, sim.path(), &out);
    assert_eq!(result.status.code(), Some(1));
    assert!(
        stderr(&result).contains("262144-byte limit"),
        "{}",
        stderr(&result)
    );
    assert!(!out.exists());
}

#[test]
fn init_data_without_aa_and_cdh_entries_gets_the_documented_defaults() {
    let work = tempfile::tempdir().unwrap();
    let toml = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\
                \"forwarder.toml\" = 'inbounds = [\"BOTH_PHASES:KBS:8080\"]'\n";
    let iso = user_data_drive(work.path(), user_data_for(toml).as_bytes());
    let digest = digest_of(toml, Algorithm::Sha256);
    let sim = snp_sim_dir(&initdata::host_data(&digest));
    let out = work.path().join("run/peerpod");

    let result = provision_from_drive(&iso, sim.path(), &out);

    let log = stderr(&result);
    assert!(result.status.success(), "{log}");
    assert!(
        log.contains("init-data has no aa.toml: wrote the default")
            && log.contains("init-data has no cdh.toml: wrote the default"),
        "{log}"
    );
    let cdh = std::fs::read_to_string(out.join("cdh.toml")).unwrap();
    assert!(
        cdh.contains("name = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080\""),
        "{cdh}"
    );
    let aa = std::fs::read_to_string(out.join("aa.toml")).unwrap();
    assert!(
        aa.contains("[token_configs.kbs]\nurl = \"http://127.0.0.1:8080\""),
        "{aa}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("initdata.toml")).unwrap(),
        toml,
        "init-data itself is written as delivered"
    );
}
