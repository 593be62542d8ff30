//! Failing closed: what the forwarder does when the attestation deadline
//! passes or the phase record says the PP is unusable.
//!
//! `poweroff` powers the VM off at once with reboot(2) (the pod's disk is
//! guest memory: there is nothing to shut down in order; needs
//! CAP_SYS_BOOT). If that fails the process exits anyway, so nothing keeps
//! serving. `exit` ends the process with status 3 (tests and supervised
//! set-ups).

use log::error;

use crate::settings::FailAction;

/// Exit status when the forwarder fails closed.
pub const FAIL_CLOSED_STATUS: i32 = 3;

pub fn fail_closed(action: FailAction, reason: &str) -> ! {
    error!("failing closed: {reason}");
    if action == FailAction::Poweroff {
        power_off();
    }
    std::process::exit(FAIL_CLOSED_STATUS);
}

/// Ends the process at once when continuing would be unsafe.
pub fn abort_process(reason: &str) -> ! {
    error!("stopping: {reason}");
    std::process::exit(FAIL_CLOSED_STATUS);
}

fn power_off() {
    rustix::fs::sync();
    if let Err(e) = rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
        error!("reboot(2) power-off failed: {e}");
    }
}
