//! What PID 1 sets up before any service runs, and powering off: the kernel
//! file systems, kernel modules (the configured ones and those the present
//! hardware asks for), the loopback interface, the host name and the
//! runtime directories.
//!
//! Without udev, modules are found the way udev's coldplug finds them: each
//! device's `modalias` in sysfs goes to a `modprobe -a -b` call.
//!
//! The image has no `/sbin/modprobe`, the kernel's default helper: while the
//! kernel starts, its own module requests (the crypto self-tests ask for
//! templates that are built in) then fail at once instead of waiting for the
//! initramfs to be unpacked and running kmod for nothing — 0.3 s of boot
//! under emulation. pp-init names kmod's modprobe to the kernel before it
//! loads anything, so later requests (nftables expressions) work.

use std::fmt;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nix::mount::{MsFlags, mount};
use nix::sys::socket::{AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::config::Config;

/// kmod as modprobe, where the kernel does not look for it by default.
const MODPROBE: &str = "/usr/lib/pp-init/modprobe";
/// The kernel's module-request helper.
const KERNEL_MODPROBE: &str = "/proc/sys/kernel/modprobe";

/// A step that failed; the boot continues only past optional ones.
#[derive(Debug)]
pub struct SetupError(pub String);

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Mount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
    required: bool,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

const BASE_MOUNTS: &[Mount] = &[
    Mount {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        required: true,
    },
    Mount {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        required: true,
    },
    Mount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
        required: true,
    },
    Mount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        required: false,
    },
    Mount {
        fstype: "tmpfs",
        target: "/run",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
        required: true,
    },
    Mount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        required: true,
    },
    Mount {
        fstype: "cgroup2",
        target: "/sys/fs/cgroup",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        required: false,
    },
    Mount {
        fstype: "securityfs",
        target: "/sys/kernel/security",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        required: false,
    },
];

/// configfs is a module in Debian's kernel: mounted after module loading.
/// It holds the TSM report interface (`/sys/kernel/config/tsm/report`).
const CONFIGFS: Mount = Mount {
    fstype: "configfs",
    target: "/sys/kernel/config",
    flags: NOSUID_NODEV_NOEXEC,
    data: None,
    required: false,
};

/// Mounts the kernel file systems every service expects. Optional ones that
/// fail are reported through `warn`.
pub fn mount_kernel_filesystems(warn: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    BASE_MOUNTS.iter().try_for_each(|m| mount_one(m, warn))
}

pub fn mount_configfs(warn: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    mount_one(&CONFIGFS, warn)
}

fn mount_one(m: &Mount, warn: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    let result = std::fs::create_dir_all(m.target)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            mount(Some(m.fstype), m.target, Some(m.fstype), m.flags, m.data)
                .map_err(|e| e.desc().to_string())
        });
    match result {
        Ok(()) => Ok(()),
        Err(reason) if m.required => Err(SetupError(format!(
            "cannot mount {} on {}: {reason}",
            m.fstype, m.target
        ))),
        Err(reason) => {
            warn(&format!(
                "cannot mount {} on {}: {reason} (continuing without it)",
                m.fstype, m.target
            ));
            Ok(())
        }
    }
}

/// The `modalias` of every device on every bus in `sys` (normally `/sys`),
/// sorted, without repeats.
pub fn device_modaliases(sys: &Path) -> Vec<String> {
    let mut aliases = Vec::new();
    let Ok(buses) = std::fs::read_dir(sys.join("bus")) else {
        return aliases;
    };
    for bus in buses.flatten() {
        let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        for device in devices.flatten() {
            if let Ok(alias) = std::fs::read_to_string(device.path().join("modalias")) {
                let alias = alias.trim();
                if !alias.is_empty() {
                    aliases.push(alias.to_string());
                }
            }
        }
    }
    aliases.sort();
    aliases.dedup();
    aliases
}

/// From now on the kernel's module requests run MODPROBE.
pub fn enable_module_requests() -> Result<(), SetupError> {
    std::fs::write(KERNEL_MODPROBE, MODPROBE)
        .map_err(|e| SetupError(format!("cannot set {KERNEL_MODPROBE}: {e}")))
}

/// Loads the modules matching the devices' `aliases` and the configured
/// `modules` with two `modprobe -a -b -q` runs side by side (`-b`: honour
/// blacklists), so the NIC's driver, which DHCP needs first, does not wait
/// for the nftables modules (0.6 s became 0.4 s under TCG). Their exit
/// status is not checked: it is 1 whenever some alias matches no module,
/// which is the rule (built-in drivers, devices nobody drives); a module that
/// matters and fails to load shows in the service that needs it.
pub fn load_modules(modules: &[String], aliases: &[String]) -> Result<(), SetupError> {
    if !Path::new(MODPROBE).exists() {
        return Err(SetupError(format!(
            "{MODPROBE} is missing: no kernel modules loaded"
        )));
    }
    let runs = [aliases, modules]
        .into_iter()
        .filter(|names| !names.is_empty())
        .map(|names| {
            Command::new(MODPROBE)
                .args(["-a", "-b", "-q"])
                .args(names)
                .spawn()
                .map_err(|e| SetupError(format!("cannot run {MODPROBE}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut run in runs {
        run.wait()
            .map_err(|e| SetupError(format!("cannot wait for {MODPROBE}: {e}")))?;
    }
    Ok(())
}

/// Creates each configured runtime directory and sets its mode.
pub fn create_directories(config: &Config) -> Result<(), SetupError> {
    for (path, &mode) in &config.directories {
        let fail = |e: std::io::Error| SetupError(format!("cannot create {}: {e}", path.display()));
        std::fs::create_dir_all(path).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    }
    Ok(())
}

/// Sets the host name from the first line of `file` (`/etc/hostname`).
pub fn set_hostname_from(file: &Path) -> Result<(), SetupError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| SetupError(format!("cannot read {}: {e}", file.display())))?;
    let name = text.lines().next().unwrap_or("").trim();
    nix::unistd::sethostname(name).map_err(|e| {
        SetupError(format!(
            "cannot set the host name to {name:?}: {}",
            e.desc()
        ))
    })
}

// Netlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if.h).
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 2;
const IFF_UP: u32 = 0x1;

/// Sets the loopback interface up (one rtnetlink RTM_NEWLINK request), so
/// services can listen on and reach 127.0.0.1.
pub fn loopback_up() -> Result<(), SetupError> {
    let fail =
        |what: &str, e: nix::Error| SetupError(format!("cannot set lo up: {what}: {}", e.desc()));
    let index = nix::net::if_::if_nametoindex("lo").map_err(|e| fail("no interface lo", e))?;
    let socket = nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| fail("netlink socket", e))?;
    let request = link_up_request(index);
    nix::sys::socket::sendto(
        socket.as_raw_fd(),
        &request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| fail("netlink send", e))?;
    let mut reply = [0u8; 256];
    let len = nix::sys::socket::recv(socket.as_raw_fd(), &mut reply, MsgFlags::empty())
        .map_err(|e| fail("netlink receive", e))?;
    match ack_error(&reply[..len]) {
        Some(0) => Ok(()),
        Some(errno) => Err(fail("the kernel refused", nix::Error::from_raw(-errno))),
        None => Err(SetupError(
            "cannot set lo up: unexpected netlink reply".into(),
        )),
    }
}

/// struct nlmsghdr + struct ifinfomsg asking for IFF_UP on `index`.
fn link_up_request(index: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()); // nlmsg_flags
    msg.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it
    msg.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&index.to_ne_bytes()); // ifi_index
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    msg
}

/// The error field of an NLMSG_ERROR reply (0 is the acknowledgement).
fn ack_error(reply: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR {
        return None;
    }
    Some(i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?))
}

/// Powers the pod off at once (its disk is guest memory: nothing to keep).
pub fn power_off() -> SetupError {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => SetupError(format!("reboot(2) power-off failed: {}", e.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_request_has_the_kernel_layout() {
        let msg = link_up_request(1);
        assert_eq!(msg.len(), 32);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 32);
        assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 1);
        assert_eq!(&msg[24..32], &[1, 0, 0, 0, 1, 0, 0, 0][..]);
    }

    #[test]
    fn acks_are_read_and_anything_else_is_not() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(ack_error(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(ack_error(&ack), Some(-1));
        assert_eq!(ack_error(&ack[..10]), None);
        ack[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        assert_eq!(ack_error(&ack), None);
    }

    #[test]
    fn modaliases_are_collected_from_every_bus() {
        let sys = std::env::temp_dir().join(format!("pp-init-sys-{}", std::process::id()));
        for (bus, device, alias) in [
            ("virtio", "virtio0", "virtio:d00000001v00001AF4\n"),
            ("virtio", "virtio1", "virtio:d00000001v00001AF4\n"),
            ("platform", "sev-guest", "platform:sev-guest\n"),
            ("platform", "empty", "\n"),
        ] {
            let dir = sys.join("bus").join(bus).join("devices").join(device);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("modalias"), alias).unwrap();
        }
        std::fs::create_dir_all(sys.join("bus/none/devices/x")).unwrap();
        assert_eq!(
            device_modaliases(&sys),
            ["platform:sev-guest", "virtio:d00000001v00001AF4"]
        );
        std::fs::remove_dir_all(&sys).unwrap();
        assert!(device_modaliases(&sys).is_empty());
    }
}
