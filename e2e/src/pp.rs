//! One peer pod on loopback: the forwarder with its init-data, the CDH
//! test double (whose KBS URL is the forwarder's KBS tunnel) and the
//! kata-agent test double (an echo server on a unix socket).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pp_initdata::emit_delivery;
use pp_ssh_key::PublicKey;

use crate::process::Process;
use crate::{bin, free_port, scratch_dir};

/// The forwarder binary: `PP_E2E_FORWARDER` when set (the benchmarks point
/// it at the static binary the image ships), else the workspace build.
fn forwarder_bin() -> PathBuf {
    std::env::var_os("PP_E2E_FORWARDER").map_or_else(|| bin("pp-forwarder"), PathBuf::from)
}

/// The forwarder's exit status when it fails closed with `--deadline-action exit`.
pub const FAIL_CLOSED: i32 = 3;

/// How a test PP is set up.
#[derive(Clone)]
pub struct PpOptions {
    /// The WN key in init-data; `None` means `none` auth in the attestation phase.
    pub wn_key: Option<PublicKey>,
    pub attestation_deadline: &'static str,
    pub upgrade_grace: &'static str,
    pub max_startups: usize,
    /// Start the CDH test double (else the test serves the CDH port itself).
    pub cdh_double: bool,
    /// More forwarder flags.
    pub extra_args: Vec<String>,
    /// More inbound tunnel tags besides KBS.
    pub extra_inbounds: Vec<String>,
    /// More outbound tunnel tags besides KATAAGENT.
    pub extra_outbounds: Vec<String>,
    /// More lines for init-data's forwarder.toml.
    pub extra_forwarder_toml: String,
}

impl Default for PpOptions {
    fn default() -> Self {
        Self {
            wn_key: None,
            attestation_deadline: "120s",
            upgrade_grace: "2s",
            max_startups: 10,
            cdh_double: true,
            extra_args: Vec::new(),
            extra_inbounds: Vec::new(),
            extra_outbounds: Vec::new(),
            extra_forwarder_toml: String::new(),
        }
    }
}

pub struct Pp {
    pub dir: tempfile::TempDir,
    pub ssh_port: u16,
    pub kbs_tunnel_port: u16,
    pub cdh_port: u16,
    pub options: PpOptions,
    pub forwarder: Option<Process>,
    pub cdh: Option<Process>,
    pub agent: Process,
}

impl Pp {
    pub fn start(options: PpOptions) -> Pp {
        let dir = scratch_dir();
        let ssh_port = free_port();
        let kbs_tunnel_port = free_port();
        let cdh_port = free_port();
        let agent_socket = dir.path().join("agent.sock");
        std::fs::write(
            dir.path().join("initdata"),
            initdata(&options, kbs_tunnel_port, &agent_socket),
        )
        .expect("can write init-data");
        let agent = Process::spawn(
            &bin("agent-echo"),
            &["--unix".into(), agent_socket.display().to_string()],
        );
        agent.wait_for("listening", Duration::from_secs(10));
        let cdh = options.cdh_double.then(|| {
            let cdh = Process::spawn(
                &bin("cdh-double"),
                &[
                    "--listen".into(),
                    format!("127.0.0.1:{cdh_port}"),
                    "--kbs-url".into(),
                    format!("http://127.0.0.1:{kbs_tunnel_port}"),
                ],
            );
            cdh.wait_for("listening", Duration::from_secs(10));
            cdh
        });
        let mut pp = Pp {
            dir,
            ssh_port,
            kbs_tunnel_port,
            cdh_port,
            options,
            forwarder: None,
            cdh,
            agent,
        };
        pp.start_forwarder();
        pp
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ssh_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ssh_port)
    }

    /// (Re)starts the forwarder process with the same state directory.
    pub fn start_forwarder(&mut self) {
        let mut args = vec![
            "--listen".into(),
            self.ssh_addr(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--initdata".into(),
            self.dir.path().join("initdata").display().to_string(),
            "--cdh-url".into(),
            format!("http://127.0.0.1:{}", self.cdh_port),
            "--attestation-deadline".into(),
            self.options.attestation_deadline.into(),
            "--deadline-action".into(),
            "exit".into(),
            "--upgrade-grace".into(),
            self.options.upgrade_grace.into(),
            "--max-startups".into(),
            self.options.max_startups.to_string(),
        ];
        args.extend(self.options.extra_args.iter().cloned());
        let forwarder = Process::spawn(&forwarder_bin(), &args);
        self.forwarder = Some(forwarder);
    }

    pub fn forwarder(&self) -> &Process {
        self.forwarder.as_ref().expect("the forwarder was started")
    }

    pub fn forwarder_mut(&mut self) -> &mut Process {
        self.forwarder.as_mut().expect("the forwarder was started")
    }

    /// Waits until the forwarder fails closed (it exits with
    /// [`FAIL_CLOSED`] under `--deadline-action exit`) and has logged `reason`.
    pub fn wait_fail_closed(&mut self, reason: &str) {
        let status = self
            .forwarder_mut()
            .wait_exit(Duration::from_secs(30))
            .expect("the forwarder exits");
        assert_eq!(
            status.code(),
            Some(FAIL_CLOSED),
            "{}",
            self.forwarder().output()
        );
        self.forwarder().wait_for(reason, Duration::from_secs(10));
    }

    /// Waits until the forwarder listens for SSH.
    pub fn wait_listening(&self) {
        self.forwarder()
            .wait_for("listening for SSH", Duration::from_secs(20));
    }
}

/// The init-data TOML in the peer-pod delivery form, base64(gzip(TOML)).
pub fn initdata(options: &PpOptions, kbs_tunnel_port: u16, agent_socket: &Path) -> String {
    let mut forwarder = String::new();
    if let Some(key) = &options.wn_key {
        forwarder.push_str(&format!("wn-public-key = \"{}\"\n", key.emit(None)));
    }
    let quoted = |tags: Vec<String>| -> String {
        let quoted: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        quoted.join(", ")
    };
    let mut inbounds = vec![format!("BOTH_PHASES:KBS:{kbs_tunnel_port}")];
    inbounds.extend(options.extra_inbounds.iter().cloned());
    forwarder.push_str(&format!("inbounds = [{}]\n", quoted(inbounds)));
    let mut outbounds = vec![format!(
        "KUBERNETES_PHASE:KATAAGENT:unix:{}",
        agent_socket.display()
    )];
    outbounds.extend(options.extra_outbounds.iter().cloned());
    forwarder.push_str(&format!("outbounds = [{}]\n", quoted(outbounds)));
    forwarder.push_str(&options.extra_forwarder_toml);
    let toml = format!(
        "version = \"0.1.0\"\nalgorithm = \"sha256\"\n\n[data]\n\"forwarder.toml\" = '''\n{forwarder}'''\n"
    );
    emit_delivery(toml.as_bytes())
}
