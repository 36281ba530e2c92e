//! File requests, `/peerbox/drop/1`: the owner's side receives files into a folder
//! it never lets the sender see; the holder's side sends files one after another
//! over one stream. Frames and their order are in `peerbox_proto::drop`.
//!
//! The protocol never calls the engine: the owner side asks a [`DropTarget`], which
//! the node implements over its links, folders and disk. A file being received is
//! an [`IncomingFile`]; dropping one that was not finished discards it, so every
//! early exit here (a broken stream, a lie about the size, a revoked link) leaves
//! nothing partial behind.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, Stream, StreamExt};
use libp2p::PeerId;
use peerbox_proto::drop::{DropClient, DropFrame, DropRefusal, DropServer, MAX_DATA, parse_header};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::blocks::SessionError;
use crate::frame::read_frame_with;

/// Upload sessions an owner serves at once; more are refused.
pub const MAX_SESSIONS: usize = 32;
/// How long a new stream may take to say what it wants.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long either side waits for the other mid-session.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes of file data per frame the sender writes.
const CHUNK: usize = 256 * 1024;

/// What a holder asks for when it opens a request link.
#[derive(Debug, Clone)]
pub struct DropOpen {
    /// The folder, from the link.
    pub folder: [u8; 16],
    /// The link's secret.
    pub secret: [u8; 32],
    /// The password proof, for a link that takes one.
    pub proof: Option<[u8; 32]>,
    /// The sender's device name (peer data: validated by the target).
    pub from: String,
    /// One drop's id: sessions with the same batch land in one folder.
    pub batch: [u8; 16],
}

/// What the owner side needs from the node.
pub trait DropTarget: Send + Sync + 'static {
    /// Checks the link and opens a session for `peer`. Blocking.
    fn open(&self, peer: PeerId, open: DropOpen) -> Result<Arc<dyn DropSession>, DropRefusal>;
}

/// An opened request link.
pub trait DropSession: Send + Sync + 'static {
    /// The folder's name, as the owner calls it.
    fn name(&self) -> String;
    /// Bytes the link still takes, if it has a limit.
    fn remaining(&self) -> Option<u64>;
    /// Whether the link still holds (revocation, expiry). Cheap: called often.
    fn still_valid(&self) -> bool;
    /// Starts receiving a file of `size` bytes at `path` (peer data). Blocking.
    fn start_file(&self, path: &str, size: u64) -> Result<Box<dyn IncomingFile>, DropRefusal>;
}

/// A file being received. Dropped unfinished, it is discarded.
pub trait IncomingFile: Send + 'static {
    /// Appends bytes. Blocking.
    fn write(&mut self, data: &[u8]) -> Result<(), DropRefusal>;
    /// All bytes are in and verified: store the file; returns its path in the folder. Blocking.
    fn finish(self: Box<Self>) -> Result<String, DropRefusal>;
}

/// Serves inbound drop streams until `incoming` ends.
pub async fn serve(mut incoming: crate::Incoming, target: Arc<dyn DropTarget>) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    while let Some((peer, mut stream)) = incoming.next().await {
        let target = target.clone();
        match sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    if let Err(e) = serve_session(peer, stream, target).await {
                        tracing::info!(%peer, "upload session ended: {e}");
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::debug!(%peer, "too many upload sessions; closing one");
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(OPEN_TIMEOUT, stream.close()).await;
                });
            }
        }
    }
}

async fn read<S: AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> Result<Option<DropFrame>, SessionError> {
    let frame =
        tokio::time::timeout(timeout, read_frame_with(s, parse_header)).await.map_err(|_| SessionError::Timeout)??;
    match frame {
        None => Ok(None),
        Some((tag, payload)) => {
            DropFrame::decode(tag, payload).map(Some).map_err(|e| SessionError::Protocol(e.to_string()))
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, m: DropServer) -> Result<(), SessionError> {
    s.write_all(&DropFrame::Server(m).encode()).await?;
    s.flush().await?;
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SessionError::Protocol(e.to_string()))
}

/// Serves one session on `stream` (public so tests can run it over any pipe).
pub async fn serve_session<S>(peer: PeerId, mut stream: S, target: Arc<dyn DropTarget>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let open = match read(&mut stream, OPEN_TIMEOUT).await? {
        None => return Ok(()),
        Some(DropFrame::Client(DropClient::Open { folder, secret, proof, from, batch })) => {
            DropOpen { folder, secret, proof, from, batch }
        }
        Some(_) => return Err(SessionError::Protocol("expected Open first".into())),
    };
    let session = match blocking(move || target.open(peer, open)).await? {
        Ok(s) => s,
        Err(r) => {
            send(&mut stream, DropServer::Refused(r)).await?;
            stream.close().await?;
            return Ok(());
        }
    };
    send(&mut stream, DropServer::Opened { name: session.name(), remaining: session.remaining() }).await?;
    loop {
        let (path, size) = match read(&mut stream, IDLE_TIMEOUT).await? {
            None => return Ok(()),
            Some(DropFrame::Client(DropClient::File { path, size })) => (path, size),
            Some(_) => return Err(SessionError::Protocol("expected a file".into())),
        };
        if !session.still_valid() {
            send(&mut stream, DropServer::Refused(DropRefusal::Unknown)).await?;
            stream.close().await?;
            return Ok(());
        }
        let s = session.clone();
        let file = match blocking(move || s.start_file(&path, size)).await? {
            Ok(f) => f,
            Err(r) => {
                send(&mut stream, DropServer::Refused(r)).await?;
                if r.ends_session() {
                    stream.close().await?;
                    return Ok(());
                }
                continue;
            }
        };
        send(&mut stream, DropServer::Ready).await?;
        match receive(&mut stream, &*session, file, size).await? {
            Ok(path) => send(&mut stream, DropServer::Stored { path }).await?,
            Err(r) => {
                send(&mut stream, DropServer::Refused(r)).await?;
                if r.ends_session() {
                    stream.close().await?;
                    return Ok(());
                }
            }
        }
    }
}

/// Receives exactly `size` bytes and the closing hash into `file`. A protocol
/// violation or a broken stream drops (discards) the file.
async fn receive<S>(
    stream: &mut S,
    session: &dyn DropSession,
    file: Box<dyn IncomingFile>,
    size: u64,
) -> Result<Result<String, DropRefusal>, SessionError>
where
    S: AsyncRead + Unpin,
{
    let mut file = Some(file);
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    loop {
        match read(stream, IDLE_TIMEOUT).await? {
            Some(DropFrame::Client(DropClient::Data(d))) => {
                got += d.len() as u64;
                if got > size {
                    return Err(SessionError::Protocol(format!("more than the {size} bytes announced")));
                }
                if !session.still_valid() {
                    return Ok(Err(DropRefusal::Unknown));
                }
                hasher.update(&d);
                let Some(mut f) = file.take() else { return Err(SessionError::Protocol("no file".into())) };
                let (f, r) = blocking(move || {
                    let r = f.write(&d);
                    (f, r)
                })
                .await?;
                if let Err(r) = r {
                    return Ok(Err(r));
                }
                file = Some(f);
            }
            Some(DropFrame::Client(DropClient::End { sha256 })) => {
                if got != size || <[u8; 32]>::from(hasher.finalize()) != sha256 {
                    return Ok(Err(DropRefusal::Corrupt));
                }
                let Some(f) = file.take() else { return Err(SessionError::Protocol("no file".into())) };
                return blocking(move || f.finish()).await;
            }
            None => return Err(SessionError::Protocol("the sender stopped in the middle of a file".into())),
            Some(_) => return Err(SessionError::Protocol("expected file data".into())),
        }
    }
}

/// An opened request link, holder side.
#[derive(Debug, Clone)]
pub struct DropOpened {
    /// The folder's name as its owner calls it (peer data).
    pub name: String,
    /// Bytes the link still takes.
    pub remaining: Option<u64>,
}

async fn answer<S: AsyncRead + Unpin>(stream: &mut S) -> Result<DropServer, SessionError> {
    match read(stream, IDLE_TIMEOUT).await? {
        Some(DropFrame::Server(m)) => Ok(m),
        Some(DropFrame::Client(_)) => Err(SessionError::Protocol("the owner sent a sender's frame".into())),
        None => Err(SessionError::Protocol("the owner closed the session".into())),
    }
}

/// Opens a request link on `stream`.
pub async fn open<S>(stream: &mut S, open: DropOpen) -> Result<Result<DropOpened, DropRefusal>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let DropOpen { folder, secret, proof, from, batch } = open;
    stream.write_all(&DropFrame::Client(DropClient::Open { folder, secret, proof, from, batch }).encode()).await?;
    stream.flush().await?;
    match answer(stream).await? {
        DropServer::Opened { name, remaining } => Ok(Ok(DropOpened { name, remaining })),
        DropServer::Refused(r) => Ok(Err(r)),
        other => Err(SessionError::Protocol(format!("unexpected {other:?} to Open"))),
    }
}

/// Sends one file of `size` bytes from `data` over an opened session; `sent`
/// hears of every chunk written. Returns where the owner stored it, or why it
/// refused. If `data` yields more or fewer bytes than `size`, the session fails
/// (and the owner discards the file).
pub async fn send_file<S, D>(
    stream: &mut S,
    path: &str,
    size: u64,
    mut data: D,
    sent: &mut (dyn FnMut(u64) + Send),
) -> Result<Result<String, DropRefusal>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    stream.write_all(&DropFrame::Client(DropClient::File { path: path.to_owned(), size }).encode()).await?;
    stream.flush().await?;
    match answer(stream).await? {
        DropServer::Ready => {}
        DropServer::Refused(r) => return Ok(Err(r)),
        other => return Err(SessionError::Protocol(format!("unexpected {other:?} to File"))),
    }
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        for part in chunk.chunks(CHUNK.min(MAX_DATA)) {
            total += part.len() as u64;
            if total > size {
                return Err(SessionError::Protocol(format!("{path}: grew past {size} bytes while it was sent")));
            }
            hasher.update(part);
            stream.write_all(&DropFrame::Client(DropClient::Data(Bytes::copy_from_slice(part))).encode()).await?;
            sent(part.len() as u64);
        }
    }
    if total != size {
        return Err(SessionError::Protocol(format!("{path}: {total} bytes instead of {size}")));
    }
    stream.write_all(&DropFrame::Client(DropClient::End { sha256: hasher.finalize().into() }).encode()).await?;
    stream.flush().await?;
    match answer(stream).await? {
        DropServer::Stored { path } => Ok(Ok(path)),
        DropServer::Refused(r) => Ok(Err(r)),
        other => Err(SessionError::Protocol(format!("unexpected {other:?} to End"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// Stores files in memory; `limit` bytes in all.
    #[derive(Default)]
    struct Mem {
        stored: Mutex<Vec<(String, Vec<u8>)>>,
        discarded: Mutex<usize>,
        limit: u64,
    }

    struct MemSession(Arc<Mem>);
    struct MemFile(Arc<Mem>, String, Vec<u8>, bool);

    impl DropTarget for Arc<Mem> {
        fn open(&self, _: PeerId, o: DropOpen) -> Result<Arc<dyn DropSession>, DropRefusal> {
            if o.secret != [1; 32] {
                return Err(DropRefusal::Unknown);
            }
            Ok(Arc::new(MemSession(self.clone())))
        }
    }

    impl DropSession for MemSession {
        fn name(&self) -> String {
            "Team".into()
        }
        fn remaining(&self) -> Option<u64> {
            Some(self.0.limit)
        }
        fn still_valid(&self) -> bool {
            true
        }
        fn start_file(&self, path: &str, size: u64) -> Result<Box<dyn IncomingFile>, DropRefusal> {
            if size > self.0.limit {
                return Err(DropRefusal::TooBig { remaining: self.0.limit });
            }
            Ok(Box::new(MemFile(self.0.clone(), path.into(), Vec::new(), false)))
        }
    }

    impl IncomingFile for MemFile {
        fn write(&mut self, data: &[u8]) -> Result<(), DropRefusal> {
            self.2.extend_from_slice(data);
            Ok(())
        }
        fn finish(mut self: Box<Self>) -> Result<String, DropRefusal> {
            self.3 = true;
            self.0.stored.lock().unwrap().push((self.1.clone(), std::mem::take(&mut self.2)));
            Ok(format!("from Bob/{}", self.1))
        }
    }

    impl Drop for MemFile {
        fn drop(&mut self) {
            if !self.3 {
                *self.0.discarded.lock().unwrap() += 1;
            }
        }
    }

    fn opener(secret: [u8; 32]) -> DropOpen {
        DropOpen { folder: [0; 16], secret, proof: None, from: "Bob".into(), batch: [5; 16] }
    }

    fn chunks(data: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
        futures::stream::iter(data.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn files_arrive_whole_and_one_over_the_limit_is_refused_before_any_byte() {
        let mem = Arc::new(Mem { limit: 1 << 20, ..Default::default() });
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), Arc::new(mem.clone())));
        let mut a = a.compat();
        let opened = open(&mut a, opener([1; 32])).await.unwrap().unwrap();
        assert_eq!((opened.name.as_str(), opened.remaining), ("Team", Some(1 << 20)));
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let mut n = 0;
        let stored = send_file(&mut a, "a.bin", data.len() as u64, chunks(&data), &mut |b| n += b).await.unwrap();
        assert_eq!(stored.unwrap(), "from Bob/a.bin");
        assert_eq!(n, data.len() as u64);
        let big = vec![0u8; (1 << 20) + 1];
        let r = send_file(&mut a, "big.bin", big.len() as u64, chunks(&big), &mut |_| panic!("no byte may move"))
            .await
            .unwrap();
        assert_eq!(r, Err(DropRefusal::TooBig { remaining: 1 << 20 }));
        // The session goes on after a refused file.
        let r = send_file(&mut a, "b.txt", 2, chunks(b"hi"), &mut |_| {}).await.unwrap();
        assert!(r.is_ok());
        a.close().await.unwrap();
        server.await.unwrap().unwrap();
        let stored = mem.stored.lock().unwrap();
        assert_eq!(
            stored.iter().map(|(p, d)| (p.as_str(), d.len())).collect::<Vec<_>>(),
            [("a.bin", 700_000), ("b.txt", 2)]
        );
        assert_eq!(stored[0].1, data);
    }

    #[tokio::test]
    async fn a_sender_that_lies_or_breaks_off_leaves_nothing() {
        let mem = Arc::new(Mem { limit: 1 << 20, ..Default::default() });
        // More bytes than announced: the session fails and the file is discarded.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), Arc::new(mem.clone())));
        let mut a = a.compat();
        open(&mut a, opener([1; 32])).await.unwrap().unwrap();
        a.write_all(&DropFrame::Client(DropClient::File { path: "x".into(), size: 3 }).encode()).await.unwrap();
        assert_eq!(answer(&mut a).await.unwrap(), DropServer::Ready);
        a.write_all(&DropFrame::Client(DropClient::Data(Bytes::from_static(b"four"))).encode()).await.unwrap();
        assert!(matches!(server.await.unwrap(), Err(SessionError::Protocol(_))));

        // The right size but the wrong hash: refused as damaged.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), Arc::new(mem.clone())));
        let mut a = a.compat();
        open(&mut a, opener([1; 32])).await.unwrap().unwrap();
        a.write_all(&DropFrame::Client(DropClient::File { path: "y".into(), size: 2 }).encode()).await.unwrap();
        assert_eq!(answer(&mut a).await.unwrap(), DropServer::Ready);
        a.write_all(&DropFrame::Client(DropClient::Data(Bytes::from_static(b"ab"))).encode()).await.unwrap();
        a.write_all(&DropFrame::Client(DropClient::End { sha256: [0; 32] }).encode()).await.unwrap();
        assert_eq!(answer(&mut a).await.unwrap(), DropServer::Refused(DropRefusal::Corrupt));
        server.await.unwrap().unwrap();

        // Half a file, then the stream ends.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), Arc::new(mem.clone())));
        let mut a = a.compat();
        open(&mut a, opener([1; 32])).await.unwrap().unwrap();
        a.write_all(&DropFrame::Client(DropClient::File { path: "z".into(), size: 10 }).encode()).await.unwrap();
        assert_eq!(answer(&mut a).await.unwrap(), DropServer::Ready);
        a.write_all(&DropFrame::Client(DropClient::Data(Bytes::from_static(b"abc"))).encode()).await.unwrap();
        drop(a);
        assert!(server.await.unwrap().is_err());

        assert!(mem.stored.lock().unwrap().is_empty());
        assert_eq!(*mem.discarded.lock().unwrap(), 3);

        // A wrong secret: refused before anything else.
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(serve_session(PeerId::random(), b.compat(), Arc::new(mem.clone())));
        let mut a = a.compat();
        assert_eq!(open(&mut a, opener([2; 32])).await.unwrap().unwrap_err(), DropRefusal::Unknown);
        server.await.unwrap().unwrap();
    }
}
