//! Shared-folder index exchange and folder block requests: `/peerbox/sync/1`.
//!
//! Each device numbers the changes to its view of a folder (a per-device, per-folder
//! sequence). A peer asks "everything after N" and gets bounded batches; with
//! `wait`, the answer is held until something newer exists (or a timeout), which is
//! how changes reach members within a second without polling.
//!
//! Frames reuse the block protocol's layout (`[u32 len][u8 tag][payload]`) with
//! their own tags; payloads are postcard, except block data.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::blocks::{FrameError, HEADER_LEN};
use crate::manifest::{BlockHash, MAX_BLOCK_SIZE};

/// The protocol name.
pub const PROTOCOL: &str = "/peerbox/sync/1";
/// Most records in one index batch.
pub const MAX_BATCH: usize = 1000;
/// Largest control frame of this protocol (a batch of records).
pub const MAX_FRAME: u32 = 8 << 20;

/// A folder id: 16 random bytes.
pub type FolderId = [u8; 16];

/// A version vector: for each device (by short id) the counter of its last change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version(pub BTreeMap<u64, u64>);

/// How two versions relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Identical.
    Equal,
    /// The left one has seen everything the right one has, and more.
    Newer,
    /// The right one is newer.
    Older,
    /// Each has changes the other has not seen: a conflict.
    Concurrent,
}

impl Version {
    /// This version with `device`'s counter moved past every counter it holds, so
    /// the result is newer than anything this version has seen.
    pub fn bump(&self, device: u64) -> Self {
        let mut v = self.clone();
        let next = v.0.values().copied().max().unwrap_or(0).saturating_add(1);
        v.0.insert(device, next);
        v
    }

    /// The least version newer than or equal to both.
    pub fn merge(&self, other: &Self) -> Self {
        let mut v = self.clone();
        for (d, c) in &other.0 {
            let e = v.0.entry(*d).or_insert(0);
            *e = (*e).max(*c);
        }
        v
    }

    /// Compares two versions.
    pub fn relation(&self, other: &Self) -> Relation {
        let mut greater = false;
        let mut less = false;
        for d in self.0.keys().chain(other.0.keys()) {
            let a = self.0.get(d).copied().unwrap_or(0);
            let b = other.0.get(d).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Greater => greater = true,
                Ordering::Less => less = true,
                Ordering::Equal => {}
            }
        }
        match (greater, less) {
            (false, false) => Relation::Equal,
            (true, false) => Relation::Newer,
            (false, true) => Relation::Older,
            (true, true) => Relation::Concurrent,
        }
    }
}

/// One file or directory as a device announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    /// Path in the folder (validated on receipt).
    pub path: String,
    /// Directory rather than file.
    pub dir: bool,
    /// Deleted (a tombstone).
    pub deleted: bool,
    /// Size in bytes (0 for directories and tombstones).
    pub size: u64,
    /// Modification time, unix nanoseconds.
    pub mtime_ns: i64,
    /// Owner-execute bit.
    pub executable: bool,
    /// Block size (canonical for `size`).
    pub block_size: u32,
    /// Block hashes (empty for directories and tombstones).
    pub blocks: Vec<BlockHash>,
    /// Version vector.
    pub version: Version,
    /// The announcing device's sequence number for this change.
    pub seq: u64,
    /// Short id of the device that made this version.
    pub modified_by: u64,
    /// Whether the announcing device holds the content (and can serve blocks).
    pub have: bool,
}

/// Why a record from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Its path is not one a peer may name.
    #[error("{0}")]
    Path(#[from] crate::path::PathError),
    /// A directory or tombstone with blocks.
    #[error("a directory or deleted entry carries blocks")]
    BlocksWithoutContent,
    /// Block size or count do not fit the size.
    #[error("the block list does not fit the size")]
    BadBlocks,
}

impl WireRecord {
    /// Checks what a peer announced: a valid path, and a block list that fits the
    /// size (none for directories and tombstones). Returns the path.
    pub fn check(&self) -> Result<crate::RelPath, RecordError> {
        let path = crate::RelPath::new(&self.path)?;
        if self.dir || self.deleted {
            if !self.blocks.is_empty() {
                return Err(RecordError::BlocksWithoutContent);
            }
        } else if self.block_size != crate::manifest::block_size_for(self.size)
            || self.blocks.len() as u64 != crate::manifest::block_count(self.size, self.block_size)
        {
            return Err(RecordError::BadBlocks);
        }
        Ok(path)
    }
}

/// Why a folder request was refused. One answer for "no such folder" and "not a
/// member", so a stranger learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRefusal {
    /// Unknown folder, not a member, or bad secret.
    NotAllowed,
    /// The link has expired.
    Expired,
    /// The link takes a password, and none or a wrong one came.
    WrongPassword,
    /// Too many wrong passwords for this link lately.
    TooManyAttempts,
    /// The link was used by as many devices as its owner allowed.
    UsedUp,
}

/// A member of a folder as announced to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMember {
    /// PeerId bytes.
    pub peer: Vec<u8>,
    /// Whether the member may change the folder.
    pub read_write: bool,
    /// Address hints (multiaddr bytes).
    pub addrs: Vec<Vec<u8>>,
}

/// Requests a device sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Join a folder with a link's secret.
    Join {
        /// The folder.
        folder: FolderId,
        /// The link's secret.
        secret: [u8; 32],
        /// For a link with a password: `link::password_proof`.
        proof: Option<[u8; 32]>,
    },
    /// Records after `since`; with `wait`, hold the answer until there are some.
    Index {
        /// The folder.
        folder: FolderId,
        /// Last sequence already received.
        since: u64,
        /// Long-poll.
        wait: bool,
    },
    /// One block of a file, which must hash to `hash`.
    Block {
        /// Request id echoed back.
        req: u32,
        /// The folder.
        folder: FolderId,
        /// The file.
        path: String,
        /// Block index.
        index: u32,
        /// Expected hash.
        hash: BlockHash,
    },
}

/// Answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Welcome to the folder.
    Joined {
        /// Its display name.
        name: String,
        /// Whether we may change it.
        read_write: bool,
        /// Members known to the admitting device (itself included).
        members: Vec<WireMember>,
        /// The owner must approve this device before it can sync.
        pending: bool,
    },
    /// A batch of records; `last` is the sequence to ask after next time.
    Index {
        /// Records in sequence order.
        records: Vec<WireRecord>,
        /// Highest sequence included (or the current one when empty).
        last: u64,
        /// Members as the answering device knows them.
        members: Vec<WireMember>,
    },
    /// Refused.
    Refused(SyncRefusal),
    /// The block cannot be served.
    Missing {
        /// Request id.
        req: u32,
    },
}

const TAG_REQUEST: u8 = 40;
const TAG_RESPONSE: u8 = 41;
/// The tag of a block frame: a request number (4 bytes, big-endian), then the
/// block. Public so a reader can put the block straight where it goes.
pub const TAG_BLOCK: u8 = 42;

/// A decoded frame of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncFrame {
    /// A request.
    Request(SyncRequest),
    /// A control answer.
    Response(SyncResponse),
    /// Block bytes answering `req`.
    Block {
        /// Request id.
        req: u32,
        /// Unverified bytes.
        data: bytes::Bytes,
    },
}

/// Checks a header; returns the tag and payload length.
pub fn parse_header(h: [u8; HEADER_LEN]) -> Result<(u8, usize), FrameError> {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let max = match h[4] {
        TAG_REQUEST | TAG_RESPONSE => MAX_FRAME,
        TAG_BLOCK => MAX_BLOCK_SIZE + 5,
        other => return Err(FrameError::UnknownTag(other)),
    };
    if len > max {
        return Err(FrameError::TooLong { tag: crate::blocks::Tag::Block, len, max });
    }
    Ok((h[4], len as usize - 1))
}

impl SyncFrame {
    /// Encodes the whole frame.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, payload) = match self {
            Self::Request(r) => (TAG_REQUEST, postcard::to_stdvec(r).unwrap_or_default()),
            Self::Response(r) => (TAG_RESPONSE, postcard::to_stdvec(r).unwrap_or_default()),
            Self::Block { req, data } => {
                let mut p = req.to_be_bytes().to_vec();
                p.extend_from_slice(data);
                (TAG_BLOCK, p)
            }
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        out.push(tag);
        out.extend_from_slice(&payload);
        out
    }

    /// The header of a [`SyncFrame::Block`] frame of `len` data bytes, to send
    /// before the data itself (no copy of the block into a frame).
    pub fn block_header(req: u32, len: usize) -> [u8; HEADER_LEN + 4] {
        let mut h = [0u8; HEADER_LEN + 4];
        h[..4].copy_from_slice(&(len as u32 + 5).to_be_bytes());
        h[4] = TAG_BLOCK;
        h[5..].copy_from_slice(&req.to_be_bytes());
        h
    }

    /// Decodes a payload received under `tag`.
    pub fn decode(tag: u8, payload: bytes::Bytes) -> Result<Self, FrameError> {
        let bad = || FrameError::Malformed(crate::blocks::Tag::Open);
        match tag {
            TAG_REQUEST => match postcard::take_from_bytes(&payload) {
                Ok((r, [])) => Ok(Self::Request(r)),
                _ => Err(bad()),
            },
            TAG_RESPONSE => match postcard::take_from_bytes(&payload) {
                Ok((r, [])) => Ok(Self::Response(r)),
                _ => Err(bad()),
            },
            TAG_BLOCK if payload.len() >= 4 => {
                let req = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                Ok(Self::Block { req, data: payload.slice(4..) })
            }
            TAG_BLOCK => Err(bad()),
            other => Err(FrameError::UnknownTag(other)),
        }
    }
}

/// The short id of a device in version vectors: the first 8 bytes of the SHA-256
/// of its PeerId bytes.
pub fn short_id(peer: &[u8]) -> u64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(peer);
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(u64, u64)]) -> Version {
        Version(pairs.iter().copied().collect())
    }

    #[test]
    fn version_relations() {
        assert_eq!(v(&[]).relation(&v(&[])), Relation::Equal);
        assert_eq!(v(&[(1, 2)]).relation(&v(&[(1, 1)])), Relation::Newer);
        assert_eq!(v(&[(1, 1)]).relation(&v(&[(1, 1), (2, 1)])), Relation::Older);
        assert_eq!(v(&[(1, 2)]).relation(&v(&[(2, 1)])), Relation::Concurrent);
        let base = v(&[(1, 3), (2, 1)]);
        let a = base.bump(1);
        let b = base.bump(2);
        assert_eq!(a.relation(&base), Relation::Newer);
        assert_eq!(a.relation(&b), Relation::Concurrent);
        assert_eq!(a.merge(&b).relation(&a), Relation::Newer);
        // Clocks years apart do not matter: only counters do.
        assert_eq!(a.merge(&b).bump(2).relation(&a.merge(&b)), Relation::Newer);
    }

    #[test]
    fn a_block_header_and_its_data_are_the_frame_encode_makes() {
        let data = bytes::Bytes::from_static(b"some block bytes");
        let mut sent = SyncFrame::block_header(7, data.len()).to_vec();
        sent.extend_from_slice(&data);
        assert_eq!(sent, SyncFrame::Block { req: 7, data }.encode());
    }

    #[test]
    fn a_counter_at_its_limit_does_not_panic_a_bump() {
        // Found by fuzzing index frames: a peer can send any counter.
        let v = Version(std::collections::BTreeMap::from([(7, u64::MAX)]));
        assert_eq!(v.bump(9).0.get(&9), Some(&u64::MAX));
    }

    #[test]
    fn records_are_checked_at_the_boundary() {
        let good = WireRecord {
            path: "a/b.txt".into(),
            dir: false,
            deleted: false,
            size: 5,
            mtime_ns: 0,
            executable: false,
            block_size: crate::manifest::block_size_for(5),
            blocks: vec![[1; 32]],
            version: v(&[(1, 1)]),
            seq: 1,
            modified_by: 1,
            have: true,
        };
        assert_eq!(good.check().unwrap().as_str(), "a/b.txt");
        let bad_path = WireRecord { path: "../x".into(), ..good.clone() };
        assert!(matches!(bad_path.check(), Err(RecordError::Path(_))));
        let lying_size = WireRecord { size: 1 << 30, ..good.clone() };
        assert_eq!(lying_size.check(), Err(RecordError::BadBlocks));
        let odd_block_size = WireRecord { block_size: 4096, ..good.clone() };
        assert_eq!(odd_block_size.check(), Err(RecordError::BadBlocks));
        let deleted_with_blocks = WireRecord { deleted: true, ..good.clone() };
        assert_eq!(deleted_with_blocks.check(), Err(RecordError::BlocksWithoutContent));
        let dir_ok = WireRecord { dir: true, size: 0, blocks: vec![], ..good };
        assert!(dir_ok.check().is_ok());
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let f = SyncFrame::Request(SyncRequest::Index { folder: [1; 16], since: 5, wait: true });
        let e = f.encode();
        let (tag, len) = parse_header(e[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(len, e.len() - HEADER_LEN);
        assert_eq!(SyncFrame::decode(tag, bytes::Bytes::copy_from_slice(&e[HEADER_LEN..])).unwrap(), f);
        assert!(parse_header([0xff, 0xff, 0xff, 0xff, TAG_RESPONSE]).is_err());
        assert!(parse_header([0, 0, 0, 1, 7]).is_err());
        assert!(SyncFrame::decode(TAG_RESPONSE, bytes::Bytes::from_static(&[0xff, 0xff])).is_err());
        assert!(SyncFrame::decode(TAG_BLOCK, bytes::Bytes::from_static(&[1])).is_err());
    }
}
