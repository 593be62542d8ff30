//! Fixtures shared by the integration tests: init-data documents, cloud-config
//! user-data around them, config drive images (built with genisoimage or
//! xorriso), simulated TEE report entries, a loopback metadata-service
//! double, and a runner for the `pp-provision` binary.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use pp_initdata::{self as initdata, Algorithm};
use pp_provision::binding::{snp_report, tdx_quote};

/// An init-data document with the entries AA, CDH and the forwarder read,
/// plus one pp-provision does not write.
pub fn initdata_toml(algorithm: &str) -> String {
    format!(
        r#"version = "0.1.0"
algorithm = "{algorithm}"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://127.0.0.1:8080"
'''
"cdh.toml" = '''
[kbc]
name = "cc_kbc"
url = "http://127.0.0.1:8080"
'''
"policy.rego" = '''
package agent_policy
default AllowRequestsFailingPolicy := true
'''
"extra.txt" = "not written"
"#
    )
}

pub fn digest_of(toml: &str, algorithm: Algorithm) -> Vec<u8> {
    initdata::digest(toml.as_bytes(), algorithm)
}

/// cloud-config user-data carrying `content` as the init-data entry, the
/// way cloud-api-adaptor writes it, next to an unrelated entry.
pub fn user_data_with_content(content: &str) -> String {
    format!(
        "#cloud-config\n\
         write_files:\n\
         - path: /run/peerpod/daemon.json\n  content: '{{}}'\n  permissions: '0600'\n\
         - path: /run/peerpod/initdata\n  content: {content}\n"
    )
}

/// User-data delivering `toml` as base64(gzip(TOML)).
pub fn user_data_for(toml: &str) -> String {
    user_data_with_content(&initdata::emit_delivery(toml.as_bytes()))
}

/// A simulated configfs-tsm report entry holding an SNP report whose
/// HOST_DATA is `host_data`.
pub fn snp_sim_dir(host_data: &[u8; 32]) -> tempfile::TempDir {
    sim_dir("sev_guest", &snp_report::synthetic_report(host_data))
}

/// A simulated entry holding a TDX quote whose MRCONFIGID is `value`.
pub fn tdx_sim_dir(value: &[u8; 48]) -> tempfile::TempDir {
    sim_dir("tdx_guest", &tdx_quote::synthetic_quote_v4(value))
}

pub fn sim_dir(provider: &str, outblob: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("provider"), format!("{provider}\n")).unwrap();
    std::fs::write(dir.path().join("outblob"), outblob).unwrap();
    dir
}

/// Build an ISO9660 config drive labelled `label` holding `files`, with
/// genisoimage (Debian's) or, failing that, xorriso's mkisofs mode; the
/// same flags cloud-init documents (`-joliet -rock`) unless `naming` says
/// otherwise.
pub fn config_drive(dir: &Path, label: &str, files: &[(&str, &[u8])], naming: &[&str]) -> PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    for (name, bytes) in files {
        std::fs::write(content.join(name), bytes).unwrap();
    }
    let iso = dir.join("seed.iso");
    let mut args: Vec<String> = vec!["-quiet".into(), "-output".into(), iso.display().to_string()];
    args.extend(["-volid".into(), label.into()]);
    args.extend(naming.iter().map(|s| s.to_string()));
    args.push(content.display().to_string());
    let status = if which("genisoimage") {
        Command::new("genisoimage").args(&args).status()
    } else if which("xorriso") {
        Command::new("xorriso")
            .arg("-as")
            .arg("mkisofs")
            .args(&args)
            .status()
    } else {
        panic!(
            "building a config drive needs genisoimage or xorriso: apt-get install -y genisoimage"
        );
    }
    .unwrap();
    assert!(status.success(), "building the ISO failed");
    iso
}

/// A config drive the way cloud-init documents it (label `cidata`, Joliet
/// and Rock Ridge names) holding `user_data` as its only file.
pub fn user_data_drive(dir: &Path, user_data: &[u8]) -> PathBuf {
    config_drive(
        dir,
        "cidata",
        &[("user-data", user_data)],
        &["-joliet", "-rock"],
    )
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `pp-provision` with `args`.
pub fn pp_provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pp-provision"))
        .args(args)
        .output()
        .unwrap()
}

/// Run `pp-provision` reading user-data as `source_args` say, checking it
/// against the simulated TEE entry `sim`, writing to `out`, exiting on a
/// mismatch and not retrying (`--timeout 0`).
pub fn pp_provision_with_sim(source_args: &[&str], sim: &Path, out: &Path) -> Output {
    let tee = format!("sim:{}", sim.display());
    let mut args = source_args.to_vec();
    args.extend([
        "--tee",
        &tee,
        "--out-dir",
        out.to_str().unwrap(),
        "--on-mismatch",
        "exit",
        "--timeout",
        "0",
    ]);
    pp_provision(&args)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A metadata-service double on 127.0.0.1: it answers each connection with
/// the first route whose method and path match, else 404, and records the
/// request heads it saw. It serves `connections` connections, then stops.
pub struct MetadataDouble {
    pub addr: SocketAddr,
    handle: JoinHandle<Vec<String>>,
}

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub required_header: Option<&'static str>,
    pub response: Vec<u8>,
}

pub fn http_200(body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

impl MetadataDouble {
    pub fn start(routes: Vec<Route>, connections: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..connections {
                let (mut conn, _) = listener.accept().unwrap();
                let head = read_head(&mut conn);
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let route = routes.iter().find(|r| {
                    r.method == method
                        && r.path == path
                        && r.required_header.is_none_or(|h| head.contains(h))
                });
                let response = match route {
                    Some(route) => route.response.clone(),
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                };
                conn.write_all(&response).unwrap();
                seen.push(head);
            }
            seen
        });
        MetadataDouble { addr, handle }
    }

    /// Wait for the double to finish and return the request heads it saw.
    pub fn requests(self) -> Vec<String> {
        self.handle.join().unwrap()
    }
}

fn read_head(conn: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
