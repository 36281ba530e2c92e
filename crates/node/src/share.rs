//! Sharing by link: turning local paths into a share and a link, and serving the
//! share's blocks to whoever holds the link.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use libp2p::PeerId;
use peerbox_engine::{HashCache, Scanned, Stamp, stamp_of};
use peerbox_net::blocks::{BlockSource, ShareReader};
use peerbox_proto::blocks::{MissingReason, Refusal};
use peerbox_proto::link::secret_hash;
use peerbox_proto::manifest::{BlockHash, Entry, EntryKind, block_count, block_len, content_id};
use peerbox_store::{LinkRecord, LinkTarget, Share, SharedEntry, Store};

use crate::NodeError;

/// The index, shared between the node's tasks. Calls are short and run on
/// blocking threads.
pub(crate) type SharedStore = Arc<Mutex<Store>>;

pub(crate) fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hashes cached in the index, for files whose stamp is unchanged.
pub(crate) struct StoreCache(pub(crate) SharedStore);

impl HashCache for StoreCache {
    fn get(&self, path: &Path, stamp: Stamp) -> Option<Vec<BlockHash>> {
        lock(&self.0).cached_hashes(path, stamp).ok().flatten().map(|(_, h)| h)
    }
}

/// Builds and records a share of `entries`; returns its content id and label.
pub(crate) fn record_share(store: &SharedStore, scanned: &[Scanned]) -> Result<([u8; 32], String), NodeError> {
    let entries: Vec<Entry> = scanned.iter().map(|s| s.entry.clone()).collect();
    let id = content_id(&entries);
    let tops: Vec<&str> = entries.iter().map(|e| e.path.as_str()).filter(|p| !p.contains('/')).collect();
    let label = match tops.as_slice() {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    };
    let share = Share {
        content_id: id,
        label: label.clone(),
        entries: scanned.iter().map(|s| SharedEntry { entry: s.entry.clone(), local: s.local.clone() }).collect(),
    };
    let mut st = lock(store);
    st.put_share(&share)?;
    for s in scanned {
        if let (Some(local), Some(stamp), EntryKind::File(f)) = (&s.local, s.stamp, &s.entry.kind) {
            st.cache_hashes(local, stamp, f.block_size, &f.blocks)?;
        }
    }
    Ok((id, label))
}

/// Serves what a download from `link` received, under the same link: records the
/// share with the received files behind it and the link's secret hash, so others
/// holding the link can fetch from this device too. Returns whether it serves
/// (not when the received manifest does not hash to the link's id, nor when the
/// link's sharer wants to be its only source).
pub(crate) fn serve_received(
    store: &SharedStore,
    link: &peerbox_proto::Link,
    received: &[(Entry, PathBuf)],
) -> Result<bool, NodeError> {
    if link.sole_source {
        return Ok(false);
    }
    let scanned: Vec<Scanned> = received
        .iter()
        .map(|(entry, path)| Scanned {
            entry: entry.clone(),
            local: matches!(entry.kind, EntryKind::File(_)).then(|| path.clone()),
            stamp: None,
        })
        .collect();
    if content_id(&scanned.iter().map(|s| s.entry.clone()).collect::<Vec<_>>()) != link.id {
        return Ok(false);
    }
    record_share(store, &scanned)?;
    let hash = secret_hash(&link.secret);
    let mut st = lock(store);
    if st.link_by_secret_hash(&hash)?.is_none() {
        st.add_link(&LinkRecord {
            received: true,
            ..LinkRecord::new(LinkTarget::Files(link.id), hash, true, link.expires)
        })?;
    }
    Ok(true)
}

/// Serves shares recorded in the index.
pub(crate) struct StoreSource {
    pub(crate) store: SharedStore,
    pub(crate) gate: Arc<crate::links::Gate>,
    /// Opened shares, so a second downloader does not reload the manifest.
    pub(crate) open: Mutex<HashMap<[u8; 32], Arc<Vec<SharedEntry>>>>,
}

impl BlockSource for StoreSource {
    fn open(
        &self,
        peer: PeerId,
        id: [u8; 32],
        secret: [u8; 32],
        proof: Option<[u8; 32]>,
    ) -> Result<Arc<dyn ShareReader>, Refusal> {
        let link = self.gate.admit(&peer, &secret, proof, LinkTarget::Files(id))?;
        let hash = link.secret_hash;
        let entries = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.get(&id) {
                Some(e) => e.clone(),
                None => {
                    let share = lock(&self.store).share(&id).ok().flatten().ok_or(Refusal::Unknown)?;
                    let e = Arc::new(share.entries);
                    open.insert(id, e.clone());
                    e
                }
            }
        };
        tracing::info!(%peer, "opened share {}", hex::encode(&id[..6]));
        let manifest = entries.iter().map(|e| e.entry.clone()).collect();
        Ok(Arc::new(OpenShare {
            store: self.store.clone(),
            link_id: link.id,
            secret_hash: hash,
            manifest,
            entries,
            files: Mutex::new(HashMap::new()),
            checked: Mutex::new((std::time::Instant::now(), true)),
        }))
    }
}

/// One session's view of a share: the manifest and lazily opened files.
struct OpenShare {
    store: SharedStore,
    link_id: i64,
    secret_hash: [u8; 32],
    manifest: Vec<Entry>,
    entries: Arc<Vec<SharedEntry>>,
    files: Mutex<HashMap<u32, Option<Arc<File>>>>,
    /// When the link was last checked and the answer; revocation takes effect
    /// within [`RECHECK`] without a query per block.
    checked: Mutex<(std::time::Instant, bool)>,
}

/// How often an open session re-checks its link.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

impl OpenShare {
    /// Opens entry `idx` once per session, checking it still is what was shared.
    fn file(&self, idx: u32) -> Option<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&idx) {
            return f.clone();
        }
        let opened = (|| {
            let e = self.entries.get(idx as usize)?;
            let (EntryKind::File(meta), Some(local)) = (&e.entry.kind, &e.local) else { return None };
            let f = File::open(local).ok()?;
            let stamp = stamp_of(&f.metadata().ok()?);
            (stamp.size == meta.size && stamp.mtime_ns == meta.mtime_ns).then(|| Arc::new(f))
        })();
        if opened.is_none() {
            tracing::warn!("shared file #{idx} changed or vanished since it was shared");
        }
        files.insert(idx, opened.clone());
        opened
    }
}

impl ShareReader for OpenShare {
    fn entries(&self) -> &[Entry] {
        &self.manifest
    }

    fn read_block(&self, file: u32, block: u32, buffers: &peerbox_net::Buffers) -> Result<Bytes, MissingReason> {
        let Some(Entry { kind: EntryKind::File(meta), .. }) = self.manifest.get(file as usize) else {
            return Err(MissingReason::OutOfRange);
        };
        if block as u64 >= block_count(meta.size, meta.block_size) {
            return Err(MissingReason::OutOfRange);
        }
        let f = self.file(file).ok_or(MissingReason::Changed)?;
        let len = block_len(meta.size, meta.block_size, block as u64) as usize;
        let mut buf = buffers.take(len);
        peerbox_engine::io::read_at(&f, &mut buf, block as u64 * meta.block_size as u64)
            .map_err(|_| MissingReason::Unreadable)?;
        Ok(buf.freeze())
    }

    fn still_valid(&self) -> bool {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.0.elapsed() < RECHECK {
            return checked.1;
        }
        let valid = match lock(&self.store).link_by_secret_hash(&self.secret_hash) {
            Ok(Some(l)) => l.id == self.link_id && crate::links::live(&l, peerbox_store::now()),
            _ => false,
        };
        *checked = (std::time::Instant::now(), valid);
        valid
    }
}

/// Paths as given on the command line, made absolute and checked to exist.
pub(crate) fn check_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, NodeError> {
    if paths.is_empty() {
        return Err(NodeError::BadPath { path: PathBuf::new(), reason: "nothing to share".into() });
    }
    paths
        .iter()
        .map(|p| {
            let abs = std::path::absolute(p).map_err(|e| NodeError::io(p, e))?;
            match std::fs::metadata(&abs) {
                Ok(m) if m.is_file() || m.is_dir() => Ok(abs),
                Ok(_) => Err(NodeError::BadPath { path: p.clone(), reason: "not a file or folder".into() }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(NodeError::BadPath { path: p.clone(), reason: "no such file or folder".into() })
                }
                Err(e) => Err(NodeError::BadPath { path: p.clone(), reason: e.to_string() }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::{self, Limits};
    use peerbox_engine::NoCache;

    fn shared(dir: &Path) -> (SharedStore, [u8; 32], PathBuf) {
        let store = Arc::new(Mutex::new(Store::open(&dir.join("i.sqlite")).unwrap()));
        let file = dir.join("f.txt");
        std::fs::write(&file, b"hello").unwrap();
        let scanned = peerbox_engine::scan(std::slice::from_ref(&file), &NoCache, &|_| {}).unwrap();
        let (id, _) = record_share(&store, &scanned.entries).unwrap();
        (store, id, file)
    }

    fn source(store: &SharedStore) -> StoreSource {
        StoreSource {
            store: store.clone(),
            gate: Arc::new(links::Gate::new(store.clone())),
            open: Mutex::new(HashMap::new()),
        }
    }

    async fn link(store: &SharedStore, id: [u8; 32], limits: Limits) -> [u8; 32] {
        let m = links::make(store, PeerId::random(), vec![], LinkTarget::Files(id), true, false, limits).await.unwrap();
        peerbox_proto::Link::decode(&m.text).unwrap().secret
    }

    #[tokio::test]
    async fn the_sharer_refuses_expired_revoked_and_unknown_secrets() {
        let d = tempfile::tempdir().unwrap();
        let (store, id, _) = shared(d.path());
        let src = source(&store);
        let peer = PeerId::random();

        let good = link(&store, id, Limits::default()).await;
        assert!(src.open(peer, id, good, None).is_ok());
        assert_eq!(src.open(peer, id, [0; 32], None).err(), Some(Refusal::Unknown));
        assert_eq!(
            src.open(peer, [1; 32], good, None).err(),
            Some(Refusal::Unknown),
            "a secret opens only its own share"
        );

        let expired = [5u8; 32];
        lock(&store).add_link(&LinkRecord::new(LinkTarget::Files(id), secret_hash(&expired), true, Some(1))).unwrap();
        assert_eq!(src.open(peer, id, expired, None).err(), Some(Refusal::Expired));

        let rec = lock(&store).link_by_secret_hash(&secret_hash(&good)).unwrap().unwrap();
        lock(&store).revoke_link(rec.id).unwrap();
        assert_eq!(src.open(peer, id, good, None).err(), Some(Refusal::Unknown));
    }

    #[tokio::test]
    async fn a_file_changed_after_sharing_is_not_served() {
        let d = tempfile::tempdir().unwrap();
        let (store, id, file) = shared(d.path());
        let secret = link(&store, id, Limits::default()).await;
        let reader = source(&store).open(PeerId::random(), id, secret, None).unwrap();
        std::fs::write(&file, b"changed!").unwrap();
        assert_eq!(reader.read_block(0, 0, &Default::default()).err(), Some(MissingReason::Changed));
        assert_eq!(reader.read_block(7, 0, &Default::default()).err(), Some(MissingReason::OutOfRange));
    }
}
