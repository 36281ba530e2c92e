//! The shared-folder protocol, `/peerbox/sync/1`: joining with a link's secret,
//! index exchange ("everything after N", long-polled), and blocks by path and hash.
//!
//! A stream carries one request at a time, answered in order; the puller keeps
//! several block requests written ahead, so the sharer always has the next one.
//! Permission is checked on every request, by the [`SyncSource`] the node plugs in.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use peerbox_proto::index::{
    FolderId, SyncFrame, SyncRefusal, SyncRequest, SyncResponse, WireMember, WireRecord, parse_header,
};
use peerbox_proto::manifest::BlockHash;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::blocks::SessionError;
use crate::frame::{FrameReader, read_frame_with};

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
    /// A block of a file, checked against `hash`. Blocking.
    fn block(&self, peer: PeerId, folder: FolderId, path: &str, index: u32, hash: BlockHash) -> Option<Bytes>;
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

/// Block reads a stream runs ahead of the network (answers still go out in the
/// order asked). Bounds memory per stream to this many blocks.
pub const READ_AHEAD: usize = 4;

type BlockRead = (u32, (String, u32), Option<Bytes>);

/// Serves one stream (public for tests over pipes). Block requests are read from
/// disk a few at a time while the answers before them are sent; any other request
/// waits until the blocks asked before it are answered.
pub async fn serve_stream<S>(peer: PeerId, stream: S, source: Arc<dyn SyncSource>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (rd, mut wr) = futures::AsyncReadExt::split(stream);
    // Dropped whenever a block read finishes first: it must keep partial frames.
    let mut rd = FrameReader::new(rd);
    let mut served = Served::default();
    let mut reads: FuturesOrdered<tokio::task::JoinHandle<BlockRead>> = FuturesOrdered::new();
    let mut ended = false;
    loop {
        if ended && reads.is_empty() {
            wr.flush().await?;
            return Ok(());
        }
        tokio::select! {
            Some(done) = reads.next(), if !reads.is_empty() => {
                let read = done.map_err(|e| SessionError::Protocol(e.to_string()))?;
                served.answer(&mut wr, read).await?;
                if reads.is_empty() {
                    wr.flush().await?;
                }
            }
            frame = tokio::time::timeout(IDLE, rd.next_with(parse_header)), if !ended && reads.len() < READ_AHEAD => {
                let Ok(frame) = frame else { return Err(SessionError::Timeout) };
                let Some((tag, payload)) = frame? else {
                    ended = true;
                    continue;
                };
                let Ok(SyncFrame::Request(req)) = SyncFrame::decode(tag, payload) else {
                    return Err(SessionError::Protocol("expected a request".into()));
                };
                if let SyncRequest::Block { req, folder, path, index, hash } = req {
                    let s = source.clone();
                    reads.push_back(tokio::task::spawn_blocking(move || {
                        let data = s.block(peer, folder, &path, index, hash);
                        (req, (path, index), data)
                    }));
                    continue;
                }
                // Answers go out in the order asked.
                while let Some(done) = reads.next().await {
                    served.answer(&mut wr, done.map_err(|e| SessionError::Protocol(e.to_string()))?).await?;
                }
                let answer = answer_request(peer, req, &source).await?;
                wr.write_all(&answer.encode()).await?;
                wr.flush().await?;
            }
        }
    }
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
        (req, key, data): BlockRead,
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
        None => Err(SessionError::Protocol("stream closed".into())),
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
pub async fn fetch_blocks<S>(
    mut stream: S,
    folder: FolderId,
    blocks: Vec<FolderBlock>,
    window: usize,
    results: mpsc::Sender<(FolderBlock, Option<Bytes>)>,
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
        let (got, data) = match read(&mut stream, IDLE).await? {
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
