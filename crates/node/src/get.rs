//! Downloading a file-set link: connect to the sharer, receive and check the
//! manifest, plan against the destination, then fetch missing blocks with many in
//! flight while verified writes run on blocking threads.
//!
//! A download runs in rounds: if the session breaks or some blocks fail
//! verification, the next round reconnects and asks only for what is still
//! missing. A round that makes no progress ends the download with an error.
//!
//! Every round pulls from every source it can open: the sharer, and devices the
//! DHT names as providers of the share (earlier recipients that serve what they
//! got). Sessions take blocks from one shared queue as their window frees up, so
//! faster sources get more.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::{Multiaddr, PeerId};
use peerbox_engine::{BlockError, Download, FileStatus};
use peerbox_net::Network;
use peerbox_net::blocks::{self, BlockRequest, SessionError};
use peerbox_proto::blocks::PROTOCOL;
use peerbox_proto::{Link, LinkKind};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::NodeError;

/// How long connecting to the sharer may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Rounds without which a download gives up (each must make progress).
const MAX_ROUNDS: usize = 5;
/// Bytes of block requests in flight per session: enough to fill a long fat
/// pipe, small enough to bound memory.
const IN_FLIGHT_BYTES: u64 = 16 << 20;
/// Bytes of received blocks queued for a write, and bytes being verified and
/// written at once. Counted in bytes, not blocks, so that a download's memory
/// does not grow with the block size (which grows with the file).
const QUEUED_BYTES: u64 = 8 << 20;
const WRITING_BYTES: u64 = 16 << 20;
/// Verified writes running at once, at most (small blocks).
const MAX_WRITES: usize = 4;
/// Bytes of received blocks handed to one blocking task to verify and write.
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// How long a download looks for other sources in the DHT before it starts.
const PROVIDER_LOOKUP: Duration = Duration::from_secs(3);
/// Sources used at once besides the sharer.
const MAX_EXTRA_SOURCES: usize = 15;
/// Blocks that fail verification before their source is dropped for the rest of
/// the download (what it owed comes from the others, or the next round).
const BAD_BLOCKS_LIMIT: usize = 3;

/// What `get` should do.
#[derive(Debug, Clone)]
pub struct GetOptions {
    /// Destination folder.
    pub dest: PathBuf,
    /// Replace existing files with different content.
    pub overwrite: bool,
    /// Find the sharer only through the LAN and the DHT, never at the link's
    /// addresses (for labs that prove those paths).
    pub ignore_link_addrs: bool,
    /// The password proof, for a link that takes one (see `links::proof_for`).
    pub proof: Option<[u8; 32]>,
    /// Asked with the download's size once the file list is in: whether it must
    /// wait (the download window is closed). It then ends with
    /// [`NodeError::Scheduled`], its verified blocks kept for later.
    pub hold: Option<Hold>,
}

/// See [`GetOptions::hold`].
#[derive(Clone)]
pub struct Hold(pub std::sync::Arc<dyn Fn(u64) -> bool + Send + Sync>);

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// Names a share's top entries as people say it: "trip.mp4", "photos and 2 more".
fn label_of(entries: &[(peerbox_proto::RelPath, peerbox_proto::Entry)]) -> String {
    let tops: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).filter(|p| !p.contains('/')).collect();
    match tops.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// Progress of a download, for bars and the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GetProgress {
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes verified and in place or in temp files.
    pub done_bytes: u64,
    /// Bytes that were already present when this run started.
    pub resumed_bytes: u64,
    /// Files in the share.
    pub files_total: usize,
    /// Files complete.
    pub files_done: usize,
    /// What the share holds, as its top names say it (peer data).
    pub label: String,
    /// Temp files and folders this download fills (under the destination), for a
    /// cancel to remove.
    #[serde(skip)]
    pub temps: Vec<PathBuf>,
    /// Devices sending blocks this round (the sharer and others that have them).
    pub sources: usize,
}

/// The result of a download.
#[derive(Debug, Clone, Serialize)]
pub struct GetOutcome {
    /// Every entry's final path, in manifest order.
    pub paths: Vec<PathBuf>,
    /// Files in the share (entries that are not folders).
    pub files: usize,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes this run received over the network and kept.
    pub fetched_bytes: u64,
    /// Bytes already present (identical files, verified temp blocks).
    pub resumed_bytes: u64,
    /// Entries left out, with reasons.
    pub problems: Vec<String>,
    /// Bytes each source (PeerId) sent that were kept.
    pub sources: BTreeMap<String, u64>,
    /// The manifest as received, with where each entry ended up.
    #[serde(skip)]
    pub received: Vec<(peerbox_proto::Entry, PathBuf)>,
}

/// Checks what can be checked about a link without the network.
pub(crate) fn check_link(link: &Link, me: PeerId) -> Result<(PeerId, Vec<Multiaddr>), NodeError> {
    if link.kind != LinkKind::Files {
        return Err(NodeError::LinkUnusable("this is a shared-folder link; join it with `peerbox folder join`".into()));
    }
    if link.is_expired(peerbox_store::now()) {
        return Err(NodeError::LinkUnusable("this link has expired; ask the sender for a new one".into()));
    }
    let peer = PeerId::from_bytes(&link.peer)
        .map_err(|_| NodeError::LinkUnusable("the link names an invalid sharer id".into()))?;
    if peer == me {
        return Err(NodeError::LinkUnusable("this link was shared by this device itself".into()));
    }
    let addrs = link.addrs.iter().filter_map(|a| Multiaddr::try_from(a.clone()).ok()).collect();
    Ok((peer, addrs))
}

pub(crate) async fn get(
    net: &Network,
    link: &Link,
    opts: &GetOptions,
    progress: &watch::Sender<GetProgress>,
) -> Result<GetOutcome, NodeError> {
    let (peer, mut addrs) = check_link(link, net.peer_id())?;
    if link.password && opts.proof.is_none() {
        return Err(NodeError::PasswordNeeded);
    }
    if opts.ignore_link_addrs {
        addrs.clear();
    }
    let mut plan: Option<Arc<Plan>> = None;
    let mut fetched = 0u64;
    let mut last_error = None;
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    // Other sources join while the sharer already sends; until they do, the
    // sharer's session may not claim the whole download up front.
    let may_find_more = net.info().await.map(|i| i.dht_peers > 0).unwrap_or(false);
    let mut extra: Vec<PeerId> = Vec::new();
    // Sources that sent blocks that do not match: not asked again.
    let mut dropped: HashSet<PeerId> = HashSet::new();
    for round in 1..=MAX_ROUNDS {
        let mut tasks: FuturesUnordered<futures::future::BoxFuture<'_, Ev>> = FuturesUnordered::new();
        if round == 1 && may_find_more {
            let key = peerbox_proto::link::provide_key(&link.id);
            if let Ok(rx) = net.find_providers(key, PROVIDER_LOOKUP).await {
                tasks.push(next_provider(rx));
            }
        }
        let first: Vec<(PeerId, Vec<Multiaddr>)> = std::iter::once((peer, addrs.clone()))
            .chain(extra.iter().map(|p| (*p, Vec::new())))
            .filter(|(p, _)| !dropped.contains(p))
            .collect();
        for (source, a) in first {
            tasks.push(Box::pin(open_source(net, link, opts.proof, source, a)));
        }
        let mut queue: Option<BlockQueue> = None;
        let mut opened = 0usize;
        let before = fetched;
        while let Some(ev) = tasks.next().await {
            match ev {
                Ev::Found(None, _) => {}
                Ev::Found(Some(source), rx) => {
                    tracing::debug!(%source, "the DHT names a source");
                    // The network never names this device; the sharer is open already.
                    if source != peer
                        && !extra.contains(&source)
                        && !dropped.contains(&source)
                        && extra.len() < MAX_EXTRA_SOURCES
                    {
                        extra.push(source);
                        tasks.push(Box::pin(open_source(net, link, opts.proof, source, Vec::new())));
                    }
                    tasks.push(next_provider(rx));
                }
                // The sharer refusing (revoked, expired, wrong secret) ends it; a
                // recipient refusing only loses one source.
                Ev::Open(source, Err(e @ NodeError::Session(SessionError::Refused(_)))) if source == peer => {
                    return Err(e);
                }
                Ev::Open(source, Err(e)) => {
                    if source == peer {
                        tracing::info!(%source, "the sharer cannot be reached this round: {e}");
                        last_error = Some(e);
                    } else {
                        tracing::debug!(%source, "source unavailable: {e}");
                    }
                }
                Ev::Open(source, Ok(o)) => {
                    tracing::debug!(%source, "session open");
                    let p = match &plan {
                        Some(p) => p.clone(),
                        None => {
                            let p = Arc::new(start_plan(opts, o.entries.clone(), progress).await?);
                            if opts.hold.as_ref().is_some_and(|h| (h.0)(p.dl.total_bytes())) {
                                return Err(NodeError::Scheduled);
                            }
                            plan = Some(p.clone());
                            p
                        }
                    };
                    let q = queue.get_or_insert_with(|| BlockQueue::new(p.missing())).clone();
                    if q.is_done() {
                        continue;
                    }
                    opened += 1;
                    progress.send_modify(|pr| pr.sources = opened);
                    let cap = if may_find_more || opened > 1 { (q.todo() / 8).max(4) } else { usize::MAX };
                    let mine = q.session();
                    tasks.push(Box::pin(async move { Ev::Done(source, p.fetch(o.stream, mine, cap, progress).await) }));
                }
                Ev::Done(source, (got, err)) => {
                    fetched += got;
                    if got > 0 {
                        *sources.entry(source.to_string()).or_default() += got;
                    }
                    if let Some(e) = err {
                        if source == peer && matches!(e, NodeError::Session(SessionError::Refused(_))) {
                            return Err(e);
                        }
                        if matches!(e, NodeError::BadSource) {
                            tracing::warn!(%source, "dropped as a source: it sent blocks that do not match");
                            dropped.insert(source);
                        }
                        tracing::info!(%source, "round {round}: {e}");
                        last_error = Some(e);
                    }
                }
            }
        }
        let Some(p) = plan.as_ref() else {
            if round < MAX_ROUNDS && !extra.is_empty() {
                continue;
            }
            return Err(last_error.unwrap_or_else(|| NodeError::Internal("no source could be opened".into())));
        };
        if p.missing().is_empty() {
            break;
        }
        if fetched == before && opened > 0 {
            break;
        }
    }
    let Some(p) = plan else {
        return Err(last_error.unwrap_or_else(|| NodeError::Internal("no download round ran".into())));
    };
    let missing = p.missing().len();
    if missing == 0 {
        // Every block is in; a file that could not be put in place (its folder
        // changed under it, the disk refused the rename) fails the download here.
        p.finish_complete(progress).await?;
    }
    if missing > 0 {
        let why = last_error.map(|e| e.to_string()).unwrap_or_else(|| "the sharer did not send them".into());
        let bad = p.bad_blocks.lock().map(|b| *b).unwrap_or(0);
        let extra =
            if bad > 0 { format!("; {bad} blocks failed verification and were discarded") } else { String::new() };
        return Err(NodeError::Incomplete(format!(
            "{missing} blocks are still missing ({why}{extra}); run the same command again to resume"
        )));
    }
    Ok(GetOutcome {
        paths: p.paths.clone(),
        files: p.dl.files.len(),
        total_bytes: p.dl.total_bytes(),
        fetched_bytes: fetched,
        resumed_bytes: p.dl.resumed_bytes,
        problems: p.dl.problems.clone(),
        sources,
        received: p.entries.iter().map(|(_, e)| e.clone()).zip(p.paths.iter().cloned()).collect(),
    })
}

/// The blocks of a round, shared by its sessions: each takes the next one still to
/// ask for when its window has room, so faster sources get more.
///
/// Once none is left to ask for, a session with room takes a second copy of a
/// block another session is still waiting for, the longest-waiting first (the
/// endgame): the last blocks of a download then never wait on its slowest source,
/// and a source that joins late still helps. Each block is asked of at most two
/// sessions; the first good copy counts, the other is dropped unwritten. A
/// session that ends gives back what it still owed, and when every block is in,
/// the sessions still waiting on copies are told to stop.
#[derive(Clone)]
struct BlockQueue {
    shared: Arc<Mutex<Blocks>>,
    all_in: watch::Receiver<bool>,
}

struct Blocks {
    /// Not yet asked of any session, in download order.
    todo: VecDeque<BlockRequest>,
    /// Asked and not yet in: the sessions asked.
    asked: HashMap<BlockRequest, Vec<usize>>,
    /// The order blocks were first asked in (entries no longer asked are skipped).
    order: VecDeque<BlockRequest>,
    sessions: usize,
    all_in: watch::Sender<bool>,
}

impl Blocks {
    fn check_all_in(&self) {
        if self.todo.is_empty() && self.asked.is_empty() {
            self.all_in.send_replace(true);
        }
    }
}

/// Copies of one block asked at once, at most.
const MAX_COPIES: usize = 2;

impl BlockQueue {
    fn new(requests: Vec<BlockRequest>) -> Self {
        let (tx, all_in) = watch::channel(requests.is_empty());
        let blocks =
            Blocks { todo: requests.into(), asked: HashMap::new(), order: VecDeque::new(), sessions: 0, all_in: tx };
        Self { shared: Arc::new(Mutex::new(blocks)), all_in }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every block is in: nothing for a new session to do.
    fn is_done(&self) -> bool {
        *self.all_in.borrow()
    }

    /// Blocks not yet asked of anyone.
    fn todo(&self) -> usize {
        self.lock().todo.len()
    }

    /// A new session's view of the queue.
    fn session(&self) -> SessionBlocks {
        let id = {
            let mut b = self.lock();
            b.sessions += 1;
            b.sessions
        };
        SessionBlocks { queue: self.clone(), id }
    }
}

/// One session's side of a [`BlockQueue`]; as an iterator, the next block for it
/// to ask.
#[derive(Clone)]
struct SessionBlocks {
    queue: BlockQueue,
    id: usize,
}

impl SessionBlocks {
    /// `r` is in (written now, or already): nobody need ask for it again.
    fn arrived(&self, r: BlockRequest) {
        let mut b = self.queue.lock();
        b.asked.remove(&r);
        b.check_all_in();
    }

    /// This session will not bring `r` (a bad copy, or the source lacks it): it
    /// goes back to be asked again, unless another session is still on it.
    fn failed(&self, r: BlockRequest) {
        let mut b = self.queue.lock();
        if let Some(who) = b.asked.get_mut(&r) {
            who.retain(|s| *s != self.id);
            if who.is_empty() {
                b.asked.remove(&r);
                b.todo.push_front(r);
            }
        }
    }

    /// The session ended: what it still owed goes back to the others.
    fn release(&self) {
        let mut b = self.queue.lock();
        let mut back = Vec::new();
        b.asked.retain(|r, who| {
            who.retain(|s| *s != self.id);
            if who.is_empty() {
                back.push(*r);
                return false;
            }
            true
        });
        for r in back {
            b.todo.push_front(r);
        }
        b.check_all_in();
    }

    /// Resolves once every block of the round is in.
    async fn all_in(&self) {
        let mut rx = self.queue.all_in.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl Iterator for SessionBlocks {
    type Item = BlockRequest;

    fn next(&mut self) -> Option<BlockRequest> {
        let mut guard = self.queue.lock();
        let b = &mut *guard;
        if let Some(r) = b.todo.pop_front() {
            b.asked.insert(r, vec![self.id]);
            b.order.push_back(r);
            return Some(r);
        }
        // The endgame: a second copy of the longest-waiting block.
        while b.order.front().is_some_and(|r| !b.asked.contains_key(r)) {
            b.order.pop_front();
        }
        let pick = b
            .order
            .iter()
            .copied()
            .find(|r| b.asked.get(r).is_some_and(|who| who.len() < MAX_COPIES && !who.contains(&self.id)))?;
        b.asked.get_mut(&pick)?.push(self.id);
        Some(pick)
    }
}

/// What happens during a round, as the tasks of the round report it.
enum Ev {
    /// The DHT named another source (`None`: the search ended).
    Found(Option<PeerId>, mpsc::Receiver<PeerId>),
    /// A session was opened on a source (or not).
    Open(PeerId, Result<blocks::Opened<peerbox_net::PeerStream>, NodeError>),
    /// A source's session ended: bytes kept and the error that ended it early.
    Done(PeerId, (u64, Option<NodeError>)),
}

/// Waits for the provider search's next find (`None`: it ended).
fn next_provider(mut rx: mpsc::Receiver<PeerId>) -> futures::future::BoxFuture<'static, Ev> {
    Box::pin(async move {
        let next = rx.recv().await;
        Ev::Found(next, rx)
    })
}

async fn open_source(net: &Network, link: &Link, proof: Option<[u8; 32]>, source: PeerId, addrs: Vec<Multiaddr>) -> Ev {
    let r = retry_early(|| async {
        let stream = connect(net, source, &addrs).await?;
        Ok::<_, NodeError>(blocks::open_share(stream, link.id, link.secret, proof).await?)
    })
    .await;
    Ev::Open(source, r)
}

/// Tries opening a session again when the stream broke before the other side said
/// anything. `libp2p-stream` drops an inbound stream that arrives while the
/// accepting side is still taking the one before (two downloaders at the same
/// instant); the peer is fine, a second try a moment later gets through.
pub(crate) async fn retry_early<T, F, Fut>(mut open: F) -> Result<T, NodeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NodeError>>,
{
    let mut wait = Duration::from_millis(50);
    for _ in 0..OPEN_TRIES - 1 {
        match open().await {
            Err(e) if broke_early(&e) => {
                tracing::debug!("opening a session broke off ({e}); trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    open().await
}

/// How often a session is tried before its error counts.
const OPEN_TRIES: usize = 4;

fn broke_early(e: &NodeError) -> bool {
    matches!(e, NodeError::Session(SessionError::Io(_)) | NodeError::Net(peerbox_net::NetError::Stream { .. }))
        || matches!(e, NodeError::Session(SessionError::Protocol(m)) if m.contains("stream ended") || m.contains("closed"))
}

/// Plans the download from the first manifest received and reports it.
async fn start_plan(
    opts: &GetOptions,
    entries: Vec<(peerbox_proto::RelPath, peerbox_proto::Entry)>,
    progress: &watch::Sender<GetProgress>,
) -> Result<Plan, NodeError> {
    let label = label_of(&entries);
    let p = Plan::new(opts, entries).await?;
    let temps =
        p.dl.files
            .iter()
            .filter_map(|f| match &f.status {
                FileStatus::Pending(t) => Some(opts.dest.join(t.rel_path())),
                _ => None,
            })
            .chain(p.dl.temp_folders().map(|d| opts.dest.join(d)))
            .collect();
    progress.send_modify(|pr| {
        pr.label = label;
        pr.temps = temps;
        pr.total_bytes = p.dl.total_bytes();
        pr.resumed_bytes = p.dl.resumed_bytes;
        pr.done_bytes = p.dl.resumed_bytes;
        pr.files_total = p.dl.files.len();
    });
    p.finish_complete(progress).await?;
    Ok(p)
}

async fn connect(net: &Network, peer: PeerId, addrs: &[Multiaddr]) -> Result<peerbox_net::PeerStream, NodeError> {
    tokio::time::timeout(DIAL_TIMEOUT, net.dial(peer, addrs.to_vec()))
        .await
        .map_err(|_| NodeError::Net(peerbox_net::NetError::Unreachable { peer, reason: "timed out".into() }))??;
    Ok(net.open_stream(peer, PROTOCOL).await?)
}

/// How many blocks one session may have requested, queued and being written.
#[derive(Debug, PartialEq)]
struct Budget {
    window: usize,
    queued: usize,
    writes: usize,
}

impl Budget {
    fn for_blocks(block_size: u64) -> Self {
        let block_size = block_size.max(1);
        let n = |bytes: u64| (bytes / block_size) as usize;
        Self {
            // Two in flight at least, or the sharer idles while one crosses.
            window: n(IN_FLIGHT_BYTES).clamp(2, 256),
            queued: n(QUEUED_BYTES).max(1),
            writes: n(WRITING_BYTES).clamp(1, MAX_WRITES),
        }
    }
}

/// What came of one block.
enum Wrote {
    /// Verified and written: its bytes. (A completed file is put in place, and
    /// counted, by `finish_complete`.)
    Kept(u64),
    /// It did not match its hash or length: discarded.
    Bad,
    /// Not needed (already there).
    Nothing,
}

/// A prepared download and the bookkeeping around it.
struct Plan {
    dl: Arc<Download>,
    /// Manifest entry index → position in `dl.files`.
    by_entry: HashMap<u32, usize>,
    finished: Arc<Mutex<HashSet<usize>>>,
    bad_blocks: Arc<Mutex<u64>>,
    paths: Vec<PathBuf>,
    /// The manifest, in order.
    entries: Vec<(peerbox_proto::RelPath, peerbox_proto::Entry)>,
}

impl Plan {
    async fn new(
        opts: &GetOptions,
        entries: Vec<(peerbox_proto::RelPath, peerbox_proto::Entry)>,
    ) -> Result<Self, NodeError> {
        let dest = opts.dest.clone();
        let overwrite = opts.overwrite;
        let (dl, paths, entries) = tokio::task::spawn_blocking(move || {
            let dl = Download::prepare(&dest, &entries, overwrite)?;
            let paths = entries.iter().map(|(p, _)| dl.final_path(p)).collect();
            Ok::<_, NodeError>((dl, paths, entries))
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
        let by_entry = dl.files.iter().enumerate().map(|(i, f)| (f.index, i)).collect();
        Ok(Self {
            dl: Arc::new(dl),
            by_entry,
            finished: Arc::new(Mutex::new(HashSet::new())),
            bad_blocks: Arc::new(Mutex::new(0)),
            paths,
            entries,
        })
    }

    /// Moves files that need nothing more into place (empty files, fully resumed).
    async fn finish_complete(&self, progress: &watch::Sender<GetProgress>) -> Result<(), NodeError> {
        let dl = self.dl.clone();
        let finished = self.finished.clone();
        let done = tokio::task::spawn_blocking(move || {
            let ready: Vec<usize> = {
                let finished = finished.lock().unwrap_or_else(|p| p.into_inner());
                dl.ready()
                    .into_iter()
                    .enumerate()
                    .filter(|&(i, r)| r && !finished.contains(&i))
                    .map(|(i, _)| i)
                    .collect()
            };
            // One durability pass for all of them (see `Download::finish_batch`).
            let files: Vec<_> = ready.iter().map(|&i| &dl.files[i]).collect();
            let mut n = 0;
            let mut first_error = None;
            for (i, r) in ready.iter().zip(dl.finish_batch(&files)) {
                match r {
                    Ok(_) => {
                        finished.lock().unwrap_or_else(|p| p.into_inner()).insert(*i);
                        n += 1;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) => Err(NodeError::from(e)),
                None => Ok::<_, NodeError>(n),
            }
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
        progress.send_modify(|p| p.files_done += done);
        Ok(())
    }

    fn missing(&self) -> Vec<BlockRequest> {
        let mut out = Vec::new();
        for f in &self.dl.files {
            if let FileStatus::Pending(t) = &f.status {
                out.extend(t.missing().into_iter().map(|b| BlockRequest { file: f.index, block: b as u32 }));
            }
        }
        out
    }

    /// One round: fetch `requests` over `stream`. Returns bytes kept and the error
    /// that ended the round early, if any.
    async fn fetch(
        &self,
        stream: peerbox_net::PeerStream,
        requests: SessionBlocks,
        window_cap: usize,
        progress: &watch::Sender<GetProgress>,
    ) -> (u64, Option<NodeError>) {
        let block_size = self.dl.files.iter().map(|f| f.meta.block_size as u64).max().unwrap_or(1);
        let b = Budget::for_blocks(block_size);
        let window = b.window.min(window_cap);
        let max_writes = b.writes;
        let (tx, mut rx) = mpsc::channel(b.queued);
        let buffers = peerbox_net::Buffers::default();
        let session = tokio::spawn(blocks::fetch(stream, requests.clone(), window, tx, buffers.clone()));
        let mut writes = FuturesUnordered::new();
        let mut kept = 0u64;
        let mut error = None;
        let mut open = true;
        let mut bad = 0usize;
        let all_in = requests.all_in();
        tokio::pin!(all_in);
        while open || !writes.is_empty() {
            tokio::select! {
                r = rx.recv(), if open && writes.len() < max_writes => {
                    // What else has arrived goes along in the same blocking task:
                    // small files come as many small blocks, and a hand-off to a
                    // thread per block cost more than its write.
                    let mut batch = Vec::new();
                    let mut bytes = 0;
                    let mut next = r;
                    if next.is_none() {
                        open = false;
                    }
                    while let Some((req, got)) = next.take() {
                        match got {
                            Ok(data) => {
                                bytes += data.len();
                                batch.push((req, data));
                            }
                            Err(reason) => {
                                requests.failed(req);
                                tracing::warn!(file = req.file, block = req.block, "sharer cannot serve a block: {reason:?}");
                                error = Some(NodeError::Incomplete(format!("the sharer could not serve some blocks ({reason:?}); the shared files may have changed")));
                            }
                        }
                        if bytes < WRITE_BATCH_BYTES {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !batch.is_empty() {
                        writes.push(self.write(batch, &buffers));
                    }
                }
                Some(done) = writes.next(), if !writes.is_empty() => for (req, w) in done {
                    match w {
                        Ok(Ok(Wrote::Kept(len))) => kept += arrived(&requests, progress, req, len),
                        Ok(Ok(Wrote::Nothing)) => requests.arrived(req),
                        Ok(Ok(Wrote::Bad)) => {
                            requests.failed(req);
                            bad += 1;
                            if bad == BAD_BLOCKS_LIMIT {
                                error = Some(NodeError::BadSource);
                            }
                        }
                        Ok(Err(e)) => {
                            requests.failed(req);
                            if error.is_none() || !matches!(e, NodeError::Engine(_)) {
                                error = Some(e);
                            }
                        }
                        Err(e) => error = Some(NodeError::Internal(e)),
                    }
                },
                // Other sessions brought in what this one still waits for.
                () = &mut all_in, if open => {
                    if !session.is_finished() {
                        session.abort();
                    }
                    open = false;
                }
            }
            if matches!(error, Some(NodeError::Io { .. } | NodeError::WouldOverwrite(_) | NodeError::BadSource)) {
                // Local trouble (disk full, read-only), or a source that lies:
                // stop asking for more.
                session.abort();
                break;
            }
        }
        while let Some(done) = writes.next().await {
            for (req, w) in done {
                match w {
                    Ok(Ok(Wrote::Kept(len))) => kept += arrived(&requests, progress, req, len),
                    Ok(Ok(Wrote::Nothing)) => requests.arrived(req),
                    _ => requests.failed(req),
                }
            }
        }
        // What it was still asked for goes back to the round's other sessions.
        requests.release();
        match session.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if matches!(error, Some(NodeError::BadSource)) => {}
            Ok(Err(e)) => error = Some(e.into()),
            Err(e) if e.is_cancelled() => {}
            Err(e) => error = Some(NodeError::Internal(e.to_string())),
        }
        (kept, error)
    }

    /// Verifies and writes blocks on a blocking thread, one after the other, and
    /// gives their buffers back to `buffers`.
    fn write(
        &self,
        batch: Vec<(BlockRequest, bytes::Bytes)>,
        buffers: &peerbox_net::Buffers,
    ) -> impl Future<Output = Vec<(BlockRequest, WriteResult)>> + use<> {
        let dl = self.dl.clone();
        let at: Vec<Option<usize>> = batch.iter().map(|(req, _)| self.by_entry.get(&req.file).copied()).collect();
        let bad = self.bad_blocks.clone();
        let reqs: Vec<BlockRequest> = batch.iter().map(|(req, _)| *req).collect();
        let buffers = buffers.clone();
        let task = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .zip(at)
                .map(|((req, data), idx)| {
                    let wrote = write_one(&dl, &bad, req, &data, idx);
                    buffers.give_back(data);
                    wrote
                })
                .collect::<Vec<_>>()
        });
        async move {
            match task.await {
                Ok(done) => reqs.into_iter().zip(done.into_iter().map(Ok)).collect(),
                Err(e) => reqs.into_iter().map(|req| (req, Err(e.to_string()))).collect(),
            }
        }
    }
}

/// Counts a block verified and written: its `len` bytes.
fn arrived(requests: &SessionBlocks, progress: &watch::Sender<GetProgress>, req: BlockRequest, len: u64) -> u64 {
    requests.arrived(req);
    progress.send_modify(|p| p.done_bytes += len);
    len
}

/// What came of writing one block, or why its blocking task did not run.
type WriteResult = Result<Result<Wrote, NodeError>, String>;

/// Verifies and writes one block of the file at `idx` in `dl.files`.
fn write_one(
    dl: &Download,
    bad: &Mutex<u64>,
    req: BlockRequest,
    data: &[u8],
    idx: Option<usize>,
) -> Result<Wrote, NodeError> {
    let Some(idx) = idx else { return Ok(Wrote::Nothing) };
    let f = &dl.files[idx];
    let FileStatus::Pending(tmp) = &f.status else { return Ok(Wrote::Nothing) };
    let len = data.len() as u64;
    // A complete file is put in place with the others of its batch at the
    // end of the round (`finish_complete`): one durability pass for all.
    match tmp.write_block(req.block as u64, data) {
        Ok(w) if w.fresh => {
            if w.complete {
                dl.completed();
            }
            Ok(Wrote::Kept(len))
        }
        Ok(_) => Ok(Wrote::Nothing),
        Err(BlockError::Io(e)) => Err(NodeError::io(&dl.final_path(&f.path), e)),
        Err(e) => {
            *bad.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            tracing::warn!(path = %f.path, "discarded a block from the sharer: {e}");
            Ok(Wrote::Bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbox_proto::manifest::{MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, block_size_for};

    impl Budget {
        fn bytes(&self, block_size: u64) -> u64 {
            (self.window + self.queued + self.writes) as u64 * block_size
        }
    }

    #[test]
    fn a_download_holds_about_the_same_bytes_whatever_the_file_size() {
        // Block sizes grow with the file; the blocks a session holds must not.
        let mut held = Vec::new();
        for size in [1u64 << 20, 1 << 30, 10 << 30, 100 << 30, 1 << 40] {
            let bs = block_size_for(size) as u64;
            let b = Budget::for_blocks(bs);
            assert!(b.window >= 2 && b.queued >= 1 && b.writes >= 1, "{size}: {b:?}");
            held.push(b.bytes(bs));
        }
        // Before it counted blocks: 128 MiB for a 10 GiB file, 256 MiB past 16 GiB.
        assert!(held.iter().all(|&h| h <= 64 << 20), "held {held:?}");
        // The extremes of the protocol stay inside the same bound.
        for bs in [MIN_BLOCK_SIZE as u64, MAX_BLOCK_SIZE as u64] {
            assert!(Budget::for_blocks(bs).bytes(bs) <= 64 << 20);
        }
    }
}
