//! Peerbox's wire types and codecs: links, peer-supplied paths, manifests and the
//! frames of the block protocol.
//!
//! Everything a peer or a link can hand us is decoded and validated here, so the
//! rules live in one place and can be fuzzed without a network. No I/O, no libp2p,
//! no async runtime.

pub mod blocks;
pub mod drop;
pub mod index;
pub mod link;
pub mod manifest;
pub mod path;

pub use link::{Link, LinkError, LinkKind};
pub use manifest::{BlockHash, Entry, EntryKind, FileMeta};
pub use path::{PathError, RelPath};
