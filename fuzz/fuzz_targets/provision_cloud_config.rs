//! Fuzz the cloud-config user-data parser (YAML, write_files, encodings).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pp_provision::cloud_config::initdata_entry(data);
});
