//! Fuzz tunnel tag parsing in both directions; canonical forms round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tag::{Direction, Tag, TunnelSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    for direction in [Direction::Inbound, Direction::Outbound] {
        if let Ok(tag) = Tag::parse(text, direction) {
            assert_eq!(Tag::parse(&tag.emit(), direction), Ok(tag));
        }
        let _ = TunnelSet::parse_list(text, direction);
    }
});
