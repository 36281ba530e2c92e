//! Frames of the block protocol, `/peerbox/blocks/1`.
//!
//! One long-lived stream per download session. Every frame is
//! `[u32 length, big-endian][u8 tag][payload]`, where `length` counts tag and
//! payload. The header alone decides whether a frame is acceptable (known tag,
//! length under that tag's cap), so nothing is allocated for a frame we will refuse.
//!
//! ```text
//! client                         sharer
//!   Open{id, secret, proof?} ─▶
//!                         ◀─     ManifestPart* ManifestEnd  (or Refused, then close)
//!   Get{req, file, block}*─▶     (many in flight)
//!                         ◀─     Block{req, data} | Missing{req, reason}
//! ```
//!
//! Block payloads are raw bytes after a 4-byte request id, never serialised, so the
//! hot path copies nothing it does not have to.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::manifest::{Entry, MAX_BLOCK_SIZE};

/// The protocol name, negotiated by multistream-select.
pub const PROTOCOL: &str = "/peerbox/blocks/1";
/// Bytes in a frame header: length and tag.
pub const HEADER_LEN: usize = 5;
/// Largest non-block frame. A manifest travels in parts under this cap.
pub const MAX_CONTROL_FRAME: u32 = 1 << 20;
/// Largest block frame: a maximal block, its request id and the tag.
pub const MAX_BLOCK_FRAME: u32 = MAX_BLOCK_SIZE + 4 + 1;
/// Target encoded size of one manifest part.
pub const MANIFEST_PART_BYTES: usize = 256 * 1024;

/// Frame tags. Values are wire format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// Client: open a share.
    Open = 1,
    /// Client: request one block.
    Get = 2,
    /// Sharer: some manifest entries.
    ManifestPart = 16,
    /// Sharer: the manifest is complete.
    ManifestEnd = 17,
    /// Sharer: the share cannot be opened.
    Refused = 18,
    /// Sharer: one block's bytes.
    Block = 19,
    /// Sharer: a block cannot be served.
    Missing = 20,
}

impl Tag {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Open,
            2 => Self::Get,
            16 => Self::ManifestPart,
            17 => Self::ManifestEnd,
            18 => Self::Refused,
            19 => Self::Block,
            20 => Self::Missing,
            _ => return None,
        })
    }

    fn max_len(self) -> u32 {
        match self {
            Self::Block => MAX_BLOCK_FRAME,
            _ => MAX_CONTROL_FRAME,
        }
    }
}

/// A frame that cannot be accepted. Any of these ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Tag we do not know.
    #[error("unknown frame type {0}")]
    UnknownTag(u8),
    /// Length over the cap for its tag (checked before allocating).
    #[error("frame of {len} bytes exceeds the limit of {max} for {tag:?}")]
    TooLong {
        /// The tag.
        tag: Tag,
        /// Declared length.
        len: u32,
        /// Allowed length.
        max: u32,
    },
    /// Zero length: not even a tag.
    #[error("empty frame")]
    Empty,
    /// A frame the receiving side never expects (a client sending `Block`).
    #[error("unexpected {0:?} frame")]
    Unexpected(Tag),
    /// Payload does not decode.
    #[error("malformed {0:?} frame")]
    Malformed(Tag),
}

/// Parses a header; returns the tag and the payload length that follows.
pub fn parse_header(h: [u8; HEADER_LEN]) -> Result<(Tag, usize), FrameError> {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let tag = Tag::from_u8(h[4]).ok_or(FrameError::UnknownTag(h[4]))?;
    if len > tag.max_len() {
        return Err(FrameError::TooLong { tag, len, max: tag.max_len() });
    }
    Ok((tag, len as usize - 1))
}

/// Why a share was not opened. `Unknown` covers unknown, revoked and forged links
/// alike, so a stranger learns nothing about what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No such share for this secret (unknown, revoked or forged).
    Unknown,
    /// The link has expired.
    Expired,
    /// The sharer is serving as many sessions as it allows.
    Busy,
    /// The link takes a password, and none or a wrong one came.
    WrongPassword,
    /// Too many wrong passwords for this link lately; wait before trying again.
    TooManyAttempts,
    /// The link was opened by as many devices as its owner allowed.
    UsedUp,
}

/// Why a single block could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingReason {
    /// The file changed on the sharer's disk since it was shared.
    Changed,
    /// The sharer could not read it.
    Unreadable,
    /// No such file or block in this share.
    OutOfRange,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// Open the share with content id `id` using `secret`.
    Open {
        /// Content id from the link.
        id: [u8; 32],
        /// Secret from the link.
        secret: [u8; 32],
        /// For a link with a password: `link::password_proof`.
        proof: Option<[u8; 32]>,
    },
    /// Request block `block` of manifest file `file` (index among all entries).
    Get {
        /// Client-chosen id echoed in the answer.
        req: u32,
        /// Entry index in the manifest.
        file: u32,
        /// Block index within the file.
        block: u32,
    },
}

/// Messages a sharer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// Some manifest entries, in order.
    ManifestPart(Vec<Entry>),
    /// The manifest is complete with this many entries.
    ManifestEnd {
        /// Total entries sent.
        entries: u64,
    },
    /// The share was not opened.
    Refused(Refusal),
    /// Block data answering `req`.
    Block {
        /// The request id.
        req: u32,
        /// The bytes, unverified.
        data: Bytes,
    },
    /// `req` cannot be served.
    Missing {
        /// The request id.
        req: u32,
        /// Why.
        reason: MissingReason,
    },
}

#[derive(Serialize, Deserialize)]
struct OpenWire {
    id: [u8; 32],
    secret: [u8; 32],
    proof: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct MissingWire {
    req: u32,
    reason: MissingReason,
}

fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    out.push(tag as u8);
    out.extend_from_slice(payload);
    out
}

impl ClientMsg {
    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Open { id, secret, proof } => {
                let p = postcard::to_stdvec(&OpenWire { id: *id, secret: *secret, proof: *proof }).unwrap_or_default();
                frame(Tag::Open, &p)
            }
            Self::Get { req, file, block } => {
                let mut p = [0u8; 12];
                p[..4].copy_from_slice(&req.to_be_bytes());
                p[4..8].copy_from_slice(&file.to_be_bytes());
                p[8..].copy_from_slice(&block.to_be_bytes());
                frame(Tag::Get, &p)
            }
        }
    }

    /// Decodes a payload the sharer received under `tag`.
    pub fn decode(tag: Tag, payload: &[u8]) -> Result<Self, FrameError> {
        match tag {
            Tag::Open => {
                let w: OpenWire = strict(tag, payload)?;
                Ok(Self::Open { id: w.id, secret: w.secret, proof: w.proof })
            }
            Tag::Get => {
                let p: [u8; 12] = payload.try_into().map_err(|_| FrameError::Malformed(tag))?;
                let word = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
                Ok(Self::Get { req: word(0), file: word(4), block: word(8) })
            }
            other => Err(FrameError::Unexpected(other)),
        }
    }
}

impl ServerMsg {
    /// The whole frame for any message but `Block` (use [`block_header`]).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::ManifestPart(entries) => frame(Tag::ManifestPart, &postcard::to_stdvec(entries).unwrap_or_default()),
            Self::ManifestEnd { entries } => frame(Tag::ManifestEnd, &postcard::to_stdvec(entries).unwrap_or_default()),
            Self::Refused(r) => frame(Tag::Refused, &postcard::to_stdvec(r).unwrap_or_default()),
            Self::Block { req, data } => {
                let mut out = block_header(*req, data.len()).to_vec();
                out.extend_from_slice(data);
                out
            }
            Self::Missing { req, reason } => frame(
                Tag::Missing,
                &postcard::to_stdvec(&MissingWire { req: *req, reason: *reason }).unwrap_or_default(),
            ),
        }
    }

    /// Decodes a payload the client received under `tag`.
    pub fn decode(tag: Tag, payload: Bytes) -> Result<Self, FrameError> {
        match tag {
            Tag::ManifestPart => Ok(Self::ManifestPart(strict(tag, &payload)?)),
            Tag::ManifestEnd => Ok(Self::ManifestEnd { entries: strict(tag, &payload)? }),
            Tag::Refused => Ok(Self::Refused(strict(tag, &payload)?)),
            Tag::Block => {
                if payload.len() < 4 {
                    return Err(FrameError::Malformed(tag));
                }
                let req = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                Ok(Self::Block { req, data: payload.slice(4..) })
            }
            Tag::Missing => {
                let w: MissingWire = strict(tag, &payload)?;
                Ok(Self::Missing { req: w.req, reason: w.reason })
            }
            other => Err(FrameError::Unexpected(other)),
        }
    }
}

/// The header of a block frame carrying `len` data bytes: frame header + request id.
pub fn block_header(req: u32, len: usize) -> [u8; HEADER_LEN + 4] {
    let mut h = [0u8; HEADER_LEN + 4];
    h[..4].copy_from_slice(&(len as u32 + 5).to_be_bytes());
    h[4] = Tag::Block as u8;
    h[5..].copy_from_slice(&req.to_be_bytes());
    h
}

/// Decodes a postcard payload and refuses trailing bytes, so each message has
/// exactly one encoding.
fn strict<'a, T: Deserialize<'a>>(tag: Tag, payload: &'a [u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(payload) {
        Ok((v, [])) => Ok(v),
        _ => Err(FrameError::Malformed(tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{EntryKind, FileMeta};

    fn split(frame: &[u8]) -> (Tag, &[u8]) {
        let (tag, len) = parse_header(frame[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - HEADER_LEN);
        (tag, &frame[HEADER_LEN..])
    }

    #[test]
    fn client_messages_round_trip() {
        for m in [
            ClientMsg::Open { id: [1; 32], secret: [2; 32], proof: None },
            ClientMsg::Open { id: [1; 32], secret: [2; 32], proof: Some([3; 32]) },
            ClientMsg::Get { req: 7, file: u32::MAX, block: 3 },
        ] {
            let f = m.encode();
            let (tag, p) = split(&f);
            assert_eq!(ClientMsg::decode(tag, p).unwrap(), m);
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let entry = Entry {
            path: "a/b".into(),
            kind: EntryKind::File(FileMeta {
                size: 1,
                mtime_ns: -5,
                executable: true,
                block_size: 1 << 17,
                blocks: vec![[3; 32]],
            }),
        };
        for m in [
            ServerMsg::ManifestPart(vec![entry, Entry { path: "d".into(), kind: EntryKind::Dir }]),
            ServerMsg::ManifestEnd { entries: 2 },
            ServerMsg::Refused(Refusal::Expired),
            ServerMsg::Refused(Refusal::WrongPassword),
            ServerMsg::Refused(Refusal::UsedUp),
            ServerMsg::Block { req: 9, data: Bytes::from_static(b"hello") },
            ServerMsg::Block { req: 1, data: Bytes::new() },
            ServerMsg::Missing { req: 4, reason: MissingReason::Changed },
        ] {
            let f = m.encode();
            let (tag, p) = split(&f);
            assert_eq!(ServerMsg::decode(tag, Bytes::copy_from_slice(p)).unwrap(), m);
        }
    }

    #[test]
    fn headers_are_checked_before_allocation() {
        assert_eq!(
            parse_header([0xff, 0xff, 0xff, 0xff, 19]).unwrap_err(),
            FrameError::TooLong { tag: Tag::Block, len: u32::MAX, max: MAX_BLOCK_FRAME }
        );
        assert!(matches!(parse_header([0, 0x20, 0, 0, 16]), Err(FrameError::TooLong { .. })));
        assert_eq!(parse_header([0, 0, 0, 0, 1]), Err(FrameError::Empty));
        assert_eq!(parse_header([0, 0, 0, 1, 99]), Err(FrameError::UnknownTag(99)));
    }

    #[test]
    fn wrong_direction_and_garbage_are_refused() {
        assert_eq!(ClientMsg::decode(Tag::Block, b"x"), Err(FrameError::Unexpected(Tag::Block)));
        assert_eq!(ServerMsg::decode(Tag::Get, Bytes::new()), Err(FrameError::Unexpected(Tag::Get)));
        assert_eq!(ClientMsg::decode(Tag::Get, &[0; 11]), Err(FrameError::Malformed(Tag::Get)));
        assert_eq!(ServerMsg::decode(Tag::Block, Bytes::from_static(b"abc")), Err(FrameError::Malformed(Tag::Block)));
        // A valid encoding followed by junk is refused, not half-read.
        let mut f = ServerMsg::Refused(Refusal::Busy).encode();
        f.push(0);
        assert!(ServerMsg::decode(Tag::Refused, Bytes::copy_from_slice(&f[HEADER_LEN..])).is_err());
    }
}
