//! The few SSH messages a hostile client sends before any keys exist,
//! written by hand (RFC 4253 binary packets without encryption): the
//! `KEXINIT` and the key exchange init. Used by the key exchange hygiene
//! test and, through a `#[path]` module, by fuzz/examples/write_corpus.rs
//! for the `ssh_preauth` seeds. Depends on std only.

pub const MSG_KEXINIT: u8 = 20;
/// `SSH_MSG_KEX_ECDH_INIT` (RFC 5656), also the hybrid INIT of mlkem768x25519.
pub const MSG_KEX_ECDH_INIT: u8 = 30;
pub const MSG_KEX_ECDH_REPLY: u8 = 31;

/// Appends an SSH `string` (u32 length, bytes).
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a short string");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An unencrypted binary packet (RFC 4253 section 6) around `payload`.
pub fn packet(payload: &[u8]) -> Vec<u8> {
    let mut padding = 8 - (5 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let length = u32::try_from(1 + payload.len() + padding).expect("a short packet");
    let mut out = length.to_be_bytes().to_vec();
    out.push(u8::try_from(padding).expect("padding below 256"));
    out.extend_from_slice(payload);
    out.resize(out.len() + padding, 0);
    out
}

/// A `KEXINIT` payload offering only `kex` and what the forwarder supports.
pub fn kexinit(kex: &str) -> Vec<u8> {
    let mut payload = vec![MSG_KEXINIT];
    payload.extend_from_slice(&[7; 16]);
    let lists = [
        kex,
        "ssh-ed25519",
        "chacha20-poly1305@openssh.com",
        "chacha20-poly1305@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    for list in lists {
        put_string(&mut payload, list.as_bytes());
    }
    payload.push(0); // first_kex_packet_follows
    payload.extend_from_slice(&[0; 4]);
    payload
}

/// The client's key exchange message carrying `client_key`.
pub fn kex_ecdh_init(client_key: &[u8]) -> Vec<u8> {
    let mut payload = vec![MSG_KEX_ECDH_INIT];
    put_string(&mut payload, client_key);
    payload
}

/// The x25519 base point (u = 9): a regular public key.
pub fn x25519_base_point() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[0] = 9;
    key
}
