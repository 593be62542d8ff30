//! The service supervisor, without IO: which service to start when, and
//! when the pod must power off. The driver (`run.rs`) feeds it process
//! starts and exits with the time since boot and carries out its actions.
//!
//! Rules:
//! - Services start one after another in the configured order. A `once`
//!   service must exit with status 0 before the next one starts; any other
//!   end (a status, a signal, a failed start) powers the pod off.
//! - A `daemon` starts and the next service follows at once. When it ends
//!   it starts again after its restart delay; if it ends
//!   [`RESTART_LIMIT_BURST`] times within [`RESTART_LIMIT_INTERVAL`], the
//!   pod powers off instead (a service that cannot stay up means a pod that
//!   cannot work).
//! - A service with a readiness condition ([`Service::after_ready`]) starts
//!   only once its endpoint (a unix socket or TCP port of an earlier
//!   service) has accepted a connection; the start order waits for it, and
//!   so do the services after it. The driver probes the endpoint that
//!   [`awaiting`](Supervisor::awaiting) names and reports success with
//!   [`endpoint_ready`](Supervisor::endpoint_ready). If the endpoint is not
//!   ready within the condition's time, counted from when the service was
//!   next in order, the pod powers off with a reason naming the endpoint.
//!   The condition gates the first start only: restarts follow the rules
//!   above.
//! - Exits of processes it did not start (orphans re-parented to PID 1) are
//!   ignored.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    pub start: Start,
    /// Start only when this endpoint accepts connections.
    pub after_ready: Option<Readiness>,
}

/// "Start when `endpoint` accepts a connection; power off if it does not
/// within `within`."
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub endpoint: Endpoint,
    pub within: Duration,
}

/// Something a service listens on.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix socket {}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "TCP port {addr}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    Once,
    Daemon { restart_delay: Duration },
}

/// How a process ended (or why it never ran).
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Status(i32),
    Signal(String),
    NotStarted(String),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Status(code) => write!(f, "exited with status {code}"),
            Ending::Signal(signal) => write!(f, "was killed by {signal}"),
            Ending::NotStarted(reason) => write!(f, "could not start: {reason}"),
        }
    }
}

/// The pod must power off; the reason is for the console.
#[derive(Debug, PartialEq)]
pub struct PowerOff(pub String);

pub const RESTART_LIMIT_BURST: usize = 5;
pub const RESTART_LIMIT_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    pid: Option<i32>,
    restart_at: Option<Duration>,
    /// Times of the latest ends, at most RESTART_LIMIT_BURST of them.
    ends: VecDeque<Duration>,
}

pub struct Supervisor {
    services: Vec<Service>,
    states: Vec<State>,
    /// Index of the next service in the start order.
    next: usize,
    /// The `once` service the start order waits for.
    waiting_for: Option<usize>,
    /// The readiness wait of the service at `next`, once it began.
    readiness: Option<ReadinessWait>,
    powering_off: bool,
}

#[derive(Clone, Copy)]
struct ReadinessWait {
    deadline: Duration,
    ready: bool,
}

impl Supervisor {
    pub fn new(services: Vec<Service>) -> Self {
        let states = services.iter().map(|_| State::default()).collect();
        Supervisor {
            services,
            states,
            next: 0,
            waiting_for: None,
            readiness: None,
            powering_off: false,
        }
    }

    pub fn service(&self, index: usize) -> &Service {
        &self.services[index]
    }

    /// The services to start at `now` (indices; report each with
    /// [`started`](Self::started) or [`start_failed`](Self::start_failed)):
    /// restarts whose delay has passed, and the next services in order up to
    /// the first `once` one or the first whose endpoint is not ready yet.
    /// Fails when that endpoint's time is up.
    pub fn poll(&mut self, now: Duration) -> Result<Vec<usize>, PowerOff> {
        let mut due = Vec::new();
        if self.powering_off {
            return Ok(due);
        }
        for (index, state) in self.states.iter_mut().enumerate() {
            if state.restart_at.is_some_and(|at| at <= now) {
                state.restart_at = None;
                due.push(index);
            }
        }
        while self.waiting_for.is_none() && self.next < self.services.len() {
            let index = self.next;
            if let Some(readiness) = &self.services[index].after_ready {
                let wait = *self.readiness.get_or_insert(ReadinessWait {
                    deadline: now.saturating_add(readiness.within),
                    ready: false,
                });
                if !wait.ready {
                    if now < wait.deadline {
                        break;
                    }
                    self.powering_off = true;
                    return Err(PowerOff(format!(
                        "{} was not started: {} did not accept a connection within {} ms",
                        self.services[index].name,
                        readiness.endpoint,
                        readiness.within.as_millis()
                    )));
                }
            }
            self.readiness = None;
            self.next += 1;
            if self.services[index].start == Start::Once {
                self.waiting_for = Some(index);
            }
            due.push(index);
        }
        Ok(due)
    }

    /// The endpoint the start order waits for, while it is not ready: the
    /// driver probes it and calls [`endpoint_ready`](Self::endpoint_ready)
    /// once it accepts a connection.
    pub fn awaiting(&self) -> Option<&Endpoint> {
        self.readiness.filter(|wait| !wait.ready)?;
        self.services
            .get(self.next)?
            .after_ready
            .as_ref()
            .map(|readiness| &readiness.endpoint)
    }

    /// The endpoint [`awaiting`](Self::awaiting) named accepted a
    /// connection: the next [`poll`](Self::poll) starts its service.
    pub fn endpoint_ready(&mut self) {
        if let Some(wait) = &mut self.readiness {
            wait.ready = true;
        }
    }

    /// When [`poll`](Self::poll) next has something to do, if ever (a
    /// readiness deadline counts; probing more often is the driver's job).
    pub fn next_wakeup(&self) -> Option<Duration> {
        let deadline = self
            .readiness
            .filter(|wait| !wait.ready)
            .map(|wait| wait.deadline);
        self.states
            .iter()
            .filter_map(|s| s.restart_at)
            .chain(deadline)
            .min()
    }

    /// The PIDs of the services running now.
    pub fn running(&self) -> impl Iterator<Item = i32> + '_ {
        self.states.iter().filter_map(|s| s.pid)
    }

    pub fn started(&mut self, index: usize, pid: i32) {
        self.states[index].pid = Some(pid);
    }

    /// Process `pid` ended (`ending`) at `now`. Returns the service's index
    /// (None for a process pp-init did not start) and whether the pod must
    /// power off.
    pub fn exited(
        &mut self,
        pid: i32,
        ending: Ending,
        now: Duration,
    ) -> (Option<usize>, Option<PowerOff>) {
        let Some(index) = self.states.iter().position(|s| s.pid == Some(pid)) else {
            return (None, None);
        };
        self.states[index].pid = None;
        (Some(index), self.ended(index, ending, now))
    }

    /// The service at `index` could not be started.
    pub fn start_failed(
        &mut self,
        index: usize,
        reason: String,
        now: Duration,
    ) -> Option<PowerOff> {
        self.ended(index, Ending::NotStarted(reason), now)
    }

    fn ended(&mut self, index: usize, ending: Ending, now: Duration) -> Option<PowerOff> {
        if self.powering_off {
            return None;
        }
        let name = &self.services[index].name;
        let power_off = match self.services[index].start {
            Start::Once if ending == Ending::Status(0) => {
                self.waiting_for = None;
                None
            }
            Start::Once => Some(format!("{name} {ending}")),
            Start::Daemon { restart_delay } => {
                let ends = &mut self.states[index].ends;
                ends.push_back(now);
                while ends.len() > RESTART_LIMIT_BURST {
                    ends.pop_front();
                }
                let too_often = ends.len() == RESTART_LIMIT_BURST
                    && ends
                        .front()
                        .is_some_and(|&first| now.saturating_sub(first) < RESTART_LIMIT_INTERVAL);
                if too_often {
                    Some(format!(
                        "{name} {ending}; it ended {RESTART_LIMIT_BURST} times within {} s",
                        RESTART_LIMIT_INTERVAL.as_secs()
                    ))
                } else {
                    self.states[index].restart_at = Some(now + restart_delay);
                    None
                }
            }
        };
        power_off.map(|reason| {
            self.powering_off = true;
            PowerOff(reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn service(name: &str, start: Start) -> Service {
        Service {
            name: name.into(),
            command: vec![format!("/bin/{name}")],
            start,
            after_ready: None,
        }
    }

    fn daemon(name: &str) -> Service {
        service(
            name,
            Start::Daemon {
                restart_delay: 100 * MS,
            },
        )
    }

    /// Starts every due service with pid = 100 + index.
    fn start_all(sup: &mut Supervisor, now: Duration) -> Vec<usize> {
        let due = sup.poll(now).expect("no readiness deadline passes here");
        for &index in &due {
            sup.started(index, 100 + index as i32);
        }
        due
    }

    #[test]
    fn services_start_in_order_and_wait_for_each_once_service() {
        let mut sup = Supervisor::new(vec![
            service("firewall", Start::Once),
            daemon("network"),
            service("provision", Start::Once),
            daemon("cdh"),
            daemon("forwarder"),
        ]);
        assert_eq!(start_all(&mut sup, Duration::ZERO), [0]);
        assert_eq!(
            start_all(&mut sup, 5 * MS),
            [],
            "nothing follows before firewall ends"
        );
        assert_eq!(sup.exited(100, Ending::Status(0), 10 * MS), (Some(0), None));
        assert_eq!(start_all(&mut sup, 10 * MS), [1, 2]);
        assert_eq!(sup.exited(102, Ending::Status(0), 20 * MS), (Some(2), None));
        assert_eq!(start_all(&mut sup, 20 * MS), [3, 4]);
        assert_eq!(start_all(&mut sup, 30 * MS), []);
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn a_once_service_that_fails_powers_off_and_nothing_else_starts() {
        for ending in [Ending::Status(1), Ending::Signal("SIGKILL".into())] {
            let mut sup =
                Supervisor::new(vec![service("provision", Start::Once), daemon("forwarder")]);
            start_all(&mut sup, Duration::ZERO);
            let (_, action) = sup.exited(100, ending.clone(), MS);
            assert_eq!(action, Some(PowerOff(format!("provision {ending}"))));
            assert_eq!(sup.poll(2 * MS), Ok(vec![]));
        }
        let mut sup = Supervisor::new(vec![service("provision", Start::Once)]);
        assert_eq!(sup.poll(Duration::ZERO), Ok(vec![0]));
        let action = sup.start_failed(0, "No such file or directory".into(), MS);
        assert_eq!(
            action,
            Some(PowerOff(
                "provision could not start: No such file or directory".into()
            ))
        );
    }

    #[test]
    fn a_daemon_restarts_after_its_delay() {
        let mut sup = Supervisor::new(vec![daemon("forwarder")]);
        start_all(&mut sup, Duration::ZERO);
        assert_eq!(
            sup.exited(100, Ending::Signal("SIGKILL".into()), 1000 * MS),
            (Some(0), None)
        );
        assert_eq!(sup.next_wakeup(), Some(1100 * MS));
        assert_eq!(start_all(&mut sup, 1099 * MS), []);
        assert_eq!(start_all(&mut sup, 1100 * MS), [0]);
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn a_daemon_ending_too_often_powers_off_but_spread_out_ends_do_not() {
        let mut sup = Supervisor::new(vec![daemon("forwarder")]);
        start_all(&mut sup, Duration::ZERO);
        // Ends every 10 s: never 5 within 30 s.
        for round in 1..=20u64 {
            let now = Duration::from_secs(10 * round);
            assert_eq!(
                sup.exited(100, Ending::Status(3), now),
                (Some(0), None),
                "round {round}"
            );
            assert_eq!(start_all(&mut sup, now + 100 * MS), [0]);
        }
        // Now 5 ends within a second.
        let base = Duration::from_secs(1000);
        for k in 0..4u32 {
            let now = base + k * 200 * MS;
            assert_eq!(sup.exited(100, Ending::Status(3), now).1, None);
            assert_eq!(start_all(&mut sup, now + 100 * MS), [0]);
        }
        let (_, action) = sup.exited(100, Ending::Status(3), base + 800 * MS);
        assert_eq!(
            action,
            Some(PowerOff(
                "forwarder exited with status 3; it ended 5 times within 30 s".into()
            ))
        );
        assert_eq!(
            sup.poll(base + 2000 * MS),
            Ok(vec![]),
            "no restart once powering off"
        );
    }

    fn after_ready(mut service: Service, socket: &str, within: Duration) -> Service {
        service.after_ready = Some(Readiness {
            endpoint: Endpoint::Unix(socket.into()),
            within,
        });
        service
    }

    #[test]
    fn a_service_waits_for_its_endpoint_and_so_do_the_services_after_it() {
        let aa_sock = "/run/aa.sock";
        let mut sup = Supervisor::new(vec![
            daemon("aa"),
            after_ready(daemon("cdh"), aa_sock, Duration::from_secs(60)),
            daemon("forwarder"),
        ]);
        assert_eq!(start_all(&mut sup, Duration::ZERO), [0]);
        assert_eq!(sup.awaiting(), Some(&Endpoint::Unix(aa_sock.into())));
        assert_eq!(sup.next_wakeup(), Some(Duration::from_secs(60)));
        // AA is slow: 20 s pass without its socket.
        assert_eq!(start_all(&mut sup, Duration::from_secs(20)), []);
        // AA crashes meanwhile and is restarted; the wait goes on.
        assert_eq!(
            sup.exited(100, Ending::Status(1), Duration::from_secs(21)),
            (Some(0), None)
        );
        assert_eq!(start_all(&mut sup, Duration::from_secs(22)), [0]);
        assert!(sup.awaiting().is_some());
        sup.endpoint_ready();
        assert_eq!(sup.awaiting(), None);
        assert_eq!(start_all(&mut sup, Duration::from_secs(30)), [1, 2]);
        assert_eq!(sup.awaiting(), None);
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn an_endpoint_not_ready_in_time_powers_off_naming_it_and_nothing_else_starts() {
        let mut sup = Supervisor::new(vec![
            daemon("aa"),
            after_ready(daemon("cdh"), "/run/aa.sock", 500 * MS),
            daemon("forwarder"),
        ]);
        assert_eq!(start_all(&mut sup, 100 * MS), [0]);
        assert_eq!(start_all(&mut sup, 599 * MS), []);
        assert_eq!(
            sup.poll(600 * MS),
            Err(PowerOff(
                "cdh was not started: unix socket /run/aa.sock did not accept a connection within 500 ms"
                    .into()
            ))
        );
        assert_eq!(sup.poll(700 * MS), Ok(vec![]), "powering off");
    }

    #[test]
    fn the_readiness_time_counts_from_when_the_service_is_next_in_order() {
        let mut sup = Supervisor::new(vec![
            service("provision", Start::Once),
            after_ready(daemon("cdh"), "/run/aa.sock", 500 * MS),
        ]);
        assert_eq!(start_all(&mut sup, Duration::ZERO), [0]);
        assert_eq!(sup.awaiting(), None, "the order waits for provision first");
        assert_eq!(
            sup.exited(100, Ending::Status(0), 10_000 * MS),
            (Some(0), None)
        );
        assert_eq!(start_all(&mut sup, 10_000 * MS), []);
        assert_eq!(start_all(&mut sup, 10_499 * MS), []);
        assert!(sup.poll(10_500 * MS).is_err());
    }

    #[test]
    fn a_restart_does_not_wait_for_readiness_again() {
        let mut sup = Supervisor::new(vec![after_ready(daemon("cdh"), "/run/aa.sock", 500 * MS)]);
        assert_eq!(start_all(&mut sup, Duration::ZERO), []);
        sup.endpoint_ready();
        assert_eq!(start_all(&mut sup, MS), [0]);
        assert_eq!(sup.exited(100, Ending::Status(1), 2 * MS), (Some(0), None));
        assert_eq!(start_all(&mut sup, 5000 * MS), [0]);
        assert_eq!(sup.awaiting(), None);
    }

    #[test]
    fn orphans_are_ignored() {
        let mut sup = Supervisor::new(vec![daemon("network")]);
        start_all(&mut sup, Duration::ZERO);
        assert_eq!(sup.exited(4242, Ending::Status(1), MS), (None, None));
        assert_eq!(sup.next_wakeup(), None);
    }
}
