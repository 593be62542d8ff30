//! Fuzzes the pp-mux-v1 frame parser: it must never panic, and every frame
//! it accepts must emit back to exactly the bytes it was parsed from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_mux::frame::{emit, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = parse(data) {
        let mut wire = Vec::new();
        emit(&frame, &mut wire);
        assert_eq!(
            Some(wire.as_slice()),
            data.get(..used),
            "emit(parse(x)) == x"
        );
    }
});
