//! Cross-checks against the reference tools, on the same bytes:
//! sev-snp-measure (PyPI) for SNP launch digests, pesign and osslsigncode
//! for Authenticode, systemd-measure for UKI PCR 11, and Debian's OVMF for
//! the metadata parsers. They need those tools and a Debian kernel
//! (`PP_MEASURE_TEST_KERNEL`), so they are ignored by a plain `cargo test`;
//! `scripts/measure-test.sh` installs everything and runs them.
//! `PP_MEASURE_STUB` and `PP_MEASURE_SYSTEMD_MEASURE` point the UKI checks
//! at another systemd version's stub and systemd-measure (same version).

use std::path::{Path, PathBuf};
use std::process::Command;

use pp_measure::fixtures::firmware::FirmwareBuilder;
use pp_measure::ovmf::tdvf::{PageAddOrder, TdvfMetadata};
use pp_measure::pe::PeImage;
use pp_measure::snp::SnpLaunch;
use sha2::{Sha256, Sha384};

const NEEDS_TOOLS: &str = "needs the reference tools: run scripts/measure-test.sh";

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error} ({NEEDS_TOOLS})"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn test_kernel() -> PathBuf {
    PathBuf::from(
        std::env::var("PP_MEASURE_TEST_KERNEL")
            .unwrap_or_else(|_| panic!("PP_MEASURE_TEST_KERNEL is not set ({NEEDS_TOOLS})")),
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
#[ignore = "needs sev-snp-measure: run scripts/measure-test.sh"]
fn snp_launch_digests_equal_sev_snp_measure_on_eight_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let with_hashes = dir.path().join("OVMF-amdsev.fd");
    let without_hashes = dir.path().join("OVMF-no-hashes.fd");
    std::fs::write(
        &with_hashes,
        FirmwareBuilder::snp_with_kernel_hashes().build(),
    )
    .unwrap();
    std::fs::write(
        &without_hashes,
        FirmwareBuilder::snp_without_kernel_hashes().build(),
    )
    .unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd.cpio");
    std::fs::write(
        &kernel,
        pp_measure::fixtures::pe::pe_image(&[(".text", &[0x90; 3000])]),
    )
    .unwrap();
    std::fs::write(
        &initrd,
        (0..20_000u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    // (firmware, vcpus, vcpu type, kernel + initrd + cmdline?, guest features, vmm)
    let configurations: [(&Path, u32, &str, bool, u64, &str); 8] = [
        (&without_hashes, 1, "EPYC-v4", false, 0x1, "qemu"),
        (&with_hashes, 1, "EPYC-v4", false, 0x1, "qemu"),
        (&with_hashes, 2, "EPYC-Milan", true, 0x1, "qemu"),
        (&with_hashes, 4, "EPYC-Genoa", true, 0x1, "qemu"),
        (&with_hashes, 8, "EPYC-Rome", true, 0x1, "qemu"),
        (&with_hashes, 3, "EPYC", true, 0x21, "qemu"),
        (&without_hashes, 16, "EPYC-Milan-v2", false, 0x1, "qemu"),
        (&with_hashes, 2, "EPYC-Genoa-v1", true, 0x1, "qemu"),
    ];
    for (firmware, vcpus, vcpu_type, direct_boot, guest_features, vmm) in configurations {
        let cmdline = "console=ttyS0 root=/dev/vda1";
        let ours = SnpLaunch {
            firmware: firmware.to_path_buf(),
            kernel: direct_boot.then(|| kernel.clone()),
            initrd: direct_boot.then(|| initrd.clone()),
            cmdline: direct_boot.then(|| cmdline.to_string()),
            vcpus,
            vcpu_type: vcpu_type.to_string(),
            guest_features,
            vmm: vmm.to_string(),
        }
        .launch_digest()
        .unwrap();
        let vcpus_arg = format!("--vcpus={vcpus}");
        let type_arg = format!("--vcpu-type={vcpu_type}");
        let features_arg = format!("--guest-features={guest_features:#x}");
        let vmm_arg = format!("--vmm-type={}", vmm.to_uppercase());
        let ovmf_arg = format!("--ovmf={}", path_str(firmware));
        let mut args = vec![
            "--mode=snp",
            "--output-format=hex",
            &vcpus_arg,
            &type_arg,
            &features_arg,
            &vmm_arg,
            &ovmf_arg,
        ];
        let kernel_arg = format!("--kernel={}", path_str(&kernel));
        let initrd_arg = format!("--initrd={}", path_str(&initrd));
        let append_arg = format!("--append={cmdline}");
        if direct_boot {
            args.extend([
                kernel_arg.as_str(),
                initrd_arg.as_str(),
                append_arg.as_str(),
            ]);
        }
        let theirs = run("sev-snp-measure", &args);
        assert_eq!(
            hex::encode(ours),
            theirs.trim(),
            "{vcpus}x{vcpu_type} direct boot {direct_boot} features {guest_features:#x} vmm {vmm}"
        );
    }
}

/// A UKI assembled with objcopy from the installed systemd-stub, the
/// test kernel and small osrel/cmdline/initrd files; returns the UKI path
/// and the section files systemd-measure needs.
fn build_uki(dir: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let stub = PathBuf::from(
        std::env::var("PP_MEASURE_STUB")
            .unwrap_or_else(|_| "/usr/lib/systemd/boot/efi/linuxx64.efi.stub".into()),
    );
    let stub = stub.as_path();
    let headers = run("objdump", &["-p", path_str(stub)]);
    let field = |name: &str| -> u64 {
        let line = headers.lines().find(|line| line.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().last().unwrap(), 16).unwrap()
    };
    let mut next_vma = field("ImageBase") + field("SizeOfImage");
    let sbat = dir.join("sbat");
    run(
        "objcopy",
        &[
            "-O",
            "binary",
            "--only-section=.sbat",
            path_str(stub),
            path_str(&sbat),
        ],
    );
    let files = [
        ("osrel", b"ID=debian\nVERSION_ID=12\n".to_vec()),
        ("cmdline", b"console=ttyS0 rw".to_vec()),
        ("initrd", (0..50_000u32).map(|i| (i % 241) as u8).collect()),
    ];
    let mut sections: Vec<(String, PathBuf)> = files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            (name.to_string(), path)
        })
        .collect();
    sections.push(("linux".into(), test_kernel()));
    let uki = dir.join("test.efi");
    let mut args: Vec<String> = Vec::new();
    for (name, path) in &sections {
        let size = std::fs::metadata(path).unwrap().len();
        args.push(format!("--add-section=.{name}={}", path.display()));
        args.push(format!("--change-section-vma=.{name}={next_vma:#x}"));
        next_vma = (next_vma + size).next_multiple_of(0x1000);
    }
    args.push(stub.display().to_string());
    args.push(uki.display().to_string());
    run(
        "objcopy",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // systemd-stub measures .sbat from 254 on (systemd-measure 252 has no
    // --sbat).
    let built = std::fs::read(&uki).unwrap();
    let built = PeImage::parse("UKI", &built).unwrap();
    if built.section(b".sbat").is_some() && pp_measure::uki::stub_version(&built).unwrap() >= 254 {
        sections.push(("sbat".into(), sbat));
    }
    (uki, sections)
}

#[test]
#[ignore = "needs pesign, osslsigncode, systemd-boot-efi and a Debian kernel: run scripts/measure-test.sh"]
fn authenticode_digests_equal_pesign_and_osslsigncode_for_the_kernel_and_a_uki() {
    let dir = tempfile::tempdir().unwrap();
    let (uki, _) = build_uki(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pp-measure test",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ],
    );
    for (role, image) in [("kernel", test_kernel()), ("UKI", uki)] {
        let bytes = std::fs::read(&image).unwrap();
        let ours_sha256 = hex::encode(
            PeImage::parse(role, &bytes)
                .unwrap()
                .authenticode::<Sha256>(),
        );
        let pesign = run("pesign", &["-h", "-d", "sha256", "-i", path_str(&image)]);
        assert_eq!(
            pesign.trim().strip_prefix("hash: "),
            Some(ours_sha256.as_str()),
            "{role}"
        );

        // pesign has no SHA-384; osslsigncode reports the Authenticode digest
        // it recomputes over a file signed with SHA-384.
        let signed = dir.path().join(format!("{role}.signed"));
        run(
            "osslsigncode",
            &[
                "sign",
                "-h",
                "sha384",
                "-certs",
                path_str(&cert),
                "-key",
                path_str(&key),
                "-in",
                path_str(&image),
                "-out",
                path_str(&signed),
            ],
        );
        let report = Command::new("osslsigncode")
            .args(["verify", "-in", path_str(&signed)])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&report.stdout).into_owned();
        let calculated = report
            .lines()
            .find_map(|line| line.strip_prefix("Calculated message digest"))
            .and_then(|rest| rest.split(':').nth(1))
            .unwrap_or_else(|| panic!("no calculated digest in: {report}"))
            .trim()
            .to_lowercase();
        let signed_bytes = std::fs::read(&signed).unwrap();
        let ours_sha384 = hex::encode(
            PeImage::parse(role, &signed_bytes)
                .unwrap()
                .authenticode::<Sha384>(),
        );
        assert_eq!(ours_sha384, calculated, "{role}");
    }
}

#[test]
#[ignore = "needs systemd-measure, systemd-boot-efi and a Debian kernel: run scripts/measure-test.sh"]
fn uki_pcr11_equals_systemd_measure_calculate_for_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (uki, sections) = build_uki(dir.path());
    let bytes = std::fs::read(&uki).unwrap();
    let ours = pp_measure::uki::pcr11(&PeImage::parse("UKI", &bytes).unwrap()).unwrap();
    let mut args: Vec<String> = vec![
        "calculate".into(),
        "--bank=sha256".into(),
        "--json=short".into(),
    ];
    args.extend(
        sections
            .iter()
            .map(|(name, path)| format!("--{name}={}", path.display())),
    );
    args.extend(
        pp_measure::uki::PHASES
            .iter()
            .map(|phase| format!("--phase={phase}")),
    );
    let systemd_measure = std::env::var("PP_MEASURE_SYSTEMD_MEASURE")
        .unwrap_or_else(|_| "/usr/lib/systemd/systemd-measure".into());
    let output = run(
        &systemd_measure,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let theirs: serde_json::Value = serde_json::from_str(&output).unwrap();
    let theirs: Vec<(String, String)> = theirs["sha256"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["phase"].as_str().unwrap_or("").to_string(),
                entry["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let ours: Vec<(String, String)> = ours
        .into_iter()
        .map(|value| (value.phase, value.pcr11))
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
#[ignore = "needs Debian's ovmf package and sev-snp-measure: run scripts/measure-test.sh"]
fn debians_ovmf_parses_and_its_snp_digest_without_a_kernel_equals_sev_snp_measure() {
    let image = std::fs::read("/usr/share/ovmf/OVMF.fd").expect("apt-get install ovmf");
    let tdvf = TdvfMetadata::parse(&image).unwrap();
    assert!(!tdvf.sections.is_empty());
    assert_ne!(
        tdvf.mrtd(PageAddOrder::Interleaved),
        tdvf.mrtd(PageAddOrder::AddAllThenExtend)
    );
    let sev = pp_measure::ovmf::sev_metadata::SevMetadata::parse(&image).unwrap();
    let error = sev.require_kernel_hashes().unwrap_err().to_string();
    assert!(error.contains("SNP_KERNEL_HASHES"), "{error}");
    let ours = SnpLaunch {
        firmware: "/usr/share/ovmf/OVMF.fd".into(),
        kernel: None,
        initrd: None,
        cmdline: None,
        vcpus: 2,
        vcpu_type: "EPYC-Milan".into(),
        guest_features: 1,
        vmm: "qemu".into(),
    }
    .launch_digest()
    .unwrap();
    let theirs = run(
        "sev-snp-measure",
        &[
            "--mode=snp",
            "--output-format=hex",
            "--vcpus=2",
            "--vcpu-type=EPYC-Milan",
            "--ovmf=/usr/share/ovmf/OVMF.fd",
        ],
    );
    assert_eq!(hex::encode(ours), theirs.trim());
}
