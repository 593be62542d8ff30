//! Fuzz the egress proxy's `CONNECT` head parser: every prefix of the input
//! is fed as the proxy sees it grow; a parsed head never claims more bytes
//! than it was given, and a target always has a port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_http::parse_connect;

fuzz_target!(|data: &[u8]| {
    for end in [data.len() / 2, data.len()] {
        let prefix = &data[..end];
        if let Ok(Some(request)) = parse_connect(prefix) {
            assert!(request.head_len <= prefix.len());
            assert!(request.port != 0);
            assert!(!request.host.is_empty());
        }
    }
});
