//! Shared folders in the index: the folders themselves, their members, this
//! device's view of every file (with the local sequence numbers peers ask after),
//! and each member's announced view.

use std::path::PathBuf;

use peerbox_proto::index::{FolderId, Version};
use peerbox_proto::manifest::BlockHash;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::{FileStamp, Result, Store, path_bytes, path_from_bytes, split_hashes};

/// How a folder takes part in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderMode {
    /// Sends local changes and receives others'.
    SendReceive,
    /// Receives only; local changes are reverted from the group.
    ReceiveOnly,
    /// The index is synced, contents only when fetched.
    OnDemand,
}

impl FolderMode {
    /// The name used in the index, the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendReceive => "send-receive",
            Self::ReceiveOnly => "receive-only",
            Self::OnDemand => "on-demand",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "send-receive" => Self::SendReceive,
            "receive-only" => Self::ReceiveOnly,
            "on-demand" => Self::OnDemand,
            _ => return None,
        })
    }
}

/// A shared folder on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRow {
    /// Random id, the same on every member.
    pub id: FolderId,
    /// Display name.
    pub name: String,
    /// Where it lives here.
    pub path: PathBuf,
    /// How it syncs.
    pub mode: FolderMode,
    /// Whether this device may change the folder for others.
    pub read_write: bool,
    /// Why it is stopped, if it is.
    pub paused: Option<String>,
    /// How many versions of each file replaced by sync it keeps (0: replaced
    /// files go to the trash).
    pub keep_versions: u32,
}

/// Versions a new folder keeps of each replaced file.
pub const DEFAULT_KEEP_VERSIONS: u32 = 5;

/// A member of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// PeerId bytes.
    pub peer: Vec<u8>,
    /// Whether its changes are applied.
    pub read_write: bool,
    /// Address hints (multiaddr bytes).
    pub addrs: Vec<Vec<u8>>,
    /// The link of this device's that let it in: its access ends with the link.
    pub via_link: Option<i64>,
    /// The member that told this device about it; when that member stops listing
    /// it, so does this device.
    pub introduced_by: Option<Vec<u8>>,
}

impl Member {
    /// A member known only by id and rights.
    pub fn new(peer: Vec<u8>, read_write: bool, addrs: Vec<Vec<u8>>) -> Self {
        Self { peer, read_write, addrs, via_link: None, introduced_by: None }
    }
}

/// A file or directory record: this device's view, or a member's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Path in the folder (validated).
    pub path: String,
    /// Directory rather than file.
    pub dir: bool,
    /// Deleted.
    pub deleted: bool,
    /// Size.
    pub size: u64,
    /// Modification time, unix nanoseconds.
    pub mtime_ns: i64,
    /// Owner-execute bit.
    pub executable: bool,
    /// Block size.
    pub block_size: u32,
    /// Block hashes.
    pub blocks: Vec<BlockHash>,
    /// Version vector.
    pub version: Version,
    /// Sequence of the device holding this record.
    pub seq: u64,
    /// Short id of the device that made this version.
    pub modified_by: u64,
    /// Whether the holder has the content.
    pub have: bool,
    /// For this device's records: the local file's stamp when last scanned or written.
    pub local: Option<FileStamp>,
}

const FILE_COLS: &str =
    "path, dir, deleted, size, mtime_ns, executable, block_size, blocks, version, seq, modified_by, have";

/// One block of a file as this device's record has it (see [`Store::block_record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// The file's size in bytes.
    pub size: u64,
    /// The file's block size.
    pub block_size: u32,
    /// The block's hash; `None` past the file's last block.
    pub hash: Option<[u8; 32]>,
    /// A file this device has the content of (not a folder, not deleted).
    pub servable: bool,
    /// The file on disk when it was last scanned.
    pub local: Option<FileStamp>,
}

/// A record's values in `FILE_COLS` order: what every table of file records
/// stores, so the three that do cannot drift apart. Borrowed, not copied: a
/// first scan writes a row per file, and the copies were ~6 % of that work.
/// `version` is the record's version as [`Versions::text`] encodes it.
fn file_values<'a>(f: &'a FileRecord, version: &'a str) -> [ValueRef<'a>; 12] {
    [
        ValueRef::Text(f.path.as_bytes()),
        ValueRef::Integer(f.dir.into()),
        ValueRef::Integer(f.deleted.into()),
        ValueRef::Integer(f.size as i64),
        ValueRef::Integer(f.mtime_ns),
        ValueRef::Integer(f.executable.into()),
        ValueRef::Integer(f.block_size.into()),
        ValueRef::Blob(f.blocks.as_flattened()),
        ValueRef::Text(version.as_bytes()),
        ValueRef::Integer(f.seq as i64),
        ValueRef::Integer(f.modified_by as i64),
        ValueRef::Integer(f.have.into()),
    ]
}

/// A local stamp's values for `local_size, local_mtime_ns, local_inode`.
fn stamp_values(s: Option<FileStamp>) -> [ValueRef<'static>; 3] {
    match s {
        Some(s) => [ValueRef::Integer(s.size as i64), ValueRef::Integer(s.mtime_ns), ValueRef::Integer(s.inode as i64)],
        None => [ValueRef::Null, ValueRef::Null, ValueRef::Null],
    }
}

/// A row of `files` or `landing` (this device's records): the folder, the
/// record, its local stamp.
fn local_row<'a>(folder: &'a FolderId, f: &'a FileRecord, version: &'a str) -> impl Iterator<Item = ToSqlOutput<'a>> {
    [ValueRef::Blob(&folder[..])]
        .into_iter()
        .chain(file_values(f, version))
        .chain(stamp_values(f.local))
        .map(ToSqlOutput::Borrowed)
}

/// Versions as stored, each encoded once for a run of records that share it (a
/// scan's new files all do).
#[derive(Default)]
struct Versions(Option<(Version, String)>);

impl Versions {
    fn text(&mut self, v: &Version) -> &str {
        if self.0.as_ref().is_none_or(|(last, _)| last != v) {
            self.0 = Some((v.clone(), serde_json::to_string(v).unwrap_or_default()));
        }
        self.0.as_ref().map_or("", |(_, text)| text)
    }
}

fn file_from_row(r: &Row<'_>) -> rusqlite::Result<FileRecord> {
    let blocks: Vec<u8> = r.get(7)?;
    let version: String = r.get(8)?;
    Ok(FileRecord {
        path: r.get(0)?,
        dir: r.get(1)?,
        deleted: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        mtime_ns: r.get(4)?,
        executable: r.get(5)?,
        block_size: r.get(6)?,
        blocks: split_hashes(&blocks),
        version: serde_json::from_str(&version).unwrap_or_default(),
        seq: r.get::<_, i64>(9)? as u64,
        modified_by: r.get::<_, i64>(10)? as u64,
        have: r.get(11)?,
        local: None,
    })
}

fn local_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Option<FileStamp>> {
    let size: Option<i64> = r.get(at)?;
    Ok(match size {
        Some(size) => {
            Some(FileStamp { size: size as u64, mtime_ns: r.get(at + 1)?, inode: r.get::<_, i64>(at + 2)? as u64 })
        }
        None => None,
    })
}

impl Store {
    /// Adds a folder.
    pub fn add_folder(&mut self, f: &FolderRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO folders (id, name, path, mode, read_write, paused, seq, created, keep_versions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
            params![
                &f.id[..],
                f.name,
                path_bytes(&f.path),
                f.mode.as_str(),
                f.read_write,
                f.paused,
                crate::now() as i64,
                f.keep_versions
            ],
        )?;
        Ok(())
    }

    /// All folders.
    pub fn folders(&self) -> Result<Vec<FolderRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, path, mode, read_write, paused, keep_versions FROM folders ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: Vec<u8> = r.get(0)?;
            let mut fid = [0u8; 16];
            if id.len() == 16 {
                fid.copy_from_slice(&id);
            }
            let mode: String = r.get(3)?;
            Ok(FolderRow {
                id: fid,
                name: r.get(1)?,
                path: path_from_bytes(r.get(2)?),
                mode: FolderMode::parse(&mode).unwrap_or(FolderMode::SendReceive),
                read_write: r.get(4)?,
                paused: r.get(5)?,
                keep_versions: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One folder.
    pub fn folder(&self, id: &FolderId) -> Result<Option<FolderRow>> {
        Ok(self.folders()?.into_iter().find(|f| &f.id == id))
    }

    /// Removes a folder and everything the index knows about it (not its files).
    pub fn remove_folder(&mut self, id: &FolderId) -> Result<()> {
        let tx = self.conn.transaction()?;
        for table in ["files", "remote_files", "remote_seq", "folder_members", "removed_members", "landing"] {
            tx.execute(&format!("DELETE FROM {table} WHERE folder_id = ?1"), [&id[..]])?;
        }
        tx.execute("DELETE FROM folders WHERE id = ?1", [&id[..]])?;
        tx.commit()?;
        Ok(())
    }

    /// Sets how many versions of each replaced file a folder keeps.
    pub fn set_keep_versions(&mut self, id: &FolderId, keep: u32) -> Result<()> {
        self.conn.execute("UPDATE folders SET keep_versions = ?2 WHERE id = ?1", params![&id[..], keep])?;
        Ok(())
    }

    /// Stops (with a reason) or restarts a folder.
    pub fn set_paused(&mut self, id: &FolderId, reason: Option<&str>) -> Result<()> {
        self.conn.execute("UPDATE folders SET paused = ?2 WHERE id = ?1", params![&id[..], reason])?;
        Ok(())
    }

    /// Adds or updates a member.
    pub fn put_member(&mut self, folder: &FolderId, m: &Member) -> Result<()> {
        self.conn.execute(
            "INSERT INTO folder_members (folder_id, peer, read_write, addrs, via_link, introduced_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (folder_id, peer) DO UPDATE SET read_write = excluded.read_write,
               addrs = CASE WHEN excluded.addrs = '[]' THEN addrs ELSE excluded.addrs END,
               via_link = COALESCE(excluded.via_link, via_link),
               introduced_by = COALESCE(excluded.introduced_by, introduced_by)",
            params![
                &folder[..],
                m.peer,
                m.read_write,
                serde_json::to_string(&m.addrs).unwrap_or_default(),
                m.via_link,
                m.introduced_by
            ],
        )?;
        Ok(())
    }

    /// Stores where `peer` listens, as it said itself, for every folder it is a
    /// member of (nothing for a peer that is not one). Returns the rows changed.
    pub fn learn_member_addrs(&mut self, peer: &[u8], addrs: &[Vec<u8>]) -> Result<usize> {
        let json = serde_json::to_string(addrs).unwrap_or_default();
        Ok(self
            .conn
            .execute("UPDATE folder_members SET addrs = ?2 WHERE peer = ?1 AND addrs != ?2", params![peer, json])?)
    }

    /// Removes a member, and remembers that it was removed (see
    /// [`Self::member_removed_since`]), so a list from another member that still
    /// names it does not bring it back.
    pub fn remove_member(&mut self, folder: &FolderId, peer: &[u8]) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM folder_members WHERE folder_id = ?1 AND peer = ?2", params![&folder[..], peer])?;
        tx.execute(
            "INSERT OR REPLACE INTO removed_members (folder_id, peer, at) VALUES (?1, ?2, ?3)",
            params![&folder[..], peer, crate::now() as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether `peer` was removed from `folder` at or after unix time `since`.
    pub fn member_removed_since(&self, folder: &FolderId, peer: &[u8], since: u64) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM removed_members WHERE folder_id = ?1 AND peer = ?2 AND at >= ?3",
                params![&folder[..], peer, since as i64],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Forgets that `peer` was removed (this device let it in again).
    pub fn clear_member_removal(&mut self, folder: &FolderId, peer: &[u8]) -> Result<()> {
        self.conn
            .execute("DELETE FROM removed_members WHERE folder_id = ?1 AND peer = ?2", params![&folder[..], peer])?;
        Ok(())
    }

    /// A folder's members.
    pub fn members(&self, folder: &FolderId) -> Result<Vec<Member>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT peer, read_write, addrs, via_link, introduced_by FROM folder_members WHERE folder_id = ?1",
        )?;
        let rows = stmt.query_map([&folder[..]], |r| {
            let addrs: String = r.get(2)?;
            Ok(Member {
                peer: r.get(0)?,
                read_write: r.get(1)?,
                addrs: serde_json::from_str(&addrs).unwrap_or_default(),
                via_link: r.get(3)?,
                introduced_by: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// This device's record for `path`.
    pub fn file(&self, folder: &FolderId, path: &str) -> Result<Option<FileRecord>> {
        // Prepared once: every block a member asks for looks its file up here.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS}, local_size, local_mtime_ns, local_inode FROM files WHERE folder_id = ?1 AND path = ?2"
        ))?;
        Ok(stmt
            .query_row(params![&folder[..], path], |r| {
                let mut f = file_from_row(r)?;
                f.local = local_from_row(r, 12)?;
                Ok(f)
            })
            .optional()?)
    }

    /// What serving block `index` of `path` needs from its record, without the
    /// rest of its block list: for a large file that list is most of the row,
    /// and a member pulling it asks once per block.
    pub fn block_record(&self, folder: &FolderId, path: &str, index: u32) -> Result<Option<BlockRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT dir, deleted, have, size, block_size, substr(blocks, ?3 * 32 + 1, 32),
                    local_size, local_mtime_ns, local_inode
             FROM files WHERE folder_id = ?1 AND path = ?2",
        )?;
        Ok(stmt
            .query_row(params![&folder[..], path, i64::from(index)], |r| {
                let (dir, deleted, have): (bool, bool, bool) = (r.get(0)?, r.get(1)?, r.get(2)?);
                let hash: Vec<u8> = r.get(5)?;
                Ok(BlockRecord {
                    size: r.get::<_, i64>(3)? as u64,
                    block_size: r.get(4)?,
                    hash: hash.try_into().ok(),
                    servable: have && !deleted && !dir,
                    local: local_from_row(r, 6)?,
                })
            })
            .optional()?)
    }

    /// Every record of this device for a folder.
    pub fn files(&self, folder: &FolderId) -> Result<Vec<FileRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS}, local_size, local_mtime_ns, local_inode FROM files WHERE folder_id = ?1 ORDER BY path"
        ))?;
        let rows = stmt.query_map([&folder[..]], |r| {
            let mut f = file_from_row(r)?;
            f.local = local_from_row(r, 12)?;
            Ok(f)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The files this device has in a folder (not deleted, not folders): how many,
    /// and their bytes. Counted by SQLite, without reading the records out.
    pub fn local_totals(&self, folder: &FolderId) -> Result<(u64, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files
             WHERE folder_id = ?1 AND have AND NOT deleted AND NOT dir",
        )?;
        let (n, bytes): (i64, i64) = stmt.query_row([&folder[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((n as u64, bytes as u64))
    }

    /// Paths of the live files of a folder whose names mark them as conflict
    /// copies (`.sync-conflict-`), in path order.
    pub fn conflict_paths(&self, folder: &FolderId) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path FROM files WHERE folder_id = ?1 AND NOT deleted AND NOT dir
             AND instr(path, '.sync-conflict-') > 0 ORDER BY path",
        )?;
        let rows = stmt.query_map([&folder[..]], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records changes to this device's view, giving each the next sequence
    /// number, all in one transaction. Returns the folder's new sequence.
    pub fn put_files(&mut self, folder: &FolderId, records: &mut [FileRecord]) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let mut seq: i64 = tx.query_row("SELECT seq FROM folders WHERE id = ?1", [&folder[..]], |r| r.get(0))?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO files (folder_id, path, dir, deleted, size, mtime_ns, executable, block_size, blocks,
                   version, seq, modified_by, have, local_size, local_mtime_ns, local_inode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            // Recorded now: a journal entry for the same path has served its purpose.
            // Asked once: there is rarely any, and a scan records thousands of paths.
            let journalled: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM landing WHERE folder_id = ?1)", [&folder[..]], |r| {
                    r.get(0)
                })?;
            let mut landed = tx.prepare_cached("DELETE FROM landing WHERE folder_id = ?1 AND path = ?2")?;
            let mut versions = Versions::default();
            for f in records.iter_mut() {
                seq += 1;
                f.seq = seq as u64;
                if journalled {
                    landed.execute(params![&folder[..], f.path])?;
                }
                stmt.execute(params_from_iter(local_row(folder, f, versions.text(&f.version))))?;
            }
        }
        tx.execute("UPDATE folders SET seq = ?2 WHERE id = ?1", params![&folder[..], seq])?;
        tx.commit()?;
        Ok(seq as u64)
    }

    /// Journals pulled files about to be put in place, each with the stamp
    /// (`local`) it will have there, before any of them is: a daemon killed after
    /// the rename but before [`Store::put_files`] then knows, on restart, that such
    /// a file is the member's version and not an edit made here.
    pub fn expect_landings(&mut self, folder: &FolderId, records: &[FileRecord]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO landing (folder_id, path, dir, deleted, size, mtime_ns, executable, block_size, blocks,
                   version, seq, modified_by, have, local_size, local_mtime_ns, local_inode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            let mut versions = Versions::default();
            for f in records {
                if f.local.is_none() {
                    continue;
                }
                stmt.execute(params_from_iter(local_row(folder, f, versions.text(&f.version))))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Journalled pulls not yet recorded (see [`Store::expect_landings`]).
    pub fn landings(&self, folder: &FolderId) -> Result<Vec<FileRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS}, local_size, local_mtime_ns, local_inode FROM landing WHERE folder_id = ?1 ORDER BY path"
        ))?;
        let rows = stmt.query_map([&folder[..]], |r| {
            let mut f = file_from_row(r)?;
            f.local = local_from_row(r, 12)?;
            Ok(f)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Drops journalled pulls: settled, or never put in place.
    pub fn forget_landings(&mut self, folder: &FolderId, paths: &[String]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM landing WHERE folder_id = ?1 AND path = ?2")?;
            for p in paths {
                stmt.execute(params![&folder[..], p])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Updates only the local stamp of a record (a touch that changed nothing).
    pub fn set_local_stamp(&mut self, folder: &FolderId, path: &str, stamp: FileStamp) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET local_size = ?3, local_mtime_ns = ?4, local_inode = ?5 WHERE folder_id = ?1 AND path = ?2",
            params![&folder[..], path, stamp.size as i64, stamp.mtime_ns, stamp.inode as i64],
        )?;
        Ok(())
    }

    /// The folder's current sequence.
    pub fn folder_seq(&self, folder: &FolderId) -> Result<u64> {
        let s: Option<i64> =
            self.conn.query_row("SELECT seq FROM folders WHERE id = ?1", [&folder[..]], |r| r.get(0)).optional()?;
        Ok(s.unwrap_or(0) as u64)
    }

    /// This device's records with sequence above `since`, oldest first, at most `limit`.
    pub fn files_since(&self, folder: &FolderId, since: u64, limit: usize) -> Result<Vec<FileRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS} FROM files WHERE folder_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![&folder[..], since as i64, limit as i64], file_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores a batch a member announced, and how far we have read its sequence.
    pub fn put_remote(&mut self, folder: &FolderId, peer: &[u8], records: &[FileRecord], last: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO remote_files (folder_id, peer, path, dir, deleted, size, mtime_ns, executable,
                   block_size, blocks, version, seq, modified_by, have)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let mut versions = Versions::default();
            for f in records {
                stmt.execute(params_from_iter(
                    [ValueRef::Blob(&folder[..]), ValueRef::Blob(peer)]
                        .into_iter()
                        .chain(file_values(f, versions.text(&f.version)))
                        .map(ToSqlOutput::Borrowed),
                ))?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO remote_seq (folder_id, peer, seq) VALUES (?1, ?2, ?3)",
            params![&folder[..], peer, last as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// How far we have read `peer`'s sequence for `folder`.
    pub fn remote_seq(&self, folder: &FolderId, peer: &[u8]) -> Result<u64> {
        let s: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM remote_seq WHERE folder_id = ?1 AND peer = ?2",
                params![&folder[..], peer],
                |r| r.get(0),
            )
            .optional()?;
        Ok(s.unwrap_or(0) as u64)
    }

    /// What `peer` announced for `path` of a folder, if anything.
    pub fn remote_file(&self, folder: &FolderId, peer: &[u8], path: &str) -> Result<Option<FileRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS} FROM remote_files WHERE folder_id = ?1 AND peer = ?2 AND path = ?3"
        ))?;
        Ok(stmt.query_row(params![&folder[..], peer, path], file_from_row).optional()?)
    }

    /// Every member's announced records for a folder, with the member.
    pub fn remote_files(&self, folder: &FolderId) -> Result<Vec<(Vec<u8>, FileRecord)>> {
        // The record's columns first, so the same row mapping serves both tables.
        let mut stmt =
            self.conn.prepare_cached(&format!("SELECT {FILE_COLS}, peer FROM remote_files WHERE folder_id = ?1"))?;
        let rows = stmt.query_map([&folder[..]], |r| Ok((r.get(12)?, file_from_row(r)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A device waiting for the owner's approval to join a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The folder.
    pub folder: FolderId,
    /// PeerId bytes.
    pub peer: Vec<u8>,
    /// Rights it will get.
    pub read_write: bool,
    /// When it asked, unix seconds.
    pub created: u64,
    /// The link it asked through.
    pub via_link: Option<i64>,
}

impl Store {
    /// Records a request to join (idempotent).
    pub fn add_join_request(&mut self, r: &JoinRequest) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO join_requests (folder_id, peer, read_write, created, via_link)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&r.folder[..], r.peer, r.read_write, r.created as i64, r.via_link],
        )?;
        Ok(())
    }

    /// Every waiting request.
    pub fn join_requests(&self) -> Result<Vec<JoinRequest>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT folder_id, peer, read_write, created, via_link FROM join_requests ORDER BY created",
        )?;
        let rows = stmt.query_map([], |r| {
            let f: Vec<u8> = r.get(0)?;
            let mut folder = [0u8; 16];
            if f.len() == 16 {
                folder.copy_from_slice(&f);
            }
            Ok(JoinRequest {
                folder,
                peer: r.get(1)?,
                read_write: r.get(2)?,
                created: r.get::<_, i64>(3)? as u64,
                via_link: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes a request (approved or denied).
    pub fn remove_join_request(&mut self, folder: &FolderId, peer: &[u8]) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM join_requests WHERE folder_id = ?1 AND peer = ?2", params![&folder[..], peer])?
            > 0)
    }
}
