//! `Failed` sticks even when the state directory (a tmpfs) is full: the
//! forwarder records it with the spare record it wrote at start, and a
//! restart stays failed. Needs root to mount a small tmpfs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};

/// The forwarder's exit status when it fails closed with `--deadline-action exit`.
const FAIL_CLOSED: i32 = 3;

/// A 64 KiB tmpfs mounted on the PP's state directory; unmounted on drop.
struct SmallTmpfs(PathBuf);

impl SmallTmpfs {
    fn mount(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the state directory");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); run the tests as root"
        );
        Self(dir.to_owned())
    }

    /// Writes a file until the file system is full.
    fn fill(&self) {
        let mut file = File::create(self.0.join("filler")).expect("create the filler");
        let block = vec![0xa5u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn fails_closed_with(pp: &mut Pp, reason: &str) {
    let status = pp
        .forwarder_mut()
        .wait_exit(Duration::from_secs(30))
        .expect("the forwarder exits");
    assert_eq!(
        status.code(),
        Some(FAIL_CLOSED),
        "{}",
        pp.forwarder().output()
    );
    pp.forwarder().wait_for(reason, Duration::from_secs(10));
}

#[test]
fn a_full_state_directory_still_records_failed_and_a_restart_stays_failed() {
    let mut pp = Pp::start(PpOptions {
        attestation_deadline: "3s",
        ..PpOptions::default()
    });
    pp.wait_listening();
    pp.forwarder_mut().kill9();
    // The state directory becomes a small tmpfs; the restarted forwarder
    // writes its spare Failed record and the open record there.
    let tmpfs = SmallTmpfs::mount(&pp.state_dir());
    pp.start_forwarder();
    pp.wait_listening();
    tmpfs.fill();
    // The deadline passes with the tmpfs full: Failed goes in by the spare.
    fails_closed_with(&mut pp, "recording Failed with the spare record");
    // The restart finds Failed, disk still full, and after space is freed.
    pp.start_forwarder();
    fails_closed_with(&mut pp, "failed earlier in this boot");
    std::fs::remove_file(tmpfs.0.join("filler")).expect("free the space");
    pp.start_forwarder();
    fails_closed_with(&mut pp, "failed earlier in this boot");
}
