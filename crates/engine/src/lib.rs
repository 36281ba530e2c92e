//! Peerbox's file engine: scanning and hashing local files into manifests, and
//! receiving verified blocks into temp files that become complete files by rename.
//!
//! Knows nothing of the network: the node hands it entries and blocks and asks it
//! what is still missing.

pub mod download;
pub mod edit;
mod error;
pub mod folder;
pub mod ignores;
pub mod io;
pub mod scan;

pub use download::{BlockError, Download, FileStatus, PlannedFile, TempFile, Written};
pub use error::EngineError;
pub use scan::{HashCache, NoCache, ScanResult, Scanned, Skipped, Stamp, hash_block, scan, stamp_of};
