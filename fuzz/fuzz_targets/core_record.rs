//! Fuzz the persisted phase record parser; intact records re-emit to the
//! same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_forwarder_core::record::PhaseRecord;

fuzz_target!(|data: &[u8]| {
    let boot_id = [0u8; 16];
    if let Ok(Some(record)) = PhaseRecord::parse(data, &boot_id) {
        assert_eq!(
            PhaseRecord::parse(&record.emit(), &boot_id),
            Ok(Some(record))
        );
    }
});
