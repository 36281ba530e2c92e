//! The SQLite index of one Peerbox home: what is shared (file sets with their block
//! lists and the local files behind them), the links that open them (by secret
//! hash, never the secret), and a cache of file hashes so sharing the same file
//! twice does not read it twice.
//!
//! One [`Store`] per process, owned by the node. Writes that belong together run in
//! one transaction, so a `kill -9` leaves either the old or the new state. The
//! schema is versioned with `PRAGMA user_version` and migrated forward on open.

mod error;
pub mod folders;
mod schema;
mod settings;
mod transfers;

use std::path::{Path, PathBuf};

use peerbox_proto::manifest::{BlockHash, Entry, EntryKind, FileMeta};
use rusqlite::{Connection, OptionalExtension, params};

pub use error::StoreError;
pub use folders::{BlockRecord, DEFAULT_KEEP_VERSIONS, FileRecord, FolderMode, FolderRow, JoinRequest, Member};
pub use transfers::TransferRow;

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The index, backed by one SQLite file.
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// One entry of a share as the sharer keeps it: the manifest entry plus where the
/// bytes are on this disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEntry {
    /// The entry as recipients see it.
    pub entry: Entry,
    /// The local file behind a file entry (`None` for directories).
    pub local: Option<PathBuf>,
}

/// A file set that this device shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Content id: SHA-256 of the manifest.
    pub content_id: [u8; 32],
    /// A short label for lists ("trip.mp4 and 2 more").
    pub label: String,
    /// Entries in manifest order.
    pub entries: Vec<SharedEntry>,
}

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTarget {
    /// A file set, by content id.
    Files([u8; 32]),
    /// A shared folder, by folder id.
    Folder([u8; 16]),
    /// Uploads into a shared folder (a file request), by folder id.
    Request([u8; 16]),
}

/// A link as the sharer keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// Row id.
    pub id: i64,
    /// What it opens.
    pub target: LinkTarget,
    /// Hash of the secret (see `peerbox_proto::link::secret_hash`).
    pub secret_hash: [u8; 32],
    /// Whether holders may only read.
    pub read_only: bool,
    /// Whether a folder join through this link waits for the owner's approval.
    pub approve: bool,
    /// Creation, unix seconds.
    pub created: u64,
    /// Expiry, unix seconds.
    pub expires: Option<u64>,
    /// Whether the owner revoked it.
    pub revoked: bool,
    /// How many devices used it.
    pub uses: u64,
    /// Someone else made it; this device serves what it downloaded through it.
    pub received: bool,
    /// Hash of the password proof (`peerbox_proto::link::proof_hash`), if it takes one.
    pub password_hash: Option<[u8; 32]>,
    /// How many devices may use it.
    pub max_uses: Option<u64>,
    /// For file requests: how many bytes may arrive through it in all.
    pub max_bytes: Option<u64>,
    /// For file requests: bytes that arrived through it.
    pub bytes_used: u64,
}

impl LinkRecord {
    /// A new link made on this device, with no limits but an optional expiry.
    pub fn new(target: LinkTarget, secret_hash: [u8; 32], read_only: bool, expires: Option<u64>) -> Self {
        Self {
            id: 0,
            target,
            secret_hash,
            read_only,
            approve: false,
            created: now(),
            expires,
            revoked: false,
            uses: 0,
            received: false,
            password_hash: None,
            max_uses: None,
            max_bytes: None,
            bytes_used: 0,
        }
    }
}

/// What recording a device's use of a link found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUse {
    /// A device that had not used it before: counted.
    Counted,
    /// A device that used it before: not counted again.
    Again,
    /// A new device, but the link's devices are used up.
    UsedUp,
}

/// A link with what it opens as people name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkListing {
    /// The link.
    pub link: LinkRecord,
    /// The share's label or the folder's name (gone: `None`).
    pub label: Option<String>,
}

/// Identity of a local file's contents as far as `stat` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, unix nanoseconds.
    pub mtime_ns: i64,
    /// Inode (0 where the platform has none).
    pub inode: u64,
}

impl Store {
    /// A number that moves whenever a row of the index is written (rows written
    /// through this connection since it was opened; it is the only one): what
    /// views derived from the index are cached against.
    pub fn generation(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Opens (creating if needed) the index at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| StoreError::open(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Self { conn, path: path.to_owned() };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// Where the index lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a share (idempotent per content id) and returns it.
    pub fn put_share(&mut self, share: &Share) -> Result<()> {
        let tx = self.conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM shares WHERE content_id = ?1", [&share.content_id[..]], |r| r.get(0))
            .optional()?;
        if let Some(id) = exists {
            // Same content, perhaps now at other local paths: refresh them.
            tx.execute("DELETE FROM share_entries WHERE share_id = ?1", [id])?;
            insert_entries(&tx, id, &share.entries)?;
        } else {
            tx.execute(
                "INSERT INTO shares (content_id, label, created) VALUES (?1, ?2, ?3)",
                params![&share.content_id[..], share.label, now() as i64],
            )?;
            let id = tx.last_insert_rowid();
            insert_entries(&tx, id, &share.entries)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Content ids of shares that some live link (not revoked, not expired) opens:
    /// what this device announces in the DHT.
    pub fn live_share_ids(&self) -> Result<Vec<[u8; 32]>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT target FROM links
             WHERE kind = 'files' AND revoked = 0 AND (expires IS NULL OR expires > ?1)",
        )?;
        let rows = stmt.query_map([now() as i64], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(id) = <[u8; 32]>::try_from(r?.as_slice()) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Loads the share with this content id.
    pub fn share(&self, content_id: &[u8; 32]) -> Result<Option<Share>> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row("SELECT id, label FROM shares WHERE content_id = ?1", [&content_id[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((id, label)) = row else { return Ok(None) };
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, local_path, is_dir, size, mtime_ns, executable, block_size, blocks
             FROM share_entries WHERE share_id = ?1 ORDER BY idx",
        )?;
        let entries = stmt
            .query_map([id], |r| {
                let path: String = r.get(0)?;
                let local: Option<Vec<u8>> = r.get(1)?;
                let is_dir: bool = r.get(2)?;
                if is_dir {
                    return Ok(SharedEntry { entry: Entry { path, kind: EntryKind::Dir }, local: None });
                }
                let blocks: Vec<u8> = r.get(7)?;
                Ok(SharedEntry {
                    entry: Entry {
                        path,
                        kind: EntryKind::File(FileMeta {
                            size: r.get::<_, i64>(3)? as u64,
                            mtime_ns: r.get(4)?,
                            executable: r.get(5)?,
                            block_size: r.get(6)?,
                            blocks: split_hashes(&blocks),
                        }),
                    },
                    local: local.map(path_from_bytes),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Share { content_id: *content_id, label, entries }))
    }

    /// Stores a new link and returns its row id.
    pub fn add_link(&mut self, link: &LinkRecord) -> Result<i64> {
        let (kind, target): (&str, &[u8]) = match &link.target {
            LinkTarget::Files(t) => ("files", t),
            LinkTarget::Folder(t) => ("folder", t),
            LinkTarget::Request(t) => ("request", t),
        };
        self.conn.execute(
            "INSERT INTO links (kind, target, secret_hash, read_only, created, expires, revoked, uses, approve, received,
                                password_hash, max_uses, max_bytes, bytes_used)
             VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                target,
                &link.secret_hash[..],
                link.read_only,
                link.created as i64,
                link.expires.map(|e| e as i64),
                link.revoked,
                link.uses as i64,
                kind,
                link.approve,
                link.received,
                link.password_hash.as_ref().map(|h| &h[..]),
                link.max_uses.map(|n| n as i64),
                link.max_bytes.map(|n| n as i64),
                link.bytes_used as i64,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Finds the link with this secret hash.
    pub fn link_by_secret_hash(&self, hash: &[u8; 32]) -> Result<Option<LinkRecord>> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {LINK_COLUMNS} FROM links WHERE secret_hash = ?1"), [&hash[..]], link_row)
            .optional()?)
    }

    /// Every link, newest first, with the label of what it opens.
    pub fn links(&self) -> Result<Vec<LinkListing>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {LINK_COLUMNS},
                    CASE kind WHEN 'files' THEN (SELECT label FROM shares WHERE shares.content_id = links.target)
                              ELSE (SELECT name FROM folders WHERE folders.id = links.target) END
             FROM links ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([], |r| Ok(LinkListing { link: link_row(r)?, label: r.get(LINK_COLUMN_COUNT)? }))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The link with row id `id`.
    pub fn link(&self, id: i64) -> Result<Option<LinkRecord>> {
        // Prepared once: a member that joined by link has it checked for every
        // block it asks for (revoking the link ends its access at once).
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {LINK_COLUMNS} FROM links WHERE id = ?1"))?;
        Ok(stmt.query_row([id], link_row).optional()?)
    }

    /// Records that device `peer` used link `id`. Each device counts once, and a
    /// new one is turned away once the link's `max_uses` devices have used it.
    pub fn use_link(&mut self, id: i64, peer: &[u8]) -> Result<LinkUse> {
        let tx = self.conn.transaction()?;
        let seen: Option<i64> = tx
            .query_row("SELECT 1 FROM link_uses WHERE link_id = ?1 AND peer = ?2", params![id, peer], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(LinkUse::Again);
        }
        let (uses, max): (i64, Option<i64>) =
            tx.query_row("SELECT uses, max_uses FROM links WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if max.is_some_and(|m| uses >= m) {
            return Ok(LinkUse::UsedUp);
        }
        tx.execute("INSERT INTO link_uses (link_id, peer, at) VALUES (?1, ?2, ?3)", params![id, peer, now() as i64])?;
        tx.execute("UPDATE links SET uses = uses + 1 WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(LinkUse::Counted)
    }

    /// Adds `bytes` that arrived through file-request link `id`.
    pub fn add_link_bytes(&mut self, id: i64, bytes: u64) -> Result<()> {
        self.conn.execute("UPDATE links SET bytes_used = bytes_used + ?2 WHERE id = ?1", params![id, bytes as i64])?;
        Ok(())
    }

    /// Marks link `id` revoked.
    pub fn revoke_link(&mut self, id: i64) -> Result<()> {
        self.conn.execute("UPDATE links SET revoked = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Cached block hashes for a local file, if its stamp is unchanged.
    pub fn cached_hashes(&self, path: &Path, stamp: FileStamp) -> Result<Option<(u32, Vec<BlockHash>)>> {
        let row: Option<(u32, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT block_size, blocks FROM hash_cache
                 WHERE local_path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
                params![path_bytes(path), stamp.size as i64, stamp.mtime_ns, stamp.inode as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(bs, b)| (bs, split_hashes(&b))))
    }

    /// Remembers block hashes for a local file at `stamp`.
    pub fn cache_hashes(&mut self, path: &Path, stamp: FileStamp, block_size: u32, blocks: &[BlockHash]) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO hash_cache (local_path, size, mtime_ns, inode, block_size, blocks)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                path_bytes(path),
                stamp.size as i64,
                stamp.mtime_ns,
                stamp.inode as i64,
                block_size,
                blocks.concat()
            ],
        )?;
        Ok(())
    }
}

fn insert_entries(tx: &rusqlite::Transaction<'_>, share_id: i64, entries: &[SharedEntry]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO share_entries
         (share_id, idx, path, local_path, is_dir, size, mtime_ns, executable, block_size, blocks)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (i, e) in entries.iter().enumerate() {
        let local = e.local.as_deref().map(path_bytes);
        match &e.entry.kind {
            EntryKind::Dir => {
                stmt.execute(params![share_id, i as i64, e.entry.path, local, true, 0, 0, false, 0, Vec::<u8>::new()])?;
            }
            EntryKind::File(f) => {
                stmt.execute(params![
                    share_id,
                    i as i64,
                    e.entry.path,
                    local,
                    false,
                    f.size as i64,
                    f.mtime_ns,
                    f.executable,
                    f.block_size,
                    f.blocks.concat()
                ])?;
            }
        }
    }
    Ok(())
}

const LINK_COLUMNS: &str =
    "id, target, secret_hash, read_only, created, expires, revoked, uses, kind, approve, received,
     password_hash, max_uses, max_bytes, bytes_used";
const LINK_COLUMN_COUNT: usize = 15;

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRecord> {
    let kind: String = r.get(8)?;
    let folder = || -> rusqlite::Result<[u8; 16]> {
        let v: Vec<u8> = r.get(1)?;
        let mut id = [0u8; 16];
        if v.len() == 16 {
            id.copy_from_slice(&v);
        }
        Ok(id)
    };
    let target = match kind.as_str() {
        "folder" => LinkTarget::Folder(folder()?),
        "request" => LinkTarget::Request(folder()?),
        _ => LinkTarget::Files(blob32(r, 1)?),
    };
    let password_hash = match r.get::<_, Option<Vec<u8>>>(11)? {
        Some(v) => Some(<[u8; 32]>::try_from(v.as_slice()).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Blob, "expected 32 bytes".into())
        })?),
        None => None,
    };
    Ok(LinkRecord {
        id: r.get(0)?,
        target,
        secret_hash: blob32(r, 2)?,
        read_only: r.get(3)?,
        approve: r.get(9)?,
        created: r.get::<_, i64>(4)? as u64,
        expires: r.get::<_, Option<i64>>(5)?.map(|e| e as u64),
        revoked: r.get(6)?,
        uses: r.get::<_, i64>(7)? as u64,
        received: r.get(10)?,
        password_hash,
        max_uses: r.get::<_, Option<i64>>(12)?.map(|n| n as u64),
        max_bytes: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
        bytes_used: r.get::<_, i64>(14)? as u64,
    })
}

fn blob32(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<[u8; 32]> {
    let v: Vec<u8> = r.get(i)?;
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, "expected 32 bytes".into())
    })
}

pub(crate) fn split_hashes(b: &[u8]) -> Vec<BlockHash> {
    b.chunks_exact(32)
        .map(|c| {
            let mut h = [0; 32];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

#[cfg(unix)]
pub(crate) fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
pub(crate) fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

#[cfg(not(unix))]
pub(crate) fn path_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
pub(crate) fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).into_owned())
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_moves_with_every_write_and_only_then() {
        // Views cache what they derive from the index against it (folder status).
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let id = [7; 16];
        let before = s.generation();
        s.add_folder(&folder_row(id, dir.path())).unwrap();
        let added = s.generation();
        assert!(added > before);
        s.folders().unwrap();
        s.files(&id).unwrap();
        s.remote_files(&id).unwrap();
        assert_eq!(s.generation(), added, "reads change nothing");
        let rec = FileRecord { size: 1, blocks: vec![[1; 32]], ..record("a.txt") };
        s.put_files(&id, &mut [rec.clone()]).unwrap();
        let local = s.generation();
        assert!(local > added);
        s.put_remote(&id, b"peer", &[rec], 1).unwrap();
        assert!(s.generation() > local);
    }

    /// A live file of this device with no blocks, at `path`.
    fn record(path: &str) -> FileRecord {
        FileRecord {
            path: path.into(),
            dir: false,
            deleted: false,
            size: 0,
            mtime_ns: 0,
            executable: false,
            block_size: 1 << 17,
            blocks: vec![],
            version: Default::default(),
            seq: 0,
            modified_by: 1,
            have: true,
            local: None,
        }
    }

    fn folder_row(id: [u8; 16], dir: &Path) -> FolderRow {
        FolderRow {
            id,
            name: "f".into(),
            path: dir.join("f"),
            mode: FolderMode::SendReceive,
            read_write: true,
            paused: None,
            keep_versions: 0,
        }
    }

    #[test]
    fn a_block_record_is_the_record_s_hash_at_that_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let id = [7; 16];
        s.add_folder(&folder_row(id, dir.path())).unwrap();
        let stamp = FileStamp { size: 300_000, mtime_ns: 5, inode: 9 };
        let rec = |path: &str, deleted: bool| FileRecord {
            deleted,
            size: 300_000,
            blocks: vec![[1; 32], [2; 32], [3; 32]],
            local: Some(stamp),
            ..record(path)
        };
        s.put_files(&id, &mut [rec("a", false), rec("gone", true)]).unwrap();
        let at = |path: &str, i: u32| s.block_record(&id, path, i).unwrap();
        let first = at("a", 0).unwrap();
        assert_eq!(
            first,
            BlockRecord { size: 300_000, block_size: 1 << 17, hash: Some([1; 32]), servable: true, local: Some(stamp) }
        );
        assert_eq!(at("a", 2).unwrap().hash, Some([3; 32]));
        assert_eq!(at("a", 3).unwrap().hash, None, "past the last block");
        assert_eq!(at("a", u32::MAX).unwrap().hash, None);
        assert!(!at("gone", 0).unwrap().servable, "a deleted file serves nothing");
        assert_eq!(at("missing", 0), None);
        assert_eq!(s.block_record(&[8; 16], "a", 0).unwrap(), None, "another folder");
    }

    /// The folder status counts what this device has without reading records out:
    /// the counts must be what reading them would give.
    #[test]
    fn local_totals_count_the_files_had_and_conflicts_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let id = [7; 16];
        s.add_folder(&folder_row(id, dir.path())).unwrap();
        let rec = |path: &str, size: u64, dir: bool, deleted: bool, have: bool| FileRecord {
            dir,
            deleted,
            size,
            have,
            ..record(path)
        };
        s.put_files(
            &id,
            &mut [
                rec("a.txt", 10, false, false, true),
                rec("b.sync-conflict-20261206-101010-ABC.txt", 20, false, false, true),
                rec("a.sync-conflict-20261206-101010-ABC.txt", 5, false, false, false),
                rec("docs", 0, true, false, true),
                rec("old.txt", 1000, false, true, true),
                rec("gone.sync-conflict-20261206-101010-ABC.txt", 1, false, true, true),
                rec("not-yet.bin", 300, false, false, false),
            ],
        )
        .unwrap();
        assert_eq!(s.local_totals(&id).unwrap(), (2, 30));
        assert_eq!(
            s.conflict_paths(&id).unwrap(),
            ["a.sync-conflict-20261206-101010-ABC.txt", "b.sync-conflict-20261206-101010-ABC.txt"]
        );
        assert_eq!(s.local_totals(&[8; 16]).unwrap(), (0, 0), "another folder");
    }

    #[test]
    fn recording_a_journalled_pull_settles_its_journal_entry_and_no_other() {
        // A restart settles what is still journalled: an entry left behind after the
        // path was recorded would overwrite a later edit with the pull's version.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let (id, other) = ([7; 16], [8; 16]);
        s.add_folder(&folder_row(id, dir.path())).unwrap();
        s.add_folder(&FolderRow { path: dir.path().join("g"), ..folder_row(other, dir.path()) }).unwrap();
        let stamp = Some(FileStamp { size: 1, mtime_ns: 2, inode: 3 });
        let landing = [FileRecord { local: stamp, ..record("a") }, FileRecord { local: stamp, ..record("b") }];
        s.expect_landings(&id, &landing).unwrap();
        s.expect_landings(&other, &landing).unwrap();
        let paths = |v: Vec<FileRecord>| v.into_iter().map(|r| r.path).collect::<Vec<_>>();

        s.put_files(&id, &mut [record("a"), record("c")]).unwrap();
        assert_eq!(paths(s.landings(&id).unwrap()), ["b"]);
        assert_eq!(paths(s.landings(&other).unwrap()), ["a", "b"], "another folder's journal");
        s.put_files(&id, &mut [record("b")]).unwrap();
        assert!(s.landings(&id).unwrap().is_empty());
        // With nothing journalled, records go in as before.
        s.put_files(&id, &mut [record("d")]).unwrap();
        assert_eq!(s.files(&id).unwrap().len(), 4);
    }

    fn file(path: &str, size: u64) -> SharedEntry {
        SharedEntry {
            entry: Entry {
                path: path.into(),
                kind: EntryKind::File(FileMeta {
                    size,
                    mtime_ns: 42,
                    executable: true,
                    block_size: 1 << 17,
                    blocks: vec![[1; 32], [2; 32]],
                }),
            },
            local: Some(PathBuf::from(format!("/data/{path}"))),
        }
    }

    #[test]
    fn shares_and_links_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.sqlite");
        let share = Share {
            content_id: [5; 32],
            label: "a and 1 more".into(),
            entries: vec![
                SharedEntry { entry: Entry { path: "d".into(), kind: EntryKind::Dir }, local: None },
                file("d/사진.jpg", 200_000),
            ],
        };
        let link = LinkRecord {
            created: 10,
            password_hash: Some([3; 32]),
            ..LinkRecord::new(LinkTarget::Files([5; 32]), [8; 32], true, Some(20))
        };
        let id = {
            let mut s = Store::open(&db).unwrap();
            s.put_share(&share).unwrap();
            s.put_share(&share).unwrap();
            let id = s.add_link(&link).unwrap();
            assert_eq!(s.use_link(id, b"peer-a").unwrap(), LinkUse::Counted);
            assert_eq!(s.use_link(id, b"peer-a").unwrap(), LinkUse::Again, "a device counts once");
            id
        };
        let mut s = Store::open(&db).unwrap();
        assert_eq!(s.share(&[5; 32]).unwrap().unwrap(), share);
        assert_eq!(s.share(&[6; 32]).unwrap(), None);
        let got = s.link_by_secret_hash(&[8; 32]).unwrap().unwrap();
        assert_eq!(got, LinkRecord { id, uses: 1, ..link });
        s.revoke_link(id).unwrap();
        assert!(s.link_by_secret_hash(&[8; 32]).unwrap().unwrap().revoked);
        assert_eq!(s.link_by_secret_hash(&[9; 32]).unwrap(), None);
        let listed = s.links().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].label.as_deref(), Some("a and 1 more"));
        assert_eq!(s.link(id).unwrap().map(|l| l.revoked), Some(true));
    }

    #[test]
    fn a_link_turns_new_devices_away_once_its_uses_are_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let link =
            LinkRecord { max_uses: Some(2), ..LinkRecord::new(LinkTarget::Request([1; 16]), [2; 32], false, None) };
        let id = s.add_link(&link).unwrap();
        assert_eq!(s.use_link(id, b"a").unwrap(), LinkUse::Counted);
        assert_eq!(s.use_link(id, b"b").unwrap(), LinkUse::Counted);
        assert_eq!(s.use_link(id, b"c").unwrap(), LinkUse::UsedUp);
        assert_eq!(s.use_link(id, b"a").unwrap(), LinkUse::Again, "those who used it may come back");
        s.add_link_bytes(id, 100).unwrap();
        let got = s.link(id).unwrap().unwrap();
        assert_eq!((got.uses, got.bytes_used, got.target), (2, 100, LinkTarget::Request([1; 16])));
    }

    #[test]
    fn hash_cache_misses_when_the_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.sqlite")).unwrap();
        let p = Path::new("/x/y");
        let stamp = FileStamp { size: 3, mtime_ns: 4, inode: 5 };
        s.cache_hashes(p, stamp, 1 << 17, &[[1; 32]]).unwrap();
        assert_eq!(s.cached_hashes(p, stamp).unwrap(), Some((1 << 17, vec![[1; 32]])));
        assert_eq!(s.cached_hashes(p, FileStamp { mtime_ns: 9, ..stamp }).unwrap(), None);
        assert_eq!(s.cached_hashes(p, FileStamp { size: 4, ..stamp }).unwrap(), None);
    }

    #[test]
    fn a_newer_schema_is_refused_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("i.sqlite");
        drop(Store::open(&db).unwrap());
        Connection::open(&db).unwrap().pragma_update(None, "user_version", 999).unwrap();
        assert!(matches!(Store::open(&db), Err(StoreError::TooNew { found: 999, .. })));
    }
}
