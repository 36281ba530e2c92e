//! The links this device makes: creating them with their limits (expiry, password,
//! how many devices, how many bytes), the one gate every presented link passes
//! (file downloads, folder joins, file requests alike), listing them with their
//! uses and state, and revoking them.
//!
//! A link's secret is never stored, only its hash; a password only as the hash of
//! the proof the holder derives from it (`peerbox_proto::link::password_proof`).
//! Wrong passwords are counted per link: past [`MAX_FAILURES`] in [`FAILURE_WINDOW`]
//! the link refuses every attempt until the window has passed, so guessing costs
//! minutes, not microseconds, whoever asks and under whatever identity.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use peerbox_proto::blocks::Refusal;
use peerbox_proto::index::SyncRefusal;
use peerbox_proto::link::{MAX_PASSWORD_BYTES, PasswordError, password_proof, proof_hash, secret_hash};
use peerbox_proto::{Link, LinkKind};
use peerbox_store::{LinkRecord, LinkTarget, LinkUse};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::share::{SharedStore, lock};

/// Wrong passwords a link takes within [`FAILURE_WINDOW`] before it refuses all.
pub(crate) const MAX_FAILURES: usize = 5;
/// The window wrong passwords are counted over.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Links whose failures are remembered at once; the oldest is forgotten first.
const MAX_TRACKED: usize = 4096;
/// Most devices a link may be limited to (a typo of a huge number is refused).
const MAX_USES: u64 = 1_000_000;

/// The limits a user sets on a new link.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Seconds from now until the link stops working.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A password the holder must give too.
    #[serde(default)]
    pub password: Option<String>,
    /// How many devices may use it.
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// File requests: how many bytes may arrive through it in all.
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl Limits {
    /// Unix time the link expires at.
    pub(crate) fn expires(&self) -> Option<u64> {
        self.expires_in.map(|s| peerbox_store::now().saturating_add(s.max(1)))
    }

    fn check(&self) -> Result<(), NodeError> {
        if let Some(n) = self.max_uses
            && !(1..=MAX_USES).contains(&n)
        {
            return Err(NodeError::BadSetting(format!("a link's uses must be between 1 and {MAX_USES}")));
        }
        if self.max_bytes == Some(0) {
            return Err(NodeError::BadSetting("a size limit must be more than 0 bytes".into()));
        }
        match &self.password {
            Some(p) if p.is_empty() => return Err(bad_password(PasswordError::Empty)),
            Some(p) if p.len() > MAX_PASSWORD_BYTES => return Err(bad_password(PasswordError::TooLong)),
            _ => {}
        }
        Ok(())
    }

    /// Whether a recipient may pass the link on (serve what it got to others
    /// holding it): not when the owner wants to see and count every use.
    fn sole_source(&self) -> bool {
        self.password.is_some() || self.max_uses.is_some()
    }
}

/// A link just made: its record and the link text to hand out.
pub(crate) struct Made {
    /// The encoded `peerbox://` link.
    pub(crate) text: String,
}

/// Makes a link to `target` with `limits`; `addrs` are the hints it carries.
pub(crate) async fn make(
    store: &SharedStore,
    me: PeerId,
    addrs: Vec<Vec<u8>>,
    target: LinkTarget,
    read_only: bool,
    approve: bool,
    limits: Limits,
) -> Result<Made, NodeError> {
    limits.check()?;
    let secret: [u8; 32] = rand::random();
    let password_hash = match limits.password.clone() {
        Some(p) => Some(proof_hash(&blocking(move || password_proof(&secret, &p)).await?.map_err(bad_password)?)),
        None => None,
    };
    let expires = limits.expires();
    let record = LinkRecord {
        approve,
        password_hash,
        max_uses: limits.max_uses,
        max_bytes: limits.max_bytes,
        ..LinkRecord::new(target, secret_hash(&secret), read_only, expires)
    };
    lock(store).add_link(&record)?;
    let (kind, id) = match target {
        LinkTarget::Files(id) => (LinkKind::Files, id),
        LinkTarget::Folder(f) => (LinkKind::Folder, pad(f)),
        LinkTarget::Request(f) => (LinkKind::Request, pad(f)),
    };
    let link = Link {
        kind,
        id,
        peer: me.to_bytes(),
        addrs,
        secret,
        read_only,
        expires,
        password: limits.password.is_some(),
        sole_source: limits.sole_source(),
    };
    Ok(Made { text: link.encode() })
}

fn pad(folder: [u8; 16]) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&folder);
    id
}

fn bad_password(e: PasswordError) -> NodeError {
    NodeError::BadSetting(e.to_string())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| NodeError::Internal(e.to_string()))
}

/// What a holder sends for `link`: the password proof, when the link takes one.
/// A link that takes one without a password given, or a password given for a link
/// that takes none, is the holder's mistake and said so.
pub async fn proof_for(link: &Link, password: Option<&str>) -> Result<Option<[u8; 32]>, NodeError> {
    match (link.password, password.filter(|p| !p.is_empty())) {
        (false, None) => Ok(None),
        (false, Some(_)) => Ok(None),
        (true, None) => Err(NodeError::PasswordNeeded),
        (true, Some(p)) => {
            let (secret, p) = (link.secret, p.to_owned());
            Ok(Some(blocking(move || password_proof(&secret, &p)).await?.map_err(bad_password)?))
        }
    }
}

/// Proofs already derived, so a drop of many files (one request each from the
/// browser) pays for Argon2 once. Keyed by a hash of secret and password; bounded.
#[derive(Default)]
pub(crate) struct ProofCache(Mutex<HashMap<[u8; 32], [u8; 32]>>);

/// Proofs remembered at once.
const MAX_PROOFS: usize = 64;

impl ProofCache {
    pub(crate) async fn get(&self, link: &Link, password: Option<&str>) -> Result<Option<[u8; 32]>, NodeError> {
        let Some(p) = password.filter(|p| !p.is_empty() && link.password) else {
            return proof_for(link, password).await;
        };
        let key: [u8; 32] = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(link.secret);
            h.update(p.as_bytes());
            h.finalize().into()
        };
        if let Some(hit) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Some(*hit));
        }
        let proof = proof_for(link, Some(p)).await?;
        if let Some(proof) = proof {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= MAX_PROOFS {
                m.clear();
            }
            m.insert(key, proof);
        }
        Ok(proof)
    }
}

/// What a link says about itself, for a holder deciding what to do with it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkSummary {
    /// files, folder or request.
    pub kind: &'static str,
    /// Holders may only read.
    pub read_only: bool,
    /// Expires at, unix seconds.
    pub expires: Option<u64>,
    /// Already expired.
    pub expired: bool,
    /// Opening it takes a password.
    pub password: bool,
    /// The sharer's device id.
    pub sharer: String,
    /// This device made it.
    pub mine: bool,
}

/// Reads what a link says, without contacting anyone.
pub fn inspect(link: &Link, me: PeerId) -> LinkSummary {
    let sharer = PeerId::from_bytes(&link.peer).ok();
    LinkSummary {
        kind: match link.kind {
            LinkKind::Files => "files",
            LinkKind::Folder => "folder",
            LinkKind::Request => "request",
        },
        read_only: link.read_only,
        expires: link.expires,
        expired: link.is_expired(peerbox_store::now()),
        password: link.password,
        sharer: sharer.map(|p| p.to_string()).unwrap_or_default(),
        mine: sharer == Some(me),
    }
}

/// Why a presented link was turned away. `Unknown` covers unknown, revoked, forged
/// and for-something-else alike, so a stranger learns nothing about what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    Unknown,
    Expired,
    WrongPassword,
    TooManyAttempts,
    UsedUp,
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unknown => Refusal::Unknown,
            Denied::Expired => Refusal::Expired,
            Denied::WrongPassword => Refusal::WrongPassword,
            Denied::TooManyAttempts => Refusal::TooManyAttempts,
            Denied::UsedUp => Refusal::UsedUp,
        }
    }
}

impl From<Denied> for SyncRefusal {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unknown => SyncRefusal::NotAllowed,
            Denied::Expired => SyncRefusal::Expired,
            Denied::WrongPassword => SyncRefusal::WrongPassword,
            Denied::TooManyAttempts => SyncRefusal::TooManyAttempts,
            Denied::UsedUp => SyncRefusal::UsedUp,
        }
    }
}

/// A folder protocol's refusal as the block protocol's, so both read the same to
/// the user and carry the same API code.
pub(crate) fn sync_refusal(r: SyncRefusal) -> Refusal {
    match r {
        SyncRefusal::NotAllowed => Refusal::Unknown,
        SyncRefusal::Expired => Refusal::Expired,
        SyncRefusal::WrongPassword => Refusal::WrongPassword,
        SyncRefusal::TooManyAttempts => Refusal::TooManyAttempts,
        SyncRefusal::UsedUp => Refusal::UsedUp,
    }
}

/// Whether a stored link still opens anything now (not revoked, not expired).
pub(crate) fn live(link: &LinkRecord, now: u64) -> bool {
    !link.revoked && link.expires.is_none_or(|e| now < e)
}

/// The one check every presented link passes.
pub(crate) struct Gate {
    store: SharedStore,
    failures: Mutex<HashMap<i64, VecDeque<Instant>>>,
}

impl Gate {
    pub(crate) fn new(store: SharedStore) -> Self {
        Self { store, failures: Mutex::new(HashMap::new()) }
    }

    /// Admits `peer` holding `secret` (and `proof`) to `target`, counting it as a
    /// use of the link. Blocking (touches the index).
    pub(crate) fn admit(
        &self,
        peer: &PeerId,
        secret: &[u8; 32],
        proof: Option<[u8; 32]>,
        target: LinkTarget,
    ) -> Result<LinkRecord, Denied> {
        let link = match lock(&self.store).link_by_secret_hash(&secret_hash(secret)) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Denied::Unknown),
            Err(e) => {
                tracing::warn!("index error while checking a link: {e}");
                return Err(Denied::Unknown);
            }
        };
        if link.target != target || link.revoked {
            return Err(Denied::Unknown);
        }
        if !live(&link, peerbox_store::now()) {
            return Err(Denied::Expired);
        }
        if let Some(want) = link.password_hash {
            if self.locked_out(link.id) {
                return Err(Denied::TooManyAttempts);
            }
            let ok = proof.is_some_and(|p| constant_time_eq(&proof_hash(&p), &want));
            if !ok {
                self.fail(link.id);
                tracing::info!(%peer, "a wrong password for link {}", link.id);
                return Err(Denied::WrongPassword);
            }
        }
        match lock(&self.store).use_link(link.id, &peer.to_bytes()) {
            Ok(LinkUse::Counted | LinkUse::Again) => Ok(link),
            Ok(LinkUse::UsedUp) => Err(Denied::UsedUp),
            Err(e) => {
                tracing::warn!("index error while counting a link's use: {e}");
                Err(Denied::Unknown)
            }
        }
    }

    fn locked_out(&self, id: i64) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = f.get_mut(&id) else { return false };
        times.retain(|t| t.elapsed() < FAILURE_WINDOW);
        times.len() >= MAX_FAILURES
    }

    fn fail(&self, id: i64) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= MAX_TRACKED && !f.contains_key(&id) {
            let oldest = f.iter().min_by_key(|(_, t)| t.back().copied()).map(|(k, _)| *k);
            if let Some(k) = oldest {
                f.remove(&k);
            }
        }
        let times = f.entry(id).or_default();
        times.push_back(Instant::now());
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A link as `peerbox links` and the drive's Links view show it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkInfo {
    /// Its number, for `peerbox revoke N`.
    pub id: i64,
    /// files, folder or request.
    pub kind: &'static str,
    /// Content or folder id, hex.
    pub target: String,
    /// The share's label or the folder's name (`None`: gone).
    pub label: Option<String>,
    /// Holders may only read.
    pub read_only: bool,
    /// Joining waits for approval.
    pub approve: bool,
    /// Made at, unix seconds.
    pub created: u64,
    /// Expires at, unix seconds.
    pub expires: Option<u64>,
    /// Devices that used it.
    pub uses: u64,
    /// Devices that may.
    pub max_uses: Option<u64>,
    /// Whether it takes a password.
    pub password: bool,
    /// File requests: bytes that arrived, and the most that may.
    pub bytes_used: u64,
    /// File requests: the most bytes that may arrive.
    pub max_bytes: Option<u64>,
    /// active, expired, used-up or revoked.
    pub state: &'static str,
    /// Someone else's link this device serves a download under.
    pub received: bool,
}

/// Every link, newest first.
pub(crate) fn list(store: &SharedStore) -> Result<Vec<LinkInfo>, NodeError> {
    let now = peerbox_store::now();
    let rows = lock(store).links()?;
    Ok(rows
        .into_iter()
        .map(|l| {
            let r = l.link;
            let state = if r.revoked {
                "revoked"
            } else if !live(&r, now) {
                "expired"
            } else if r.max_uses.is_some_and(|m| r.uses >= m) || r.max_bytes.is_some_and(|m| r.bytes_used >= m) {
                "used-up"
            } else {
                "active"
            };
            let (kind, target) = match r.target {
                LinkTarget::Files(id) => ("files", hex::encode(id)),
                LinkTarget::Folder(id) => ("folder", hex::encode(id)),
                LinkTarget::Request(id) => ("request", hex::encode(id)),
            };
            LinkInfo {
                id: r.id,
                kind,
                target,
                label: l.label,
                read_only: r.read_only,
                approve: r.approve,
                created: r.created,
                expires: r.expires,
                uses: r.uses,
                max_uses: r.max_uses,
                password: r.password_hash.is_some(),
                bytes_used: r.bytes_used,
                max_bytes: r.max_bytes,
                state,
                received: r.received,
            }
        })
        .collect())
}

/// Finds the link a user names: its number from `links`, or the link itself.
/// `Ok(None)` when `target` is neither (perhaps a PeerId).
pub(crate) fn find(store: &SharedStore, target: &str) -> Result<Option<LinkRecord>, NodeError> {
    let t = target.trim();
    if !t.is_empty() && t.len() <= 18 && t.bytes().all(|b| b.is_ascii_digit()) {
        let id: i64 = t.parse().map_err(|_| NodeError::LinkUnusable(format!("no link {t}")))?;
        return match lock(store).link(id)? {
            Some(l) => Ok(Some(l)),
            None => Err(NodeError::LinkUnusable(format!("no link {t} (see `peerbox links`)"))),
        };
    }
    if t.to_lowercase().starts_with("peerbox://") {
        let link = Link::decode(t)?;
        return match lock(store).link_by_secret_hash(&secret_hash(&link.secret))? {
            Some(l) => Ok(Some(l)),
            None => Err(NodeError::LinkUnusable("this device did not make that link".into())),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, SharedStore) {
        let d = tempfile::tempdir().unwrap();
        let s = peerbox_store::Store::open(&d.path().join("i.sqlite")).unwrap();
        (d, Arc::new(Mutex::new(s)))
    }

    async fn made(store: &SharedStore, limits: Limits) -> Link {
        let m =
            make(store, PeerId::random(), vec![], LinkTarget::Request([3; 16]), false, false, limits).await.unwrap();
        Link::decode(&m.text).unwrap()
    }

    #[tokio::test]
    async fn a_password_is_needed_wrong_ones_are_counted_and_then_refused_for_a_while() {
        let (_d, store) = store();
        let link = made(&store, Limits { password: Some("열려라 참깨".into()), ..Default::default() }).await;
        assert!(link.password && link.sole_source);
        let gate = Gate::new(store.clone());
        let peer = PeerId::random();
        let target = LinkTarget::Request([3; 16]);
        assert_eq!(gate.admit(&peer, &link.secret, None, target).err(), Some(Denied::WrongPassword));
        let wrong = proof_for(&link, Some("open sesame")).await.unwrap();
        for _ in 1..MAX_FAILURES {
            assert_eq!(gate.admit(&peer, &link.secret, wrong, target).err(), Some(Denied::WrongPassword));
        }
        let right = proof_for(&link, Some("열려라 참깨")).await.unwrap();
        // Past the limit even the right password waits: guessing cannot go on.
        assert_eq!(gate.admit(&peer, &link.secret, right, target).err(), Some(Denied::TooManyAttempts));
        let other = Gate::new(store.clone());
        assert!(other.admit(&peer, &link.secret, right, target).is_ok(), "the right password opens it");
        assert!(matches!(proof_for(&link, None).await, Err(NodeError::PasswordNeeded)));
    }

    #[tokio::test]
    async fn uses_count_devices_and_a_link_opens_only_its_target() {
        let (_d, store) = store();
        let link = made(&store, Limits { max_uses: Some(1), ..Default::default() }).await;
        let gate = Gate::new(store.clone());
        let (a, b) = (PeerId::random(), PeerId::random());
        let target = LinkTarget::Request([3; 16]);
        assert!(gate.admit(&a, &link.secret, None, target).is_ok());
        assert!(gate.admit(&a, &link.secret, None, target).is_ok(), "the same device again");
        assert_eq!(gate.admit(&b, &link.secret, None, target).err(), Some(Denied::UsedUp));
        assert_eq!(gate.admit(&a, &link.secret, None, LinkTarget::Folder([3; 16])).err(), Some(Denied::Unknown));
        assert_eq!(gate.admit(&a, &[0; 32], None, target).err(), Some(Denied::Unknown));
        let listed = list(&store).unwrap();
        assert_eq!((listed[0].uses, listed[0].state), (1, "used-up"));
    }

    #[tokio::test]
    async fn bad_limits_are_refused_and_nothing_is_stored() {
        let (_d, store) = store();
        for bad in [
            Limits { max_uses: Some(0), ..Default::default() },
            Limits { max_bytes: Some(0), ..Default::default() },
            Limits { password: Some(String::new()), ..Default::default() },
        ] {
            let r = make(&store, PeerId::random(), vec![], LinkTarget::Files([1; 32]), true, false, bad).await;
            assert!(matches!(r, Err(NodeError::BadSetting(_))));
        }
        assert!(list(&store).unwrap().is_empty());
    }
}
