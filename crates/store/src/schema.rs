//! Schema migrations, one SQL batch per version, applied in order inside one
//! transaction each. `PRAGMA user_version` records how far a file has come.

use rusqlite::Connection;

use crate::StoreError;

/// Each entry migrates from version `i` to `i + 1`. Append only; never edit one
/// that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: shares, their entries, links and the hash cache.
    "CREATE TABLE shares (
        id INTEGER PRIMARY KEY,
        content_id BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created INTEGER NOT NULL
     );
     CREATE TABLE share_entries (
        share_id INTEGER NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        local_path BLOB,
        is_dir INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        executable INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        blocks BLOB NOT NULL,
        PRIMARY KEY (share_id, idx)
     ) WITHOUT ROWID;
     CREATE TABLE links (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        target BLOB NOT NULL,
        secret_hash BLOB NOT NULL UNIQUE,
        read_only INTEGER NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0,
        uses INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE hash_cache (
        local_path BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        blocks BLOB NOT NULL
     );",
    // 2: shared folders, their members, this device's files and members' files.
    "CREATE TABLE folders (
        id BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        path BLOB NOT NULL,
        mode TEXT NOT NULL,
        read_write INTEGER NOT NULL,
        paused TEXT,
        seq INTEGER NOT NULL,
        created INTEGER NOT NULL
     );
     CREATE TABLE folder_members (
        folder_id BLOB NOT NULL,
        peer BLOB NOT NULL,
        read_write INTEGER NOT NULL,
        addrs TEXT NOT NULL,
        PRIMARY KEY (folder_id, peer)
     ) WITHOUT ROWID;
     CREATE TABLE files (
        folder_id BLOB NOT NULL,
        path TEXT NOT NULL,
        dir INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        executable INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        blocks BLOB NOT NULL,
        version TEXT NOT NULL,
        seq INTEGER NOT NULL,
        modified_by INTEGER NOT NULL,
        have INTEGER NOT NULL,
        local_size INTEGER,
        local_mtime_ns INTEGER,
        local_inode INTEGER,
        PRIMARY KEY (folder_id, path)
     ) WITHOUT ROWID;
     CREATE INDEX files_by_seq ON files (folder_id, seq);
     CREATE TABLE remote_files (
        folder_id BLOB NOT NULL,
        peer BLOB NOT NULL,
        path TEXT NOT NULL,
        dir INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        executable INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        blocks BLOB NOT NULL,
        version TEXT NOT NULL,
        seq INTEGER NOT NULL,
        modified_by INTEGER NOT NULL,
        have INTEGER NOT NULL,
        PRIMARY KEY (folder_id, peer, path)
     ) WITHOUT ROWID;
     CREATE TABLE remote_seq (
        folder_id BLOB NOT NULL,
        peer BLOB NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (folder_id, peer)
     ) WITHOUT ROWID;",
    // 3: links that need the owner's approval, and the requests waiting for it.
    "ALTER TABLE links ADD COLUMN approve INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE join_requests (
        folder_id BLOB NOT NULL,
        peer BLOB NOT NULL,
        read_write INTEGER NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (folder_id, peer)
     ) WITHOUT ROWID;",
    // 4: downloads from links, queued and resumable across restarts.
    "CREATE TABLE transfers (
        id INTEGER PRIMARY KEY,
        link TEXT NOT NULL,
        dest BLOB NOT NULL,
        label TEXT NOT NULL,
        state TEXT NOT NULL,
        total_bytes INTEGER NOT NULL DEFAULT 0,
        done_bytes INTEGER NOT NULL DEFAULT 0,
        files_total INTEGER NOT NULL DEFAULT 0,
        files_done INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created INTEGER NOT NULL,
        finished INTEGER
     );",
    // 5: the device's own settings (name, limits), one value per key.
    "CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
     ) WITHOUT ROWID;",
    // 6: links this device serves for a download it received, apart from its own.
    "ALTER TABLE links ADD COLUMN received INTEGER NOT NULL DEFAULT 0;",
    // 7: link limits (password, devices, bytes), which devices used each link, and
    // which link let each member in (so revoking or expiry ends its access), and
    // the password proof a queued download resumes with, and members removed (so
    // another member's list cannot bring one back).
    "ALTER TABLE links ADD COLUMN password_hash BLOB;
     ALTER TABLE links ADD COLUMN max_uses INTEGER;
     ALTER TABLE links ADD COLUMN max_bytes INTEGER;
     ALTER TABLE links ADD COLUMN bytes_used INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE link_uses (
        link_id INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
        peer BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (link_id, peer)
     ) WITHOUT ROWID;
     ALTER TABLE folder_members ADD COLUMN via_link INTEGER;
     ALTER TABLE folder_members ADD COLUMN introduced_by BLOB;
     ALTER TABLE join_requests ADD COLUMN via_link INTEGER;
     ALTER TABLE transfers ADD COLUMN proof BLOB;
     CREATE TABLE removed_members (
        folder_id BLOB NOT NULL,
        peer BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (folder_id, peer)
     ) WITHOUT ROWID;",
    // 8: how many versions of each replaced file a folder keeps.
    "ALTER TABLE folders ADD COLUMN keep_versions INTEGER NOT NULL DEFAULT 5;",
    // 9: pulled files about to be put in place, with the stamp each will have
    // there: what a restart settles if the daemon died before recording them.
    "CREATE TABLE landing (
        folder_id BLOB NOT NULL,
        path TEXT NOT NULL,
        dir INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        executable INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        blocks BLOB NOT NULL,
        version TEXT NOT NULL,
        seq INTEGER NOT NULL,
        modified_by INTEGER NOT NULL,
        have INTEGER NOT NULL,
        local_size INTEGER NOT NULL,
        local_mtime_ns INTEGER NOT NULL,
        local_inode INTEGER NOT NULL,
        PRIMARY KEY (folder_id, path)
     ) WITHOUT ROWID;",
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
