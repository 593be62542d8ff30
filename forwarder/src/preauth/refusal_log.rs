//! Log lines for connections refused at accept, at most one per reason per
//! interval: the first refusal after a quiet interval gets its own line
//! (with the source), the rest are counted and summed up when the interval
//! ends ("refused 1234 connections from 17 sources in the last 10s: ...").
//! Under a flood the log grows by a line per reason per interval, never by
//! a line per connection.
//!
//! Pure: the caller passes the time and writes the lines; it calls
//! [`RefusalLog::due`] at least once per interval.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use super::Refusal;

/// Distinct sources counted per interval; more are reported as "at least".
const MAX_COUNTED_SOURCES: usize = 1024;

struct Window {
    started: Duration,
    count: u64,
    sources: HashSet<IpAddr>,
}

pub struct RefusalLog {
    interval: Duration,
    windows: [Option<Window>; Refusal::ALL.len()],
}

impl RefusalLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: Default::default(),
        }
    }

    /// Notes one refusal; returns the line to write now, if any.
    pub fn refused(&mut self, reason: Refusal, source: IpAddr, now: Duration) -> Option<String> {
        let window = &mut self.windows[reason as usize];
        match window {
            Some(w) => {
                w.count += 1;
                if w.sources.len() < MAX_COUNTED_SOURCES {
                    w.sources.insert(source);
                }
                None
            }
            None => {
                *window = Some(Window {
                    started: now,
                    count: 0,
                    sources: HashSet::new(),
                });
                Some(format!(
                    "refused a connection from {source}: {}",
                    reason.describe()
                ))
            }
        }
    }

    /// The summary lines of the intervals that ended by `now`.
    pub fn due(&mut self, now: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        for (reason, window) in Refusal::ALL.iter().zip(&mut self.windows) {
            let Some(w) = window else { continue };
            if now.saturating_sub(w.started) < self.interval {
                continue;
            }
            if w.count == 0 {
                // Quiet: the next refusal gets a line of its own again.
                *window = None;
                continue;
            }
            let at_least = if w.sources.len() >= MAX_COUNTED_SOURCES {
                "at least "
            } else {
                ""
            };
            lines.push(format!(
                "refused {} more connections from {at_least}{} sources in the last {:?}: {}",
                w.count,
                w.sources.len(),
                now.saturating_sub(w.started),
                reason.describe()
            ));
            *w = Window {
                started: now,
                count: 0,
                sources: HashSet::new(),
            };
        }
        lines
    }
}
