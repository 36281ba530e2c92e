//! File requests, `/peerbox/drop/1`: the holder of a request link sends files into
//! someone's folder without being able to list or read anything in it.
//!
//! Frames share the block protocol's layout (`[u32 len][u8 tag][payload]`) with
//! their own tags. Control payloads are postcard; file data is raw.
//!
//! ```text
//! holder                                  owner
//!   Open{folder, secret, proof?, from, batch} ─▶
//!                                         ◀─ Opened{name, remaining} | Refused
//!   File{path, size}                      ─▶
//!                                         ◀─ Ready | Refused      (e.g. over the size limit)
//!   Data* (exactly `size` bytes)          ─▶
//!   End{sha256}                           ─▶
//!                                         ◀─ Stored{path} | Refused
//!   File… (more files), then close
//! ```
//!
//! The owner answers `File` before any data moves, so an upload over the limit is
//! refused without a byte sent. Uploads of one `batch` (one drop, perhaps over
//! several sessions) land in one new subfolder named after the sender and the time.

use serde::{Deserialize, Serialize};

use crate::blocks::{FrameError, HEADER_LEN, Tag};

/// The protocol name.
pub const PROTOCOL: &str = "/peerbox/drop/1";
/// Largest data frame's payload.
pub const MAX_DATA: usize = 1 << 20;
/// Largest control frame.
pub const MAX_CONTROL: u32 = 16 * 1024;
/// Longest sender name carried (it names a folder on the owner's disk).
pub const MAX_FROM_CHARS: usize = 64;

const TAG_OPEN: u8 = 60;
const TAG_FILE: u8 = 61;
const TAG_DATA: u8 = 62;
const TAG_END: u8 = 63;
const TAG_OPENED: u8 = 70;
const TAG_REFUSED: u8 = 71;
const TAG_READY: u8 = 72;
const TAG_STORED: u8 = 73;

/// Why the owner turned a request or a file away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropRefusal {
    /// No such link (unknown, revoked, forged, for something else).
    Unknown,
    /// The link has expired.
    Expired,
    /// The link takes a password, and none or a wrong one came.
    WrongPassword,
    /// Too many wrong passwords lately.
    TooManyAttempts,
    /// As many devices used the link as its owner allowed.
    UsedUp,
    /// The file would take the link past its size limit.
    TooBig {
        /// Bytes the link still takes.
        remaining: u64,
    },
    /// The file's name or path cannot be stored.
    BadName,
    /// The bytes did not match what the sender said (size or hash).
    Corrupt,
    /// The owner's disk refused the file (full, read-only).
    Disk,
}

impl DropRefusal {
    /// Whether the session can go on with the next file after this.
    pub fn ends_session(self) -> bool {
        !matches!(self, Self::TooBig { .. } | Self::BadName | Self::Disk)
    }
}

impl std::fmt::Display for DropRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str("the owner does not recognise this link: it was revoked, or never valid"),
            Self::Expired => f.write_str("this link has expired; ask its owner for a new one"),
            Self::WrongPassword => f.write_str("wrong password for this link"),
            Self::TooManyAttempts => {
                f.write_str("too many wrong passwords for this link; the owner refuses it for a minute, then try again")
            }
            Self::UsedUp => f.write_str("this link has been used by as many devices as its owner allowed"),
            Self::TooBig { remaining } => {
                write!(f, "the file is larger than this link still takes ({remaining} bytes left)")
            }
            Self::BadName => f.write_str("the owner cannot store a file under this name"),
            Self::Corrupt => f.write_str("the file arrived damaged; send it again"),
            Self::Disk => f.write_str("the owner's disk could not take the file (full or read-only)"),
        }
    }
}

/// What the holder sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropClient {
    /// Open a request link.
    Open {
        /// The folder, from the link.
        folder: [u8; 16],
        /// The link's secret.
        secret: [u8; 32],
        /// For a link with a password: `link::password_proof`.
        proof: Option<[u8; 32]>,
        /// The sender's device name (names the upload's folder; peer data).
        from: String,
        /// Chosen by the sender for one drop: sessions with the same batch land together.
        batch: [u8; 16],
    },
    /// A file follows.
    File {
        /// Its path inside the upload (validated by the owner).
        path: String,
        /// Its size in bytes: exactly this many follow in `Data` frames.
        size: u64,
    },
    /// File bytes.
    Data(bytes::Bytes),
    /// The file is complete.
    End {
        /// SHA-256 of all its bytes.
        sha256: [u8; 32],
    },
}

/// What the owner answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropServer {
    /// The link holds.
    Opened {
        /// The folder's name as its owner calls it.
        name: String,
        /// Bytes the link still takes, if it has a limit.
        remaining: Option<u64>,
    },
    /// Refused (a request, or one file).
    Refused(DropRefusal),
    /// Send the file's bytes.
    Ready,
    /// The file is stored, at this path in the owner's folder.
    Stored {
        /// Path in the folder.
        path: String,
    },
}

#[derive(Serialize, Deserialize)]
struct OpenWire {
    folder: [u8; 16],
    secret: [u8; 32],
    proof: Option<[u8; 32]>,
    from: String,
    batch: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct FileWire {
    path: String,
    size: u64,
}

/// A frame of this protocol, by direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropFrame {
    /// From the holder.
    Client(DropClient),
    /// From the owner.
    Server(DropServer),
}

/// Checks a header; returns the tag and payload length. Data frames may carry
/// [`MAX_DATA`] bytes, everything else [`MAX_CONTROL`].
pub fn parse_header(h: [u8; HEADER_LEN]) -> Result<(u8, usize), FrameError> {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let max = match h[4] {
        TAG_DATA => MAX_DATA as u32 + 1,
        TAG_OPEN | TAG_FILE | TAG_END | TAG_OPENED | TAG_REFUSED | TAG_READY | TAG_STORED => MAX_CONTROL,
        other => return Err(FrameError::UnknownTag(other)),
    };
    if len > max {
        return Err(FrameError::TooLong { tag: Tag::Open, len, max });
    }
    Ok((h[4], len as usize - 1))
}

fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    out.push(tag);
    out.extend_from_slice(payload);
    out
}

fn strict<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(payload) {
        Ok((v, [])) => Ok(v),
        _ => Err(FrameError::Malformed(Tag::Open)),
    }
}

impl DropFrame {
    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Client(DropClient::Open { folder, secret, proof, from, batch }) => frame(
                TAG_OPEN,
                &pc(&OpenWire { folder: *folder, secret: *secret, proof: *proof, from: from.clone(), batch: *batch }),
            ),
            Self::Client(DropClient::File { path, size }) => {
                frame(TAG_FILE, &pc(&FileWire { path: path.clone(), size: *size }))
            }
            Self::Client(DropClient::Data(d)) => frame(TAG_DATA, d),
            Self::Client(DropClient::End { sha256 }) => frame(TAG_END, sha256),
            Self::Server(DropServer::Refused(r)) => frame(TAG_REFUSED, &pc(r)),
            Self::Server(DropServer::Ready) => frame(TAG_READY, &[0]),
            Self::Server(m @ DropServer::Opened { .. }) => frame(TAG_OPENED, &pc(m)),
            Self::Server(m @ DropServer::Stored { .. }) => frame(TAG_STORED, &pc(m)),
        }
    }

    /// Decodes a payload received under `tag`.
    pub fn decode(tag: u8, payload: bytes::Bytes) -> Result<Self, FrameError> {
        let bad = FrameError::Malformed(Tag::Open);
        Ok(match tag {
            TAG_OPEN => {
                let w: OpenWire = strict(&payload)?;
                Self::Client(DropClient::Open {
                    folder: w.folder,
                    secret: w.secret,
                    proof: w.proof,
                    from: w.from,
                    batch: w.batch,
                })
            }
            TAG_FILE => {
                let w: FileWire = strict(&payload)?;
                Self::Client(DropClient::File { path: w.path, size: w.size })
            }
            TAG_DATA => Self::Client(DropClient::Data(payload)),
            TAG_END => Self::Client(DropClient::End { sha256: payload.as_ref().try_into().map_err(|_| bad)? }),
            TAG_REFUSED => Self::Server(DropServer::Refused(strict(&payload)?)),
            TAG_READY if payload.as_ref() == [0] => Self::Server(DropServer::Ready),
            TAG_OPENED | TAG_STORED => {
                let m: DropServer = strict(&payload)?;
                let expected = if tag == TAG_OPENED {
                    matches!(m, DropServer::Opened { .. })
                } else {
                    matches!(m, DropServer::Stored { .. })
                };
                if !expected {
                    return Err(bad);
                }
                Self::Server(m)
            }
            TAG_READY => return Err(bad),
            other => return Err(FrameError::UnknownTag(other)),
        })
    }
}

fn pc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: DropFrame) {
        let e = f.encode();
        let (tag, len) = parse_header(e[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(len, e.len() - HEADER_LEN);
        assert_eq!(DropFrame::decode(tag, bytes::Bytes::copy_from_slice(&e[HEADER_LEN..])).unwrap(), f);
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(DropFrame::Client(DropClient::Open {
            folder: [1; 16],
            secret: [2; 32],
            proof: Some([3; 32]),
            from: "민수의 노트북".into(),
            batch: [4; 16],
        }));
        round_trip(DropFrame::Client(DropClient::File { path: "사진/a.jpg".into(), size: u64::MAX }));
        round_trip(DropFrame::Client(DropClient::Data(bytes::Bytes::from_static(b"abc"))));
        round_trip(DropFrame::Client(DropClient::End { sha256: [9; 32] }));
        round_trip(DropFrame::Server(DropServer::Opened { name: "Team".into(), remaining: Some(5) }));
        round_trip(DropFrame::Server(DropServer::Refused(DropRefusal::TooBig { remaining: 7 })));
        round_trip(DropFrame::Server(DropServer::Ready));
        round_trip(DropFrame::Server(DropServer::Stored { path: "x/y".into() }));
    }

    #[test]
    fn hostile_headers_and_payloads_are_refused() {
        assert!(parse_header([0xff, 0xff, 0xff, 0xff, TAG_DATA]).is_err());
        assert!(parse_header([0, 1, 0, 0, TAG_OPEN]).is_err(), "control frames are small");
        assert!(parse_header([0, 0, 0, 0, TAG_OPEN]).is_err());
        assert!(parse_header([0, 0, 0, 1, 99]).is_err());
        assert!(DropFrame::decode(TAG_END, bytes::Bytes::from_static(&[1; 31])).is_err());
        assert!(DropFrame::decode(TAG_FILE, bytes::Bytes::from_static(&[0xff; 12])).is_err());
        assert!(DropFrame::decode(TAG_READY, bytes::Bytes::from_static(&[1])).is_err());
        // A Stored answer under the Opened tag is not an Opened answer.
        let stored = DropFrame::Server(DropServer::Stored { path: "x".into() }).encode();
        assert!(DropFrame::decode(TAG_OPENED, bytes::Bytes::copy_from_slice(&stored[HEADER_LEN..])).is_err());
    }
}
