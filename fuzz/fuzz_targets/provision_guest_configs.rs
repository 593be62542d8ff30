//! Fuzz the checks of init-data's aa.toml / cdh.toml (and forwarder.toml's
//! KBS inbound): any init-data TOML, parsed, then planned.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = pp_initdata::InitData::parse(data) {
        let _ = pp_provision::guest_components::plan(&document);
    }
});
