//! The adaptor's configuration: the TOML file `serve --config FILE` reads,
//! and the typed values the library takes (tests build those directly).
//!
//! Contract: [`AdaptorConfig::from_toml`] either returns a configuration in
//! which every field is valid (Trustee URL, SIDs, tunnel tags, addresses,
//! distinct SIDs and tunnel names) or an error naming the file, the field
//! and the expected form. Unknown fields are errors (typos must not be
//! silently ignored). Relative paths are relative to the file's folder.
//!
//! ```toml
//! trustee_url = "http://127.0.0.1:8080"   # or https://HOST[:PORT]
//! trustee_ca = "trustee-ca.pem"    # optional, https only: the CA(s) that
//!                                  # signed Trustee's certificate (default:
//!                                  # the host's CA store)
//! admin_key = "admin.pem"          # PKCS#8 PEM or OpenSSH Ed25519
//! key_dir = "keys"                 # the key store: a local directory, or
//!                                  # [kubernetes_secrets] below (docs/keys.md)
//! state_dir = "state"
//! control_socket = "/run/pp-adaptor/control.sock"   # the default
//! relay_check = "host-key-and-peer"  # default; "host-key-only" behind a NAT
//!                                  # (per [[pp]] too; docs/threat-model.md)
//!
//! # [kubernetes_secrets]           # instead of key_dir: Secrets in one
//! # namespace = "peerpod"          # namespace (in-cluster service account,
//! # kubeconfig = "/path"           # or this kubeconfig)
//!
//! [admin_token]                    # optional
//! role = "admin"
//! issuer = "pp-adaptor"            # = `issuer` and `audience` of Trustee's
//! audience = "trustee"             # [admin.authentication.bearer_jwt]
//! lifetime_secs = 300              # identity_providers entry for the key
//!
//! [timing]                         # optional, seconds
//! attestation_deadline_secs = 600
//! udp_idle_secs = 60               # a UDP tunnel's flow idle timeout
//!
//! [egress]                         # optional: the PPs' EGRESS tunnel (image pulls)
//! allow = ["registry-1.docker.io:443", "*.quay.io:443"]
//! deny_networks = ["10.96.0.0/12"] # also refused: the cluster's ranges
//! permit_networks = []             # reached although private (a mirror)
//!
//! [[pp]]
//! sid = "0123abcd"
//! forwarder = "192.0.2.7:2222"     # port 2222 when omitted
//! init_data_has_wn_key = true
//! tunnels = ["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150"]
//! targets = ["KUBERNETES_PHASE:DNS:udp:10.96.0.10:53"]  # WN-side ends of
//!                                  # the PP's inbound tunnels (KBS, EGRESS
//!                                  # are the adaptor's own)
//! ```

use crate::admin_jwt::AdminClaims;
use crate::egress_policy::{AllowPattern, EgressPolicy};
use crate::keystore::KeyStoreConfig;
use crate::keystore::kubernetes::SecretsConfig;
use crate::relay_check::RelayCheck;
use crate::sid::Sid;
use crate::ssh_connect::SshSettings;
use crate::upstream::TrusteeUrl;
use pp_ipnet::SourceNetwork;
use pp_tag::{Direction, Tag, Target, TunnelSet};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `serve` listens for the control API unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/pp-adaptor/control.sock";

/// The forwarder's port when the address names none.
pub const DEFAULT_FORWARDER_PORT: u16 = 2222;

/// Everything one adaptor process needs.
#[derive(Clone, Debug)]
pub struct AdaptorConfig {
    pub trustee_url: TrusteeUrl,
    /// PEM CA certificates an https Trustee's certificate must chain to;
    /// None: the host's CA store.
    pub trustee_ca: Option<PathBuf>,
    pub admin_key_path: PathBuf,
    pub admin_claims: AdminClaims,
    pub key_store: KeyStoreConfig,
    pub state_dir: PathBuf,
    /// The control API's unix socket (`serve --socket` overrides it).
    pub control_socket: PathBuf,
    pub timing: Timing,
    /// Where the PPs' `EGRESS` tunnel may lead (default: nowhere).
    pub egress: EgressPolicy,
    /// The relay check of PPs that do not set their own.
    pub relay_check: RelayCheck,
    pub pps: Vec<PpConfig>,
}

/// Deadlines, keepalives and backoff.
#[derive(Clone, Debug)]
pub struct Timing {
    /// The Kubernetes phase must be reached within this time of starting to
    /// serve a PP (that has not upgraded yet), else the PP is failed.
    pub attestation_deadline: Duration,
    pub ssh: SshSettings,
    /// First reconnect delay; doubled after each failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a connection to a local tunnel listener waits for a phase in
    /// which its tunnel is allowed.
    pub tunnel_wait: Duration,
    /// How long after `UPGRADE` the attestation connection is kept for
    /// in-flight KBS streams before the Kubernetes-phase reconnect.
    pub upgrade_grace: Duration,
    /// How long the PP may take to answer `INFO_REQUEST`.
    pub info_timeout: Duration,
    /// A datagram flow (UDP tunnel) that carried nothing either way for
    /// this long is reset.
    pub udp_idle: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            attestation_deadline: Duration::from_secs(600),
            ssh: SshSettings::default(),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            tunnel_wait: Duration::from_secs(60),
            upgrade_grace: Duration::from_secs(2),
            info_timeout: Duration::from_secs(10),
            udp_idle: Duration::from_secs(60),
        }
    }
}

/// One PP the adaptor serves.
#[derive(Clone, Debug)]
pub struct PpConfig {
    pub sid: Sid,
    /// `HOST:PORT` of the PP's forwarder.
    pub forwarder: String,
    /// Whether the PP's init-data carries the WN public key (then the
    /// attestation connection authenticates with it, else with `none`).
    pub init_data_has_wn_key: bool,
    /// Local listeners on the WN whose connections become streams to the PP.
    pub tunnels: TunnelSet,
    /// Where the PP's own inbound tunnels lead on the WN side (outbound
    /// tags, e.g. `KUBERNETES_PHASE:DNS:udp:10.96.0.10:53`); `KBS` and
    /// `EGRESS` are the adaptor's own and cannot be named here.
    pub targets: TunnelSet,
    /// What the relay check compares for this PP.
    pub relay_check: RelayCheck,
}

impl PpConfig {
    /// A PP with no local tunnels; `forwarder` gets port 2222 when it has none.
    pub fn new(sid: Sid, forwarder: &str, init_data_has_wn_key: bool) -> Self {
        Self {
            sid,
            forwarder: with_default_port(forwarder),
            init_data_has_wn_key,
            tunnels: TunnelSet::default(),
            targets: TunnelSet::default(),
            relay_check: RelayCheck::default(),
        }
    }

    /// The same PP with local listeners for `tags` (see
    /// [`parse_local_tunnels`]), e.g. `["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0"]`.
    pub fn with_tunnels<S: AsRef<str>>(mut self, tags: &[S]) -> Result<Self, String> {
        self.tunnels = parse_local_tunnels(tags)?;
        Ok(self)
    }

    /// The same PP with WN-side targets for its inbound tunnels (see
    /// [`parse_wn_targets`]), e.g. `["BOTH_PHASES:LOG:127.0.0.1:5140"]`.
    pub fn with_targets<S: AsRef<str>>(mut self, tags: &[S]) -> Result<Self, String> {
        self.targets = parse_wn_targets(tags)?;
        Ok(self)
    }
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    trustee_url: TrusteeUrl,
    trustee_ca: Option<PathBuf>,
    admin_key: PathBuf,
    key_dir: Option<PathBuf>,
    kubernetes_secrets: Option<FileSecrets>,
    state_dir: PathBuf,
    control_socket: Option<PathBuf>,
    #[serde(default)]
    relay_check: RelayCheck,
    #[serde(default)]
    admin_token: FileAdminToken,
    #[serde(default)]
    timing: FileTiming,
    #[serde(default)]
    egress: FileEgress,
    #[serde(default)]
    pp: Vec<FilePp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecrets {
    namespace: String,
    kubeconfig: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileEgress {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny_networks: Vec<String>,
    #[serde(default)]
    permit_networks: Vec<String>,
}

impl FileEgress {
    fn into_policy(self) -> Result<EgressPolicy, String> {
        let networks = |texts: Vec<String>, field: &str| {
            texts
                .iter()
                .map(|text| SourceNetwork::parse(text).map_err(|e| format!("egress.{field}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(EgressPolicy {
            allow: self
                .allow
                .iter()
                .map(|text| AllowPattern::parse(text))
                .collect::<Result<_, _>>()?,
            deny_networks: networks(self.deny_networks, "deny_networks")?,
            permit_networks: networks(self.permit_networks, "permit_networks")?,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAdminToken {
    role: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    lifetime_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTiming {
    attestation_deadline_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    handshake_timeout_secs: Option<u64>,
    keepalive_interval_secs: Option<u64>,
    keepalive_max: Option<usize>,
    backoff_initial_ms: Option<u64>,
    backoff_max_secs: Option<u64>,
    tunnel_wait_secs: Option<u64>,
    upgrade_grace_secs: Option<u64>,
    info_timeout_secs: Option<u64>,
    udp_idle_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePp {
    sid: Sid,
    forwarder: String,
    #[serde(default)]
    init_data_has_wn_key: bool,
    #[serde(default)]
    tunnels: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    relay_check: Option<RelayCheck>,
}

impl AdaptorConfig {
    /// Reads and checks the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks `text`; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file: FileConfig = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let defaults = AdminClaims::default();
        let admin_claims = AdminClaims {
            role: file.admin_token.role.unwrap_or(defaults.role),
            issuer: file.admin_token.issuer,
            audience: file.admin_token.audience,
            lifetime: file
                .admin_token
                .lifetime_secs
                .map(Duration::from_secs)
                .unwrap_or(defaults.lifetime),
        };
        if file.trustee_ca.is_some() && !file.trustee_url.is_https() {
            return Err(invalid(format!(
                "trustee_ca is set but trustee_url {} is not https",
                file.trustee_url
            )));
        }
        let key_store = match (file.key_dir, file.kubernetes_secrets) {
            (Some(dir), None) => KeyStoreConfig::Directory(base.join(dir)),
            (None, Some(secrets)) if is_dns_label(&secrets.namespace) => {
                KeyStoreConfig::Kubernetes(SecretsConfig {
                    namespace: secrets.namespace,
                    kubeconfig: secrets.kubeconfig.map(|path| base.join(path)),
                })
            }
            (None, Some(secrets)) => {
                return Err(invalid(format!(
                    "kubernetes_secrets.namespace {:?} is not a Kubernetes namespace name (lowercase letters, digits, '-')",
                    secrets.namespace
                )));
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(
                    "set exactly one key store: key_dir (a local directory) or [kubernetes_secrets] (namespace = ...)".into(),
                ));
            }
        };
        if file.timing.udp_idle_secs == Some(0) {
            return Err(invalid(
                "timing.udp_idle_secs = 0 would end every UDP flow at once; give at least 1".into(),
            ));
        }
        let timing = file.timing.into_timing();
        let egress = file.egress.into_policy().map_err(invalid)?;
        let mut pps: Vec<PpConfig> = Vec::with_capacity(file.pp.len());
        for pp in file.pp {
            if pps.iter().any(|earlier| earlier.sid == pp.sid) {
                return Err(invalid(format!("pp {}: the sid appears twice", pp.sid)));
            }
            let tunnels = parse_local_tunnels(&pp.tunnels)
                .map_err(|reason| invalid(format!("pp {}: {reason}", pp.sid)))?;
            let targets = parse_wn_targets(&pp.targets)
                .map_err(|reason| invalid(format!("pp {}: {reason}", pp.sid)))?;
            let mut config = PpConfig::new(pp.sid, &pp.forwarder, pp.init_data_has_wn_key);
            config.tunnels = tunnels;
            config.targets = targets;
            config.relay_check = pp.relay_check.unwrap_or(file.relay_check);
            pps.push(config);
        }
        Ok(Self {
            trustee_url: file.trustee_url,
            trustee_ca: file.trustee_ca.map(|path| base.join(path)),
            admin_key_path: base.join(file.admin_key),
            admin_claims,
            key_store,
            state_dir: base.join(file.state_dir),
            control_socket: file.control_socket.map_or_else(
                || PathBuf::from(DEFAULT_CONTROL_SOCKET),
                |path| base.join(path),
            ),
            timing,
            egress,
            relay_check: file.relay_check,
            pps,
        })
    }
}

impl FileTiming {
    fn into_timing(self) -> Timing {
        let defaults = Timing::default();
        let secs = |value: Option<u64>, default: Duration| {
            value.map(Duration::from_secs).unwrap_or(default)
        };
        Timing {
            attestation_deadline: secs(
                self.attestation_deadline_secs,
                defaults.attestation_deadline,
            ),
            ssh: SshSettings {
                connect_timeout: secs(self.connect_timeout_secs, defaults.ssh.connect_timeout),
                handshake_timeout: secs(
                    self.handshake_timeout_secs,
                    defaults.ssh.handshake_timeout,
                ),
                keepalive_interval: secs(
                    self.keepalive_interval_secs,
                    defaults.ssh.keepalive_interval,
                ),
                keepalive_max: self.keepalive_max.unwrap_or(defaults.ssh.keepalive_max),
            },
            backoff_initial: self
                .backoff_initial_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.backoff_initial),
            backoff_max: secs(self.backoff_max_secs, defaults.backoff_max),
            tunnel_wait: secs(self.tunnel_wait_secs, defaults.tunnel_wait),
            upgrade_grace: secs(self.upgrade_grace_secs, defaults.upgrade_grace),
            info_timeout: secs(self.info_timeout_secs, defaults.info_timeout),
            udp_idle: secs(self.udp_idle_secs, defaults.udp_idle),
        }
    }
}

/// Parses the local tunnel tags of one PP: TCP or unix listeners on the WN
/// (network namespaces are a PP-side feature).
pub fn parse_local_tunnels<S: AsRef<str>>(texts: &[S]) -> Result<TunnelSet, String> {
    parse_wn_tags(texts, Direction::Inbound)
}

/// The names the adaptor serves itself on every PP (the KBS proxy and the
/// egress proxy): no `targets` entry may take them.
pub const RESERVED_TARGET_NAMES: [&str; 2] = [
    crate::mux_connection::KBS_TUNNEL,
    crate::mux_connection::EGRESS_TUNNEL,
];

/// Parses the WN-side targets of one PP's inbound tunnels: outbound tags
/// (a bare port is 127.0.0.1 on the WN), TCP, UDP or unix; never a network
/// namespace, never a reserved name.
pub fn parse_wn_targets<S: AsRef<str>>(texts: &[S]) -> Result<TunnelSet, String> {
    let set = parse_wn_tags(texts, Direction::Outbound)?;
    if let Some(tag) = set
        .iter()
        .find(|tag| RESERVED_TARGET_NAMES.contains(&tag.name()))
    {
        return Err(format!(
            "target {}: the name {} is reserved (the adaptor serves it itself); pick another name",
            Tag::emit(tag),
            tag.name()
        ));
    }
    Ok(set)
}

/// Tags read in `direction`, refusing network namespaces (a PP-side feature).
fn parse_wn_tags<S: AsRef<str>>(texts: &[S], direction: Direction) -> Result<TunnelSet, String> {
    let set = TunnelSet::parse(texts.iter().map(AsRef::as_ref), direction)
        .map_err(|error| error.to_string())?;
    if let Some(tag) = set.iter().find(|tag| is_netns(tag.target())) {
        return Err(format!(
            "tunnel {}: network namespaces are not supported on the worker node; use PHASE:NAME:HOST:PORT or PHASE:NAME:unix:PATH",
            Tag::emit(tag)
        ));
    }
    Ok(set)
}

fn is_netns(target: &Target) -> bool {
    matches!(target, Target::NetnsTcp { .. } | Target::NetnsUdp { .. })
}

/// RFC 1123 label, as namespace names are.
fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// `HOST` → `HOST:2222`; `HOST:PORT` and `[V6]:PORT` stay as they are.
fn with_default_port(address: &str) -> String {
    let address = address.trim();
    let has_port = if address.starts_with('[') {
        address.contains("]:")
    } else {
        address.matches(':').count() == 1
    };
    match (has_port, address.parse::<std::net::Ipv6Addr>()) {
        (_, Ok(v6)) => format!("[{v6}]:{DEFAULT_FORWARDER_PORT}"),
        (true, Err(_)) => address.to_owned(),
        (false, Err(_)) => format!("{address}:{DEFAULT_FORWARDER_PORT}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        trustee_url = "http://127.0.0.1:8080"
        admin_key = "admin.pem"
        key_dir = "/var/lib/pp-adaptor/keys"
        state_dir = "state"
        [admin_token]
        audience = "kbs"
        [timing]
        attestation_deadline_secs = 60
        [[pp]]
        sid = "abc"
        forwarder = "192.0.2.7"
        init_data_has_wn_key = true
        tunnels = ["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150"]
        [[pp]]
        sid = "def"
        forwarder = "192.0.2.8:2223"
    "#;

    #[test]
    fn the_example_configuration_reads_with_defaults_and_relative_paths() {
        let config = AdaptorConfig::from_toml(EXAMPLE, Path::new("/etc/pp/adaptor.toml")).unwrap();
        assert_eq!(config.admin_key_path, Path::new("/etc/pp/admin.pem"));
        assert_eq!(
            config.key_store,
            KeyStoreConfig::Directory("/var/lib/pp-adaptor/keys".into())
        );
        assert_eq!(config.state_dir, Path::new("/etc/pp/state"));
        assert_eq!(config.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
        assert_eq!(config.admin_claims.role, "admin");
        assert_eq!(config.admin_claims.audience.as_deref(), Some("kbs"));
        assert_eq!(config.timing.attestation_deadline, Duration::from_secs(60));
        assert_eq!(
            config.timing.ssh.keepalive_interval,
            Duration::from_secs(15)
        );
        assert_eq!(config.pps.len(), 2);
        assert_eq!(config.pps[0].forwarder, "192.0.2.7:2222");
        assert!(config.pps[0].init_data_has_wn_key);
        assert!(config.pps[0].tunnels.get("KATAAGENT").is_some());
        assert_eq!(config.pps[1].forwarder, "192.0.2.8:2223");
        assert!(!config.pps[1].init_data_has_wn_key);
        assert_eq!(config.trustee_ca, None);
    }

    #[test]
    fn a_trustee_ca_is_read_relative_to_the_file_and_only_with_https() {
        let https = EXAMPLE.replace(
            "trustee_url = \"http://127.0.0.1:8080\"",
            "trustee_url = \"https://kbs.example:8443\"\ntrustee_ca = \"ca.pem\"",
        );
        let config = AdaptorConfig::from_toml(&https, Path::new("/etc/pp/adaptor.toml")).unwrap();
        assert_eq!(
            config.trustee_ca.as_deref(),
            Some(Path::new("/etc/pp/ca.pem"))
        );

        let http = https.replace("https://", "http://");
        let error = AdaptorConfig::from_toml(&http, Path::new("/etc/pp/adaptor.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("trustee_ca is set") && error.contains("not https"),
            "{error}"
        );
    }

    #[test]
    fn egress_is_off_by_default_and_its_entries_are_checked() {
        let path = Path::new("/etc/pp/adaptor.toml");
        let config = AdaptorConfig::from_toml(EXAMPLE, path).unwrap();
        assert!(config.egress.allow.is_empty());
        let with = |egress: &str| {
            EXAMPLE.replace(
                "state_dir = \"state\"",
                &format!("state_dir = \"state\"\n[egress]\n{egress}"),
            )
        };
        let config = AdaptorConfig::from_toml(
            &with("allow = [\"*.quay.io:443\"]\ndeny_networks = [\"10.96.0.0/12\"]"),
            path,
        )
        .unwrap();
        assert!(config.egress.check_name("cdn.quay.io", 443).is_ok());
        for bad in [
            "allow = [\"quay.io\"]",
            "deny_networks = [\"10.96.0.1/12\"]",
            "allows = []",
        ] {
            let error = AdaptorConfig::from_toml(&with(bad), path)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("/etc/pp/adaptor.toml: "), "{error}");
        }
    }

    #[test]
    fn a_typo_a_duplicate_sid_or_a_bad_tag_is_an_error_naming_the_file() {
        let typo = EXAMPLE.replace("state_dir", "statedir");
        let duplicate = EXAMPLE.replace("sid = \"def\"", "sid = \"abc\"");
        let bad_tag = EXAMPLE.replace("KUBERNETES_PHASE:KATAAGENT", "LATER:KATAAGENT");
        let netns = EXAMPLE.replace("127.0.0.1:15150", "/run/netns/x:15150");
        for text in [typo, duplicate, bad_tag, netns] {
            let error = AdaptorConfig::from_toml(&text, Path::new("/etc/pp/adaptor.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("/etc/pp/adaptor.toml: "), "{error}");
        }
    }

    #[test]
    fn the_key_store_is_a_directory_or_kubernetes_secrets_never_both_nor_neither() {
        let text =
            "trustee_url = \"http://127.0.0.1:8080\"\nadmin_key = \"a\"\nstate_dir = \"s\"\n";
        let path = Path::new("/etc/pp/adaptor.toml");
        let config = AdaptorConfig::from_toml(
            &format!(
                "{text}[kubernetes_secrets]\nnamespace = \"peerpod\"\nkubeconfig = \"kube.conf\"\n"
            ),
            path,
        )
        .unwrap();
        assert_eq!(
            config.key_store,
            KeyStoreConfig::Kubernetes(SecretsConfig {
                namespace: "peerpod".into(),
                kubeconfig: Some("/etc/pp/kube.conf".into()),
            })
        );
        for bad in [
            text.to_owned(),
            format!("key_dir = \"k\"\n{text}[kubernetes_secrets]\nnamespace = \"peerpod\"\n"),
            format!("{text}[kubernetes_secrets]\nnamespace = \"Peer_Pod\"\n"),
        ] {
            let error = AdaptorConfig::from_toml(&bad, path)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("/etc/pp/adaptor.toml: "), "{error}");
        }
    }

    #[test]
    fn relay_check_is_global_with_a_per_pod_override_and_checks_the_peer_by_default() {
        let config = AdaptorConfig::from_toml(EXAMPLE, Path::new("/etc/pp/adaptor.toml")).unwrap();
        assert_eq!(config.relay_check, RelayCheck::HostKeyAndPeer);
        assert_eq!(config.pps[0].relay_check, RelayCheck::HostKeyAndPeer);

        let global = format!("relay_check = \"host-key-only\"\n{EXAMPLE}");
        let config = AdaptorConfig::from_toml(&global, Path::new("/etc/pp/adaptor.toml")).unwrap();
        assert_eq!(config.pps[0].relay_check, RelayCheck::HostKeyOnly);
        assert_eq!(config.pps[1].relay_check, RelayCheck::HostKeyOnly);

        let per_pod = EXAMPLE.replace(
            "forwarder = \"192.0.2.8:2223\"",
            "forwarder = \"192.0.2.8:2223\"\nrelay_check = \"host-key-only\"",
        );
        let config = AdaptorConfig::from_toml(&per_pod, Path::new("/etc/pp/adaptor.toml")).unwrap();
        assert_eq!(config.pps[0].relay_check, RelayCheck::HostKeyAndPeer);
        assert_eq!(config.pps[1].relay_check, RelayCheck::HostKeyOnly);

        let typo = EXAMPLE.replace("[admin_token]", "relay_check = \"hostkey\"\n[admin_token]");
        let error = AdaptorConfig::from_toml(&typo, Path::new("/etc/pp/adaptor.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("host-key-only"), "{error}");
    }

    #[test]
    fn targets_are_outbound_tags_without_netns_or_reserved_names() {
        let with_targets = EXAMPLE.replace(
            "tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150\"]",
            "tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150\"]\ntargets = [\"BOTH_PHASES:LOG:5140\"]",
        );
        let config =
            AdaptorConfig::from_toml(&with_targets, Path::new("/etc/pp/adaptor.toml")).unwrap();
        let log = config.pps[0].targets.get("LOG").unwrap();
        assert_eq!(
            log.target(),
            &Target::Tcp {
                ip: std::net::Ipv4Addr::LOCALHOST.into(),
                port: 5140
            },
            "a bare port is 127.0.0.1 on the WN"
        );
        assert!(config.pps[1].targets.iter().next().is_none());
        for reserved in ["KBS", "EGRESS"] {
            let error = parse_wn_targets(&[format!("BOTH_PHASES:{reserved}:8080")]).unwrap_err();
            assert!(error.contains("reserved"), "{error}");
        }
        let error = parse_wn_targets(&["BOTH_PHASES:X:/run/netns/a:53"]).unwrap_err();
        assert!(error.contains("network namespaces"), "{error}");
    }

    #[test]
    fn udp_idle_defaults_to_60_s_and_zero_is_refused() {
        let path = Path::new("/etc/pp/adaptor.toml");
        let config = AdaptorConfig::from_toml(EXAMPLE, path).unwrap();
        assert_eq!(config.timing.udp_idle, Duration::from_secs(60));
        let set = |secs| EXAMPLE.replace("[timing]", &format!("[timing]\nudp_idle_secs = {secs}"));
        let config = AdaptorConfig::from_toml(&set(5), path).unwrap();
        assert_eq!(config.timing.udp_idle, Duration::from_secs(5));
        let error = AdaptorConfig::from_toml(&set(0), path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("udp_idle_secs"), "{error}");
    }

    #[test]
    fn forwarder_addresses_get_port_2222_only_when_they_have_none() {
        assert_eq!(with_default_port("10.0.0.1"), "10.0.0.1:2222");
        assert_eq!(with_default_port("10.0.0.1:22"), "10.0.0.1:22");
        assert_eq!(with_default_port("pp.example"), "pp.example:2222");
        assert_eq!(with_default_port("::1"), "[::1]:2222");
        assert_eq!(with_default_port("[::1]:22"), "[::1]:22");
    }
}
