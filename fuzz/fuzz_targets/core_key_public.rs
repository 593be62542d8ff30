//! Fuzz `authorized_keys` line parsing; whatever parses must emit a line
//! that parses back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_ssh_key::PublicKey;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok((key, comment)) = PublicKey::parse_with_comment(line) {
        assert_eq!(PublicKey::parse(&key.emit(comment)), Ok(key));
        assert!(key.fingerprint().starts_with("SHA256:"));
    }
});
