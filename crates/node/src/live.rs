//! What changes while the node runs, for views that want to know at once: a change
//! counter (anything a status view shows changed), a settle counter (something
//! finished: a scan, a pull, a download), and notices (things worth telling the
//! user about: a download finished, a conflict appeared, someone asks to join).
//!
//! Producers only bump and send; they never wait. Consumers (the daemon's event
//! stream, the desktop shell) pace themselves with a [`Pacer`].

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// Notices kept for a consumer that lags, before it starts missing them.
const NOTICE_BACKLOG: usize = 64;

/// Something to tell the user about.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// download_done, download_failed, conflict or join_request.
    pub kind: &'static str,
    /// What it concerns: a file or folder name, or a share's label (peer data: show as text).
    pub subject: String,
    /// More detail, e.g. a short PeerId or an error (show as text).
    pub detail: String,
}

/// The change counter and the notice channel.
pub(crate) struct Live {
    counter: watch::Sender<u64>,
    settled: watch::Sender<u64>,
    notices: broadcast::Sender<Notice>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            counter: watch::channel(0).0,
            settled: watch::channel(0).0,
            notices: broadcast::channel(NOTICE_BACKLOG).0,
        }
    }
}

impl Live {
    /// Something a status view shows changed.
    pub(crate) fn bump(&self) {
        self.counter.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Something finished (a folder went idle, a download ended): views are told
    /// without waiting out their pace, so "done" shows as it happens.
    pub(crate) fn settle(&self) {
        self.bump();
        self.settled.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Changes paced to at most one per `gap`, but for settles.
    pub(crate) fn pacer(&self, gap: Duration) -> Pacer {
        Pacer { changes: self.counter.subscribe(), settled: self.settled.subscribe(), gap, last: None }
    }

    /// Tell the user (and bump, since views show notices too).
    pub(crate) fn notice(&self, kind: &'static str, subject: impl Into<String>, detail: impl Into<String>) {
        let _ = self.notices.send(Notice { kind, subject: subject.into(), detail: detail.into() });
        self.bump();
    }

    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.counter.subscribe()
    }

    pub(crate) fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

/// Paces a view's change events: the counter can move thousands of times a second
/// during a sync, so a view hears of it at most once per gap, with whatever moved
/// meanwhile coalesced into one event. A settle cuts the gap short.
pub struct Pacer {
    changes: watch::Receiver<u64>,
    settled: watch::Receiver<u64>,
    gap: Duration,
    /// When the last change was reported.
    last: Option<Instant>,
}

impl Pacer {
    /// The counter now, reported as of now (the next change waits out the gap).
    pub fn current(&mut self) -> u64 {
        self.last = Some(Instant::now());
        // Settles before this report are in it.
        self.settled.borrow_and_update();
        *self.changes.borrow_and_update()
    }

    /// The counter once it has moved since the last report and the gap since it
    /// has passed (or something settled meanwhile). None once the node is gone.
    /// Cancel-safe: dropped while waiting, the next call waits for the same.
    pub async fn next(&mut self) -> Option<u64> {
        if let Some(last) = self.last {
            tokio::select! {
                () = tokio::time::sleep_until(last + self.gap) => {}
                r = self.settled.changed() => r.ok()?,
            }
        }
        self.changes.changed().await.ok()?;
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(100);

    /// On the runtime's paused clock: the times below are exact.
    #[tokio::test(start_paused = true)]
    async fn changes_are_paced_and_a_settle_is_told_at_once() {
        let live = Live::default();
        let mut views = live.pacer(GAP);
        let t0 = Instant::now();
        live.bump();
        assert_eq!(views.next().await, Some(1), "the first change is told at once");
        assert_eq!(t0.elapsed(), Duration::ZERO);

        // A burst inside the gap is one event, at the end of the gap.
        live.bump();
        live.bump();
        assert_eq!(views.next().await, Some(3));
        assert_eq!(t0.elapsed(), GAP);

        // A scan finishing 30 ms into the gap is told then, not 70 ms later.
        let started = Instant::now();
        let finished = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            live.settle();
        };
        let (told, ()) = tokio::join!(views.next(), finished);
        assert_eq!(told, Some(4));
        assert_eq!(started.elapsed(), Duration::from_millis(30));

        // A settle already told does not cut the next gap.
        let started = Instant::now();
        live.bump();
        assert_eq!(views.next().await, Some(5));
        assert_eq!(started.elapsed(), GAP);

        // Nothing changes: nothing is told, however long it waits.
        let quiet = tokio::time::timeout(10 * GAP, views.next()).await;
        assert!(quiet.is_err(), "no event without a change");
    }

    /// The daemon's stream drops `next` whenever a notice comes first; the gap
    /// still counts from the last report.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_keeps_its_gap() {
        let live = Live::default();
        let mut views = live.pacer(GAP);
        let t0 = Instant::now();
        assert_eq!(views.current(), 0);
        live.bump();
        assert!(tokio::time::timeout(GAP / 2, views.next()).await.is_err());
        assert_eq!(views.next().await, Some(1));
        assert_eq!(t0.elapsed(), GAP);
    }
}
