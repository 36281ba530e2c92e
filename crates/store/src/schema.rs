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
