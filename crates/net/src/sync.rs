//! The shared-folder protocol, `/peerbox/sync/1`: joining with a link's secret,
//! index exchange ("everything after N", long-polled), and blocks by path and hash.
//!
//! A stream carries one request at a time, answered in order; the puller keeps
//! several block requests written ahead, so the sharer always has the next one.
//! Permission is checked on every request, by the [`SyncSource`] the node plugs in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt, StreamExt};
use libp2p::PeerId;
use peerbox_proto::index::{
    FolderId, SyncFrame, SyncRefusal, SyncRequest, SyncResponse, TAG_BLOCK, WireMember, WireRecord, parse_header,
};
use peerbox_proto::manifest::BlockHash;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Buffers;
use crate::blocks::SessionError;
use crate::frame::{FrameReader, Read, read_frame_or_block, read_frame_with};

/// How long a long-polled index request is held before an empty answer.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Streams served at once.
pub const MAX_STREAMS: usize = 256;
/// How long a stream may sit without a request.
pub const IDLE: Duration = Duration::from_secs(120);

/// What the folder side of the node offers the protocol.
pub trait SyncSource: Send + Sync + 'static {
    /// Admits `peer` to `folder` with a link secret (and password proof). Blocking.
    fn join(
        &self,
        peer: PeerId,
        folder: FolderId,
        secret: [u8; 32],
        proof: Option<[u8; 32]>,
    ) -> Result<SyncResponse, SyncRefusal>;
    /// Records after `since` for a member. Blocking.
    fn index(
        &self,
        peer: PeerId,
        folder: FolderId,
        since: u64,
    ) -> Result<(Vec<WireRecord>, u64, Vec<WireMember>), SyncRefusal>;
    /// Something that changes whenever the folder's index or its members do, to
    /// hold long-polls on, for a member.
    fn watch(&self, peer: PeerId, folder: FolderId) -> Option<watch::Receiver<u64>>;
    /// A block of a file, checked against `hash`, read into a buffer from
    /// `buffers` (the stream's: each comes back once its block is sent). Blocking.
    fn block(
        &self,
        peer: PeerId,
        folder: FolderId,
        path: &str,
        index: u32,
        hash: BlockHash,
        buffers: &Buffers,
    ) -> Option<Bytes>;
    /// Blocks asked in a row, answered in order like [`Self::block`]. May stop
    /// early, once the answers hold `budget` bytes, but answers at least one. A
    /// source can check permission once for the lot (small files come as many
    /// small blocks, where the checks cost more than the reads). Blocking.
    fn blocks(&self, peer: PeerId, asks: &[BlockAsk], budget: usize, buffers: &Buffers) -> Vec<Option<Bytes>> {
        let mut out = Vec::new();
        let mut held = 0;
        for a in asks {
            let data = self.block(peer, a.folder, &a.path, a.index, a.hash, buffers);
            held += data.as_ref().map_or(0, Bytes::len);
            out.push(data);
            if held >= budget {
                break;
            }
        }
        out
    }
}

/// A block request as the source sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAsk {
    /// The folder.
    pub folder: FolderId,
    /// The file, as the peer sent it (not yet validated).
    pub path: String,
    /// Block index.
    pub index: u32,
    /// Expected hash.
    pub hash: BlockHash,
}

/// Serves inbound sync streams until `incoming` ends.
pub async fn serve(mut incoming: crate::Incoming, source: Arc<dyn SyncSource>) {
    let limit = Arc::new(Semaphore::new(MAX_STREAMS));
    while let Some((peer, stream)) = incoming.next().await {
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many sync streams; dropping one");
            continue;
        };
        let source = source.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_stream(peer, stream, source).await {
                tracing::debug!(%peer, "sync stream ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn read<S: AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> Result<Option<SyncFrame>, SessionError> {
    let frame =
        tokio::time::timeout(timeout, read_frame_with(s, parse_header)).await.map_err(|_| SessionError::Timeout)??;
    match frame {
        None => Ok(None),
        Some((tag, payload)) => {
            SyncFrame::decode(tag, payload).map(Some).map_err(|e| SessionError::Protocol(e.to_string()))
        }
    }
}

/// Block requests a stream takes in before it answers them: the puller writes
/// its requests ahead, and these are what one read task may take at once.
pub const QUEUED_ASKS: usize = 256;
/// Bytes one read task holds before it hands them over. Two such at most per
/// stream (one being sent while the next is read): memory is bounded by bytes
/// whatever the block size. A big file's blocks (1 MiB at 1 GiB) come several
/// to a read: at one a read, each send waited on a hand-off from a blocking
/// thread, and a 1 GiB folder sync took ~5 % longer.
pub const READ_BATCH_BYTES: usize = 4 << 20;

/// An answer to a block request: its request number, the block, and the data
/// (`None`: missing).
type BlockAnswer = (u32, (String, u32), Option<Bytes>);
/// One read task's answers, in the order asked, and the asks it left for the next.
type BatchRead = (Vec<BlockAnswer>, Vec<(u32, BlockAsk)>);

/// Serves one stream (public for tests over pipes). Block requests are read from
/// disk a batch at a time while the answers before them are sent; any other
/// request waits until the blocks asked before it are answered.
pub async fn serve_stream<S>(peer: PeerId, stream: S, source: Arc<dyn SyncSource>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rd, wr) = futures::AsyncReadExt::split(stream);
    // Small blocks and their headers go out many to a write, not two writes (each
    // its own yamux frame and TLS record) per block.
    let mut wr = futures::io::BufWriter::with_capacity(crate::blocks::SEND_BUFFER, wr);
    // Dropped whenever a block read finishes first: it must keep partial frames.
    let mut rd = FrameReader::new(rd);
    let mut served = Served::default();
    // The blocks in flight, reused (see `blocks::serve_blocks`).
    let buffers = Buffers::default();
    let mut queued: VecDeque<(u32, BlockAsk)> = VecDeque::new();
    let mut reading: Option<tokio::task::JoinHandle<BatchRead>> = None;
    let mut ended = false;
    loop {
        if reading.is_none() && !queued.is_empty() {
            reading = Some(read_batch(peer, &source, &mut queued, &buffers));
        }
        if ended && reading.is_none() {
            wr.flush().await?;
            return Ok(());
        }
        let frame = tokio::select! {
            done = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                let answers = take_answers(done, &mut queued)?;
                // The next batch is read while this one goes out.
                if !queued.is_empty() {
                    reading = Some(read_batch(peer, &source, &mut queued, &buffers));
                }
                for a in answers {
                    served.answer(&mut wr, a, &buffers).await?;
                }
                // Out now, not when the next read is done: that read may be slow.
                wr.flush().await?;
                continue;
            }
            frame = tokio::time::timeout(IDLE, rd.next_with(parse_header)), if !ended && queued.len() < QUEUED_ASKS => {
                frame.map_err(|_| SessionError::Timeout)?
            }
        };
        // Requests already arrived are taken in too before the next read starts:
        // a puller writes many at once, and one read task should get them all.
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            let Some((tag, payload)) = frame? else {
                ended = true;
                break;
            };
            let Ok(SyncFrame::Request(req)) = SyncFrame::decode(tag, payload) else {
                return Err(SessionError::Protocol("expected a request".into()));
            };
            if let SyncRequest::Block { req, folder, path, index, hash } = req {
                // No file has such a name; held in the queue, it would let a peer
                // make each queued ask cost up to a frame.
                if path.len() > peerbox_proto::path::MAX_PATH_BYTES {
                    return Err(SessionError::Protocol("a block request with an overlong path".into()));
                }
                queued.push_back((req, BlockAsk { folder, path, index, hash }));
                if queued.len() < QUEUED_ASKS {
                    next = rd.next_with(parse_header).now_or_never();
                }
                continue;
            }
            // Answers go out in the order asked.
            while let Some(r) = reading
                .take()
                .or_else(|| (!queued.is_empty()).then(|| read_batch(peer, &source, &mut queued, &buffers)))
            {
                let answers = take_answers(r.await, &mut queued)?;
                for a in answers {
                    served.answer(&mut wr, a, &buffers).await?;
                }
            }
            let answer = answer_request(peer, req, &source).await?;
            wr.write_all(&answer.encode()).await?;
            wr.flush().await?;
        }
    }
}

/// A finished read task's answers; the asks it left go back to the queue's front.
fn take_answers(
    done: Result<BatchRead, tokio::task::JoinError>,
    queued: &mut VecDeque<(u32, BlockAsk)>,
) -> Result<Vec<BlockAnswer>, SessionError> {
    let (answers, left) = done.map_err(|e| SessionError::Protocol(e.to_string()))?;
    for ask in left.into_iter().rev() {
        queued.push_front(ask);
    }
    Ok(answers)
}

/// Starts reading the queued asks on a blocking thread, in one task.
fn read_batch(
    peer: PeerId,
    source: &Arc<dyn SyncSource>,
    queued: &mut VecDeque<(u32, BlockAsk)>,
    buffers: &Buffers,
) -> tokio::task::JoinHandle<BatchRead> {
    let (reqs, asks): (Vec<u32>, Vec<BlockAsk>) = queued.drain(..).unzip();
    let (s, buffers) = (source.clone(), buffers.clone());
    tokio::task::spawn_blocking(move || {
        let got = s.blocks(peer, &asks, READ_BATCH_BYTES, &buffers);
        // A source answering none would stall the stream: the first then counts as missing.
        let n = got.len().clamp(1, asks.len());
        let mut asks = reqs.into_iter().zip(asks);
        let answers = asks
            .by_ref()
            .take(n)
            .zip(got.into_iter().map(Some).chain(std::iter::repeat(None)))
            .map(|((req, a), data)| (req, (a.path, a.index), data.flatten()))
            .collect();
        (answers, asks.collect())
    })
}

/// What a stream has served, to cut off a peer making us read the same block
/// over and over, or asking for ones that are not there.
#[derive(Default)]
struct Served {
    asked: std::collections::HashMap<(String, u32), u8>,
    misses: usize,
}

impl Served {
    async fn answer<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        (req, key, data): BlockAnswer,
        buffers: &Buffers,
    ) -> Result<(), SessionError> {
        match data {
            Some(data) => {
                let n = self.asked.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                if *n > crate::blocks::MAX_ASKS_PER_BLOCK {
                    return Err(SessionError::Protocol("one block asked for again and again".into()));
                }
                wr.write_all(&SyncFrame::block_header(req, data.len())).await?;
                wr.write_all(&data).await?;
                buffers.give_back(data);
            }
            None => {
                self.misses += 1;
                if self.misses > crate::blocks::MAX_MISSES {
                    return Err(SessionError::Protocol("too many requests for blocks that are not there".into()));
                }
                wr.write_all(&SyncFrame::Response(SyncResponse::Missing { req }).encode()).await?;
            }
        }
        Ok(())
    }
}

/// The answer to a request that is not for a block.
async fn answer_request(
    peer: PeerId,
    req: SyncRequest,
    source: &Arc<dyn SyncSource>,
) -> Result<SyncFrame, SessionError> {
    Ok(match req {
        SyncRequest::Join { folder, secret, proof } => {
            let s = source.clone();
            let r = blocking(move || s.join(peer, folder, secret, proof)).await?;
            SyncFrame::Response(r.unwrap_or_else(SyncResponse::Refused))
        }
        SyncRequest::Index { folder, since, wait } => {
            // Subscribed before the first look, so a change between the look and
            // the wait still wakes it.
            let mut changes = if wait { source.watch(peer, folder) } else { None };
            let s = source.clone();
            let mut answer = blocking(move || s.index(peer, folder, since)).await?;
            if let (Some(rx), Ok((records, _, _))) = (changes.as_mut(), &answer)
                && records.is_empty()
            {
                // Nothing new: hold the answer until the folder or its members change.
                let _ = tokio::time::timeout(LONG_POLL, rx.changed()).await;
                let s = source.clone();
                answer = blocking(move || s.index(peer, folder, since)).await?;
            }
            match answer {
                Ok((records, last, members)) => SyncFrame::Response(SyncResponse::Index { records, last, members }),
                Err(r) => SyncFrame::Response(SyncResponse::Refused(r)),
            }
        }
        SyncRequest::Block { .. } => return Err(SessionError::Protocol("a block request out of place".into())),
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SessionError::Protocol(e.to_string()))
}

/// Sends one request and reads its answer.
pub async fn request<S>(stream: &mut S, req: SyncRequest, timeout: Duration) -> Result<SyncResponse, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(&SyncFrame::Request(req).encode()).await?;
    stream.flush().await?;
    match read(stream, timeout).await? {
        Some(SyncFrame::Response(r)) => Ok(r),
        Some(_) => Err(SessionError::Protocol("unexpected block".into())),
        // Lost, not refused: libp2p-stream drops inbound streams it has no room
        // for, and the other side never saw the request.
        None => Err(SessionError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the stream ended before an answer",
        ))),
    }
}

/// A block to pull for a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderBlock {
    /// The file.
    pub path: String,
    /// Block index.
    pub index: u32,
    /// Expected hash.
    pub hash: BlockHash,
}

/// Fetches `blocks` of `folder` with up to `window` requests written ahead; each
/// answer (unverified bytes, or `None` if the peer lacks it) goes to `results`.
/// Blocks arrive in buffers from `buffers`; the caller gives them back once written.
pub async fn fetch_blocks<S>(
    mut stream: S,
    folder: FolderId,
    blocks: Vec<FolderBlock>,
    window: usize,
    results: mpsc::Sender<(FolderBlock, Option<Bytes>)>,
    buffers: Buffers,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = std::collections::VecDeque::new();
    let mut next = blocks.into_iter();
    let mut req: u32 = 0;
    loop {
        let mut out = Vec::new();
        // Refilled once half the window is answered: one write for many requests
        // rather than a frame and a flush per block.
        let refill = pending.len() <= window / 2;
        while refill && pending.len() < window.max(1) {
            let Some(b) = next.next() else { break };
            out.extend(
                SyncFrame::Request(SyncRequest::Block {
                    req,
                    folder,
                    path: b.path.clone(),
                    index: b.index,
                    hash: b.hash,
                })
                .encode(),
            );
            pending.push_back((req, b));
            req = req.wrapping_add(1);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        let Some((want, block)) = pending.pop_front() else {
            stream.close().await?;
            return Ok(());
        };
        let answer = tokio::time::timeout(IDLE, read_pulled(&mut stream, &buffers))
            .await
            .map_err(|_| SessionError::Timeout)??;
        let (got, data) = match answer {
            Some(SyncFrame::Block { req, data }) => (req, Some(data)),
            Some(SyncFrame::Response(SyncResponse::Missing { req })) => (req, None),
            Some(SyncFrame::Response(SyncResponse::Refused(r))) => {
                return Err(SessionError::Protocol(format!("refused: {r:?}")));
            }
            Some(_) => return Err(SessionError::Protocol("unexpected frame".into())),
            None => return Err(SessionError::Protocol("stream closed".into())),
        };
        if got != want {
            return Err(SessionError::Protocol("answers out of order".into()));
        }
        if results.send((block, data)).await.is_err() {
            return Ok(());
        }
    }
}

/// Reads a puller's next frame; `Ok(None)` on a clean end. A block arrives in
/// a buffer from `buffers`.
async fn read_pulled<S: AsyncRead + Unpin>(s: &mut S, buffers: &Buffers) -> Result<Option<SyncFrame>, SessionError> {
    match read_frame_or_block(s, parse_header, TAG_BLOCK, buffers).await? {
        None => Ok(None),
        Some(Read::Block { req, data }) => Ok(Some(SyncFrame::Block { req, data })),
        Some(Read::Frame(tag, payload)) => {
            SyncFrame::decode(tag, payload).map(Some).map_err(|e| SessionError::Protocol(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// Files of `blocks` blocks of `size` bytes each, every byte its block index;
    /// "gone" has none. With `stingy`, each batch answers one block at most.
    struct Blocks {
        size: usize,
        stingy: bool,
        batches: std::sync::atomic::AtomicUsize,
        /// Blocks read into a fresh (all-zero) buffer rather than one given back.
        fresh: std::sync::atomic::AtomicUsize,
    }

    impl SyncSource for Blocks {
        fn join(&self, _: PeerId, _: FolderId, _: [u8; 32], _: Option<[u8; 32]>) -> Result<SyncResponse, SyncRefusal> {
            Err(SyncRefusal::NotAllowed)
        }
        fn index(
            &self,
            _: PeerId,
            _: FolderId,
            _: u64,
        ) -> Result<(Vec<WireRecord>, u64, Vec<WireMember>), SyncRefusal> {
            Ok((Vec::new(), 7, Vec::new()))
        }
        fn watch(&self, _: PeerId, _: FolderId) -> Option<watch::Receiver<u64>> {
            None
        }
        fn block(
            &self,
            _: PeerId,
            _: FolderId,
            path: &str,
            index: u32,
            _: BlockHash,
            buffers: &Buffers,
        ) -> Option<Bytes> {
            if path == "gone" {
                return None;
            }
            let mut buf = buffers.take(self.size);
            if buf.iter().all(|&b| b == 0) {
                self.fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            buf.fill(index as u8);
            Some(buf.freeze())
        }
        fn blocks(&self, peer: PeerId, asks: &[BlockAsk], budget: usize, buffers: &Buffers) -> Vec<Option<Bytes>> {
            self.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let asks = if self.stingy { &asks[..0] } else { asks };
            asks.iter()
                .scan(0, |held, a| {
                    (*held < budget).then(|| {
                        let data = self.block(peer, a.folder, &a.path, a.index, a.hash, buffers);
                        *held += data.as_ref().map_or(0, Bytes::len);
                        data
                    })
                })
                .collect()
        }
    }

    fn source(size: usize, stingy: bool) -> Arc<Blocks> {
        Arc::new(Blocks { size, stingy, batches: Default::default(), fresh: Default::default() })
    }

    async fn fetch(src: Arc<Blocks>, asks: Vec<FolderBlock>, window: usize) -> Vec<(FolderBlock, Option<Bytes>)> {
        let (a, b) = tokio::io::duplex(256 * 1024);
        let server = tokio::spawn(serve_stream(PeerId::random(), b.compat(), src));
        let (tx, mut rx) = mpsc::channel(1024);
        fetch_blocks(a.compat(), [1; 16], asks, window, tx, Buffers::default()).await.expect("fetch");
        server.await.expect("join").expect("served");
        let mut got = Vec::new();
        while let Some(x) = rx.recv().await {
            got.push(x);
        }
        got
    }

    fn ask(path: &str, index: u32) -> FolderBlock {
        FolderBlock { path: path.into(), index, hash: [0; 32] }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn more_than_a_batch_of_blocks_comes_back_whole_and_in_order() {
        // 40 blocks of 1 MiB: far more than one read task may hold, so batches
        // stop early and leave asks for the next.
        let src = source(1 << 20, false);
        let asks: Vec<_> = (0..40).map(|i| ask(if i == 17 { "gone" } else { "f" }, i)).collect();
        let got = fetch(src.clone(), asks, 64).await;
        assert_eq!(got.len(), 40);
        for (i, (b, data)) in got.iter().enumerate() {
            assert_eq!(b.index, i as u32);
            match data {
                None => assert_eq!(i, 17, "only the missing block is missing"),
                Some(d) => assert!(d.len() == 1 << 20 && d.iter().all(|&x| x == i as u8), "block {i}"),
            }
        }
        let batches = src.batches.load(std::sync::atomic::Ordering::Relaxed);
        assert!(batches >= 10, "memory held per read is bounded: {batches} batches");
        // The batch being sent and the one being read hold buffers; the rest are
        // those given back (one that held block 0's zeros counts as fresh again).
        let fresh = src.fresh.load(std::sync::atomic::Ordering::Relaxed);
        assert!(fresh <= 2 * READ_BATCH_BYTES / (1 << 20) + 1, "{fresh} of 39 blocks read into fresh buffers");
    }

    /// A stream the other side drops unread (as libp2p-stream does when its
    /// accept queue is full) is a lost request, which the joiner asks again, not
    /// a protocol violation.
    #[tokio::test]
    async fn a_request_whose_stream_is_dropped_unanswered_is_lost_not_refused() {
        let (a, b) = tokio::io::duplex(1 << 16);
        drop(b);
        let join = SyncRequest::Join { folder: [1; 16], secret: [2; 32], proof: None };
        let got = request(&mut a.compat(), join.clone(), Duration::from_secs(5)).await;
        assert!(matches!(got, Err(SessionError::Io(_))), "{got:?}");

        let (a, b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(async move {
            let mut b = b.compat();
            let first = read_frame_with(&mut b, parse_header).await.expect("the request arrives");
            assert!(first.is_some());
            // Closed without an answer.
        });
        let got = request(&mut a.compat(), join, Duration::from_secs(5)).await;
        server.await.unwrap();
        assert!(matches!(got, Err(SessionError::Io(_))), "{got:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn many_small_blocks_are_read_in_few_batches() {
        let src = source(4096, false);
        let got = fetch(src.clone(), (0..500).map(|i| ask("f", i)).collect(), 64).await;
        assert_eq!(got.len(), 500);
        assert!(got.iter().enumerate().all(|(i, (b, d))| b.index == i as u32 && d.is_some()));
        let batches = src.batches.load(std::sync::atomic::Ordering::Relaxed);
        assert!(batches <= 50, "{batches} read tasks for 500 blocks");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_source_that_answers_nothing_gets_misses_not_a_stall() {
        let got = fetch(source(4096, true), (0..5).map(|i| ask("f", i)).collect(), 8).await;
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|(_, d)| d.is_none()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_block_request_with_an_overlong_path_ends_the_stream() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server =
            tokio::spawn(serve_stream(PeerId::random(), b.compat(), source(4096, false) as Arc<dyn SyncSource>));
        let mut a = a.compat();
        let path = "x".repeat(peerbox_proto::path::MAX_PATH_BYTES + 1);
        let ask = SyncFrame::Request(SyncRequest::Block { req: 0, folder: [1; 16], path, index: 0, hash: [0; 32] });
        a.write_all(&ask.encode()).await.unwrap();
        a.flush().await.unwrap();
        let err = server.await.unwrap().expect_err("refused");
        assert!(err.to_string().contains("overlong path"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_after_blocks_is_answered_after_them() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server =
            tokio::spawn(serve_stream(PeerId::random(), b.compat(), source(64 << 10, false) as Arc<dyn SyncSource>));
        let mut a = a.compat();
        let mut out = Vec::new();
        for i in 0..100u32 {
            out.extend(
                SyncFrame::Request(SyncRequest::Block {
                    req: i,
                    folder: [1; 16],
                    path: "f".into(),
                    index: i,
                    hash: [0; 32],
                })
                .encode(),
            );
        }
        out.extend(SyncFrame::Request(SyncRequest::Index { folder: [1; 16], since: 0, wait: false }).encode());
        a.write_all(&out).await.unwrap();
        a.flush().await.unwrap();
        for i in 0..100u32 {
            match read(&mut a, IDLE).await.unwrap() {
                Some(SyncFrame::Block { req, data }) => assert_eq!((req, data.len()), (i, 64 << 10)),
                other => panic!("block {i}: {other:?}"),
            }
        }
        match read(&mut a, IDLE).await.unwrap() {
            Some(SyncFrame::Response(SyncResponse::Index { last, .. })) => assert_eq!(last, 7),
            other => panic!("index: {other:?}"),
        }
        a.close().await.unwrap();
        server.await.unwrap().unwrap();
    }
}
