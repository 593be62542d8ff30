//! One line per log record on stderr (journald adds time and unit).
//!
//! The forwarder's own records pass at the configured level; the SSH
//! library's only from `error` up unless the level is `debug` or finer, so
//! the log stays a list of decisions.

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let ours = metadata.target().starts_with("pp_");
        let limit = if ours || self.level >= LevelFilter::Debug {
            self.level
        } else {
            LevelFilter::Error.min(self.level)
        };
        metadata.level() <= limit
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{:<5} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls are ignored.
pub fn init(level: LevelFilter) {
    let logger = Box::leak(Box::new(StderrLogger { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
