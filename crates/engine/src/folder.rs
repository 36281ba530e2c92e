//! A shared folder on disk: its marker, scanning it against the index into new
//! records, applying remote versions (temp file, verify, fsync, re-check, keep the
//! old version, rename), deletes into the trash, conflict copies, the trash, and
//! the kept versions of replaced files.
//!
//! Versions live in `.peerbox/versions/<dir>/<stem>~<YYYYMMDD-HHMMSS-nanos><ext>`,
//! beside nothing a user sees and never synced. A folder keeps the newest N of each
//! file; older ones go to the trash, so no version a user made is lost silently.
//!
//! Every path comes in validated (`RelPath`) and is opened through a `cap_std`
//! handle on the folder root, so neither names nor symlinks lead outside it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use peerbox_proto::RelPath;
use peerbox_proto::index::Version;
use peerbox_proto::manifest::{FileMeta, block_count, block_size_for};
use peerbox_store::{FileRecord, FileStamp};

use crate::EngineError;
use crate::download::{
    TEMP_PREFIX, TempFile, ensure_dir, lazy_temp, open_temp, parent_of, set_mtime_and_mode, sync_parent,
};
use crate::ignores::{IGNORE_FILE, Ignores};
use crate::scan::{Listed, Skipped, Stamp, stamp_of};

/// The marker directory in every folder root; holds the trash. Its absence means
/// the folder is not there (an unplugged drive): sync stops, nothing is deleted.
pub const MARKER: &str = ".peerbox";
const TRASH: &str = ".peerbox/trash";
const VERSIONS: &str = ".peerbox/versions";

/// Creates the marker in a new folder root.
pub fn create_marker(root: &Path) -> Result<(), EngineError> {
    let m = root.join(MARKER).join("trash");
    std::fs::create_dir_all(&m).map_err(|e| EngineError::io(&m, e))
}

/// Checks that the folder is really there.
pub fn check_marker(root: &Path) -> Result<(), EngineError> {
    match std::fs::symlink_metadata(root.join(MARKER)) {
        Ok(m) if m.is_dir() => Ok(()),
        _ => Err(EngineError::MarkerMissing(root.to_owned())),
    }
}

/// Opens the folder root as a confined handle.
pub fn open_root(root: &Path) -> Result<Dir, EngineError> {
    check_marker(root)?;
    Dir::open_ambient_dir(root, ambient_authority()).map_err(|e| EngineError::io(root, e))
}

/// What a scan found changed, as records ready for the index (versions bumped for
/// `me`), plus records whose content is unchanged but whose stamp moved.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// New versions made on this device.
    pub changed: Vec<FileRecord>,
    /// Same content, new stamp (touch, or first scan after a pull).
    pub restamped: Vec<(String, FileStamp)>,
    /// What was left out.
    pub skipped: Vec<Skipped>,
    /// Download temp files seen (relative paths): stale once no pull needs them.
    pub temps: Vec<String>,
}

struct LocalEntry {
    dir: bool,
    /// From the walk's stat: folders and files the index has (to compare with
    /// it); a new file's is taken when it is hashed, from the open file.
    stamp: Option<Stamp>,
}

/// Scans the folder at `root` against this device's records `known` (by path).
/// With `scope`, only those paths (and what is below them) are looked at. What
/// `ignores` names is neither recorded nor, if it was recorded before, deleted:
/// the others keep their copies.
pub fn scan_folder(
    root: &Path,
    known: &HashMap<String, FileRecord>,
    me: u64,
    scope: Option<&[String]>,
    ignores: &Ignores,
) -> Result<ScanOutcome, EngineError> {
    scan_folder_with(root, known, me, scope, ignores, &|_| {}, None::<&mut NoRecorder>)
}

/// Files hashed between two early records (see [`Recorder`]); a scan with no more
/// to hash than this returns everything at the end.
const EARLY_BATCH: usize = 8192;

/// Takes the records of paths the index has never seen while a large scan still
/// hashes, so they are written while the next files are read.
pub trait Recorder: Send {
    /// What recording can fail with.
    type Error: From<EngineError> + Send;
    /// Called once the walk is done, with how many recorded files the scan will
    /// mark deleted; false keeps every record for the outcome.
    fn start(&mut self, deletes: usize) -> bool;
    /// Records a batch: new folders first, then new files as they are hashed.
    fn record(&mut self, batch: Vec<FileRecord>) -> Result<(), Self::Error>;
}

/// No early records.
pub struct NoRecorder;

impl Recorder for NoRecorder {
    type Error = EngineError;
    fn start(&mut self, _: usize) -> bool {
        false
    }
    fn record(&mut self, _: Vec<FileRecord>) -> Result<(), EngineError> {
        Ok(())
    }
}

/// [`scan_folder`], calling `watch` with each folder it walks just before it
/// lists it (a watch added there misses no change the listing does not see), and
/// handing the records of new paths to `recorder` as they are made (they are then
/// not in the outcome). Changes to paths the index knows, and deletions, are
/// always in the outcome.
pub fn scan_folder_with<R: Recorder>(
    root: &Path,
    known: &HashMap<String, FileRecord>,
    me: u64,
    scope: Option<&[String]>,
    ignores: &Ignores,
    watch: &dyn Fn(&Path),
    recorder: Option<&mut R>,
) -> Result<ScanOutcome, R::Error> {
    check_marker(root)?;
    let mut out = ScanOutcome::default();
    let mut found: BTreeMap<String, LocalEntry> = BTreeMap::new();
    let mut walker =
        Walker { ignores, watch, known, found: &mut found, skipped: &mut out.skipped, temps: &mut out.temps };
    match scope {
        None => walker.walk(root, None, true)?,
        Some(paths) => {
            for p in paths {
                let Ok(rel) = RelPath::new(p) else { continue };
                let local = rel.segments().fold(root.to_owned(), |a, s| a.join(s));
                match std::fs::symlink_metadata(&local) {
                    Ok(m) if ignores.is_ignored(p, m.is_dir()) => {}
                    Ok(m) if m.is_dir() => {
                        walker.found.insert(p.clone(), entry(&m, true));
                        walker.walk(&local, Some(&rel), true)?;
                    }
                    Ok(m) if m.is_file() => {
                        walker.found.insert(p.clone(), entry(&m, false));
                    }
                    _ => {}
                }
            }
        }
    }
    // A set, looked up by the path and each of its parents: a watcher's batch can
    // name thousands of paths, and every known path is checked against it.
    let scope_set: Option<HashSet<&str>> = scope.map(|paths| paths.iter().map(String::as_str).collect());
    let in_scope = |path: &str| match &scope_set {
        None => true,
        Some(set) => set.contains(path) || path.match_indices('/').any(|(i, _)| set.contains(&path[..i])),
    };

    // Deletions: known, live, in scope, not on disk, not ignored. They are known
    // before anything is hashed, so a recorder can weigh them first.
    let mut deletions = Vec::new();
    for (path, k) in known {
        if k.deleted || found.contains_key(path) || !in_scope(path) || !k.have || ignores.is_ignored(path, k.dir) {
            continue;
        }
        let mut t = dir_record(path, k.version.bump(me), me, true, k.mtime_ns);
        t.dir = k.dir;
        deletions.push(t);
    }

    // Files whose stamp moved, or that the walk did not stat (new ones), are hashed
    // (in parallel); the rest are skipped.
    let to_hash: Vec<(&String, &LocalEntry)> = found
        .iter()
        .filter(|(p, e)| {
            !e.dir
                && match known.get(*p) {
                    Some(k) if !k.deleted && !k.dir => e.stamp.is_none() || k.local != e.stamp,
                    _ => true,
                }
        })
        .collect();
    let deletes = deletions.iter().filter(|r| !r.dir).count();
    let early = recorder.filter(|_| to_hash.len() > EARLY_BATCH).and_then(|r| r.start(deletes).then_some(r));
    // Records of paths the index has never seen go to the recorder, if any.
    let recording = early.is_some();
    let fresh = |path: &str| recording && !known.contains_key(path);

    let mut dirs = Vec::new();
    let mut new_dirs = Vec::new();
    for (path, e) in &found {
        if e.dir && !known.get(path).is_some_and(|k| k.dir && !k.deleted) {
            let version = known.get(path).map(|k| k.version.clone()).unwrap_or_default().bump(me);
            let r = dir_record(path, version, me, false, e.stamp.map_or(0, |s| s.mtime_ns));
            if fresh(path) { new_dirs.push(r) } else { dirs.push(r) }
        }
    }

    // Hashes `jobs`, putting what changed into `out`, or into `new` if fresh.
    let hash = |jobs: &[(&String, &LocalEntry)], out: &mut ScanOutcome, new: &mut Vec<FileRecord>| {
        let local = |p: &str| p.split('/').fold(root.to_owned(), |a, s| a.join(s));
        // A new file's size is known once it is open: its blocks are read among the
        // small files unless they turn out larger, then with the large ones after.
        let first = |(p, e): &(&String, &LocalEntry)| {
            let max = if e.stamp.is_some() { u32::MAX } else { crate::scan::READER_MAX_BLOCK };
            crate::scan::hash_listed(&local(p), e.stamp, max, &|_| {})
        };
        let mut hashed = crate::scan::on_readers(jobs, |(_, e)| e.stamp.map_or(0, |s| s.size), first);
        let larger: Vec<(usize, u64)> = hashed
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match h {
                Ok(Listed::Larger(size)) => Some((i, *size)),
                _ => None,
            })
            .collect();
        let again = crate::scan::on_readers(
            &larger,
            |(_, size)| *size,
            |(i, _)| crate::scan::hash_listed(&local(jobs[*i].0), None, u32::MAX, &|_| {}),
        );
        for ((i, _), h) in larger.iter().zip(again) {
            hashed[*i] = h;
        }
        for ((path, e), h) in jobs.iter().zip(hashed) {
            let (blocks, meta) = match h {
                Ok(Listed::Hashed(blocks, meta)) => (blocks, meta),
                Ok(Listed::Larger(_)) => continue,
                // A new file gone since it was listed (a temp file, most likely): as
                // if it never was, as when the walk's stat finds nothing.
                Err(EngineError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && e.stamp.is_none() =>
                {
                    continue;
                }
                // Unreadable, or gone since the walk: the next scan sees it.
                Err(e) => {
                    out.skipped
                        .push(Skipped { path: PathBuf::from(e.to_string()), reason: "could not be read".into() });
                    continue;
                }
            };
            let stamp = stamp_of(&meta);
            let path = (*path).clone();
            let prev = known.get(&path);
            let same = prev.is_some_and(|k| !k.deleted && !k.dir && k.blocks == blocks && k.size == stamp.size);
            if same {
                out.restamped.push((path, stamp));
                continue;
            }
            let version = prev.map(|k| k.version.clone()).unwrap_or_default().bump(me);
            let r = FileRecord {
                path,
                dir: false,
                deleted: false,
                size: stamp.size,
                mtime_ns: stamp.mtime_ns,
                executable: crate::scan::executable(&meta),
                block_size: block_size_for(stamp.size),
                blocks,
                version,
                seq: 0,
                modified_by: me,
                have: true,
                local: Some(stamp),
            };
            if fresh(&r.path) { new.push(r) } else { out.changed.push(r) }
        }
    };
    match early {
        None => hash(&to_hash, &mut out, &mut Vec::new()),
        // New paths are recorded a batch at a time on a thread of their own while
        // the next batch is read: in a first scan, recording 100,000 records is
        // otherwise a pass of its own after the last read.
        Some(recorder) => std::thread::scope(|s| -> Result<(), R::Error> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<FileRecord>>(1);
            let writer = s.spawn(move || -> Result<(), R::Error> {
                for batch in rx {
                    recorder.record(batch)?;
                }
                Ok(())
            });
            let batches =
                std::iter::once(std::mem::take(&mut new_dirs)).chain(to_hash.chunks(EARLY_BATCH).map(|jobs| {
                    let mut new = Vec::new();
                    hash(jobs, &mut out, &mut new);
                    new
                }));
            // A writer that failed has hung up: stop reading, and report its error.
            for batch in batches {
                if !batch.is_empty() && tx.send(batch).is_err() {
                    break;
                }
            }
            drop(tx);
            writer.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?,
    }
    out.changed.extend(dirs);
    out.changed.extend(deletions);
    Ok(out)
}

fn dir_record(path: &str, version: Version, me: u64, deleted: bool, mtime_ns: i64) -> FileRecord {
    FileRecord {
        path: path.to_owned(),
        dir: true,
        deleted,
        size: 0,
        mtime_ns,
        executable: false,
        block_size: block_size_for(0),
        blocks: Vec::new(),
        version,
        seq: 0,
        modified_by: me,
        have: true,
        local: None,
    }
}

fn entry(m: &std::fs::Metadata, dir: bool) -> LocalEntry {
    LocalEntry { dir, stamp: Some(stamp_of(m)) }
}

/// Children of a directory listed, then stat'ed, at a time.
const WALK_CHUNK: usize = 4096;

/// Walks a folder's tree into `found`, leaving out what is ignored, not valid as
/// a synced name, or a link.
struct Walker<'a> {
    ignores: &'a Ignores,
    watch: &'a dyn Fn(&Path),
    known: &'a HashMap<String, FileRecord>,
    found: &'a mut BTreeMap<String, LocalEntry>,
    skipped: &'a mut Vec<Skipped>,
    temps: &'a mut Vec<String>,
}

impl Walker<'_> {
    /// Walks `dir`, at `rel` in the folder. `exact`: `dir` is where `rel` leads
    /// (no name on the way was normalised to reach `rel`).
    fn walk(&mut self, dir: &Path, rel: Option<&RelPath>, exact: bool) -> Result<(), EngineError> {
        (self.watch)(dir);
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.skipped.push(Skipped { path: dir.to_owned(), reason: e.to_string() });
                return Ok(());
            }
        };
        // Names first, a chunk at a time (memory stays bounded in a huge
        // directory); then their metadata, read in parallel when there are many (on
        // a cold disk each stat waits for an inode block); then the rest in order.
        let mut children = rd.flatten();
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let mut named = Vec::new();
            let mut more = false;
            for child in children.by_ref() {
                let path = child.path();
                let Some(name) = child.file_name().to_str().map(str::to_owned) else {
                    self.skipped.push(Skipped { path, reason: "name is not valid UTF-8".into() });
                    continue;
                };
                // The ignore file starts with ".peerbox" too, and is synced like any file.
                if (rel.is_none() && name == MARKER || name.starts_with(TEMP_PREFIX) || name.starts_with(".peerbox"))
                    && name != IGNORE_FILE
                {
                    if crate::download::is_download_temp(&name) {
                        self.temps.push(rel.map_or_else(|| name.clone(), |r| format!("{r}/{name}")));
                    }
                    continue;
                }
                match RelPath::join_local(rel, &name) {
                    Ok(child_rel) => {
                        let exact = exact && child_rel.file_name() == name;
                        named.push((path, child_rel, child.file_type().ok(), exact))
                    }
                    Err(e) => self.skipped.push(Skipped { path, reason: e.to_string() }),
                }
                if named.len() >= WALK_CHUNK {
                    more = true;
                    break;
                }
            }
            // The listing gives each entry's type. A file is stat'ed only if the
            // index has it, to compare; a new one is hashed anyway, and its stamp
            // comes from the open file (on a cold disk, its inode is then loaded
            // once, by the read, rather than by a stat and again by the read).
            // One whose path was normalised is stat'ed too: the read, by its
            // recorded path, will not find it, and the stat shows it was there.
            let known_file = |rel: &RelPath| self.known.get(rel.as_str()).is_some_and(|k| !k.deleted && !k.dir);
            // None: not stat'ed; Some(None): gone since it was listed.
            let mut metas: Vec<Option<Option<std::fs::Metadata>>> =
                std::iter::repeat_with(|| None).take(named.len()).collect();
            {
                let wanted: Vec<(usize, &Path)> = (named.iter().enumerate())
                    .filter(|(_, (_, rel, kind, exact))| {
                        !exact || kind.is_none_or(|k| k.is_dir() || (k.is_file() && known_file(rel)))
                    })
                    .map(|(i, (path, ..))| (i, path.as_path()))
                    .collect();
                for ((i, _), m) in wanted.iter().zip(crate::scan::stat_all(&wanted, |(_, path)| path)) {
                    metas[*i] = Some(m);
                }
            }
            // New folders (whole trees, in a first scan) are read ahead, several at
            // a time: the walk lists them one by one. Known ones are likely cached.
            let new_dirs: Vec<PathBuf> = (named.iter().zip(&metas))
                .filter(|((_, rel, ..), meta)| {
                    meta.as_ref().and_then(Option::as_ref).is_some_and(std::fs::Metadata::is_dir)
                        && !self.known.get(rel.as_str()).is_some_and(|k| k.dir && !k.deleted)
                        && !self.ignores.is_ignored(rel.as_str(), true)
                })
                .map(|((path, ..), _)| path.clone())
                .collect();
            if new_dirs.len() > 1 {
                crate::scan::list_ahead(new_dirs);
            }
            for ((path, child_rel, kind, exact), meta) in named.into_iter().zip(metas) {
                let (meta, (is_dir, is_link, is_file)) = match (meta, kind) {
                    (Some(Some(m)), _) => {
                        let kind = (m.is_dir(), m.file_type().is_symlink(), m.is_file());
                        (Some(m), kind)
                    }
                    (None, Some(k)) => (None, (k.is_dir(), k.is_symlink(), k.is_file())),
                    // Gone since it was listed.
                    _ => continue,
                };
                if self.ignores.is_ignored(child_rel.as_str(), is_dir) {
                    continue;
                }
                if !seen.insert(child_rel.collision_key()) {
                    self.skipped
                        .push(Skipped { path, reason: "another name differs only in case or Unicode form".into() });
                    continue;
                }
                if is_link {
                    self.skipped.push(Skipped { path, reason: "symbolic links are not synced".into() });
                } else if let Some(meta) = meta.as_ref().filter(|_| is_dir) {
                    self.found.insert(child_rel.as_str().to_owned(), entry(meta, true));
                    self.walk(&path, Some(&child_rel), exact)?;
                } else if is_file {
                    let stamp = meta.as_ref().map(stamp_of);
                    self.found.insert(child_rel.as_str().to_owned(), LocalEntry { dir: false, stamp });
                }
            }
            if !more {
                break;
            }
        }
        Ok(())
    }
}

/// The stamp of the local file at `rel`, if there is a regular file.
pub fn local_stamp(root: &Dir, rel: &RelPath) -> Option<Stamp> {
    let m = root.symlink_metadata(rel.as_str()).ok()?;
    if !m.is_file() {
        return None;
    }
    let f = root.open(rel.as_str()).ok()?.into_std();
    Some(stamp_of(&f.metadata().ok()?))
}

/// Starts the temp file for pulling `meta` into `rel`: a file of several blocks
/// is opened now, keeping the blocks an earlier run left that verify; one of a
/// single block is made by its write.
///
/// `folder` is the file's folder, made and opened once for the batch (see
/// [`make_folders`]); a small file is made there without a name where the system
/// can, and named when put in place. Without it, the folder is made here, or
/// the reason it cannot be is returned.
pub fn start_pull(
    root: &Arc<Dir>,
    root_path: &Path,
    rel: &RelPath,
    meta: &FileMeta,
    folder: Option<&Arc<Dir>>,
) -> Result<TempFile, EngineError> {
    if folder.is_none()
        && let Some(parent) = rel.ancestors().last()
    {
        ensure_dir(root, root_path, parent)?;
    }
    if block_count(meta.size, meta.block_size) <= 1 {
        return Ok(lazy_temp(root, rel, meta, folder.cloned()));
    }
    open_temp(root, root_path, rel, meta)
}

/// Why a pulled file was not put in place.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The local file changed since it was last scanned: a conflict, not an overwrite.
    #[error("{0}: changed locally since the last scan")]
    LocalChanged(String),
    /// File system trouble.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Makes a batch of complete temp files durable, with their members' mtimes and
/// modes, and returns, in order, the stamp each will have in place: the inode and
/// mtime survive the rename, so a journal can say beforehand what each file will
/// look like once there. A large batch takes one `syncfs` (Linux) instead of an
/// fsync per file: with thousands of small files the fsyncs are nearly all of
/// the time, and durability is the same.
pub fn ready_pulls(
    root_path: &Path,
    files: &[(&RelPath, &TempFile, &FileMeta)],
) -> Vec<Result<FileStamp, EngineError>> {
    let mut out: Vec<Result<(), EngineError>> = files
        .iter()
        .map(|(rel, tmp, meta)| {
            if !tmp.is_complete() {
                return Err(EngineError::Incomplete(root_path.join(rel.as_str())));
            }
            let file = tmp.file().map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))?;
            set_mtime_and_mode(&file, meta);
            Ok(())
        })
        .collect();
    let first = files.iter().zip(&out).find(|(_, r)| r.is_ok()).map(|((_, t, _), _)| *t);
    #[cfg(target_os = "linux")]
    let at_once = first
        .filter(|_| files.len() >= crate::download::SYNCFS_FROM)
        .map(|t| t.file().and_then(|f| rustix::fs::syncfs(&*f).map_err(std::io::Error::from)));
    #[cfg(not(target_os = "linux"))]
    let at_once: Option<std::io::Result<()>> = first.and(None);
    for ((rel, tmp, _), r) in files.iter().zip(out.iter_mut()) {
        if r.is_err() {
            continue;
        }
        let synced = match &at_once {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
            None => tmp.file().and_then(|f| f.sync_all()),
        };
        *r = synced.map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e));
    }
    files
        .iter()
        .zip(out)
        .map(|((rel, tmp, _), r)| {
            r?;
            // Taken from the handle, not the path: read after the rename, it could
            // already describe a user's next edit, which would then never be noticed.
            let m =
                tmp.file().and_then(|f| f.metadata()).map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))?;
            Ok(stamp_of(&m))
        })
        .collect()
}

/// Moves a temp file made ready by [`ready_pulls`] into place at `rel`. `expected`
/// is what the index believes is there now (`None`: nothing). If the disk
/// disagrees the pull stops with [`ApplyError::LocalChanged`]. An existing file is
/// kept first: among the file's versions when the folder keeps `keep` > 0 of them,
/// else in the trash. The rename is durable once [`sync_dirs`] has run over the
/// batch's directories.
///
/// `folder` is the file's folder, opened through the root for the whole batch
/// (see [`make_folders`]): the check and the rename then go by name, where each
/// through the root opens the folder again, twice for a rename.
pub fn place_pull(
    root: &Dir,
    root_path: &Path,
    rel: &RelPath,
    tmp: &TempFile,
    expected: Option<FileStamp>,
    keep: u32,
    folder: Option<&Arc<Dir>>,
) -> Result<(), ApplyError> {
    let shown = root_path.join(rel.as_str());
    let by_name = folder.and_then(|d| Some((d, RelPath::new(rel.file_name()).ok()?, tmp.rel_path().file_name()?)));
    let current = match &by_name {
        Some((d, name, _)) => local_stamp(d, name),
        None => local_stamp(root, rel),
    };
    if current != expected && !(expected.is_none() && current.is_none()) {
        return Err(ApplyError::LocalChanged(rel.to_string()));
    }
    if tmp.is_unnamed() {
        let r = if current.is_none() {
            // Named in place: if a file took the name since the check, it stays.
            tmp.name_as(rel.file_name()).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => ApplyError::LocalChanged(rel.to_string()),
                _ => EngineError::io(&shown, e).into(),
            })
        } else {
            // Over a file: under its temp name first, then renamed as any other.
            let tmp_name = tmp.rel_path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
            tmp.name_as(tmp_name).map_err(|e| EngineError::io(&root_path.join(tmp.rel_path()), e).into())
        };
        if current.is_none() || r.is_err() {
            return r;
        }
    }
    if current.is_some() {
        if keep > 0 {
            keep_version_as(root, root_path, rel, keep, Aside::Link)?;
        } else {
            trash_as(root, root_path, rel, Aside::Link)?;
        }
    }
    // Over the old file, if it is still there (hard-linked aside): one atomic step.
    match &by_name {
        Some((d, name, tmp_name)) => d.rename(tmp_name, d, name.as_str()),
        None => root.rename(tmp.rel_path(), root, rel.as_str()),
    }
    .map_err(|e| EngineError::io(&shown, e))?;
    Ok(())
}

/// The folders of `rels`, each made if missing and opened once through the
/// root. One that cannot be is left out: its files go by their paths from the
/// root, which report why.
pub fn make_folders<'a>(root: &Dir, root_path: &Path, rels: impl IntoIterator<Item = &'a RelPath>) -> Folders {
    let mut out = HashMap::new();
    for rel in rels {
        let parent = parent_of(rel);
        if !out.contains_key(parent) {
            let made = ensure_dir(root, root_path, parent).is_ok();
            out.insert(parent.to_owned(), made.then(|| root.open_dir(parent).ok().map(Arc::new)).flatten());
        }
    }
    out
}

/// Folders of a batch of files, by path from the root (see [`make_folders`]).
pub type Folders = HashMap<String, Option<Arc<Dir>>>;

/// The folder of `rel` among those [`make_folders`] opened.
pub fn folder_of<'a>(folders: &'a Folders, rel: &RelPath) -> Option<&'a Arc<Dir>> {
    folders.get(parent_of(rel))?.as_ref()
}

/// Makes the renames of a batch durable: one fsync per distinct directory of
/// `rels`, however many files each received.
pub fn sync_dirs<'a>(
    root: &Dir,
    root_path: &Path,
    rels: impl IntoIterator<Item = &'a RelPath>,
) -> Result<(), EngineError> {
    let mut seen = HashSet::new();
    for rel in rels {
        let parent = parent_of(rel);
        if seen.insert(parent.to_owned()) {
            sync_parent(root, rel).map_err(|e| EngineError::io(&root_path.join(parent), e))?;
        }
    }
    Ok(())
}

/// How a file goes to the trash or among its versions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Aside {
    /// Moved: it leaves its place.
    Move,
    /// Hard-linked where the filesystem can (else moved): it stays in place until
    /// a rename replaces it, so a crash in between leaves the old file in both
    /// places, never in neither (a missing file would be scanned as a delete).
    Link,
}

fn set_aside(root: &Dir, from: &str, to: &str, how: Aside) -> std::io::Result<()> {
    if how == Aside::Link && root.hard_link(from, root, to).is_ok() {
        return Ok(());
    }
    root.rename(from, root, to)
}

/// Deletes the file at `rel` into the trash, if it is still what the index knows.
pub fn delete(root: &Dir, root_path: &Path, rel: &RelPath, expected: Option<FileStamp>) -> Result<(), ApplyError> {
    match local_stamp(root, rel) {
        None => Ok(()),
        Some(s) if Some(s) == expected => {
            trash(root, root_path, rel)?;
            Ok(())
        }
        Some(_) => Err(ApplyError::LocalChanged(rel.to_string())),
    }
}

/// Removes an empty directory (a deleted directory whose files are gone). A
/// directory that still holds something is left alone.
pub fn remove_dir_if_empty(root: &Dir, rel: &RelPath) {
    let _ = root.remove_dir(rel.as_str());
}

/// Creates a directory.
pub fn make_dir(root: &Dir, root_path: &Path, rel: &RelPath) -> Result<(), EngineError> {
    ensure_dir(root, root_path, rel.as_str())
}

/// Renames the local file at `rel` to its conflict-copy name and returns that name.
pub fn move_to_conflict_copy(
    root: &Dir,
    root_path: &Path,
    rel: &RelPath,
    device: &str,
) -> Result<RelPath, EngineError> {
    let name = conflict_name(rel, peerbox_store::now(), device);
    let shown = root_path.join(rel.as_str());
    root.rename(rel.as_str(), root, name.as_str()).map_err(|e| EngineError::io(&shown, e))?;
    Ok(name)
}

/// `dir/name.sync-conflict-YYYYMMDD-HHMMSS-<device>.ext`.
pub fn conflict_name(rel: &RelPath, unix: u64, device: &str) -> RelPath {
    let file = rel.file_name();
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    };
    let new = format!("{stem}.sync-conflict-{}-{device}{ext}", timestamp(unix));
    let full = match rel.as_str().rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{new}"),
        None => new,
    };
    RelPath::new(&full).unwrap_or_else(|_| rel.clone())
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Moves the file at `rel` into `.peerbox/trash/<time>/<rel>`.
pub fn trash(root: &Dir, root_path: &Path, rel: &RelPath) -> Result<(), EngineError> {
    trash_as(root, root_path, rel, Aside::Move)
}

fn trash_as(root: &Dir, root_path: &Path, rel: &RelPath, how: Aside) -> Result<(), EngineError> {
    let slot = format!("{TRASH}/{}", stamp_now());
    let dest = format!("{slot}/{}", rel.as_str());
    if let Some((parent, _)) = dest.rsplit_once('/') {
        root.create_dir_all(parent).map_err(|e| EngineError::io(&root_path.join(parent), e))?;
    }
    set_aside(root, rel.as_str(), &dest, how).map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))
}

fn stamp_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{:09}", timestamp(now.as_secs()), now.subsec_nanos())
}

/// Whether `s` is a stamp as [`stamp_now`] makes them: `YYYYMMDD-HHMMSS-nnnnnnnnn`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25 && b.iter().enumerate().all(|(i, c)| if i == 8 || i == 15 { *c == b'-' } else { c.is_ascii_digit() })
}

/// A file's name split for version names: `report.final` + `.pdf`; a dotfile or a
/// name without a dot has no extension.
fn stem_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// The versions directory for `rel`'s parent, and `rel`'s name split.
fn version_dir(rel: &RelPath) -> (String, &str, &str) {
    let (stem, ext) = stem_ext(rel.file_name());
    let dir = match rel.as_str().rsplit_once('/') {
        Some((parent, _)) => format!("{VERSIONS}/{parent}"),
        None => VERSIONS.to_owned(),
    };
    (dir, stem, ext)
}

/// A kept version of a file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionEntry {
    /// Its number: 1 is the newest.
    pub n: usize,
    /// When it was replaced (`YYYYMMDD-HHMMSS-nanos`, UTC): names it for restore.
    pub at: String,
    /// Its size.
    pub size: u64,
    /// Its modification time, unix nanoseconds (when that version was written).
    pub mtime_ns: i64,
}

/// The kept versions of `rel`, newest first.
pub fn versions(root: &Path, rel: &RelPath) -> Result<Vec<VersionEntry>, EngineError> {
    let (dir, stem, ext) = version_dir(rel);
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.join(&dir)) else { return Ok(out) };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
        let Some(at) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('~')).and_then(|r| r.strip_suffix(ext))
        else {
            continue;
        };
        let Ok(m) = e.metadata() else { continue };
        if is_stamp(at) && m.is_file() {
            out.push(VersionEntry { n: 0, at: at.to_owned(), size: m.len(), mtime_ns: stamp_of(&m).mtime_ns });
        }
    }
    out.sort_by(|a, b| b.at.cmp(&a.at));
    for (i, v) in out.iter_mut().enumerate() {
        v.n = i + 1;
    }
    Ok(out)
}

/// Moves the file at `rel` among its versions, then moves all but the newest
/// `keep` of them to the trash.
pub fn keep_version(root: &Dir, root_path: &Path, rel: &RelPath, keep: u32) -> Result<(), EngineError> {
    keep_version_as(root, root_path, rel, keep, Aside::Move)
}

fn keep_version_as(root: &Dir, root_path: &Path, rel: &RelPath, keep: u32, how: Aside) -> Result<(), EngineError> {
    let (dir, stem, ext) = version_dir(rel);
    root.create_dir_all(&dir).map_err(|e| EngineError::io(&root_path.join(&dir), e))?;
    let dest = format!("{dir}/{stem}~{}{ext}", stamp_now());
    set_aside(root, rel.as_str(), &dest, how).map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))?;
    for old in versions(root_path, rel)?.into_iter().skip(keep as usize) {
        let from = format!("{dir}/{stem}~{}{ext}", old.at);
        let slot = format!("{TRASH}/{}", stamp_now());
        let to = format!("{slot}/{}", rel.as_str());
        if let Some((parent, _)) = to.rsplit_once('/') {
            root.create_dir_all(parent).map_err(|e| EngineError::io(&root_path.join(parent), e))?;
        }
        root.rename(&from, root, &to).map_err(|e| EngineError::io(&root_path.join(&from), e))?;
    }
    Ok(())
}

/// Puts version `at` of `rel` back in place. What is there now is kept as a version
/// first, so restoring never loses anything; the scanner then announces the result
/// as a new version.
pub fn restore_version(root_path: &Path, rel: &RelPath, at: &str, keep: u32) -> Result<(), EngineError> {
    let root = open_root(root_path)?;
    if !is_stamp(at) || !versions(root_path, rel)?.iter().any(|v| v.at == at) {
        return Err(EngineError::NoSuchVersion(rel.to_string()));
    }
    let (dir, stem, ext) = version_dir(rel);
    let from = format!("{dir}/{stem}~{at}{ext}");
    match root.symlink_metadata(rel.as_str()) {
        Ok(m) if m.is_file() => keep_version(&root, root_path, rel, keep.max(1) + 1)?,
        Ok(_) => return Err(EngineError::WouldOverwrite(vec![root_path.join(rel.as_str())])),
        Err(_) => {
            if let Some(parent) = rel.ancestors().last() {
                ensure_dir(&root, root_path, parent)?;
            }
        }
    }
    root.rename(&from, &root, rel.as_str()).map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))?;
    // A restored file is a change like any other: a fresh mtime makes sure the
    // scanner (and conflict resolution on other members) sees it as the newest.
    if let Ok(f) = root.open(rel.as_str()) {
        let _ = f.into_std().set_modified(std::time::SystemTime::now());
    }
    sync_parent(&root, rel).map_err(|e| EngineError::io(&root_path.join(rel.as_str()), e))?;
    Ok(())
}

/// A file in the trash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrashEntry {
    /// Where it was in the folder.
    pub path: String,
    /// When it was moved to the trash (`YYYYMMDD-HHMMSS-nanos`, UTC).
    pub deleted_at: String,
    /// Its size.
    pub size: u64,
}

/// Everything in a folder's trash, newest first.
pub fn trash_list(root: &Path) -> Result<Vec<TrashEntry>, EngineError> {
    let dir = root.join(TRASH);
    let mut out = Vec::new();
    let Ok(slots) = std::fs::read_dir(&dir) else { return Ok(out) };
    for slot in slots.flatten() {
        let Some(at) = slot.file_name().to_str().map(str::to_owned) else { continue };
        let mut stack = vec![(slot.path(), String::new())];
        while let Some((d, prefix)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let Some(n) = e.file_name().to_str().map(str::to_owned) else { continue };
                let rel = if prefix.is_empty() { n } else { format!("{prefix}/{n}") };
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push((e.path(), rel)),
                    Ok(t) if t.is_file() => {
                        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                        out.push(TrashEntry { path: rel, deleted_at: at.clone(), size });
                    }
                    _ => {}
                }
            }
        }
    }
    out.sort_by(|a, b| b.deleted_at.cmp(&a.deleted_at).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// Puts the newest trashed version of `rel` back (or the one deleted at `at`).
/// Refuses if something is at `rel` now.
pub fn trash_restore(root: &Path, rel: &RelPath, at: Option<&str>) -> Result<(), EngineError> {
    let dir = open_root(root)?;
    let entries = trash_list(root)?;
    let Some(e) = entries.iter().find(|e| e.path == rel.as_str() && at.is_none_or(|a| a == e.deleted_at)) else {
        return Err(EngineError::NotInTrash(rel.to_string()));
    };
    if dir.symlink_metadata(rel.as_str()).is_ok() {
        return Err(EngineError::WouldOverwrite(vec![root.join(rel.as_str())]));
    }
    if let Some(parent) = rel.ancestors().last() {
        ensure_dir(&dir, root, parent)?;
    }
    let from = format!("{TRASH}/{}/{}", e.deleted_at, rel.as_str());
    dir.rename(&from, &dir, rel.as_str()).map_err(|err| EngineError::io(&root.join(rel.as_str()), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("f");
        std::fs::create_dir(&root).unwrap();
        create_marker(&root).unwrap();
        (d, root)
    }

    fn by_path(v: Vec<FileRecord>) -> HashMap<String, FileRecord> {
        v.into_iter().map(|r| (r.path.clone(), r)).collect()
    }

    #[test]
    fn scans_find_new_changed_and_deleted_entries() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.txt"), b"one").unwrap();
        std::fs::write(root.join("한글.txt"), b"two").unwrap();
        let first = scan_folder(&root, &HashMap::new(), 7, None, &Ignores::default()).unwrap();
        let paths: Vec<_> = first.changed.iter().map(|r| r.path.as_str()).collect();
        assert!(paths.contains(&"a/b/x.txt") && paths.contains(&"a") && paths.contains(&"한글.txt"), "{paths:?}");
        let known = by_path(first.changed);

        // Nothing changed: nothing to record.
        let again = scan_folder(&root, &known, 7, None, &Ignores::default()).unwrap();
        assert!(again.changed.is_empty(), "{:?}", again.changed);

        std::fs::write(root.join("a/b/x.txt"), b"changed").unwrap();
        std::fs::remove_file(root.join("한글.txt")).unwrap();
        let third = scan_folder(&root, &known, 7, None, &Ignores::default()).unwrap();
        let x = third.changed.iter().find(|r| r.path == "a/b/x.txt").unwrap();
        assert_eq!(x.version.relation(&known["a/b/x.txt"].version), peerbox_proto::index::Relation::Newer);
        assert!(third.changed.iter().any(|r| r.path == "한글.txt" && r.deleted));
    }

    #[test]
    fn a_directory_of_more_children_than_a_walk_chunk_is_found_whole() {
        let (_d, root) = setup();
        let n = WALK_CHUNK + 70;
        std::fs::create_dir(root.join("many")).unwrap();
        for i in 0..n {
            std::fs::write(root.join(format!("many/{i}")), [i as u8]).unwrap();
        }
        std::fs::create_dir(root.join("many/sub")).unwrap();
        std::fs::write(root.join("many/sub/x"), "x").unwrap();
        let out = scan_folder(&root, &HashMap::new(), 7, None, &Ignores::default()).unwrap();
        let files = out.changed.iter().filter(|r| !r.dir && r.path.starts_with("many/")).count();
        assert_eq!(files, n + 1);
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    }

    #[test]
    fn a_scoped_scan_finds_deletions_in_its_paths_and_below_only() {
        let (_d, root) = setup();
        for f in ["a/x", "a/b/y", "ab/z", "c", "d"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let known = by_path(scan_folder(&root, &HashMap::new(), 7, None, &Ignores::default()).unwrap().changed);
        for f in ["a/x", "a/b/y", "ab/z", "c", "d"] {
            std::fs::remove_file(root.join(f)).unwrap();
        }
        let scope = ["a".to_owned(), "c".to_owned()];
        let out = scan_folder(&root, &known, 7, Some(&scope), &Ignores::default()).unwrap();
        let mut deleted: Vec<&str> = out.changed.iter().filter(|r| r.deleted).map(|r| r.path.as_str()).collect();
        deleted.sort();
        // "ab/z" shares a prefix with "a" but is not below it; "d" is out of scope.
        assert_eq!(deleted, ["a/b/y", "a/x", "c"]);
    }

    #[test]
    fn a_missing_marker_stops_the_scan() {
        let (_d, root) = setup();
        std::fs::remove_dir_all(root.join(MARKER)).unwrap();
        assert!(matches!(
            scan_folder(&root, &HashMap::new(), 1, None, &Ignores::default()),
            Err(EngineError::MarkerMissing(_))
        ));
    }

    #[test]
    fn trash_keeps_deleted_files_restorable() {
        let (_d, root) = setup();
        std::fs::create_dir(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/plan.txt"), b"v1").unwrap();
        let dir = open_root(&root).unwrap();
        let rel = RelPath::new("docs/plan.txt").unwrap();
        let stamp = local_stamp(&dir, &rel);
        delete(&dir, &root, &rel, stamp).unwrap();
        assert!(!root.join("docs/plan.txt").exists());
        let list = trash_list(&root).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].path, "docs/plan.txt");
        trash_restore(&root, &rel, None).unwrap();
        assert_eq!(std::fs::read(root.join("docs/plan.txt")).unwrap(), b"v1");
    }

    #[test]
    fn replaced_files_keep_their_newest_versions_and_older_ones_go_to_the_trash() {
        let (_d, root) = setup();
        std::fs::create_dir(root.join("docs")).unwrap();
        let dir = open_root(&root).unwrap();
        let rel = RelPath::new("docs/report.final.pdf").unwrap();
        for v in 1..=4u8 {
            std::fs::write(root.join("docs/report.final.pdf"), [v]).unwrap();
            keep_version(&dir, &root, &rel, 3).unwrap();
        }
        let kept = versions(&root, &rel).unwrap();
        assert_eq!(kept.iter().map(|v| v.n).collect::<Vec<_>>(), [1, 2, 3]);
        let content =
            |v: &VersionEntry| std::fs::read(root.join(format!("{VERSIONS}/docs/report.final~{}.pdf", v.at))).unwrap();
        assert_eq!(kept.iter().map(content).collect::<Vec<_>>(), [vec![4], vec![3], vec![2]], "newest first");
        // The oldest is not lost: it is in the trash.
        let trashed = trash_list(&root).unwrap();
        assert_eq!(trashed.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(), ["docs/report.final.pdf"]);

        // Restoring version 2 keeps what is there now as a version too.
        std::fs::write(root.join("docs/report.final.pdf"), [5]).unwrap();
        restore_version(&root, &rel, &kept[1].at, 3).unwrap();
        assert_eq!(std::fs::read(root.join("docs/report.final.pdf")).unwrap(), [3]);
        let after = versions(&root, &rel).unwrap();
        assert_eq!(after.iter().map(content).collect::<Vec<_>>(), [vec![5], vec![4], vec![2]]);
        assert!(matches!(
            restore_version(&root, &rel, "20200101-000000-000000000", 3),
            Err(EngineError::NoSuchVersion(_))
        ));
        assert!(matches!(restore_version(&root, &rel, "../../x", 3), Err(EngineError::NoSuchVersion(_))));
        // Another file's versions are its own, even with a similar name.
        assert!(versions(&root, &RelPath::new("docs/report.pdf").unwrap()).unwrap().is_empty());
    }

    fn meta_of(data: &[u8], mtime_ns: i64) -> FileMeta {
        FileMeta {
            size: data.len() as u64,
            mtime_ns,
            executable: false,
            block_size: block_size_for(data.len() as u64),
            blocks: vec![crate::hash_block(data)],
        }
    }

    /// Places a pulled temp file the way a batch does: its folder opened once.
    fn place(
        dir: &Dir,
        root: &Path,
        rel: &RelPath,
        tmp: &TempFile,
        expected: Option<FileStamp>,
    ) -> Result<(), ApplyError> {
        let folders = make_folders(dir, root, [rel]);
        place_pull(dir, root, rel, tmp, expected, 0, folder_of(&folders, rel))
    }

    /// A pulled small file started the way a batch starts it, and its block written.
    fn pulled(dir: &Arc<Dir>, root: &Path, rel: &RelPath, data: &[u8]) -> TempFile {
        let meta = meta_of(data, 1_600_000_000_000_000_000);
        let folders = make_folders(dir, root, [rel]);
        let tmp = start_pull(dir, root, rel, &meta, folder_of(&folders, rel)).unwrap();
        assert!(!root.join(tmp.rel_path()).exists(), "the file waits for its block");
        tmp.write_block(0, data).unwrap();
        ready_pulls(root, &[(rel, &tmp, &meta)]).remove(0).unwrap();
        tmp
    }

    #[test]
    fn a_pulled_small_file_gets_a_name_only_in_place() {
        let (_d, root) = setup();
        let dir = Arc::new(open_root(&root).unwrap());
        let (rel, data) = (RelPath::new("docs/note.txt").unwrap(), b"hello from a member".to_vec());
        let tmp = pulled(&dir, &root, &rel, &data);
        // Linux makes it without a name: nothing half-done shows in the folder.
        assert_eq!(tmp.is_unnamed(), cfg!(target_os = "linux"));
        let names = || std::fs::read_dir(root.join("docs")).unwrap().count();
        assert_eq!(names(), usize::from(!tmp.is_unnamed()));
        let stamp = stamp_of(&tmp.file().unwrap().metadata().unwrap());

        place(&dir, &root, &rel, &tmp, None).unwrap();
        assert_eq!(std::fs::read(root.join("docs/note.txt")).unwrap(), data);
        assert_eq!(names(), 1, "the file, and no temp file");
        assert_eq!(local_stamp(&dir, &rel), Some(stamp), "the stamp said beforehand is the one in place");
    }

    #[test]
    fn a_pulled_small_file_replaces_the_one_it_was_pulled_over() {
        let (_d, root) = setup();
        let dir = Arc::new(open_root(&root).unwrap());
        let rel = RelPath::new("r.txt").unwrap();
        std::fs::write(root.join("r.txt"), b"old").unwrap();
        let old = local_stamp(&dir, &rel);
        let tmp = pulled(&dir, &root, &rel, b"new");
        place(&dir, &root, &rel, &tmp, old).unwrap();
        assert_eq!(std::fs::read(root.join("r.txt")).unwrap(), b"new");
        let trashed = trash_list(&root).unwrap();
        assert_eq!(trashed.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(), ["r.txt"], "the old one is kept");
    }

    #[test]
    fn a_small_pull_writes_over_a_temp_file_an_earlier_run_left() {
        let (_d, root) = setup();
        let dir = Arc::new(open_root(&root).unwrap());
        let (rel, data) = (RelPath::new("a.bin").unwrap(), vec![7u8; 3000]);
        let meta = meta_of(&data, 0);
        // No folder handle: a named temp file, as where files cannot be made unnamed.
        let tmp = start_pull(&dir, &root, &rel, &meta, None).unwrap();
        // Same name (same path and content), other bytes: a run killed mid-write.
        std::fs::write(root.join(tmp.rel_path()), vec![1u8; 3000]).unwrap();
        tmp.write_block(0, &data).unwrap();
        assert!(!tmp.is_unnamed());
        ready_pulls(&root, &[(&rel, &tmp, &meta)]).remove(0).unwrap();
        place(&dir, &root, &rel, &tmp, None).unwrap();
        assert_eq!(std::fs::read(root.join("a.bin")).unwrap(), data);
    }

    #[test]
    fn a_file_that_appeared_where_a_pull_goes_is_kept() {
        let (_d, root) = setup();
        let dir = Arc::new(open_root(&root).unwrap());
        let rel = RelPath::new("in/x.txt").unwrap();
        let tmp = pulled(&dir, &root, &rel, b"theirs");
        std::fs::write(root.join("in/x.txt"), b"mine, just saved").unwrap();
        let r = place(&dir, &root, &rel, &tmp, None);
        assert!(matches!(r, Err(ApplyError::LocalChanged(_))), "{r:?}");
        assert_eq!(std::fs::read(root.join("in/x.txt")).unwrap(), b"mine, just saved");
        if tmp.is_unnamed() {
            // Saved after the check, just before the naming: still kept.
            let e = tmp.name_as("x.txt").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
            assert_eq!(std::fs::read(root.join("in/x.txt")).unwrap(), b"mine, just saved");
        }
    }

    /// New files are sized only once open: one too large for the small-file
    /// readers (blocks over 1 MiB, so over 2,000 MiB) is hashed after them, and
    /// recorded like any other.
    #[test]
    fn a_new_file_with_large_blocks_is_hashed_and_recorded() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("f");
        create_marker(&root).unwrap();
        let size = 2001 << 20;
        std::fs::File::create(root.join("disk.img")).unwrap().set_len(size).unwrap();
        std::fs::write(root.join("small.txt"), b"small").unwrap();
        let out = scan_folder(&root, &HashMap::new(), 1, None, &Ignores::default()).unwrap();
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let big = out.changed.iter().find(|r| r.path == "disk.img").expect("recorded");
        assert!(big.block_size > crate::scan::READER_MAX_BLOCK);
        assert_eq!((big.size, big.blocks.len() as u64), (size, block_count(size, big.block_size)));
        assert_eq!(big.blocks[0], crate::scan::hash_block(&vec![0; big.block_size as usize]));
        assert!(out.changed.iter().any(|r| r.path == "small.txt"));
    }

    /// Collects early records; refuses to start when told to.
    struct Collect {
        go: bool,
        deletes: Option<usize>,
        batches: Vec<Vec<FileRecord>>,
        fail_at: Option<usize>,
    }

    impl Recorder for Collect {
        type Error = EngineError;
        fn start(&mut self, deletes: usize) -> bool {
            self.deletes = Some(deletes);
            self.go
        }
        fn record(&mut self, batch: Vec<FileRecord>) -> Result<(), EngineError> {
            if self.fail_at == Some(self.batches.len()) {
                return Err(EngineError::Refused("the index is full".into()));
            }
            self.batches.push(batch);
            Ok(())
        }
    }

    /// A large scan hands new paths over in batches while it reads the rest: every
    /// path exactly once, folders first; known paths and deletions stay in the
    /// outcome; a recorder that declines (the deletions would pause the folder)
    /// gets nothing, and one that fails stops the scan with its error.
    #[test]
    fn a_large_scan_records_new_paths_early_and_the_rest_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("f");
        create_marker(&root).unwrap();
        let n = EARLY_BATCH * 2 + 10;
        for i in 0..n {
            let dir = root.join(format!("d{}", i % 7));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{i}.txt")), i.to_string()).unwrap();
        }
        std::fs::write(root.join("known.txt"), b"edited").unwrap();
        let mut known: HashMap<String, FileRecord> = HashMap::new();
        for path in ["known.txt", "gone.txt"] {
            let mut r = dir_record(path, Version::default().bump(9), 9, false, 0);
            r.dir = false;
            known.insert(path.into(), r);
        }
        let scan =
            |rec: &mut Collect| scan_folder_with(&root, &known, 1, None, &Ignores::default(), &|_| {}, Some(rec));

        let mut rec = Collect { go: true, deletes: None, batches: vec![], fail_at: None };
        let out = scan(&mut rec).unwrap();
        assert_eq!(rec.deletes, Some(1));
        assert!(rec.batches.len() >= 3, "folders, then files in batches: {}", rec.batches.len());
        assert!(rec.batches[0].iter().all(|r| r.dir) && rec.batches[1..].iter().flatten().all(|r| !r.dir));
        let early: Vec<&str> = rec.batches.iter().flatten().map(|r| r.path.as_str()).collect();
        assert_eq!(early.len(), n + 7);
        assert_eq!(early.iter().collect::<HashSet<_>>().len(), early.len(), "each path once");
        let mut rest: Vec<(&str, bool)> = out.changed.iter().map(|r| (r.path.as_str(), r.deleted)).collect();
        rest.sort();
        assert_eq!(rest, [("gone.txt", true), ("known.txt", false)]);

        let mut declined = Collect { go: false, deletes: None, batches: vec![], fail_at: None };
        let out = scan(&mut declined).unwrap();
        assert!(declined.batches.is_empty());
        assert_eq!(out.changed.len(), n + 7 + 2, "everything in the outcome");

        let mut failing = Collect { go: true, deletes: None, batches: vec![], fail_at: Some(1) };
        assert!(matches!(scan(&mut failing), Err(EngineError::Refused(m)) if m == "the index is full"));
    }

    #[test]
    fn conflict_names_keep_the_extension() {
        let r = RelPath::new("d/report.final.pdf").unwrap();
        assert_eq!(conflict_name(&r, 0, "ABC123").as_str(), "d/report.final.sync-conflict-19700101-000000-ABC123.pdf");
        let r = RelPath::new(".bashrc").unwrap();
        assert_eq!(conflict_name(&r, 1_700_000_000, "X").as_str(), ".bashrc.sync-conflict-20231114-221320-X");
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Files on disk whose names differ only by case or Unicode form: the scan
        /// records one of each family and reports the others, so no two records
        /// could land on one file of a case-insensitive or normalising disk.
        #[test]
        fn scanned_names_never_collide(names in prop::collection::vec(prop::sample::select(vec![
            "readme.md", "README.md", "ReadMe.md", "\u{d55c}.txt", "\u{1112}\u{1161}\u{11ab}.txt", "x", "X", "\u{e9}", "e\u{301}",
        ]), 1..8)) {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("f");
            std::fs::create_dir(&root).unwrap();
            create_marker(&root).unwrap();
            let mut on_disk = HashSet::new();
            for n in &names {
                if on_disk.insert(*n) {
                    std::fs::write(root.join(n), n.as_bytes()).unwrap();
                }
            }
            let out = scan_folder(&root, &HashMap::new(), 1, None, &Ignores::default()).unwrap();
            let keys: Vec<String> = out.changed.iter().map(|r| r.path.to_lowercase()).collect();
            let unique: HashSet<&String> = keys.iter().collect();
            prop_assert_eq!(unique.len(), keys.len(), "{:?}", keys);
            prop_assert_eq!(out.changed.len() + out.skipped.len(), on_disk.len());
            for r in &out.changed {
                // A RelPath is NFC by construction: the stored name is one.
                prop_assert!(RelPath::new(&r.path).is_ok(), "{} stored NFC", r.path);
            }
        }
    }
}
