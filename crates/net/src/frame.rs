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
    let (tag, len) = parse(header)?;
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    Ok(Some((tag, buf.freeze())))
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
}
