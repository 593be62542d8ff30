//! Writes the seed corpora in fuzz/corpus/<target>/: a handful of valid
//! inputs per target, taken from the unit tests' fixtures and built with
//! the crates' own emitters, so they stay valid when a format changes.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example write_corpus
//!
//! Re-run it after changing a format and commit the result; scripts/fuzz.sh
//! only reads these directories (new inputs go to fuzz/target/corpus/).

use std::fs;
use std::path::Path;

use pp_forwarder_core::record::{KeyBytes, PhaseRecord, RecordedPhase};
use pp_measure::fixtures::firmware::FirmwareBuilder;
use pp_mux::frame::{Frame, emit};
use pp_mux::{MuxLimits, MuxSession, MuxVersion, Phase, Side, StreamId};

/// The hand-written SSH client messages of the e2e key exchange test.
#[path = "../../e2e/src/raw_ssh.rs"]
#[allow(dead_code)] // the reply type is for the e2e test, which reads replies
mod raw_ssh;

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/test-support/testdata/keys/"
);

/// The init-data document of the initdata and config tests.
const INIT_DATA_TOML: &str = include_str!("../../shared/test-support/testdata/init-data.toml");

fn key_fixture(name: &str) -> Vec<u8> {
    fs::read(format!("{KEYS}{name}")).expect("key fixture")
}

fn stream(id: u32) -> StreamId {
    StreamId::new(id).expect("non-zero id")
}

fn frames(list: &[Frame]) -> Vec<u8> {
    let mut wire = Vec::new();
    for frame in list {
        emit(frame, &mut wire);
    }
    wire
}

/// What the peer of a mux session sends in one typical exchange; the
/// first byte is the mux_session target's selector (its side and chunking).
fn mux_conversation(selector: u8, peer: Side) -> Vec<u8> {
    let mut session = MuxSession::with_limits(peer, MuxVersion::V1, MuxLimits::default());
    let id = session.open("KATAAGENT").expect("open");
    session.send(id, b"GET / HTTP/1.1\r\n\r\n").expect("send");
    session.end(id).expect("end");
    let second = session.open("KBS").expect("open");
    session.reset(second, "changed my mind").expect("reset");
    if peer == Side::Wn {
        session.send_info_request().expect("info request");
    } else {
        session
            .send_upgrade(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbNPIYSDw6aSk8yoKq+Nv+Qx16U++rSnjrUcwQ8rnRv",
            )
            .expect("upgrade");
    }
    let mut input = vec![selector];
    input.extend(session.take_transmit());
    input
}

/// The mux_flows target's input: `selector`, the local commands `local`
/// (step byte and argument pairs), then `peer` bytes in steps of at most
/// 240 bytes (a step byte below 0xF0 is the chunk length minus one).
fn mux_flows_input(selector: u8, local: &[u8], peer: &[u8]) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(local);
    for chunk in peer.chunks(240) {
        input.push(u8::try_from(chunk.len() - 1).expect("chunk of at most 240 bytes"));
        input.extend_from_slice(chunk);
    }
    input
}

/// What a pp-mux-v2 peer sends in a typical exchange with flows: a DNS
/// flow with a query, a byte stream beside it, three more flows (some over
/// a small cap) and a RESET.
fn mux_flows_conversation(peer: Side) -> Vec<u8> {
    let mut session = MuxSession::new(peer);
    let dns = session.open_flow("DNS").expect("open flow");
    session.send_datagram(dns, b"\x12\x34\x01\x00\x00\x01").expect("datagram");
    session.send_datagram(dns, b"").expect("empty datagram");
    let web = session.open("WEB").expect("open");
    session.send(web, b"GET / HTTP/1.1\r\n\r\n").expect("send");
    for _ in 0..3 {
        let log = session.open_flow("LOG").expect("open flow");
        session.send_datagram(log, &[0x5a; 300]).expect("datagram");
    }
    session.reset(dns, "idle for 60 s").expect("reset");
    session.take_transmit()
}

/// A client's first flight: version line, KEXINIT for `kex`, and its key
/// exchange message with a regular x25519 key when `with_key`.
fn ssh_client_start(selector: u8, kex: &str, with_key: bool) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    input.extend(raw_ssh::packet(&raw_ssh::kexinit(kex)));
    if with_key {
        let init = raw_ssh::kex_ecdh_init(&raw_ssh::x25519_base_point());
        input.extend(raw_ssh::packet(&init));
    }
    input
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    let mut seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(name), bytes).expect("seed file");
        written += 1;
    };

    for name in ["ed25519.pub", "rsa.pub", "ecdsa.pub"] {
        seed("core_key_public", name, &key_fixture(name));
    }
    for name in ["ed25519", "rsa", "ed25519-encrypted"] {
        seed("core_key_private", name, &key_fixture(name));
    }
    for (name, tag) in [
        ("both", "BOTH_PHASES:KBS:8080"),
        ("v6", "KUBERNETES_PHASE:v6:[fd00::1]:22"),
        ("netns", "KUBERNETES_PHASE:ns:/run/netns/podns:6666"),
        ("unix", "ATTESTATION_PHASE:K:unix:/run/a.sock"),
        ("udp", "KUBERNETES_PHASE:DNS:udp:10.96.0.10:53"),
        ("udp-netns", "BOTH_PHASES:LOG:udp:/run/netns/podns:514"),
        ("unixgram", "ATTESTATION_PHASE:L:unixgram:/run/log.sock"),
        (
            "list",
            "BOTH_PHASES:KBS:8080,KUBERNETES_PHASE:KATAAGENT:unix:/run/kata.sock",
        ),
    ] {
        seed("core_tag", name, tag.as_bytes());
    }
    seed("core_initdata", "toml", INIT_DATA_TOML.as_bytes());
    let delivered = pp_initdata::emit_delivery(INIT_DATA_TOML.as_bytes());
    seed("core_initdata", "delivery", delivered.as_bytes());

    let fingerprint = String::from("SHA256:YZBWncr0kLKPquuT7yy1tBNW64tWvezdaiY0Y6Zf/VI");
    let peer = "192.0.2.1:40000".parse().expect("address");
    let phases = [
        RecordedPhase::AttestationClaimed {
            conn: 3,
            peer,
            attestation_host_key_fingerprint: fingerprint.clone(),
        },
        RecordedPhase::Kubernetes {
            attestation_host_key_fingerprint: fingerprint,
            attestation_peer: "[2001:db8::1]:2222".parse().expect("address"),
            keys: KeyBytes {
                host_key_seed: [4; 32],
                wn_key: [5; 32],
            },
        },
        RecordedPhase::Failed {
            reason: "attestation deadline expired".into(),
        },
    ];
    for (index, phase) in phases.into_iter().enumerate() {
        // The core_record target reads records of boot [0; 16].
        let record = PhaseRecord {
            boot_id: [0; 16],
            phase,
        };
        seed("core_record", &format!("record-{index}"), &record.emit());
    }

    for (name, response) in [
        (
            "length",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..],
        ),
        (
            "chunked",
            b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n0\r\n\r\n",
        ),
        ("close", b"HTTP/1.0 200 OK\r\n\r\nuntil close"),
    ] {
        // The first byte is the target's chunk size.
        let mut input = vec![7];
        input.extend_from_slice(response);
        seed("core_http_response", name, &input);
    }

    for (name, head) in [
        (
            "name",
            &b"CONNECT registry.example:443 HTTP/1.1\r\nHost: registry.example:443\r\n\r\n"[..],
        ),
        (
            "ipv6",
            b"CONNECT [2001:db8::1]:5000 HTTP/1.0\r\n\r\n\x16\x03\x01",
        ),
        (
            "get",
            b"GET http://registry.example/v2/ HTTP/1.1\r\nHost: registry.example\r\n\r\n",
        ),
    ] {
        seed("egress_connect", name, head);
    }

    let hello_pp = Frame::Hello {
        version: 1,
        side: Side::Pp(Phase::Attestation),
    };
    let hello_wn = Frame::Hello {
        version: 1,
        side: Side::Wn,
    };
    let frame_seeds = [
        ("hello-pp", vec![hello_pp]),
        ("hello-wn", vec![hello_wn]),
        (
            "stream",
            vec![
                Frame::Open {
                    stream: stream(1),
                    name: "KATAAGENT".into(),
                },
                Frame::Data {
                    stream: stream(1),
                    bytes: b"ping".to_vec(),
                },
                Frame::Credit {
                    stream: stream(1),
                    n: 32768,
                },
                Frame::End { stream: stream(1) },
            ],
        ),
        (
            "reset",
            vec![Frame::Reset {
                stream: stream(2),
                reason: "no tunnel NOPE in this phase".into(),
            }],
        ),
        (
            "control",
            vec![
                Frame::InfoRequest,
                Frame::Info {
                    text: "phase=attestation\n".into(),
                },
            ],
        ),
    ];
    let flow_frames = vec![
        Frame::OpenFlow {
            stream: stream(3),
            name: "DNS".into(),
        },
        Frame::Datagram {
            stream: stream(3),
            bytes: b"\x12\x34\x01\x00".to_vec(),
        },
        Frame::Datagram {
            stream: stream(3),
            bytes: Vec::new(),
        },
    ];
    seed("mux_frame", "flow", &frames(&flow_frames));
    for (name, list) in &frame_seeds {
        seed("mux_frame", name, &frames(list));
    }
    // Selector bit 0 picks the session's side: 0 = WN (peer is a PP).
    seed(
        "mux_session",
        "from-pp",
        &mux_conversation(0b0100_0100, Side::Pp(Phase::Kubernetes)),
    );
    seed(
        "mux_session",
        "from-wn",
        &mux_conversation(0b1000_0111, Side::Wn),
    );
    seed(
        "mux_session",
        "from-wn-limit-0",
        &mux_conversation(0b0000_1001, Side::Wn),
    );

    // Selector bit 0: 0 = this session is the WN; bits 6-7: the flow cap.
    let from_pp = mux_flows_conversation(Side::Pp(Phase::Kubernetes));
    let from_wn = mux_flows_conversation(Side::Wn);
    seed(
        "mux_flows",
        "from-pp",
        &mux_flows_input(0b1100_0000, &[], &from_pp),
    );
    seed(
        "mux_flows",
        "from-wn-cap-1",
        &mux_flows_input(0b0100_0001, &[], &from_wn),
    );
    seed(
        "mux_flows",
        "from-wn-refused",
        &mux_flows_input(0b1100_0011, &[], &from_wn),
    );
    // Local commands first: open a flow, send 10 * 67 bytes on it, open a
    // stream, reset the flow, take the transmit queue.
    seed(
        "mux_flows",
        "local-then-pp",
        &mux_flows_input(
            0b1000_0000,
            &[0xf0, 0, 0xf1, 10, 0xf3, 0, 0xf2, 0, 0xf4, 0],
            &from_pp,
        ),
    );

    let pe = pp_measure::fixtures::pe::pe_image(&[(".linux", b"kernel"), (".initrd", b"initrd")]);
    seed("measure_pe", "uki", &pe);
    // The metadata sits at the end: 16 KiB images keep the seeds small
    // (the tests' 256 KiB would exceed the fuzzer's -max_len).
    for (name, mut builder) in [
        ("snp", FirmwareBuilder::snp_with_kernel_hashes()),
        ("tdx", FirmwareBuilder::tdx_only()),
    ] {
        builder.size = 0x4000;
        seed("measure_ovmf", name, &builder.build());
    }

    let user_data = "#cloud-config\nhostname: pod\nwrite_files:\n\
        - path: /etc/other\n  content: hello\n  permissions: 0644\n  owner: root:root\n  defer: true\n\
        - path: /run/peerpod/initdata\n  encoding: b64\n  content: aGk=\n";
    seed(
        "provision_cloud_config",
        "write-files",
        user_data.as_bytes(),
    );

    // A volume descriptor set (primary, terminator) after the 16 system
    // sectors; the fuzzer grows directories from there.
    let mut iso = vec![0u8; 18 * 2048];
    for (sector, kind) in [(16, 1u8), (17, 255)] {
        let descriptor = &mut iso[sector * 2048..];
        descriptor[0] = kind;
        descriptor[1..6].copy_from_slice(b"CD001");
        descriptor[6] = 1;
    }
    iso[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&2048u16.to_le_bytes());
    iso[16 * 2048 + 130..16 * 2048 + 132].copy_from_slice(&2048u16.to_be_bytes());
    seed("provision_iso9660", "descriptors", &iso);
    // An SNP attestation report is 1184 bytes (version 2 first); a TPM2
    // response header: tag ST_NO_SESSIONS, size 10, TPM_RC_SUCCESS.
    let mut report = vec![0u8; 1184];
    report[0] = 2;
    seed("provision_evidence", "snp-report", &report);
    seed(
        "provision_evidence",
        "tpm-ok",
        &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0],
    );

    // Init-data without aa.toml / cdh.toml (the defaults are planned), and
    // with the documented defaults given explicitly.
    seed(
        "provision_guest_configs",
        "defaults",
        INIT_DATA_TOML.as_bytes(),
    );
    let kbs_url = "http://127.0.0.1:8080";
    let explicit = format!(
        "{INIT_DATA_TOML}\"aa.toml\" = '''\n{}'''\n\"cdh.toml\" = '''\n{}'''\n",
        pp_provision::guest_components::default_aa_toml(kbs_url),
        pp_provision::guest_components::default_cdh_toml(kbs_url, Some("http://127.0.0.1:3128")),
    );
    seed("provision_guest_configs", "explicit", explicit.as_bytes());

    // Selector bit 0: 1 = init-data holds a WN key (publickey auth), 0 = none auth.
    seed(
        "ssh_preauth",
        "version-only",
        &ssh_client_start(0, "curve25519-sha256", false)[..41],
    );
    seed(
        "ssh_preauth",
        "curve25519",
        &ssh_client_start(0, "curve25519-sha256", true),
    );
    seed(
        "ssh_preauth",
        "mlkem-kexinit",
        &ssh_client_start(1, "mlkem768x25519-sha256", false),
    );
    seed(
        "ssh_preauth",
        "libssh-name",
        &ssh_client_start(1, "curve25519-sha256@libssh.org", true),
    );

    println!("wrote {written} seed files under {}", corpus.display());
}
