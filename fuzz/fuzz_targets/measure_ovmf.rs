//! Fuzzes pp-measure's OVMF parsers: the footer GUID table, the SEV
//! metadata and the TDVF metadata (and MRTD over what parses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_measure::ovmf::sev_metadata::SevMetadata;
use pp_measure::ovmf::tdvf::{PageAddOrder, TdvfMetadata};

fuzz_target!(|data: &[u8]| {
    if let Ok(metadata) = SevMetadata::parse(data) {
        let _ = metadata.require_kernel_hashes();
    }
    if let Ok(metadata) = TdvfMetadata::parse(data) {
        for order in PageAddOrder::ALL {
            let _ = metadata.mrtd(order);
        }
    }
});
