//! Downloads from links that the node runs for the drive: what, where to, and how
//! far they got, so the queue survives a restart.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Result, Store, path_bytes, path_from_bytes};

/// A queued, running, paused or finished download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferRow {
    /// Local id.
    pub id: i64,
    /// The link (it holds the secret: never shown back in full).
    #[serde(skip)]
    pub link: String,
    /// Destination folder.
    pub dest: PathBuf,
    /// What the sharer called it (peer data).
    pub label: String,
    /// queued, running, paused, done, failed or canceled.
    pub state: String,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes verified.
    pub done_bytes: u64,
    /// Files in the share.
    pub files_total: u64,
    /// Files complete.
    pub files_done: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was added (unix seconds).
    pub created: u64,
    /// When it ended.
    pub finished: Option<u64>,
    /// The link's password proof, for links that take one (as secret as the link).
    #[serde(skip)]
    pub proof: Option<[u8; 32]>,
}

const COLUMNS: &str =
    "id, link, dest, label, state, total_bytes, done_bytes, files_total, files_done, error, created, finished, proof";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        id: r.get(0)?,
        link: r.get(1)?,
        dest: path_from_bytes(r.get(2)?),
        label: r.get(3)?,
        state: r.get(4)?,
        total_bytes: r.get::<_, i64>(5)? as u64,
        done_bytes: r.get::<_, i64>(6)? as u64,
        files_total: r.get::<_, i64>(7)? as u64,
        files_done: r.get::<_, i64>(8)? as u64,
        error: r.get(9)?,
        created: r.get::<_, i64>(10)? as u64,
        finished: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
        proof: r.get::<_, Option<Vec<u8>>>(12)?.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()),
    })
}

impl Store {
    /// Queues a download; returns its id.
    pub fn add_transfer(
        &mut self,
        link: &str,
        dest: &std::path::Path,
        label: &str,
        proof: Option<[u8; 32]>,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO transfers (link, dest, label, state, created, proof) VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
            params![link, path_bytes(dest), label, crate::now() as i64, proof.as_ref().map(|p| &p[..])],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every download, newest first.
    pub fn transfers(&self) -> Result<Vec<TransferRow>> {
        let mut st = self.conn.prepare(&format!("SELECT {COLUMNS} FROM transfers ORDER BY id DESC"))?;
        let rows = st.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// One download.
    pub fn transfer(&self, id: i64) -> Result<Option<TransferRow>> {
        Ok(self.conn.query_row(&format!("SELECT {COLUMNS} FROM transfers WHERE id = ?1"), [id], row).optional()?)
    }

    /// Sets a download's state (and error); ended states record when.
    pub fn set_transfer_state(&mut self, id: i64, state: &str, error: Option<&str>) -> Result<()> {
        let ended = matches!(state, "done" | "failed" | "canceled").then(|| crate::now() as i64);
        self.conn.execute(
            "UPDATE transfers SET state = ?2, error = ?3, finished = ?4 WHERE id = ?1",
            params![id, state, error, ended],
        )?;
        Ok(())
    }

    /// Records how far a download got (and its label, once the sharer said it).
    pub fn set_transfer_progress(&mut self, id: i64, label: &str, p: [u64; 4]) -> Result<()> {
        self.conn.execute(
            "UPDATE transfers SET label = ?2, total_bytes = ?3, done_bytes = ?4, files_total = ?5, files_done = ?6
             WHERE id = ?1",
            params![id, label, p[0] as i64, p[1] as i64, p[2] as i64, p[3] as i64],
        )?;
        Ok(())
    }

    /// Forgets a download.
    pub fn remove_transfer(&mut self, id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM transfers WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_keep_their_state_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("i.sqlite");
        let id = {
            let mut s = Store::open(&path).unwrap();
            let id = s.add_transfer("peerbox://x", d.path(), "a.bin", Some([7; 32])).unwrap();
            s.set_transfer_progress(id, "a.bin and 1 more", [100, 40, 2, 1]).unwrap();
            s.set_transfer_state(id, "paused", None).unwrap();
            id
        };
        let s = Store::open(&path).unwrap();
        let t = s.transfer(id).unwrap().unwrap();
        assert_eq!(
            (t.state.as_str(), t.done_bytes, t.files_done, t.label.as_str()),
            ("paused", 40, 1, "a.bin and 1 more")
        );
        assert_eq!(t.finished, None);
        assert_eq!(t.proof, Some([7; 32]));
        assert_eq!(s.transfers().unwrap().len(), 1);
    }
}
