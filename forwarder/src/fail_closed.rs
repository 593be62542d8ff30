//! Failing closed: what the forwarder does when the attestation deadline
//! passes or the phase record says the PP is unusable.
//!
//! `poweroff` powers the VM off: with reboot(2) when the forwarder is PID 1
//! (the appliance's init), else by asking systemd. If both fail the process
//! exits anyway, so nothing keeps serving. `exit` ends the process with
//! status 3 (tests and supervised set-ups).

use std::os::unix::process::ExitStatusExt;

use log::error;

use crate::settings::FailAction;

/// The signal systemd's shutdown sends to every remaining process.
const SIGTERM: i32 = 15;

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
    if rustix::process::getpid().is_init() {
        rustix::fs::sync();
        if let Err(e) = rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
            error!("reboot(2) power-off failed: {e}");
        }
        return;
    }
    match std::process::Command::new("systemctl")
        .arg("poweroff")
        .status()
    {
        Ok(status) if status.success() => {}
        // The shutdown it started ends every process, systemctl included.
        Ok(status) if status.signal() == Some(SIGTERM) => {}
        Ok(status) => error!("systemctl poweroff failed with {status}"),
        Err(e) => error!("cannot run systemctl poweroff: {e}"),
    }
}
