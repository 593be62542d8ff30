//! Where pp-init's own messages go: the kernel console (`/dev/console`,
//! the serial port in a cloud) when it is PID 1, else standard error. Each
//! line carries the time since boot. Services get the same destination for
//! their standard output and error.

use std::fs::File;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

pub struct Console {
    file: Option<File>,
}

impl Console {
    /// The kernel console; standard error if it cannot be opened.
    pub fn kernel() -> Console {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/console")
            .ok();
        Console { file }
    }

    pub fn stderr() -> Console {
        Console { file: None }
    }

    pub fn line(&self, message: &str) {
        let now = since_boot();
        let text = format!(
            "pp-init: [{:4}.{:03}] {message}\n",
            now.as_secs(),
            now.subsec_millis()
        );
        // Nothing to do if the console itself fails.
        let _ = match &self.file {
            Some(file) => (&*file).write_all(text.as_bytes()),
            None => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }

    /// A handle for a service's standard output or error.
    pub fn stdio(&self) -> Stdio {
        match self.file.as_ref().map(File::try_clone) {
            Some(Ok(file)) => Stdio::from(file),
            _ => Stdio::inherit(),
        }
    }
}

/// Monotonic time since boot (CLOCK_MONOTONIC).
pub fn since_boot() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from)
}
