//! What changes while the node runs, for views that want to know at once: a change
//! counter (anything a status view shows changed) and notices (things worth telling
//! the user about: a download finished, a conflict appeared, someone asks to join).
//!
//! Producers only bump and send; they never wait. Consumers (the daemon's event
//! stream, the desktop shell) throttle on their side.

use serde::Serialize;
use tokio::sync::{broadcast, watch};

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
    notices: broadcast::Sender<Notice>,
}

impl Default for Live {
    fn default() -> Self {
        Self { counter: watch::channel(0).0, notices: broadcast::channel(NOTICE_BACKLOG).0 }
    }
}

impl Live {
    /// Something a status view shows changed.
    pub(crate) fn bump(&self) {
        self.counter.send_modify(|g| *g = g.wrapping_add(1));
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
