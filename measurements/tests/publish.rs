//! scripts/publish-trustee.sh against the KBS test double (`kbs-double`
//! of pp-testdoubles, which checks the admin JWT and the shapes of the RVPS
//! message and both policy bodies, and here requires an admin token issuer
//! and audience, as Trustee deployments do). Ignored by a plain `cargo test`: it
//! needs the double's binary in `PP_MEASURE_KBS_DOUBLE` and openssl;
//! `scripts/measure-test.sh` builds and passes it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pp_measure::fixtures::firmware::FirmwareBuilder;
use pp_measure::fixtures::pe::pe_image;

struct KbsDouble {
    child: Child,
    url: String,
}

impl Drop for KbsDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The identity provider the double is configured with, as Trustee
/// deployments name one: tokens need this `iss` and `aud`.
const IDENTITY: [&str; 4] = ["--issuer", "pp-publish", "--audience", "trustee"];

fn start_kbs_double(public_key: &Path) -> KbsDouble {
    let binary = std::env::var("PP_MEASURE_KBS_DOUBLE")
        .expect("PP_MEASURE_KBS_DOUBLE is not set: run scripts/measure-test.sh");
    let mut child = Command::new(binary)
        .args([
            "--admin-public-key",
            public_key.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-issuer",
            IDENTITY[1],
            "--admin-audience",
            IDENTITY[3],
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    // Keep draining its request log so its writes never hit a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = first_line
        .trim()
        .strip_prefix("kbs-double listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from kbs-double: {first_line:?}"))
        .to_string();
    KbsDouble {
        child,
        url: format!("http://{address}"),
    }
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .status()
        .expect("openssl is needed");
    assert!(status.success(), "openssl {args:?}");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn measured_image(dir: &Path) -> PathBuf {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let firmware = write(
        "OVMF.fd",
        &FirmwareBuilder::snp_with_kernel_hashes().build(),
    );
    let kernel = write("vmlinuz", &pe_image(&[(".text", b"kernel")]));
    let init_data = write(
        "initdata.toml",
        b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n",
    );
    let out = dir.join("measured");
    let output = Command::new(env!("CARGO_BIN_EXE_pp-measure"))
        .args([
            "image",
            "--kernel",
            &kernel,
            "--cmdline",
            "console=hvc0",
            "--snp-firmware",
            &firmware,
        ])
        .args([
            "--snp-vcpus",
            "1xEPYC-Milan",
            "--init-data",
            &init_data,
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn publish(
    kbs: &KbsDouble,
    key: &Path,
    measured: &Path,
    identity: &[&str],
) -> std::process::Output {
    Command::new(repo_root().join("scripts/publish-trustee.sh"))
        .args([
            "--kbs",
            &kbs.url,
            "--admin-key",
            key.to_str().unwrap(),
            "--dir",
            measured.to_str().unwrap(),
        ])
        .args(identity)
        .args(["--pp-measure", env!("CARGO_BIN_EXE_pp-measure")])
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs the kbs-double binary: run scripts/measure-test.sh"]
fn the_publish_script_loads_values_and_policies_and_they_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("admin.pem");
    let public_key = dir.path().join("admin.pub.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public_key.to_str().unwrap(),
    ]);
    let measured = measured_image(dir.path());
    let kbs = start_kbs_double(&public_key);

    let output = publish(&kbs, &key, &measured, &IDENTITY);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for endpoint in ["reference-value", "attestation-policy", "resource-policy"] {
        assert!(
            stdout.contains(&format!("POST /kbs/v0/{endpoint}")),
            "{stdout}"
        );
    }

    let token = Command::new(env!("CARGO_BIN_EXE_pp-measure"))
        .args(["admin-token", "--key", key.to_str().unwrap()])
        .args(IDENTITY)
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap();
    let stored = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
        ])
        .arg(format!(
            "{}/kbs/v0/reference-value/snp_launch_measurement",
            kbs.url
        ))
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&stored.stdout);
    let values: serde_json::Value =
        serde_json::from_slice(&std::fs::read(measured.join("reference-values.json")).unwrap())
            .unwrap();
    let measurement = values["snp"][0]["launch_measurement"].as_str().unwrap();
    assert!(
        stored.contains(measurement),
        "stored {stored}, expected {measurement}"
    );
}

#[test]
#[ignore = "needs the kbs-double binary: run scripts/measure-test.sh"]
fn the_publish_script_fails_with_a_hint_for_an_untrusted_key_or_a_token_without_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted.pem");
    let trusted_public = dir.path().join("trusted.pub.pem");
    let other = dir.path().join("other.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        trusted.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        trusted.to_str().unwrap(),
        "-pubout",
        "-out",
        trusted_public.to_str().unwrap(),
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        other.to_str().unwrap(),
    ]);
    let measured = measured_image(dir.path());
    let kbs = start_kbs_double(&trusted_public);

    // A key Trustee does not know and a token without iss/aud get the same
    // answer from Trustee; both must fail with the hint.
    for (key, identity) in [(&other, &IDENTITY[..]), (&trusted, &[][..])] {
        let output = publish(&kbs, key, &measured, identity);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("POST /kbs/v0/reference-value -> HTTP 401")
                && stderr.contains("Cannot verify token with any of the issuers")
                && stderr.contains("--issuer and --audience"),
            "{stderr}"
        );
    }
}
