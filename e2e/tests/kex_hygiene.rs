//! Key exchange hygiene seen from a hostile client: a raw SSH client (our
//! own few lines of binary packet framing, no SSH library) offers the
//! forwarder a small-order x25519 public key, which would force an all-zero
//! shared secret. The forwarder must drop the connection instead of
//! answering with its key exchange reply (RFC 8731 section 3). The same
//! client with a regular key gets the reply, so the test reaches the point
//! it checks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::raw_ssh::{
    MSG_KEX_ECDH_REPLY, MSG_KEXINIT, kex_ecdh_init, kexinit, packet, x25519_base_point,
};

/// Guards against a hang only.
const READ_GUARD: Duration = Duration::from_secs(30);
/// ML-KEM-768 encapsulation key length: the first part of the hybrid key.
const MLKEM768_PUBKEY_LEN: usize = 1184;

/// Two small-order encodings: all zeros, and the order-8 point
/// e0eb7a7c…b800.
fn small_order_keys() -> [[u8; 32]; 2] {
    let order_8 = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    [[0u8; 32], order_8]
}

/// The message type of the next packet, `None` once the server closed.
fn next_message(reader: &mut impl Read) -> Option<u8> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).ok()?;
    let mut body = vec![0u8; usize::try_from(u32::from_be_bytes(length)).unwrap()];
    reader.read_exact(&mut body).ok()?;
    body.get(1).copied()
}

/// Runs a key exchange up to the client's key; returns whether the server
/// answered with its reply (`true`) or closed the connection (`false`).
fn server_replies_to(addr: &str, kex: &str, client_key: &[u8]) -> bool {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(READ_GUARD)).unwrap();
    let mut writer = socket.try_clone().unwrap();
    let mut reader = BufReader::new(socket);
    writer.write_all(b"SSH-2.0-kex-hygiene-test\r\n").unwrap();
    let mut line = String::new();
    while !line.starts_with("SSH-") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no version line");
    }
    assert_eq!(next_message(&mut reader), Some(MSG_KEXINIT));
    // The server may close while these are on the way.
    let _ = writer.write_all(&packet(&kexinit(kex)));
    let _ = writer.write_all(&packet(&kex_ecdh_init(client_key)));
    loop {
        match next_message(&mut reader) {
            Some(MSG_KEX_ECDH_REPLY) => return true,
            Some(_) => continue,
            None => return false,
        }
    }
}

fn hybrid_key(x25519: &[u8; 32]) -> Vec<u8> {
    // An all-zero ML-KEM key is a valid encoding; only the x25519 half
    // matters here.
    let mut key = vec![0u8; MLKEM768_PUBKEY_LEN];
    key.extend_from_slice(x25519);
    key
}

#[test]
fn small_order_x25519_client_keys_are_refused_and_regular_ones_answered() {
    let pp = Pp::start(PpOptions::default());
    pp.wait_listening();
    let addr = pp.ssh_addr();
    for kex in ["curve25519-sha256", "curve25519-sha256@libssh.org"] {
        assert!(server_replies_to(&addr, kex, &x25519_base_point()), "{kex}");
        for key in small_order_keys() {
            assert!(!server_replies_to(&addr, kex, &key), "{kex} {key:02x?}");
        }
    }
    let kex = "mlkem768x25519-sha256";
    assert!(server_replies_to(
        &addr,
        kex,
        &hybrid_key(&x25519_base_point())
    ));
    for key in small_order_keys() {
        assert!(!server_replies_to(&addr, kex, &hybrid_key(&key)), "{kex}");
    }
}
