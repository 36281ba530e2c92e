//! Reading and writing length-capped frames over any async byte stream.
//!
//! The header is read first and checked (see `peerbox_proto::blocks::parse_header`),
//! so a hostile length never causes an allocation.

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt};
use peerbox_proto::blocks::{FrameError, HEADER_LEN, Tag, parse_header};

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes broke the protocol.
    #[error("protocol violation: {0}")]
    Frame(#[from] FrameError),
    /// The stream failed or ended mid-frame.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one block-protocol frame. `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<(Tag, Bytes)>, ReadError> {
    read_frame_with(r, parse_header).await
}

/// Reads one frame whose header `parse` checks (tag, and length cap per tag).
pub async fn read_frame_with<R: AsyncRead + Unpin, T>(
    r: &mut R,
    parse: impl Fn([u8; HEADER_LEN]) -> Result<(T, usize), FrameError>,
) -> Result<Option<(T, Bytes)>, ReadError> {
    let Some(header) = read_header(r).await? else { return Ok(None) };
    let (tag, len) = parse(header)?;
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    Ok(Some((tag, buf.freeze())))
}

/// A frame read by [`read_frame_or_block`].
pub(crate) enum Read<T> {
    /// A block: its request number, and its bytes in a buffer of their own.
    Block { req: u32, data: Bytes },
    /// Any other frame: its tag and payload.
    Frame(T, Bytes),
}

/// Reads one frame as [`read_frame_with`] does, except a frame tagged `block`
/// (a request number, then a block): the request number is read apart and the
/// block straight into a buffer from `buffers`, so that buffer holds the block
/// alone and can be given back whole once it is written.
pub(crate) async fn read_frame_or_block<R: AsyncRead + Unpin, T: PartialEq>(
    r: &mut R,
    parse: impl Fn([u8; HEADER_LEN]) -> Result<(T, usize), FrameError>,
    block: T,
    buffers: &crate::Buffers,
) -> Result<Option<Read<T>>, ReadError> {
    let Some(header) = read_header(r).await? else { return Ok(None) };
    let (tag, len) = parse(header)?;
    if tag == block && len >= 4 {
        let mut req = [0u8; 4];
        r.read_exact(&mut req).await?;
        let mut data = buffers.take(len - 4);
        r.read_exact(&mut data).await?;
        return Ok(Some(Read::Block { req: u32::from_be_bytes(req), data: data.freeze() }));
    }
    let mut payload = BytesMut::zeroed(len);
    r.read_exact(&mut payload).await?;
    Ok(Some(Read::Frame(tag, payload.freeze())))
}

/// Reads a frame's header, unchecked; `Ok(None)` on a clean end of stream
/// between frames. The caller checks it before reading the payload.
async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<[u8; HEADER_LEN]>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    Ok(Some(header))
}

/// Reads frames from a stream, keeping what it has read of a frame between calls:
/// [`FrameReader::next`] can be dropped in a `select!` at any await and the next
/// call picks up where it stopped. ([`read_frame`] cannot: a read it loses there
/// takes part of a frame with it, and the stream is garbage from then on.)
pub struct FrameReader<R> {
    inner: R,
    /// Bytes read; only `..filled` are data, the rest is room to read into.
    buf: BytesMut,
    filled: usize,
}

/// Room made for each read beyond what the current frame still needs, so that
/// small frames arrive many to a read.
const READ_ROOM: usize = 64 << 10;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Starts reading frames from `inner` (nothing read yet).
    pub fn new(inner: R) -> Self {
        Self { inner, buf: BytesMut::new(), filled: 0 }
    }

    /// The next block-protocol frame; `Ok(None)` on a clean end between frames.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<(Tag, Bytes)>, ReadError> {
        self.next_with(parse_header).await
    }

    /// The next frame whose header `parse` checks. Cancel-safe.
    pub async fn next_with<T>(
        &mut self,
        parse: impl Fn([u8; HEADER_LEN]) -> Result<(T, usize), FrameError>,
    ) -> Result<Option<(T, Bytes)>, ReadError> {
        loop {
            let mut want = HEADER_LEN;
            if self.filled >= HEADER_LEN {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&self.buf[..HEADER_LEN]);
                // Checked before any room is made for the payload.
                let (tag, len) = parse(header)?;
                want = HEADER_LEN + len;
                if self.filled >= want {
                    let mut frame = self.buf.split_to(want);
                    self.filled -= want;
                    let payload = frame.split_off(HEADER_LEN).freeze();
                    return Ok(Some((tag, payload)));
                }
            }
            let room = (want - self.filled).max(READ_ROOM);
            if self.buf.len() < self.filled + room {
                self.buf.resize(self.filled + room, 0);
            }
            let n = self.inner.read(&mut self.buf[self.filled..]).await?;
            if n == 0 {
                if self.filled == 0 {
                    return Ok(None);
                }
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            self.filled += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use peerbox_proto::blocks::ClientMsg;

    #[tokio::test]
    async fn frames_truncation_and_hostile_lengths() {
        let f = ClientMsg::Get { req: 1, file: 2, block: 3 }.encode();
        let mut two = f.clone();
        two.extend_from_slice(&f);
        let mut r = Cursor::new(two);
        assert!(read_frame(&mut r).await.unwrap().is_some());
        assert!(read_frame(&mut r).await.unwrap().is_some());
        assert!(read_frame(&mut r).await.unwrap().is_none());

        let mut cut = Cursor::new(f[..f.len() - 1].to_vec());
        assert!(matches!(read_frame(&mut cut).await, Err(ReadError::Io(_))));
        let mut cut = Cursor::new(f[..2].to_vec());
        assert!(matches!(read_frame(&mut cut).await, Err(ReadError::Io(_))));

        let mut huge = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 19]);
        assert!(matches!(read_frame(&mut huge).await, Err(ReadError::Frame(FrameError::TooLong { .. }))));
    }

    /// Hands out its bytes one at a time, and says "not yet" before each: every
    /// await of a read is a chance to be dropped.
    struct Trickle(Vec<u8>, usize, bool);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            out: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let me = &mut *self;
            me.2 = !me.2;
            if me.2 {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let Some(b) = me.0.get(me.1) else { return std::task::Poll::Ready(Ok(0)) };
            out[0] = *b;
            me.1 += 1;
            std::task::Poll::Ready(Ok(1))
        }
    }

    #[tokio::test]
    async fn a_frame_reader_dropped_mid_frame_loses_nothing() {
        let frames: Vec<Vec<u8>> =
            (0..20).map(|i| ClientMsg::Get { req: i, file: i * 2, block: i * 3 }.encode()).collect();
        let mut r = FrameReader::new(Trickle(frames.concat(), 0, false));
        let mut got = Vec::new();
        let mut interrupted = 0;
        loop {
            // Polled once, then dropped at the first read that is not ready: as a
            // select! does when its other branch wins.
            match futures::FutureExt::now_or_never(r.next()) {
                None => interrupted += 1,
                Some(Ok(Some((tag, payload)))) => got.push(ClientMsg::decode(tag, &payload).unwrap()),
                Some(Ok(None)) => break,
                Some(Err(e)) => panic!("{e}"),
            }
        }
        assert!(interrupted > 0, "the test never dropped a read");
        let want: Vec<ClientMsg> = (0..20).map(|i| ClientMsg::Get { req: i, file: i * 2, block: i * 3 }).collect();
        assert_eq!(got, want);

        let mut cut = FrameReader::new(Cursor::new(frames[0][..frames[0].len() - 1].to_vec()));
        assert!(matches!(cut.next().await, Err(ReadError::Io(_))));
        let mut huge = FrameReader::new(Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 19]));
        assert!(matches!(huge.next().await, Err(ReadError::Frame(FrameError::TooLong { .. }))));
    }
}
