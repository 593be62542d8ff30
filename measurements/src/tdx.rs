//! TDX runtime measurements of a guest booted by TDVF (OVMF for TDX): the
//! event digests firmware extends into RTMR1 and RTMR2, and the two event
//! digests Trustee's default policy looks up in the event log
//! (`tdvfkernel`, `tdvfkernelparams`).
//!
//! Model (no TDX host here to observe it; the inputs are published next to
//! the values so they can be recomputed):
//! - RTMR1 (PCRs 2–7): "Calling EFI Application from Boot Option", the
//!   EV_SEPARATOR (four zero bytes), the Authenticode SHA-384 of each image
//!   LoadImage'd (the kernel; for a UKI the UKI and then the kernel the stub
//!   loads from `.linux`), "Exit Boot Services Invocation", "Exit Boot
//!   Services Returned with Success".
//! - RTMR2 (PCRs 8–15), direct boot: the LoadOptions event (UTF-16LE
//!   command line, with " initrd=initrd" appended by OVMF when an initrd is
//!   given, and a UTF-16 NUL), then the kernel EFI stub's "Linux initrd"
//!   event (SHA-384 of the initrd).
//!
//! Each RTMR starts at 48 zero bytes; extend is SHA-384(rtmr || digest).

use sha2::{Digest, Sha384};

pub type Digest384 = [u8; 48];

const CALLING_APPLICATION: &[u8] = b"Calling EFI Application from Boot Option";
const EXIT_BOOT_SERVICES: &[u8] = b"Exit Boot Services Invocation";
const EXIT_BOOT_SERVICES_SUCCESS: &[u8] = b"Exit Boot Services Returned with Success";

fn sha384(data: &[u8]) -> Digest384 {
    Sha384::digest(data).into()
}

/// Replays `events` into an RTMR that starts at zero.
pub fn replay(events: &[Digest384]) -> Digest384 {
    events.iter().fold([0u8; 48], |rtmr, event| {
        let mut hasher = Sha384::new();
        hasher.update(rtmr);
        hasher.update(event);
        hasher.finalize().into()
    })
}

/// RTMR1 when firmware loads `images` (Authenticode SHA-384 each, in order).
pub fn rtmr1(images: &[Digest384]) -> Digest384 {
    let mut events = vec![sha384(CALLING_APPLICATION), sha384(&[0u8; 4])];
    events.extend_from_slice(images);
    events.push(sha384(EXIT_BOOT_SERVICES));
    events.push(sha384(EXIT_BOOT_SERVICES_SUCCESS));
    replay(&events)
}

/// The LoadOptions OVMF gives a directly booted kernel, as UTF-16LE with
/// the terminating NUL.
pub fn load_options(cmdline: &str, has_initrd: bool) -> Vec<u8> {
    let mut text = cmdline.to_string();
    if has_initrd {
        text.push_str(" initrd=initrd");
    }
    text.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The measurements of a direct boot (QEMU `-kernel/-initrd/-append`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// `tdvfkernel`: the kernel's Authenticode SHA-384.
    pub kernel_event: Digest384,
    /// `tdvfkernelparams`: SHA-384 of the LoadOptions.
    pub kernel_params_event: Digest384,
    pub rtmr1: Digest384,
    pub rtmr2: Digest384,
}

impl DirectBoot {
    pub fn new(kernel_authenticode: Digest384, cmdline: &str, initrd: Option<&[u8]>) -> Self {
        let kernel_params_event = sha384(&load_options(cmdline, initrd.is_some()));
        let mut rtmr2_events = vec![kernel_params_event];
        rtmr2_events.extend(initrd.map(sha384));
        Self {
            kernel_event: kernel_authenticode,
            kernel_params_event,
            rtmr1: rtmr1(&[kernel_authenticode]),
            rtmr2: replay(&rtmr2_events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_one_event_is_sha384_of_zeros_and_the_event() {
        let event = sha384(b"x");
        let mut expected = [0u8; 96];
        expected[48..].copy_from_slice(&event);
        assert_eq!(replay(&[event]), sha384(&expected));
    }

    #[test]
    fn load_options_are_utf16_with_the_initrd_option_and_a_nul() {
        assert_eq!(load_options("a", false), vec![b'a', 0, 0, 0]);
        let with_initrd = load_options("a", true);
        assert_eq!(with_initrd.len(), (1 + " initrd=initrd".len() + 1) * 2);
        assert!(with_initrd.ends_with(&[b'd', 0, 0, 0]));
    }

    #[test]
    fn the_initrd_changes_rtmr2_but_not_rtmr1() {
        let kernel = sha384(b"kernel");
        let one = DirectBoot::new(kernel, "console=hvc0", Some(b"initrd one"));
        let two = DirectBoot::new(kernel, "console=hvc0", Some(b"initrd two"));
        assert_eq!(one.rtmr1, two.rtmr1);
        assert_eq!(one.kernel_params_event, two.kernel_params_event);
        assert_ne!(one.rtmr2, two.rtmr2);
    }
}
