//! Shared folders: adding, linking, joining and leaving them, and keeping them in
//! sync while the node runs.
//!
//! Each folder has one task that owns its scans and pulls (so they never race each
//! other), fed by the file watcher (debounced; events only schedule a scan of the
//! paths they name), a periodic full rescan, and one long-polling index task per
//! member. The scanner is the truth about the disk; version vectors decide between
//! versions; a local file that changed since it was scanned is never overwritten.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cap_std::fs::Dir;
use libp2p::{Multiaddr, PeerId};
mod edit;

pub use edit::Added;
use peerbox_engine::folder::{self as disk, ApplyError};
use peerbox_engine::ignores::{IGNORE_FILE, Ignores};
use peerbox_engine::{EngineError, TempFile};
use peerbox_net::Network;
use peerbox_net::sync::{self as proto_sync, BlockAsk, FolderBlock, SyncSource};
use peerbox_proto::index::{
    FolderId, MAX_BATCH, PROTOCOL, Relation, SyncRefusal, SyncRequest, SyncResponse, WireMember, WireRecord, short_id,
};
use peerbox_proto::manifest::{FileMeta, block_len, block_size_for};
use peerbox_proto::{Link, LinkKind, RelPath};
use peerbox_store::{FileRecord, FolderMode, FolderRow, LinkTarget, Member};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::NodeError;
use crate::share::{SharedStore, lock};

/// Debounce for watcher events while a file may still be written (created or
/// modified, not yet closed): long enough to coalesce an editor's save dance,
/// short enough that a change reaches peers well within a second.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The wait instead when every path's last event says its change is complete (a
/// write closed, a rename, a delete): only enough quiet to gather the rest of a
/// burst. Within [`DEBOUNCE`] of the first event, whatever keeps coming.
const SETTLED: Duration = Duration::from_millis(25);
/// How old a scanning folder's counts may be when status is asked. A first scan
/// records a batch every few thousand files, and counting the records after each
/// (tens of ms at 100,000, holding the index the scan writes to) made a view
/// polling status slow the scan down.
const SCANNING_COUNTS_AGE: Duration = Duration::from_secs(1);
/// Full rescans catch whatever the watcher missed.
const FULL_RESCAN: Duration = Duration::from_secs(60);
/// Watcher events queued before we give up on them and rescan everything.
const WATCH_QUEUE: usize = 4096;
/// Blocks requested ahead per source while pulling, at least.
const PULL_WINDOW: usize = 32;
/// Bytes requested ahead per source: small files come as blocks of a few KiB,
/// where 32 of them in flight leave the link idle between round trips.
const PULL_WINDOW_BYTES: u64 = 1 << 20;
/// Blocks requested ahead per source, at most (the sharer takes in as many; see
/// `peerbox_net::sync::QUEUED_ASKS`).
const PULL_WINDOW_MAX: usize = 256;
/// Items of a batch's disk work (temp files made, files put in place) per
/// blocking task, at least.
const DISK_CHUNK_MIN: usize = 64;
/// Batches of blocks verified and written at once per source.
const WRITES_IN_FLIGHT: usize = 4;
/// Bytes of blocks that already arrived taken into one write batch, at most
/// (past one block).
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// Files pulled per batch, bounding temp files and memory per batch (fewer when
/// the open-file limit is low: see `fds`). Two batches are in flight at once.
pub(crate) const PULL_BATCH: usize = 2000;
/// Batches finished per pull before the folder's task looks at its other work.
const PULL_ROUNDS: usize = 8;
/// How long a removed member is not learned back from other members' lists (they
/// hear of the removal within one index exchange; this covers those offline).
const REMOVAL_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// With no file watcher (the system's watch limit was hit), rescans this often.
const WATCHLESS_RESCAN: Duration = Duration::from_secs(10);
/// The first wait before a pull that could not finish is tried again; it doubles
/// to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between tries of a pull that keeps failing (disk full, …).
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Blocks that fail verification before their sender is dropped as a source.
const BAD_BLOCKS_LIMIT: usize = 3;
/// How long a sender of bad blocks stays dropped.
const OFFENDER_TIME: Duration = Duration::from_secs(600);
/// Index records one member may announce in a minute; past this it is cut off for
/// a minute (an honest member's biggest change is a few batches).
const RECORDS_PER_MINUTE: usize = 200_000;
/// Most versions of a file a folder may keep (past this, use a backup tool).
const MAX_KEEP_VERSIONS: u32 = 1000;
/// Fewer live entries than this and the mass-delete guard stays quiet.
const MASS_DELETE_MIN: usize = 10;

/// A folder's patterns and the stamp of the `.peerboxignore` they were read from.
type CachedIgnores = (Option<peerbox_store::FileStamp>, Arc<Ignores>);

/// What the folder tasks share.
pub(crate) struct Folders {
    store: SharedStore,
    gate: Arc<crate::links::Gate>,
    net: Network,
    me: PeerId,
    me_short: u64,
    running: Mutex<HashMap<FolderId, Running>>,
    live: Arc<crate::live::Live>,
    /// Each folder's ignore patterns, with the stamp of the file they came from.
    ignores: Mutex<HashMap<FolderId, CachedIgnores>>,
    /// Members that sent blocks that do not match, and since when: not used as
    /// sources until [`OFFENDER_TIME`] has passed.
    offenders: Mutex<HashMap<Vec<u8>, std::time::Instant>>,
    /// Each folder's counts as `list` last computed them, and from what: a status
    /// call would otherwise load the whole index (every record of every member),
    /// and views ask for status often.
    summaries: Mutex<HashMap<FolderId, (SummaryKey, Summary, std::time::Instant)>>,
    /// One permit per temp file a pull may hold open, all folders together.
    pull_files: Arc<tokio::sync::Semaphore>,
    /// Files per batch: half the permits, so that two batches can be in flight.
    pull_batch: usize,
    /// Download temp files each folder's scans saw: removed once a pull finds
    /// nothing more to do (then none of them can be resumed).
    temps: Mutex<HashMap<FolderId, HashSet<String>>>,
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullEnd {
    /// Nothing more is needed that could be had.
    Done,
    /// More to do, and progress made: pull again soon.
    More,
    /// Failed, or nothing could be done: try again later, less and less often.
    Stuck,
}

/// A batch whose content has been fetched, to be made durable, put in place and
/// recorded (see `FolderTask::finish_batch`).
struct Fetched {
    row: FolderRow,
    root: Arc<Dir>,
    /// The folders of its files, each opened once (see [`disk::make_folders`]).
    folders: Arc<disk::Folders>,
    /// Every path the batch's plan covered: left out of the next plan until this
    /// one is recorded.
    paths: HashSet<String>,
    /// Records already done (deletes, folders, on-demand entries).
    done: Vec<FileRecord>,
    rescan: Vec<String>,
    pulls: Vec<(Action, RelPath, FileMeta, Arc<TempFile>)>,
    timer: std::time::Instant,
    prepared: Duration,
    fetched: Duration,
    /// The batch's share of the open-file budget.
    _open: tokio::sync::OwnedSemaphorePermit,
}

/// What a finished batch changed.
struct Finished {
    /// Records changed.
    changed: usize,
    /// Everything the batch planned was done and recorded.
    whole: bool,
    /// The folder's sequence before and after the batch recorded its changes.
    seqs: Option<(u64, u64)>,
}

/// A pull's plan, worked out from the whole index and taken a batch at a time:
/// working it out reads every record of every member, which for a folder of
/// many small files cost a quarter of a batch's time when done per batch.
struct Plan {
    key: PlanKey,
    /// What is left to do, in order.
    actions: std::collections::VecDeque<Action>,
    /// The blocks this device had when it was made.
    blocks: LocalBlocks,
    /// Every batch taken from it so far was done whole.
    clean: bool,
}

/// What a [`Plan`] was made from: when any of it moves, except by the pull's
/// own commits, the plan is made again.
struct PlanKey {
    row: FolderRow,
    members: Vec<Member>,
    /// How far each member's index has been read.
    heard: Vec<u64>,
    /// This device's sequence.
    seq: u64,
    pins: Pins,
    ignores: Arc<Ignores>,
}

impl PlanKey {
    fn same(&self, other: &Self) -> bool {
        self.row == other.row
            && self.members == other.members
            && self.heard == other.heard
            && self.seq == other.seq
            && self.pins.0 == other.pins.0
            && Arc::ptr_eq(&self.ignores, &other.ignores)
    }

    /// Takes in this pull's own commit, which moved the sequence from `before`
    /// to `after`: if nothing else wrote in between, the plan still holds.
    fn committed(&mut self, seqs: Option<(u64, u64)>) {
        if let Some((before, after)) = seqs
            && before == self.seq
        {
            self.seq = after;
        }
    }
}

/// What a folder's [`Summary`] is computed from, besides its records.
struct SummaryKey {
    generation: u64,
    ignores: Arc<Ignores>,
    pins: Vec<String>,
}

impl SummaryKey {
    fn same(&self, other: &Self) -> bool {
        self.generation == other.generation && Arc::ptr_eq(&self.ignores, &other.ignores) && self.pins == other.pins
    }
}

/// A folder's counts, derived from the index.
#[derive(Clone)]
struct Summary {
    local_files: u64,
    local_bytes: u64,
    need_files: u64,
    need_bytes: u64,
    conflicts: Vec<String>,
    members: Vec<MemberInfo>,
}

struct Running {
    seq: watch::Sender<u64>,
    kick: mpsc::Sender<Kick>,
    state: Arc<Mutex<FolderState>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a folder task is told to do.
#[derive(Debug)]
enum Kick {
    /// Rescan these paths (empty: everything).
    Scan(Vec<String>),
    /// The watcher saw these change.
    Changed(Pending),
    /// Members announced something: pull.
    Pull,
    /// Membership changed: (re)start member tasks.
    Members,
}

/// A folder's state, for `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderState {
    /// idle, scanning, syncing, paused or stopped.
    pub state: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Conflict copies in the folder (made here or by any member).
    pub conflicts: Vec<String>,
    /// Local entries the last scan left out, and why (collisions, bad names, links).
    pub skipped: Vec<String>,
    /// Files being pulled right now.
    pub transfers: Vec<Transfer>,
    /// Moves whenever this device's or a member's index of the folder changes, so a
    /// view knows to list it again (remote-only entries change no count).
    pub revision: u64,
    /// Something working less well than it should (no file watcher, a member
    /// dropped for sending bad blocks).
    pub warnings: Vec<String>,
    /// Whether `error` is a pull's (this disk refused a file): a scan that goes
    /// well does not clear it; a pull that finishes does.
    #[serde(skip)]
    pull_failed: bool,
}

/// A file being pulled.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    /// Path in the folder.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Bytes already verified when the pull started (resumed or reused locally).
    pub had: u64,
    /// Members it comes from.
    pub sources: usize,
}

/// A folder as `status` and `folder list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct FolderInfo {
    /// Hex id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Local path.
    pub path: PathBuf,
    /// Sync mode.
    pub mode: FolderMode,
    /// Whether this device may change it for others.
    pub read_write: bool,
    /// Why it is paused.
    pub paused: Option<String>,
    /// Versions kept of each file replaced by sync.
    pub keep_versions: u32,
    /// Live state.
    pub state: FolderState,
    /// Files present here.
    pub local_files: u64,
    /// Bytes present here.
    pub local_bytes: u64,
    /// Files still to pull.
    pub need_files: u64,
    /// Bytes still to pull.
    pub need_bytes: u64,
    /// Percent complete (bytes).
    pub completion: f64,
    /// Members (PeerIds) and their rights.
    pub members: Vec<MemberInfo>,
}

/// A member as shown.
#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
    /// PeerId.
    pub peer: String,
    /// Read-write or read-only.
    pub read_write: bool,
}

impl Folders {
    pub(crate) fn new(
        store: SharedStore,
        gate: Arc<crate::links::Gate>,
        net: Network,
        live: Arc<crate::live::Live>,
        open_files: u64,
    ) -> Arc<Self> {
        let me = net.peer_id();
        let pull_files = crate::fds::pull_files(open_files);
        Arc::new(Self {
            store,
            gate,
            net,
            me,
            me_short: short_id(&me.to_bytes()),
            running: Mutex::new(HashMap::new()),
            live,
            ignores: Mutex::new(HashMap::new()),
            offenders: Mutex::new(HashMap::new()),
            summaries: Mutex::new(HashMap::new()),
            pull_files: Arc::new(tokio::sync::Semaphore::new(pull_files)),
            pull_batch: pull_files / 2,
            temps: Mutex::new(HashMap::new()),
        })
    }

    /// Drops `peer` as a source for [`OFFENDER_TIME`]: it sent blocks that do not
    /// match their hashes.
    fn drop_offender(&self, folder: &FolderId, peer: &PeerId) {
        tracing::warn!(%peer, "dropped as a source: it sent blocks that do not match");
        self.offenders.lock().unwrap_or_else(|p| p.into_inner()).insert(peer.to_bytes(), std::time::Instant::now());
        let warning = format!(
            "{peer} sent blocks that do not match their hashes; its blocks are refused for {} minutes",
            OFFENDER_TIME.as_secs() / 60
        );
        self.set_state(folder, |s| {
            if !s.warnings.contains(&warning) {
                s.warnings.push(warning);
            }
        });
    }

    /// Whether `peer` is dropped as a source for sending bad blocks.
    fn offends(&self, peer: &[u8]) -> bool {
        let mut o = self.offenders.lock().unwrap_or_else(|p| p.into_inner());
        o.retain(|_, at| at.elapsed() < OFFENDER_TIME);
        o.contains_key(peer)
    }

    /// The folder's ignore patterns, read again only when `.peerboxignore` changed.
    fn ignores(&self, row: &FolderRow) -> Arc<Ignores> {
        let stamp = std::fs::symlink_metadata(row.path.join(IGNORE_FILE)).ok().map(|m| peerbox_engine::stamp_of(&m));
        let mut cache = self.ignores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, ig)) = cache.get(&row.id)
            && *s == stamp
        {
            return ig.clone();
        }
        let ig = Arc::new(Ignores::load(&row.path));
        for p in &ig.problems {
            tracing::warn!("{:?}: {p}", row.name);
        }
        cache.insert(row.id, (stamp, ig.clone()));
        ig
    }

    /// Starts the tasks of every folder in the index.
    pub(crate) fn start_all(self: &Arc<Self>) -> Result<(), NodeError> {
        let folders = lock(&self.store).folders()?;
        for f in folders {
            self.start(f.id);
        }
        Ok(())
    }

    fn start(self: &Arc<Self>, id: FolderId) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&id) {
            return;
        }
        let seq = lock(&self.store).folder_seq(&id).unwrap_or(0);
        let (seq_tx, _) = watch::channel(seq);
        let (kick, kicks) = mpsc::channel(64);
        let state = Arc::new(Mutex::new(FolderState { state: "starting".into(), ..Default::default() }));
        let task = tokio::spawn(FolderTask::run(self.clone(), id, kicks, kick.clone(), state.clone()));
        running.insert(id, Running { seq: seq_tx, kick, state, task });
        // Members find each other through the DHT when their addresses change.
        let net = self.net.clone();
        tokio::spawn(async move {
            let _ = net.provide(peerbox_proto::link::provide_key(&id)).await;
        });
    }

    /// Asks a folder's task to scan `paths` soon (something else changed them).
    pub(crate) fn scan_soon(&self, id: &FolderId, paths: Vec<String>) {
        self.kick(id, Kick::Scan(paths));
    }

    fn kick(&self, id: &FolderId, k: Kick) {
        if let Some(r) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            if matches!(k, Kick::Members) {
                // Members long-polling the index hear of the change at once.
                r.seq.send_modify(|_| {});
            }
            let _ = r.kick.try_send(k);
        }
    }

    fn set_state(&self, id: &FolderId, f: impl FnOnce(&mut FolderState)) {
        if let Some(r) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            f(&mut r.state.lock().unwrap_or_else(|p| p.into_inner()));
        }
        self.live.bump();
    }

    fn publish_seq(&self, id: &FolderId, seq: u64) {
        if let Some(r) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            r.seq.send_replace(seq);
        }
        self.set_state(id, |s| s.revision += 1);
    }

    /// Adds a local folder; returns its id.
    pub(crate) fn add(
        self: &Arc<Self>,
        path: &Path,
        name: Option<String>,
        mode: FolderMode,
    ) -> Result<FolderId, NodeError> {
        let path = self.check_new_path(path)?;
        let id: FolderId = rand::random();
        let name = name.unwrap_or_else(|| path.file_name().and_then(|n| n.to_str()).unwrap_or("folder").to_owned());
        disk::create_marker(&path)?;
        let keep_versions = peerbox_store::DEFAULT_KEEP_VERSIONS;
        lock(&self.store).add_folder(&FolderRow {
            id,
            name,
            path,
            mode,
            read_write: true,
            paused: None,
            keep_versions,
        })?;
        self.start(id);
        Ok(id)
    }

    fn check_new_path(&self, path: &Path) -> Result<PathBuf, NodeError> {
        let bad = |reason: &str| NodeError::BadPath { path: path.to_owned(), reason: reason.into() };
        std::fs::create_dir_all(path).map_err(|e| bad(&e.to_string()))?;
        let path = std::fs::canonicalize(path).map_err(|e| bad(&e.to_string()))?;
        if !path.is_dir() {
            return Err(bad("not a folder"));
        }
        for f in lock(&self.store).folders()? {
            if f.path.starts_with(&path) || path.starts_with(&f.path) {
                return Err(bad(&format!("overlaps the shared folder {:?} at {}", f.name, f.path.display())));
            }
        }
        Ok(path)
    }

    /// Finds a folder by hex id (or unique prefix), name or path.
    pub(crate) fn resolve(&self, key: &str) -> Result<FolderRow, NodeError> {
        let folders = lock(&self.store).folders()?;
        let abs = std::path::absolute(key).ok().and_then(|p| std::fs::canonicalize(p).ok());
        let hits: Vec<FolderRow> = folders
            .into_iter()
            .filter(|f| {
                hex::encode(f.id).starts_with(&key.to_lowercase()) && key.len() >= 4
                    || f.name == key
                    || abs.as_deref() == Some(f.path.as_path())
            })
            .collect();
        match hits.len() {
            1 => Ok(hits.into_iter().next().ok_or_else(|| NodeError::Internal("vanished".into()))?),
            0 => Err(NodeError::BadPath {
                path: key.into(),
                reason: "no such shared folder (see `peerbox folder list`)".into(),
            }),
            _ => {
                Err(NodeError::BadPath { path: key.into(), reason: "more than one folder matches; use its id".into() })
            }
        }
    }

    /// Makes a link to a folder.
    pub(crate) async fn link(
        &self,
        key: &str,
        read_only: bool,
        approve: bool,
        limits: crate::links::Limits,
    ) -> Result<String, NodeError> {
        let f = self.resolve(key)?;
        if !f.read_write && !read_only {
            return Err(NodeError::LinkUnusable(
                "this device has read-only access to the folder; it can only give read-only links".into(),
            ));
        }
        if limits.max_bytes.is_some() {
            return Err(NodeError::BadSetting("a size limit is for file requests, not folder links".into()));
        }
        let addrs = self.net.listen_addrs().await?.iter().map(|a| a.to_vec()).collect();
        let made =
            crate::links::make(&self.store, self.me, addrs, LinkTarget::Folder(f.id), read_only, approve, limits)
                .await?;
        Ok(made.text)
    }

    /// Makes a file-request link to a folder: holders may drop files into it and
    /// nothing more.
    pub(crate) async fn request_link(&self, key: &str, limits: crate::links::Limits) -> Result<String, NodeError> {
        let f = self.writable(key)?;
        let addrs = self.net.listen_addrs().await?.iter().map(|a| a.to_vec()).collect();
        let made =
            crate::links::make(&self.store, self.me, addrs, LinkTarget::Request(f.id), false, false, limits).await?;
        Ok(made.text)
    }

    /// Joins a folder from a link into `path`.
    pub(crate) async fn join(
        self: &Arc<Self>,
        link: &Link,
        proof: Option<[u8; 32]>,
        path: &Path,
        mode: FolderMode,
    ) -> Result<FolderId, NodeError> {
        if link.kind != LinkKind::Folder {
            return Err(NodeError::LinkUnusable(
                "this link shares files, not a folder; download it with `peerbox get`".into(),
            ));
        }
        if link.is_expired(peerbox_store::now()) {
            return Err(NodeError::LinkUnusable("this link has expired; ask the sender for a new one".into()));
        }
        let peer = PeerId::from_bytes(&link.peer)
            .map_err(|_| NodeError::LinkUnusable("the link names an invalid sharer id".into()))?;
        if peer == self.me {
            return Err(NodeError::LinkUnusable("this link was made by this device".into()));
        }
        let mut folder = [0u8; 16];
        folder.copy_from_slice(&link.id[..16]);
        if lock(&self.store).folder(&folder)?.is_some() {
            return Err(NodeError::LinkUnusable("this device already has that folder".into()));
        }
        let existed = path.exists();
        let path = self.check_new_path(path)?;
        let result = self.join_at(link, proof, peer, folder, &path, mode).await;
        if result.is_err() && !existed {
            // Leave no trace of a join that did not happen.
            let _ = std::fs::remove_dir(&path);
        }
        result
    }

    async fn join_at(
        self: &Arc<Self>,
        link: &Link,
        proof: Option<[u8; 32]>,
        peer: PeerId,
        folder: FolderId,
        path: &Path,
        mode: FolderMode,
    ) -> Result<FolderId, NodeError> {
        let path = path.to_owned();
        let addrs: Vec<Multiaddr> = link.addrs.iter().filter_map(|a| Multiaddr::try_from(a.clone()).ok()).collect();
        tokio::time::timeout(Duration::from_secs(30), self.net.dial(peer, addrs.clone()))
            .await
            .map_err(|_| NodeError::Net(peerbox_net::NetError::Unreachable { peer, reason: "timed out".into() }))??;
        // The owner gets bursts of sync streams from the members already in, and
        // a join landing in one can be dropped unread (see `retry_early`). Asking
        // again is safe: a device that is already a member gets the same answer.
        let join = SyncRequest::Join { folder, secret: link.secret, proof };
        let answer = crate::get::retry_early(|| async {
            let mut stream = self.net.open_stream(peer, PROTOCOL).await?;
            Ok::<_, NodeError>(proto_sync::request(&mut stream, join.clone(), Duration::from_secs(30)).await?)
        })
        .await?;
        let (name, read_write, members, pending) = match answer {
            SyncResponse::Joined { name, read_write, members, pending } => (name, read_write, members, pending),
            SyncResponse::Refused(r) => {
                return Err(NodeError::Session(peerbox_net::blocks::SessionError::Refused(
                    crate::links::sync_refusal(r),
                )));
            }
            _ => return Err(NodeError::Internal("unexpected answer to join".into())),
        };
        let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
        disk::create_marker(&path)?;
        // A read-only member cannot send; on-demand stays on-demand.
        let mode = if read_write || mode == FolderMode::OnDemand { mode } else { FolderMode::ReceiveOnly };
        {
            let mut st = lock(&self.store);
            let keep_versions = peerbox_store::DEFAULT_KEEP_VERSIONS;
            st.add_folder(&FolderRow { id: folder, name, path, mode, read_write, paused: None, keep_versions })?;
            st.put_member(&folder, &Member::new(peer.to_bytes(), true, link.addrs.clone()))?;
            for m in members {
                if m.peer != self.me.to_bytes() && m.peer != peer.to_bytes() && PeerId::from_bytes(&m.peer).is_ok() {
                    let introduced_by = Some(peer.to_bytes());
                    st.put_member(&folder, &Member { introduced_by, ..Member::new(m.peer, m.read_write, m.addrs) })?;
                }
            }
        }
        if pending {
            tracing::info!("waiting for the owner to approve this device");
        }
        self.start(folder);
        Ok(folder)
    }

    /// Devices waiting for approval to join this device's folders.
    pub(crate) fn requests(&self) -> Result<Vec<serde_json::Value>, NodeError> {
        let st = lock(&self.store);
        let mut out = Vec::new();
        for r in st.join_requests()? {
            let name = st.folder(&r.folder)?.map(|f| f.name).unwrap_or_default();
            let Ok(peer) = PeerId::from_bytes(&r.peer) else { continue };
            out.push(serde_json::json!({
                "folder": hex::encode(r.folder),
                "folder_name": name,
                "peer": peer.to_string(),
                "read_write": r.read_write,
                "asked_at": r.created,
            }));
        }
        Ok(out)
    }

    /// Approves a waiting device: it becomes a member with the rights its link gave.
    pub(crate) fn approve(&self, key: &str, peer: &PeerId) -> Result<(), NodeError> {
        let f = self.resolve(key)?;
        let req = lock(&self.store)
            .join_requests()?
            .into_iter()
            .find(|r| r.folder == f.id && r.peer == peer.to_bytes())
            .ok_or_else(|| NodeError::BadPath {
                path: peer.to_string().into(),
                reason: "has not asked to join this folder".into(),
            })?;
        {
            let mut st = lock(&self.store);
            let via_link = req.via_link;
            st.put_member(&f.id, &Member { via_link, ..Member::new(req.peer.clone(), req.read_write, vec![]) })?;
            st.clear_member_removal(&f.id, &req.peer)?;
            st.remove_join_request(&f.id, &req.peer)?;
        }
        self.kick(&f.id, Kick::Members);
        Ok(())
    }

    /// Stops syncing a folder and forgets it (its files stay on disk).
    pub(crate) fn leave(&self, key: &str) -> Result<FolderRow, NodeError> {
        let f = self.resolve(key)?;
        if let Some(r) = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&f.id) {
            r.task.abort();
        }
        lock(&self.store).remove_folder(&f.id)?;
        self.summaries.lock().unwrap_or_else(|p| p.into_inner()).remove(&f.id);
        Ok(f)
    }

    /// Resumes a folder paused by the mass-delete guard, accepting the deletes.
    pub(crate) fn resume(&self, key: &str) -> Result<(), NodeError> {
        let f = self.resolve(key)?;
        lock(&self.store).set_paused(&f.id, Some("resuming"))?;
        self.kick(&f.id, Kick::Scan(vec!["!confirm".into()]));
        Ok(())
    }

    /// Removes a member from every folder (or one).
    pub(crate) fn remove_member(&self, peer: &PeerId) -> Result<usize, NodeError> {
        let mut n = 0;
        let folders = lock(&self.store).folders()?;
        for f in folders {
            let members = lock(&self.store).members(&f.id)?;
            if members.iter().any(|m| m.peer == peer.to_bytes()) {
                lock(&self.store).remove_member(&f.id, &peer.to_bytes())?;
                self.kick(&f.id, Kick::Members);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes from their folders the members that came in through link `link_id`
    /// (it was revoked); returns how many.
    pub(crate) fn remove_via_link(&self, link_id: i64) -> Result<usize, NodeError> {
        let mut n = 0;
        let folders = lock(&self.store).folders()?;
        for f in folders {
            let members = lock(&self.store).members(&f.id)?;
            let gone: Vec<&Member> = members.iter().filter(|m| m.via_link == Some(link_id)).collect();
            for m in &gone {
                lock(&self.store).remove_member(&f.id, &m.peer)?;
            }
            if !gone.is_empty() {
                self.kick(&f.id, Kick::Members);
                n += gone.len();
            }
        }
        Ok(n)
    }

    /// Every folder with its state.
    pub(crate) fn list(&self) -> Result<Vec<FolderInfo>, NodeError> {
        let folders = lock(&self.store).folders()?;
        let mut out = Vec::new();
        for f in folders {
            let mut state = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&f.id)
                .map(|r| r.state.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .unwrap_or_default();
            let sum = self.summary(&f, state.state == "scanning")?;
            state.conflicts = sum.conflicts;
            let total = sum.local_bytes + sum.need_bytes;
            out.push(FolderInfo {
                id: hex::encode(f.id),
                name: f.name.clone(),
                path: f.path.clone(),
                mode: f.mode,
                read_write: f.read_write,
                paused: f.paused.clone(),
                keep_versions: f.keep_versions,
                state,
                local_files: sum.local_files,
                local_bytes: sum.local_bytes,
                need_files: sum.need_files,
                need_bytes: sum.need_bytes,
                completion: if total == 0 { 100.0 } else { sum.local_bytes as f64 * 100.0 / total as f64 },
                members: sum.members,
            });
        }
        Ok(out)
    }

    /// A folder's counts: from the cache while nothing they derive from changed,
    /// or, while the folder is `scanning`, for up to [`SCANNING_COUNTS_AGE`].
    fn summary(&self, f: &FolderRow, scanning: bool) -> Result<Summary, NodeError> {
        let pins = Pins::load(f);
        let key = SummaryKey { generation: lock(&self.store).generation(), ignores: self.ignores(f), pins: pins.0 };
        if let Some((k, sum, at)) = self.summaries.lock().unwrap_or_else(|p| p.into_inner()).get(&f.id)
            && (k.same(&key) || scanning && at.elapsed() < SCANNING_COUNTS_AGE)
        {
            return Ok(sum.clone());
        }
        // The local counts come from SQLite, not from the records [`needs`] reads
        // (none, while no member announced any).
        let (generation, (local_files, local_bytes), conflicts, (local, remote), members) = {
            let st = lock(&self.store);
            (
                st.generation(),
                st.local_totals(&f.id)?,
                st.conflict_paths(&f.id)?,
                needs_records(&st, &f.id)?,
                st.members(&f.id)?,
            )
        };
        let pins = Pins(key.pins);
        let plan = needs(f, &local, &remote, &members, self.me_short, &|p| pins.covers(p), &key.ignores);
        let sum = Summary {
            local_files,
            local_bytes,
            need_files: plan.len() as u64,
            need_bytes: plan.iter().filter(|a| !a.remote.deleted).map(|a| a.remote.size).sum(),
            conflicts,
            members: members
                .iter()
                .filter_map(|m| {
                    PeerId::from_bytes(&m.peer)
                        .ok()
                        .map(|p| MemberInfo { peer: p.to_string(), read_write: m.read_write })
                })
                .collect(),
        };
        // Keyed by the generation the records were read at: a write between the
        // two reads only makes the next call compute again.
        let key = SummaryKey { generation, ignores: key.ignores, pins: pins.0 };
        let at = std::time::Instant::now();
        self.summaries.lock().unwrap_or_else(|p| p.into_inner()).insert(f.id, (key, sum.clone(), at));
        Ok(sum)
    }

    /// The entries directly inside `path` ("" for the root) of a folder, as the
    /// drive shows them: from this device's index, plus what members have that
    /// is still to come.
    pub(crate) fn browse(&self, key: &str, path: &str) -> Result<serde_json::Value, NodeError> {
        let f = self.resolve(key)?;
        if !path.is_empty() {
            RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
        }
        let (local, remote, members) = {
            let st = lock(&self.store);
            (st.files(&f.id)?, st.remote_files(&f.id)?, st.members(&f.id)?)
        };
        let pins = Pins::load(&f);
        let ignores = self.ignores(&f);
        let plan = needs(&f, &local, &remote, &members, self.me_short, &|p| pins.covers(p), &ignores);
        let pending: HashMap<&str, &Action> = plan.iter().map(|a| (a.remote.path.as_str(), a)).collect();
        let inside = |p: &str| match p.rsplit_once('/') {
            Some((parent, _)) => parent == path,
            None => path.is_empty(),
        };
        let on_disk_dir =
            || disk::open_root(&f.path).ok().and_then(|r| r.symlink_metadata(path).ok()).is_some_and(|m| m.is_dir());
        let exists = path.is_empty()
            || local.iter().any(|r| r.path == path && r.dir && !r.deleted)
            || plan.iter().any(|a| a.remote.path == path && a.remote.dir && !a.remote.deleted)
            || ignores.is_ignored(path, true) && on_disk_dir();
        if !exists {
            return Err(NodeError::BadPath {
                path: path.into(),
                reason: "no such folder inside this shared folder".into(),
            });
        }
        // In an on-demand folder a directory is "local" only if something in it is.
        let holds_content = |dir: &str| {
            let prefix = format!("{dir}/");
            local.iter().any(|r| r.have && !r.dir && !r.deleted && r.path.starts_with(&prefix))
        };
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        // What the patterns ignore is listed from the disk below, as it is there.
        for r in local.iter().filter(|r| !r.deleted && inside(&r.path) && !ignores.is_ignored(&r.path, r.dir)) {
            seen.insert(r.path.as_str());
            let state = if pending.contains_key(r.path.as_str()) {
                "syncing"
            } else if r.path.contains(".sync-conflict-") {
                "conflict"
            } else if !r.have && !r.dir || r.dir && f.mode == FolderMode::OnDemand && !holds_content(&r.path) {
                "remote"
            } else {
                "local"
            };
            entries.push(entry_json(r, state));
        }
        for a in plan
            .iter()
            .filter(|a| !a.remote.deleted && inside(&a.remote.path) && !seen.contains(a.remote.path.as_str()))
        {
            let state = if f.mode == FolderMode::OnDemand && !a.remote.dir && !pins.covers(&a.remote.path) {
                "remote"
            } else {
                "syncing"
            };
            entries.push(entry_json(&a.remote, state));
        }
        if !ignores.is_empty() {
            entries.extend(ignored_on_disk(&f, path, &ignores));
        }
        let info = self.list()?.into_iter().find(|i| i.id == hex::encode(f.id));
        Ok(serde_json::json!({ "folder": info, "path": path, "entries": entries }))
    }

    /// Files and folders whose name contains `query` (case-insensitive), in every folder.
    pub(crate) fn search(&self, query: &str) -> Result<serde_json::Value, NodeError> {
        let q = query.trim().to_lowercase();
        let mut out = Vec::new();
        if q.is_empty() {
            return Ok(serde_json::json!({ "entries": out }));
        }
        // Collect first: a guard in the `for` head would live through the loop.
        let folders = lock(&self.store).folders()?;
        for f in folders {
            let files = lock(&self.store).files(&f.id)?;
            for r in files.iter().filter(|r| !r.deleted) {
                let name = r.path.rsplit('/').next().unwrap_or(&r.path);
                if name.to_lowercase().contains(&q) {
                    let mut e = entry_json(r, if r.have || r.dir { "local" } else { "remote" });
                    e["folder"] = serde_json::json!(hex::encode(f.id));
                    e["folder_name"] = serde_json::json!(f.name);
                    out.push(e);
                    if out.len() >= 200 {
                        return Ok(serde_json::json!({ "entries": out }));
                    }
                }
            }
        }
        Ok(serde_json::json!({ "entries": out }))
    }

    /// A folder's trash.
    pub(crate) fn trash_list(&self, key: &str) -> Result<Vec<disk::TrashEntry>, NodeError> {
        let f = self.resolve(key)?;
        Ok(disk::trash_list(&f.path)?)
    }

    /// Restores a trashed file; the scanner then announces it as a new version.
    pub(crate) fn trash_restore(&self, key: &str, path: &str, at: Option<&str>) -> Result<(), NodeError> {
        let f = self.resolve(key)?;
        let rel = RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
        disk::trash_restore(&f.path, &rel, at)?;
        self.kick(&f.id, Kick::Scan(vec![rel.as_str().to_owned()]));
        Ok(())
    }

    /// The kept versions of a file.
    pub(crate) fn versions(&self, key: &str, path: &str) -> Result<Vec<disk::VersionEntry>, NodeError> {
        let f = self.resolve(key)?;
        let rel = RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
        Ok(disk::versions(&f.path, &rel)?)
    }

    /// Puts a kept version back (by its number in the list or its time); the
    /// scanner announces it as a new version to the members.
    pub(crate) fn restore_version(&self, key: &str, path: &str, which: &str) -> Result<String, NodeError> {
        let f = self.writable(key)?;
        let rel = RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
        let list = disk::versions(&f.path, &rel)?;
        let at = match which.trim().parse::<usize>() {
            Ok(n) => list.iter().find(|v| v.n == n).map(|v| v.at.clone()),
            Err(_) => list.iter().find(|v| v.at == which.trim()).map(|v| v.at.clone()),
        }
        .ok_or_else(|| NodeError::BadPath {
            path: path.into(),
            reason: format!("no version {which:?} (it has {})", list.len()),
        })?;
        disk::restore_version(&f.path, &rel, &at, f.keep_versions)?;
        self.kick(&f.id, Kick::Scan(vec![rel.as_str().to_owned()]));
        Ok(at)
    }

    /// Sets how many versions of each replaced file a folder keeps.
    pub(crate) fn set_keep_versions(&self, key: &str, keep: u32) -> Result<(), NodeError> {
        if keep > MAX_KEEP_VERSIONS {
            return Err(NodeError::BadSetting(format!(
                "a folder keeps at most {MAX_KEEP_VERSIONS} versions of a file"
            )));
        }
        let f = self.resolve(key)?;
        lock(&self.store).set_keep_versions(&f.id, keep)?;
        self.live.bump();
        Ok(())
    }

    /// Pins a path of an on-demand folder: fetch it and keep it.
    pub(crate) fn fetch(&self, key: &str, path: &str) -> Result<(), NodeError> {
        let f = self.resolve(key)?;
        let rel = RelPath::new(path).map_err(|e| NodeError::BadPath { path: path.into(), reason: e.to_string() })?;
        let pins = f.path.join(disk::MARKER).join("pinned");
        let mut list = std::fs::read_to_string(&pins).unwrap_or_default();
        if !list.lines().any(|l| l == rel.as_str()) {
            list.push_str(rel.as_str());
            list.push('\n');
            std::fs::write(&pins, list).map_err(|e| NodeError::io(&pins, e))?;
        }
        self.kick(&f.id, Kick::Pull);
        Ok(())
    }
}

fn entry_json(r: &FileRecord, state: &str) -> serde_json::Value {
    serde_json::json!({
        "name": r.path.rsplit('/').next().unwrap_or(&r.path),
        "path": r.path,
        "dir": r.dir,
        "size": r.size,
        "mtime_ns": r.mtime_ns,
        "state": state,
    })
}

/// Entries directly inside `dir` of a folder that its patterns ignore, as the disk
/// has them (the index never records them): the drive shows them greyed.
fn ignored_on_disk(f: &FolderRow, dir: &str, ignores: &Ignores) -> Vec<serde_json::Value> {
    let Ok(root) = disk::open_root(&f.path) else { return Vec::new() };
    let listing = if dir.is_empty() { root.entries() } else { root.read_dir(dir) };
    let Ok(listing) = listing else { return Vec::new() };
    let mut out = Vec::new();
    for e in listing.flatten().take(10_000) {
        let Ok(name) = e.file_name().into_string() else { continue };
        let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
        let Ok(rel) = RelPath::from_local_segments(path.split('/')) else { continue };
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_symlink() || !ignores.is_ignored(rel.as_str(), meta.is_dir()) {
            continue;
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        out.push(serde_json::json!({
            "name": rel.file_name(),
            "path": rel.as_str(),
            "dir": meta.is_dir(),
            "size": if meta.is_dir() { 0 } else { meta.len() },
            "mtime_ns": mtime_ns,
            "state": "ignored",
        }));
    }
    out
}

/// Paths of an on-demand folder the user asked to keep (`peerbox fetch`).
struct Pins(Vec<String>);

impl Pins {
    fn load(row: &FolderRow) -> Self {
        let text = std::fs::read_to_string(row.path.join(disk::MARKER).join("pinned")).unwrap_or_default();
        Self(text.lines().map(str::to_owned).collect())
    }

    fn covers(&self, path: &str) -> bool {
        self.0.iter().any(|q| path == q || path.starts_with(&format!("{q}/")))
    }
}

/// A pull the planner decided on.
#[derive(Debug, Clone)]
struct Action {
    remote: FileRecord,
    /// Peers announcing exactly this version with its content.
    sources: Vec<Vec<u8>>,
    local: Option<FileRecord>,
    /// The local version lost a conflict: move it aside first.
    conflict: bool,
}

/// Which of two concurrent versions wins, the same on every device: a change
/// beats a delete, then the later modification time, then the larger device id.
fn remote_wins(remote: &FileRecord, local: &FileRecord) -> bool {
    if remote.deleted != local.deleted {
        return local.deleted;
    }
    (remote.mtime_ns, remote.modified_by) > (local.mtime_ns, local.modified_by)
}

/// Whether two versions of a file hold the same bytes: then they do not
/// conflict, whatever their histories (a pull put in place but not yet recorded
/// when the daemon was killed, the same file copied in on two devices).
fn same_bytes(a: &FileRecord, b: &FileRecord) -> bool {
    !a.deleted
        && !b.deleted
        && !a.dir
        && !b.dir
        && a.size == b.size
        && a.block_size == b.block_size
        && a.blocks == b.blocks
}

/// Whether a member's `remote` record could give this device something to pull,
/// against its `local` one: what [`needs`] would look at, leaving out what
/// depends on the other members, the patterns and the pins.
fn might_take(remote: &FileRecord, local: Option<&FileRecord>) -> bool {
    match local {
        None => !remote.deleted,
        Some(l) => match remote.version.relation(&l.version) {
            Relation::Newer | Relation::Concurrent => true,
            Relation::Equal => !l.have,
            Relation::Older => false,
        },
    }
}

/// This device's records, and its members' with the peer that announced each.
type NeedsRecords = (Vec<FileRecord>, Vec<(Vec<u8>, FileRecord)>);

/// The records [`needs`] compares. Everything needed comes from what members
/// announced: with nothing announced (no member yet, or none that has recorded
/// anything), this device's records are not read out, which after a first scan
/// of 100,000 files would take 0.2 s of CPU.
fn needs_records(st: &peerbox_store::Store, id: &FolderId) -> Result<NeedsRecords, peerbox_store::StoreError> {
    let remote = st.remote_files(id)?;
    let local = if remote.is_empty() { Vec::new() } else { st.files(id)? };
    Ok((local, remote))
}

/// What this device needs from its members. `ignored` names what the folder's
/// patterns leave out: neither fetched nor deleted here.
fn needs(
    folder: &FolderRow,
    local: &[FileRecord],
    remote: &[(Vec<u8>, FileRecord)],
    members: &[Member],
    me: u64,
    pinned: &dyn Fn(&str) -> bool,
    ignores: &Ignores,
) -> Vec<Action> {
    let rw: HashSet<&[u8]> = members.iter().filter(|m| m.read_write).map(|m| m.peer.as_slice()).collect();
    let local: HashMap<&str, &FileRecord> = local.iter().map(|r| (r.path.as_str(), r)).collect();
    let mut best: HashMap<&str, (FileRecord, Vec<Vec<u8>>)> = HashMap::new();
    for (peer, r) in remote {
        // Read-only members' changes are never applied by others.
        if !rw.contains(peer.as_slice()) || ignores.is_ignored(&r.path, r.dir) {
            continue;
        }
        match best.get_mut(r.path.as_str()) {
            None => {
                best.insert(&r.path, (r.clone(), if r.have { vec![peer.clone()] } else { vec![] }));
            }
            Some((b, sources)) => match r.version.relation(&b.version) {
                Relation::Newer => *b = r.clone(),
                Relation::Equal => {
                    if r.have {
                        sources.push(peer.clone());
                    }
                    continue;
                }
                Relation::Concurrent if remote_wins(r, b) => *b = r.clone(),
                _ => continue,
            },
        }
        if let Some((b, sources)) = best.get_mut(r.path.as_str())
            && b.version == r.version
        {
            *sources = if r.have { vec![peer.clone()] } else { vec![] };
        }
    }
    let mut out = Vec::new();
    for (path, (r, sources)) in best {
        let l = local.get(path).copied();
        let (take, conflict) = match l {
            None => (!r.deleted, false),
            Some(l) => match r.version.relation(&l.version) {
                Relation::Newer => (true, false),
                Relation::Concurrent => {
                    let wins = remote_wins(&r, l);
                    (wins, wins && !l.deleted && !l.dir && l.have && l.modified_by == me && !same_bytes(&r, l))
                }
                // Our copy was reverted (read-only) or never fetched (on-demand).
                Relation::Equal => {
                    (!l.have && !r.deleted && !r.dir && (folder.mode != FolderMode::OnDemand || pinned(path)), false)
                }
                Relation::Older => (false, false),
            },
        };
        if take {
            out.push(Action { remote: r, sources, local: l.cloned(), conflict });
        }
    }
    // Directories first (parents before children), then files, deletes last
    // (children before parents).
    out.sort_by(|a, b| {
        let rank = |x: &Action| {
            if x.remote.deleted {
                2
            } else if x.remote.dir {
                0
            } else {
                1
            }
        };
        rank(a).cmp(&rank(b)).then_with(|| {
            if a.remote.deleted { b.remote.path.cmp(&a.remote.path) } else { a.remote.path.cmp(&b.remote.path) }
        })
    });
    out
}

struct FolderTask {
    folders: Arc<Folders>,
    id: FolderId,
    kick: mpsc::Sender<Kick>,
    state: Arc<Mutex<FolderState>>,
    members: HashMap<Vec<u8>, tokio::task::JoinHandle<()>>,
    watch: Option<Arc<FolderWatch>>,
    /// Whether some of the folder goes unwatched (and the user was told so).
    watchless: bool,
    /// When a pull that could not finish is tried again, and the wait after that.
    retry: Option<(tokio::time::Instant, Duration)>,
}

impl FolderTask {
    async fn run(
        folders: Arc<Folders>,
        id: FolderId,
        mut kicks: mpsc::Receiver<Kick>,
        kick: mpsc::Sender<Kick>,
        state: Arc<Mutex<FolderState>>,
    ) {
        let Ok(Some(row)) = lock(&folders.store).folder(&id) else { return };
        let changes = Arc::new(Changes::default());
        let watch = {
            let (root, changes) = (row.path.clone(), changes.clone());
            tokio::task::spawn_blocking(move || FolderWatch::start(&root, changes))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        let mut t = FolderTask {
            folders,
            id,
            kick,
            state,
            members: HashMap::new(),
            watch: None,
            watchless: false,
            retry: None,
        };
        match watch {
            Ok(w) => t.watch = Some(w),
            Err(why) => t.go_watchless(&row.name, &why),
        }
        t.start_members();
        t.scan(None).await;
        t.pull().await;
        let every = t.rescan_every(&row.name);
        let mut rescan = tokio::time::interval(every);
        rescan.tick().await;
        loop {
            let k = tokio::select! {
                k = kicks.recv() => match k { Some(k) => k, None => return },
                _ = changes.wake.notified() => match changes.take() {
                    Some(p) => Kick::Changed(p),
                    None => continue,
                },
                _ = rescan.tick() => Kick::Scan(vec![]),
                () = sleep_until(t.retry.map(|r| r.0)) => {
                    t.retry = t.retry.map(|(_, wait)| (tokio::time::Instant::now() + wait, wait));
                    Kick::Pull
                }
            };
            let mut pending = match k {
                Kick::Scan(paths) => Pending::asked(paths),
                Kick::Changed(p) => p,
                Kick::Pull => {
                    t.pull().await;
                    continue;
                }
                Kick::Members => {
                    t.start_members();
                    continue;
                }
            };
            // Coalesce whatever else arrives before the scan is due.
            let mut pull = false;
            let first = tokio::time::Instant::now();
            let mut latest = first;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(pending.scan_at(first, latest)) => break,
                    _ = changes.wake.notified() => {
                        if let Some(p) = changes.take() {
                            pending.merge(p);
                            latest = tokio::time::Instant::now();
                        }
                    }
                    more = kicks.recv() => match more {
                        Some(Kick::Scan(p)) => pending.merge(Pending::asked(p)),
                        Some(Kick::Changed(p)) => pending.merge(p),
                        Some(Kick::Pull) => pull = true,
                        Some(Kick::Members) => t.start_members(),
                        None => return,
                    },
                }
            }
            let mut all: Vec<String> = pending.paths.into_keys().collect();
            let confirm = all.iter().any(|p| p == "!confirm");
            all.retain(|p| !p.starts_with('!'));
            let full = all.is_empty();
            if confirm {
                let _ = lock(&t.folders.store).set_paused(&t.id, None);
                t.scan_confirmed(if full { None } else { Some(all) }).await;
            } else {
                t.scan(if full { None } else { Some(all) }).await;
            }
            let every = t.rescan_every(&row.name);
            if every != rescan.period() {
                rescan = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            }
            if pull {
                t.pull().await;
            }
        }
    }

    /// Tells the user that changes are no longer seen as they happen, and why.
    fn go_watchless(&mut self, name: &str, why: &str) {
        let warning = format!(
            "not watching for changes ({why}); looking for them every {} s instead",
            WATCHLESS_RESCAN.as_secs()
        );
        tracing::warn!("{name:?}: {warning}");
        self.watchless = true;
        self.set(|s| s.warnings.push(warning));
    }

    /// How often to look for changes the watcher missed: often once some of the
    /// folder is not watched (the system's watch limit was hit by a walk).
    fn rescan_every(&mut self, name: &str) -> Duration {
        if !self.watchless && self.watch.as_ref().is_some_and(|w| w.full.load(std::sync::atomic::Ordering::Relaxed)) {
            self.go_watchless(name, "the system's limit of watched folders was reached");
        }
        if self.watchless { WATCHLESS_RESCAN } else { FULL_RESCAN }
    }

    fn set(&self, f: impl FnOnce(&mut FolderState)) {
        let moved = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let was = s.state.clone();
            f(&mut s);
            s.state != was
        };
        // Scanning → idle, syncing → idle: views show it at once.
        if moved { self.folders.live.settle() } else { self.folders.live.bump() }
    }

    fn row(&self) -> Option<FolderRow> {
        lock(&self.folders.store).folder(&self.id).ok().flatten()
    }

    fn start_members(&mut self) {
        let members = lock(&self.folders.store).members(&self.id).unwrap_or_default();
        let want: HashSet<Vec<u8>> = members.iter().map(|m| m.peer.clone()).collect();
        self.members.retain(|p, h| {
            let keep = want.contains(p);
            if !keep {
                h.abort();
            }
            keep
        });
        for m in members {
            if self.members.contains_key(&m.peer) {
                continue;
            }
            let Ok(peer) = PeerId::from_bytes(&m.peer) else { continue };
            let h = tokio::spawn(member_task(self.folders.clone(), self.id, peer, self.kick.clone()));
            self.members.insert(m.peer, h);
        }
    }

    async fn scan(&mut self, scope: Option<Vec<String>>) {
        self.scan_inner(scope, false).await
    }

    async fn scan_confirmed(&mut self, scope: Option<Vec<String>>) {
        self.scan_inner(scope, true).await
    }

    async fn scan_inner(&mut self, scope: Option<Vec<String>>, confirmed: bool) {
        let Some(row) = self.row() else { return };
        if row.paused.as_deref().is_some_and(|p| p.starts_with("paused")) && !confirmed {
            return;
        }
        self.set(|s| s.state = "scanning".into());
        let folders = self.folders.clone();
        let id = self.id;
        let started = std::time::Instant::now();
        let watch = self.watch.clone();
        let result =
            tokio::task::spawn_blocking(move || scan_blocking(&folders, &row, id, scope, confirmed, watch.as_deref()))
                .await;
        tracing::debug!(folder = %hex::encode(self.id), "scan took {:?}", started.elapsed());
        match result {
            Ok(Ok(ScanReport::Done { seq })) => {
                if let Some(seq) = seq {
                    self.folders.publish_seq(&self.id, seq);
                }
                self.set(|s| {
                    s.state = "idle".into();
                    if !s.pull_failed {
                        s.error = None;
                    }
                });
            }
            Ok(Ok(ScanReport::Paused(why))) => {
                tracing::warn!("{why}");
                self.set(|s| {
                    s.state = "paused".into();
                    s.error = Some(why);
                });
            }
            Ok(Err(e)) => {
                tracing::warn!("scan failed: {e}");
                self.set(|s| {
                    s.state = "stopped".into();
                    s.error = Some(e.to_string());
                });
            }
            Err(e) => tracing::warn!("scan task failed: {e}"),
        }
    }

    async fn pull(&mut self) {
        let end = self.pull_rounds().await;
        // What could not be finished (a full disk, a source gone or dropped) is
        // tried again later, less and less often; a finished pull stops that.
        if end == PullEnd::Done {
            self.set(|s| {
                if s.pull_failed {
                    s.pull_failed = false;
                    s.error = None;
                }
            });
            self.remove_stale_temps().await;
        }
        self.retry = match end {
            PullEnd::Done => None,
            // Straight on, once the task has seen to whatever else is waiting.
            PullEnd::More => Some((tokio::time::Instant::now(), RETRY_FIRST)),
            PullEnd::Stuck => {
                let wait = self.retry.map(|r| (r.1 * 2).min(RETRY_MAX)).unwrap_or(RETRY_FIRST);
                Some((tokio::time::Instant::now() + wait, wait))
            }
        };
    }

    /// Removes the temp files this folder's scans saw, now that no pull needs
    /// them: left by a pull stopped (a crash, a kill) before a newer version
    /// replaced the one it was for, they would otherwise stay forever.
    async fn remove_stale_temps(&self) {
        let Some(temps) = self.folders.temps.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id) else {
            return;
        };
        let Some(row) = self.row() else { return };
        let removed = tokio::task::spawn_blocking(move || {
            let Ok(root) = disk::open_root(&row.path) else { return 0 };
            temps.iter().filter(|rel| peerbox_engine::download::remove_stale_temp(&root, rel)).count()
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            tracing::info!(folder = %hex::encode(self.id), "removed {removed} temp files no pull needs");
        }
    }

    /// Pulls in rounds, until nothing more is needed that could be had or
    /// [`PULL_ROUNDS`] batches are done.
    async fn pull_rounds(&self) -> PullEnd {
        // Before planning: a journal entry from before a crash says what is really
        // on disk, and a new pull of the same path would overwrite it.
        if let Some(row) = self.row() {
            match settle_landings(&self.folders, &row, &self.id) {
                Ok(Some(seq)) => self.folders.publish_seq(&self.id, seq),
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot settle the pulls put in place before a stop: {e}"),
            }
        }
        // A batch's content is fetched while the one before it is made durable and
        // put in place: those steps wait on the disk, fetching waits on the network.
        let mut fetched: Option<Fetched> = None;
        let mut plan: Option<Plan> = None;
        // A batch that changed nothing: nothing more can be done now.
        let mut stalled = false;
        for _round in 0..=PULL_ROUNDS {
            let next = if stalled { None } else { self.plan_batch(&mut plan, fetched.as_ref()) };
            let (finished, next) = match (fetched.take(), next) {
                (None, None) => {
                    self.set(|s| s.state = "idle".into());
                    // Members announcing news wake us, and a retry comes later.
                    return if stalled { PullEnd::Stuck } else { PullEnd::Done };
                }
                (None, Some((row, batch, blocks))) => (None, Some(self.fetch_batch(&row, batch, blocks).await)),
                (Some(f), None) => (Some(self.finish_batch(f).await), None),
                (Some(f), Some((row, batch, blocks))) => {
                    let (done, next) = tokio::join!(self.finish_batch(f), self.fetch_batch(&row, batch, blocks));
                    (Some(done), Some(next))
                }
            };
            let failed = match (finished, next) {
                (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e),
                (finished, next) => {
                    if let (Some(Ok(f)), Some(p)) = (&finished, &mut plan) {
                        p.key.committed(f.seqs);
                        p.clean &= f.whole;
                    }
                    stalled |= matches!(finished, Some(Ok(Finished { changed: 0, .. })));
                    fetched = next.and_then(Result::ok);
                    None
                }
            };
            if let Some(e) = failed {
                // A batch fetched and not finished leaves only temp files, which
                // the next pull resumes.
                return self.pull_failed(&e);
            }
        }
        if let Some(f) = fetched
            && let Err(e) = self.finish_batch(f).await
        {
            return self.pull_failed(&e);
        }
        PullEnd::More
    }

    /// Shows a pull's failure on the folder until a pull finishes.
    fn pull_failed(&self, e: &NodeError) -> PullEnd {
        tracing::warn!("pull failed: {e}");
        self.set(|s| {
            s.error = Some(e.to_string());
            s.pull_failed = true;
        });
        PullEnd::Stuck
    }

    /// The next batch to pull, with the folder's row and the blocks this device
    /// has: None when the folder is gone, paused or unplugged, or needs nothing
    /// more. Taken from `plan`, worked out again when what it was made from has
    /// changed; a fresh one leaves out what `in_flight` holds, which the index
    /// does not show as done yet.
    fn plan_batch(
        &self,
        plan: &mut Option<Plan>,
        in_flight: Option<&Fetched>,
    ) -> Option<(FolderRow, Vec<Action>, LocalBlocks)> {
        let row = self.row()?;
        if row.paused.is_some() || disk::check_marker(&row.path).is_err() {
            return None;
        }
        let key = {
            let st = lock(&self.folders.store);
            let members = st.members(&self.id).unwrap_or_default();
            let heard = members.iter().map(|m| st.remote_seq(&self.id, &m.peer).unwrap_or(0)).collect();
            PlanKey {
                seq: st.folder_seq(&self.id).unwrap_or(0),
                pins: Pins::load(&row),
                ignores: self.folders.ignores(&row),
                row,
                members,
                heard,
            }
        };
        let current = plan.as_ref().filter(|p| p.key.same(&key));
        if current.is_some_and(|p| p.actions.is_empty() && p.clean) {
            // Done as planned, and nothing it was made from has moved since.
            return None;
        }
        // Used up with something left undone, it is worked out afresh: what did
        // not arrive is tried again, and only an empty fresh plan ends the pull.
        if current.is_none_or(|p| p.actions.is_empty()) {
            let (local, remote) = needs_records(&lock(&self.folders.store), &self.id).unwrap_or_default();
            let (row, pins) = (&key.row, &key.pins);
            let mut actions =
                needs(row, &local, &remote, &key.members, self.folders.me_short, &|p| pins.covers(p), &key.ignores);
            if let Some(f) = in_flight {
                actions.retain(|a| !f.paths.contains(&a.remote.path));
            }
            if row.mode == FolderMode::OnDemand {
                for a in &mut actions {
                    if !a.remote.dir && !a.remote.deleted && !pins.covers(&a.remote.path) {
                        a.sources.clear();
                        a.remote.have = false;
                    }
                }
            }
            let blocks = local_block_index(&local);
            *plan = Some(Plan { key, actions: actions.into(), blocks, clean: true });
        }
        let plan = plan.as_mut()?;
        let n = plan.actions.len().min(self.folders.pull_batch);
        let mut batch: Vec<Action> = plan.actions.drain(..n).collect();
        if batch.is_empty() {
            return None;
        }
        for a in &mut batch {
            a.sources.retain(|p| !self.folders.offends(p));
        }
        self.set(|s| s.state = "syncing".into());
        Some((plan.key.row.clone(), batch, plan.blocks.clone()))
    }

    /// Says that this disk refused something a pull needed (full, read-only): the
    /// folder shows it until a pull finishes.
    fn local_trouble(&self, what: String) {
        tracing::warn!("{what}");
        self.set(|s| {
            s.error = Some(what);
            s.pull_failed = true;
        });
    }

    /// Carries out what a plan needs no content for (deletes, folders, conflict
    /// copies), then fetches the content of its files into temp files.
    async fn fetch_batch(
        &self,
        row: &FolderRow,
        plan: Vec<Action>,
        local_blocks: LocalBlocks,
    ) -> Result<Fetched, NodeError> {
        let timer = std::time::Instant::now();
        let paths = plan.iter().map(|a| a.remote.path.clone()).collect();
        let root = Arc::new(disk::open_root(&row.path)?);
        let mut done: Vec<FileRecord> = Vec::new();
        let mut rescan = Vec::new();
        // Files needing content: start temp files, reuse local blocks, then fetch.
        let mut to_start: Vec<(Action, RelPath, FileMeta)> = Vec::new();
        for a in plan {
            let Ok(rel) = RelPath::new(&a.remote.path) else { continue };
            if cfg!(windows) && rel.segments().any(peerbox_proto::path::is_windows_unsafe) {
                // Fine elsewhere, impossible here: this one file waits, the rest syncs.
                let why = format!("{rel}: Windows cannot create a file or folder by that name");
                tracing::warn!("{why}");
                self.set(|s| {
                    if !s.skipped.contains(&why) {
                        s.skipped.push(why);
                    }
                });
                continue;
            }
            let expected = a.local.as_ref().filter(|l| l.have && !l.deleted && !l.dir).and_then(|l| l.local);
            if a.conflict {
                match disk::move_to_conflict_copy(&root, &row.path, &rel, &short_name(&self.folders.me)) {
                    Ok(name) => {
                        self.set(|s| s.conflicts.push(name.as_str().to_owned()));
                        self.folders.live.notice("conflict", rel.as_str(), name.as_str());
                        rescan.push(name.as_str().to_owned());
                    }
                    Err(e) => tracing::warn!("cannot make a conflict copy of {rel}: {e}"),
                }
            }
            let expected = if a.conflict { None } else { expected };
            if a.remote.deleted {
                let r = if a.remote.dir {
                    disk::remove_dir_if_empty(&root, &rel);
                    Ok(())
                } else {
                    disk::delete(&root, &row.path, &rel, expected)
                };
                match r {
                    Ok(()) => done.push(adopt(&a.remote, None, true)),
                    Err(ApplyError::LocalChanged(_)) => rescan.push(rel.as_str().to_owned()),
                    Err(e) => self.local_trouble(format!("cannot delete {rel}: {e}")),
                }
            } else if a.remote.dir {
                match disk::make_dir(&root, &row.path, &rel) {
                    Ok(()) => done.push(adopt(&a.remote, None, true)),
                    Err(e) => self.local_trouble(format!("cannot create {rel}: {e}")),
                }
            } else if !a.remote.have && a.sources.is_empty() {
                // On demand: know about it, do not fetch it.
                if a.local.as_ref().is_none_or(|l| l.version != a.remote.version) {
                    done.push(adopt(&a.remote, None, false));
                }
            } else {
                let meta = FileMeta {
                    size: a.remote.size,
                    mtime_ns: a.remote.mtime_ns,
                    executable: a.remote.executable,
                    block_size: block_size_for(a.remote.size),
                    blocks: a.remote.blocks.clone(),
                };
                let mut a = a;
                if a.conflict {
                    a.local = None;
                }
                to_start.push((a, rel, meta));
            }
        }
        // Held until the batch's temp files are closed, when this returns.
        let _open = match self.folders.pull_files.clone().acquire_many_owned(to_start.len() as u32).await {
            Ok(permits) => permits,
            Err(_) => return Err(NodeError::Internal("the pull budget was closed".into())),
        };
        // Declared after the permits, so dropped (closing the files) before them.
        let mut pulls: Vec<(Action, RelPath, FileMeta, Arc<TempFile>)> = Vec::new();
        let folders = {
            let (root, path) = (root.clone(), row.path.clone());
            let rels: Vec<RelPath> = to_start.iter().map(|(_, r, _)| r.clone()).collect();
            Arc::new(
                tokio::task::spawn_blocking(move || disk::make_folders(&root, &path, &rels))
                    .await
                    .map_err(|e| NodeError::Internal(e.to_string()))?,
            )
        };
        let started = {
            let (root, path, lb, dirs) = (root.clone(), row.path.clone(), local_blocks.clone(), folders.clone());
            let files: Vec<(RelPath, FileMeta)> = to_start.iter().map(|(_, r, m)| (r.clone(), m.clone())).collect();
            in_blocking_chunks(files, move |(rel, meta)| {
                let t = disk::start_pull(&root, &path, &rel, &meta, disk::folder_of(&dirs, &rel))?;
                copy_local_blocks(&root, &t, &meta, &lb);
                Ok::<_, EngineError>(t)
            })
            .await?
        };
        for ((a, rel, meta), tmp) in to_start.into_iter().zip(started) {
            match tmp {
                Ok(t) => pulls.push((a, rel, meta, Arc::new(t))),
                Err(e) => self.local_trouble(format!("cannot receive {rel}: {e}")),
            }
        }
        self.set(|s| {
            s.transfers = pulls
                .iter()
                .map(|(a, rel, meta, tmp)| Transfer {
                    path: rel.as_str().to_owned(),
                    size: meta.size,
                    had: tmp.verified_bytes(),
                    sources: a.sources.len(),
                })
                .collect();
        });
        let prepared = timer.elapsed();
        self.fetch(row, &pulls).await;
        self.set(|s| s.transfers.clear());
        let fetched = timer.elapsed();
        Ok(Fetched { row: row.clone(), root, folders, paths, done, rescan, pulls, timer, prepared, fetched, _open })
    }

    /// Makes a fetched batch's complete files durable, puts them in place and
    /// records them with the rest of its changes.
    async fn finish_batch(&self, batch: Fetched) -> Result<Finished, NodeError> {
        // The permits go last: after every temp file of the batch is closed.
        let Fetched { _open, row, root, folders, paths, mut done, mut rescan, pulls, timer, prepared, fetched } = batch;
        let row = &row;
        let finishing = timer.elapsed();
        // Durable as one batch; renamed; then each directory synced once.
        let ready = self.ready_pulls(row, &pulls).await?;
        let readied = timer.elapsed();
        // Journalled before any goes in place: a kill between the renames and the
        // index commit below is then settled on restart (see `settle_landings`),
        // not mistaken for edits made here.
        fault_point("before-place").await;
        let landing: Vec<FileRecord> =
            ready.iter().map(|(a, _, _, stamp)| adopt(&a.remote, Some(*stamp), true)).collect();
        lock(&self.folders.store).expect_landings(&self.id, &landing)?;
        let placing: Vec<_> = ready
            .into_iter()
            .zip(landing)
            .map(|((a, rel, tmp, _), landed)| {
                let expected = a.local.as_ref().filter(|l| l.have && !l.deleted && !l.dir).and_then(|l| l.local);
                (landed, rel, tmp, expected)
            })
            .collect();
        let results = {
            let (root, path, keep) = (root.clone(), row.path.clone(), row.keep_versions);
            in_blocking_chunks(placing, move |(landed, rel, tmp, expected)| {
                let r = disk::place_pull(&root, &path, &rel, &tmp, expected, keep, disk::folder_of(&folders, &rel));
                (landed, rel, r)
            })
            .await?
        };
        // Journalled but not put in place: nothing to settle.
        let mut unplaced = Vec::new();
        let mut placed = Vec::new();
        for (landed, rel, r) in results {
            match r {
                Ok(()) => {
                    done.push(landed);
                    placed.push(rel);
                    continue;
                }
                Err(ApplyError::LocalChanged(_)) => rescan.push(rel.as_str().to_owned()),
                Err(e) => self.local_trouble(format!("cannot put {rel} in place: {e}")),
            }
            unplaced.push(landed.path);
        }
        if !placed.is_empty() {
            let (root, path) = (root.clone(), row.path.clone());
            let synced = tokio::task::spawn_blocking(move || disk::sync_dirs(&root, &path, &placed))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            if let Err(e) = synced {
                // In place, but a power cut could still undo the renames: say so.
                self.local_trouble(format!("cannot make the new files durable: {e}"));
            }
        }
        fault_point("before-commit").await;
        let placed_at = timer.elapsed();
        let n = done.len();
        let mut seqs = None;
        if n > 0 {
            let (before, seq) = {
                let mut st = lock(&self.folders.store);
                (st.folder_seq(&self.id)?, st.put_files(&self.id, &mut done)?)
            };
            seqs = Some((before, seq));
            self.folders.publish_seq(&self.id, seq);
        }
        tracing::debug!(
            folder = %hex::encode(self.id),
            "pulled {} files: prepared after {prepared:?}, fetched after {fetched:?}, finishing from {finishing:?}, durable after {readied:?}, in place after {placed_at:?}, recorded after {:?}",
            pulls.len(),
            timer.elapsed()
        );
        if !unplaced.is_empty() {
            lock(&self.folders.store).forget_landings(&self.id, &unplaced)?;
        }
        let whole = n == paths.len() && rescan.is_empty();
        if !rescan.is_empty() {
            let _ = self.kick.try_send(Kick::Scan(rescan));
        }
        Ok(Finished { changed: n, whole, seqs })
    }

    /// Makes the complete temp files of `pulls` durable, as one batch (see
    /// [`disk::ready_pulls`]), with the stamp each will have in place.
    async fn ready_pulls(
        &self,
        row: &FolderRow,
        pulls: &[(Action, RelPath, FileMeta, Arc<TempFile>)],
    ) -> Result<Vec<(Action, RelPath, Arc<TempFile>, peerbox_store::FileStamp)>, NodeError> {
        let complete: Vec<(Action, RelPath, FileMeta, Arc<TempFile>)> =
            pulls.iter().filter(|p| p.3.is_complete()).cloned().collect();
        let path = row.path.clone();
        let (complete, stamps) = tokio::task::spawn_blocking(move || {
            let files: Vec<(&RelPath, &TempFile, &FileMeta)> =
                complete.iter().map(|(_, rel, meta, tmp)| (rel, &**tmp, meta)).collect();
            let stamps = disk::ready_pulls(&path, &files);
            (complete, stamps)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?;
        let mut ready = Vec::new();
        for ((a, rel, _, tmp), r) in complete.into_iter().zip(stamps) {
            match r {
                Ok(stamp) => ready.push((a, rel, tmp, stamp)),
                Err(e) => self.local_trouble(format!("cannot put {rel} in place: {e}")),
            }
        }
        Ok(ready)
    }

    /// Fetches every missing block of `pulls`, spreading blocks over the members
    /// that have each file, all sources at once.
    async fn fetch(&self, row: &FolderRow, pulls: &[(Action, RelPath, FileMeta, Arc<TempFile>)]) {
        let mut by_source: HashMap<Vec<u8>, Vec<FolderBlock>> = HashMap::new();
        let mut targets: HashMap<(String, u32), Arc<TempFile>> = HashMap::new();
        for (a, rel, meta, tmp) in pulls {
            if a.sources.is_empty() {
                continue;
            }
            for (i, b) in tmp.missing().into_iter().enumerate() {
                let src = &a.sources[i % a.sources.len()];
                by_source.entry(src.clone()).or_default().push(FolderBlock {
                    path: rel.as_str().to_owned(),
                    index: b as u32,
                    hash: meta.blocks[b as usize],
                });
                targets.insert((rel.as_str().to_owned(), b as u32), tmp.clone());
            }
        }
        let targets = Arc::new(targets);
        let window = pull_window(pulls.iter().map(|(_, _, meta, _)| meta));
        // The first error of this disk (full, read-only) any session meets.
        let trouble: Arc<Mutex<Option<String>>> = Arc::default();
        let mut sessions = Vec::new();
        for (src, blocks) in by_source {
            let Ok(peer) = PeerId::from_bytes(&src) else { continue };
            let net = self.folders.net.clone();
            let targets = targets.clone();
            let folder = row.id;
            let addrs = member_addrs(&self.folders.store, &folder, &src);
            let folders = self.folders.clone();
            let trouble = trouble.clone();
            sessions.push(tokio::spawn(async move {
                if tokio::time::timeout(Duration::from_secs(10), net.dial(peer, addrs)).await.is_err() {
                    return;
                }
                let Ok(stream) = net.open_stream(peer, PROTOCOL).await else { return };
                let (tx, mut rx) = mpsc::channel::<(FolderBlock, Option<Bytes>)>(8);
                let buffers = peerbox_net::Buffers::default();
                let fetch = tokio::spawn(proto_sync::fetch_blocks(stream, folder, blocks, window, tx, buffers.clone()));
                // Verify and write several blocks at once (hashing is the costly part),
                // a bounded number so memory stays bounded too.
                let mut writes = futures::stream::FuturesUnordered::new();
                let mut open = true;
                let mut bad = 0;
                while open || !writes.is_empty() {
                    tokio::select! {
                        got = rx.recv(), if open && writes.len() < WRITES_IN_FLIGHT => match got {
                            None => open = false,
                            Some(first) => {
                                // What else has arrived goes along in the same blocking
                                // task: small files come as many small blocks, and a
                                // hand-off to a thread per block cost more than the write.
                                let mut batch = Vec::new();
                                let mut bytes = 0;
                                let mut next = Some(first);
                                while let Some((b, data)) = next.take() {
                                    if let Some(data) = data
                                        && let Some(tmp) = targets.get(&(b.path.clone(), b.index)).cloned()
                                    {
                                        bytes += data.len();
                                        batch.push((tmp, b.index, data));
                                    }
                                    if bytes < WRITE_BATCH_BYTES {
                                        next = rx.try_recv().ok();
                                    }
                                }
                                if !batch.is_empty() {
                                    let buffers = buffers.clone();
                                    writes.push(tokio::task::spawn_blocking(move || {
                                        batch
                                            .into_iter()
                                            .map(|(tmp, i, data)| {
                                                let wrote = tmp.write_block(i as u64, &data);
                                                buffers.give_back(data);
                                                wrote
                                            })
                                            .collect::<Vec<_>>()
                                    }));
                                }
                            }
                        },
                        Some(r) = futures::StreamExt::next(&mut writes), if !writes.is_empty() => {
                            for e in r.into_iter().flatten().filter_map(Result::err) {
                                if let peerbox_engine::BlockError::Io(io) = &e {
                                    // This disk, not the peer: no point asking for more now.
                                    trouble.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| format!("cannot write what {peer} sent: {io}"));
                                    fetch.abort();
                                    open = false;
                                    continue;
                                }
                                tracing::warn!(%peer, "discarded a block: {e}");
                                bad += 1;
                                if bad == BAD_BLOCKS_LIMIT {
                                    // A repeat offender: stop taking its blocks; what it
                                    // owed comes from the other members.
                                    fetch.abort();
                                    open = false;
                                    folders.drop_offender(&folder, &peer);
                                }
                            }
                        }
                    }
                }
                if let Ok(Err(e)) = fetch.await {
                    tracing::info!(%peer, "pull session ended: {e}");
                }
            }));
        }
        for s in sessions {
            let _ = s.await;
        }
        let trouble = trouble.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(what) = trouble {
            self.local_trouble(what);
        }
    }
}

/// Runs `f` over `items` on blocking threads, a chunk per core at once, and
/// returns the results in order. A batch's disk work for small files is
/// thousands of short system calls: a hand-off to a thread per file cost more
/// than the call, and one thread for all leaves the other cores idle.
async fn in_blocking_chunks<T, R>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Send + Sync + 'static,
) -> Result<Vec<R>, NodeError>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let per = items.len().div_ceil(cores.clamp(1, 4)).max(DISK_CHUNK_MIN);
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<T> = items.by_ref().take(per).collect();
        let f = f.clone();
        tasks.push(tokio::task::spawn_blocking(move || chunk.into_iter().map(|t| f(t)).collect::<Vec<R>>()));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.map_err(|e| NodeError::Internal(e.to_string()))?);
    }
    Ok(out)
}

/// Fault injection for the crash and race tests. With `PEERBOX_FAULT=stall-<point>`
/// the folder task stops for good at that point of a pull, as if the daemon had
/// been killed there, while the rest of it runs on (the test kills it when it has
/// seen what it needs). With `pause-<point>` and `PEERBOX_FAULT_GATE=FILE`, the
/// first pull to get there creates `FILE.reached` and waits until FILE exists, so
/// a test can act in that instant (a user's edit landing just then). Read once;
/// unset, it costs a comparison.
async fn fault_point(at: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let fault = FAULT.get_or_init(|| std::env::var("PEERBOX_FAULT").ok());
    let Some(fault) = fault.as_deref() else { return };
    if fault.strip_prefix("stall-") == Some(at) {
        tracing::warn!("PEERBOX_FAULT: the pull stalls {at}");
        std::future::pending::<()>().await;
    }
    if fault.strip_prefix("pause-") == Some(at)
        && !PAUSED.swap(true, std::sync::atomic::Ordering::SeqCst)
        && let Some(gate) = std::env::var_os("PEERBOX_FAULT_GATE").map(PathBuf::from)
    {
        tracing::warn!("PEERBOX_FAULT: the pull pauses {at} until {} exists", gate.display());
        let mut reached = gate.clone().into_os_string();
        reached.push(".reached");
        let _ = std::fs::write(&reached, b"");
        while !gate.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sleeps until `at`, or forever without one (a `select!` branch that never fires).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The record we keep after taking a member's version.
fn adopt(remote: &FileRecord, stamp: Option<peerbox_store::FileStamp>, have: bool) -> FileRecord {
    FileRecord { have, local: stamp, seq: 0, ..remote.clone() }
}

/// Blocks present on this device, by hash: where to copy them from (the file,
/// relative to the folder; offset; length).
type LocalBlocks = Arc<HashMap<[u8; 32], (Arc<str>, u64, u32)>>;

fn local_block_index(local: &[FileRecord]) -> LocalBlocks {
    let mut map = HashMap::new();
    for r in local.iter().filter(|r| r.have && !r.deleted && !r.dir) {
        let path: Arc<str> = r.path.as_str().into();
        for (i, h) in r.blocks.iter().enumerate() {
            map.entry(*h).or_insert((
                path.clone(),
                i as u64 * r.block_size as u64,
                block_len(r.size, r.block_size, i as u64),
            ));
        }
    }
    Arc::new(map)
}

/// Copies blocks we already have locally (a rename, a move, a duplicate) into the
/// temp file; each copy is verified like a downloaded block.
fn copy_local_blocks(root: &Dir, tmp: &TempFile, meta: &FileMeta, local: &LocalBlocks) {
    let mut buf = Vec::new();
    for b in tmp.missing() {
        let Some((path, offset, len)) = local.get(&meta.blocks[b as usize]) else { continue };
        if *len != block_len(meta.size, meta.block_size, b) {
            continue;
        }
        let Ok(f) = root.open(&**path) else { continue };
        buf.resize(*len as usize, 0);
        if peerbox_engine::io::read_at(&f.into_std(), &mut buf, *offset).is_ok() {
            let _ = tmp.write_block(b, &buf);
        }
    }
}

fn member_addrs(store: &SharedStore, folder: &FolderId, peer: &[u8]) -> Vec<Multiaddr> {
    lock(store)
        .members(folder)
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.peer == peer)
        .map(|m| m.addrs.into_iter().filter_map(|a| Multiaddr::try_from(a).ok()).collect())
        .unwrap_or_default()
}

/// The first characters of a PeerId after its common prefix, for conflict names.
fn short_name(peer: &PeerId) -> String {
    let s = peer.to_string();
    s.chars().rev().take(7).collect::<Vec<_>>().into_iter().rev().collect()
}

enum ScanReport {
    Done { seq: Option<u64> },
    Paused(String),
}

fn scan_blocking(
    folders: &Folders,
    row: &FolderRow,
    id: FolderId,
    scope: Option<Vec<String>>,
    confirmed: bool,
    watch: Option<&FolderWatch>,
) -> Result<ScanReport, NodeError> {
    if let Err(e) = disk::check_marker(&row.path) {
        lock(&folders.store).set_paused(&id, Some("stopped: marker missing"))?;
        return Err(e.into());
    }
    if row.paused.as_deref() == Some("stopped: marker missing") {
        lock(&folders.store).set_paused(&id, None)?;
    }
    let settled = settle_landings(folders, row, &id)?;
    let known: HashMap<String, FileRecord> =
        lock(&folders.store).files(&id)?.into_iter().map(|r| (r.path.clone(), r)).collect();
    // New patterns can bring back files they no longer ignore: look at everything.
    let scope = scope.filter(|paths| !paths.iter().any(|p| p == IGNORE_FILE));
    let ignores = folders.ignores(row);
    let watch_dir = |dir: &Path| {
        if let Some(w) = watch {
            w.dir(dir)
        }
    };
    let live = known.values().filter(|r| !r.deleted && r.have && !r.dir).count();
    // Local changes of a folder that sends none are reverted below, never recorded.
    let mut early = (row.read_write && row.mode != FolderMode::ReceiveOnly).then_some(EarlyRecords {
        folders,
        id,
        known: &known,
        live,
        confirmed,
        seq: None,
    });
    let out = disk::scan_folder_with(
        &row.path,
        &known,
        folders.me_short,
        scope.as_deref(),
        &ignores,
        &watch_dir,
        early.as_mut(),
    )?;
    let settled = early.and_then(|e| e.seq).or(settled);
    if !out.temps.is_empty() {
        folders
            .temps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .extend(out.temps.iter().cloned());
    }
    for s in &out.skipped {
        tracing::warn!("{}: {}", s.path.display(), s.reason);
    }
    if scope.is_none() {
        let skipped: Vec<String> = ignores
            .problems
            .iter()
            .cloned()
            .chain(out.skipped.iter().map(|s| format!("{}: {}", s.path.display(), s.reason)))
            .take(100)
            .collect();
        folders.set_state(&id, |st| st.skipped = skipped);
    }
    {
        let mut st = lock(&folders.store);
        for (path, stamp) in &out.restamped {
            st.set_local_stamp(&id, path, *stamp)?;
        }
    }
    let mut changed = out.changed;
    if changed.is_empty() {
        return Ok(ScanReport::Done { seq: settled });
    }
    let deletes = changed.iter().filter(|r| r.deleted && !r.dir).count();
    if mass_delete(confirmed, live, deletes) {
        let why = format!(
            "paused: {deletes} of {live} files in {:?} were deleted at once; nothing was sent. If this was intended, run `peerbox folder resume {}`",
            row.name,
            hex::encode(id)
        );
        lock(&folders.store).set_paused(&id, Some(&why))?;
        return Ok(ScanReport::Paused(why));
    }
    if !row.read_write || row.mode == FolderMode::ReceiveOnly {
        // Local changes never leave this device: move edited copies to the trash and
        // let the group's version come back.
        let root = disk::open_root(&row.path)?;
        let mut reverted = Vec::new();
        for r in changed {
            let Some(k) = known.get(&r.path) else { continue };
            if let Ok(rel) = RelPath::new(&r.path)
                && !r.deleted
                && !r.dir
            {
                let _ = disk::trash(&root, &row.path, &rel);
            }
            reverted.push(FileRecord { have: false, local: None, ..k.clone() });
        }
        if !reverted.is_empty() {
            lock(&folders.store).put_files(&id, &mut reverted)?;
            folders.kick(&id, Kick::Pull);
        }
        return Ok(ScanReport::Done { seq: settled });
    }
    let seq = record_changes(folders, &id, &known, &mut changed)?;
    Ok(ScanReport::Done { seq: Some(seq) })
}

/// Records changes made on this device (a file a member already has byte for
/// byte takes that member's version); returns the folder's new sequence.
fn record_changes(
    folders: &Folders,
    id: &FolderId,
    known: &HashMap<String, FileRecord>,
    changed: &mut [FileRecord],
) -> Result<u64, NodeError> {
    adopt_same_bytes(folders, id, known, changed)?;
    Ok(lock(&folders.store).put_files(id, changed)?)
}

/// Whether `deletes` of `live` files gone at once look like a drive unmounted or
/// a folder emptied by mistake rather than a user's cleanup: the scan then pauses
/// until the user confirms.
fn mass_delete(confirmed: bool, live: usize, deletes: usize) -> bool {
    !confirmed && live >= MASS_DELETE_MIN && deletes * 2 > live
}

/// Records a large scan's new paths while it still reads files (see
/// [`disk::Recorder`]), publishing each batch to the members as it lands. Nothing
/// is recorded early when the scan's deletions would pause the folder.
struct EarlyRecords<'a> {
    folders: &'a Folders,
    id: FolderId,
    known: &'a HashMap<String, FileRecord>,
    live: usize,
    confirmed: bool,
    /// The folder's sequence after the last batch recorded.
    seq: Option<u64>,
}

impl disk::Recorder for EarlyRecords<'_> {
    type Error = NodeError;

    fn start(&mut self, deletes: usize) -> bool {
        !mass_delete(self.confirmed, self.live, deletes)
    }

    fn record(&mut self, mut batch: Vec<FileRecord>) -> Result<(), NodeError> {
        let seq = record_changes(self.folders, &self.id, self.known, &mut batch)?;
        self.folders.publish_seq(&self.id, seq);
        self.seq = Some(seq);
        Ok(())
    }
}

/// Settles pulls journalled by `expect_landings` that the index never recorded
/// (the daemon died between putting them in place and the commit): a file that
/// is still exactly what was put there (same stamp) is that member's version, not
/// an edit made here — the very case a content check cannot decide once the
/// member has announced a newer version. Anything else is left to the scan.
/// Returns the folder's new sequence if something was recorded.
fn settle_landings(folders: &Folders, row: &FolderRow, id: &FolderId) -> Result<Option<u64>, NodeError> {
    let landed = lock(&folders.store).landings(id)?;
    if landed.is_empty() {
        return Ok(None);
    }
    let root = disk::open_root(&row.path)?;
    let paths: Vec<String> = landed.iter().map(|r| r.path.clone()).collect();
    let mut placed: Vec<FileRecord> = landed
        .into_iter()
        .filter(|r| RelPath::new(&r.path).is_ok_and(|rel| disk::local_stamp(&root, &rel) == r.local))
        .collect();
    let mut st = lock(&folders.store);
    let seq = if placed.is_empty() { None } else { Some(st.put_files(id, &mut placed)?) };
    st.forget_landings(id, &paths)?;
    if !placed.is_empty() {
        tracing::info!("{} file(s) put in place before the daemon stopped are now recorded", placed.len());
    }
    Ok(seq)
}

/// A file found changed on disk that holds exactly the bytes a member announced
/// for it is that member's version, not a new edit here: a pull put in place
/// just before the daemon was killed (the index never heard), or the same file
/// copied in on two devices. Taking the member's version vector keeps it from
/// showing up as a conflict with the very version it is.
fn adopt_same_bytes(
    folders: &Folders,
    id: &FolderId,
    known: &HashMap<String, FileRecord>,
    changed: &mut [FileRecord],
) -> Result<(), NodeError> {
    let st = lock(&folders.store);
    let me = folders.me.to_bytes();
    let others: Vec<Vec<u8>> = st.members(id)?.into_iter().map(|m| m.peer).filter(|p| *p != me).collect();
    if others.is_empty() {
        return Ok(());
    }
    for r in changed.iter_mut().filter(|r| !r.deleted && !r.dir) {
        let prior = known.get(&r.path);
        for peer in &others {
            let Some(theirs) = st.remote_file(id, peer, &r.path)? else { continue };
            if !same_bytes(&theirs, r) || prior.is_some_and(|k| theirs.version.relation(&k.version) == Relation::Older)
            {
                continue;
            }
            r.version = prior.map_or(theirs.version.clone(), |k| theirs.version.merge(&k.version));
            r.modified_by = theirs.modified_by;
            break;
        }
    }
    Ok(())
}

/// What the watcher saw change, waiting for the folder task (see [`Pending`]).
/// Bounded: past [`WATCH_QUEUE`] paths it degrades to "rescan everything".
#[derive(Default)]
struct Changes {
    pending: Mutex<Option<Pending>>,
    wake: tokio::sync::Notify,
}

impl Changes {
    /// `paths` (not empty) changed; `settled`: their event said the change is
    /// complete ([`settles`]).
    fn add(&self, paths: Vec<String>, settled: bool) {
        if !paths.is_empty() {
            self.merge(Pending { paths: paths.into_iter().map(|p| (p, settled)).collect() });
        }
    }

    /// Events were lost: everything is to be scanned.
    fn add_everything(&self) {
        self.merge(Pending::default());
    }

    fn merge(&self, later: Pending) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.as_mut() {
                Some(p) => p.merge(later),
                None => *p = Some(later),
            }
            if p.as_ref().is_some_and(|p| p.paths.len() > WATCH_QUEUE) {
                tracing::warn!("more than {WATCH_QUEUE} paths changed at once; scheduling a full rescan");
                *p = Some(Pending::default());
            }
        }
        self.wake.notify_one();
    }

    /// What is pending, or `None` if nothing is.
    fn take(&self) -> Option<Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Changed paths gathered for one scan, each with whether its change is complete.
/// No paths: scan everything.
#[derive(Debug, Default)]
struct Pending {
    paths: HashMap<String, bool>,
}

impl Pending {
    /// Paths from a request rather than the watcher (the API, a rescan): nothing
    /// is being written there that a wait would let finish.
    fn asked(paths: Vec<String>) -> Self {
        Self { paths: paths.into_iter().map(|p| (p, true)).collect() }
    }

    /// Adds later changes; a path's later event decides whether it is complete.
    /// Anything merged with "everything" is everything.
    fn merge(&mut self, later: Pending) {
        if self.paths.is_empty() || later.paths.is_empty() {
            self.paths.clear();
        } else {
            self.paths.extend(later.paths);
        }
    }

    /// When to scan, given when the first and the latest of these changes came.
    fn scan_at(&self, first: tokio::time::Instant, latest: tokio::time::Instant) -> tokio::time::Instant {
        if self.paths.values().all(|settled| *settled) {
            (latest + SETTLED).min(first + DEBOUNCE)
        } else {
            first + DEBOUNCE
        }
    }
}

/// Whether an event says the change it reports is complete: a written file was
/// closed, a name moved (a finished file moved in, the usual atomic save), an entry
/// was deleted, attributes or a directory changed. A file created or modified may
/// still be being written: the full debounce lets the writer finish. Backends
/// without close events (macOS, Windows) get the full debounce for writes.
fn settles(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Remove(_)
            | EventKind::Create(CreateKind::Folder)
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_))
    )
}

/// Whether each directory is watched on its own, as inotify (Linux) watches:
/// elsewhere the system watches a whole tree from its root.
const WATCH_PER_DIRECTORY: bool = cfg!(target_os = "linux");

/// A folder's file watcher. Where watches are per directory, the scan's walk adds
/// one to each directory just before it lists it ([`FolderWatch::dir`]), so no
/// change escapes both the listing and the watch, and the walk is the only pass
/// over the tree: notify's recursive mode would first walk it again and stat
/// every file in it (half a second for 100,000 cold files). Ignored directories
/// are then not watched; a directory made or moved in later is watched by the
/// scan its event brings, which walks it.
struct FolderWatch {
    watcher: Mutex<notify::RecommendedWatcher>,
    watched: Arc<Mutex<Watched>>,
    /// The system's limit of watches was reached: some directories go unwatched.
    full: std::sync::atomic::AtomicBool,
}

/// Directories watched, each with its inode then. Every rescan walks them all
/// again, and each watch asked of notify is a round trip to its thread (~10 µs: a
/// quarter of the time of a rescan of 20,000 folders), so one still watched is not
/// asked again. notify drops a directory's watches, its subfolders' included, when
/// it is moved or deleted; the handler forgets them at the same events, before the
/// scan those events bring.
#[derive(Default)]
struct Watched(std::collections::BTreeMap<PathBuf, u64>);

impl Watched {
    /// Forgets `path` and everything under it (contiguous in a map of paths,
    /// which order by component).
    fn forget(&mut self, path: &Path) {
        let gone: Vec<PathBuf> =
            self.0.range(path.to_owned()..).map(|(p, _)| p).take_while(|p| p.starts_with(path)).cloned().collect();
        for p in gone {
            self.0.remove(&p);
        }
    }
}

impl FolderWatch {
    fn start(root: &Path, changes: Arc<Changes>) -> Result<Arc<Self>, String> {
        use notify::{RecursiveMode, Watcher};
        let root_owned = root.to_owned();
        let watched: Arc<Mutex<Watched>> = Arc::default();
        let forget = watched.clone();
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    tracing::warn!("the file watcher lost events; scheduling a full rescan");
                    // Whatever notify dropped meanwhile is watched again by that rescan.
                    forget.lock().unwrap_or_else(|p| p.into_inner()).0.clear();
                    changes.add_everything();
                    return;
                }
                if matches!(
                    ev.kind,
                    notify::EventKind::Remove(_) | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                ) {
                    let mut w = forget.lock().unwrap_or_else(|p| p.into_inner());
                    for p in &ev.paths {
                        w.forget(p);
                    }
                }
                // Opening and reading change nothing, and serving a file to a member
                // opens it for every block it asks: only a write's close counts.
                if let notify::EventKind::Access(a) = ev.kind
                    && a != notify::event::AccessKind::Close(notify::event::AccessMode::Write)
                {
                    return;
                }
                let paths: Vec<String> = ev
                    .paths
                    .iter()
                    .filter_map(|p| p.strip_prefix(&root_owned).ok())
                    .filter_map(|p| p.to_str().map(|s| s.replace('\\', "/")))
                    .filter(|s| {
                        !s.is_empty() && s.split('/').all(|seg| !seg.starts_with(".peerbox") || seg == IGNORE_FILE)
                    })
                    .collect();
                changes.add(paths, settles(&ev.kind));
            }
            Err(e) => {
                tracing::warn!("file watcher error ({e}); scheduling a full rescan");
                changes.add_everything();
            }
        };
        // Links are not synced, so the watcher does not follow them either: following
        // one, it would walk and watch whatever it points to outside the folder, and a
        // link to a large tree could use up the system's watches.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = notify::RecommendedWatcher::new(handler, config).map_err(|e| e.to_string())?;
        if !WATCH_PER_DIRECTORY {
            watcher.watch(root, RecursiveMode::Recursive).map_err(|e| e.to_string())?;
        }
        Ok(Arc::new(Self { watcher: Mutex::new(watcher), watched, full: Default::default() }))
    }

    /// Watches `dir`, about to be listed by a scan (where watches are per
    /// directory; watching one again is harmless).
    fn dir(&self, dir: &Path) {
        use notify::Watcher;
        use std::sync::atomic::Ordering;
        if !WATCH_PER_DIRECTORY || self.full.load(Ordering::Relaxed) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
        let inode = peerbox_engine::stamp_of(&meta).inode;
        {
            // Noted before asking, so that an event dropping the watch meanwhile
            // (handled on notify's thread) forgets it after, not before.
            let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            if w.0.insert(dir.to_owned(), inode) == Some(inode) {
                return;
            }
        }
        let added =
            self.watcher.lock().unwrap_or_else(|p| p.into_inner()).watch(dir, notify::RecursiveMode::NonRecursive);
        if let Err(e) = added {
            self.watched.lock().unwrap_or_else(|p| p.into_inner()).0.remove(dir);
            match e.kind {
                notify::ErrorKind::MaxFilesWatch => self.full.store(true, Ordering::Relaxed),
                // Gone or unreadable since: the walk reports what it cannot list.
                _ => tracing::debug!("cannot watch {}: {e}", dir.display()),
            }
        }
    }
}

async fn member_task(folders: Arc<Folders>, id: FolderId, peer: PeerId, kick: mpsc::Sender<Kick>) {
    let mut backoff = Duration::from_millis(250);
    let mut budget = Budget { since: tokio::time::Instant::now(), records: 0 };
    loop {
        match poll_member(&folders, id, peer, &kick, &mut budget).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(Flood) => {
                let warning = format!(
                    "{peer} announced more than {RECORDS_PER_MINUTE} changes in a minute; not listening to it for a minute"
                );
                tracing::warn!("{warning}");
                folders.set_state(&id, |s| {
                    if !s.warnings.contains(&warning) {
                        s.warnings.push(warning);
                    }
                });
                tokio::time::sleep_until(budget.since + Duration::from_secs(60)).await;
            }
            Err(Failed(e)) => {
                tracing::debug!(%peer, "index exchange: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How many records a member announced in the current minute.
struct Budget {
    since: tokio::time::Instant,
    records: usize,
}

/// Why an index exchange with a member stopped.
enum PollEnd {
    /// More records than [`RECORDS_PER_MINUTE`]: the member is cut off for a while.
    Flood,
    /// Anything else; tried again soon.
    Failed(NodeError),
}
use PollEnd::{Failed, Flood};

impl From<NodeError> for PollEnd {
    fn from(e: NodeError) -> Self {
        Failed(e)
    }
}

impl From<peerbox_net::NetError> for PollEnd {
    fn from(e: peerbox_net::NetError) -> Self {
        Failed(e.into())
    }
}

impl From<peerbox_net::blocks::SessionError> for PollEnd {
    fn from(e: peerbox_net::blocks::SessionError) -> Self {
        Failed(e.into())
    }
}

impl From<peerbox_store::StoreError> for PollEnd {
    fn from(e: peerbox_store::StoreError) -> Self {
        Failed(e.into())
    }
}

async fn poll_member(
    folders: &Arc<Folders>,
    id: FolderId,
    peer: PeerId,
    kick: &mpsc::Sender<Kick>,
    budget: &mut Budget,
) -> Result<(), PollEnd> {
    let addrs = member_addrs(&folders.store, &id, &peer.to_bytes());
    tokio::time::timeout(Duration::from_secs(20), folders.net.dial(peer, addrs))
        .await
        .map_err(|_| NodeError::Internal("dial timed out".into()))??;
    let mut stream = folders.net.open_stream(peer, PROTOCOL).await?;
    loop {
        let since = lock(&folders.store).remote_seq(&id, &peer.to_bytes())?;
        let asked = tokio::time::Instant::now();
        let answer = proto_sync::request(
            &mut stream,
            SyncRequest::Index { folder: id, since, wait: true },
            proto_sync::LONG_POLL + Duration::from_secs(30),
        )
        .await?;
        let (records, last, members) = match answer {
            SyncResponse::Index { records, last, members } => (records, last, members),
            SyncResponse::Refused(_) => {
                folders.set_state(&id, |s| {
                    s.error = Some(format!("{peer} no longer lets this device in (its link was revoked or expired)"));
                });
                return Err(NodeError::Internal("a member refused the index".into()).into());
            }
            other => {
                return Err(NodeError::Internal(format!("unexpected answer to an index request: {other:?}")).into());
            }
        };
        if records.len() > MAX_BATCH {
            return Err(NodeError::Internal("batch over the limit".into()).into());
        }
        if budget.since.elapsed() >= Duration::from_secs(60) {
            *budget = Budget { since: tokio::time::Instant::now(), records: 0 };
        }
        budget.records += records.len();
        if budget.records > RECORDS_PER_MINUTE {
            return Err(Flood);
        }
        let mut valid = Vec::with_capacity(records.len());
        for r in records {
            match from_wire(r) {
                Some(r) => valid.push(r),
                None => tracing::warn!(%peer, "ignored an invalid record"),
            }
        }
        let sender_rw = lock(&folders.store).members(&id)?.iter().any(|m| m.peer == peer.to_bytes() && m.read_write);
        let got = !valid.is_empty();
        // Looked at before storing: a pull plans from the whole index, and most
        // news is a member taking our own changes, which gives nothing to pull.
        let news = sender_rw && {
            let st = lock(&folders.store);
            valid.iter().any(|r| st.file(&id, &r.path).map_or(true, |l| might_take(r, l.as_ref())))
        };
        lock(&folders.store).put_remote(&id, &peer.to_bytes(), &valid, last)?;
        if sender_rw && merge_members(folders, id, &peer, members)? {
            folders.kick(&id, Kick::Members);
        }
        if got {
            // What members have shows in the drive (remote-only and syncing entries).
            folders.set_state(&id, |s| s.revision += 1);
            if news {
                let _ = kick.try_send(Kick::Pull);
            }
        } else if asked.elapsed() < Duration::from_secs(1) {
            // Honest members hold an empty answer (long-poll); one that answers
            // at once is not allowed to make us spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Learns members announced by read-write member `from`, and forgets those it
/// introduced that it no longer lists (it removed them: a revoked link, or
/// `peerbox revoke PEER`). Returns whether the members changed.
fn merge_members(folders: &Folders, id: FolderId, from: &PeerId, members: Vec<WireMember>) -> Result<bool, NodeError> {
    let me = folders.me.to_bytes();
    let from = from.to_bytes();
    let mut st = lock(&folders.store);
    let known = st.members(&id)?;
    let mut changed = false;
    let listed: HashSet<&[u8]> = members.iter().map(|m| m.peer.as_slice()).collect();
    for k in known.iter().filter(|k| k.introduced_by.as_deref() == Some(&from) && !listed.contains(k.peer.as_slice())) {
        st.remove_member(&id, &k.peer)?;
        changed = true;
    }
    let recently = peerbox_store::now().saturating_sub(REMOVAL_MEMORY.as_secs());
    for m in members.iter().take(256) {
        if m.peer == me || m.peer == from || PeerId::from_bytes(&m.peer).is_err() {
            continue;
        }
        if let Some(k) = known.iter().find(|k| k.peer == m.peer) {
            // Where a member listens, second-hand: taken only while we know of
            // nowhere (what it tells us itself replaces it; a wrong address just
            // fails, the PeerId is checked on every dial).
            if k.addrs.is_empty() && !m.addrs.is_empty() {
                let addrs = m.addrs.iter().take(8).cloned().collect();
                st.put_member(&id, &Member { addrs, ..k.clone() })?;
            }
            continue;
        }
        // A member this device removed may still be on others' lists for a while.
        if st.member_removed_since(&id, &m.peer, recently)? {
            continue;
        }
        let addrs = m.addrs.iter().take(8).cloned().collect();
        st.put_member(
            &id,
            &Member { introduced_by: Some(from.clone()), ..Member::new(m.peer.clone(), m.read_write, addrs) },
        )?;
        changed = true;
    }
    Ok(changed)
}

/// Validates a record from a peer; `None` if anything is off.
fn from_wire(r: WireRecord) -> Option<FileRecord> {
    let path = r.check().ok()?;
    Some(FileRecord {
        path: path.as_str().to_owned(),
        dir: r.dir,
        deleted: r.deleted,
        size: if r.dir || r.deleted { 0 } else { r.size },
        mtime_ns: r.mtime_ns,
        executable: r.executable,
        block_size: r.block_size,
        blocks: r.blocks,
        version: r.version,
        seq: r.seq,
        modified_by: r.modified_by,
        have: r.have,
        local: None,
    })
}

fn to_wire(r: FileRecord) -> WireRecord {
    WireRecord {
        path: r.path,
        dir: r.dir,
        deleted: r.deleted,
        size: r.size,
        mtime_ns: r.mtime_ns,
        executable: r.executable,
        block_size: r.block_size,
        blocks: r.blocks,
        version: r.version,
        seq: r.seq,
        modified_by: r.modified_by,
        have: r.have,
    }
}

/// The protocol side: answers members' requests.
pub(crate) struct FolderSource(pub(crate) Arc<Folders>);

impl FolderSource {
    /// The folder and `peer`'s membership, if it is a member now: one who came in
    /// through a link of this device's is one only while that link lives.
    fn member(&self, peer: &PeerId, folder: &FolderId) -> Option<(FolderRow, Member)> {
        let st = lock(&self.0.store);
        let row = st.folder(folder).ok().flatten()?;
        let m = st.members(folder).ok()?.into_iter().find(|m| m.peer == peer.to_bytes())?;
        if let Some(link) = m.via_link {
            let live = st.link(link).ok().flatten().is_some_and(|l| crate::links::live(&l, peerbox_store::now()));
            if !live {
                return None;
            }
        }
        Some((row, m))
    }

    /// Members as this device announces them: not those whose link has ended, so
    /// the others forget them too.
    fn wire_members(&self, folder: &FolderId) -> Vec<WireMember> {
        let st = lock(&self.0.store);
        let now = peerbox_store::now();
        let mut out: Vec<WireMember> = st
            .members(folder)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m.via_link.is_none_or(|l| st.link(l).ok().flatten().is_some_and(|l| crate::links::live(&l, now)))
            })
            .map(|m| WireMember { peer: m.peer, read_write: m.read_write, addrs: m.addrs })
            .collect();
        drop(st);
        out.push(WireMember { peer: self.0.me.to_bytes(), read_write: true, addrs: vec![] });
        out
    }
}

impl SyncSource for FolderSource {
    fn join(
        &self,
        peer: PeerId,
        folder: FolderId,
        secret: [u8; 32],
        proof: Option<[u8; 32]>,
    ) -> Result<SyncResponse, SyncRefusal> {
        let link = self.0.gate.admit(&peer, &secret, proof, LinkTarget::Folder(folder))?;
        let row = lock(&self.0.store).folder(&folder).ok().flatten().ok_or(SyncRefusal::NotAllowed)?;
        let read_write = !link.read_only && row.read_write;
        let already =
            lock(&self.0.store).members(&folder).unwrap_or_default().iter().any(|m| m.peer == peer.to_bytes());
        if link.approve && !already {
            lock(&self.0.store)
                .add_join_request(&peerbox_store::JoinRequest {
                    folder,
                    peer: peer.to_bytes(),
                    read_write,
                    created: peerbox_store::now(),
                    via_link: Some(link.id),
                })
                .map_err(|_| SyncRefusal::NotAllowed)?;
            tracing::warn!(%peer, "a device asks to join {:?}; approve with `peerbox approve`", row.name);
            self.0.live.notice("join_request", row.name.clone(), peer.to_string());
            let me = WireMember { peer: self.0.me.to_bytes(), read_write: true, addrs: vec![] };
            return Ok(SyncResponse::Joined { name: row.name, read_write, members: vec![me], pending: true });
        }
        {
            let mut st = lock(&self.0.store);
            // Where it listens, if identify has told us yet (else the node stores it
            // when it does): other members get it with the list, to reach it directly.
            let addrs = self.0.net.listen_of(&peer).iter().map(|a| a.to_vec()).collect();
            let member = Member { via_link: Some(link.id), ..Member::new(peer.to_bytes(), read_write, addrs) };
            st.put_member(&folder, &member).map_err(|_| SyncRefusal::NotAllowed)?;
            st.clear_member_removal(&folder, &peer.to_bytes()).map_err(|_| SyncRefusal::NotAllowed)?;
        }
        tracing::info!(%peer, read_write, "a device joined {:?}", row.name);
        self.0.kick(&folder, Kick::Members);
        Ok(SyncResponse::Joined { name: row.name, read_write, members: self.wire_members(&folder), pending: false })
    }

    fn index(
        &self,
        peer: PeerId,
        folder: FolderId,
        since: u64,
    ) -> Result<(Vec<WireRecord>, u64, Vec<WireMember>), SyncRefusal> {
        let (row, _) = self.member(&peer, &folder).ok_or(SyncRefusal::NotAllowed)?;
        let st = lock(&self.0.store);
        let records = st.files_since(&folder, since, MAX_BATCH).map_err(|_| SyncRefusal::NotAllowed)?;
        let last = records.last().map(|r| r.seq).unwrap_or_else(|| st.folder_seq(&folder).unwrap_or(since).max(since));
        drop(st);
        // A device that may not change the folder announces nothing. (Records of
        // what its patterns ignore now are announced, never served: a member whose
        // patterns agree does not ask, and the records are right if they stop.)
        let records = if row.read_write && row.mode != FolderMode::ReceiveOnly { records } else { vec![] };
        Ok((records.into_iter().map(to_wire).collect(), last, self.wire_members(&folder)))
    }

    fn watch(&self, peer: PeerId, folder: FolderId) -> Option<watch::Receiver<u64>> {
        self.member(&peer, &folder)?;
        self.0.running.lock().unwrap_or_else(|p| p.into_inner()).get(&folder).map(|r| r.seq.subscribe())
    }

    fn block(
        &self,
        peer: PeerId,
        folder: FolderId,
        path: &str,
        index: u32,
        hash: [u8; 32],
        buffers: &peerbox_net::Buffers,
    ) -> Option<Bytes> {
        let ask = BlockAsk { folder, path: path.to_owned(), index, hash };
        self.blocks(peer, &[ask], usize::MAX, buffers).pop().flatten()
    }

    fn blocks(
        &self,
        peer: PeerId,
        asks: &[BlockAsk],
        budget: usize,
        buffers: &peerbox_net::Buffers,
    ) -> Vec<Option<Bytes>> {
        // Permission, patterns and the folder's root once per folder of the lot;
        // the records under one lock, before any file is read.
        let mut folders: HashMap<FolderId, Option<(Arc<Ignores>, cap_std::fs::Dir)>> = HashMap::new();
        let mut held = 0;
        let mut out = Vec::new();
        for chunk in asks.chunks(32) {
            let recs: Vec<Option<peerbox_store::BlockRecord>> = {
                let st = lock(&self.0.store);
                chunk.iter().map(|a| st.block_record(&a.folder, &a.path, a.index).ok().flatten()).collect()
            };
            for (a, rec) in chunk.iter().zip(recs) {
                let f = folders.entry(a.folder).or_insert_with(|| {
                    let (row, _) = self.member(&peer, &a.folder)?;
                    Some((self.0.ignores(&row), disk::open_root(&row.path).ok()?))
                });
                let data = match (f, rec) {
                    (Some((ignores, root)), Some(rec)) => {
                        read_served_block(root, ignores, &rec, &a.path, a.index, a.hash, buffers)
                    }
                    _ => None,
                };
                held += data.as_ref().map_or(0, Bytes::len);
                out.push(data);
                if held >= budget {
                    return out;
                }
            }
        }
        out
    }
}

/// Blocks to request ahead for a batch of files: the window holds
/// [`PULL_WINDOW_BYTES`] of the batch's largest block, within
/// [`PULL_WINDOW`]..=[`PULL_WINDOW_MAX`] blocks.
fn pull_window<'a>(files: impl Iterator<Item = &'a FileMeta>) -> usize {
    let largest = files.map(|m| m.size.min(u64::from(m.block_size))).max().unwrap_or(0).max(1);
    usize::try_from(PULL_WINDOW_BYTES / largest).unwrap_or(usize::MAX).clamp(PULL_WINDOW, PULL_WINDOW_MAX)
}

/// A block of a folder's file as served to a member: only what the index says
/// this device has, not ignored here, and still matching its hash.
fn read_served_block(
    root: &cap_std::fs::Dir,
    ignores: &Ignores,
    rec: &peerbox_store::BlockRecord,
    path: &str,
    index: u32,
    hash: [u8; 32],
    buffers: &peerbox_net::Buffers,
) -> Option<Bytes> {
    let rel = RelPath::new(path).ok()?;
    if ignores.is_ignored(rel.as_str(), false) {
        return None;
    }
    if !rec.servable || rec.hash != Some(hash) {
        return None;
    }
    let f = root.open(rel.as_str()).ok()?.into_std();
    let len = block_len(rec.size, rec.block_size, index as u64) as usize;
    let mut buf = buffers.take(len);
    peerbox_engine::io::read_at(&f, &mut buf, index as u64 * rec.block_size as u64).ok()?;
    // The file may have changed since it was scanned: serve only what matches.
    // Unchanged since (its stamp, taken after the read, is the index's), it is
    // what was hashed; only a changed one is hashed again here.
    let unchanged = rec.local.is_some() && f.metadata().ok().map(|m| peerbox_engine::stamp_of(&m)) == rec.local;
    (unchanged || peerbox_engine::hash_block(&buf) == hash).then(|| buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbox_proto::manifest::block_size_for;

    fn meta(size: u64) -> FileMeta {
        FileMeta { size, mtime_ns: 0, executable: false, block_size: block_size_for(size), blocks: Vec::new() }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn blocking_chunks_keep_the_order_of_their_items() {
        for n in [0, 1, DISK_CHUNK_MIN, 5 * DISK_CHUNK_MIN + 3] {
            let got = in_blocking_chunks((0..n).collect(), |i| i * 2).await.expect("ran");
            assert_eq!(got, (0..n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn closed_moved_and_deleted_files_are_settled_while_written_ones_are_not() {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode};
        for done in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Create(CreateKind::Folder),
        ] {
            assert!(settles(&done), "{done:?} ends a change");
        }
        for writing in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Any,
        ] {
            assert!(!settles(&writing), "{writing:?} may be followed by more writes");
        }
    }

    #[test]
    fn a_scan_waits_for_quiet_after_complete_changes_and_for_the_debounce_after_others() {
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        let changed =
            |paths: &[(&str, bool)]| Pending { paths: paths.iter().map(|(p, s)| ((*p).into(), *s)).collect() };
        // A file moved in: scanned as soon as the burst is quiet.
        let mut p = changed(&[("a", true)]);
        assert_eq!(p.scan_at(t0, t0), t0 + SETTLED);
        // More of the burst pushes the scan back, never past the debounce.
        p.merge(changed(&[("b", true)]));
        assert_eq!(p.scan_at(t0, t0 + ms(10)), t0 + ms(10) + SETTLED);
        assert_eq!(p.scan_at(t0, t0 + ms(140)), t0 + DEBOUNCE);
        // A file still being written holds the batch for the debounce ...
        p.merge(changed(&[("c", false)]));
        assert_eq!(p.scan_at(t0, t0 + ms(10)), t0 + DEBOUNCE);
        // ... until its writer closes it.
        p.merge(changed(&[("c", true)]));
        assert_eq!(p.scan_at(t0, t0 + ms(30)), t0 + ms(30) + SETTLED);
        // Everything absorbs paths; what a request asks for is complete.
        p.merge(Pending::asked(vec![]));
        assert!(p.paths.is_empty(), "a full scan stays a full scan");
        p.merge(changed(&[("d", false)]));
        assert!(p.paths.is_empty());
        assert_eq!(Pending::asked(vec!["x".into()]).scan_at(t0, t0), t0 + SETTLED);
    }

    /// Walks the folder at `root` as a scan does (all of it, or `scope`), watching
    /// each directory before listing it.
    fn walk_watching(root: &Path, watch: &FolderWatch, scope: Option<&[String]>) {
        let watch_dir = |d: &Path| watch.dir(d);
        let none = None::<&mut disk::NoRecorder>;
        disk::scan_folder_with(root, &HashMap::new(), 1, scope, &Ignores::default(), &watch_dir, none).unwrap();
    }

    /// Waits until the watcher reports `path`; returns every path it reported.
    async fn reported(changes: &Changes, path: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        while !seen.contains(path) {
            let woke = tokio::time::timeout(Duration::from_secs(30), changes.wake.notified()).await;
            assert!(woke.is_ok(), "{path} was never reported (saw {seen:?})");
            seen.extend(changes.take().into_iter().flat_map(|p| p.paths.into_keys()));
        }
        seen
    }

    fn watched_folder() -> (tempfile::TempDir, PathBuf, Arc<Changes>, Arc<FolderWatch>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("f");
        disk::create_marker(&root).unwrap();
        let changes = Arc::new(Changes::default());
        let watch = FolderWatch::start(&root, changes.clone()).unwrap();
        (dir, root, changes, watch)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_watcher_does_not_follow_a_link_out_of_the_folder() {
        let (dir, root, changes, watch) = watched_folder();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        walk_watching(&root, &watch, None);
        std::fs::write(outside.join("sub/x"), b"x").unwrap();
        std::fs::write(root.join("inside"), b"y").unwrap();
        // One inotify queue delivers in order: once the later write inside is
        // seen, the earlier one outside would have been, had it been watched.
        let seen = reported(&changes, "inside").await;
        assert!(seen.iter().all(|p| !p.starts_with("link")), "reported through the link: {seen:?}");
    }

    /// Per-directory watches: a folder made after the scan is watched once the
    /// scan its creation brings has walked it, and what is written in it then is
    /// reported like anything else.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_folder_made_later_is_watched_once_its_scan_walks_it() {
        let (_dir, root, changes, watch) = watched_folder();
        std::fs::create_dir_all(root.join("old/deep")).unwrap();
        walk_watching(&root, &watch, None);
        std::fs::write(root.join("old/deep/a.txt"), b"a").unwrap();
        reported(&changes, "old/deep/a.txt").await;

        std::fs::create_dir(root.join("new")).unwrap();
        reported(&changes, "new").await;
        walk_watching(&root, &watch, Some(&["new".to_owned()]));
        std::fs::create_dir(root.join("new/sub")).unwrap();
        std::fs::write(root.join("new/sub/b.txt"), b"b").unwrap();
        std::fs::write(root.join("new/c.txt"), b"c").unwrap();
        let seen = reported(&changes, "new/c.txt").await;
        // Made after that walk, "new/sub" is reported, and its own scan watches it.
        assert!(seen.contains("new/sub"), "{seen:?}");
        walk_watching(&root, &watch, Some(&["new/sub".to_owned()]));
        std::fs::write(root.join("new/sub/d.txt"), b"d").unwrap();
        reported(&changes, "new/sub/d.txt").await;

        // Moved out and back (the same directories, the same paths): notify dropped
        // their watches, and the next walk watches them again.
        let away = root.parent().unwrap().join("away");
        std::fs::rename(root.join("old"), &away).unwrap();
        reported(&changes, "old").await;
        std::fs::rename(&away, root.join("old")).unwrap();
        reported(&changes, "old").await;
        walk_watching(&root, &watch, None);
        std::fs::write(root.join("old/deep/e.txt"), b"e").unwrap();
        reported(&changes, "old/deep/e.txt").await;
    }

    #[test]
    fn the_pull_window_holds_a_megabyte_of_the_largest_block() {
        let small: Vec<FileMeta> = (0..10).map(|_| meta(4096)).collect();
        assert_eq!(pull_window(small.iter()), PULL_WINDOW_MAX, "4 KiB files: 256 in flight");
        assert_eq!(pull_window([meta(8192), meta(100)].iter()), 128);
        // One big file among them: its blocks set the window, as before.
        assert_eq!(pull_window([meta(4096), meta(1 << 30)].iter()), PULL_WINDOW);
        assert_eq!(pull_window([meta(0)].iter()), PULL_WINDOW_MAX, "empty files need no blocks");
        assert_eq!(pull_window(std::iter::empty()), PULL_WINDOW_MAX);
    }

    fn record(path: &str, version: peerbox_proto::index::Version, deleted: bool, have: bool) -> FileRecord {
        FileRecord {
            path: path.into(),
            dir: false,
            deleted,
            size: 1,
            mtime_ns: 0,
            executable: false,
            block_size: block_size_for(1),
            blocks: vec![[1; 32]],
            version,
            seq: 0,
            modified_by: 1,
            have,
            local: None,
        }
    }

    #[test]
    fn only_news_that_could_be_pulled_wakes_a_pull() {
        let v1 = peerbox_proto::index::Version::default().bump(1);
        let mine = record("a", v1.clone(), false, true);
        // A member that took our version (what a sync mostly sends back): nothing.
        assert!(!might_take(&record("a", v1.clone(), false, true), Some(&mine)));
        assert!(!might_take(&record("a", peerbox_proto::index::Version::default(), false, true), Some(&mine)));
        // Its own change, or one made at once with ours: a pull decides.
        assert!(might_take(&record("a", v1.bump(2), false, true), Some(&mine)));
        assert!(might_take(&record("a", peerbox_proto::index::Version::default().bump(2), false, true), Some(&mine)));
        // Something we know of but do not have (on demand, reverted), or never saw.
        assert!(might_take(&record("a", v1.clone(), false, true), Some(&record("a", v1.clone(), false, false))));
        assert!(might_take(&record("b", v1.clone(), false, true), None));
        // The delete of a file we never had.
        assert!(!might_take(&record("c", v1, true, true), None));
    }
}
