//! A fresh ext4 file system in a sparse image file, loop-mounted for one round
//! of the sync benchmark (shared/docs/BENCHMARKS.md: the root file system here
//! gets very slow at creating files for minutes after many are deleted, so
//! small-file figures are only repeatable on a fresh file system). Both
//! programs' folders, homes and databases go on it. Needs root. Always
//! unmounted and removed: explicitly through [`Image::remove`], else on drop.

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
        Ok(image)
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
