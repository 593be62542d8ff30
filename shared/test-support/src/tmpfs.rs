//! A small tmpfs for tests of what happens when the state directory is
//! full: mounted on a directory, filled on request, unmounted (and the
//! directory removed when empty) on drop. Mounting needs root.

extern crate std;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::vec;

/// A tmpfs mounted on a directory; unmounted on drop.
pub struct SmallTmpfs(PathBuf);

impl SmallTmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"64k"`) on `dir`, creating `dir`.
    pub fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir_all(dir).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(std::format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); run the tests as root"
        );
        Self(dir.to_path_buf())
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The file [`fill`](Self::fill) writes; remove it to free the space.
    pub fn filler(&self) -> PathBuf {
        self.0.join("filler")
    }

    /// Writes one file until the file system is full.
    pub fn fill(&self) {
        let mut file = File::create(self.filler()).expect("create the filler");
        let block = vec![0xa5u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}
