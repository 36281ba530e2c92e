//! Errors of the engine, each naming the file it concerns.

use std::path::{Path, PathBuf};

use peerbox_proto::PathError;

/// A failure while scanning, hashing or writing files.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An I/O error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A name Peerbox cannot carry (not UTF-8).
    #[error("{}: the name is not valid UTF-8", .0.display())]
    BadName(PathBuf),
    /// A name that fails path validation.
    #[error("{}: {}", .0.display(), .1)]
    Path(PathBuf, PathError),
    /// Two shared paths with the same name.
    #[error("two of the shared paths are both named {0:?}; share them from one parent folder instead")]
    DuplicateName(String),
    /// A file kept changing while it was hashed.
    #[error("{}: the file keeps changing while it is read; try again when it is finished", .0.display())]
    KeepsChanging(PathBuf),
    /// Something different is already at a destination.
    #[error("{} already exist{} with different content; use --overwrite to replace", list(.0), if .0.len() == 1 { "s" } else { "" })]
    WouldOverwrite(Vec<PathBuf>),
    /// Internal: one destination is occupied.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// The manifest is inconsistent.
    #[error("the sharer sent an invalid file list: {0}")]
    BadManifest(String),
    /// The folder's marker is missing (drive unplugged, folder emptied).
    #[error("{}: the folder's .peerbox marker is missing (unplugged drive or emptied folder); sync is stopped and nothing is deleted. Reconnect the drive, or remove and re-add the folder", .0.display())]
    MarkerMissing(PathBuf),
    /// Nothing by that name in the trash.
    #[error("{0} is not in the trash")]
    NotInTrash(String),
    /// No kept version of that file by that name.
    #[error("{0} has no such version (see `peerbox versions list`)")]
    NoSuchVersion(String),
    /// An operation that would do harm, refused.
    #[error("{0}")]
    Refused(String),
    /// A file was finished before all of its blocks arrived.
    #[error("{}: not all blocks have arrived", .0.display())]
    Incomplete(PathBuf),
}

fn list(paths: &[PathBuf]) -> String {
    let mut s: Vec<String> = paths.iter().take(3).map(|p| p.display().to_string()).collect();
    if paths.len() > 3 {
        s.push(format!("and {} more", paths.len() - 3));
    }
    s.join(", ")
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}
