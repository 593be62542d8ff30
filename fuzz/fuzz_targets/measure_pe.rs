//! Fuzzes pp-measure's PE/Authenticode parser and what reads parsed images
//! (Authenticode digests, in-memory sections, UKI PCR 11).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_measure::pe::PeImage;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = PeImage::parse("fuzz", data) {
        let _ = image.authenticode::<sha2::Sha384>();
        for section in image.sections() {
            let _ = image.section_in_memory(section);
        }
        let _ = pp_measure::uki::pcr11(&image);
    }
});
