//! Bandwidth limits: token buckets for upload and download, one for all traffic
//! and one per peer, that every Peerbox stream passes through ([`Throttled`]).
//!
//! Limits change while streams run: buckets read the current rate at each refill.
//! A peer reached only over LAN addresses (private, loopback, link-local) is left
//! alone unless the limits say to include the LAN, as a local copy should not crawl
//! at an internet cap. A read takes tokens for the most it may read and gives back
//! what it did not read, so a waiting stream holds nothing; a write takes what it
//! writes. When tokens run out the stream sleeps until enough have accrued.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

// Tokio's clock, so tests can pause time and the buckets follow it.
use tokio::time::Instant;

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;

/// Bytes per second; 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// All uploads together.
    pub upload: u64,
    /// All downloads together.
    pub download: u64,
    /// Uploads to any one peer.
    pub peer_upload: u64,
    /// Downloads from any one peer.
    pub peer_download: u64,
    /// Apply the limits to peers on the LAN too.
    pub limit_lan: bool,
}

impl Limits {
    /// The limit for all peers and for one, for bytes moving `way`.
    fn rates(&self, way: Way) -> (u64, u64) {
        match way {
            Way::Up => (self.upload, self.peer_upload),
            Way::Down => (self.download, self.peer_download),
        }
    }
}

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up,
    Down,
}

/// The least a stream waits for: reading or writing a few bytes at a time would
/// cost more than it saves.
const MIN_GRANT: f64 = 4096.0;
/// How much traffic a bucket lets through at once, in seconds of its rate.
const BURST: f64 = 0.05;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new() -> Self {
        Self { tokens: 0.0, last: Instant::now() }
    }

    fn cap(rate: u64) -> f64 {
        (rate as f64 * BURST).max(MIN_GRANT * 4.0)
    }

    fn refill(&mut self, rate: u64, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * rate as f64).min(Self::cap(rate));
    }

    /// Bytes available now, or how long until enough for a grant.
    fn available(&self, rate: u64, want: usize) -> Result<f64, Duration> {
        let need = (want as f64).min(MIN_GRANT);
        if self.tokens >= need {
            Ok(self.tokens)
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / rate as f64))
        }
    }
}

#[derive(Debug, Default)]
struct Buckets {
    up: Option<Bucket>,
    down: Option<Bucket>,
}

impl Buckets {
    fn get(&mut self, way: Way) -> &mut Bucket {
        match way {
            Way::Up => self.up.get_or_insert_with(Bucket::new),
            Way::Down => self.down.get_or_insert_with(Bucket::new),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    limits: Limits,
    all: Buckets,
    peers: HashMap<PeerId, Buckets>,
    lan: HashSet<PeerId>,
}

/// Most peers with buckets at once; past this the idle ones are dropped first.
const MAX_PEERS: usize = 4096;

/// The shared limits and buckets. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    state: Arc<Mutex<State>>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Self {
        let l = Self::default();
        l.set_limits(limits);
        l
    }

    /// Changes the limits; streams already running follow at once.
    pub fn set_limits(&self, limits: Limits) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.limits = limits;
    }

    /// The limits now.
    pub fn limits(&self) -> Limits {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).limits
    }

    /// Bytes sent and received through limited streams since start.
    pub fn totals(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }

    /// Records whether `peer` is reached only over the LAN.
    pub(crate) fn set_lan(&self, peer: PeerId, lan: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if lan {
            s.lan.insert(peer);
        } else {
            s.lan.remove(&peer);
        }
    }

    /// Forgets a peer's buckets (its last connection closed).
    pub(crate) fn forget(&self, peer: &PeerId) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.peers.remove(peer);
        s.lan.remove(peer);
    }

    /// Takes up to `want` bytes for `peer`: the bytes granted, or how long to wait.
    fn take(&self, peer: &PeerId, way: Way, want: usize) -> Result<usize, Duration> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let l = s.limits;
        let (all_rate, peer_rate) = l.rates(way);
        if all_rate == 0 && peer_rate == 0 || !l.limit_lan && s.lan.contains(peer) {
            return Ok(want);
        }
        let now = Instant::now();
        if s.peers.len() >= MAX_PEERS && !s.peers.contains_key(peer) {
            s.peers.clear();
        }
        let mut grant = want as f64;
        let mut wait = Duration::ZERO;
        let all = s.all.get(way);
        if all_rate > 0 {
            all.refill(all_rate, now);
            match all.available(all_rate, want) {
                Ok(a) => grant = grant.min(a),
                Err(w) => wait = wait.max(w),
            }
        }
        let mine = s.peers.entry(*peer).or_default().get(way);
        if peer_rate > 0 {
            mine.refill(peer_rate, now);
            match mine.available(peer_rate, want) {
                Ok(a) => grant = grant.min(a),
                Err(w) => wait = wait.max(w),
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        let grant = grant.max(1.0).floor();
        if all_rate > 0 {
            s.all.get(way).tokens -= grant;
        }
        if peer_rate > 0 {
            s.peers.entry(*peer).or_default().get(way).tokens -= grant;
        }
        Ok(grant as usize)
    }

    /// Gives back `n` bytes taken but not used.
    fn refund(&self, peer: &PeerId, way: Way, n: usize) {
        if n == 0 {
            return;
        }
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let l = s.limits;
        let (all_rate, peer_rate) = l.rates(way);
        if all_rate > 0
            && let Some(b) = match way {
                Way::Up => s.all.up.as_mut(),
                Way::Down => s.all.down.as_mut(),
            }
        {
            b.tokens = (b.tokens + n as f64).min(Bucket::cap(all_rate));
        }
        if peer_rate > 0
            && let Some(p) = s.peers.get_mut(peer)
            && let Some(b) = match way {
                Way::Up => p.up.as_mut(),
                Way::Down => p.down.as_mut(),
            }
        {
            b.tokens = (b.tokens + n as f64).min(Bucket::cap(peer_rate));
        }
    }

    fn count(&self, way: Way, n: usize) {
        match way {
            Way::Up => self.sent.fetch_add(n as u64, Ordering::Relaxed),
            Way::Down => self.received.fetch_add(n as u64, Ordering::Relaxed),
        };
    }
}

/// Whether an address is on the LAN: private, loopback or link-local IP, and not
/// through a relay.
pub(crate) fn is_lan(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    let mut lan = false;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(ip) => lan = ip.is_private() || ip.is_loopback() || ip.is_link_local(),
            Protocol::Ip6(ip) => {
                lan = ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local();
            }
            Protocol::P2pCircuit => return false,
            _ => {}
        }
    }
    lan
}

/// A stream whose bytes pass through a [`Limiter`] for one peer.
pub struct Throttled<S> {
    inner: S,
    limiter: Limiter,
    peer: PeerId,
    read_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    write_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Throttled<S> {
    /// Wraps `inner`, a stream with `peer`.
    pub fn new(inner: S, limiter: Limiter, peer: PeerId) -> Self {
        Self { inner, limiter, peer, read_wait: None, write_wait: None }
    }

    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

impl<S> std::fmt::Debug for Throttled<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttled").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// Waits out `slot`'s sleep, if any; `Pending` until it is over.
fn wait(slot: &mut Option<Pin<Box<tokio::time::Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(s) = slot.as_mut() {
        ready!(s.as_mut().poll(cx));
        *slot = None;
    }
    Poll::Ready(())
}

/// Takes tokens, or arms `slot` to wake us when there will be some.
fn grant(
    limiter: &Limiter,
    peer: &PeerId,
    way: Way,
    want: usize,
    slot: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<usize> {
    loop {
        ready!(wait(slot, cx));
        match limiter.take(peer, way, want) {
            Ok(n) => return Poll::Ready(n),
            Err(d) => *slot = Some(Box::pin(tokio::time::sleep(d))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let this = &mut *self;
        let n = ready!(grant(&this.limiter, &this.peer, Way::Down, buf.len(), &mut this.read_wait, cx));
        let r = Pin::new(&mut this.inner).poll_read(cx, &mut buf[..n]);
        match &r {
            Poll::Ready(Ok(got)) => {
                this.limiter.refund(&this.peer, Way::Down, n - got);
                this.limiter.count(Way::Down, *got);
            }
            _ => this.limiter.refund(&this.peer, Way::Down, n),
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let this = &mut *self;
        let n = ready!(grant(&this.limiter, &this.peer, Way::Up, buf.len(), &mut this.write_wait, cx));
        let r = Pin::new(&mut this.inner).poll_write(cx, &buf[..n]);
        match &r {
            Poll::Ready(Ok(wrote)) => {
                this.limiter.refund(&this.peer, Way::Up, n - wrote);
                this.limiter.count(Way::Up, *wrote);
            }
            _ => this.limiter.refund(&this.peer, Way::Up, n),
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// Moves `total` bytes through a pipe whose writer side is throttled and
    /// returns the virtual time it took (time is paused: no real waiting).
    async fn timed(limiter: Limiter, peer: PeerId, total: usize) -> Duration {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut w = Throttled::new(a.compat(), limiter, peer);
        let mut r = b.compat();
        let start = tokio::time::Instant::now();
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 32 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                w.write_all(&chunk[..n]).await.unwrap();
                left -= n;
            }
            w.close().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), total);
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_holds_the_rate_and_changes_apply_to_running_streams() {
        let l = Limiter::new(Limits { upload: 1 << 20, limit_lan: true, ..Default::default() });
        let t = timed(l.clone(), PeerId::random(), 4 << 20).await.as_secs_f64();
        assert!((3.8..4.2).contains(&t), "4 MiB at 1 MiB/s took {t} s");
        // Per-peer limits apply to each peer; the lower of the two wins.
        l.set_limits(Limits { upload: 1 << 20, peer_upload: 256 << 10, limit_lan: true, ..Default::default() });
        let t = timed(l.clone(), PeerId::random(), 1 << 20).await.as_secs_f64();
        assert!((3.8..4.2).contains(&t), "1 MiB at 256 KiB/s took {t} s");
        l.set_limits(Limits::default());
        let t = timed(l.clone(), PeerId::random(), 8 << 20).await.as_secs_f64();
        assert!(t < 0.01, "no limit: {t} s");
        assert_eq!(l.totals().0, (4 << 20) + (1 << 20) + (8 << 20));
    }

    #[tokio::test(start_paused = true)]
    async fn lan_peers_are_exempt_unless_asked() {
        let peer = PeerId::random();
        let l = Limiter::new(Limits { upload: 1 << 20, ..Default::default() });
        l.set_lan(peer, true);
        assert!(timed(l.clone(), peer, 4 << 20).await.as_secs_f64() < 0.01);
        l.set_limits(Limits { upload: 1 << 20, limit_lan: true, ..Default::default() });
        assert!(timed(l.clone(), peer, 2 << 20).await.as_secs_f64() > 1.8);
        assert!(is_lan(&"/ip4/192.168.1.4/tcp/1".parse().unwrap()));
        assert!(is_lan(&"/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()));
        assert!(!is_lan(&"/ip4/203.0.113.7/tcp/1".parse().unwrap()));
        assert!(!is_lan(
            &"/ip4/10.0.0.1/tcp/1/p2p/12D3KooWHxLrWgX8sJNmmhBPQ9nE7Ve3vTNbuGPmJsh95Wkrs4Mf/p2p-circuit"
                .parse()
                .unwrap()
        ));
    }
}
