//! The metadata-service clients against a double on 127.0.0.1 (the
//! network-namespace run on 169.254.169.254 is scripts/provision-test.sh):
//! Azure (base64 body, `Metadata: true`), AWS IMDSv2 (PUT token, then GET
//! with it), GCP (`Metadata-Flavor: Google` both ways), and their failures.

mod common;

use base64ct::{Base64, Encoding};
use common::*;
use pp_initdata::{self as initdata, Algorithm};
use pp_provision::source::imds::{self, Cloud, MetadataError};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn provision_from(
    cloud: &str,
    double: &MetadataDouble,
    toml: &str,
    out: &std::path::Path,
) -> std::process::Output {
    let sim = snp_sim_dir(&initdata::host_data(&digest_of(toml, Algorithm::Sha256)));
    pp_provision_with_sim(
        &["--source", cloud, "--imds-addr", &double.addr.to_string()],
        sim.path(),
        out,
    )
}

#[test]
fn azure_user_data_is_fetched_with_the_metadata_header_and_base64_decoded() {
    let toml = initdata_toml("sha256");
    let body = Base64::encode_string(user_data_for(&toml).as_bytes());
    let double = MetadataDouble::start(
        vec![Route {
            method: "GET",
            path: "/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
            required_header: Some("Metadata: true"),
            response: http_200(body.as_bytes(), ""),
        }],
        1,
    );
    let out = tempfile::tempdir().unwrap();
    let result = provision_from("azure", &double, &toml, out.path());
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        std::fs::read_to_string(out.path().join("initdata.toml")).unwrap(),
        toml
    );
    double.requests();
}

#[test]
fn aws_imdsv2_puts_for_a_token_and_sends_it_with_the_get() {
    let toml = initdata_toml("sha256");
    let double = MetadataDouble::start(
        vec![
            Route {
                method: "PUT",
                path: "/latest/api/token",
                required_header: Some("X-aws-ec2-metadata-token-ttl-seconds: "),
                response: http_200(b"AQAEAtoken==", ""),
            },
            Route {
                method: "GET",
                path: "/latest/user-data",
                required_header: Some("X-aws-ec2-metadata-token: AQAEAtoken=="),
                response: http_200(user_data_for(&toml).as_bytes(), ""),
            },
        ],
        2,
    );
    let out = tempfile::tempdir().unwrap();
    let result = provision_from("aws", &double, &toml, out.path());
    assert!(result.status.success(), "{}", stderr(&result));
    let requests = double.requests();
    assert!(requests[0].starts_with("PUT /latest/api/token HTTP/1.1\r\n"));
    assert!(requests[1].starts_with("GET /latest/user-data HTTP/1.1\r\n"));
}

#[test]
fn gcp_user_data_is_fetched_with_the_metadata_flavor_header() {
    let toml = initdata_toml("sha256");
    let double = MetadataDouble::start(
        vec![Route {
            method: "GET",
            path: "/computeMetadata/v1/instance/attributes/user-data",
            required_header: Some("Metadata-Flavor: Google"),
            response: http_200(
                user_data_for(&toml).as_bytes(),
                "Metadata-Flavor: Google\r\n",
            ),
        }],
        1,
    );
    let out = tempfile::tempdir().unwrap();
    let result = provision_from("gcp", &double, &toml, out.path());
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(double.requests()[0].contains("Host: metadata.google.internal\r\n"));
}

#[test]
fn a_404_is_reported_with_the_path_and_counts_as_transient() {
    let double = MetadataDouble::start(vec![], 1);
    let err = imds::fetch_user_data(Cloud::Azure, double.addr, TIMEOUT).unwrap_err();
    assert!(matches!(err, MetadataError::Status { status: 404, .. }));
    assert!(err.is_transient());
    assert!(err.to_string().contains("userData"), "{err}");
    double.requests();
}

#[test]
fn azure_user_data_that_is_not_base64_is_refused_as_final() {
    let double = MetadataDouble::start(
        vec![Route {
            method: "GET",
            path: "/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
            required_header: None,
            response: http_200(b"#cloud-config\n", ""),
        }],
        1,
    );
    let err = imds::fetch_user_data(Cloud::Azure, double.addr, TIMEOUT).unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(!err.is_transient());
    double.requests();
}

#[test]
fn user_data_over_the_limit_from_a_metadata_service_is_refused() {
    let mut huge = b"#cloud-config\n#".to_vec();
    huge.resize(256 * 1024 + 1, b'x');
    let double = MetadataDouble::start(
        vec![
            Route {
                method: "PUT",
                path: "/latest/api/token",
                required_header: None,
                response: http_200(b"t", ""),
            },
            Route {
                method: "GET",
                path: "/latest/user-data",
                required_header: None,
                response: http_200(&huge, ""),
            },
        ],
        2,
    );
    let err = imds::fetch_user_data(Cloud::Aws, double.addr, TIMEOUT).unwrap_err();
    assert!(err.to_string().contains("262144-byte limit"), "{err}");
    double.requests();
}

#[test]
fn an_unreachable_service_is_retried_until_the_deadline_then_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let result = pp_provision(&[
        "--source",
        "aws",
        "--imds-addr",
        &addr.to_string(),
        "--tee",
        "none",
        "--allow-no-tee",
        "--out-dir",
        out.path().to_str().unwrap(),
        "--on-mismatch",
        "exit",
        "--timeout",
        "2",
    ]);
    assert_eq!(result.status.code(), Some(1));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried at least once"
    );
    assert!(stderr(&result).contains("retrying"), "{}", stderr(&result));
    assert!(stderr(&result).contains(&addr.to_string()));
}
