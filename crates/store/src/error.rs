//! Errors of the index.

use std::path::{Path, PathBuf};

/// Something went wrong with the index file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened.
    #[error("cannot open the index at {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The index was written by a newer Peerbox.
    #[error("the index was written by a newer Peerbox (schema {found}, this one knows up to {known}); update Peerbox")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// Any other SQLite failure.
    #[error("index error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    pub(crate) fn open(path: &Path, source: rusqlite::Error) -> Self {
        Self::Open { path: path.to_owned(), source }
    }
}
