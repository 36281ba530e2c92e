//! Turning local paths into manifest entries: walking the trees a user named and
//! hashing every file's blocks on all cores.
//!
//! Files are read block by block with positional reads, so memory is bounded by
//! `threads × block size` whatever the file sizes: files with blocks of up to 1 MiB
//! on a pool of readers (four per core, for the disk's sake), larger ones on the
//! global pool (one per core). A file that changes while it is
//! hashed (its stat differs before and after) is hashed again.

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};

use peerbox_proto::RelPath;
use peerbox_proto::manifest::{BlockHash, Entry, EntryKind, FileMeta, block_count, block_len, block_size_for};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::EngineError;

/// Cached hashes for files whose stamp is unchanged; implemented by the node over
/// the store.
pub trait HashCache: Sync {
    /// Hashes recorded for `path` at exactly `stamp`, if any.
    fn get(&self, path: &Path, stamp: Stamp) -> Option<Vec<BlockHash>>;
}

/// No cache: hash everything.
pub struct NoCache;

impl HashCache for NoCache {
    fn get(&self, _: &Path, _: Stamp) -> Option<Vec<BlockHash>> {
        None
    }
}

/// What `stat` says about a file's contents: the index's own type.
pub use peerbox_store::FileStamp as Stamp;

/// The stamp of `meta`.
pub fn stamp_of(meta: &Metadata) -> Stamp {
    Stamp { size: meta.len(), mtime_ns: mtime_ns(meta), inode: inode(meta) }
}

/// One scanned entry: the manifest entry and, for files, where it lives and its stamp.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// The entry recipients will see.
    pub entry: Entry,
    /// Local file behind a file entry.
    pub local: Option<PathBuf>,
    /// Stamp when hashed.
    pub stamp: Option<Stamp>,
}

/// Something skipped during a scan, for the user to see.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The local path.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// The outcome of scanning.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Entries in manifest order (parents before children, names sorted).
    pub entries: Vec<Scanned>,
    /// What was left out and why.
    pub skipped: Vec<Skipped>,
}

/// Scans `roots` (files or directories), each placed at the top of the share under
/// its own name. Fails if a root is missing or two roots share a name.
pub fn scan(
    roots: &[PathBuf],
    cache: &dyn HashCache,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ScanResult, EngineError> {
    let mut out = ScanResult::default();
    let mut top = std::collections::HashSet::new();
    for root in roots {
        let meta = std::fs::metadata(root).map_err(|e| EngineError::io(root, e))?;
        let name = root.file_name().and_then(|n| n.to_str()).ok_or_else(|| EngineError::BadName(root.clone()))?;
        let rel = RelPath::from_local_segments([name]).map_err(|e| EngineError::Path(root.clone(), e))?;
        if !top.insert(rel.collision_key()) {
            return Err(EngineError::DuplicateName(name.to_owned()));
        }
        walk(root, &rel, &meta, &mut out)?;
    }
    hash_all(&mut out.entries, cache, progress)?;
    Ok(out)
}

fn walk(local: &Path, rel: &RelPath, meta: &Metadata, out: &mut ScanResult) -> Result<(), EngineError> {
    if meta.is_file() {
        out.entries.push(Scanned {
            entry: Entry { path: rel.as_str().to_owned(), kind: EntryKind::File(placeholder(meta)) },
            local: Some(local.to_owned()),
            stamp: Some(stamp_of(meta)),
        });
        return Ok(());
    }
    if !meta.is_dir() {
        out.skipped.push(Skipped { path: local.to_owned(), reason: "not a regular file or folder".into() });
        return Ok(());
    }
    out.entries.push(Scanned {
        entry: Entry { path: rel.as_str().to_owned(), kind: EntryKind::Dir },
        local: None,
        stamp: None,
    });
    let mut children: Vec<_> = std::fs::read_dir(local)
        .map_err(|e| EngineError::io(local, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| EngineError::io(local, e))?;
    children.sort_by_key(|c| c.file_name());
    let mut seen = std::collections::HashSet::new();
    for child in children {
        let path = child.path();
        let Some(name) = child.file_name().to_str().map(str::to_owned) else {
            out.skipped.push(Skipped { path, reason: "name is not valid UTF-8".into() });
            continue;
        };
        let child_rel = match RelPath::from_local_segments(rel.segments().chain([name.as_str()])) {
            Ok(r) => r,
            Err(e) => {
                out.skipped.push(Skipped { path, reason: e.to_string() });
                continue;
            }
        };
        if !seen.insert(child_rel.collision_key()) {
            out.skipped.push(Skipped { path, reason: "another name differs only in case or Unicode form".into() });
            continue;
        }
        // Links inside a shared tree are not followed: they could point anywhere.
        let meta = std::fs::symlink_metadata(&path).map_err(|e| EngineError::io(&path, e))?;
        if meta.file_type().is_symlink() {
            out.skipped.push(Skipped { path, reason: "symbolic links inside a shared folder are not followed".into() });
            continue;
        }
        walk(&path, &child_rel, &meta, out)?;
    }
    Ok(())
}

fn placeholder(meta: &Metadata) -> FileMeta {
    let size = meta.len();
    FileMeta {
        size,
        mtime_ns: mtime_ns(meta),
        executable: executable(meta),
        block_size: block_size_for(size),
        blocks: Vec::new(),
    }
}

/// Hashes every file entry's blocks, all files and all blocks in one parallel pool.
fn hash_all(
    entries: &mut [Scanned],
    cache: &dyn HashCache,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), EngineError> {
    // Files small enough to be one block are one work item; big files are split so
    // a single large file still uses every core.
    let jobs: Vec<(usize, PathBuf, Stamp)> = entries
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.entry.kind, EntryKind::File(_)))
        .filter_map(|(i, s)| Some((i, s.local.clone()?, s.stamp?)))
        .collect();
    type Hashed = Result<(Vec<BlockHash>, Stamp), EngineError>;
    let results: Vec<(usize, Hashed)> = on_readers(
        &jobs,
        |(_, _, stamp)| stamp.size,
        |(i, local, stamp)| {
            if let Some(h) = cache.get(local, *stamp)
                && h.len() as u64 == block_count(stamp.size, block_size_for(stamp.size))
            {
                progress(stamp.size);
                return (*i, Ok((h, *stamp)));
            }
            (*i, hash_stable(local, progress))
        },
    );
    for (i, r) in results {
        let (hashes, stamp) = r?;
        let s = &mut entries[i];
        if let EntryKind::File(f) = &mut s.entry.kind {
            // The hashes describe the file as it was when read, which may be newer
            // than what the walk saw.
            f.size = stamp.size;
            f.mtime_ns = stamp.mtime_ns;
            f.block_size = block_size_for(stamp.size);
            f.blocks = hashes;
        }
        s.stamp = Some(stamp);
    }
    Ok(())
}

/// Largest block read on the reader pool: its buffers stay small (one block per
/// reader) while files of up to 2 GiB use it.
pub(crate) const READER_MAX_BLOCK: u32 = 1 << 20;

/// Threads that read files to hash them. Reading many small files is bound by the
/// disk's latency, not by the cores: with more reads in flight a cold tree is read
/// much faster (100,000 files of 4 KiB on this machine's virtual disk: 6.8 s with
/// two readers, 3.5 s with eight). None if the threads cannot be started; the
/// global pool (one thread per core) does the work then.
fn readers() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores * 4).clamp(4, 32))
            .thread_name(|i| format!("peerbox-read-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Maps `jobs` in parallel, in order: those whose files (of `size_of` bytes) have
/// small blocks on the reader pool, the rest on the global pool (one block buffer
/// per core, however large the blocks).
pub(crate) fn on_readers<J: Sync, R: Send>(
    jobs: &[J],
    size_of: impl Fn(&J) -> u64 + Sync,
    work: impl Fn(&J) -> R + Sync + Send,
) -> Vec<R> {
    let small = |j: &J| block_size_for(size_of(j)) <= READER_MAX_BLOCK;
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(jobs.len()).collect();
    let run = |out: &mut Vec<Option<R>>, pick: bool| {
        out.par_iter_mut().zip(jobs.par_iter()).filter(|(_, j)| small(j) == pick).for_each(|(o, j)| {
            *o = Some(work(j));
        });
    };
    match readers() {
        Some(pool) => pool.install(|| run(&mut out, true)),
        None => run(&mut out, true),
    }
    run(&mut out, false);
    out.into_iter().flatten().collect()
}

/// Lists `dirs` on the reader pool in the background, several at a time, so that
/// a walk about to list them one after the other finds them read: on a cold disk
/// each listing otherwise waits for its blocks in turn.
pub(crate) fn list_ahead(dirs: Vec<PathBuf>) {
    let Some(pool) = readers() else { return };
    for dir in dirs {
        pool.spawn(move || {
            if let Ok(listing) = std::fs::read_dir(&dir) {
                listing.for_each(drop);
            }
        });
    }
}

/// Children of a directory past which their metadata is read on the reader pool.
const PARALLEL_STAT_MIN: usize = 64;

/// `symlink_metadata` of each item's path, in order (None where it cannot be
/// read: gone since it was listed); on the reader pool when there are many.
pub(crate) fn stat_all<T: Sync>(items: &[T], path_of: impl Fn(&T) -> &Path + Sync) -> Vec<Option<Metadata>> {
    let stat = |t: &T| std::fs::symlink_metadata(path_of(t)).ok();
    match readers() {
        Some(pool) if items.len() >= PARALLEL_STAT_MIN => pool.install(|| items.par_iter().map(stat).collect()),
        _ => items.iter().map(stat).collect(),
    }
}

/// Hashes a file, again if it changed meanwhile (its stamp differs before and
/// after); gives up after a few tries. Returns the hashes and the stamp they
/// belong to.
pub fn hash_stable(path: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<(Vec<BlockHash>, Stamp), EngineError> {
    match hash_until_stable(path, || File::open(path), None, None, progress)? {
        Listed::Hashed(hashes, meta) => Ok((hashes, stamp_of(&meta))),
        Listed::Larger(_) => unreachable!("no block size was too large"),
    }
}

/// What [`hash_listed`] made of a file.
#[derive(Debug)]
pub enum Listed {
    /// Its blocks' hashes, and its metadata as they were taken.
    Hashed(Vec<BlockHash>, Metadata),
    /// Its blocks are larger than the caller reads here; its size.
    Larger(u64),
}

/// Hashes a file a folder's walk listed, again if it changed meanwhile (see
/// [`hash_stable`]). `seen` is the stamp the walk took, if it took one: it stands
/// for the stat before the first read, and a file saved since has another stamp
/// after the read and is read again. Without it, the stamp comes from the open
/// file, and a file whose blocks are larger than `max_block` is left for the
/// caller to hash where large blocks are read ([`Listed::Larger`]).
///
/// The file is opened without following a link or waiting on a pipe: what the
/// walk listed may have been replaced by either since.
pub fn hash_listed(
    path: &Path,
    seen: Option<Stamp>,
    max_block: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Listed, EngineError> {
    hash_until_stable(path, || open_listed(path), seen, Some(max_block), progress)
}

/// Opens the file with `open` and hashes it until its stamp is the same before
/// and after a read, a few times at most.
fn hash_until_stable(
    path: &Path,
    open: impl Fn() -> std::io::Result<File>,
    mut seen: Option<Stamp>,
    max_block: Option<u32>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Listed, EngineError> {
    for _ in 0..3 {
        let file = open().map_err(|e| EngineError::io(path, e))?;
        let before = match seen.take() {
            Some(stamp) => stamp,
            None => {
                let meta = file.metadata().map_err(|e| EngineError::io(path, e))?;
                if !meta.is_file() {
                    return Err(EngineError::io(path, std::io::Error::other("not a regular file")));
                }
                if max_block.is_some_and(|max| block_size_for(meta.len()) > max) {
                    return Ok(Listed::Larger(meta.len()));
                }
                stamp_of(&meta)
            }
        };
        let hashes = hash_file(&file, before.size, progress);
        let meta = file.metadata().map_err(|e| EngineError::io(path, e))?;
        let after = stamp_of(&meta);
        match hashes {
            Ok(hashes) if after == before => return Ok(Listed::Hashed(hashes, meta)),
            // Shrunk while it was read (a save truncates first): read it again.
            Err(e) if after == before || e.kind() != std::io::ErrorKind::UnexpectedEof => {
                return Err(EngineError::io(path, e));
            }
            _ => {}
        }
    }
    Err(EngineError::KeepsChanging(path.to_owned()))
}

#[cfg(unix)]
fn open_listed(path: &Path) -> std::io::Result<File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32).open(path)
}

#[cfg(not(unix))]
fn open_listed(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Files of at most this many blocks are read in order on one thread. Split across
/// threads, a small file's blocks are read out of order and the kernel's read-ahead
/// gives up on it; a scan of many files keeps every thread busy with whole files
/// anyway. Files of more blocks are still split, so one big file uses every core.
const SEQUENTIAL_BLOCKS: u64 = 16;

/// Hashes the blocks of an open file of `size` bytes, splitting large files across
/// the pool. Reads positionally, one block buffer per worker.
pub fn hash_file(file: &File, size: u64, progress: &(dyn Fn(u64) + Sync)) -> std::io::Result<Vec<BlockHash>> {
    let bs = block_size_for(size);
    let n = block_count(size, bs);
    let block = |buf: &mut Vec<u8>, i: u64| {
        let len = block_len(size, bs, i) as usize;
        buf.resize(len, 0);
        crate::io::read_exact_at(file, buf, i * bs as u64)?;
        progress(len as u64);
        Ok(hash_block(buf))
    };
    if n <= SEQUENTIAL_BLOCKS {
        let mut buf = Vec::new();
        return (0..n).map(|i| block(&mut buf, i)).collect();
    }
    (0..n).into_par_iter().map_init(Vec::new, block).collect()
}

/// SHA-256 of one block.
pub fn hash_block(data: &[u8]) -> BlockHash {
    Sha256::digest(data).into()
}

#[cfg(unix)]
fn mtime_ns(meta: &Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
}

#[cfg(not(unix))]
fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_: &Metadata) -> u64 {
    0
}

#[cfg(unix)]
pub(crate) fn executable(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
pub(crate) fn executable(_: &Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbox_proto::manifest::MIN_BLOCK_SIZE;

    fn names(r: &ScanResult) -> Vec<&str> {
        r.entries.iter().map(|s| s.entry.path.as_str()).collect()
    }

    #[test]
    fn files_hashed_on_either_pool_come_back_in_order() {
        // Small and large files go to different pools; results must still line up
        // with their files.
        let sizes: Vec<u64> = (0..500u64).map(|i| if i % 7 == 0 { 40 << 30 } else { i * 4096 }).collect();
        let got = on_readers(&sizes, |s| *s, |s| (*s, std::thread::current().name().map(str::to_owned)));
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), sizes);
        for (size, thread) in &got {
            let on_readers = thread.as_deref().is_some_and(|t| t.starts_with("peerbox-read-"));
            assert_eq!(on_readers, block_size_for(*size) <= READER_MAX_BLOCK, "{size} ran on {thread:?}");
        }
    }

    #[test]
    fn small_and_large_files_hash_block_by_block_whichever_way_they_are_read() {
        // Up to SEQUENTIAL_BLOCKS blocks are read in order on one thread, more are
        // split across the pool; both must give every block's hash, in order, and
        // report every byte read.
        let d = tempfile::tempdir().unwrap();
        let min = MIN_BLOCK_SIZE as u64;
        for size in [0, 1, min, SEQUENTIAL_BLOCKS * min, SEQUENTIAL_BLOCKS * min + 1, 40 * min + 5] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let path = d.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            let read = std::sync::atomic::AtomicU64::new(0);
            let got = hash_file(&File::open(&path).unwrap(), size, &|n| {
                read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            })
            .unwrap();
            let bs = block_size_for(size) as usize;
            let want: Vec<BlockHash> = data.chunks(bs).map(hash_block).collect();
            assert_eq!(got, want, "{size} bytes");
            assert_eq!(read.into_inner(), size, "{size} bytes");
        }
    }

    #[test]
    fn trees_keep_their_shape_and_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("report");
        std::fs::create_dir_all(root.join("sub/empty")).unwrap();
        std::fs::write(root.join("b.txt"), b"bb").unwrap();
        std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
        let single = d.path().join("one.bin");
        std::fs::write(&single, vec![7u8; MIN_BLOCK_SIZE as usize + 1]).unwrap();
        let r = scan(&[root, single], &NoCache, &|_| {}).unwrap();
        assert_eq!(
            names(&r),
            ["report", "report/b.txt", "report/sub", "report/sub/a.txt", "report/sub/empty", "one.bin"]
        );
        let EntryKind::File(f) = &r.entries[5].entry.kind else { panic!() };
        assert_eq!(f.blocks.len(), 2);
        assert_eq!(f.blocks[1], hash_block(&[7]));
        assert!(r.entries.iter().all(|e| e.entry.validate().is_ok()));
    }

    #[test]
    fn missing_roots_and_duplicate_names_fail() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(scan(&[d.path().join("nope")], &NoCache, &|_| {}), Err(EngineError::Io { .. })));
        std::fs::create_dir_all(d.path().join("x/same")).unwrap();
        std::fs::create_dir_all(d.path().join("y/same")).unwrap();
        let r = scan(&[d.path().join("x/same"), d.path().join("y/same")], &NoCache, &|_| {});
        assert!(matches!(r, Err(EngineError::DuplicateName(_))));
    }

    /// THREATS.md, "file changed while being hashed": the stamp before and after
    /// differ, so the file is read again; the hashes describe what is there now.
    #[test]
    fn a_file_changed_while_it_is_hashed_is_hashed_again() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("report.doc");
        let first = vec![1u8; 3 * MIN_BLOCK_SIZE as usize];
        let second = vec![2u8; 3 * MIN_BLOCK_SIZE as usize + 7];
        std::fs::write(&path, &first).unwrap();
        let edited = std::sync::atomic::AtomicBool::new(false);
        // The user saves a new version while the first block is being read.
        let (hashes, stamp) = hash_stable(&path, &|_| {
            if !edited.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::fs::write(&path, &second).unwrap();
            }
        })
        .unwrap();
        let want: Vec<BlockHash> = second.chunks(MIN_BLOCK_SIZE as usize).map(hash_block).collect();
        assert_eq!(hashes, want, "the hashes are of the saved version");
        assert_eq!(stamp, stamp_of(&std::fs::metadata(&path).unwrap()));
    }

    /// The walk's stamp stands for the first stat; a file saved again between the
    /// walk and its read (shorter, longer, or the same size) is read again.
    #[test]
    fn a_file_changed_after_the_walk_saw_it_is_hashed_as_it_is_now() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notes.txt");
        let block = MIN_BLOCK_SIZE as usize;
        for now in [vec![2u8; block / 2], vec![3u8; 2 * block + 5], vec![4u8; 3 * block]] {
            std::fs::write(&path, vec![1u8; 3 * block]).unwrap();
            let seen = stamp_of(&std::fs::symlink_metadata(&path).unwrap());
            // Saved again after the walk, with a different modification time.
            std::fs::write(&path, &now).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
            let Listed::Hashed(hashes, meta) = hash_listed(&path, Some(seen), u32::MAX, &|_| {}).unwrap() else {
                panic!("hashed whatever its blocks")
            };
            let stamp = stamp_of(&meta);
            let want: Vec<BlockHash> = now.chunks(block).map(hash_block).collect();
            assert_eq!(hashes, want, "the hashes are of what is there now ({} bytes)", now.len());
            assert_eq!(stamp, stamp_of(&std::fs::metadata(&path).unwrap()));
        }
        // Unchanged since the walk: its stamp is taken as it is.
        let seen = stamp_of(&std::fs::symlink_metadata(&path).unwrap());
        let Listed::Hashed(_, meta) = hash_listed(&path, Some(seen), u32::MAX, &|_| {}).unwrap() else { panic!() };
        assert_eq!(stamp_of(&meta), seen);
    }

    /// THREATS.md, "symlink swapped in" (here during a read): what a folder's walk listed as a file
    /// may have been replaced by a link or a pipe before it is read. Neither is
    /// followed or waited on.
    #[cfg(unix)]
    #[test]
    fn a_listed_file_replaced_by_a_link_or_a_pipe_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"not in the folder").unwrap();
        let link = d.path().join("was-a-file");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(hash_listed(&link, None, u32::MAX, &|_| {}), Err(EngineError::Io { .. })));
        let pipe = d.path().join("pipe");
        rustix::fs::mknodat(rustix::fs::CWD, &pipe, rustix::fs::FileType::Fifo, rustix::fs::Mode::RWXU, 0).unwrap();
        assert!(matches!(hash_listed(&pipe, None, u32::MAX, &|_| {}), Err(EngineError::Io { .. })));
    }

    /// A file the walk did not stat is sized once open: one whose blocks are
    /// larger than the caller reads is handed back unread.
    #[test]
    fn a_listed_file_with_larger_blocks_is_handed_back_unread() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("disk.img");
        let size = 2001 * MIN_BLOCK_SIZE as u64;
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        let read = std::sync::atomic::AtomicU64::new(0);
        let progress = |n| {
            read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        assert!(matches!(hash_listed(&path, None, MIN_BLOCK_SIZE, &progress), Ok(Listed::Larger(s)) if s == size));
        assert_eq!(read.into_inner(), 0);
    }

    #[test]
    fn a_file_that_never_stops_changing_is_reported_not_recorded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("growing.log");
        std::fs::write(&path, vec![0u8; 2 * MIN_BLOCK_SIZE as usize]).unwrap();
        let r = hash_stable(&path, &|_| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            std::io::Write::write_all(&mut f, b"more").unwrap();
        });
        assert!(matches!(r, Err(EngineError::KeepsChanging(p)) if p == path));
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_a_tree_are_skipped_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("s");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let r = scan(&[root], &NoCache, &|_| {}).unwrap();
        assert_eq!(names(&r), ["s"]);
        assert_eq!(r.skipped.len(), 1);
    }
}
