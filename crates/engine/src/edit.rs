//! What a user does to a folder from the drive: make a directory, rename or move an
//! entry, bring files in (copied from local paths, or received as an upload stream).
//!
//! Every operation goes through the folder root's handle, so no name and no symlink
//! inside the folder can redirect it elsewhere, and nothing existing is ever replaced:
//! an incoming name that is taken becomes "name (2).ext".

use std::io::{Read, Write};
use std::path::Path;

use cap_std::fs::{Dir, OpenOptions};
use peerbox_proto::RelPath;

use crate::EngineError;
use crate::download::{TEMP_PREFIX, ensure_dir, sync_parent};

/// Copies at most this many entries from one dropped folder, so a mistaken drop of
/// a huge tree stops with an error rather than filling the disk unattended.
const MAX_COPY_ENTRIES: usize = 100_000;

fn taken(root: &Dir, rel: &str) -> bool {
    root.symlink_metadata(rel).is_ok()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") }
}

pub(crate) fn checked(root_path: &Path, s: &str) -> Result<RelPath, EngineError> {
    RelPath::new(s).map_err(|e| EngineError::Path(root_path.join(s), e))
}

/// `rel` if free, else the first free "stem (n).ext" beside it.
pub fn free_name(root: &Dir, root_path: &Path, rel: &RelPath) -> Result<RelPath, EngineError> {
    if !taken(root, rel.as_str()) {
        return Ok(rel.clone());
    }
    let file = rel.file_name();
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    };
    let parent = rel.as_str().rsplit_once('/').map_or("", |(p, _)| p);
    for n in 2..10_000 {
        let candidate = checked(root_path, &join(parent, &format!("{stem} ({n}){ext}")))?;
        if !taken(root, candidate.as_str()) {
            return Ok(candidate);
        }
    }
    Err(EngineError::Exists(root_path.join(rel.as_str())))
}

/// Creates a new directory; refuses if anything is at `rel` already.
pub fn new_dir(root: &Dir, root_path: &Path, rel: &RelPath) -> Result<(), EngineError> {
    if taken(root, rel.as_str()) {
        return Err(EngineError::Exists(root_path.join(rel.as_str())));
    }
    ensure_dir(root, root_path, rel.as_str())?;
    let _ = sync_parent(root, rel);
    Ok(())
}

/// Renames or moves `from` to `to` inside the folder. Refuses to replace anything,
/// to move a directory into itself, and to touch the folder's own `.peerbox`.
pub fn rename(root: &Dir, root_path: &Path, from: &RelPath, to: &RelPath) -> Result<(), EngineError> {
    let shown = root_path.join(from.as_str());
    root.symlink_metadata(from.as_str()).map_err(|e| EngineError::io(&shown, e))?;
    if to.as_str().starts_with(&format!("{}/", from.as_str())) {
        return Err(EngineError::Refused(format!("{}: a folder cannot move into itself", shown.display())));
    }
    // The same name in another case is a rename on every filesystem we target, but
    // on a case-insensitive one `to` looks taken by `from` itself.
    let same_entry = from.collision_key() == to.collision_key();
    if !same_entry && taken(root, to.as_str()) {
        return Err(EngineError::Exists(root_path.join(to.as_str())));
    }
    if let Some((parent, _)) = to.as_str().rsplit_once('/') {
        ensure_dir(root, root_path, parent)?;
    }
    root.rename(from.as_str(), root, to.as_str()).map_err(|e| EngineError::io(&shown, e))?;
    let _ = sync_parent(root, to);
    Ok(())
}

/// A file being received into the folder: written to a temp file beside its
/// destination and moved into place (under a free name) only when complete.
pub struct Incoming {
    file: std::fs::File,
    tmp: String,
    /// None inside a temp tree, where the name is fresh and final.
    want: Option<RelPath>,
    fixed: String,
    bytes: u64,
}

impl Incoming {
    /// Starts receiving a file meant for `rel`.
    pub fn start(root: &Dir, root_path: &Path, rel: &RelPath) -> Result<Self, EngineError> {
        let parent = rel.as_str().rsplit_once('/').map_or("", |(p, _)| p);
        if !parent.is_empty() {
            ensure_dir(root, root_path, parent)?;
        }
        Self::start_at(root, root_path, parent, Some(rel.clone()), rel.as_str().to_owned())
    }

    fn start_at(
        root: &Dir,
        root_path: &Path,
        parent: &str,
        want: Option<RelPath>,
        fixed: String,
    ) -> Result<Self, EngineError> {
        let nonce: u64 = rand_u64();
        let tmp = join(parent, &format!("{TEMP_PREFIX}in-{nonce:016x}"));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        let file = root.open_with(&tmp, &opts).map_err(|e| EngineError::io(&root_path.join(&tmp), e))?.into_std();
        Ok(Self { file, tmp, want, fixed, bytes: 0 })
    }

    /// Appends bytes.
    pub fn write(&mut self, root_path: &Path, data: &[u8]) -> Result<(), EngineError> {
        self.file.write_all(data).map_err(|e| EngineError::io(&root_path.join(&self.tmp), e))?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Makes the file durable and moves it to a free name near the one wanted;
    /// returns that name.
    pub fn finish(self, root: &Dir, root_path: &Path) -> Result<String, EngineError> {
        self.file.sync_all().map_err(|e| EngineError::io(&root_path.join(&self.tmp), e))?;
        let dest = match &self.want {
            Some(want) => free_name(root, root_path, want)?.as_str().to_owned(),
            None => self.fixed.clone(),
        };
        // Between free_name and here another writer could take the name; a hard
        // link fails instead of replacing, so nothing is ever overwritten.
        if let Err(e) = root.hard_link(&self.tmp, root, &dest) {
            let _ = root.remove_file(&self.tmp);
            return Err(EngineError::io(&root_path.join(&dest), e));
        }
        let _ = root.remove_file(&self.tmp);
        let parent = dest.rsplit_once('/').map_or(".", |(p, _)| p);
        if let Ok(d) = root.open(parent) {
            let _ = d.into_std().sync_all();
        }
        Ok(dest)
    }

    /// Gives up: removes the temp file.
    pub fn abort(self, root: &Dir) {
        drop(self.file);
        let _ = root.remove_file(&self.tmp);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    RandomState::new().hash_one(t.as_nanos())
}

/// Copies a local file or folder tree (`src`, anywhere on this machine) into the
/// folder as `dest` (or a free name near it). Symlinks and special files inside a
/// copied tree are left out, and listed. Returns the top-level name used and what
/// was left out.
pub fn copy_in(
    root: &Dir,
    root_path: &Path,
    src: &Path,
    dest: &RelPath,
) -> Result<(RelPath, Vec<String>), EngineError> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| EngineError::io(src, e))?;
    let top = free_name(root, root_path, dest)?;
    let mut skipped = Vec::new();
    if meta.is_file() {
        copy_file(root, root_path, src, top.as_str())?;
        return Ok((top, skipped));
    }
    if !meta.is_dir() {
        return Err(EngineError::io(src, std::io::Error::other("not a regular file or folder")));
    }
    // A directory: copy into a temp tree, then rename it into place in one step,
    // so members never see half a folder under its real name.
    let parent = top.as_str().rsplit_once('/').map_or("", |(p, _)| p);
    // Temp names are reserved, so the temp tree is addressed by plain strings made
    // of names that each passed validation.
    let tmp_top = join(parent, &format!("{TEMP_PREFIX}dir-{:016x}", rand_u64()));
    let result = (|| {
        root.create_dir(&tmp_top).map_err(|e| EngineError::io(&root_path.join(&tmp_top), e))?;
        let mut stack = vec![(src.to_path_buf(), tmp_top.clone())];
        let mut count = 0usize;
        while let Some((dir, rel)) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(|e| EngineError::io(&dir, e))?;
            for e in rd {
                let e = e.map_err(|e| EngineError::io(&dir, e))?;
                count += 1;
                if count > MAX_COPY_ENTRIES {
                    return Err(EngineError::io(
                        src,
                        std::io::Error::other(format!(
                            "more than {MAX_COPY_ENTRIES} entries; add it as a folder instead"
                        )),
                    ));
                }
                let path = e.path();
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    skipped.push(format!("{}: the name is not valid UTF-8", path.display()));
                    continue;
                };
                if let Err(err) = RelPath::new(&name) {
                    skipped.push(format!("{}: {err}", path.display()));
                    continue;
                }
                let child = join(&rel, &name);
                let ft = e.file_type().map_err(|err| EngineError::io(&path, err))?;
                if ft.is_dir() {
                    root.create_dir(&child).map_err(|err| EngineError::io(&path, err))?;
                    stack.push((path, child));
                } else if ft.is_file() {
                    copy_file(root, root_path, &path, &child)?;
                } else {
                    skipped.push(format!("{}: a link or special file, left out", path.display()));
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = root.remove_dir_all(&tmp_top);
        return Err(e);
    }
    let top = free_name(root, root_path, &top)?;
    root.rename(&tmp_top, root, top.as_str()).map_err(|e| EngineError::io(&root_path.join(top.as_str()), e))?;
    let _ = sync_parent(root, &top);
    Ok((top, skipped))
}

fn copy_file(root: &Dir, root_path: &Path, src: &Path, dest: &str) -> Result<(), EngineError> {
    let mut from = std::fs::File::open(src).map_err(|e| EngineError::io(src, e))?;
    let parent = dest.rsplit_once('/').map_or("", |(p, _)| p);
    let mut incoming = match RelPath::new(dest) {
        Ok(rel) => Incoming::start(root, root_path, &rel)?,
        Err(_) => Incoming::start_at(root, root_path, parent, None, dest.to_owned())?,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                incoming.abort(root);
                return Err(EngineError::io(src, e));
            }
        };
        if let Err(e) = incoming.write(root_path, &buf[..n]) {
            incoming.abort(root);
            return Err(e);
        }
    }
    if let Ok(m) = std::fs::metadata(src).and_then(|m| m.modified()) {
        let _ = incoming.file.set_modified(m);
    }
    incoming.finish(root, root_path).map(|_| ())
}
