//! Fuzz the config-drive ISO9660 reader: any bytes as a volume, never a
//! panic, never a read of `user-data` beyond its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_provision::source::iso9660;

fuzz_target!(|data: &[u8]| {
    if let Ok(volume) = iso9660::read_volume(data) {
        if let Ok(file) = iso9660::read_root_file(data, &volume, "user-data", 4096) {
            assert!(file.len() <= 4096);
        }
    }
    let _ = iso9660::probe_volume_id(data);
});
