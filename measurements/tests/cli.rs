//! The `pp-measure` binary seen from outside: bad inputs give one clear
//! error naming what is missing, and `image` writes every document.

use std::path::Path;
use std::process::{Command, Output};

use pp_measure::fixtures::firmware::FirmwareBuilder;
use pp_measure::fixtures::pe::pe_image;

fn pp_measure(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pp-measure"))
        .args(args)
        .output()
        .unwrap()
}

fn failure_message(output: &Output) -> String {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn a_firmware_without_metadata_is_refused_naming_the_missing_table() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = write(dir.path(), "plain.fd", &vec![0u8; 0x10000]);
    let message = failure_message(&pp_measure(&["snp", "--firmware", &firmware]));
    assert!(
        message.contains("firmware") && message.contains("no OVMF footer table"),
        "{message}"
    );
    let message = failure_message(&pp_measure(&["tdx-mrtd", "--firmware", &firmware]));
    assert!(message.contains("no OVMF footer table"), "{message}");
}

#[test]
fn a_truncated_kernel_is_refused_naming_the_kernel_and_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let image = pe_image(&[(".text", &[0x90u8; 4096])]);
    let kernel = write(dir.path(), "vmlinuz", &image[..image.len() - 1000]);
    let message = failure_message(&pp_measure(&["tdx-direct-boot", "--kernel", &kernel]));
    assert!(
        message.contains("kernel") && message.contains(".text") && message.contains("truncated"),
        "{message}"
    );
}

#[test]
fn an_unknown_vcpu_type_is_refused_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = write(
        dir.path(),
        "OVMF.fd",
        &FirmwareBuilder::snp_with_kernel_hashes().build(),
    );
    let message = failure_message(&pp_measure(&[
        "snp",
        "--firmware",
        &firmware,
        "--vcpu-type",
        "Skylake",
    ]));
    assert!(
        message.contains("--vcpu-type") && message.contains("EPYC-Genoa"),
        "{message}"
    );
}

#[test]
fn a_kernel_with_a_firmware_lacking_kernel_hashes_names_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = write(
        dir.path(),
        "OVMF.fd",
        &FirmwareBuilder::snp_without_kernel_hashes().build(),
    );
    let kernel = write(dir.path(), "vmlinuz", &pe_image(&[(".text", b"k")]));
    let message = failure_message(&pp_measure(&[
        "snp",
        "--firmware",
        &firmware,
        "--kernel",
        &kernel,
    ]));
    assert!(message.contains("SNP_KERNEL_HASHES"), "{message}");
}

#[test]
fn image_writes_reference_values_the_rvps_message_and_both_policies() {
    let dir = tempfile::tempdir().unwrap();
    let snp_firmware = write(
        dir.path(),
        "OVMF-amdsev.fd",
        &FirmwareBuilder::snp_with_kernel_hashes().build(),
    );
    let tdx_firmware = write(
        dir.path(),
        "OVMF-tdx.fd",
        &FirmwareBuilder::tdx_only().build(),
    );
    let kernel = write(
        dir.path(),
        "vmlinuz",
        &pe_image(&[(".text", b"kernel code")]),
    );
    let initrd = write(dir.path(), "initrd.cpio", b"070701 initrd");
    let uki = write(
        dir.path(),
        "image.efi",
        &pe_image(&[
            (".sdmagic", b"#### LoaderInfo: systemd-stub 254.26 ####"),
            (".osrel", b"ID=debian\n"),
            (".linux", &pe_image(&[(".text", b"kernel code")])),
        ]),
    );
    let init_data = write(
        dir.path(),
        "initdata.toml",
        b"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n",
    );
    let platform = write(
        dir.path(),
        "platform.json",
        br#"{"snp_bootloader": [3], "xfam": ["e702060000000000"]}"#,
    );
    let out = dir.path().join("out");
    let output = pp_measure(&[
        "image",
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--cmdline",
        "console=hvc0",
        "--uki",
        &uki,
        "--snp-firmware",
        &snp_firmware,
        "--snp-vcpus",
        "1xEPYC-Milan",
        "--snp-vcpus",
        "2xEPYC-Genoa",
        "--tdx-firmware",
        &tdx_firmware,
        "--init-data",
        &init_data,
        "--platform-values",
        &platform,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read_json = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap()
    };
    let values = read_json("reference-values.json");
    assert_eq!(values["snp"].as_array().unwrap().len(), 2);
    assert_eq!(values["tdx_mr_td"].as_array().unwrap().len(), 2);
    assert_eq!(values["uki"]["stub_version"], 254);
    let message = read_json("rvps-message.json");
    use base64::Engine as _;
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(message["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    for name in [
        "snp_launch_measurement",
        "mr_td",
        "rtmr_1",
        "rtmr_2",
        "snp_pcr11",
        "tdx_pcr11",
        "xfam",
    ] {
        assert!(payload[name].is_array(), "{name} missing in {payload}");
    }
    for name in ["tdvfkernel", "tdvfkernelparams"] {
        assert!(payload[name].is_string(), "{name} missing in {payload}");
    }
    let host_data = values["init_data"]["host_data"]
        .as_str()
        .unwrap()
        .to_string();
    for name in ["attestation-policy.rego", "resource-policy.rego"] {
        assert!(
            std::fs::read_to_string(out.join(name))
                .unwrap()
                .contains(&host_data)
        );
    }
    assert_eq!(
        read_json("attestation-policy.json")["policy_id"],
        "default_cpu"
    );
    assert!(read_json("resource-policy.json")["policy"].is_string());
}
