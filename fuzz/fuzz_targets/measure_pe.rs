//! Fuzzes pp-measure's PE/Authenticode parser and what reads parsed images
//! (Authenticode digests, in-memory sections, UKI PCR 11).
//!
//! A section's in-memory copy is as long as its `VirtualSize` (up to 4 GiB,
//! zero-filled), which made most runs spend their time in memset and
//! SHA-256 of zeros (about 1,000 executions per second). Images whose
//! sections claim more than `MAX_VIRTUAL_SIZE` are parsed and digested but
//! not expanded: the expansion has no branches worth fuzzing beyond that.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_measure::pe::PeImage;

/// Four times the largest input the fuzzer writes (`-max_len=65536`).
const MAX_VIRTUAL_SIZE: u32 = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = PeImage::parse("fuzz", data) {
        let _ = image.authenticode::<sha2::Sha384>();
        let expandable = image
            .sections()
            .iter()
            .all(|section| section.virtual_size <= MAX_VIRTUAL_SIZE);
        if expandable {
            for section in image.sections() {
                let _ = image.section_in_memory(section);
            }
            let _ = pp_measure::uki::pcr11(&image);
        }
    }
});
