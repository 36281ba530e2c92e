//! The yamux stream muxer (`/yamux/1.0.0`), sending data frames of up to
//! [`SPLIT_SEND_SIZE`] instead of libp2p-yamux's fixed 16 KiB.
//!
//! yamux writes and flushes each data frame on its own, through TLS, as its own
//! `write()`. At 16 KiB a frame, a 1 GiB transfer is 65,536 rounds of frame,
//! record, flush and wake-up on each side, and that per-frame work, not the
//! socket or the cipher, is what bounds the block path on this class of machine
//! (BENCHMARKS.md: bigger frames cut CPU by up to 30 %). libp2p-yamux keeps its
//! `yamux::Config` private, so this module adapts the `yamux` crate to libp2p's
//! `StreamMuxer` itself.
//!
//! The wire format is yamux's: a receiver takes any frame that fits the
//! stream's window (256 KiB at least; rust-yamux also caps a body at 1 MiB),
//! so peers running other libp2p software negotiate and talk as before.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::future::{Ready, ready};
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::UpgradeInfo;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};

/// The largest data frame this side sends. Measured on a 1 GiB link download
/// (CPU of both sides): 64 KiB frames cost ~10 % less than 16 KiB ones, and
/// 256 KiB ones no less than 64 KiB (the receiving yamux allocates a buffer per
/// frame, and big ones come in as fresh pages). Smaller frames also keep down
/// how long one stream's frame holds up the others' on a slow link.
const SPLIT_SEND_SIZE: usize = 64 * 1024;

/// Inbound streams held while nobody asks for them; beyond this they are
/// dropped (reset), as libp2p-yamux does. rust-yamux peers stop opening
/// streams at the same backlog, so this only trips on a misbehaving peer.
const MAX_WAITING_INBOUND: usize = 256;

/// The upgrade: `/yamux/1.0.0` with big data frames.
#[derive(Debug, Clone)]
pub(crate) struct Config(yamux::Config);

impl Config {
    pub(crate) fn new() -> Self {
        let mut config = yamux::Config::default();
        config.set_split_send_size(SPLIT_SEND_SIZE);
        Self(config)
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = Ready<Result<Muxer<C>, io::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        ready(Ok(Muxer::new(yamux::Connection::new(io, self.0, yamux::Mode::Server))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = Ready<Result<Muxer<C>, io::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        ready(Ok(Muxer::new(yamux::Connection::new(io, self.0, yamux::Mode::Client))))
    }
}

/// One yamux connection as a libp2p [`StreamMuxer`].
///
/// yamux only makes progress (reads frames, sends window updates) while
/// `poll_next_inbound` is polled, and libp2p drives that through
/// [`StreamMuxer::poll`]. Streams opened by the peer during such a poll wait
/// here until libp2p asks for them with [`StreamMuxer::poll_inbound`].
pub(crate) struct Muxer<C> {
    connection: yamux::Connection<C>,
    waiting: VecDeque<yamux::Stream>,
    inbound_waker: Option<Waker>,
}

impl<C> std::fmt::Debug for Muxer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer").field("waiting", &self.waiting.len()).finish_non_exhaustive()
    }
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    fn new(connection: yamux::Connection<C>) -> Self {
        Self { connection, waiting: VecDeque::new(), inbound_waker: None }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, yamux::ConnectionError>> {
        match self.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(next)) => Poll::Ready(next),
            Poll::Ready(None) => Poll::Ready(Err(yamux::ConnectionError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, Self::Error>> {
        let this = self.get_mut();
        if let Some(stream) = this.waiting.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        if let Poll::Ready(next) = this.poll_next(cx) {
            return Poll::Ready(next);
        }
        this.inbound_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, Self::Error>> {
        self.get_mut().connection.poll_new_outbound(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().connection.poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = match this.poll_next(cx) {
            Poll::Ready(next) => next?,
            Poll::Pending => return Poll::Pending,
        };
        if this.waiting.len() >= MAX_WAITING_INBOUND {
            tracing::warn!(%stream, "dropping an inbound stream: too many wait to be taken");
            drop(stream);
        } else {
            this.waiting.push_back(stream);
            if let Some(waker) = this.inbound_waker.take() {
                waker.wake();
            }
        }
        // Come back at once: yamux only reads on while it is polled, and this
        // poll returned before it had nothing more to do.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures::future::poll_fn;
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::*;

    /// Keeps a connection going on its own task, as libp2p's swarm does.
    fn drive(mut muxer: StreamMuxerBox) {
        tokio::spawn(async move { while poll_fn(|cx| muxer.poll_unpin(cx)).await.is_ok() {} });
    }

    /// Sends `data` on a stream opened by `opener` and returns what the stream
    /// `acceptor` takes reads.
    async fn send_across(mut opener: StreamMuxerBox, mut acceptor: StreamMuxerBox, data: Vec<u8>) -> Vec<u8> {
        let mut out = poll_fn(|cx| opener.poll_outbound_unpin(cx)).await.expect("open a stream");
        drive(opener);
        let writer = tokio::spawn(async move {
            out.write_all(&data).await?;
            out.close().await
        });
        let mut inbound = poll_fn(|cx| acceptor.poll_inbound_unpin(cx)).await.expect("accept a stream");
        drive(acceptor);
        let mut got = Vec::new();
        inbound.read_to_end(&mut got).await.expect("read");
        writer.await.unwrap().expect("write");
        got
    }

    fn pair() -> (Compat<tokio::io::DuplexStream>, Compat<tokio::io::DuplexStream>) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (a.compat(), b.compat())
    }

    #[tokio::test]
    async fn big_frames_reach_a_peer_running_libp2p_yamux_and_back() {
        // More than a stream's first window, and not a whole number of frames.
        let data: Vec<u8> = (0..(1u32 << 20) + 12_345).map(|i| (i % 251) as u8).collect();

        let (a, b) = pair();
        let ours = Config::new().upgrade_outbound(a, "/yamux/1.0.0").await.unwrap();
        let theirs = libp2p::yamux::Config::default().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        let got = send_across(StreamMuxerBox::new(ours), StreamMuxerBox::new(theirs), data.clone()).await;
        assert!(got == data, "{} bytes arrived of {}, or they differ", got.len(), data.len());

        let (a, b) = pair();
        let theirs = libp2p::yamux::Config::default().upgrade_outbound(a, "/yamux/1.0.0").await.unwrap();
        let ours = Config::new().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        let got = send_across(StreamMuxerBox::new(theirs), StreamMuxerBox::new(ours), data.clone()).await;
        assert!(got == data, "{} bytes arrived of {}, or they differ", got.len(), data.len());
    }
}
