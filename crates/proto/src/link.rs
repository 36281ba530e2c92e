//! Share links: `peerbox://` followed by a base58 payload.
//!
//! The payload carries what a recipient needs to find and open a share without any
//! server: kind, the content (or folder) id, the sharer's PeerId and address hints,
//! a capability secret, rights and an optional expiry, then a 4-byte checksum so a
//! mistyped or truncated link is told apart from a forged one. Base58 keeps links
//! copy-paste safe: no `0OIl`, no punctuation that chat apps break lines at.
//!
//! The secret travels only inside the encrypted libp2p channel; the sharer stores
//! only its hash ([`secret_hash`]). A link with a password needs more than the link:
//! the holder derives a proof from the secret and the password with Argon2id
//! ([`password_proof`]) and sends that too; the sharer keeps only a hash of the
//! proof, so neither the link nor the sharer's index alone opens it, and every
//! guess costs a round trip to a sharer that counts them.

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
const FLAG_PASSWORD: u8 = 0b100;
const FLAG_SOLE_SOURCE: u8 = 0b1000;
const KNOWN_FLAGS: u8 = FLAG_READ_ONLY | FLAG_EXPIRES | FLAG_PASSWORD | FLAG_SOLE_SOURCE;
const CHECKSUM_LEN: usize = 4;

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A fixed set of files and folders, by content id.
    Files,
    /// A shared folder, by folder id.
    Folder,
    /// A file request: holders may drop files into a folder, never list or read it.
    Request,
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
    /// Opening it also takes a password (see [`password_proof`]).
    pub password: bool,
    /// Only the sharer serves it: recipients must not pass it on (the sharer
    /// limits its uses or guards it with a password, and counts on seeing each).
    pub sole_source: bool,
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
            .field("password", &self.password)
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
            LinkKind::Request => 2,
        });
        let mut flags = 0;
        if self.read_only {
            flags |= FLAG_READ_ONLY;
        }
        if self.expires.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if self.password {
            flags |= FLAG_PASSWORD;
        }
        if self.sole_source {
            flags |= FLAG_SOLE_SOURCE;
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
            2 => LinkKind::Request,
            _ => return Err(LinkError::Malformed("unknown kind")),
        };
        let flags = r.u8()?;
        if flags & !KNOWN_FLAGS != 0 {
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
        Ok(Self {
            kind,
            id,
            peer,
            addrs,
            secret,
            read_only: flags & FLAG_READ_ONLY != 0,
            expires,
            password: flags & FLAG_PASSWORD != 0,
            sole_source: flags & FLAG_SOLE_SOURCE != 0,
        })
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

/// Longest password accepted, in bytes: far past any a person types, short enough
/// that hashing one costs the same as any other.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Nothing typed.
    #[error("the password is empty")]
    Empty,
    /// Over [`MAX_PASSWORD_BYTES`].
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// What the holder of a password-protected link sends besides its secret:
/// Argon2id (19 MiB, 2 passes, the OWASP baseline) of the password, salted with the
/// link's secret. The password is taken in Unicode NFC, so the same word typed on
/// another keyboard (a Korean IME on macOS gives NFD) still opens the link.
pub fn password_proof(secret: &[u8; 32], password: &str) -> Result<[u8; 32], PasswordError> {
    use unicode_normalization::UnicodeNormalization;
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let nfc: String = password.nfc().collect();
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).map_err(|_| PasswordError::TooLong)?;
    let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    kdf.hash_password_into(nfc.as_bytes(), secret, &mut out).map_err(|_| PasswordError::TooLong)?;
    Ok(out)
}

/// The hash under which a sharer keeps a link's password proof.
pub fn proof_hash(proof: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"peerbox link password v1\0");
    h.update(proof);
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
            password: false,
            sole_source: false,
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
        let guarded = Link { kind: LinkKind::Request, password: true, sole_source: true, ..sample() };
        assert_eq!(Link::decode(&guarded.encode()).unwrap(), guarded);
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
    fn password_proofs_depend_on_the_password_the_secret_and_nothing_else() {
        let a = password_proof(&[1; 32], "hunter2").unwrap();
        assert_eq!(a, password_proof(&[1; 32], "hunter2").unwrap());
        assert_ne!(a, password_proof(&[1; 32], "hunter3").unwrap());
        assert_ne!(a, password_proof(&[2; 32], "hunter2").unwrap(), "the secret salts it");
        // "한" typed as one code point (NFC) or as its jamo (NFD) is one password.
        assert_eq!(
            password_proof(&[1; 32], "\u{d55c}").unwrap(),
            password_proof(&[1; 32], "\u{1112}\u{1161}\u{11ab}").unwrap()
        );
        assert_eq!(password_proof(&[1; 32], ""), Err(PasswordError::Empty));
        assert_eq!(password_proof(&[1; 32], &"x".repeat(MAX_PASSWORD_BYTES + 1)), Err(PasswordError::TooLong));
        assert_ne!(proof_hash(&a), a);
    }

    #[test]
    fn expiry() {
        let l = sample();
        assert!(!l.is_expired(1_899_999_999));
        assert!(l.is_expired(1_900_000_000));
        assert!(!Link { expires: None, ..l }.is_expired(u64::MAX));
    }
}
