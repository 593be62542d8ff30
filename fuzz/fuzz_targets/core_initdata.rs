//! Fuzz init-data delivery decoding (base64, gzip, limits), the init-data
//! TOML, and `forwarder.toml`, both inside init-data and on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_forwarder_core::config::ForwarderConfig;
use pp_initdata::{InitData, MAX_TOML_LEN, decode_delivery};

fuzz_target!(|data: &[u8]| {
    if let Ok(toml) = decode_delivery(data) {
        assert!(toml.len() <= MAX_TOML_LEN);
        if let Ok(init_data) = InitData::parse(&toml) {
            let _ = ForwarderConfig::from_init_data(Some(&init_data));
        }
    }
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = ForwarderConfig::parse(text);
    }
});
