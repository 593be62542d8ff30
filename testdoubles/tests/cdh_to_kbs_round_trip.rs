//! The CDH double fetches resources from the KBS double over loopback,
//! running the full KBS protocol, as the forwarder will through its tunnel.

mod common;

use common::{AdminKey, RunningDouble, post_resource, send_once, start_kbs};
use pp_testdoubles::http1::Response;

fn start_pair(test: &str, cdh_extra: &[&str]) -> (AdminKey, RunningDouble, RunningDouble) {
    let admin = AdminKey::new(test);
    let kbs = start_kbs(&admin, &[]);
    let kbs_url = format!("http://{}", kbs.address);
    let mut args = vec!["--listen", "127.0.0.1:0", "--kbs-url", kbs_url.as_str()];
    args.extend_from_slice(cdh_extra);
    let cdh = RunningDouble::start(env!("CARGO_BIN_EXE_cdh-double"), &args);
    (admin, kbs, cdh)
}

/// GETs the resource `resource` (`repository/type/tag`) through the CDH
/// double at `cdh_address`.
async fn fetch_through_cdh(cdh_address: &str, resource: &str) -> Response {
    send_once(
        cdh_address,
        "GET",
        &format!("/cdh/resource/{resource}"),
        &[],
        b"",
    )
    .await
}

#[tokio::test]
async fn a_resource_posted_by_the_admin_comes_back_byte_for_byte_through_cdh() {
    let (admin, kbs, cdh) = start_pair("round-trip", &[]);
    let secret: Vec<u8> = (0..=255u8).chain([0, 0, b'\n', 0xff]).collect();
    let stored = post_resource(
        &kbs.address,
        &admin.valid_bearer(),
        "default/pp-abc/privateKey",
        &secret,
    )
    .await;
    assert_eq!(
        stored.status,
        200,
        "{}",
        String::from_utf8_lossy(&stored.body)
    );

    let fetched = fetch_through_cdh(&cdh.address, "default/pp-abc/privateKey").await;
    assert_eq!(
        fetched.status,
        200,
        "{}",
        String::from_utf8_lossy(&fetched.body)
    );
    assert_eq!(fetched.body, secret);
    assert_eq!(
        pp_testdoubles::http1::header(&fetched.headers, "content-type"),
        Some("application/octet-stream")
    );
    kbs.wait_for_log("-> 200 released resource default/pp-abc/privateKey");
    cdh.wait_for_log("GET /cdh/resource/default/pp-abc/privateKey -> 200");
}

#[tokio::test]
async fn every_cdh_request_runs_a_fresh_attestation() {
    let (admin, kbs, cdh) = start_pair("fresh", &[]);
    post_resource(
        &kbs.address,
        &admin.valid_bearer(),
        "default/sshclient/publicKey",
        b"ssh-ed25519 AAAA wn",
    )
    .await;
    for _ in 0..2 {
        let fetched = fetch_through_cdh(&cdh.address, "default/sshclient/publicKey").await;
        assert_eq!(fetched.body, b"ssh-ed25519 AAAA wn");
    }
    kbs.wait_for_log_count("attested session", 2);
    kbs.wait_for_log_count("challenge issued", 2);
}

#[tokio::test]
async fn an_unknown_resource_is_a_500_from_cdh_and_a_404_in_the_kbs_log() {
    let (_admin, kbs, cdh) = start_pair("unknown", &[]);
    let fetched = fetch_through_cdh(&cdh.address, "default/pp-sid/privateKey").await;
    assert_eq!(fetched.status, 500);
    let text = String::from_utf8_lossy(&fetched.body);
    assert!(text.contains("404"), "{text}");
    kbs.wait_for_log("-> 404 default/pp-sid/privateKey not found");
}

#[tokio::test]
async fn cdh_answers_500_when_the_kbs_is_unreachable() {
    let cdh = RunningDouble::start(
        env!("CARGO_BIN_EXE_cdh-double"),
        &["--listen", "127.0.0.1:0", "--kbs-url", "http://127.0.0.1:1"],
    );
    let fetched = fetch_through_cdh(&cdh.address, "a/b/c").await;
    assert_eq!(fetched.status, 500);
    assert!(String::from_utf8_lossy(&fetched.body).contains("cannot connect to KBS"));
}

#[tokio::test]
async fn init_data_given_to_cdh_is_sent_with_the_evidence() {
    let file =
        std::env::temp_dir().join(format!("cdh-double-initdata-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n",
    )
    .unwrap();
    let (admin, kbs, cdh) = start_pair("initdata", &["--initdata", file.to_str().unwrap()]);
    post_resource(&kbs.address, &admin.valid_bearer(), "a/b/c", b"x").await;
    let fetched = fetch_through_cdh(&cdh.address, "a/b/c").await;
    std::fs::remove_file(&file).unwrap();
    assert_eq!(fetched.body, b"x");
    kbs.wait_for_log("init-data toml 46 bytes");
}
