//! Unit tests of pre-auth admission: many sources, penalties, the reserve,
//! the bounded table, the WN networks, and the refusal log.

use super::*;

fn limits() -> Limits {
    Limits {
        max_startups: 8,
        reserved: 2,
        per_source: 2,
        penalty_max: Duration::from_secs(8),
        max_sources: 16,
        ipv4_prefix: 32,
        ipv6_prefix: 64,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4((0x0a00_0000 + n).into())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One connection from `source` that authenticates.
fn log_in(a: &mut Admission, source: IpAddr) {
    let ticket = a.admit(source, secs(0)).unwrap();
    a.authenticated(ticket, secs(0));
}

fn admission() -> Admission {
    Admission::new(limits(), Vec::new(), false)
}

#[test]
fn each_source_gets_its_cap_and_all_share_the_unreserved_slots() {
    let mut a = admission();
    let mut tickets = Vec::new();
    for n in 0..3 {
        tickets.push(a.admit(v4(n), secs(0)).unwrap());
        tickets.push(a.admit(v4(n), secs(0)).unwrap());
        assert_eq!(a.admit(v4(n), secs(0)).unwrap_err(), Refusal::PerSourceCap);
    }
    // 6 shared slots (8 minus 2 reserved) are taken: a newcomer is refused.
    assert_eq!(a.open(), 6);
    assert_eq!(a.admit(v4(99), secs(0)).unwrap_err(), Refusal::Full);
    // A slot given back is a slot for the next one.
    a.ended_unauthenticated(tickets.pop().unwrap(), secs(1));
    assert!(a.admit(v4(99), secs(1)).is_ok());
}

#[test]
fn ipv6_sources_are_grouped_by_their_64_block() {
    let mut a = admission();
    let _one = a.admit(ip("2001:db8:0:1::1"), secs(0)).unwrap();
    let _two = a.admit(ip("2001:db8:0:1::ffff"), secs(0)).unwrap();
    assert_eq!(
        a.admit(ip("2001:db8:0:1:8000::1"), secs(0)).unwrap_err(),
        Refusal::PerSourceCap
    );
    assert!(a.admit(ip("2001:db8:0:2::1"), secs(0)).is_ok());
    // IPv4-mapped IPv6 is the IPv4 source.
    let _mapped = a.admit(ip("::ffff:10.0.0.5"), secs(0)).unwrap();
    let _plain = a.admit(v4(5), secs(0)).unwrap();
    assert_eq!(a.admit(v4(5), secs(0)).unwrap_err(), Refusal::PerSourceCap);
}

/// Fills the shared slots to half (the pressure mark) from other sources.
fn half_full(a: &mut Admission) -> Vec<Ticket> {
    (0..3)
        .map(|n| a.admit(v4(100 + n), secs(0)).unwrap())
        .collect()
}

#[test]
fn penalties_double_are_bounded_forgiven_and_bite_only_under_load() {
    let mut a = admission();
    let attacker = v4(1);
    let t = a.admit(attacker, secs(0)).unwrap();
    a.ended_unauthenticated(t, secs(10));
    // Idle pod: a penalised source still gets in.
    let t = a.admit(attacker, secs(10)).unwrap();
    let load = half_full(&mut a);
    // Second strike at 11 s: 2 s of penalty.
    a.ended_unauthenticated(t, secs(11));
    assert_eq!(a.admit(attacker, secs(12)).unwrap_err(), Refusal::Penalised);
    let t = a.admit(attacker, secs(13)).unwrap();
    // Third, fourth, fifth...: 4 s, 8 s, then never more than 8 s.
    let mut now = 13;
    let mut t = Some(t);
    for expected in [4, 8, 8, 8] {
        a.ended_unauthenticated(t.take().unwrap(), secs(now));
        assert_eq!(
            a.admit(attacker, secs(now + expected - 1)).unwrap_err(),
            Refusal::Penalised,
            "penalty {expected}s"
        );
        now += expected;
        t = Some(a.admit(attacker, secs(now)).unwrap());
    }
    // A success forgives everything.
    a.authenticated(t.take().unwrap(), secs(now));
    assert!(a.admit(attacker, secs(now)).is_ok());
    assert_eq!(load.len(), 3);
}

#[test]
fn sources_in_the_wn_networks_are_never_penalised_and_use_the_reserve() {
    let wn_net = SourceNetwork::parse("192.168.0.0/16").unwrap();
    let mut a = Admission::new(limits(), vec![wn_net], false);
    let wn = ip("192.168.7.7");
    let _load = half_full(&mut a);
    for now in 0..10 {
        let t = a.admit(wn, secs(now)).unwrap();
        a.ended_unauthenticated(t, secs(now));
    }
    assert!(a.admit(wn, secs(10)).is_ok(), "never penalised");
    // Fill every shared slot: the WN still has its reserve, strangers not.
    let _more: Vec<_> = (0..3)
        .map(|n| a.admit(v4(200 + n), secs(10)).unwrap())
        .collect();
    assert_eq!(a.admit(v4(300), secs(10)).unwrap_err(), Refusal::Full);
    assert!(a.admit(ip("192.168.9.9"), secs(10)).is_ok());
}

#[test]
fn only_mode_refuses_sources_outside_the_wn_networks() {
    let wn_net = SourceNetwork::parse("fd00:1::/48").unwrap();
    let mut a = Admission::new(limits(), vec![wn_net], true);
    assert_eq!(a.admit(v4(1), secs(0)).unwrap_err(), Refusal::NotWnNetwork);
    assert_eq!(
        a.admit(ip("fd00:1:2::1"), secs(0)).unwrap_err(),
        Refusal::NotWnNetwork
    );
    assert_eq!(
        a.admit(ip("fd00:1:0:2::1"), secs(0)).map(|t| t.reserved),
        Ok(true)
    );
    assert_eq!(a.open(), 1);
}

#[test]
fn a_source_that_authenticated_before_gets_the_reserve_and_no_penalty() {
    let mut a = admission();
    let wn = v4(42);
    log_in(&mut a, wn);
    // A flood from many sources takes every shared slot.
    let flood: Vec<_> = (0..6).map(|n| a.admit(v4(n), secs(1)).unwrap()).collect();
    assert_eq!(a.admit(v4(77), secs(1)).unwrap_err(), Refusal::Full);
    let reconnect = a.admit(wn, secs(1)).unwrap();
    a.ended_unauthenticated(reconnect, secs(1));
    assert!(a.admit(wn, secs(1)).is_ok(), "proven: not penalised");
    assert_eq!(flood.len(), 6);
}

#[test]
fn the_source_table_is_bounded_and_forgets_idle_strangers_first() {
    let mut a = admission();
    let wn = v4(5000);
    log_in(&mut a, wn);
    let held = a.admit(v4(1), secs(0)).unwrap();
    for n in 2..1000 {
        let t = a.admit(v4(n), secs(n.into())).unwrap();
        a.ended_unauthenticated(t, secs(n.into()));
    }
    assert_eq!(a.sources.len(), limits().max_sources);
    // The proven WN and the source with an open connection are kept.
    assert!(a.sources.get(&wn).is_some_and(|s| s.proven));
    assert!(a.sources.get(&v4(1)).is_some_and(|s| s.open == 1));
    a.ended_unauthenticated(held, secs(1000));
    assert!(a.sources.get(&v4(999)).is_some(), "the newest stays");
    assert!(a.sources.get(&v4(2)).is_none(), "the oldest went");
}

#[test]
fn a_table_smaller_than_the_slots_is_grown_to_fit_them() {
    let mut a = Admission::new(
        Limits {
            max_sources: 1,
            per_source: 1,
            ..limits()
        },
        Vec::new(),
        false,
    );
    let tickets: Vec<_> = (0..6).map(|n| a.admit(v4(n), secs(0)).unwrap()).collect();
    assert_eq!(tickets.len(), 6);
    assert_eq!(a.admit(v4(6), secs(0)).unwrap_err(), Refusal::Full);
}

#[test]
fn refusals_are_logged_once_then_counted_per_interval() {
    let mut log = RefusalLog::new(secs(10));
    let first = log.refused(Refusal::Full, v4(1), secs(0)).unwrap();
    assert!(
        first.contains("10.0.0.1") && first.contains("max-startups"),
        "{first}"
    );
    for n in 0..1234u32 {
        assert_eq!(log.refused(Refusal::Full, v4(n % 17), secs(1)), None);
    }
    assert!(log.refused(Refusal::Penalised, v4(1), secs(2)).is_some());
    assert!(log.due(secs(9)).is_empty());
    let lines = log.due(secs(10));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("refused 1234 more connections from 17 sources in the last 10s"),
        "{}",
        lines[0]
    );
    // The next interval counts again instead of logging a single line.
    assert_eq!(log.refused(Refusal::Full, v4(1), secs(11)), None);
    // Full counted one; Penalised had nothing more and goes quiet.
    let lines = log.due(secs(20));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("refused 1 more"), "{}", lines[0]);
    // After a quiet interval a refusal has its own line again.
    assert!(log.due(secs(30)).is_empty());
    assert!(log.refused(Refusal::Full, v4(1), secs(31)).is_some());
    assert!(log.refused(Refusal::Penalised, v4(1), secs(31)).is_some());
}
