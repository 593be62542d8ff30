//! `Failed` sticks even when the state directory (a tmpfs) is full: the
//! forwarder records it with the spare record it wrote at start, and a
//! restart stays failed. Needs root to mount a small tmpfs.

use pp_e2e::pp::{Pp, PpOptions};
use pp_test_support::tmpfs::SmallTmpfs;

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
    let tmpfs = SmallTmpfs::mount(&pp.state_dir(), "64k");
    pp.start_forwarder();
    pp.wait_listening();
    tmpfs.fill();
    // The deadline passes with the tmpfs full: Failed goes in by the spare.
    pp.wait_fail_closed("recording Failed with the spare record");
    // The restart finds Failed, disk still full, and after space is freed.
    pp.start_forwarder();
    pp.wait_fail_closed("failed earlier in this boot");
    std::fs::remove_file(tmpfs.filler()).expect("free the space");
    pp.start_forwarder();
    pp.wait_fail_closed("failed earlier in this boot");
}
