//! Manifests: the list of entries a file-set link opens, and its content id.
//!
//! A manifest is a sequence of [`Entry`] values, directories before what they
//! contain. Its content id is the SHA-256 of a domain tag followed by the postcard
//! encoding of every entry in order. Postcard encodings are self-delimiting, so the
//! concatenation identifies the sequence uniquely; a recipient hashes what it
//! receives and compares with the id in the link, so a sharer cannot swap content.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::path::{PathError, RelPath};

/// SHA-256 of one block.
pub type BlockHash = [u8; 32];

/// Smallest block size.
pub const MIN_BLOCK_SIZE: u32 = 128 * 1024;
/// Largest block size; also the largest block frame.
pub const MAX_BLOCK_SIZE: u32 = 16 * 1024 * 1024;
/// Blocks per file we aim for: enough to resume and spread over peers, few enough
/// that block lists stay small.
pub const TARGET_BLOCKS: u64 = 2000;
/// Most entries in one manifest. A million files is a very large share; past that
/// the recipient's memory would be the sharer's to choose.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Most blocks in one file: 16 MiB × 2^20 = 16 TiB.
pub const MAX_BLOCKS_PER_FILE: usize = 1 << 20;

/// The block size for a file of `size` bytes: a power of two between
/// [`MIN_BLOCK_SIZE`] and [`MAX_BLOCK_SIZE`] giving about [`TARGET_BLOCKS`] blocks.
pub fn block_size_for(size: u64) -> u32 {
    let want = size.div_ceil(TARGET_BLOCKS).max(1).next_power_of_two();
    want.clamp(MIN_BLOCK_SIZE as u64, MAX_BLOCK_SIZE as u64) as u32
}

/// How many blocks a file of `size` bytes has at `block_size`.
pub fn block_count(size: u64, block_size: u32) -> u64 {
    size.div_ceil(block_size as u64)
}

/// The length of block `index` of a file of `size` bytes.
pub fn block_len(size: u64, block_size: u32, index: u64) -> u32 {
    let start = index * block_size as u64;
    (size.saturating_sub(start)).min(block_size as u64) as u32
}

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the entry goes, relative to the destination.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
}

/// A directory or a file with its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory (listed so that empty ones arrive too).
    Dir,
    /// A regular file.
    File(FileMeta),
}

/// What a recipient needs to fetch and verify a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, unix nanoseconds (restored on the recipient).
    pub mtime_ns: i64,
    /// Whether the owner-execute bit was set.
    pub executable: bool,
    /// Block size; must equal [`block_size_for`]`(size)`.
    pub block_size: u32,
    /// SHA-256 of each block, in order.
    pub blocks: Vec<BlockHash>,
}

/// Why a manifest entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The path failed validation.
    #[error("bad path {path:?}: {source}")]
    Path {
        /// The offending path, escaped for display.
        path: String,
        /// Why.
        source: PathError,
    },
    /// Block size is not the canonical one for the file size.
    #[error("{0}: block size does not match the file size")]
    BlockSize(String),
    /// Number of blocks does not cover the declared size exactly.
    #[error("{0}: declared size does not match its blocks")]
    SizeMismatch(String),
}

impl Entry {
    /// Checks everything about the entry that can be checked without its context.
    pub fn validate(&self) -> Result<RelPath, EntryError> {
        let path = RelPath::new(&self.path)
            .map_err(|source| EntryError::Path { path: self.path.escape_debug().to_string(), source })?;
        if let EntryKind::File(f) = &self.kind {
            if f.block_size != block_size_for(f.size) {
                return Err(EntryError::BlockSize(path.to_string()));
            }
            let want = block_count(f.size, f.block_size);
            if f.blocks.len() > MAX_BLOCKS_PER_FILE || f.blocks.len() as u64 != want {
                return Err(EntryError::SizeMismatch(path.to_string()));
            }
        }
        Ok(path)
    }
}

/// Incremental content-id computation over a manifest's entries.
pub struct ContentHasher(Sha256);

impl Default for ContentHasher {
    fn default() -> Self {
        let mut h = Sha256::new();
        h.update(b"peerbox manifest v1\0");
        Self(h)
    }
}

impl ContentHasher {
    /// Adds the next entry.
    pub fn update(&mut self, entry: &Entry) {
        // Serialising a plain struct into a Vec cannot fail.
        let bytes = postcard::to_stdvec(entry).unwrap_or_default();
        self.0.update(&bytes);
    }

    /// The content id of the entries added so far.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The content id of a whole manifest.
pub fn content_id(entries: &[Entry]) -> [u8; 32] {
    let mut h = ContentHasher::default();
    for e in entries {
        h.update(e);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_grow_with_the_file() {
        assert_eq!(block_size_for(0), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(1), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(200 << 20), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(1 << 30), 1 << 20);
        assert_eq!(block_size_for(1 << 40), MAX_BLOCK_SIZE);
        for size in [0u64, 1, 5 << 20, 1 << 30, 20_000_000_000] {
            let n = block_count(size, block_size_for(size));
            assert!(n <= TARGET_BLOCKS * 2, "{size}: {n} blocks");
        }
    }

    #[test]
    fn block_lengths_cover_the_file() {
        let bs = MIN_BLOCK_SIZE;
        for size in [0, 1, bs as u64 - 1, bs as u64, bs as u64 + 1, 5 * bs as u64 + 7] {
            let total: u64 = (0..block_count(size, bs)).map(|i| block_len(size, bs, i) as u64).sum();
            assert_eq!(total, size);
        }
    }

    fn file(path: &str, size: u64, blocks: usize) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(FileMeta {
                size,
                mtime_ns: 0,
                executable: false,
                block_size: block_size_for(size),
                blocks: vec![[0; 32]; blocks],
            }),
        }
    }

    #[test]
    fn validation_checks_size_against_blocks() {
        assert!(file("a", 0, 0).validate().is_ok());
        assert!(file("a", 1, 1).validate().is_ok());
        assert!(matches!(file("a", 1, 0).validate(), Err(EntryError::SizeMismatch(_))));
        assert!(matches!(file("a", 0, 1).validate(), Err(EntryError::SizeMismatch(_))));
        assert!(matches!(file("../a", 0, 0).validate(), Err(EntryError::Path { .. })));
        let mut odd = file("a", 1, 1);
        if let EntryKind::File(f) = &mut odd.kind {
            f.block_size = 1024;
        }
        assert!(matches!(odd.validate(), Err(EntryError::BlockSize(_))));
    }

    #[test]
    fn content_id_depends_on_every_entry_and_order() {
        let a = file("a", 1, 1);
        let b = file("b", 1, 1);
        let ab = content_id(&[a.clone(), b.clone()]);
        assert_ne!(ab, content_id(&[b.clone(), a.clone()]));
        assert_ne!(ab, content_id(std::slice::from_ref(&a)));
        assert_eq!(ab, content_id(&[a, b]));
    }
}
