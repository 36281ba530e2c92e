//! File requests: receiving files through a request link into one of this device's
//! folders, and sending files through someone else's.
//!
//! Owner side: [`DropBox`] is the `net` protocol's [`DropTarget`]. It admits a link
//! through the same gate as every other link, puts each drop (a `batch`, perhaps
//! over several sessions) into a new subfolder named after the sender and the time,
//! never replaces a file, and holds the link's size limit across uploads running at
//! once by reserving each file's size before a byte of it moves. Stored files are
//! then scanned like any other change, so members get them.
//!
//! Holder side: [`send_paths`] (files and folders on this machine) and
//! [`send_stream`] (one file arriving as chunks, from the browser through the
//! daemon) send over `/peerbox/drop/1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cap_std::fs::Dir;
use libp2p::{Multiaddr, PeerId};
use peerbox_engine::edit;
use peerbox_engine::folder as disk;
use peerbox_net::Network;
use peerbox_net::drop::{self as wire, DropOpen, DropSession, DropTarget, IncomingFile};
use peerbox_proto::drop::{DropRefusal, PROTOCOL};
use peerbox_proto::index::FolderId;
use peerbox_proto::{Link, LinkKind, RelPath};
use peerbox_store::{FolderMode, FolderRow, LinkTarget};
use serde::Serialize;
use tokio::sync::watch;

use crate::NodeError;
use crate::folders::Folders;
use crate::links::{Denied, Gate};
use crate::live::Live;
use crate::share::{SharedStore, lock};

/// How long a drop's subfolder is remembered for more sessions of the same batch.
const BATCH_TTL: Duration = Duration::from_secs(3600);
/// Batches remembered at once.
const MAX_BATCHES: usize = 1024;
/// How often an open session re-reads its link (revocation takes effect this fast).
const RECHECK: Duration = Duration::from_millis(500);
/// Most files one `send_paths` walks, so a mistaken drop of a huge tree stops.
const MAX_FILES: usize = 100_000;
/// How long finding the owner may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

impl From<Denied> for DropRefusal {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unknown => DropRefusal::Unknown,
            Denied::Expired => DropRefusal::Expired,
            Denied::WrongPassword => DropRefusal::WrongPassword,
            Denied::TooManyAttempts => DropRefusal::TooManyAttempts,
            Denied::UsedUp => DropRefusal::UsedUp,
        }
    }
}

/// A drop: the link, the sender, and the batch it chose.
type BatchKey = (i64, Vec<u8>, [u8; 16]);

/// The owner side of file requests.
pub(crate) struct DropBox {
    store: SharedStore,
    gate: Arc<Gate>,
    folders: Arc<Folders>,
    live: Arc<Live>,
    /// Bytes of files being received, per link: counted against its limit.
    reserved: Mutex<HashMap<i64, u64>>,
    /// (link, sender, batch) → the subfolder its files go in.
    batches: Mutex<HashMap<BatchKey, (String, Instant)>>,
}

impl DropBox {
    pub(crate) fn new(store: SharedStore, gate: Arc<Gate>, folders: Arc<Folders>, live: Arc<Live>) -> Arc<Self> {
        Arc::new(Self {
            store,
            gate,
            folders,
            live,
            reserved: Mutex::new(HashMap::new()),
            batches: Mutex::new(HashMap::new()),
        })
    }

    fn reserve(&self, link: i64, size: u64, limit: Option<u64>) -> Result<(), DropRefusal> {
        let used = lock(&self.store).link(link).ok().flatten().map(|l| l.bytes_used).unwrap_or(0);
        let mut r = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        let held = r.get(&link).copied().unwrap_or(0);
        if let Some(max) = limit {
            let remaining = max.saturating_sub(used).saturating_sub(held);
            if size > remaining {
                return Err(DropRefusal::TooBig { remaining });
            }
        }
        *r.entry(link).or_default() += size;
        Ok(())
    }

    fn release(&self, link: i64, size: u64) {
        let mut r = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = r.get_mut(&link) {
            *held = held.saturating_sub(size);
            if *held == 0 {
                r.remove(&link);
            }
        }
    }

    /// The subfolder for a batch, made on its first file.
    fn subfolder(&self, s: &Session, root: &Dir) -> Result<String, DropRefusal> {
        let key = (s.link, s.peer.to_bytes(), s.batch);
        let mut b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        b.retain(|_, (_, at)| at.elapsed() < BATCH_TTL);
        if let Some((name, _)) = b.get(&key) {
            return Ok(name.clone());
        }
        if b.len() >= MAX_BATCHES
            && let Some(oldest) = b.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
        {
            b.remove(&oldest);
        }
        let want = RelPath::new(&format!("{} {}", s.from, local_time())).map_err(|_| DropRefusal::BadName)?;
        let name = edit::free_name(root, &s.row.path, &want).map_err(|_| DropRefusal::Disk)?;
        edit::new_dir(root, &s.row.path, &name).map_err(|_| DropRefusal::Disk)?;
        b.insert(key, (name.as_str().to_owned(), Instant::now()));
        Ok(name.as_str().to_owned())
    }
}

/// Local wall-clock time as folder names show it: `2026-12-02 10.31.05`.
fn local_time() -> String {
    jiff::ZonedDateTime::now().strftime("%Y-%m-%d %H.%M.%S").to_string()
}

/// The sender's name as a folder name: its own words where they are safe, else
/// "Someone".
fn sender_name(from: &str) -> String {
    let cleaned: String = from
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .take(peerbox_proto::drop::MAX_FROM_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_end_matches('.').trim().to_owned();
    match RelPath::from_local_segments([cleaned.as_str()]) {
        Ok(_) if !cleaned.is_empty() && !cleaned.starts_with(".peerbox") => cleaned,
        _ => "Someone".into(),
    }
}

/// The protocol's door into the box (sessions keep the box alive).
pub(crate) struct DropDoor(pub(crate) Arc<DropBox>);

impl DropTarget for DropDoor {
    fn open(&self, peer: PeerId, o: DropOpen) -> Result<Arc<dyn DropSession>, DropRefusal> {
        let b = &self.0;
        let link = b.gate.admit(&peer, &o.secret, o.proof, LinkTarget::Request(o.folder))?;
        let row = lock(&b.store).folder(&o.folder).ok().flatten().ok_or(DropRefusal::Unknown)?;
        // A folder this device cannot change for the others cannot take files either.
        if !row.read_write || row.mode == FolderMode::ReceiveOnly || row.paused.is_some() {
            return Err(DropRefusal::Disk);
        }
        disk::check_marker(&row.path).map_err(|_| DropRefusal::Disk)?;
        tracing::info!(%peer, "a file request for {:?} opened", row.name);
        Ok(Arc::new(Session {
            owner: b.clone(),
            link: link.id,
            limit: link.max_bytes,
            secret_hash: link.secret_hash,
            peer,
            from: sender_name(&o.from),
            batch: o.batch,
            row,
            checked: Mutex::new((Instant::now(), true)),
        }))
    }
}

struct Session {
    owner: Arc<DropBox>,
    link: i64,
    limit: Option<u64>,
    secret_hash: [u8; 32],
    peer: PeerId,
    from: String,
    batch: [u8; 16],
    row: FolderRow,
    checked: Mutex<(Instant, bool)>,
}

impl DropSession for Session {
    fn name(&self) -> String {
        self.row.name.clone()
    }

    fn remaining(&self) -> Option<u64> {
        let used = lock(&self.owner.store).link(self.link).ok().flatten().map(|l| l.bytes_used).unwrap_or(0);
        let held = self.owner.reserved.lock().unwrap_or_else(|p| p.into_inner()).get(&self.link).copied().unwrap_or(0);
        self.limit.map(|m| m.saturating_sub(used).saturating_sub(held))
    }

    fn still_valid(&self) -> bool {
        let mut c = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if c.0.elapsed() < RECHECK {
            return c.1;
        }
        let valid = match lock(&self.owner.store).link_by_secret_hash(&self.secret_hash) {
            Ok(Some(l)) => l.id == self.link && crate::links::live(&l, peerbox_store::now()),
            _ => false,
        };
        *c = (Instant::now(), valid);
        valid
    }

    fn start_file(&self, path: &str, size: u64) -> Result<Box<dyn IncomingFile>, DropRefusal> {
        let rel = RelPath::new(path).map_err(|_| DropRefusal::BadName)?;
        self.owner.reserve(self.link, size, self.limit)?;
        let started = (|| {
            let root = disk::open_root(&self.row.path).map_err(|_| DropRefusal::Disk)?;
            let sub = self.owner.subfolder(self, &root)?;
            let want = RelPath::new(&format!("{sub}/{}", rel.as_str())).map_err(|_| DropRefusal::BadName)?;
            let incoming = edit::Incoming::start(&root, &self.row.path, &want).map_err(|e| {
                tracing::warn!("cannot receive {want}: {e}");
                DropRefusal::Disk
            })?;
            Ok::<_, DropRefusal>((root, incoming))
        })();
        match started {
            Ok((root, incoming)) => Ok(Box::new(Receiving {
                owner: self.owner.clone(),
                link: self.link,
                size,
                folder: self.row.id,
                folder_name: self.row.name.clone(),
                from: self.from.clone(),
                root_path: self.row.path.clone(),
                root,
                incoming: Some(incoming),
            })),
            Err(r) => {
                self.owner.release(self.link, size);
                Err(r)
            }
        }
    }
}

/// A file arriving through a request link.
struct Receiving {
    owner: Arc<DropBox>,
    link: i64,
    size: u64,
    folder: FolderId,
    folder_name: String,
    from: String,
    root_path: PathBuf,
    root: Dir,
    incoming: Option<edit::Incoming>,
}

impl IncomingFile for Receiving {
    fn write(&mut self, data: &[u8]) -> Result<(), DropRefusal> {
        let Some(i) = self.incoming.as_mut() else { return Err(DropRefusal::Disk) };
        i.write(&self.root_path, data).map_err(|e| {
            tracing::warn!("a file request's upload failed: {e}");
            DropRefusal::Disk
        })
    }

    fn finish(mut self: Box<Self>) -> Result<String, DropRefusal> {
        let Some(i) = self.incoming.take() else { return Err(DropRefusal::Disk) };
        let path = i.finish(&self.root, &self.root_path).map_err(|e| {
            tracing::warn!("cannot store a file request's upload: {e}");
            DropRefusal::Disk
        })?;
        let _ = lock(&self.owner.store).add_link_bytes(self.link, self.size);
        self.owner.release(self.link, self.size);
        self.owner.folders.scan_soon(&self.folder, vec![path.clone()]);
        self.owner.live.notice("drop_received", self.folder_name.clone(), format!("{}: {path}", self.from));
        Ok(path)
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        if let Some(i) = self.incoming.take() {
            i.abort(&self.root);
            self.owner.release(self.link, self.size);
        }
    }
}

/// What sending into a request link did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DropOutcome {
    /// The folder's name as its owner calls it (peer data).
    pub folder: String,
    /// Where each file landed in the owner's folder.
    pub stored: Vec<String>,
    /// Files refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// Whether some refusal was the holder's to fix (too big, bad name, link).
    #[serde(skip)]
    pub bad_input: bool,
    /// Bytes sent.
    pub bytes: u64,
}

/// Progress of a send.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DropProgress {
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Files in all.
    pub files_total: usize,
    /// Files stored.
    pub files_done: usize,
}

fn refused(r: DropRefusal) -> NodeError {
    NodeError::DropRefused(r)
}

/// Opens a session on the owner of request link `link`.
async fn connect(
    net: &Network,
    link: &Link,
    proof: Option<[u8; 32]>,
    from: &str,
    batch: [u8; 16],
) -> Result<(peerbox_net::PeerStream, wire::DropOpened), NodeError> {
    if link.kind != LinkKind::Request {
        return Err(NodeError::LinkUnusable("this link does not take files; it is for downloading or joining".into()));
    }
    if link.is_expired(peerbox_store::now()) {
        return Err(NodeError::LinkUnusable("this link has expired; ask its owner for a new one".into()));
    }
    if link.password && proof.is_none() {
        return Err(NodeError::PasswordNeeded);
    }
    let peer = PeerId::from_bytes(&link.peer)
        .map_err(|_| NodeError::LinkUnusable("the link names an invalid owner id".into()))?;
    if peer == net.peer_id() {
        return Err(NodeError::LinkUnusable("this link was made by this device".into()));
    }
    let addrs: Vec<Multiaddr> = link.addrs.iter().filter_map(|a| Multiaddr::try_from(a.clone()).ok()).collect();
    tokio::time::timeout(DIAL_TIMEOUT, net.dial(peer, addrs))
        .await
        .map_err(|_| NodeError::Net(peerbox_net::NetError::Unreachable { peer, reason: "timed out".into() }))??;
    let mut folder = [0u8; 16];
    folder.copy_from_slice(&link.id[..16]);
    crate::get::retry_early(|| async {
        let mut stream = net.open_stream(peer, PROTOCOL).await?;
        let open = DropOpen { folder, secret: link.secret, proof, from: from.to_owned(), batch };
        let opened = wire::open(&mut stream, open).await?.map_err(refused)?;
        Ok((stream, opened))
    })
    .await
}

/// Checks a request link with its owner: the folder's name and what it still takes.
pub(crate) async fn probe(
    net: &Network,
    link: &Link,
    proof: Option<[u8; 32]>,
    from: &str,
) -> Result<wire::DropOpened, NodeError> {
    let (mut stream, opened) = connect(net, link, proof, from, rand::random()).await?;
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    Ok(opened)
}

/// A file on this machine and the path it takes in the upload.
struct Outgoing {
    local: PathBuf,
    path: String,
    size: u64,
}

/// Files under `paths` (files, or folders walked without following links), each
/// at its own name or under its folder's.
/// Files to send, and what was left out with why.
type Walked = (Vec<Outgoing>, Vec<(String, String)>);

fn walk(paths: &[PathBuf]) -> Result<Walked, NodeError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| NodeError::BadPath { path: p.clone(), reason: e.to_string() })?;
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| NodeError::BadPath { path: p.clone(), reason: "the name is not valid UTF-8".into() })?;
        let top = RelPath::from_local_segments([name])
            .map_err(|e| NodeError::BadPath { path: p.clone(), reason: e.to_string() })?;
        if meta.is_file() {
            out.push(Outgoing { local: p.clone(), path: top.as_str().to_owned(), size: meta.len() });
            continue;
        }
        let mut stack = vec![(p.clone(), top)];
        while let Some((dir, rel)) = stack.pop() {
            let mut children: Vec<_> =
                std::fs::read_dir(&dir).map_err(|e| NodeError::io(&dir, e))?.filter_map(|e| e.ok()).collect();
            children.sort_by_key(|c| c.file_name());
            for c in children {
                let shown = c.path().display().to_string();
                let Some(n) = c.file_name().to_str().map(str::to_owned) else {
                    skipped.push((shown, "the name is not valid UTF-8".into()));
                    continue;
                };
                let child = match RelPath::from_local_segments(rel.segments().chain([n.as_str()])) {
                    Ok(r) => r,
                    Err(e) => {
                        skipped.push((shown, e.to_string()));
                        continue;
                    }
                };
                let Ok(m) = std::fs::symlink_metadata(c.path()) else { continue };
                if m.is_dir() {
                    stack.push((c.path(), child));
                } else if m.is_file() {
                    out.push(Outgoing { local: c.path(), path: child.as_str().to_owned(), size: m.len() });
                    if out.len() > MAX_FILES {
                        return Err(NodeError::BadPath {
                            path: p.clone(),
                            reason: format!("more than {MAX_FILES} files; send fewer at once"),
                        });
                    }
                } else {
                    skipped.push((shown, "links and special files are not sent".into()));
                }
            }
        }
    }
    Ok((out, skipped))
}

/// Sends files and folders on this machine through request link `link`.
pub(crate) async fn send_paths(
    net: &Network,
    link: &Link,
    proof: Option<[u8; 32]>,
    from: &str,
    paths: &[PathBuf],
    progress: &watch::Sender<DropProgress>,
) -> Result<DropOutcome, NodeError> {
    let paths: Vec<PathBuf> = paths.to_vec();
    let (files, skipped) =
        tokio::task::spawn_blocking(move || walk(&paths)).await.map_err(|e| NodeError::Internal(e.to_string()))??;
    progress.send_modify(|p| {
        p.files_total = files.len();
        p.total_bytes = files.iter().map(|f| f.size).sum();
    });
    let (mut stream, opened) = connect(net, link, proof, from, rand::random()).await?;
    let mut outcome = DropOutcome { folder: opened.name, refused: skipped, ..Default::default() };
    for f in files {
        let file = tokio::fs::File::open(&f.local).await.map_err(|e| NodeError::io(&f.local, e))?;
        let data = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        let mut sent = |n: u64| progress.send_modify(|p| p.sent_bytes += n);
        match wire::send_file(&mut stream, &f.path, f.size, data, &mut sent).await? {
            Ok(stored) => {
                outcome.stored.push(stored);
                outcome.bytes += f.size;
                progress.send_modify(|p| p.files_done += 1);
            }
            Err(r) => {
                outcome.bad_input |= NodeError::DropRefused(r).is_bad_input();
                outcome.refused.push((f.path.clone(), r.to_string()));
                if r.ends_session() {
                    break;
                }
            }
        }
    }
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    Ok(outcome)
}

/// One file arriving as chunks, for [`send_stream`].
pub(crate) struct StreamedFile {
    /// The drop it belongs to: files of one batch land together.
    pub(crate) batch: [u8; 16],
    /// Its path in the upload.
    pub(crate) path: String,
    /// Its size: exactly this many bytes arrive.
    pub(crate) size: u64,
    /// The bytes.
    pub(crate) chunks: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
}

/// Sends one file through request link `link`. Returns where it landed in the
/// owner's folder.
pub(crate) async fn send_stream(
    net: &Network,
    link: &Link,
    proof: Option<[u8; 32]>,
    from: &str,
    file: StreamedFile,
) -> Result<String, NodeError> {
    let StreamedFile { batch, path, size, chunks } = file;
    let path = path.as_str();
    RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
    let (mut stream, _) = connect(net, link, proof, from, batch).await?;
    let data = futures::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|c| (c.map_err(std::io::Error::other), rx))
    });
    let r = wire::send_file(&mut stream, path, size, Box::pin(data), &mut |_| {}).await;
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    match r {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(r)) => Err(refused(r)),
        Err(e) => Err(NodeError::Incomplete(format!("the upload broke off: {e}"))),
    }
}

/// The drop's id as the browser gives it: 32 hex digits.
pub(crate) fn parse_batch(s: &str) -> Result<[u8; 16], NodeError> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(s, &mut b)
        .map_err(|_| NodeError::BadPath { path: s.into(), reason: "a batch id is 32 hex digits".into() })?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_name_folders_only_with_safe_words() {
        assert_eq!(sender_name("민수의 노트북"), "민수의 노트북");
        assert_eq!(sender_name("a/b\\c"), "a_b_c");
        assert_eq!(sender_name("evil\u{202e}gpj.exe\n"), "evilgpj.exe");
        assert_eq!(sender_name(""), "Someone");
        assert_eq!(sender_name(".peerbox"), "Someone");
        assert_eq!(sender_name("..."), "Someone");
        assert_eq!(sender_name(&"x".repeat(500)).chars().count(), peerbox_proto::drop::MAX_FROM_CHARS);
    }
}
