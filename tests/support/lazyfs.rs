//! LazyFS: a FUSE file system that keeps written data in its own cache until fsync and drops
//! what was not fsync'd when `lazyfs::clear-cache` is written to its fault FIFO, which is a
//! power failure on demand. `kill -9` leaves the page cache alone, so a missing fsync never
//! shows in a kill test; under LazyFS it does. LazyFS models file data only: creates and
//! renames reach the disk at once, and it cannot hold socket nodes.
//!
//! LazyFS has no Debian package: it is built from its own repository (docs/durability.md) and
//! found through `POSTA_LAZYFS` (the `lazyfs` binary) or at
//! `/opt/lazyfs-build/src/lazyfs/build/lazyfs`. The tests that need it are `#[ignore]`d with
//! that reason, so a run without it says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::sys::wait_until;

const DEFAULT: &str = "/opt/lazyfs-build/src/lazyfs/build/lazyfs";

/// The lazyfs binary; panics with how to get it.
pub fn binary() -> PathBuf {
    let p = std::env::var_os("POSTA_LAZYFS").map_or_else(|| PathBuf::from(DEFAULT), PathBuf::from);
    assert!(
        p.is_file(),
        "LazyFS not found at {} (set POSTA_LAZYFS to the lazyfs binary; see docs/durability.md)",
        p.display()
    );
    p
}

/// A mounted LazyFS: `mount()` is where the program under test writes, backed by a private
/// directory that holds only what reached the "disk". Unmounted on drop.
pub struct LazyFs {
    child: Child,
    mount: PathBuf,
    fifo: PathBuf,
}

impl LazyFs {
    /// Mounts LazyFS at `dir/mnt` over `dir/root`, with its fault FIFO in `dir`.
    pub fn mount(dir: &Path) -> LazyFs {
        let (mount, root) = (dir.join("mnt"), dir.join("root"));
        fs::create_dir_all(&mount).unwrap();
        fs::create_dir_all(&root).unwrap();
        let fifo = dir.join("faults.fifo");
        let config = dir.join("lazyfs.toml");
        fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{}\"\n[cache]\napply_eviction=false\n\
                 [cache.simple]\ncustom_size=\"512mb\"\nblocks_per_page=1\n\
                 [filesystem]\nlog_all_operations=false\nlogfile=\"\"\n",
                fifo.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary())
            .arg(&mount)
            .arg("--config-path")
            .arg(&config)
            .args(["-o", "allow_other", "-o", "modules=subdir", "-o"])
            .arg(format!("subdir={}", root.display()))
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lazyfs");
        let fs = LazyFs { child, mount, fifo };
        let mounted = || {
            fs::read_to_string("/proc/self/mounts")
                .is_ok_and(|m| m.contains(&format!(" {} fuse", fs.mount.display())))
        };
        wait_until(Duration::from_secs(20), || mounted() && fs.fifo.exists())
            .unwrap_or_else(|_| panic!("lazyfs did not mount at {}", fs.mount.display()));
        fs
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// A power failure: everything written and not fsync'd is gone.
    pub fn clear_cache(&self) {
        fs::write(&self.fifo, "lazyfs::clear-cache\n").expect("write the lazyfs fault fifo");
        // LazyFS reads the FIFO on its own thread; give it the moment it needs to apply it.
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.mount)
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
