//! The SSH listener: accepts TCP connections and carries out the pre-auth
//! admission of `preauth` (who may start a handshake at all). A refused
//! connection is closed right after `accept`, before any SSH byte (no
//! banner, no key exchange), and never reaches the controller; refusals
//! are logged at most once per reason per interval, with a count.
//!
//! Every admitted connection is served concurrently; its slot is given
//! back when it authenticates, or when it ends without authenticating
//! (which counts against its source).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{info, warn};
use tokio::net::TcpListener;

use crate::controller::Controller;
use crate::preauth::{Admission, RefusalLog, Ticket};
use crate::session::{self, Graces};

/// How often refusals are summed up in the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The admission slot of one connection; given back on drop.
struct PreauthSlot {
    admission: Rc<RefCell<Admission>>,
    clock: Instant,
    ticket: Option<Ticket>,
}

impl PreauthSlot {
    fn authenticated(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.admission
                .borrow_mut()
                .authenticated(ticket, self.clock.elapsed());
        }
    }
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.admission
                .borrow_mut()
                .ended_unauthenticated(ticket, self.clock.elapsed());
        }
    }
}

pub async fn accept_loop(
    listener: TcpListener,
    ctrl: Rc<Controller>,
    admission: Admission,
    graces: Graces,
) {
    let admission = Rc::new(RefCell::new(admission));
    let clock = Instant::now();
    let mut refusals = RefusalLog::new(REFUSAL_LOG_INTERVAL);
    let mut summaries = tokio::time::interval(REFUSAL_LOG_INTERVAL);
    summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = summaries.tick() => {
                for line in refusals.due(clock.elapsed()) {
                    warn!("{line}");
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = clock.elapsed();
        let verdict = admission.borrow_mut().admit(peer.ip(), now);
        let ticket = match verdict {
            Ok(ticket) => ticket,
            Err(refusal) => {
                if let Some(line) = refusals.refused(refusal, peer.ip(), now) {
                    warn!("{line}");
                }
                drop(stream);
                continue;
            }
        };
        let slot = PreauthSlot {
            admission: admission.clone(),
            clock,
            ticket: Some(ticket),
        };
        let conn = ctrl.new_connection();
        info!(
            "conn {conn} from {peer}: accepted, phase {}",
            ctrl.phase_name()
        );
        let ctrl = ctrl.clone();
        tokio::task::spawn_local(async move {
            let reason = session::serve(stream, peer, conn, ctrl.clone(), graces, move || {
                slot.authenticated()
            })
            .await;
            session::log_end(conn, peer, &reason);
            ctrl.connection_closed(conn);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preauth::Limits;
    use crate::settings::{FailAction, Settings};
    use crate::store::Store;
    use pp_forwarder_core::config::ForwarderConfig;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    /// Waits (generously) until the controller holds `n` connections.
    async fn until_connections(ctrl: &Controller, n: usize) {
        for _ in 0..6000 {
            if ctrl.connection_count() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ctrl.connection_count(), n);
    }

    #[tokio::test]
    async fn refused_connections_leave_nothing_in_the_controller() {
        // A tmpfs, as the store requires.
        let dir = std::path::Path::new("/dev/shm")
            .join(format!("ppf-listener-test-{}", std::process::id()));
        let settings = Settings {
            state_dir: dir.clone(),
            deadline_action: FailAction::Exit,
            ..Settings::default()
        };
        let store = Store::open(&dir).unwrap();
        let loaded = store.load();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let ctrl =
                    Controller::start(settings, ForwarderConfig::default(), store, loaded, 0)
                        .unwrap();
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let limits = Limits {
                    max_startups: 1,
                    reserved: 0,
                    per_source: 1,
                    penalty_max: Duration::from_secs(1),
                    max_sources: 8,
                    ipv4_prefix: 32,
                    ipv6_prefix: 64,
                };
                let graces = Graces {
                    handshake: Duration::from_secs(600),
                    login: Duration::from_secs(600),
                };
                let admission = Admission::new(limits, Vec::new(), false);
                let server = tokio::task::spawn_local(accept_loop(
                    listener,
                    ctrl.clone(),
                    admission,
                    graces,
                ));
                let held = TcpStream::connect(addr).await.unwrap();
                until_connections(&ctrl, 1).await;
                for _ in 0..500 {
                    let mut refused = TcpStream::connect(addr).await.unwrap();
                    let mut sink = Vec::new();
                    // Closed at accept: end of stream, without an SSH banner.
                    refused.read_to_end(&mut sink).await.unwrap();
                    assert!(sink.is_empty(), "{sink:?}");
                }
                assert_eq!(ctrl.connection_count(), 1, "only the admitted one");
                drop(held);
                until_connections(&ctrl, 0).await;
                server.abort();
            })
            .await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
