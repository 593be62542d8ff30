//! Pre-auth admission: decides, for each new TCP connection, whether it may
//! start an SSH handshake at all, from its source address, the connections
//! already waiting to authenticate, and what each source did before.
//!
//! Pure: no sockets, no clock, no sleeps. The listener passes the time in
//! (`now`, any monotonic clock's reading as a `Duration`) and carries out
//! the verdict: a refused connection is closed right after `accept`,
//! before a byte of SSH (no banner, no key exchange).
//!
//! The rules, in order (docs/threat-model.md states what they guarantee):
//! 1. With `wn-source-networks-only`, a source outside the WN's networks
//!    is refused.
//! 2. A source (an IPv4 /32 or an IPv6 /64 by default) holds at most
//!    `per_source` unauthenticated connections.
//! 3. A source whose connections ended without authenticating is
//!    penalised: 1 s after the first, doubling with each more, at most
//!    `penalty_max`; a success forgives it. A penalised source is refused
//!    while the shared slots are at least half taken, so penalties bite
//!    under load only and an unlucky client of an idle pod never waits.
//! 4. Of the `max_startups` slots, `reserved` are only for *preferred*
//!    sources: those in `wn-source-networks`, and those that authenticated
//!    before in this run of the forwarder (the WN reconnecting). Preferred
//!    sources are never penalised, so nothing others do counts against
//!    them.
//!
//! Memory is bounded: the per-source table holds at most `max_sources`
//! entries and forgets the least recently seen idle one to make room.
//!
//! Better than OpenSSH's `MaxStartups` random early drop (which makes a
//! legitimate client lose the same lottery as the flood) and its
//! `PerSourcePenalties` (which also lock out an unlucky client on an idle
//! server): the forwarder knows which sources proved themselves and which
//! networks the WN uses, and keeps slots for them.

pub mod firewall;
mod refusal_log;
mod sources;

use std::net::IpAddr;
use std::time::Duration;

use pp_forwarder_core::config::{SourceNetwork, mask};

pub use refusal_log::RefusalLog;
use sources::Sources;

/// The numbers behind the rules (all from settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// All unauthenticated connections at once.
    pub max_startups: usize,
    /// Of those, the slots only preferred sources may take.
    pub reserved: usize,
    /// Unauthenticated connections of one source at once.
    pub per_source: usize,
    /// The longest penalty.
    pub penalty_max: Duration,
    /// Most sources remembered (penalties, proven sources).
    pub max_sources: usize,
    /// The prefix lengths that make one source.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

/// The first penalty; each further unauthenticated end doubles it.
pub const PENALTY_BASE: Duration = Duration::from_secs(1);

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotWnNetwork,
    PerSourceCap,
    Penalised,
    Full,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::NotWnNetwork,
        Refusal::PerSourceCap,
        Refusal::Penalised,
        Refusal::Full,
    ];

    /// What the log line says.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::NotWnNetwork => {
                "the source is not in wn-source-networks (wn-source-networks-only)"
            }
            Refusal::PerSourceCap => {
                "per-source cap: too many unauthenticated connections from this source \
                 (max-startups-per-source)"
            }
            Refusal::Penalised => {
                "penalty: earlier connections of this source ended without authenticating"
            }
            Refusal::Full => "all unauthenticated slots are taken (max-startups)",
        }
    }
}

/// The slot of one admitted connection; give it back with
/// [`Admission::authenticated`] or [`Admission::ended_unauthenticated`].
#[derive(Debug)]
pub struct Ticket {
    source: IpAddr,
    reserved: bool,
    listed: bool,
}

pub struct Admission {
    limits: Limits,
    wn_networks: Vec<SourceNetwork>,
    wn_networks_only: bool,
    sources: Sources,
    shared_open: usize,
    reserved_open: usize,
}

impl Admission {
    pub fn new(limits: Limits, wn_networks: Vec<SourceNetwork>, wn_networks_only: bool) -> Self {
        // Every source with an open slot must fit in the table.
        let max_sources = limits.max_sources.max(limits.max_startups + 1);
        Self {
            sources: Sources::new(max_sources),
            limits,
            wn_networks,
            wn_networks_only,
            shared_open: 0,
            reserved_open: 0,
        }
    }

    /// The verdict on a new connection from `ip`.
    pub fn admit(&mut self, ip: IpAddr, now: Duration) -> Result<Ticket, Refusal> {
        let ip = ip.to_canonical();
        let listed = self.wn_networks.iter().any(|n| n.contains(ip));
        if self.wn_networks_only && !listed {
            return Err(Refusal::NotWnNetwork);
        }
        let source = self.source_of(ip);
        let known = self.sources.get(&source);
        let preferred = listed || known.is_some_and(|s| s.proven);
        if known.is_some_and(|s| s.open >= self.limits.per_source) {
            return Err(Refusal::PerSourceCap);
        }
        let shared = self.limits.max_startups - self.limits.reserved.min(self.limits.max_startups);
        let under_pressure = self.shared_open * 2 >= shared;
        if !preferred && under_pressure && known.is_some_and(|s| s.penalised_until > now) {
            return Err(Refusal::Penalised);
        }
        let reserved = if preferred && self.reserved_open < self.limits.reserved {
            true
        } else if self.shared_open < shared {
            false
        } else {
            return Err(Refusal::Full);
        };
        let entry = self.sources.entry(source, now).ok_or(Refusal::Full)?;
        entry.open += 1;
        if reserved {
            self.reserved_open += 1;
        } else {
            self.shared_open += 1;
        }
        Ok(Ticket {
            source,
            reserved,
            listed,
        })
    }

    /// The connection authenticated: its slot is free, its source is
    /// forgiven and preferred from now on.
    pub fn authenticated(&mut self, ticket: Ticket, now: Duration) {
        if let Some(entry) = self.release(&ticket, now) {
            entry.proven = true;
            entry.strikes = 0;
            entry.penalised_until = Duration::ZERO;
        }
    }

    /// The connection ended before authenticating: its slot is free and
    /// its source (unless preferred) is penalised.
    pub fn ended_unauthenticated(&mut self, ticket: Ticket, now: Duration) {
        let max = self.limits.penalty_max;
        let listed = ticket.listed;
        if let Some(entry) = self.release(&ticket, now)
            && !listed
            && !entry.proven
        {
            entry.strikes = entry.strikes.saturating_add(1);
            let doublings = (entry.strikes - 1).min(20);
            let penalty = PENALTY_BASE.saturating_mul(1 << doublings).min(max);
            entry.penalised_until = entry.penalised_until.max(now + penalty);
        }
    }

    /// Unauthenticated connections now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.shared_open + self.reserved_open
    }

    fn release(&mut self, ticket: &Ticket, now: Duration) -> Option<&mut sources::Source> {
        if ticket.reserved {
            self.reserved_open = self.reserved_open.saturating_sub(1);
        } else {
            self.shared_open = self.shared_open.saturating_sub(1);
        }
        let entry = self.sources.get_mut(&ticket.source, now)?;
        entry.open = entry.open.saturating_sub(1);
        Some(entry)
    }

    /// The address block that counts as one source.
    fn source_of(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => mask(ip, self.limits.ipv4_prefix),
            IpAddr::V6(_) => mask(ip, self.limits.ipv6_prefix),
        }
    }
}

#[cfg(test)]
mod tests;
