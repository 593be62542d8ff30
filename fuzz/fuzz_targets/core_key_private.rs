//! Fuzz OpenSSH private key parsing, both on the text and on the binary
//! inside the armour; whatever parses must emit a file that parses back.
#![no_main]

use base64ct::{Base64, Encoding};
use libfuzzer_sys::fuzz_target;
use pp_ssh_key::PrivateKey;

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";

fn check(text: &str) {
    if let Ok(key) = PrivateKey::parse(text) {
        let again = PrivateKey::parse(&key.emit(7)).expect("emitted key parses");
        assert_eq!(again, key);
        assert_eq!(again.comment(), key.comment());
    }
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));
    // The same bytes as the binary body: reaches the structural checks.
    let mut armoured = String::from(BEGIN);
    armoured.push('\n');
    armoured.push_str(&Base64::encode_string(data));
    armoured.push('\n');
    armoured.push_str(END);
    check(&armoured);
});
