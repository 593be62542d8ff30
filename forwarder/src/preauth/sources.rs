//! The per-source table of pre-auth admission, bounded: at most `max`
//! entries; to make room it forgets the least recently seen source with no
//! open connection, one that never authenticated before any that did.
//! Forgetting a source forgets its penalty: an attacker with more source
//! blocks than the table holds can wash penalties out, which only costs
//! it the slots the shared pool would give it anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// What is known about one source block.
#[derive(Debug, Default)]
pub struct Source {
    /// Unauthenticated connections now.
    pub open: usize,
    /// Unauthenticated ends since the last success.
    pub strikes: u32,
    pub penalised_until: Duration,
    /// Authenticated at least once.
    pub proven: bool,
    last_seen: Duration,
}

pub struct Sources {
    entries: HashMap<IpAddr, Source>,
    max: usize,
}

impl Sources {
    pub fn new(max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max,
        }
    }

    pub fn get(&self, source: &IpAddr) -> Option<&Source> {
        self.entries.get(source)
    }

    pub fn get_mut(&mut self, source: &IpAddr, now: Duration) -> Option<&mut Source> {
        let entry = self.entries.get_mut(source)?;
        entry.last_seen = now;
        Some(entry)
    }

    /// The entry of `source`, made (room made first) if new. `None` only
    /// if every entry has an open connection, which the caller rules out
    /// by keeping `max` above the number of slots.
    pub fn entry(&mut self, source: IpAddr, now: Duration) -> Option<&mut Source> {
        if !self.entries.contains_key(&source) && self.entries.len() >= self.max {
            let victim = self
                .entries
                .iter()
                .filter(|(_, s)| s.open == 0)
                .min_by_key(|(_, s)| (s.proven, s.last_seen))
                .map(|(ip, _)| *ip)?;
            self.entries.remove(&victim);
        }
        let entry = self.entries.entry(source).or_default();
        entry.last_seen = now;
        Some(entry)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
