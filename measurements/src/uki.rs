//! PCR 11 of a unified kernel image (UKI) as systemd-stub measures it, and
//! as systemd-pcrphase extends it later in boot: what Azure vTPM peer pods
//! are judged on (`snp_pcr11` / `tdx_pcr11`).
//!
//! The stub measures, for each section it knows and the UKI has, in a fixed
//! order, first SHA-256 of the section name with its NUL and then SHA-256 of
//! the section's in-memory bytes. Which sections it knows depends on its
//! version, read from the UKI's own `.sdmagic` section.

use sha2::{Digest, Sha256};

use crate::error::{Result, bad_input};
use crate::pe::PeImage;

const SECTIONS_252: &[&str] = &[
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey",
];
const SECTIONS_254: &[&str] = &[
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey",
];

/// The boot phases systemd-measure predicts by default ("" is the value
/// right after the stub, before any phase is measured).
pub const PHASES: &[&str] = &[
    "",
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhaseValue {
    pub phase: String,
    /// Lowercase hex SHA-256 bank value.
    pub pcr11: String,
}

/// The stub's major version from `.sdmagic` ("#### LoaderInfo:
/// systemd-stub 254.26-1 ####").
pub fn stub_version(uki: &PeImage<'_>) -> Result<u32> {
    let magic = uki
        .section(b".sdmagic")
        .map(|section| uki.section_in_memory(section))
        .ok_or_else(|| bad_input("UKI", "no .sdmagic section: not built on systemd-stub"))?;
    let text = String::from_utf8_lossy(&magic);
    let after = text
        .split("systemd-stub ")
        .nth(1)
        .ok_or_else(|| bad_input("UKI", format!("unrecognised .sdmagic {text:?}")))?;
    let digits: String = after
        .chars()
        .take_while(char::is_ascii_digit)
        .take(6)
        .collect();
    digits
        .parse()
        .map_err(|_| bad_input("UKI", format!("no version number in .sdmagic {text:?}")))
}

fn measured_sections(version: u32) -> Result<&'static [&'static str]> {
    match version {
        252 => Ok(SECTIONS_252),
        254 | 255 => Ok(SECTIONS_254),
        other => Err(bad_input(
            "UKI",
            format!(
                "systemd-stub {other}: only 252, 254 and 255 are modelled (their measured section lists are known)"
            ),
        )),
    }
}

fn extend(pcr: &mut [u8; 32], data: &[u8]) {
    let mut hasher = Sha256::new();
    hasher.update(*pcr);
    hasher.update(Sha256::digest(data));
    *pcr = hasher.finalize().into();
}

/// PCR 11 after the stub, then after each of [`PHASES`].
pub fn pcr11(uki: &PeImage<'_>) -> Result<Vec<PhaseValue>> {
    let mut pcr = [0u8; 32];
    for name in measured_sections(stub_version(uki)?)? {
        if let Some(section) = uki.section(name.as_bytes()) {
            let mut name_with_nul = name.as_bytes().to_vec();
            name_with_nul.push(0);
            extend(&mut pcr, &name_with_nul);
            extend(&mut pcr, &uki.section_in_memory(section));
        }
    }
    Ok(PHASES
        .iter()
        .map(|phase| {
            let mut value = pcr;
            for word in phase.split(':').filter(|word| !word.is_empty()) {
                extend(&mut value, word.as_bytes());
            }
            PhaseValue {
                phase: (*phase).to_string(),
                pcr11: hex::encode(value),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::pe::pe_image;

    #[test]
    fn the_stub_version_comes_from_sdmagic() {
        let image = pe_image(&[(
            ".sdmagic",
            b"#### LoaderInfo: systemd-stub 254.26-1~bpo12+1 ####",
        )]);
        assert_eq!(
            stub_version(&PeImage::parse("UKI", &image).unwrap()).unwrap(),
            254
        );
    }

    #[test]
    fn sections_the_stub_version_does_not_know_are_not_measured() {
        let base = [
            (
                ".sdmagic",
                b"#### LoaderInfo: systemd-stub 252.1 ####".as_slice(),
            ),
            (".linux", b"k"),
        ];
        let with_uname = [base[0], base[1], (".uname", b"6.1.0".as_slice())];
        let pcr = |sections: &[(&str, &[u8])]| {
            pcr11(&PeImage::parse("UKI", &pe_image(sections)).unwrap()).unwrap()
        };
        assert_eq!(pcr(&base), pcr(&with_uname));
    }

    #[test]
    fn a_stub_version_without_a_known_section_list_is_refused() {
        let image = pe_image(&[(".sdmagic", b"#### LoaderInfo: systemd-stub 257 ####")]);
        let error = pcr11(&PeImage::parse("UKI", &image).unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("systemd-stub 257"), "{error}");
    }

    #[test]
    fn every_phase_gives_a_distinct_value() {
        let image = pe_image(&[
            (".sdmagic", b"systemd-stub 254".as_slice()),
            (".linux", b"k"),
        ]);
        let values = pcr11(&PeImage::parse("UKI", &image).unwrap()).unwrap();
        let mut hashes: Vec<&str> = values.iter().map(|v| v.pcr11.as_str()).collect();
        hashes.dedup();
        assert_eq!(hashes.len(), PHASES.len());
    }
}
