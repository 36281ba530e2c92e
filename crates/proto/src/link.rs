//! Share links: `peerbox://` followed by a base58 payload.
//!
//! The payload carries what a recipient needs to find and open a share without any
//! server: kind, the content (or folder) id, the sharer's PeerId and address hints,
//! a capability secret, rights and an optional expiry, then a 4-byte checksum so a
//! mistyped or truncated link is told apart from a forged one. Base58 keeps links
//! copy-paste safe: no `0OIl`, no punctuation that chat apps break lines at.
//!
//! The secret travels only inside the encrypted libp2p channel; the sharer stores
//! only its hash ([`secret_hash`]).

use sha2::{Digest, Sha256};

/// The URL scheme, with its separator.
pub const SCHEME: &str = "peerbox://";
/// Longest link we try to decode. Base58 decoding is quadratic, so the cap comes
/// before any work. Real links are a few hundred characters.
pub const MAX_LINK_CHARS: usize = 4096;
/// Most address hints a link carries.
pub const MAX_ADDRS: usize = 8;
/// Longest single address hint (a multiaddr in binary form), in bytes.
pub const MAX_ADDR_BYTES: usize = 256;
/// Longest PeerId in binary form, in bytes (an identity-hashed Ed25519 key is 38).
pub const MAX_PEER_BYTES: usize = 64;

const VERSION: u8 = 1;
const FLAG_READ_ONLY: u8 = 0b01;
const FLAG_EXPIRES: u8 = 0b10;
const CHECKSUM_LEN: usize = 4;

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A fixed set of files and folders, by content id.
    Files,
    /// A shared folder, by folder id.
    Folder,
}

/// A decoded link. Holding one means holding its secret: treat it like a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    /// What the link opens.
    pub kind: LinkKind,
    /// The content id (SHA-256 of the manifest) or the folder id.
    pub id: [u8; 32],
    /// The sharer's PeerId in binary form (validated by the network layer).
    pub peer: Vec<u8>,
    /// Multiaddrs in binary form where the sharer was listening. Hints only.
    pub addrs: Vec<Vec<u8>>,
    /// The capability secret.
    pub secret: [u8; 32],
    /// Whether holders may only read.
    pub read_only: bool,
    /// Unix time (seconds) after which the link stops working.
    pub expires: Option<u64>,
}

impl std::fmt::Debug for Link {
    // The secret must never end up in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("kind", &self.kind)
            .field("id", &hex::encode(self.id))
            .field("addrs", &self.addrs.len())
            .field("read_only", &self.read_only)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a link could not be read. Messages are for a person holding the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Does not start with `peerbox://`.
    #[error("not a Peerbox link (it should start with {SCHEME})")]
    NotALink,
    /// Longer than [`MAX_LINK_CHARS`].
    #[error("link is too long to be a Peerbox link")]
    TooLong,
    /// Characters outside base58.
    #[error("link contains characters that cannot appear in a Peerbox link; was it copied whole?")]
    BadCharacters,
    /// Checksum mismatch: a character changed, or part of the link is missing.
    #[error("link is damaged or incomplete (checksum mismatch); copy it again from the sender")]
    Damaged,
    /// Structurally invalid despite a good checksum, or a newer version.
    #[error("link is malformed: {0}")]
    Malformed(&'static str),
    /// Made by a newer Peerbox.
    #[error("link was made by a newer Peerbox (format {0}); update Peerbox to open it")]
    UnsupportedVersion(u8),
}

impl Link {
    /// Encodes the link as `peerbox://…`.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(128);
        out.push(VERSION);
        out.push(match self.kind {
            LinkKind::Files => 0,
            LinkKind::Folder => 1,
        });
        let mut flags = 0;
        if self.read_only {
            flags |= FLAG_READ_ONLY;
        }
        if self.expires.is_some() {
            flags |= FLAG_EXPIRES;
        }
        out.push(flags);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.secret);
        if let Some(e) = self.expires {
            out.extend_from_slice(&e.to_be_bytes());
        }
        push_short(&mut out, &self.peer);
        let addrs: Vec<&Vec<u8>> = self.addrs.iter().filter(|a| a.len() <= MAX_ADDR_BYTES).take(MAX_ADDRS).collect();
        out.push(addrs.len() as u8);
        for a in addrs {
            push_short(&mut out, a);
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum[..CHECKSUM_LEN]);
        format!("{SCHEME}{}", bs58::encode(out).into_string())
    }

    /// Decodes a link, tolerating surrounding whitespace and `<>` that mail clients
    /// add. Never panics; every length is checked before it is used.
    pub fn decode(s: &str) -> Result<Self, LinkError> {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        let body = s.strip_prefix(SCHEME).or_else(|| s.strip_prefix("PEERBOX://")).ok_or(LinkError::NotALink)?;
        let body = body.trim_end_matches('/');
        if body.len() > MAX_LINK_CHARS {
            return Err(LinkError::TooLong);
        }
        let raw = bs58::decode(body).into_vec().map_err(|_| LinkError::BadCharacters)?;
        if raw.len() < CHECKSUM_LEN + 3 {
            return Err(LinkError::Damaged);
        }
        let (payload, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
        if Sha256::digest(payload)[..CHECKSUM_LEN] != *sum {
            return Err(LinkError::Damaged);
        }
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != VERSION {
            return Err(LinkError::UnsupportedVersion(version));
        }
        let kind = match r.u8()? {
            0 => LinkKind::Files,
            1 => LinkKind::Folder,
            _ => return Err(LinkError::Malformed("unknown kind")),
        };
        let flags = r.u8()?;
        if flags & !(FLAG_READ_ONLY | FLAG_EXPIRES) != 0 {
            return Err(LinkError::Malformed("unknown flags"));
        }
        let id = r.array()?;
        let secret = r.array()?;
        let expires = if flags & FLAG_EXPIRES != 0 { Some(u64::from_be_bytes(r.array()?)) } else { None };
        let peer = r.short(MAX_PEER_BYTES)?.to_vec();
        if peer.is_empty() {
            return Err(LinkError::Malformed("missing sharer id"));
        }
        let n = r.u8()? as usize;
        if n > MAX_ADDRS {
            return Err(LinkError::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            addrs.push(r.short(MAX_ADDR_BYTES)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err(LinkError::Malformed("trailing bytes"));
        }
        Ok(Self { kind, id, peer, addrs, secret, read_only: flags & FLAG_READ_ONLY != 0, expires })
    }

    /// Whether the link has expired at unix time `now` (seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

/// The hash under which a sharer stores a link's secret. Domain-separated so it is
/// useless as anything but a lookup key.
pub fn secret_hash(secret: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"peerbox link secret v1\0");
    h.update(secret);
    h.finalize().into()
}

/// A length-prefixed (u16, big-endian) byte string.
fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LinkError> {
        if self.0.len() < n {
            return Err(LinkError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, LinkError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], LinkError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn short(&mut self, max: usize) -> Result<&'a [u8], LinkError> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        if n > max {
            return Err(LinkError::Malformed("field too long"));
        }
        self.take(n)
    }
}

/// The DHT key under which devices that have content or folder `id` announce
/// themselves. Hashed, so the DHT never carries the id a link names.
pub fn provide_key(id: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"peerbox/provide/1\0");
    h.update(id);
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Link {
        Link {
            kind: LinkKind::Files,
            id: [7; 32],
            peer: vec![0, 36, 8, 1, 18, 32, 1, 2, 3],
            addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x90]],
            secret: [9; 32],
            read_only: true,
            expires: Some(1_900_000_000),
        }
    }

    #[test]
    fn round_trips() {
        let link = sample();
        let s = link.encode();
        assert!(s.starts_with(SCHEME));
        assert_eq!(Link::decode(&s).unwrap(), link);
        let bare = Link { expires: None, addrs: vec![], read_only: false, ..sample() };
        assert_eq!(Link::decode(&bare.encode()).unwrap(), bare);
        // Mail clients wrap links in <> and add whitespace.
        assert_eq!(Link::decode(&format!("  <{s}>\n")).unwrap(), link);
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let s = sample().encode();
        let alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        for i in SCHEME.len()..s.len() {
            let orig = s.as_bytes()[i] as char;
            let repl = alphabet.chars().find(|c| *c != orig).unwrap();
            let mut t = s.clone();
            t.replace_range(i..=i, &repl.to_string());
            assert!(Link::decode(&t).is_err(), "change at {i} accepted");
        }
    }

    #[test]
    fn truncation_is_caught() {
        let s = sample().encode();
        for cut in SCHEME.len()..s.len() {
            assert!(Link::decode(&s[..cut]).is_err(), "truncated at {cut} accepted");
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(Link::decode("https://x"), Err(LinkError::NotALink));
        assert_eq!(Link::decode("peerbox://0OIl"), Err(LinkError::BadCharacters));
        assert_eq!(Link::decode("peerbox://"), Err(LinkError::Damaged));
        let long = format!("peerbox://{}", "2".repeat(MAX_LINK_CHARS + 1));
        assert_eq!(Link::decode(&long), Err(LinkError::TooLong));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn expiry() {
        let l = sample();
        assert!(!l.is_expired(1_899_999_999));
        assert!(l.is_expired(1_900_000_000));
        assert!(!Link { expires: None, ..l }.is_expired(u64::MAX));
    }
}
