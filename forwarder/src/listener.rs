//! The SSH listener: accepts TCP connections and enforces the pre-auth
//! limits (like OpenSSH's MaxStartups and LoginGraceTime).
//!
//! Unlike the old Go forwarder, a connection over the limit is closed at
//! once with a log line, never left waiting in the accept queue, and every
//! connection is served concurrently, so one silent client blocks nobody.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};
use tokio::net::TcpListener;

use crate::controller::Controller;
use crate::session;

/// Counts connections that have not authenticated yet.
struct PreauthSlot(Rc<Cell<usize>>);

impl PreauthSlot {
    fn take(count: &Rc<Cell<usize>>, max: usize) -> Option<Self> {
        (count.get() < max).then(|| {
            count.set(count.get() + 1);
            Self(count.clone())
        })
    }
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

pub async fn accept_loop(
    listener: TcpListener,
    ctrl: Rc<Controller>,
    max_startups: usize,
    login_grace: Duration,
) {
    let unauthenticated = Rc::new(Cell::new(0usize));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = ctrl.new_connection();
        let Some(slot) = PreauthSlot::take(&unauthenticated, max_startups) else {
            warn!(
                "conn {conn} from {peer}: refused: {max_startups} unauthenticated connections \
                 already (max-startups)"
            );
            continue;
        };
        info!(
            "conn {conn} from {peer}: accepted, phase {}",
            ctrl.phase_name()
        );
        let ctrl = ctrl.clone();
        tokio::task::spawn_local(async move {
            // The slot is given back when the connection is admitted, or
            // when it ends without being admitted.
            let reason = session::serve(stream, peer, conn, ctrl.clone(), login_grace, move || {
                drop(slot)
            })
            .await;
            session::log_end(conn, peer, &reason);
            ctrl.connection_closed(conn);
        });
    }
}
