//! A NAT between the worker node and the peer pod, in network namespaces:
//! the WN namespace (KBS double, `pp-adaptor`) reaches the PP namespace
//! (forwarder, CDH double, kata-agent double) over a veth pair, and an
//! nftables SNAT rule in the WN namespace rewrites the adaptor's source
//! address, so the PP sees another attestation peer than the adaptor's own
//! address. With the default relay check the pod is refused as relayed
//! (one log line naming both addresses and the setting); with
//! `relay_check = "host-key-only"` it reaches the Kubernetes phase.
//!
//! Needs root, `ip` (iproute2) and `nft`; skips with a message when `nft`
//! is missing or a namespace cannot be made. The namespaces are deleted
//! when the test ends, also when it fails.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pp_e2e::pp::{PpOptions, initdata};
use pp_e2e::process::Process;
use pp_e2e::{bin, scratch_dir};
use pp_ssh_key::PublicKey;

const WAIT: Duration = Duration::from_secs(120);
/// The adaptor's address on the veth, the address the NAT gives it, and the PP's.
const WN_ADDRESS: &str = "10.77.0.1";
const NAT_ADDRESS: &str = "10.77.0.3";
const PP_ADDRESS: &str = "10.77.0.2";
const SID: &str = "nat";

/// Two network namespaces joined by a veth pair with SNAT in the first;
/// deleted (with everything in them) when dropped.
struct NattedNamespaces {
    wn: String,
    pp: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args, None)
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .map_err(|error| format!("{program}: {error}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|error| format!("{program}: {error}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NattedNamespaces {
    /// None (after saying why) when namespaces cannot be made here.
    fn create() -> Option<NattedNamespaces> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let suffix = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(error) = run("nft", &["--version"], None) {
            eprintln!("SKIP nat_relay_check: no nftables ({error}); apt-get install -y nftables");
            return None;
        }
        let wn = format!("ppnat-wn-{suffix}");
        if let Err(error) = ip(&["netns", "add", &wn]) {
            eprintln!(
                "SKIP nat_relay_check: cannot create a network namespace ({error}); run as root with iproute2"
            );
            return None;
        }
        let namespaces = NattedNamespaces {
            pp: format!("ppnat-pp-{suffix}"),
            wn,
        };
        namespaces.wire(&suffix).expect("wire the namespaces");
        Some(namespaces)
    }

    fn wire(&self, suffix: &str) -> Result<(), String> {
        let (wn, pp) = (self.wn.as_str(), self.pp.as_str());
        // Interface names: at most 15 bytes, unique while they exist.
        let tag: String = suffix.chars().filter(char::is_ascii_digit).collect();
        let tag = &tag[tag.len().saturating_sub(10)..];
        let (wn_if, pp_if) = (format!("nw{tag}"), format!("np{tag}"));
        ip(&["netns", "add", pp])?;
        ip(&[
            "link", "add", &wn_if, "netns", wn, "type", "veth", "peer", "name", &pp_if, "netns", pp,
        ])?;
        for (namespace, interface, addresses) in [
            (wn, wn_if.as_str(), &[WN_ADDRESS, NAT_ADDRESS][..]),
            (pp, pp_if.as_str(), &[PP_ADDRESS][..]),
        ] {
            for address in addresses {
                let cidr = format!("{address}/24");
                ip(&["-n", namespace, "addr", "add", &cidr, "dev", interface])?;
            }
            ip(&["-n", namespace, "link", "set", interface, "up"])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        }
        let rules = format!(
            "table ip pp_nat {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat;\n    \
             oifname \"{wn_if}\" ip daddr {PP_ADDRESS} snat to {NAT_ADDRESS}\n  }}\n}}\n"
        );
        run("ip", &["netns", "exec", wn, "nft", "-f", "-"], Some(&rules))
    }

    /// `program args` started inside `namespace`.
    fn spawn(namespace: &str, program: &Path, args: &[String]) -> Process {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .arg(program)
            .args(args);
        Process::from_command(command)
    }
}

impl Drop for NattedNamespaces {
    fn drop(&mut self) {
        for namespace in [&self.wn, &self.pp] {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}

/// What a run leaves for the test to look at; the processes end before
/// the namespaces go (fields drop in order).
struct Run {
    serve: Process,
    forwarder: Process,
    _others: Vec<Process>,
    _namespaces: NattedNamespaces,
}

/// Runs one pod through the NAT with the given top-level configuration
/// line, until the adaptor's `serve` logs `outcome`.
fn pod_through_nat(extra_config: &str, outcome: &str) -> Option<Run> {
    let namespaces = NattedNamespaces::create()?;
    let dir = scratch_dir();
    let admin = pp_e2e::world::random_key();
    let admin_private = dir.path().join("admin");
    std::fs::write(&admin_private, admin.emit(7).as_bytes()).expect("write the admin key");
    std::fs::set_permissions(
        &admin_private,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod the admin key");
    std::fs::write(dir.path().join("admin.pub"), admin.public().emit(None)).expect("admin.pub");

    let kbs = NattedNamespaces::spawn(
        &namespaces.wn,
        &bin("kbs-double"),
        &[
            "--listen".into(),
            "127.0.0.1:8080".into(),
            "--admin-public-key".into(),
            dir.path().join("admin.pub").display().to_string(),
        ],
    );
    kbs.wait_for("listening", Duration::from_secs(10));

    let config = dir.path().join("adaptor.toml");
    std::fs::write(
        &config,
        format!(
            "trustee_url = \"http://127.0.0.1:8080\"\nadmin_key = \"admin\"\nkey_dir = \"keys\"\n\
             state_dir = \"state\"\ncontrol_socket = \"control.sock\"\n{extra_config}\n[timing]\nbackoff_initial_ms = 100\nbackoff_max_secs = 1\n\n\
             [[pp]]\nsid = \"{SID}\"\nforwarder = \"{PP_ADDRESS}:2222\"\ninit_data_has_wn_key = true\n\
             tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150\"]\n"
        ),
    )
    .expect("write adaptor.toml");
    let created = Command::new("ip")
        .args(["netns", "exec", &namespaces.wn])
        .arg(bin("pp-adaptor"))
        .arg("--config")
        .arg(&config)
        .args(["pp", "create", "--sid", SID])
        .output()
        .expect("pp-adaptor runs");
    assert!(
        created.status.success(),
        "pp create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let wn_key = PublicKey::parse(String::from_utf8_lossy(&created.stdout).trim())
        .expect("pp create prints the WN public key line");

    let agent_socket = dir.path().join("agent.sock");
    let options = PpOptions {
        wn_key: Some(wn_key),
        ..PpOptions::default()
    };
    std::fs::write(
        dir.path().join("initdata"),
        initdata(&options, 8081, &agent_socket),
    )
    .expect("write init-data");
    let agent = NattedNamespaces::spawn(
        &namespaces.pp,
        &bin("agent-echo"),
        &["--unix".into(), agent_socket.display().to_string()],
    );
    agent.wait_for("listening", Duration::from_secs(10));
    let cdh = NattedNamespaces::spawn(
        &namespaces.pp,
        &bin("cdh-double"),
        &[
            "--listen".into(),
            "127.0.0.1:8006".into(),
            "--kbs-url".into(),
            "http://127.0.0.1:8081".into(),
        ],
    );
    cdh.wait_for("listening", Duration::from_secs(10));
    let forwarder = NattedNamespaces::spawn(
        &namespaces.pp,
        &bin("pp-forwarder"),
        &[
            "--listen".into(),
            format!("{PP_ADDRESS}:2222"),
            "--state-dir".into(),
            dir.path().join("pp-state").display().to_string(),
            "--initdata".into(),
            dir.path().join("initdata").display().to_string(),
            "--cdh-url".into(),
            "http://127.0.0.1:8006".into(),
            "--attestation-deadline".into(),
            "120s".into(),
            "--deadline-action".into(),
            "exit".into(),
        ],
    );
    forwarder.wait_for("listening for SSH", Duration::from_secs(20));

    let serve = NattedNamespaces::spawn(
        &namespaces.wn,
        &bin("pp-adaptor"),
        &[
            "--config".into(),
            config.display().to_string(),
            "serve".into(),
        ],
    );
    serve.wait_for(outcome, WAIT);
    // The NAT was on the path: the forwarder saw the translated address.
    forwarder.wait_for(&format!("from {NAT_ADDRESS}:"), Duration::from_secs(10));
    Some(Run {
        serve,
        forwarder,
        _others: vec![kbs, agent, cdh],
        _namespaces: namespaces,
    })
}

#[test]
fn behind_a_nat_the_default_relay_check_refuses_the_pod_as_relayed() {
    let Some(run) = pod_through_nat("", &format!("pp {SID}: failed")) else {
        return;
    };
    let (serve, forwarder) = (&run.serve, &run.forwarder);
    let log = serve.output();
    let relayed = log
        .lines()
        .find(|line| line.contains("attestation phase relayed"))
        .unwrap_or_else(|| panic!("no relay line:\n{log}\nforwarder:\n{}", forwarder.output()));
    assert!(
        relayed.contains(NAT_ADDRESS)
            && relayed.contains(WN_ADDRESS)
            && relayed.contains("relay_check = \"host-key-only\""),
        "{relayed}"
    );
    // The pod is given up and its key deleted (at Trustee and locally).
    serve.wait_for(
        &format!("pp {SID}: failed: attestation phase relayed"),
        Duration::from_secs(10),
    );
    serve.wait_for(
        "PP key deleted at Trustee and locally",
        Duration::from_secs(10),
    );
}

#[test]
fn behind_a_nat_host_key_only_reaches_the_kubernetes_phase() {
    let Some(run) = pod_through_nat(
        "relay_check = \"host-key-only\"",
        &format!("pp {SID}: Kubernetes phase (host key"),
    ) else {
        return;
    };
    let serve = &run.serve;
    serve.wait_for(
        "relay_check = host-key-only: peer address not compared",
        Duration::from_secs(30),
    );
    let log = serve.output();
    assert_eq!(serve.count("attestation phase relayed"), 0, "{log}");
}
