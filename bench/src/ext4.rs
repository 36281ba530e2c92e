//! A fresh ext4 file system in a sparse image file, loop-mounted for one round
//! of the sync benchmark (shared/docs/BENCHMARKS.md: the root file system here
//! gets very slow at creating files for minutes after many are deleted, so
//! small-file figures are only repeatable on a fresh file system). Both
//! programs' folders, homes and databases go on it. Needs root. Always
//! unmounted and removed: explicitly through [`Image::remove`], else on drop.
//!
//! The loop device reads and writes its image file with direct I/O, so the image
//! behaves like the disk under it. Buffered, the image file has a page cache of
//! its own under the file system's, whose read-ahead and write-back vary from
//! round to round and from step to step: on the machine of 2026-12-07, 1 GiB
//! written with `fsync` took 0.95–4.66 s onto a buffered image, 0.67–0.71 s with
//! direct I/O and 0.74 s onto the root file system; a cold 2-thread read of
//! 1,000 × 1 MiB took 0.64–0.76 s as the first read after the tree was written
//! and 0.67–2.07 s later in the same round (the loop's reads of the image file
//! turned synchronous), 0.91–1.07 s every time with direct I/O.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

/// A mounted, fresh ext4 image.
pub(crate) struct Image {
    file: PathBuf,
    mount: PathBuf,
    mounted: bool,
}

impl Image {
    /// Makes `dir/NAME.img` (sparse, `size` bytes), formats it with the inode
    /// tables and journal written now (so no lazy-init writes land inside a
    /// measurement) and mounts it on `dir/NAME`.
    pub(crate) async fn create(dir: &Path, name: &str, size: u64) -> Result<Self> {
        let file = dir.join(format!("{name}.img"));
        let mount = dir.join(name);
        std::fs::create_dir_all(&mount).with_context(|| format!("cannot create {}", mount.display()))?;
        let f = std::fs::File::create(&file).with_context(|| format!("cannot create {}", file.display()))?;
        f.set_len(size).with_context(|| format!("cannot size {}", file.display()))?;
        drop(f);
        // From here on, drop cleans up.
        let mut image = Self { file, mount, mounted: false };
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard"])
                .arg(&image.file),
            "mkfs.ext4",
        )
        .await?;
        run(Command::new("mount").args(["-o", "loop"]).arg(&image.file).arg(&image.mount), "mount -o loop").await?;
        image.mounted = true;
        image.direct_io().await;
        Ok(image)
    }

    /// Switches the image's loop device to direct I/O (see the module docs). If
    /// it cannot be (a file system under the image without direct I/O, a block
    /// size it does not allow), it stays buffered, with a warning: the figures
    /// are then less repeatable, not wrong.
    async fn direct_io(&self) {
        let dev = match Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(&self.mount).output().await {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            _ => String::new(),
        };
        let why = match dev.strip_prefix("/dev/") {
            Some(name) => {
                let tried =
                    run(Command::new("losetup").arg("--direct-io=on").arg(&dev), "losetup --direct-io=on").await;
                let on = std::fs::read_to_string(format!("/sys/block/{name}/loop/dio")).is_ok_and(|v| v.trim() == "1");
                match tried {
                    _ if on => return,
                    Ok(()) => "the device did not take it".to_owned(),
                    Err(e) => format!("{e:#}"),
                }
            }
            None => format!("no loop device found for it ({dev:?})"),
        };
        eprintln!("  ({} stays on a buffered loop device: {why})", self.file.display());
    }

    /// Where it is mounted.
    pub(crate) fn path(&self) -> &Path {
        &self.mount
    }

    /// Unmounts it and deletes the image. Every process using it must have exited.
    pub(crate) async fn remove(mut self) -> Result<()> {
        if self.mounted {
            run(Command::new("umount").arg(&self.mount), "umount").await?;
            self.mounted = false;
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.mount);
        Ok(())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.mounted {
            let ok = std::process::Command::new("umount")
                .arg(&self.mount)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Still busy (a child not yet reaped): detach it; the kernel finishes when it is free.
                let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
            }
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.mount);
    }
}

async fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().await.with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
