//! The vTPM binding against a real TPM 2.0 implementation: swtpm (Debian's
//! `swtpm` package) serving raw TPM commands on a unix socket in its state
//! directory (not on TCP ports, which tests running in parallel could both
//! pick). Our hand-built TPM2_PCR_Extend must be accepted, and PCR 8's
//! SHA-256 bank must then read SHA-256(zeros || digest).

use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pp_initdata::{self as initdata, Algorithm};
use pp_provision::binding::tpm;

/// TPM2_PCR_Read of PCR 8, SHA-256 bank (no sessions): fixed bytes.
const PCR_READ_8_SHA256: [u8; 20] = [
    0x80, 0x01, 0x00, 0x00, 0x00, 0x14, // TPM_ST_NO_SESSIONS, size 20
    0x00, 0x00, 0x01, 0x7E, // TPM_CC_PCR_Read
    0x00, 0x00, 0x00, 0x01, // one selection
    0x00, 0x0B, 0x03, 0x00, 0x01, 0x00, // SHA-256, 3 bytes of bitmap, PCR 8
];

/// The swtpm process (killed on drop) and its state directory (kept until then).
struct Swtpm {
    process: Child,
    _state: tempfile::TempDir,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Start swtpm and connect to its command socket.
fn start_swtpm() -> (Swtpm, UnixStream) {
    let state = tempfile::tempdir().unwrap();
    let server = state.path().join("server.sock");
    let ctrl = state.path().join("ctrl.sock");
    let child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.path().display()))
        .arg("--server")
        .arg(format!("type=unixio,path={}", server.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", ctrl.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("this test needs swtpm: apt-get install -y swtpm");
    let swtpm = Swtpm {
        process: child,
        _state: state,
    };
    let started = Instant::now();
    loop {
        match UnixStream::connect(&server) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                return (swtpm, stream);
            }
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                panic!("swtpm did not listen: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)), // readiness poll, bounded above
        }
    }
}

#[test]
fn swtpm_accepts_our_pcr_extend_and_pcr8_holds_the_extended_digest() {
    let (_swtpm, mut tpm) = start_swtpm();
    let digest = initdata::digest(
        b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n",
        Algorithm::Sha256,
    );

    let command = tpm::extend_command(tpm::INITDATA_PCR, &digest).unwrap();
    let response = tpm::transact(&mut tpm, &command).unwrap();
    tpm::check_extend_response(&response).unwrap();

    let read = tpm::transact(&mut tpm, &PCR_READ_8_SHA256).unwrap();
    assert_eq!(&read[6..10], &[0, 0, 0, 0], "PCR_Read failed: {read:02x?}");
    let mut extended = vec![0u8; 32];
    extended.extend_from_slice(&digest);
    let expected = initdata::digest(&extended, Algorithm::Sha256);
    assert_eq!(&read[read.len() - 32..], expected.as_slice());
}

#[test]
fn swtpm_refuses_an_extend_of_a_pcr_that_does_not_exist_and_we_report_its_code() {
    let (_swtpm, mut tpm) = start_swtpm();
    let command = tpm::extend_command(99, &[0u8; 32]).unwrap();
    let response = tpm::transact(&mut tpm, &command).unwrap();
    let err = tpm::check_extend_response(&response).unwrap_err();
    assert!(
        matches!(err, tpm::TpmError::Failed(code) if code != 0),
        "{err}"
    );
}
