//! The drive's edits to a folder: new directory, rename or move, delete (into the
//! folder's trash), copy local paths in, receive an upload, settle a conflict, and
//! find a local file to hand out. Each edit then asks the folder task to rescan
//! the paths it touched, so members hear of it at once rather than at the watcher's
//! next event.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use peerbox_engine::edit;
use peerbox_engine::folder as disk;
use peerbox_proto::RelPath;
use peerbox_store::{FolderMode, FolderRow};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Folders, Kick};
use crate::NodeError;

/// How long an edit's answer waits for the index to catch up. The edit is done
/// either way; past this, the listing shows it a moment later.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until a folder's index has moved past where it was when this was made.
pub(crate) struct IndexWaiter {
    rx: Option<tokio::sync::watch::Receiver<u64>>,
    start: u64,
}

impl IndexWaiter {
    pub(crate) async fn wait(self) {
        if let Some(mut rx) = self.rx {
            let start = self.start;
            let _ = tokio::time::timeout(INDEX_WAIT, rx.wait_for(|seq| *seq > start)).await;
        }
    }
}

/// Chunks of an upload queued for the writer: bounds memory per upload.
const UPLOAD_QUEUE: usize = 8;

/// What an upload or copy produced.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// The path in the folder (may differ from the one asked for: never overwrites).
    pub path: String,
    /// Where that is on this machine.
    pub abs: PathBuf,
    /// Bytes written.
    pub bytes: u64,
}

pub(crate) fn rel(path: &str) -> Result<RelPath, NodeError> {
    RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })
}

fn dir_rel(path: &str) -> Result<Option<RelPath>, NodeError> {
    if path.is_empty() { Ok(None) } else { rel(path).map(Some) }
}

fn child(dir: Option<&RelPath>, name: &str) -> Result<RelPath, NodeError> {
    let name = name.trim();
    if name.contains('/') {
        return Err(NodeError::BadPath { path: name.into(), reason: "a name cannot contain '/'".into() });
    }
    rel(&match dir {
        Some(d) => format!("{}/{name}", d.as_str()),
        None => name.to_owned(),
    })
}

impl Folders {
    /// A folder this device may change.
    pub(super) fn writable(&self, key: &str) -> Result<FolderRow, NodeError> {
        let f = self.resolve(key)?;
        if !f.read_write || f.mode == FolderMode::ReceiveOnly {
            return Err(NodeError::BadPath {
                path: f.path.clone(),
                reason: "this folder is read-only on this device; changes here would not reach the others".into(),
            });
        }
        if let Some(why) = &f.paused {
            return Err(NodeError::BadPath { path: f.path.clone(), reason: format!("this folder is paused: {why}") });
        }
        Ok(f)
    }

    /// Something to await after an edit so the answer comes once the index (and
    /// so a listing) shows it. Taken before the edit.
    pub(crate) fn index_waiter(&self, key: &str) -> Result<IndexWaiter, NodeError> {
        let f = self.resolve(key)?;
        let rx = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&f.id).map(|r| r.seq.subscribe());
        let start = rx.as_ref().map(|r| *r.borrow()).unwrap_or(0);
        Ok(IndexWaiter { rx, start })
    }

    fn rescan(&self, f: &FolderRow, paths: Vec<String>) {
        self.kick(&f.id, Kick::Scan(paths));
    }

    /// Refuses entries that exist only on other devices (on-demand): they have no
    /// local file to rename or delete.
    fn local_entry(&self, f: &FolderRow, path: &RelPath) -> Result<(), NodeError> {
        let root = disk::open_root(&f.path)?;
        if root.symlink_metadata(path.as_str()).is_err() {
            return Err(NodeError::BadPath {
                path: f.path.join(path.as_str()),
                reason: "not on this device (remote-only or already gone); keep it offline first".into(),
            });
        }
        Ok(())
    }

    /// Makes a new directory `name` inside `dir`.
    pub(crate) fn mkdir(&self, key: &str, dir: &str, name: &str) -> Result<String, NodeError> {
        let f = self.writable(key)?;
        let path = child(dir_rel(dir)?.as_ref(), name)?;
        edit::new_dir(&disk::open_root(&f.path)?, &f.path, &path)?;
        self.rescan(&f, vec![path.as_str().to_owned()]);
        Ok(path.as_str().to_owned())
    }

    /// Renames or moves `from` to `to` (both paths in the folder).
    pub(crate) fn rename(&self, key: &str, from: &str, to: &str) -> Result<(), NodeError> {
        let f = self.writable(key)?;
        let (from, to) = (rel(from)?, rel(to)?);
        self.local_entry(&f, &from)?;
        edit::rename(&disk::open_root(&f.path)?, &f.path, &from, &to)?;
        self.rescan(&f, vec![from.as_str().to_owned(), to.as_str().to_owned()]);
        Ok(())
    }

    /// Moves entries into the folder's trash (members move theirs there too).
    pub(crate) fn delete(&self, key: &str, paths: &[String]) -> Result<usize, NodeError> {
        let f = self.writable(key)?;
        let rels = paths.iter().map(|p| rel(p)).collect::<Result<Vec<_>, _>>()?;
        for r in &rels {
            self.local_entry(&f, r)?;
        }
        let root = disk::open_root(&f.path)?;
        let mut done = Vec::new();
        for r in &rels {
            // Stop at the first failure but still announce what already moved.
            if let Err(e) = disk::trash(&root, &f.path, r) {
                self.rescan(&f, done);
                return Err(e.into());
            }
            done.push(r.as_str().to_owned());
        }
        let n = done.len();
        self.rescan(&f, done);
        Ok(n)
    }

    /// Copies local files or folders (absolute paths on this machine, e.g. dropped
    /// on the desktop window) into `dir` of the folder.
    pub(crate) fn add_paths(&self, key: &str, dir: &str, paths: &[PathBuf]) -> Result<serde_json::Value, NodeError> {
        let f = self.writable(key)?;
        let dir = dir_rel(dir)?;
        let root = disk::open_root(&f.path)?;
        let canon_root = std::fs::canonicalize(&f.path).map_err(|e| NodeError::io(&f.path, e))?;
        let mut added = Vec::new();
        let mut skipped = Vec::new();
        for p in paths {
            if !p.is_absolute() {
                return Err(NodeError::BadPath { path: p.clone(), reason: "give an absolute path".into() });
            }
            // Copying a folder into itself would never end.
            if std::fs::canonicalize(p).is_ok_and(|c| canon_root.starts_with(&c)) {
                return Err(NodeError::BadPath { path: p.clone(), reason: "cannot copy a folder into itself".into() });
            }
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| NodeError::BadPath { path: p.clone(), reason: "the name is not valid UTF-8".into() })?;
            let want = child(dir.as_ref(), name)?;
            let (top, left_out) = edit::copy_in(&root, &f.path, p, &want)?;
            added.push(top.as_str().to_owned());
            skipped.extend(left_out);
        }
        self.rescan(&f, added.clone());
        Ok(serde_json::json!({ "added": added, "skipped": skipped }))
    }

    /// Receives a file into the folder (or, with no folder, into `drop_dir`, where
    /// files for quick shares land) from a stream of chunks. Nothing is left behind
    /// if the stream fails; an existing file is never replaced.
    pub(crate) async fn upload(
        &self,
        key: Option<&str>,
        drop_dir: &Path,
        path: &str,
        mut chunks: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<Added, NodeError> {
        let want = rel(path)?;
        let (root_path, folder) = match key {
            Some(k) => {
                let f = self.writable(k)?;
                (f.path.clone(), Some(f))
            }
            None => {
                std::fs::create_dir_all(drop_dir.join(disk::MARKER)).map_err(|e| NodeError::io(drop_dir, e))?;
                (drop_dir.to_owned(), None)
            }
        };
        let root = disk::open_root(&root_path)?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(UPLOAD_QUEUE);
        let writer_root = root.try_clone().map_err(|e| NodeError::io(&root_path, e))?;
        let writer_path = root_path.clone();
        // The writer only writes; whether the file is kept is decided here, once the
        // stream has ended well or badly.
        let writer = tokio::task::spawn_blocking(move || -> Result<edit::Incoming, NodeError> {
            let mut incoming = edit::Incoming::start(&writer_root, &writer_path, &want)?;
            while let Some(chunk) = rx.blocking_recv() {
                if let Err(e) = incoming.write(&writer_path, &chunk) {
                    incoming.abort(&writer_root);
                    return Err(e.into());
                }
            }
            Ok(incoming)
        });
        let mut failed = None;
        while let Some(c) = chunks.recv().await {
            match c {
                Ok(b) => {
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let incoming = writer.await.map_err(|e| NodeError::Internal(e.to_string()))??;
        let finish_path = root_path.clone();
        let done = tokio::task::spawn_blocking(move || match failed {
            Some(e) => {
                incoming.abort(&root);
                Err(NodeError::Incomplete(format!("the upload broke off: {e}")))
            }
            None => {
                let bytes = incoming.bytes();
                Ok((incoming.finish(&root, &finish_path)?, bytes))
            }
        });
        let (path, bytes) = done.await.map_err(|e| NodeError::Internal(e.to_string()))??;
        if let Some(f) = folder {
            self.rescan(&f, vec![path.clone()]);
        }
        let abs = root_path.join(&path);
        Ok(Added { path, abs, bytes })
    }

    /// Settles a conflict: `keep` "copy" puts the conflict copy in the original's
    /// place (the original goes to the trash); "original" trashes the copy.
    pub(crate) fn resolve_conflict(&self, key: &str, copy: &str, keep: &str) -> Result<String, NodeError> {
        let f = self.writable(key)?;
        let copy = rel(copy)?;
        let original = original_of(&copy).ok_or_else(|| NodeError::BadPath {
            path: copy.as_str().into(),
            reason: "not a conflict copy (its name has no .sync-conflict- part)".into(),
        })?;
        self.local_entry(&f, &copy)?;
        let root = disk::open_root(&f.path)?;
        match keep {
            "original" => disk::trash(&root, &f.path, &copy)?,
            "copy" => {
                if root.symlink_metadata(original.as_str()).is_ok() {
                    disk::trash(&root, &f.path, &original)?;
                }
                edit::rename(&root, &f.path, &copy, &original)?;
            }
            other => {
                return Err(NodeError::BadPath {
                    path: other.into(),
                    reason: "say which to keep: \"original\" or \"copy\"".into(),
                });
            }
        }
        self.rescan(&f, vec![copy.as_str().to_owned(), original.as_str().to_owned()]);
        Ok(original.as_str().to_owned())
    }

    /// The absolute path of a local file in a folder, for handing it to the user
    /// (download in a browser, open with the system's app).
    /// Opens a local file of a folder for reading through the folder's root
    /// handle: a name swapped for a link out of the folder since it was listed
    /// cannot make it hand out anything else.
    pub(crate) fn open_local(&self, key: &str, path: &str) -> Result<std::fs::File, NodeError> {
        let f = self.resolve(key)?;
        let r = rel(path)?;
        let root = disk::open_root(&f.path)?;
        match root.symlink_metadata(r.as_str()) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(NodeError::BadPath { path: r.as_str().into(), reason: "not a file on this device".into() });
            }
        }
        root.open(r.as_str()).map(|f| f.into_std()).map_err(|e| NodeError::io(&f.path.join(r.as_str()), e))
    }

    pub(crate) fn local_file(&self, key: &str, path: &str) -> Result<PathBuf, NodeError> {
        let f = self.resolve(key)?;
        let r = rel(path)?;
        let root = disk::open_root(&f.path)?;
        match root.symlink_metadata(r.as_str()) {
            Ok(m) if m.is_file() => Ok(f.path.join(r.as_str())),
            Ok(_) => Err(NodeError::BadPath { path: r.as_str().into(), reason: "not a file".into() }),
            Err(_) => Err(NodeError::BadPath {
                path: r.as_str().into(),
                reason: "not on this device yet; keep it offline first".into(),
            }),
        }
    }
}

/// `dir/name.sync-conflict-YYYYMMDD-HHMMSS-dev.ext` → `dir/name.ext`.
fn original_of(copy: &RelPath) -> Option<RelPath> {
    let s = copy.as_str();
    let at = s.rfind(".sync-conflict-")?;
    let rest = &s[at + ".sync-conflict-".len()..];
    // YYYYMMDD-HHMMSS-device, then the extension (if any) from the first dot.
    let ext = rest.find('.').map_or("", |i| &rest[i..]);
    RelPath::new(&format!("{}{ext}", &s[..at])).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_copies_name_their_original() {
        let o = |s: &str| original_of(&RelPath::new(s).unwrap()).map(|r| r.as_str().to_owned());
        assert_eq!(o("a/notes.sync-conflict-20261125-101010-abcd.txt").as_deref(), Some("a/notes.txt"));
        assert_eq!(o("Makefile.sync-conflict-20261125-101010-abcd").as_deref(), Some("Makefile"));
        assert_eq!(o("plain.txt"), None);
    }
}
