//! The worker-node side of a test: the KBS test double standing in for
//! Trustee, an admin key for it, and an adaptor (the library, in-process)
//! registered with it.

use std::path::PathBuf;
use std::time::Duration;

use pp_adaptor::adaptor::{Adaptor, PpHandle};
use pp_adaptor::admin_jwt::AdminClaims;
use pp_adaptor::config::{AdaptorConfig, PpConfig, Timing, parse_local_tunnels};
use pp_adaptor::egress_policy::EgressPolicy;
use pp_adaptor::keystore::KeyStoreConfig;
use pp_adaptor::pp_status::PpStatus;
use pp_adaptor::relay_check::RelayCheck;
use pp_adaptor::sid::Sid;
use pp_adaptor::upstream::TrusteeUrl;
use pp_ssh_key::PrivateKey;

use crate::pp::Pp;
use crate::process::Process;
use crate::{bin, free_port, scratch_dir};

pub struct World {
    pub dir: tempfile::TempDir,
    pub kbs: Process,
    pub kbs_port: u16,
    pub adaptor: Adaptor,
}

/// A fresh random Ed25519 key (tests only).
pub fn random_key() -> PrivateKey {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .expect("can read /dev/urandom");
    PrivateKey::from_seed(seed)
}

impl World {
    pub fn start() -> World {
        Self::start_with(|_| {})
    }

    /// Like `start`, after `prepare` got the chance to put keys into the
    /// adaptor's (still empty) key directory.
    pub fn start_with(prepare: impl FnOnce(&std::path::Path)) -> World {
        let dir = scratch_dir();
        let key_dir = dir.path().join("adaptor").join("keys");
        std::fs::create_dir_all(&key_dir).expect("create the key directory");
        std::fs::set_permissions(
            &key_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("restrict the key directory");
        prepare(&key_dir);
        let admin = random_key();
        let admin_private = dir.path().join("admin-key");
        let admin_public = dir.path().join("admin-key.pub");
        std::fs::write(&admin_private, admin.emit(7).as_bytes()).expect("write admin key");
        std::fs::set_permissions(
            &admin_private,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("the adaptor refuses an admin key others can read");
        std::fs::write(&admin_public, admin.public().emit(None)).expect("write admin public key");
        let kbs_port = free_port();
        let kbs = Process::spawn(
            &bin("kbs-double"),
            &[
                "--listen".into(),
                format!("127.0.0.1:{kbs_port}"),
                "--admin-public-key".into(),
                admin_public.display().to_string(),
            ],
        );
        kbs.wait_for("listening", Duration::from_secs(10));
        let adaptor = Self::adaptor(dir.path().join("adaptor"), &admin_private, kbs_port);
        World {
            dir,
            kbs,
            kbs_port,
            adaptor,
        }
    }

    /// An adaptor over the given directory (a restarted adaptor reuses it).
    pub fn adaptor(dir: PathBuf, admin_key: &std::path::Path, kbs_port: u16) -> Adaptor {
        Self::adaptor_with_egress(dir, admin_key, kbs_port, EgressPolicy::default())
    }

    /// Like `adaptor`, with an egress policy for the PPs' `EGRESS` tunnel.
    pub fn adaptor_with_egress(
        dir: PathBuf,
        admin_key: &std::path::Path,
        kbs_port: u16,
        egress: EgressPolicy,
    ) -> Adaptor {
        let timing = Timing {
            attestation_deadline: Duration::from_secs(120),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..Timing::default()
        };
        let config = AdaptorConfig {
            trustee_url: TrusteeUrl::parse(&format!("http://127.0.0.1:{kbs_port}"))
                .expect("valid URL"),
            trustee_ca: None,
            admin_key_path: admin_key.to_owned(),
            admin_claims: AdminClaims::default(),
            key_store: KeyStoreConfig::Directory(dir.join("keys")),
            state_dir: dir.join("state"),
            control_socket: dir.join("control.sock"),
            timing,
            egress,
            relay_check: RelayCheck::default(),
            pps: Vec::new(),
        };
        Adaptor::new(&config).expect("the adaptor starts")
    }

    /// The adaptor's WN private key, from its key directory (for a test
    /// client that stands in for the adaptor).
    pub fn wn_private_key(&self) -> PrivateKey {
        let key_file = self.dir.path().join("adaptor").join("keys").join("wn");
        std::fs::read_to_string(&key_file)
            .ok()
            .and_then(|text| PrivateKey::parse(&text).ok())
            .expect("the adaptor's WN key")
    }

    pub fn admin_key_path(&self) -> PathBuf {
        self.dir.path().join("admin-key")
    }

    /// Registers the PP's keys at the KBS double and starts serving it, with
    /// a local KATAAGENT listener on a free loopback port.
    pub async fn serve(&self, adaptor: &Adaptor, sid: &str, pp: &Pp) -> PpHandle {
        self.serve_tunnels(adaptor, sid, pp, &["KATAAGENT"]).await
    }

    /// Like `serve_tunnels`, and waits until the PP is in the Kubernetes
    /// phase.
    pub async fn serve_until_kubernetes(&self, sid: &str, pp: &Pp, names: &[&str]) -> PpHandle {
        let handle = self.serve_tunnels(&self.adaptor, sid, pp, names).await;
        until_kubernetes(handle).await
    }

    /// Registers the PP's keys, serves it with the local `tunnels` and the
    /// WN-side `targets` given as tags, and waits until the Kubernetes phase.
    pub async fn serve_tags_until_kubernetes<S: AsRef<str>, T: AsRef<str>>(
        &self,
        sid: &str,
        pp: &Pp,
        tunnels: &[S],
        targets: &[T],
    ) -> PpHandle {
        let sid = Sid::parse(sid).expect("valid sid");
        self.adaptor
            .create_pp(&sid)
            .await
            .expect("PP and WN keys registered");
        let config = PpConfig::new(sid, &pp.ssh_addr(), pp.options.wn_key.is_some())
            .with_tunnels(tunnels)
            .expect("valid tunnel tags")
            .with_targets(targets)
            .expect("valid target tags");
        let handle = self
            .adaptor
            .serve_pp(config)
            .await
            .expect("the PP is served");
        until_kubernetes(handle).await
    }

    /// Like `serve`, with a local listener for each named tunnel.
    pub async fn serve_tunnels(
        &self,
        adaptor: &Adaptor,
        sid: &str,
        pp: &Pp,
        names: &[&str],
    ) -> PpHandle {
        let sid = Sid::parse(sid).expect("valid sid");
        adaptor
            .create_pp(&sid)
            .await
            .expect("PP and WN keys registered");
        let mut config = PpConfig::new(sid, &pp.ssh_addr(), pp.options.wn_key.is_some());
        let tags: Vec<String> = names
            .iter()
            .map(|name| format!("KUBERNETES_PHASE:{name}:127.0.0.1:{}", free_port()))
            .collect();
        config.tunnels = parse_local_tunnels(&tags).expect("valid tags");
        adaptor.serve_pp(config).await.expect("the PP is served")
    }
}

/// Waits (at most 120 s) until the served PP is in the Kubernetes phase.
async fn until_kubernetes(handle: PpHandle) -> PpHandle {
    handle
        .wait_for(Duration::from_secs(120), |s| {
            matches!(s, PpStatus::Kubernetes { .. })
        })
        .await
        .expect("the Kubernetes phase");
    handle
}
