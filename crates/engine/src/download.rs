//! Receiving a manifest into a destination folder: planning, verified block writes,
//! resume and the final rename.
//!
//! Every file is written into a temp file next to its destination, named by a hash
//! of its path and block list (so names never overflow and a rerun finds the same
//! temp file). A folder that is not at the destination yet is filled under a temp
//! name of its own instead, its files under their own names, and put in place
//! whole (see [`Stage`]). Each block is checked against its hash and length before
//! it touches the disk. When all blocks are in, a batch of files at once: restore
//! mtimes and modes, make the data durable, check each destination again, rename,
//! fsync each directory. A rerun re-verifies what the temp file already holds and
//! fetches only the rest.
//!
//! All paths are opened through a `cap_std` handle on the destination, so neither a
//! hostile name nor a symlink can lead a write outside it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use peerbox_proto::RelPath;
use peerbox_proto::manifest::{BlockHash, Entry, EntryKind, FileMeta, block_count, block_len};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::scan::hash_block;
use crate::{EngineError, io};

/// From this many files a batch is made durable with one `syncfs` (Linux).
pub(crate) const SYNCFS_FROM: usize = 16;

/// Completed files of a link download after which a sync of the filesystem is
/// started while the rest arrive (see [`Download::completed`]). Left to the end,
/// that sync of 10,000 small files took ~100 ms with both cores idle (perf).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const AHEAD_FILES: u64 = 1000;

/// Prefix of temp files; a peer can never name a file like this (see `RelPath`).
pub const TEMP_PREFIX: &str = ".peerbox-tmp-";

/// One file of a download.
#[derive(Debug)]
pub struct PlannedFile {
    /// Index of the entry in the manifest (what block requests name).
    pub index: u32,
    /// Where it goes under the destination.
    pub path: RelPath,
    /// Size and blocks.
    pub meta: FileMeta,
    /// Whether it still needs blocks.
    pub status: FileStatus,
}

/// A file's state at planning time.
#[derive(Debug)]
pub enum FileStatus {
    /// Already at its destination with identical content.
    InPlace,
    /// Being assembled in a temp file.
    Pending(Arc<TempFile>),
}

/// A planned download: the destination handle and every file's state.
#[derive(Debug)]
pub struct Download {
    root: Arc<Dir>,
    root_path: PathBuf,
    overwrite: bool,
    /// Files, in manifest order.
    pub files: Vec<PlannedFile>,
    /// Entries left out, with the reason (collisions, unsafe names).
    pub problems: Vec<String>,
    /// Bytes already present and verified (in place or in temp files).
    pub resumed_bytes: u64,
    /// Files completed since a sync of the filesystem was last started (see
    /// [`Download::completed`]).
    synced: SyncAhead,
    /// Folders filled under a temp name.
    stages: Vec<Stage>,
}

/// Whether a new folder is filled under a temp name and renamed into place whole,
/// which needs a rename that refuses to replace (Linux). Elsewhere its files are
/// put in place one by one.
const STAGE_FOLDERS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// A top folder of the download that was not at the destination when it was
/// planned (most downloads make a new folder). It is made under a temp name (a
/// hash of what it holds, so a rerun of the same link finds it), its files are
/// written there under their own names, and once every one is complete and
/// durable one rename puts the whole folder in place. Putting 10,000 small
/// files in place one by one took 60–80 ms of a 0.44 s download: a rename each,
/// all queued on their folder's lock. The folder appears whole or not at all,
/// as each file does otherwise. If something took its name meanwhile, its files
/// are put in place one by one, as any other's.
#[derive(Debug)]
struct Stage {
    /// The folder's name at the top of the destination.
    top: String,
    /// Its temp name there.
    tmp: String,
    /// The folders under it the manifest lists (made in place of the stage when
    /// it cannot move whole).
    dirs: Vec<RelPath>,
    /// Its files: positions in [`Download::files`].
    files: Vec<usize>,
}

impl Stage {
    /// Where `path` (this folder or one under it) is while the download runs.
    fn staged(&self, path: &str) -> String {
        match path.strip_prefix(self.top.as_str()).and_then(|rest| rest.strip_prefix('/')) {
            Some(rest) => format!("{}/{rest}", self.tmp),
            None => self.tmp.clone(),
        }
    }
}

/// The temp names of the top folders `tops`: each a hash of everything the
/// manifest puts under it, so a rerun of the same manifest resumes there and a
/// changed one never finds another's files. One pass over the manifest; in the
/// order of `tops`, so the stages (and the temp list a cancel reads) keep it.
fn stage_names<'a>(tops: &BTreeSet<&'a str>, entries: &[(RelPath, Entry)]) -> BTreeMap<&'a str, String> {
    let mut hashers: BTreeMap<&str, Sha256> = tops
        .iter()
        .map(|&top| {
            let mut h = Sha256::new();
            h.update(b"stage\0");
            h.update(top.as_bytes());
            h.update([0]);
            (top, h)
        })
        .collect();
    for (path, entry) in entries {
        let Some(h) = path.ancestors().next().and_then(|top| hashers.get_mut(top)) else { continue };
        h.update(path.as_str().as_bytes());
        h.update([0]);
        match &entry.kind {
            EntryKind::Dir => h.update([1]),
            EntryKind::File(meta) => {
                h.update([2]);
                h.update(meta.size.to_be_bytes());
                h.update(meta.block_size.to_be_bytes());
                for b in &meta.blocks {
                    h.update(b);
                }
            }
        }
    }
    hashers.into_iter().map(|(top, h)| (top, format!("{TEMP_PREFIX}{}", hex::encode(&h.finalize()[..16])))).collect()
}

/// A sync started every so often while a download goes on, on a thread of its
/// own, one at a time. Only a head start: the final sync, which makes the data
/// durable before it is put in place, reports errors.
#[derive(Debug, Default)]
struct SyncAhead {
    /// Work done since a sync was last started (bytes, files).
    since: std::sync::atomic::AtomicU64,
    running: Arc<std::sync::atomic::AtomicBool>,
}

impl SyncAhead {
    /// Counts `n` more; once `every` is reached, starts the sync `make` returns,
    /// unless the last one is still running.
    fn add<F: FnOnce() + Send + 'static>(&self, n: u64, every: u64, make: impl FnOnce() -> Option<F>) {
        use std::sync::atomic::Ordering;
        if self.since.fetch_add(n, Ordering::Relaxed) + n < every || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since.store(0, Ordering::Relaxed);
        let running = self.running.clone();
        let started = make().and_then(|sync| {
            std::thread::Builder::new()
                .name("peerbox-sync".into())
                .spawn(move || {
                    sync();
                    running.store(false, Ordering::Release);
                })
                .ok()
        });
        if started.is_none() {
            self.running.store(false, Ordering::Release);
        }
    }
}

/// A temp file being filled with verified blocks.
#[derive(Debug)]
pub struct TempFile {
    /// The open file, when it is. Held while writing: blocks are verified on
    /// several threads at once, but writes to one file take the inode's lock in
    /// the kernel anyway, and threads waiting there spin, burning the CPU the
    /// network and the hashing need.
    file: Mutex<Option<std::fs::File>>,
    /// Set for a link download's temp files, which are opened on their first
    /// block and closed once complete, so a link of any number of files holds
    /// about a window's worth open, whatever the open-file limit. A folder pull
    /// keeps its own open: its batches are sized to the limit.
    reopen: Option<Arc<Dir>>,
    /// A folder pull's file of one block: made by that block's write (see
    /// [`lazy_temp`]), then kept open like the pull's others.
    keep_open: bool,
    /// For such a file, its folder: there (on Linux) it is made without a name,
    /// and given its own when put in place (see [`TempFile::name_as`]).
    folder: Option<Arc<Dir>>,
    /// It has no name yet.
    unnamed: std::sync::atomic::AtomicBool,
    tmp: PathBuf,
    meta: FileMeta,
    have: Mutex<Vec<bool>>,
    /// Bytes written since writeback was last started (see [`WRITEBACK_EVERY`]).
    unflushed: std::sync::atomic::AtomicU64,
    /// Bytes written since a sync was last started (see [`SYNC_EVERY`]).
    synced: SyncAhead,
    /// Its [`file_id`] once it was opened, registered as open until dropped.
    id: Mutex<Option<(u64, u64)>>,
}

/// A temp file's open handle, held (no other thread writes meanwhile).
pub struct OpenTemp<'a>(std::sync::MutexGuard<'a, Option<std::fs::File>>);

impl std::ops::Deref for OpenTemp<'_> {
    type Target = std::fs::File;

    fn deref(&self) -> &std::fs::File {
        // Only made by `TempFile::file`, after it put a handle there.
        self.0.as_ref().expect("an OpenTemp holds an open file")
    }
}

/// Written bytes after which a temp file's writeback is started, not waited for.
/// Left to the kernel, a large file's data sits dirty in memory until the final
/// fsync, which then writes all of it while the download waits (2.7 s of a 1 GiB
/// folder pull on an ext4 image); started as it goes, it overlaps the transfer.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Written bytes after which a temp file is also synced, on a thread of its own
/// while the download goes on. Started writeback only moves the pages one layer
/// down where the filesystem sits on a file of another (a disk image, a loop
/// device, a VM's disk): there the final fsync still wrote most of a large file
/// while the download waited (0.6–0.75 s of 1 GiB on an ext4 image).
const SYNC_EVERY: u64 = 128 << 20;

/// Why a block was not written.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Wrong length for its position.
    #[error("block {index} has {got} bytes, expected {want}")]
    WrongSize {
        /// Block index.
        index: u64,
        /// Received length.
        got: usize,
        /// Expected length.
        want: u32,
    },
    /// Content does not match the manifest hash.
    #[error("block {0} does not match its hash")]
    WrongHash(u64),
    /// No such block.
    #[error("block {0} is out of range")]
    OutOfRange(u64),
    /// Writing failed.
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
}

impl Download {
    /// Plans receiving `entries` (already validated) into `dest`, creating it if
    /// needed. Existing different files are refused unless `overwrite`; identical
    /// ones count as done. Temp files from an earlier run are verified and reused.
    pub fn prepare(dest: &Path, entries: &[(RelPath, Entry)], overwrite: bool) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dest).map_err(|e| EngineError::io(dest, e))?;
        let root = Arc::new(Dir::open_ambient_dir(dest, ambient_authority()).map_err(|e| EngineError::io(dest, e))?);
        let mut problems = Vec::new();

        // Names that collide on a case-insensitive filesystem are left out, both of
        // them: neither may overwrite the other.
        let mut keys: HashMap<String, usize> = HashMap::new();
        for (path, _) in entries {
            *keys.entry(path.collision_key()).or_default() += 1;
        }
        let files_at: HashSet<&str> =
            entries.iter().filter(|(_, e)| matches!(e.kind, EntryKind::File(_))).map(|(p, _)| p.as_str()).collect();

        let mut dirs = Vec::new();
        let mut wanted = Vec::new();
        for (index, (path, entry)) in entries.iter().enumerate() {
            if keys[&path.collision_key()] > 1 {
                problems.push(format!("{path}: skipped, another entry differs only in case"));
                continue;
            }
            if cfg!(windows) && path.segments().any(peerbox_proto::path::is_windows_unsafe) {
                problems.push(format!("{path}: skipped, Windows cannot create a file or folder by that name"));
                continue;
            }
            if let Some(a) = path.ancestors().find(|a| files_at.contains(a)) {
                return Err(EngineError::BadManifest(format!("{path} is inside {a}, which is a file")));
            }
            match &entry.kind {
                EntryKind::Dir => dirs.push(path.clone()),
                EntryKind::File(meta) => wanted.push((index as u32, path.clone(), meta.clone())),
            }
        }

        // A folder that is not there yet holds neither files nor temp files: what
        // goes in it needs no lookups (most downloads make a new folder).
        let absent: HashSet<String> = wanted
            .iter()
            .filter_map(|(_, path, _)| path.ancestors().last())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| root.symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound))
            .map(str::to_owned)
            .collect();
        let in_absent = |path: &RelPath| path.ancestors().last().is_some_and(|p| absent.contains(p));
        // Top folders not there yet are filled under a temp name (see `Stage`);
        // one left by an earlier run of the same manifest is resumed.
        let mut stages: Vec<(Stage, bool)> = Vec::new();
        if STAGE_FOLDERS {
            let mut tops: BTreeSet<&str> = wanted.iter().filter_map(|(_, path, _)| path.ancestors().next()).collect();
            tops.retain(|top| root.symlink_metadata(top).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
            for (top, tmp) in stage_names(&tops, entries) {
                let resumed = root.symlink_metadata(&tmp).is_ok();
                stages.push((Stage { top: top.to_owned(), tmp, dirs: Vec::new(), files: Vec::new() }, resumed));
            }
        }
        let by_top: HashMap<String, usize> = stages.iter().enumerate().map(|(i, (s, _))| (s.top.clone(), i)).collect();
        let stage_of = |path: &str| path.split('/').next().and_then(|top| by_top.get(top).copied());
        let at = |path: &str| stage_of(path).map_or_else(|| path.to_owned(), |i| stages[i].0.staged(path));
        let check = |path: &RelPath, meta: &FileMeta| {
            if in_absent(path) { Ok(false) } else { existing_matches(&root, dest, path, meta, overwrite) }
        };

        // Check every destination before writing anything.
        let checks: Vec<Result<bool, EngineError>> =
            wanted.par_iter().map(|(_, path, meta)| check(path, meta)).collect();
        let mut in_place = Vec::with_capacity(wanted.len());
        let mut conflicts = Vec::new();
        for c in checks {
            match c {
                Ok(same) => in_place.push(same),
                Err(EngineError::Exists(p)) => {
                    conflicts.push(p);
                    in_place.push(false);
                }
                Err(e) => return Err(e),
            }
        }
        if !conflicts.is_empty() {
            return Err(EngineError::WouldOverwrite(conflicts));
        }
        for (stage, _) in &stages {
            ensure_dir(&root, dest, &stage.tmp)?;
        }
        for d in &dirs {
            ensure_dir(&root, dest, &at(d.as_str()))?;
        }
        // Each folder a temp file goes in, once (not once per file: thousands of
        // files usually share a few folders).
        let parents: BTreeSet<&str> = wanted
            .iter()
            .zip(&in_place)
            .filter(|(_, same)| !**same)
            .filter_map(|((_, path, _), _)| path.ancestors().last())
            .collect();
        for parent in parents {
            ensure_dir(&root, dest, &at(parent))?;
        }

        let files: Vec<Result<PlannedFile, EngineError>> = wanted
            .into_par_iter()
            .zip(in_place)
            .map(|((index, path, meta), same)| {
                if same {
                    return Ok(PlannedFile { index, path, meta, status: FileStatus::InPlace });
                }
                let tmp = match stage_of(path.as_str()) {
                    Some(i) => plan_temp(&root, dest, stages[i].0.staged(path.as_str()).into(), &meta, !stages[i].1)?,
                    None => plan_temp(&root, dest, temp_rel(&path, &meta), &meta, in_absent(&path))?,
                };
                Ok(PlannedFile { index, path, meta, status: FileStatus::Pending(Arc::new(tmp)) })
            })
            .collect();
        let files = files.into_iter().collect::<Result<Vec<_>, _>>()?;
        let staged_files: Vec<(usize, usize)> =
            files.iter().enumerate().filter_map(|(at, f)| Some((stage_of(f.path.as_str())?, at))).collect();
        let staged_dirs: Vec<(usize, RelPath)> =
            dirs.into_iter().filter_map(|d| Some((stage_of(d.as_str())?, d))).collect();
        for (i, at) in staged_files {
            stages[i].0.files.push(at);
        }
        for (i, d) in staged_dirs {
            stages[i].0.dirs.push(d);
        }
        let resumed_bytes = files
            .iter()
            .map(|f| match &f.status {
                FileStatus::InPlace => f.meta.size,
                FileStatus::Pending(t) => t.verified_bytes(),
            })
            .sum();
        Ok(Self {
            root,
            root_path: dest.to_owned(),
            overwrite,
            files,
            problems,
            resumed_bytes,
            synced: SyncAhead::default(),
            stages: stages.into_iter().map(|(s, _)| s).collect(),
        })
    }

    /// To be called when a file's last block is written. Every [`AHEAD_FILES`]
    /// such files, a sync of the filesystem starts on a thread of its own while
    /// the rest arrive, one at a time: what it writes, the sync that makes the
    /// files durable before they are put in place (`finish_batch`) no longer
    /// waits for. Only a head start: errors are that final sync's to report.
    pub fn completed(&self) {
        #[cfg(target_os = "linux")]
        self.synced.add(1, AHEAD_FILES, || {
            let root = std::fs::File::open(&self.root_path).ok()?;
            Some(move || {
                let _ = rustix::fs::syncfs(&root);
            })
        });
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.meta.size).sum()
    }

    /// Where `path` ends up on disk.
    pub fn final_path(&self, path: &RelPath) -> PathBuf {
        path.segments().fold(self.root_path.clone(), |p, s| p.join(s))
    }

    /// Whether each file (in the order of [`Download::files`]) can be put in
    /// place now: it is complete, and so is the rest of its folder if that is
    /// put in place whole (see [`Stage`]).
    pub fn ready(&self) -> Vec<bool> {
        let mut ready: Vec<bool> = self
            .files
            .iter()
            .map(|f| match &f.status {
                FileStatus::InPlace => true,
                FileStatus::Pending(t) => t.is_complete(),
            })
            .collect();
        for s in &self.stages {
            if !s.files.iter().all(|&i| ready[i]) {
                for &i in &s.files {
                    ready[i] = false;
                }
            }
        }
        ready
    }

    /// The folders filled under a temp name (see [`Stage`]), relative to the
    /// destination: a cancelled download removes them with its temp files.
    pub fn temp_folders(&self) -> impl Iterator<Item = &Path> {
        self.stages.iter().map(|s| Path::new(s.tmp.as_str()))
    }

    /// Puts complete files in place with one durability pass for the whole batch
    /// instead of two fsyncs per file (which cost ~4 ms a file on ext4, most of a
    /// download of small files): the files' data made durable (one `syncfs` on
    /// Linux for a large batch, else an fsync per file; mtimes and modes were set
    /// as each file completed), then the renames, then one fsync per distinct
    /// directory. Nothing is renamed before its data is durable, so a crash still
    /// leaves only whole files under their names. A staged folder (see [`Stage`])
    /// moves once all of its files are complete, with them, so its files are
    /// given together ([`Download::ready`]). Returns each file's outcome, in
    /// order.
    pub fn finish_batch(&self, files: &[&PlannedFile]) -> Vec<Result<PathBuf, EngineError>> {
        // One pass over the whole filesystem beats thousands of fsyncs, but it also
        // flushes whatever else is dirty there: only worth it for many files.
        #[cfg(target_os = "linux")]
        let at_once = (files.iter().filter(|f| matches!(&f.status, FileStatus::Pending(t) if t.is_complete())).count()
            >= SYNCFS_FROM)
            .then(|| {
                // Through a handle of its own: `root` may be an `O_PATH` one, which
                // syncfs refuses (EBADF), and the temp files are closed by now.
                std::fs::File::open(&self.root_path).and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
            });
        #[cfg(not(target_os = "linux"))]
        let at_once: Option<std::io::Result<()>> = None;
        let mut dirs = HashSet::new();
        // Each folder is opened once per batch; the renames and last checks then go
        // by name within it, instead of resolving both paths from the root per file.
        let mut folders: HashMap<&str, Option<Dir>> = HashMap::new();
        let mut out: Vec<Result<PathBuf, EngineError>> = Vec::with_capacity(files.len());
        // Files of staged folders: their position in `out`, and their folder's.
        let mut staged: Vec<(usize, usize)> = Vec::new();
        let by_top: HashMap<&str, usize> = self.stages.iter().enumerate().map(|(i, s)| (s.top.as_str(), i)).collect();
        for f in files {
            let dest = self.final_path(&f.path);
            let stage = f.path.as_str().split('/').next().and_then(|top| by_top.get(top).copied());
            let r = match &f.status {
                FileStatus::InPlace => Ok(dest),
                FileStatus::Pending(tmp) if !tmp.is_complete() => Err(EngineError::Incomplete(dest)),
                FileStatus::Pending(tmp) => {
                    let synced = match &at_once {
                        Some(Ok(())) => Ok(()),
                        Some(Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
                        None => tmp.sync(),
                    };
                    synced
                        .map_err(|e| {
                            let link = match stage {
                                Some(_) => link_in(&self.root, tmp.rel_path()),
                                None => link_on_the_way(&self.root, &f.path).map(str::to_owned),
                            };
                            match link {
                                // Reopening the temp file was refused: say why.
                                Some(link) => symlink_refused(&dest, &self.root_path, &link),
                                None => EngineError::io(&dest, e),
                            }
                        })
                        .and_then(|()| match stage {
                            // Its whole folder moves at once, below.
                            Some(_) => Ok(dest.clone()),
                            None => {
                                let parent = parent_of(&f.path);
                                let folder = folders.entry(parent).or_insert_with(|| self.root.open_dir(parent).ok());
                                self.place(f, tmp, &dest, folder.as_ref())
                            }
                        })
                }
            };
            match stage {
                Some(i) if r.is_ok() => staged.push((out.len(), i)),
                None if r.is_ok() && matches!(f.status, FileStatus::Pending(_)) => {
                    dirs.insert(parent_of(&f.path).to_owned());
                }
                _ => {}
            }
            out.push(r);
        }
        let durable = matches!(at_once, Some(Ok(())));
        let mut touched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (at, i) in staged {
            touched.entry(i).or_default().push(at);
        }
        for (i, ats) in touched {
            let in_batch: HashSet<u32> = ats.iter().map(|&at| files[at].index).collect();
            let mut failed = self.place_stage(&self.stages[i], durable, &in_batch, &mut dirs);
            for at in ats {
                if let Some(e) = failed.remove(&files[at].index) {
                    out[at] = Err(e);
                }
            }
        }
        for d in dirs {
            if let Err(e) = self.root.open(&d).and_then(|h| h.into_std().sync_all()) {
                // The renames happened but might not survive a power cut: say so.
                let shown = self.root_path.join(&d);
                for (f, r) in files.iter().zip(out.iter_mut()) {
                    if r.is_ok() && parent_of(&f.path) == d {
                        *r = Err(EngineError::io(&shown, std::io::Error::new(e.kind(), e.to_string())));
                    }
                }
            }
        }
        out
    }

    /// Puts a staged folder in place (see [`Stage`]) once every file of it is
    /// complete: made durable (those of `in_batch` are already, and all of them
    /// when `durable`), then one rename, or one per file if something took the
    /// folder's name meanwhile. Adds the folders to sync to `dirs`; returns what
    /// failed, by manifest index.
    fn place_stage(
        &self,
        stage: &Stage,
        durable: bool,
        in_batch: &HashSet<u32>,
        dirs: &mut HashSet<String>,
    ) -> HashMap<u32, EngineError> {
        let all = |e: &dyn Fn(&PlannedFile) -> EngineError| -> HashMap<u32, EngineError> {
            stage.files.iter().map(|&i| (self.files[i].index, e(&self.files[i]))).collect()
        };
        let temps = || {
            stage.files.iter().filter_map(|&i| match &self.files[i].status {
                FileStatus::Pending(t) => Some((&self.files[i], t)),
                FileStatus::InPlace => None,
            })
        };
        if !temps().all(|(_, t)| t.is_complete()) {
            return all(&|f| EngineError::Incomplete(self.final_path(&f.path)));
        }
        if !durable {
            for (f, t) in temps().filter(|(f, _)| !in_batch.contains(&f.index)) {
                if let Err(e) = t.sync() {
                    let shown = self.final_path(&f.path);
                    return all(&|_| EngineError::io(&shown, std::io::Error::new(e.kind(), e.to_string())));
                }
            }
            // And the names they have in it (one sync of the filesystem covers those).
            let folders: BTreeSet<String> = temps().map(|(f, _)| stage.staged(parent_of(&f.path))).collect();
            for d in folders {
                if let Err(e) = self.root.open(&d).and_then(|h| h.into_std().sync_all()) {
                    let shown = self.root_path.join(&d);
                    return all(&|_| EngineError::io(&shown, std::io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
        // Its files were written through handles confined to the destination, but
        // a stage swapped for a link would move in as that link, without them.
        if self.root.symlink_metadata(&stage.tmp).is_ok_and(|m| m.file_type().is_symlink()) {
            return all(&|f| symlink_refused(&self.final_path(&f.path), &self.root_path, &stage.tmp));
        }
        let top = self.root_path.join(&stage.top);
        match rename_no_replace(&self.root, Path::new(&stage.tmp), &stage.top) {
            Ok(true) => {
                dirs.insert(".".to_owned());
                return HashMap::new();
            }
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return all(&|_| EngineError::io(&top, std::io::Error::new(e.kind(), e.to_string())));
            }
        }
        // Its name was taken meanwhile: file by file, as any other folder's.
        for d in &stage.dirs {
            let _ = ensure_dir(&self.root, &self.root_path, d.as_str());
        }
        let mut failed = HashMap::new();
        for (f, t) in temps() {
            let dest = self.final_path(&f.path);
            let placed = ensure_dir(&self.root, &self.root_path, parent_of(&f.path))
                .and_then(|()| self.place(f, t, &dest, None));
            match placed {
                Ok(_) => {
                    dirs.insert(parent_of(&f.path).to_owned());
                }
                Err(e) => {
                    failed.insert(f.index, e);
                }
            }
        }
        if failed.is_empty() {
            // Only its emptied folders are left.
            let _ = self.root.remove_dir_all(&stage.tmp);
        }
        failed
    }

    /// Renames one durable temp file into place, checking the destination once more;
    /// by name within `folder` (the file's, opened through the root) when given.
    fn place(
        &self,
        file: &PlannedFile,
        tmp: &TempFile,
        dest: &Path,
        folder: Option<&Dir>,
    ) -> Result<PathBuf, EngineError> {
        let by_name = folder.and_then(|d| {
            let name = RelPath::new(file.path.file_name()).ok()?;
            Some((d, name, tmp.tmp.file_name()?, dest.parent()?))
        });
        let (dir, path, tmp_path, dir_shown): (&Dir, &RelPath, &Path, &Path) = match &by_name {
            Some((d, name, tmp_name, shown)) => (d, name, Path::new(tmp_name), shown),
            None => (&self.root, &file.path, &tmp.tmp, &self.root_path),
        };
        // The destination may have appeared while we downloaded. Without
        // `overwrite`, only nothing or this very content may be there. A rename
        // that refuses to replace says so without a lookup per file first, and
        // cannot replace what appears between a check and the rename.
        if !self.overwrite && by_name.is_some() {
            match rename_no_replace(dir, tmp_path, path.as_str()) {
                Ok(true) => return Ok(dest.to_owned()),
                Ok(false) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(EngineError::io(dest, e)),
            }
        }
        if !self.overwrite {
            match existing_matches(dir, dir_shown, path, &file.meta, false) {
                Ok(_) => {}
                Err(EngineError::Exists(_)) => return Err(EngineError::WouldOverwrite(vec![dest.to_owned()])),
                Err(e) => return Err(e),
            }
        }
        dir.rename(tmp_path, dir, path.as_str()).map_err(|e| EngineError::io(dest, e))?;
        Ok(dest.to_owned())
    }
}

/// What [`TempFile::write_block`] did with a good block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Every block of the file is in now.
    pub complete: bool,
    /// The file did not have this block yet. A copy of a block that is already in
    /// (a download asks a slow source's last blocks of a second one) is not
    /// written, and must not be counted twice.
    pub fresh: bool,
}

impl TempFile {
    /// Verifies block `index` and writes it, unless the file has it already.
    pub fn write_block(&self, index: u64, data: &[u8]) -> Result<Written, BlockError> {
        let n = block_count(self.meta.size, self.meta.block_size);
        if index >= n {
            return Err(BlockError::OutOfRange(index));
        }
        let want = block_len(self.meta.size, self.meta.block_size, index);
        if data.len() != want as usize {
            return Err(BlockError::WrongSize { index, got: data.len(), want });
        }
        if self.has_block(index) {
            return Ok(Written { complete: self.is_complete(), fresh: false });
        }
        if hash_block(data) != self.meta.blocks[index as usize] {
            return Err(BlockError::WrongHash(index));
        }
        {
            let file = self.file()?;
            io::write_all_at(&file, data, index * self.meta.block_size as u64)?;
            self.start_writeback_now_and_then(&file, data.len() as u64);
        }
        let (complete, fresh) = {
            let mut have = self.have.lock().unwrap_or_else(|p| p.into_inner());
            // Two copies can be written at once: the same verified bytes, counted once.
            let fresh = !std::mem::replace(&mut have[index as usize], true);
            (have.iter().all(|h| *h), fresh)
        };
        if complete {
            self.close_if_reopenable();
        }
        Ok(Written { complete, fresh })
    }

    /// The open file, opened again (or for the first time) if it was closed.
    pub fn file(&self) -> std::io::Result<OpenTemp<'_>> {
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let Some(root) = &self.reopen else {
                return Err(std::io::Error::other("the temp file was closed"));
            };
            // Made only the first time: one that went missing after blocks were
            // written must fail, never come back as zeros counted as verified.
            let first = self.id.lock().unwrap_or_else(|p| p.into_inner()).is_none();
            let unnamed = match &self.folder {
                Some(folder) if first => unnamed::create(folder),
                _ => None,
            };
            self.unnamed.store(unnamed.is_some(), std::sync::atomic::Ordering::Relaxed);
            let file = match unnamed {
                Some(file) => file,
                None => root.open_with(&self.tmp, OpenOptions::new().read(true).write(true).create(first))?.into_std(),
            };
            let m = file.metadata()?;
            // A file made for its one block gets its length from that write.
            let one_write =
                m.len() == 0 && (self.keep_open || first && block_count(self.meta.size, self.meta.block_size) == 1);
            if m.len() != self.meta.size && !one_write {
                file.set_len(self.meta.size)?;
            }
            self.opened(&m);
            *slot = Some(file);
        }
        Ok(OpenTemp(slot))
    }

    /// Whether the file is still without a name (see [`lazy_temp`]).
    pub fn is_unnamed(&self) -> bool {
        self.unnamed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives a file still without a name the name `name` in its folder; fails
    /// with `AlreadyExists` if something has it, which is left alone.
    pub fn name_as(&self, name: &str) -> std::io::Result<()> {
        let (Some(folder), true) = (&self.folder, self.is_unnamed()) else {
            return Err(std::io::Error::other("the temp file has a name already"));
        };
        let file = self.file()?;
        unnamed::link(&file, folder, name)?;
        self.unnamed.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn opened(&self, m: &std::fs::Metadata) {
        let id = file_id(m);
        lock_open_temps().insert(id);
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    /// Makes the data durable (and closes a reopenable file again).
    pub fn sync(&self) -> std::io::Result<()> {
        self.file()?.sync_all()?;
        if self.reopen.is_some() && !self.keep_open {
            self.file.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
        Ok(())
    }

    /// A complete link-download temp file gets its mtime and mode now, after its
    /// last write, and is closed (see `reopen`).
    fn close_if_reopenable(&self) {
        if self.reopen.is_none() || self.keep_open {
            return;
        }
        if let Some(file) = self.file.lock().unwrap_or_else(|p| p.into_inner()).take() {
            set_mtime_and_mode(&file, &self.meta);
        }
    }

    fn start_writeback_now_and_then(&self, file: &std::fs::File, wrote: u64) {
        use std::sync::atomic::Ordering;
        if self.unflushed.fetch_add(wrote, Ordering::Relaxed) + wrote < WRITEBACK_EVERY {
            return;
        }
        self.unflushed.store(0, Ordering::Relaxed);
        // POSIX_FADV_DONTNEED starts writeback of the dirty pages without waiting
        // (what sync_file_range(SYNC_FILE_RANGE_WRITE) does); pages still dirty
        // stay cached. Only a hint: durability still comes from the final sync.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
        self.sync_now_and_then(file);
    }

    /// Called every [`WRITEBACK_EVERY`] bytes; syncs every [`SYNC_EVERY`].
    fn sync_now_and_then(&self, file: &std::fs::File) {
        self.synced.add(WRITEBACK_EVERY, SYNC_EVERY, || {
            let file = file.try_clone().ok()?;
            Some(move || {
                let _ = file.sync_data();
            })
        });
    }

    /// Whether block `index` is in (verified).
    pub fn has_block(&self, index: u64) -> bool {
        self.have.lock().unwrap_or_else(|p| p.into_inner()).get(index as usize).copied().unwrap_or(false)
    }

    /// The temp file's path relative to the root.
    pub fn rel_path(&self) -> &Path {
        &self.tmp
    }

    /// Indices of blocks still missing.
    pub fn missing(&self) -> Vec<u64> {
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        have.iter().enumerate().filter(|(_, h)| !**h).map(|(i, _)| i as u64).collect()
    }

    /// Whether every block is in.
    pub fn is_complete(&self) -> bool {
        self.have.lock().unwrap_or_else(|p| p.into_inner()).iter().all(|h| *h)
    }

    /// Bytes verified so far.
    pub fn verified_bytes(&self) -> u64 {
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        have.iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| block_len(self.meta.size, self.meta.block_size, i as u64) as u64)
            .sum()
    }
}

/// The temp file name for a file: a hash of its path and blocks, so it is short,
/// stable across runs, and different when the content is.
fn temp_name(path: &RelPath, meta: &FileMeta) -> String {
    let mut h = Sha256::new();
    h.update(path.as_str().as_bytes());
    h.update([0]);
    h.update(meta.size.to_be_bytes());
    for b in &meta.blocks {
        h.update(b);
    }
    format!("{TEMP_PREFIX}{}", hex::encode(&h.finalize()[..16]))
}

fn temp_rel(path: &RelPath, meta: &FileMeta) -> PathBuf {
    let name = temp_name(path, meta);
    match path.as_str().rsplit_once('/') {
        Some((parent, _)) => Path::new(parent).join(name),
        None => PathBuf::from(name),
    }
}

/// Opens (creating or resuming) the temp file for `path`; it stays open.
/// Its folder exists.
pub(crate) fn open_temp(root: &Dir, dest: &Path, path: &RelPath, meta: &FileMeta) -> Result<TempFile, EngineError> {
    let tmp = temp_rel(path, meta);
    let shown = dest.join(&tmp);
    let file = root
        .open_with(&tmp, OpenOptions::new().read(true).write(true).create(true))
        .map_err(|e| EngineError::io(&shown, e))?
        .into_std();
    resumed(file, None, tmp, meta, &shown)
}

/// The temp file for pulling a file of at most one block into `path`, whose
/// folder exists. Made by the block's write, not now: there is nothing to resume
/// (a file left by an earlier run is written over whole), and creating thousands
/// of small files while their blocks are on the way overlaps the two.
pub(crate) fn lazy_temp(root: &Arc<Dir>, path: &RelPath, meta: &FileMeta, folder: Option<Arc<Dir>>) -> TempFile {
    TempFile {
        file: Mutex::new(None),
        reopen: Some(root.clone()),
        keep_open: true,
        folder,
        unnamed: false.into(),
        tmp: temp_rel(path, meta),
        meta: meta.clone(),
        have: Mutex::new(vec![false; block_count(meta.size, meta.block_size) as usize]),
        unflushed: std::sync::atomic::AtomicU64::new(0),
        synced: SyncAhead::default(),
        id: Mutex::new(None),
    }
}

/// Files made without a name (`O_TMPFILE`) and named once complete: a pulled
/// small file then costs one entry in its folder, where a named temp file costs
/// three changes (made, renamed away, renamed in) and as many watcher events.
/// Where the filesystem or the system cannot, files get temp names as before.
mod unnamed {
    #[cfg(target_os = "linux")]
    use std::sync::atomic::{AtomicBool, Ordering};

    use cap_std::fs::Dir;

    /// Cleared for the rest of the run once the filesystem could not make one,
    /// or naming one failed for a reason other than the name being taken (its
    /// content is then lost and fetched again).
    #[cfg(target_os = "linux")]
    static WORKS: AtomicBool = AtomicBool::new(true);

    /// A new file without a name in `folder`, if this system makes them.
    #[cfg(target_os = "linux")]
    pub(super) fn create(folder: &Dir) -> Option<std::fs::File> {
        use rustix::fs::{Mode, OFlags};
        if !WORKS.load(Ordering::Relaxed) {
            return None;
        }
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::openat(folder, ".", flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => Some(fd.into()),
            // This filesystem or kernel cannot (an old kernel takes the flag for
            // O_DIRECTORY); anything else, the named create reports.
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
                WORKS.store(false, Ordering::Relaxed);
                None
            }
            Err(_) => None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn create(_: &Dir) -> Option<std::fs::File> {
        None
    }

    /// Links `file`, made by [`create`], as `name` in `folder`. Through
    /// /proc/self/fd: linking by the handle itself needs a capability a user's
    /// daemon does not have.
    #[cfg(target_os = "linux")]
    pub(super) fn link(file: &std::fs::File, folder: &Dir, name: &str) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let at = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(rustix::fs::CWD, at.as_str(), folder, name, rustix::fs::AtFlags::SYMLINK_FOLLOW).map_err(
            |e| {
                if e != rustix::io::Errno::EXIST {
                    WORKS.store(false, Ordering::Relaxed);
                }
                e.into()
            },
        )
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn link(_: &std::fs::File, _: &Dir, _: &str) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Plans the temp file `tmp` of a link download: one left by an earlier run is
/// checked (and an empty file's made) now, closed again; any other is opened by
/// its first block (see `TempFile::reopen`). Its folder exists already; `new`
/// when this download made it, so no earlier run left anything there.
fn plan_temp(root: &Arc<Dir>, dest: &Path, tmp: PathBuf, meta: &FileMeta, new: bool) -> Result<TempFile, EngineError> {
    let shown = dest.join(&tmp);
    let n = block_count(meta.size, meta.block_size) as usize;
    let existing = if new && n > 0 {
        None
    } else {
        match root.open_with(&tmp, OpenOptions::new().read(true).write(true).create(n == 0)) {
            Ok(f) => Some(f.into_std()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(EngineError::io(&shown, e)),
        }
    };
    let t = match existing {
        Some(file) => resumed(file, Some(root.clone()), tmp, meta, &shown)?,
        None => TempFile {
            file: Mutex::new(None),
            reopen: Some(root.clone()),
            keep_open: false,
            folder: None,
            unnamed: false.into(),
            tmp,
            meta: meta.clone(),
            have: Mutex::new(vec![false; n]),
            unflushed: std::sync::atomic::AtomicU64::new(0),
            synced: SyncAhead::default(),
            id: Mutex::new(None),
        },
    };
    if t.is_complete() {
        t.close_if_reopenable();
    } else {
        t.file.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    Ok(t)
}

/// A temp file just opened: the blocks it already holds are kept if they verify.
fn resumed(
    file: std::fs::File,
    reopen: Option<Arc<Dir>>,
    tmp: PathBuf,
    meta: &FileMeta,
    shown: &Path,
) -> Result<TempFile, EngineError> {
    let opened = file.metadata().map_err(|e| EngineError::io(shown, e))?;
    let len = opened.len();
    let n = block_count(meta.size, meta.block_size) as usize;
    let mut have = vec![false; n];
    if len > 0 {
        // Resume: keep every block that already verifies.
        have = (0..n as u64)
            .into_par_iter()
            .map_init(Vec::new, |buf, i| {
                let bl = block_len(meta.size, meta.block_size, i) as usize;
                let off = i * meta.block_size as u64;
                if off + bl as u64 > len {
                    return false;
                }
                buf.resize(bl, 0);
                io::read_exact_at(&file, buf, off).is_ok() && hash_block(buf) == meta.blocks[i as usize]
            })
            .collect();
    }
    if len != meta.size {
        file.set_len(meta.size).map_err(|e| EngineError::io(shown, e))?;
    }
    let t = TempFile {
        file: Mutex::new(Some(file)),
        reopen,
        keep_open: false,
        folder: None,
        unnamed: false.into(),
        tmp,
        meta: meta.clone(),
        have: Mutex::new(have),
        unflushed: std::sync::atomic::AtomicU64::new(0),
        synced: SyncAhead::default(),
        id: Mutex::new(None),
    };
    t.opened(&opened);
    Ok(t)
}

/// A file's identity on its machine: (device, inode) on Unix. Elsewhere an open
/// file cannot be deleted anyway, so none is needed.
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

/// Temp files held open by this process, by [`file_id`]: a cleanup of stale temp
/// files leaves these alone, whoever is filling them (a pull of another folder, a
/// link download into the same tree).
fn lock_open_temps() -> std::sync::MutexGuard<'static, HashSet<(u64, u64)>> {
    static OPEN: std::sync::OnceLock<Mutex<HashSet<(u64, u64)>>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(id) = self.id.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            lock_open_temps().remove(&id);
        }
    }
}

/// Whether `name` is a temp file of a pull or link download (see [`temp_name`]).
pub fn is_download_temp(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes a download temp file found at `rel` under `root` unless this process
/// holds it open; returns whether it was removed. For temp files left by pulls
/// that will not resume (the version they were for is no longer wanted).
pub fn remove_stale_temp(root: &Dir, rel: &str) -> bool {
    let name = rel.rsplit_once('/').map_or(rel, |(_, n)| n);
    if !is_download_temp(name) {
        return false;
    }
    let Ok(m) = root.symlink_metadata(rel) else { return false };
    if !m.is_file() {
        return false;
    }
    // cap-std's metadata has no inode: ask through a handle, as open_temp did.
    let Ok(f) = root.open(rel) else { return false };
    let Ok(m) = f.into_std().metadata() else { return false };
    if lock_open_temps().contains(&file_id(&m)) {
        return false;
    }
    root.remove_file(rel).is_ok()
}

/// Renames `from` to `to`, both names within `dir`, unless `to` exists
/// (`AlreadyExists`). `Ok(false)`: this system cannot rename that way, nothing
/// was done.
fn rename_no_replace(dir: &Dir, from: &Path, to: &str) -> std::io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::io::Errno;
        match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            // A filesystem or kernel without the flag.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (dir, from, to);
        Ok(false)
    }
}

/// Whether the destination already holds exactly this content. `Err(Exists)` when
/// something different is there and `overwrite` is off.
fn existing_matches(
    root: &Dir,
    dest: &Path,
    path: &RelPath,
    meta: &FileMeta,
    overwrite: bool,
) -> Result<bool, EngineError> {
    let shown = path.segments().fold(dest.to_owned(), |p, s| p.join(s));
    let m = match root.symlink_metadata(path.as_str()) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) if let Some(link) = link_on_the_way(root, path) => return Err(symlink_refused(&shown, dest, link)),
        // A parent that is a file: treat as occupied.
        Err(_) => return if overwrite { Ok(false) } else { Err(EngineError::Exists(shown)) },
    };
    if m.is_dir() {
        return Err(EngineError::Exists(shown));
    }
    if m.is_file() && m.len() == meta.size {
        let f = root.open(path.as_str()).map_err(|e| EngineError::io(&shown, e))?.into_std();
        let hashes = crate::scan::hash_file(&f, meta.size, &|_| {}).map_err(|e| EngineError::io(&shown, e))?;
        if hashes == meta.blocks {
            return Ok(true);
        }
    }
    if overwrite { Ok(false) } else { Err(EngineError::Exists(shown)) }
}

fn symlink_refused(shown: &Path, dest: &Path, link: &str) -> EngineError {
    EngineError::Refused(format!(
        "{}: {} is a symbolic link, which is never followed; nothing was written there",
        shown.display(),
        dest.join(link).display()
    ))
}

/// The first folder on the way to `path` that is a symbolic link, if any.
fn link_on_the_way<'a>(root: &Dir, path: &'a RelPath) -> Option<&'a str> {
    path.ancestors().find(|a| root.symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
}

/// The same for a temp path under `root` (in a staged folder, see `Stage`).
fn link_in(root: &Dir, path: &Path) -> Option<String> {
    let folders: Vec<&Path> = path.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()).collect();
    folders
        .into_iter()
        .rev()
        .find(|a| root.symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
        .map(|a| a.to_string_lossy().into_owned())
}

pub(crate) fn ensure_dir(root: &Dir, dest: &Path, rel: &str) -> Result<(), EngineError> {
    let shown = dest.join(rel);
    match root.symlink_metadata(rel) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(EngineError::Refused(format!(
            "{} is a symbolic link, which is never followed; nothing was written there",
            shown.display()
        ))),
        Ok(_) => Err(EngineError::Exists(shown)),
        Err(_) => root.create_dir_all(rel).map_err(|e| EngineError::io(&shown, e)),
    }
}

pub(crate) fn sync_parent(root: &Dir, path: &RelPath) -> std::io::Result<()> {
    // A directory handle from `open_dir` may be O_PATH, which cannot be synced;
    // open it for reading instead.
    root.open(parent_of(path))?.into_std().sync_all()
}

/// The folder holding `path`, relative to the root (`.` for the root itself).
pub(crate) fn parent_of(path: &RelPath) -> &str {
    path.as_str().rsplit_once('/').map_or(".", |(p, _)| p)
}

/// Gives a received file the mtime and executable bit of `meta`. Best effort: a
/// filesystem without mtimes or modes still gets the content.
pub(crate) fn set_mtime_and_mode(file: &std::fs::File, meta: &FileMeta) {
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(meta.mtime_ns.max(0) as u64);
    let _ = file.set_modified(mtime);
    set_executable(file, meta.executable);
}

#[cfg(unix)]
fn set_executable(file: &std::fs::File, executable: bool) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = file.metadata() {
        let mode = m.permissions().mode();
        let want = if executable { mode | ((mode & 0o444) >> 2) } else { mode & !0o111 };
        if want != mode {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(want));
        }
    }
}

#[cfg(not(unix))]
fn set_executable(_: &std::fs::File, _: bool) {}

/// Hashes of `data` split into blocks of `block_size`; a test and bench helper.
pub fn block_hashes(data: &[u8], block_size: u32) -> Vec<BlockHash> {
    data.chunks(block_size as usize).map(hash_block).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbox_proto::manifest::{MIN_BLOCK_SIZE, block_size_for};

    fn entry(path: &str, data: &[u8]) -> (RelPath, Entry) {
        let bs = block_size_for(data.len() as u64);
        let meta = FileMeta {
            size: data.len() as u64,
            mtime_ns: 1_000_000_000,
            executable: false,
            block_size: bs,
            blocks: block_hashes(data, bs),
        };
        (RelPath::new(path).unwrap(), Entry { path: path.into(), kind: EntryKind::File(meta) })
    }

    fn blocks(data: &[u8]) -> Vec<&[u8]> {
        data.chunks(block_size_for(data.len() as u64) as usize).collect()
    }

    fn pending(f: &PlannedFile) -> &TempFile {
        match &f.status {
            FileStatus::Pending(t) => t,
            FileStatus::InPlace => panic!("in place"),
        }
    }

    /// Sizes at the block edges, and a few blocks.
    const INTERESTING: [usize; 6] = [
        0,
        1,
        MIN_BLOCK_SIZE as usize - 1,
        MIN_BLOCK_SIZE as usize,
        MIN_BLOCK_SIZE as usize + 1,
        3 * MIN_BLOCK_SIZE as usize + 5,
    ];

    #[test]
    fn files_of_interesting_sizes_arrive_whole() {
        for size in INTERESTING {
            let d = tempfile::tempdir().unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let dl = Download::prepare(d.path(), &[entry("f.bin", &data)], false).unwrap();
            let t = pending(&dl.files[0]);
            for (i, b) in blocks(&data).iter().enumerate().rev() {
                t.write_block(i as u64, b).unwrap();
            }
            let out = dl.finish_batch(&[&dl.files[0]]).remove(0).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), data, "size {size}");
            let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, [std::ffi::OsString::from("f.bin")], "temp file left behind");
        }
    }

    #[test]
    fn many_files_synced_as_they_arrive_end_up_whole_and_a_file_in_the_way_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let n = 2 * AHEAD_FILES as usize + 7;
        let data = |i: usize| format!("file {i}").into_bytes();
        let entries: Vec<_> = (0..n).map(|i| entry(&format!("d/{i:05}.txt"), &data(i))).collect();
        let dl = Download::prepare(d.path(), &entries, false).unwrap();
        // Someone saves a file under one of the names meanwhile: never replaced.
        std::fs::create_dir(d.path().join("d")).unwrap();
        std::fs::write(d.path().join("d/00003.txt"), b"mine").unwrap();
        for i in 0..n {
            assert!(pending(&dl.files[i]).write_block(0, &data(i)).unwrap().complete);
            dl.completed();
        }
        let all: Vec<&PlannedFile> = dl.files.iter().collect();
        let out = dl.finish_batch(&all);
        for (i, r) in out.iter().enumerate() {
            let path = d.path().join(format!("d/{i:05}.txt"));
            if i == 3 {
                assert!(matches!(r, Err(EngineError::WouldOverwrite(_))), "{r:?}");
                assert_eq!(std::fs::read(&path).unwrap(), b"mine");
            } else {
                assert_eq!(r.as_ref().unwrap(), &path);
                assert_eq!(std::fs::read(&path).unwrap(), data(i), "{i}");
            }
        }
        assert_eq!(temp_files(d.path()).len(), 1, "only the temp of the file that was not put in place is left");
    }

    /// Files under `dir` that are temp files or in a staged folder.
    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![(dir.to_owned(), false)];
        while let Some((d, temp)) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let temp = temp || e.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
                match e.file_type().unwrap().is_dir() {
                    true => todo.push((e.path(), temp)),
                    false if temp => out.push(e.path()),
                    false => {}
                }
            }
        }
        out
    }

    /// Every file and folder under `dir`, relative, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    todo.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    fn dir(path: &str) -> (RelPath, Entry) {
        (RelPath::new(path).unwrap(), Entry { path: path.into(), kind: EntryKind::Dir })
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_new_folder_appears_whole_once_every_file_is_in() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("old")).unwrap();
        let big: Vec<u8> = (0..2 * MIN_BLOCK_SIZE as usize).map(|i| (i % 13) as u8).collect();
        let entries = [
            dir("new"),
            entry("new/a", b"aaa"),
            dir("new/empty"),
            entry("new/sub/big", &big),
            entry("old/b", b"bbb"),
            entry("top", b"top"),
        ];
        let dl = Download::prepare(d.path(), &entries, false).unwrap();
        let [a, big_file, b, top] = [0, 1, 2, 3].map(|i| &dl.files[i]);
        pending(a).write_block(0, b"aaa").unwrap();
        pending(big_file).write_block(0, blocks(&big)[0]).unwrap();
        pending(b).write_block(0, b"bbb").unwrap();
        pending(top).write_block(0, b"top").unwrap();
        // Nothing of the new folder shows while a file of it is still missing.
        assert!(!d.path().join("new").exists());
        assert_eq!(dl.ready(), [false, false, true, true]);
        let out = dl.finish_batch(&[a, b, top]);
        assert!(matches!(&out[0], Err(EngineError::Incomplete(p)) if p == &d.path().join("new/a")), "{:?}", out[0]);
        assert_eq!(out[1].as_ref().unwrap(), &d.path().join("old/b"));
        assert_eq!(out[2].as_ref().unwrap(), &d.path().join("top"));
        assert!(!d.path().join("new").exists());

        pending(big_file).write_block(1, blocks(&big)[1]).unwrap();
        assert_eq!(dl.ready(), [true, true, true, true]);
        let out = dl.finish_batch(&[a, big_file]);
        assert_eq!(out[0].as_ref().unwrap(), &d.path().join("new/a"));
        assert_eq!(out[1].as_ref().unwrap(), &d.path().join("new/sub/big"));
        assert_eq!(std::fs::read(d.path().join("new/a")).unwrap(), b"aaa");
        assert_eq!(std::fs::read(d.path().join("new/sub/big")).unwrap(), big);
        assert_eq!(listing(d.path()), ["new", "new/a", "new/empty", "new/sub", "new/sub/big", "old", "old/b", "top"]);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn several_new_folders_each_move_in_whole() {
        let d = tempfile::tempdir().unwrap();
        let entries = [entry("x/1", b"1"), entry("y/2", b"2"), entry("z/sub/3", b"3"), entry("x/4", b"4")];
        let dl = Download::prepare(d.path(), &entries, false).unwrap();
        assert_eq!(dl.temp_folders().count(), 3);
        let names: HashSet<&Path> = dl.temp_folders().collect();
        assert_eq!(names.len(), 3, "each folder has a temp name of its own");
        for (f, data) in dl.files.iter().zip([b"1", b"2", b"3", b"4"]) {
            pending(f).write_block(0, data).unwrap();
        }
        let out = dl.finish_batch(&dl.files.iter().collect::<Vec<_>>());
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        assert_eq!(listing(d.path()), ["x", "x/1", "x/4", "y", "y/2", "z", "z/sub", "z/sub/3"]);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_new_folder_swapped_for_a_symlink_is_not_moved_in() {
        let d = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        // Enough files for one sync of the filesystem: no temp file is opened again.
        let entries: Vec<_> = (0..SYNCFS_FROM + 1).map(|i| entry(&format!("new/{i}"), b"x")).collect();
        let dl = Download::prepare(d.path(), &entries, false).unwrap();
        for f in &dl.files {
            pending(f).write_block(0, b"x").unwrap();
        }
        let stage = d.path().join(dl.temp_folders().next().unwrap());
        std::fs::rename(&stage, d.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(victim.path(), &stage).unwrap();
        let out = dl.finish_batch(&dl.files.iter().collect::<Vec<_>>());
        for r in &out {
            assert!(matches!(r, Err(e) if e.to_string().contains("symbolic link")), "{r:?}");
        }
        assert!(!d.path().join("new").exists());
        assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_rerun_resumes_a_new_folder_and_a_changed_one_starts_afresh() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * MIN_BLOCK_SIZE as usize).map(|i| (i % 7) as u8).collect();
        let first = [entry("new/f", &data), entry("new/g", b"g")];
        {
            let dl = Download::prepare(d.path(), &first, false).unwrap();
            pending(&dl.files[0]).write_block(1, blocks(&data)[1]).unwrap();
            pending(&dl.files[1]).write_block(0, b"g").unwrap();
            // A cancel removes what the download lists: nothing is left.
            let listed: Vec<PathBuf> = dl
                .files
                .iter()
                .map(|f| d.path().join(pending(f).rel_path()))
                .chain(dl.temp_folders().map(|t| d.path().join(t)))
                .collect();
            assert_eq!(temp_files(d.path()).len(), 2);
            assert!(temp_files(d.path()).iter().all(|t| listed.iter().any(|l| t.starts_with(l))));
        }
        let dl = Download::prepare(d.path(), &first, false).unwrap();
        assert_eq!(dl.resumed_bytes, MIN_BLOCK_SIZE as u64 + 1);
        assert_eq!(pending(&dl.files[0]).missing(), [0]);
        assert!(pending(&dl.files[1]).is_complete());
        drop(dl);
        // The sharer changed a file since: what was kept for the old list is not used.
        let changed = [entry("new/f", &data), entry("new/g", b"G")];
        let dl = Download::prepare(d.path(), &changed, false).unwrap();
        assert_eq!(dl.resumed_bytes, 0);
        pending(&dl.files[0]).write_block(0, blocks(&data)[0]).unwrap();
        pending(&dl.files[0]).write_block(1, blocks(&data)[1]).unwrap();
        pending(&dl.files[1]).write_block(0, b"G").unwrap();
        let out = dl.finish_batch(&dl.files.iter().collect::<Vec<_>>());
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        assert_eq!(std::fs::read(d.path().join("new/g")).unwrap(), b"G");
        assert_eq!(std::fs::read_dir(d.path().join("new")).unwrap().count(), 2);
    }

    #[test]
    fn only_stale_download_temps_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let data = vec![9u8; 2 * MIN_BLOCK_SIZE as usize];
        // A folder that is there already (a new one is filled under a temp name).
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let dl = Download::prepare(d.path(), &[entry("sub/f.bin", &data)], false).unwrap();
        pending(&dl.files[0]).write_block(0, blocks(&data)[0]).unwrap();
        let held = pending(&dl.files[0]).rel_path().to_str().unwrap().to_owned();
        std::fs::write(d.path().join("sub/.peerbox-tmp-0123456789abcdef0123456789abcdef"), b"old").unwrap();
        std::fs::write(d.path().join("sub/.peerbox-tmp-in-0000000000000001"), b"an upload").unwrap();
        std::fs::write(d.path().join("sub/report.txt"), b"mine").unwrap();
        let root = Dir::open_ambient_dir(d.path(), ambient_authority()).unwrap();
        assert!(remove_stale_temp(&root, "sub/.peerbox-tmp-0123456789abcdef0123456789abcdef"));
        assert!(!remove_stale_temp(&root, &held), "a temp file still being filled is kept");
        assert!(!remove_stale_temp(&root, "sub/.peerbox-tmp-in-0000000000000001"), "not a download's");
        assert!(!remove_stale_temp(&root, "sub/report.txt"));
        assert!(!remove_stale_temp(&root, "sub/.peerbox-tmp-ffffffffffffffffffffffffffffffff"), "missing");
        let mut left: Vec<String> = std::fs::read_dir(d.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![held.rsplit('/').next().unwrap().to_owned(), ".peerbox-tmp-in-0000000000000001".into()];
        want.push("report.txt".into());
        want.sort();
        assert_eq!(left, want);
        // Once the download lets go of it, it is stale like any other.
        drop(dl);
        assert!(remove_stale_temp(&root, &held));
    }

    #[test]
    fn a_link_downloads_temp_files_are_open_only_while_blocks_come() {
        let d = tempfile::tempdir().unwrap();
        let two: Vec<u8> = (0..2 * MIN_BLOCK_SIZE as usize).map(|i| (i % 11) as u8).collect();
        let dl = Download::prepare(d.path(), &[entry("a", &two), entry("b", b"one block")], false).unwrap();
        let temps = || {
            std::fs::read_dir(d.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(TEMP_PREFIX))
                .count()
        };
        let is_open = |t: &TempFile| t.file.lock().unwrap().is_some();
        // Nothing is made, nor held open, before a file's first block.
        assert_eq!(temps(), 0);
        let (a, b) = (pending(&dl.files[0]), pending(&dl.files[1]));
        a.write_block(0, blocks(&two)[0]).unwrap();
        assert!(is_open(a), "open while blocks still come");
        b.write_block(0, b"one block").unwrap();
        assert!(!is_open(b), "closed once complete");
        a.write_block(1, blocks(&two)[1]).unwrap();
        assert!(!is_open(a));
        assert_eq!(temps(), 2);
        // A temp file that went missing after its blocks were written is an error,
        // never recreated as zeros and put in place as if verified.
        std::fs::remove_file(d.path().join(b.rel_path())).unwrap();
        let out = dl.finish_batch(&[&dl.files[0], &dl.files[1]]);
        assert_eq!(std::fs::read(out[0].as_ref().unwrap()).unwrap(), two);
        assert!(out[1].is_err(), "{:?}", out[1]);
        assert!(!d.path().join("b").exists());
        assert_eq!(temps(), 0);
    }

    #[test]
    fn bad_blocks_are_refused_and_not_written() {
        let d = tempfile::tempdir().unwrap();
        let data = vec![5u8; MIN_BLOCK_SIZE as usize + 10];
        let dl = Download::prepare(d.path(), &[entry("f", &data)], false).unwrap();
        let t = pending(&dl.files[0]);
        assert!(matches!(t.write_block(1, &[5; 9]), Err(BlockError::WrongSize { .. })));
        assert!(matches!(t.write_block(1, &[6; 10]), Err(BlockError::WrongHash(1))));
        assert!(matches!(t.write_block(2, &[5; 10]), Err(BlockError::OutOfRange(2))));
        assert_eq!(t.missing(), [0, 1]);
        assert!(matches!(dl.finish_batch(&[&dl.files[0]]).remove(0), Err(EngineError::Incomplete(_))));
        assert!(!d.path().join("f").exists());
    }

    #[test]
    fn a_second_copy_of_a_block_counts_once_and_a_bad_one_cannot_spoil_it() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * MIN_BLOCK_SIZE as usize).map(|i| (i % 13) as u8).collect();
        let dl = Download::prepare(d.path(), &[entry("f", &data)], false).unwrap();
        let t = pending(&dl.files[0]);
        let b = blocks(&data);
        assert_eq!(t.write_block(0, b[0]).unwrap(), Written { complete: false, fresh: true });
        assert_eq!(t.write_block(0, b[0]).unwrap(), Written { complete: false, fresh: false });
        assert_eq!(t.write_block(1, b[1]).unwrap(), Written { complete: true, fresh: true });
        // A wrong copy arriving late is not written over the verified block.
        assert!(t.write_block(0, &vec![9; b[0].len()]).is_ok_and(|w| !w.fresh));
        let out = dl.finish_batch(&[&dl.files[0]]).remove(0).unwrap();
        assert_eq!(std::fs::read(out).unwrap(), data);
    }

    #[test]
    fn a_rerun_keeps_verified_blocks() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..4 * MIN_BLOCK_SIZE as usize).map(|i| (i % 7) as u8).collect();
        let e = [entry("f", &data)];
        {
            let dl = Download::prepare(d.path(), &e, false).unwrap();
            let t = pending(&dl.files[0]);
            t.write_block(0, blocks(&data)[0]).unwrap();
            t.write_block(2, blocks(&data)[2]).unwrap();
        }
        let dl = Download::prepare(d.path(), &e, false).unwrap();
        assert_eq!(dl.resumed_bytes, 2 * MIN_BLOCK_SIZE as u64);
        assert_eq!(pending(&dl.files[0]).missing(), [1, 3]);
    }

    #[test]
    fn existing_files_are_kept_unless_identical_or_overwrite() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("same"), b"abc").unwrap();
        std::fs::write(d.path().join("diff"), b"old").unwrap();
        let dl = Download::prepare(d.path(), &[entry("same", b"abc")], false).unwrap();
        assert!(matches!(dl.files[0].status, FileStatus::InPlace));
        let err = Download::prepare(d.path(), &[entry("diff", b"new")], false).unwrap_err();
        assert!(matches!(err, EngineError::WouldOverwrite(ref v) if v.len() == 1), "{err}");
        assert_eq!(std::fs::read(d.path().join("diff")).unwrap(), b"old");
        let dl = Download::prepare(d.path(), &[entry("diff", b"new")], true).unwrap();
        pending(&dl.files[0]).write_block(0, b"new").unwrap();
        dl.finish_batch(&[&dl.files[0]]).remove(0).unwrap();
        assert_eq!(std::fs::read(d.path().join("diff")).unwrap(), b"new");
    }

    #[test]
    fn a_file_that_appears_in_a_new_folder_during_the_download_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let entries = [entry("new/a", b"aaa"), entry("new/b", b"bbb"), entry("new/c", b"ccc")];
        let dl = Download::prepare(d.path(), &entries, false).unwrap();
        for (f, data) in dl.files.iter().zip([b"aaa", b"bbb", b"ccc"]) {
            pending(f).write_block(0, data).unwrap();
        }
        // Someone makes the folder this download makes, and writes in it, while it runs.
        std::fs::create_dir(d.path().join("new")).unwrap();
        std::fs::write(d.path().join("new/b"), b"mine").unwrap();
        std::fs::write(d.path().join("new/c"), b"ccc").unwrap();
        let done: Vec<_> = dl.finish_batch(&dl.files.iter().collect::<Vec<_>>());
        assert_eq!(done[0].as_ref().unwrap(), &d.path().join("new/a"));
        let err = done[1].as_ref().unwrap_err();
        assert!(matches!(err, EngineError::WouldOverwrite(v) if v == &[d.path().join("new/b")]), "{err}");
        assert!(done[2].is_ok(), "the same content may be replaced by itself");
        assert_eq!(std::fs::read(d.path().join("new/a")).unwrap(), b"aaa");
        assert_eq!(std::fs::read(d.path().join("new/b")).unwrap(), b"mine");
        assert_eq!(std::fs::read(d.path().join("new/c")).unwrap(), b"ccc");
        assert_eq!(temp_files(d.path()).len(), 1, "only the temp of the file refused is kept");
    }

    #[test]
    fn case_collisions_are_left_out() {
        let d = tempfile::tempdir().unwrap();
        let dl = Download::prepare(
            d.path(),
            &[entry("Readme.md", b"a"), entry("README.md", b"b"), entry("ok", b"c")],
            false,
        )
        .unwrap();
        assert_eq!(dl.files.len(), 1);
        assert_eq!(dl.problems.len(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_directory_cannot_redirect_writes() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.join("l")).unwrap();
        let r = Download::prepare(&dest, &[entry("l/.bashrc", b"evil")], false);
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// Names that collide with each other on some filesystem.
    fn names() -> impl Strategy<Value = Vec<&'static str>> {
        let pick = prop::sample::select(vec![
            "readme.md",
            "README.md",
            "Readme.MD",
            "\u{d55c}.txt",
            "\u{1112}\u{1161}\u{11ab}.txt",
            "d",
            "D",
            "d/x",
            "D/x",
            "d/X",
            "e\u{301}",
            "\u{e9}",
            "plain.txt",
        ]);
        prop::collection::vec(pick, 1..8)
    }

    fn entry(path: &RelPath) -> Entry {
        let data = path.as_str().as_bytes();
        Entry {
            path: path.as_str().into(),
            kind: EntryKind::File(FileMeta {
                size: data.len() as u64,
                mtime_ns: 0,
                executable: false,
                block_size: peerbox_proto::manifest::block_size_for(data.len() as u64),
                blocks: vec![hash_block(data)],
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn planned_files_never_collide_and_stay_under_the_destination(raw in names()) {
            // What a peer may name (NFC, valid); duplicates of one path are one entry.
            let mut seen = HashSet::new();
            let entries: Vec<(RelPath, Entry)> = raw
                .iter()
                .filter_map(|n| RelPath::new(n).ok())
                .filter(|p| seen.insert(p.clone()))
                .filter(|p| !p.as_str().contains('/'))
                .map(|p| { let e = entry(&p); (p, e) })
                .collect();
            let d = tempfile::tempdir().unwrap();
            let dest = d.path().join("dest");
            let dl = Download::prepare(&dest, &entries, false).unwrap();
            let keys: Vec<String> = dl.files.iter().map(|f| f.path.collision_key()).collect();
            let unique: HashSet<&String> = keys.iter().collect();
            prop_assert_eq!(unique.len(), keys.len(), "two planned files collide: {:?}", keys);
            for f in &dl.files {
                prop_assert!(dl.final_path(&f.path).starts_with(&dest));
                if let FileStatus::Pending(t) = &f.status {
                    prop_assert!(dest.join(t.rel_path()).starts_with(&dest));
                }
            }
            // Every entry that collides with another was left out, and said so.
            prop_assert_eq!(dl.files.len() + dl.problems.len(), entries.len());
        }
    }
}
