//! Malformed or hostile user-data and init-data, each refused with an
//! error naming what is wrong, exit status 1, and nothing written.

mod common;

use std::io::Write;

use base64ct::{Base64, Encoding};
use common::*;

/// Run the binary on a config drive holding `user_data`; expect refusal
/// and return the log.
fn refused(user_data: &[u8]) -> String {
    let work = tempfile::tempdir().unwrap();
    let iso = user_data_drive(work.path(), user_data);
    let sim = snp_sim_dir(&[0; 32]);
    let out = work.path().join("out");
    let result = pp_provision_with_sim(&["--device", iso.to_str().unwrap()], sim.path(), &out);
    let log = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{log}");
    assert!(!out.exists(), "nothing may be written: {log}");
    log
}

fn gzip_base64(bytes: &[u8]) -> String {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    Base64::encode_string(&encoder.finish().unwrap())
}

#[test]
fn content_that_is_not_valid_base64_is_refused() {
    let log = refused(user_data_with_content("H4sI*not*base64*").as_bytes());
    assert!(
        log.contains("/run/peerpod/initdata") && log.contains("base64"),
        "{log}"
    );
}

#[test]
fn a_b64_encoded_entry_with_bad_base64_names_the_content_field() {
    let user_data = "#cloud-config\nwrite_files:\n- path: /run/peerpod/initdata\n  encoding: b64\n  content: '%%%'\n";
    let log = refused(user_data.as_bytes());
    assert!(log.contains("field `content`"), "{log}");
}

#[test]
fn a_gzip_bomb_stops_at_the_inflate_limit() {
    let bomb = gzip_base64(&vec![b' '; 20 * 1024 * 1024]);
    assert!(bomb.len() < 100 * 1024, "the bomb itself is small");
    let log = refused(user_data_with_content(&bomb).as_bytes());
    assert!(log.contains("inflates to more than"), "{log}");
}

#[test]
fn damaged_gzip_is_refused() {
    let mut delivered =
        Base64::decode_vec(&gzip_base64(initdata_toml("sha256").as_bytes())).unwrap();
    let middle = delivered.len() / 2;
    delivered[middle] ^= 0xFF;
    let log = refused(user_data_with_content(&Base64::encode_string(&delivered)).as_bytes());
    assert!(log.contains("gzip"), "{log}");
}

#[test]
fn user_data_without_write_files_or_without_the_initdata_entry_is_refused() {
    let log = refused(b"#cloud-config\nhostname: pod\n");
    assert!(
        log.contains("no write_files entry with path \"/run/peerpod/initdata\""),
        "{log}"
    );
    let log = refused(b"#cloud-config\nwrite_files:\n- path: /etc/motd\n  content: hi\n");
    assert!(log.contains("no write_files entry"), "{log}");
}

#[test]
fn an_initdata_entry_without_content_is_refused_naming_the_field() {
    let log = refused(
        b"#cloud-config\nwrite_files:\n- path: /run/peerpod/initdata\n  permissions: '0600'\n",
    );
    assert!(log.contains("field `content` is missing"), "{log}");
}

#[test]
fn init_data_without_an_algorithm_is_refused_naming_the_field() {
    let toml = "version = \"0.1.0\"\n[data]\n\"aa.toml\" = \"\"\n";
    let log = refused(user_data_with_content(&gzip_base64(toml.as_bytes())).as_bytes());
    assert!(log.contains("algorithm"), "{log}");
}

#[test]
fn init_data_with_an_unknown_version_is_refused() {
    let toml = initdata_toml("sha256").replace("0.1.0", "9.9.9");
    let log = refused(user_data_with_content(&gzip_base64(toml.as_bytes())).as_bytes());
    assert!(log.contains("9.9.9"), "{log}");
}

#[test]
fn non_utf8_user_data_is_refused() {
    let log = refused(b"#cloud-config\nwrite_files: \xff\xfe\n");
    assert!(log.contains("not UTF-8"), "{log}");
}

#[test]
fn non_utf8_init_data_is_refused() {
    let log = refused(user_data_with_content(&gzip_base64(b"version = \"\xff\"\n")).as_bytes());
    assert!(log.contains("UTF-8"), "{log}");
}

#[test]
fn a_shell_script_instead_of_cloud_config_is_refused() {
    let log = refused(b"#!/bin/sh\necho hi\n");
    assert!(log.contains("#cloud-config"), "{log}");
}

#[test]
fn yaml_that_does_not_parse_is_refused() {
    let log = refused(b"#cloud-config\nwrite_files: [\n");
    assert!(log.contains("YAML"), "{log}");
}

#[test]
fn a_cdh_toml_whose_kbs_url_is_not_the_tunnel_is_refused_before_anything_is_written() {
    let toml = initdata_toml("sha256").replace(
        "[kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080\"",
        "[kbc]\nname = \"cc_kbc\"\nurl = \"https://kbs.example.com\"",
    );
    assert!(toml.contains("kbs.example.com"));
    let log = refused(user_data_for(&toml).as_bytes());
    assert!(
        log.contains("init-data cdh.toml: [kbc] url is \"https://kbs.example.com\"")
            && log.contains("use \"http://127.0.0.1:8080\""),
        "{log}"
    );
}
