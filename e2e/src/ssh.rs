//! A bare SSH client for tests that need to act like an arbitrary (maybe
//! hostile) client rather than the adaptor: connect, note the host key,
//! try to authenticate, report what happened.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pp_ssh_key::{PrivateKey, PublicKey};
use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::net::TcpSocket;

/// Accepts any host key and remembers it.
pub struct AnyHostKey {
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key
            && let Some(ed) = key.key_data().ed25519()
        {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = PublicKey::from_bytes(ed.0).ok();
        }
        Ok(true)
    }
}

/// What one attempt got.
pub struct Attempt {
    pub authenticated: bool,
    pub host_key: Option<PublicKey>,
    /// The connection, kept open while the caller holds it.
    pub handle: Option<Handle<AnyHostKey>>,
}

/// Connects and authenticates with `key`, or with `none` when `key` is
/// `None`. Errors (refused TCP, dropped connection) count as not
/// authenticated.
pub async fn attempt(addr: &str, key: Option<&PrivateKey>, timeout: Duration) -> Attempt {
    attempt_from(None, addr, key, timeout).await
}

/// Like [`attempt`], from the local address `source` when given (e.g.
/// another address of 127.0.0.0/8).
pub async fn attempt_from(
    source: Option<IpAddr>,
    addr: &str,
    key: Option<&PrivateKey>,
    timeout: Duration,
) -> Attempt {
    let seen = Arc::new(Mutex::new(None));
    let run = async {
        let config = Arc::new(client::Config::default());
        let target: SocketAddr = addr.parse().ok()?;
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .ok()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0)).ok()?;
        }
        let stream = socket.connect(target).await.ok()?;
        let mut handle = client::connect_stream(config, stream, AnyHostKey { seen: seen.clone() })
            .await
            .ok()?;
        let result = match key {
            None => handle.authenticate_none("peerpod").await.ok()?,
            Some(key) => {
                let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(key.seed());
                let key =
                    PrivateKeyWithHashAlg::new(Arc::new(russh::keys::PrivateKey::from(pair)), None);
                handle.authenticate_publickey("peerpod", key).await.ok()?
            }
        };
        Some((matches!(result, AuthResult::Success), handle))
    };
    let outcome = tokio::time::timeout(timeout, run).await.ok().flatten();
    let host_key = *seen.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Some((authenticated, handle)) => Attempt {
            authenticated,
            host_key,
            handle: Some(handle),
        },
        None => Attempt {
            authenticated: false,
            host_key,
            handle: None,
        },
    }
}

/// Asks for `subsystem` on `channel` (want-reply); whether the PP agreed.
/// Panics when no answer comes within 30 s or the channel closes.
pub async fn request_subsystem(channel: &mut russh::Channel<client::Msg>, subsystem: &str) -> bool {
    channel
        .request_subsystem(true, subsystem)
        .await
        .expect("subsystem request");
    loop {
        match tokio::time::timeout(Duration::from_secs(30), channel.wait())
            .await
            .expect("an answer")
        {
            Some(russh::ChannelMsg::Success) => return true,
            Some(russh::ChannelMsg::Failure) => return false,
            Some(_) => continue,
            None => panic!("the channel closed"),
        }
    }
}
