//! The block protocol, `/peerbox/blocks/1`: a sharer serving a file set and a
//! downloader fetching its blocks with many requests in flight.
//!
//! One long-lived stream per session (not a stream per block: opening streams
//! costs a round trip each, and `libp2p-stream` drops inbound streams under
//! bursts). Each side drives its stream from a single task, so the read and write
//! halves never wait on wakers registered from different tasks.
//!
//! The protocol never calls the engine: the sharer side asks a [`BlockSource`],
//! which the node implements over its index and disk.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use peerbox_proto::RelPath;
use peerbox_proto::blocks::{
    ClientMsg, MANIFEST_PART_BYTES, MissingReason, Refusal, ServerMsg, Tag, block_header, parse_header,
};
use peerbox_proto::manifest::{ContentHasher, Entry, EntryError, MAX_ENTRIES};
use tokio::sync::{Semaphore, mpsc};

use crate::Buffers;
use crate::frame::{FrameReader, Read, ReadError, read_frame, read_frame_or_block};

/// Sessions a sharer serves at once; more are told `Busy`.
pub const MAX_SESSIONS: usize = 64;
/// Block reads a session runs ahead of the network. Bounds memory per session to
/// this many blocks.
pub const READ_AHEAD: usize = 4;
/// Requests a session accepts before it stops reading more: the per-peer budget.
pub const MAX_QUEUED: usize = 512;
/// What a server gathers before writing to a stream: link blocks here, folder-sync
/// answers in `sync`.
pub(crate) const SEND_BUFFER: usize = 64 << 10;
/// How long a new stream may take to say what it wants.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a session may ask for one block: an honest downloader asks once, and
/// again in a later round only if it arrived bad. More is a peer making us read
/// the same block over and over, and ends the session.
pub const MAX_ASKS_PER_BLOCK: u8 = 3;
/// Requests for blocks that do not exist a session may make before it ends.
pub const MAX_MISSES: usize = 1024;
/// How long either side waits for the other before giving up on a session.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the sharer side needs from the node.
pub trait BlockSource: Send + Sync + 'static {
    /// Checks `secret` (and, for a link with a password, `proof`) for content `id`
    /// asked by `peer`. Blocking (may touch the index).
    fn open(
        &self,
        peer: PeerId,
        id: [u8; 32],
        secret: [u8; 32],
        proof: Option<[u8; 32]>,
    ) -> Result<Arc<dyn ShareReader>, Refusal>;
}

/// An opened share.
pub trait ShareReader: Send + Sync + 'static {
    /// The manifest, in order.
    fn entries(&self) -> &[Entry];
    /// Reads one block, into a buffer from `buffers` (the session's: each comes
    /// back once its block is sent). Blocking.
    fn read_block(&self, file: u32, block: u32, buffers: &Buffers) -> Result<Bytes, MissingReason>;
    /// Whether the link behind this session still holds (revocation, expiry).
    fn still_valid(&self) -> bool {
        true
    }
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The other side broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The other side went quiet.
    #[error("the other side stopped responding")]
    Timeout,
    /// The sharer refused the link.
    #[error("{}", refusal_message(*.0))]
    Refused(Refusal),
    /// The manifest failed validation.
    #[error("the sharer sent an invalid file list: {0}")]
    BadEntry(#[from] EntryError),
    /// The manifest is not what the link names.
    #[error("the sharer sent different files than the link names (content id mismatch)")]
    ContentMismatch,
}

fn refusal_message(r: Refusal) -> &'static str {
    match r {
        Refusal::Unknown => "the sharer does not recognise this link: it was revoked, or never valid",
        Refusal::Expired => "this link has expired; ask the sender for a new one",
        Refusal::Busy => "the sharer is serving too many downloads right now; try again later",
        Refusal::WrongPassword => "wrong password for this link",
        Refusal::TooManyAttempts => {
            "too many wrong passwords for this link; the sharer refuses it for a minute, then try again"
        }
        Refusal::UsedUp => "this link has been used by as many devices as its sharer allowed",
    }
}

impl From<ReadError> for SessionError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Frame(f) => Self::Protocol(f.to_string()),
            ReadError::Io(e) => Self::Io(e),
        }
    }
}

/// Serves inbound block streams until `incoming` ends. Each session runs in its
/// own task; at most [`MAX_SESSIONS`] at once.
pub async fn serve(mut incoming: crate::Incoming, source: Arc<dyn BlockSource>) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    while let Some((peer, stream)) = incoming.next().await {
        let source = source.clone();
        match sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    if let Err(e) = serve_session(peer, stream, source).await {
                        tracing::info!(%peer, "block session ended: {e}");
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(OPEN_TIMEOUT, async {
                        stream.write_all(&ServerMsg::Refused(Refusal::Busy).encode()).await?;
                        stream.close().await
                    })
                    .await;
                });
            }
        }
    }
}

/// Serves one session on `stream` (public so tests can run it over any pipe).
pub async fn serve_session<S>(peer: PeerId, mut stream: S, source: Arc<dyn BlockSource>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let first =
        tokio::time::timeout(OPEN_TIMEOUT, read_frame(&mut stream)).await.map_err(|_| SessionError::Timeout)??;
    let Some((tag, payload)) = first else { return Ok(()) };
    let (id, secret, proof) = match ClientMsg::decode(tag, &payload) {
        Ok(ClientMsg::Open { id, secret, proof }) => (id, secret, proof),
        Ok(_) => return Err(SessionError::Protocol("expected Open first".into())),
        Err(e) => return Err(SessionError::Protocol(e.to_string())),
    };
    let opened = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.open(peer, id, secret, proof))
            .await
            .map_err(|e| SessionError::Protocol(e.to_string()))?
    };
    let share = match opened {
        Ok(s) => s,
        Err(refusal) => {
            stream.write_all(&ServerMsg::Refused(refusal).encode()).await?;
            stream.close().await?;
            return Ok(());
        }
    };
    send_manifest(&mut stream, share.entries()).await?;
    serve_blocks(peer, stream, share).await
}

async fn send_manifest<S: AsyncWrite + Unpin>(stream: &mut S, entries: &[Entry]) -> Result<(), SessionError> {
    let mut part = Vec::new();
    let mut bytes = 0;
    for e in entries {
        bytes += e.path.len()
            + 64
            + 32 * match &e.kind {
                peerbox_proto::EntryKind::File(f) => f.blocks.len(),
                peerbox_proto::EntryKind::Dir => 0,
            };
        part.push(e.clone());
        if bytes >= MANIFEST_PART_BYTES {
            stream.write_all(&ServerMsg::ManifestPart(std::mem::take(&mut part)).encode()).await?;
            bytes = 0;
        }
    }
    if !part.is_empty() {
        stream.write_all(&ServerMsg::ManifestPart(part).encode()).await?;
    }
    stream.write_all(&ServerMsg::ManifestEnd { entries: entries.len() as u64 }.encode()).await?;
    stream.flush().await?;
    Ok(())
}

type ReadResult = (u32, Result<Bytes, MissingReason>);

/// Blocks shorter than this (small files, and files' tails) are read several to a
/// blocking task, up to `SMALL_BATCH_BYTES`: one task per 4 KiB block cost more in
/// thread hand-offs than the read. A slow read holds back at most the few small
/// blocks before it in its batch.
const SMALL_BLOCK: u64 = 64 << 10;
const SMALL_BATCH_BYTES: u64 = 256 << 10;

async fn serve_blocks<S>(peer: PeerId, stream: S, share: Arc<dyn ShareReader>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rd, wr) = futures::AsyncReadExt::split(stream);
    // Small blocks and their headers go out many to a write, not two writes (each
    // its own yamux frame and TLS record) per block; a block as big as the buffer
    // bypasses it.
    let mut wr = futures::io::BufWriter::with_capacity(SEND_BUFFER, wr);
    // Dropped whenever a block read finishes first: it must keep partial frames.
    let mut rd = FrameReader::new(rd);
    let mut queue: VecDeque<(u32, u32, u32)> = VecDeque::new();
    let mut reads: FuturesOrdered<tokio::task::JoinHandle<Vec<ReadResult>>> = FuturesOrdered::new();
    let mut client_done = false;
    // Asks per block, for blocks that exist (so the map is bounded by the share).
    let mut asked: HashMap<(u32, u32), u8> = HashMap::new();
    let mut misses = 0usize;
    // The blocks in flight, reused: a fresh buffer per block costs a page fault
    // per 4 KiB once blocks reach glibc's `mmap` threshold (8 MiB, files of 8 GiB
    // and more): a third more of the sharer's CPU.
    let buffers = Buffers::default();
    loop {
        while reads.len() < READ_AHEAD {
            let Some(first) = queue.pop_front() else { break };
            let mut batch = vec![first];
            let mut bytes = small_len(share.entries(), first.1, first.2);
            while let Some(small) = bytes
                && let Some(&(_, file, block)) = queue.front()
                && let Some(len) = small_len(share.entries(), file, block)
                && small + len <= SMALL_BATCH_BYTES
                && let Some(next) = queue.pop_front()
            {
                bytes = Some(small + len);
                batch.push(next);
            }
            let (share, buffers) = (share.clone(), buffers.clone());
            reads.push_back(tokio::task::spawn_blocking(move || {
                batch.into_iter().map(|(req, file, block)| (req, share.read_block(file, block, &buffers))).collect()
            }));
        }
        if client_done && reads.is_empty() {
            wr.close().await?;
            return Ok(());
        }
        let can_read = !client_done && queue.len() < MAX_QUEUED;
        tokio::select! {
            // Blocks already read go first, into the buffer; it is flushed as soon
            // as the next read is not ready, so a slow read never holds back
            // blocks read before it.
            biased;
            Some(done) = reads.next(), if !reads.is_empty() => {
                let batch = done.map_err(|e| SessionError::Protocol(e.to_string()))?;
                // Checked before every read sent (one block, or a few small ones), not
                // when it is asked for: a getter asks for a whole window at once, and a
                // slow (rate-limited) session would otherwise go on serving all it had
                // queued after a revoke.
                if !share.still_valid() {
                    tracing::info!(%peer, "link revoked or expired mid-session; closing");
                    wr.write_all(&ServerMsg::Refused(Refusal::Unknown).encode()).await?;
                    wr.close().await?;
                    return Ok(());
                }
                for (req, result) in batch {
                    match result {
                        Ok(data) => {
                            wr.write_all(&block_header(req, data.len())).await?;
                            wr.write_all(&data).await?;
                            buffers.give_back(data);
                        }
                        Err(reason) => wr.write_all(&ServerMsg::Missing { req, reason }.encode()).await?,
                    }
                }
            }
            flushed = wr.flush(), if !wr.buffer().is_empty() => flushed?,
            frame = tokio::time::timeout(IDLE_TIMEOUT, rd.next()), if can_read => {
                let Ok(frame) = frame else { return Err(SessionError::Timeout) };
                match frame? {
                    None => client_done = true,
                    Some((tag, payload)) => match ClientMsg::decode(tag, &payload) {
                        Ok(ClientMsg::Get { req, file, block }) => {
                            if exists(share.entries(), file, block) {
                                let n = asked.entry((file, block)).or_insert(0);
                                *n = n.saturating_add(1);
                                if *n > MAX_ASKS_PER_BLOCK {
                                    return Err(SessionError::Protocol(format!("block {block} of entry {file} asked for again and again")));
                                }
                            } else {
                                misses += 1;
                                if misses > MAX_MISSES {
                                    return Err(SessionError::Protocol("too many requests for blocks that do not exist".into()));
                                }
                            }
                            queue.push_back((req, file, block));
                        }
                        Ok(ClientMsg::Open { .. }) => return Err(SessionError::Protocol("second Open".into())),
                        Err(e) => return Err(SessionError::Protocol(e.to_string())),
                    },
                }
            }
        }
    }
}

/// The length of block `block` of manifest entry `file`; `None` if there is no
/// such block.
fn block_len_of(entries: &[Entry], file: u32, block: u32) -> Option<u64> {
    match entries.get(file as usize) {
        Some(Entry { kind: peerbox_proto::EntryKind::File(f), .. })
            if (block as u64) < peerbox_proto::manifest::block_count(f.size, f.block_size) =>
        {
            Some(peerbox_proto::manifest::block_len(f.size, f.block_size, block as u64) as u64)
        }
        _ => None,
    }
}

/// The length of block `block` of entry `file` when it is a small one (see
/// `SMALL_BLOCK`); `None` for a big block or one that does not exist.
fn small_len(entries: &[Entry], file: u32, block: u32) -> Option<u64> {
    block_len_of(entries, file, block).filter(|len| *len < SMALL_BLOCK)
}

/// Whether block `block` of manifest entry `file` exists.
fn exists(entries: &[Entry], file: u32, block: u32) -> bool {
    block_len_of(entries, file, block).is_some()
}

/// A block to fetch: entry index and block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRequest {
    /// Entry index in the manifest.
    pub file: u32,
    /// Block index in the file.
    pub block: u32,
}

/// A session whose manifest has arrived and checked out.
pub struct Opened<S> {
    /// The stream, ready for block requests.
    pub stream: S,
    /// Validated entries in manifest order.
    pub entries: Vec<(RelPath, Entry)>,
}

/// Opens share `id` with `secret` (and `proof` for a link with a password),
/// receives the manifest, validates every entry and checks it hashes to `id`.
pub async fn open_share<S>(
    mut stream: S,
    id: [u8; 32],
    secret: [u8; 32],
    proof: Option<[u8; 32]>,
) -> Result<Opened<S>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(&ClientMsg::Open { id, secret, proof }.encode()).await?;
    stream.flush().await?;
    let mut entries = Vec::new();
    let mut hasher = ContentHasher::default();
    loop {
        let frame =
            tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream)).await.map_err(|_| SessionError::Timeout)??;
        let Some((tag, payload)) = frame else {
            return Err(SessionError::Protocol("stream ended before the file list was complete".into()));
        };
        match ServerMsg::decode(tag, payload).map_err(|e| SessionError::Protocol(e.to_string()))? {
            ServerMsg::ManifestPart(part) => {
                if entries.len() + part.len() > MAX_ENTRIES {
                    return Err(SessionError::Protocol(format!("more than {MAX_ENTRIES} entries")));
                }
                for e in part {
                    let path = e.validate()?;
                    hasher.update(&e);
                    entries.push((path, e));
                }
            }
            ServerMsg::ManifestEnd { entries: n } => {
                if n != entries.len() as u64 {
                    return Err(SessionError::Protocol("entry count does not match".into()));
                }
                if hasher.finish() != id {
                    return Err(SessionError::ContentMismatch);
                }
                return Ok(Opened { stream, entries });
            }
            ServerMsg::Refused(r) => return Err(SessionError::Refused(r)),
            other => {
                return Err(SessionError::Protocol(format!("unexpected {:?} before the file list", tag_of(&other))));
            }
        }
    }
}

fn tag_of(m: &ServerMsg) -> Tag {
    match m {
        ServerMsg::ManifestPart(_) => Tag::ManifestPart,
        ServerMsg::ManifestEnd { .. } => Tag::ManifestEnd,
        ServerMsg::Refused(_) => Tag::Refused,
        ServerMsg::Block { .. } => Tag::Block,
        ServerMsg::Missing { .. } => Tag::Missing,
    }
}

/// What came back for one request.
pub type Fetched = (BlockRequest, Result<Bytes, MissingReason>);

/// Fetches `requests` over an opened session with up to `window` in flight, sending
/// each answer to `results` (unverified: the caller checks hashes). Blocks arrive
/// in buffers from `buffers`; the caller gives them back once written. Returns
/// when every request is answered, or on the first protocol or connection error.
pub async fn fetch<S>(
    mut stream: S,
    requests: impl IntoIterator<Item = BlockRequest>,
    window: usize,
    results: mpsc::Sender<Fetched>,
    buffers: Buffers,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut requests = requests.into_iter();
    let mut in_flight: HashMap<u32, BlockRequest> = HashMap::new();
    let mut next_id: u32 = 0;
    let mut out = Vec::new();
    loop {
        out.clear();
        // Topped up once an eighth of the window is answered, not after every
        // answer: a write per 32 small blocks instead of per block, while the
        // sharer always has most of a window to work on.
        let refill = window.saturating_sub(in_flight.len()) >= (window / 8).max(1);
        while refill && in_flight.len() < window.max(1) {
            let Some(r) = requests.next() else { break };
            out.extend_from_slice(&ClientMsg::Get { req: next_id, file: r.file, block: r.block }.encode());
            in_flight.insert(next_id, r);
            next_id = next_id.wrapping_add(1);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        if in_flight.is_empty() {
            stream.close().await?;
            return Ok(());
        }
        let answer = tokio::time::timeout(IDLE_TIMEOUT, read_answer(&mut stream, &buffers))
            .await
            .map_err(|_| SessionError::Timeout)??;
        let Some(msg) = answer else {
            return Err(SessionError::Protocol("the sharer closed the session early".into()));
        };
        let (req, result) = match msg {
            ServerMsg::Block { req, data } => (req, Ok(data)),
            ServerMsg::Missing { req, reason } => (req, Err(reason)),
            ServerMsg::Refused(r) => return Err(SessionError::Refused(r)),
            other => return Err(SessionError::Protocol(format!("unexpected {:?} frame", tag_of(&other)))),
        };
        let Some(r) = in_flight.remove(&req) else {
            return Err(SessionError::Protocol(format!("answer to request {req}, which was never asked")));
        };
        if results.send((r, result)).await.is_err() {
            // The caller gave up; nothing more to do.
            return Ok(());
        }
    }
}

/// Reads the sharer's next frame; `Ok(None)` on a clean end. A block arrives
/// in a buffer from `buffers`.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffers: &Buffers,
) -> Result<Option<ServerMsg>, SessionError> {
    match read_frame_or_block(stream, parse_header, Tag::Block, buffers).await? {
        None => Ok(None),
        Some(Read::Block { req, data }) => Ok(Some(ServerMsg::Block { req, data })),
        Some(Read::Frame(tag, payload)) => {
            ServerMsg::decode(tag, payload).map(Some).map_err(|e| SessionError::Protocol(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbox_proto::manifest::{EntryKind, FileMeta, block_size_for, content_id};
    use sha2::Digest;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    struct Mem {
        entries: Vec<Entry>,
        data: Vec<u8>,
        secret: [u8; 32],
        /// Blocks read into a fresh buffer rather than one a sent block gave back.
        fresh: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl BlockSource for Mem {
        fn open(
            &self,
            _: PeerId,
            id: [u8; 32],
            secret: [u8; 32],
            _: Option<[u8; 32]>,
        ) -> Result<Arc<dyn ShareReader>, Refusal> {
            if id != content_id(&self.entries) || secret != self.secret {
                return Err(Refusal::Unknown);
            }
            Ok(Arc::new(MemReader(self.entries.clone(), self.data.clone(), self.fresh.clone())))
        }
    }

    struct MemReader(Vec<Entry>, Vec<u8>, Arc<std::sync::atomic::AtomicUsize>);

    impl ShareReader for MemReader {
        fn entries(&self) -> &[Entry] {
            &self.0
        }
        fn read_block(&self, file: u32, block: u32, buffers: &Buffers) -> Result<Bytes, MissingReason> {
            if file != 0 {
                return Err(MissingReason::OutOfRange);
            }
            let bs = block_size_for(self.1.len() as u64) as usize;
            let start = block as usize * bs;
            let end = (start + bs).min(self.1.len());
            let data = self.1.get(start..end).ok_or(MissingReason::OutOfRange)?;
            let mut buf = buffers.take(data.len());
            // A fresh buffer is all zeros; one given back holds a block sent before.
            if buf.iter().all(|&b| b == 0) {
                self.2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            buf.copy_from_slice(data);
            Ok(buf.freeze())
        }
    }

    fn source(data: Vec<u8>) -> (Arc<Mem>, [u8; 32]) {
        let bs = block_size_for(data.len() as u64);
        let blocks = data.chunks(bs as usize).map(|c| sha2::Sha256::digest(c).into()).collect();
        let entries = vec![Entry {
            path: "f".into(),
            kind: EntryKind::File(FileMeta {
                size: data.len() as u64,
                mtime_ns: 0,
                executable: false,
                block_size: bs,
                blocks,
            }),
        }];
        let id = content_id(&entries);
        (Arc::new(Mem { entries, data, secret: [1; 32], fresh: Default::default() }), id)
    }

    /// Serves `data` as one file over a pipe and fetches all its `blocks` with
    /// `window` asks in flight; returns the blocks' bytes, in order.
    async fn serve_and_fetch(src: Arc<Mem>, id: [u8; 32], blocks: u32, window: usize) -> Vec<u8> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), src));
        let opened = open_share(a.compat(), id, [1; 32], None).await.unwrap();
        assert_eq!(opened.entries.len(), 1);
        let (tx, mut rx) = mpsc::channel(4);
        let reqs: Vec<_> = (0..blocks).map(|block| BlockRequest { file: 0, block }).collect();
        let client = tokio::spawn(fetch(opened.stream, reqs, window, tx, Buffers::default()));
        let mut got = vec![Vec::new(); blocks as usize];
        while let Some((r, data)) = rx.recv().await {
            got[r.block as usize] = data.unwrap().to_vec();
        }
        client.await.unwrap().unwrap();
        server.await.unwrap().unwrap();
        got.concat()
    }

    #[tokio::test]
    async fn a_session_over_a_pipe_delivers_every_block() {
        let data: Vec<u8> = (0..(1 << 17) * 5 + 3).map(|i| (i % 253) as u8).collect();
        let (src, id) = source(data.clone());
        assert_eq!(serve_and_fetch(src, id, 6, 3).await, data);
    }

    /// Blocks of 8 MiB (files of 8 GiB and more) pass glibc's `mmap` threshold: a
    /// fresh buffer per block cost the sharer a page fault per 4 KiB.
    #[tokio::test]
    async fn a_session_reads_its_blocks_into_the_same_few_buffers() {
        let data: Vec<u8> = (0..(1 << 17) * 40).map(|i| (i % 253) as u8).collect();
        let (src, id) = source(data.clone());
        let fresh = src.fresh.clone();
        assert_eq!(serve_and_fetch(src, id, 40, 16).await, data);
        // Those being read, and the one being sent.
        let fresh = fresh.load(std::sync::atomic::Ordering::Relaxed);
        assert!(fresh <= READ_AHEAD + 1, "{fresh} of 40 blocks read into fresh buffers");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_without_a_manifest() {
        let (src, id) = source(vec![1, 2, 3]);
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), src));
        let err = open_share(a.compat(), id, [2; 32], None).await.err().unwrap();
        assert!(matches!(err, SessionError::Refused(Refusal::Unknown)), "{err}");
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn one_block_asked_over_and_over_ends_the_session_and_memory_stays_bounded() {
        let data: Vec<u8> = (0..(1 << 17) * 2).map(|i| (i % 251) as u8).collect();
        let (src, id) = source(data);
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), src));
        let opened = open_share(a.compat(), id, [1; 32], None).await.unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        // A million requests for block 0: the sharer stops after a few.
        let reqs = std::iter::repeat_n(BlockRequest { file: 0, block: 0 }, 1_000_000);
        let client = tokio::spawn(fetch(opened.stream, reqs, 64, tx, Buffers::default()));
        let mut answered = 0;
        while rx.recv().await.is_some() {
            answered += 1;
        }
        assert!(answered <= MAX_ASKS_PER_BLOCK as usize, "{answered} answers");
        assert!(matches!(server.await.unwrap(), Err(SessionError::Protocol(_))));
        assert!(client.await.unwrap().is_err(), "the greedy client is cut off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_says_what_it_wants_is_dropped() {
        let (src, _) = source(vec![1, 2, 3]);
        let (_a, b) = tokio::io::duplex(4096);
        // Time is paused: the open timeout passes at once, no real waiting.
        let r = serve_session(PeerId::random(), b.compat(), src).await;
        assert!(matches!(r, Err(SessionError::Timeout)), "{r:?}");
    }

    #[tokio::test]
    async fn garbage_first_frame_ends_the_session() {
        let (src, _) = source(vec![1]);
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), src));
        let mut a = a.compat();
        a.write_all(&[0xff, 0xff, 0xff, 0xff, 1]).await.unwrap();
        assert!(matches!(server.await.unwrap(), Err(SessionError::Protocol(_))));
        let mut a = a;
        a.write_all(&ClientMsg::Get { req: 0, file: 0, block: 0 }.encode()).await.ok();
    }
}
