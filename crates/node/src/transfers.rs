//! The transfer queue: downloads from links that the node runs on the user's
//! behalf (the drive's "Open link → download"), with pause, resume and cancel.
//!
//! A download's row in the index says what and where; its temp files on disk say
//! how far it got, so pausing is just stopping the task (the next run resumes from
//! the verified blocks), and a restart picks up every download that was running.
//!
//! With a download window set (Settings → schedule), downloads at least the
//! window's size wait as "scheduled" outside it: one that learns its size while the
//! window is shut stops there, one running when the window shuts is stopped, and
//! all of them start when it opens. "Resume" on a scheduled one starts it now.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbox_net::Network;
use peerbox_proto::Link;
use peerbox_store::TransferRow;
use serde::Serialize;
use tokio::sync::watch;

use crate::NodeError;
use crate::get::{self, GetOptions, GetProgress, Hold};
use crate::live::Live;
use crate::share::{SharedStore, lock};

/// How often a running download's progress is written to the index.
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// The window over which speed is averaged.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// A download as views show it: the stored row plus live speed.
#[derive(Debug, Clone, Serialize)]
pub struct TransferInfo {
    /// The stored part.
    #[serde(flatten)]
    pub row: TransferRow,
    /// Bytes per second over the last seconds (running downloads only).
    pub rate: f64,
    /// Seconds left at that rate, if it can be told.
    pub eta: Option<u64>,
    /// The sharer's PeerId.
    pub peer: String,
    /// Devices sending blocks now (the sharer and others with the share).
    pub sources: usize,
    /// For a scheduled download: when the window opens (local `HH:MM`).
    pub waits_until: Option<String>,
}

struct Running {
    task: tokio::task::JoinHandle<()>,
    progress: watch::Receiver<GetProgress>,
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
}

pub(crate) struct Transfers {
    store: SharedStore,
    net: Network,
    live: Arc<Live>,
    running: Mutex<HashMap<i64, Running>>,
    /// Scheduled downloads the user started anyway.
    now: Mutex<HashSet<i64>>,
    /// Wakes the scheduler (the settings changed).
    wake: tokio::sync::Notify,
}

/// The longest the scheduler sleeps between looks (clock changes, DST).
const SCHEDULE_CHECK: Duration = Duration::from_secs(300);

fn not_found(id: i64) -> NodeError {
    NodeError::BadPath { path: PathBuf::new(), reason: format!("no transfer {id}") }
}

impl Transfers {
    pub(crate) fn new(store: SharedStore, net: Network, live: Arc<Live>) -> Arc<Self> {
        let t = Arc::new(Self {
            store,
            net,
            live,
            running: Mutex::new(HashMap::new()),
            now: Mutex::new(HashSet::new()),
            wake: tokio::sync::Notify::new(),
        });
        tokio::spawn(scheduler(Arc::downgrade(&t)));
        t
    }

    /// Restarts what was running, queued or scheduled when the node last stopped
    /// (scheduled ones wait again if the window is shut).
    pub(crate) fn resume_all(self: &Arc<Self>) -> Result<(), NodeError> {
        let rows = lock(&self.store).transfers()?;
        for r in rows.into_iter().filter(|r| matches!(r.state.as_str(), "running" | "queued" | "scheduled")) {
            self.start(r.id);
        }
        Ok(())
    }

    /// The settings changed: look at the window again now.
    pub(crate) fn reschedule(&self) {
        self.wake.notify_one();
    }

    /// Whether a download of `total` bytes must wait for the window now.
    fn must_wait(&self, id: i64, total: u64) -> bool {
        if self.now.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            return false;
        }
        let Ok(s) = crate::settings::load(&self.store) else { return false };
        match s.window() {
            Some(w) => total >= s.schedule_min_bytes && !w.contains(crate::schedule::local_second() / 60),
            None => false,
        }
    }

    /// One look at the window: start what it lets run, stop what it holds.
    /// Returns how long until the window next opens or closes.
    fn apply_schedule(self: &Arc<Self>) -> Duration {
        let Ok(s) = crate::settings::load(&self.store) else { return SCHEDULE_CHECK };
        let Ok(rows) = lock(&self.store).transfers() else { return SCHEDULE_CHECK };
        for r in rows {
            match r.state.as_str() {
                "scheduled" if !self.must_wait(r.id, r.total_bytes) => self.start(r.id),
                "running" | "queued" => {
                    let total = self
                        .running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&r.id)
                        .map(|x| x.progress.borrow().total_bytes)
                        .unwrap_or(r.total_bytes);
                    if total > 0 && self.must_wait(r.id, total) {
                        self.stop(r.id);
                        let _ = lock(&self.store).set_transfer_state(r.id, "scheduled", None);
                        self.live.bump();
                    }
                }
                _ => {}
            }
        }
        match s.window() {
            // A second past the edge, so the look after the sleep sees it changed.
            Some(w) => (w.until_change(crate::schedule::local_second()) + Duration::from_secs(1)).min(SCHEDULE_CHECK),
            None => SCHEDULE_CHECK,
        }
    }

    /// Queues a download of `link` into `dest` and starts it.
    pub(crate) fn add(
        self: &Arc<Self>,
        link: &str,
        dest: &std::path::Path,
        proof: Option<[u8; 32]>,
    ) -> Result<i64, NodeError> {
        let parsed = Link::decode(link)?;
        get::check_link(&parsed, self.net.peer_id())?;
        if !dest.is_absolute() {
            return Err(NodeError::BadPath { path: dest.into(), reason: "give an absolute destination".into() });
        }
        std::fs::create_dir_all(dest).map_err(|e| NodeError::io(dest, e))?;
        let id = lock(&self.store).add_transfer(&parsed.encode(), dest, "", proof)?;
        self.start(id);
        Ok(id)
    }

    fn start(self: &Arc<Self>, id: i64) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&id) {
            return;
        }
        let (tx, rx) = watch::channel(GetProgress::default());
        let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let me = self.clone();
        let task_samples = samples.clone();
        let task = tokio::spawn(async move { me.run(id, tx, task_samples).await });
        running.insert(id, Running { task, progress: rx, samples });
    }

    /// Offers what a finished download received to others holding the same link,
    /// unless the user turned that off.
    async fn serve_received(&self, link: &str, received: &[(peerbox_proto::Entry, std::path::PathBuf)]) {
        let Ok(link) = Link::decode(link) else { return };
        let serve = crate::settings::load(&self.store).map(|s| s.serve_downloads).unwrap_or(false);
        if !serve {
            return;
        }
        match crate::share::serve_received(&self.store, &link, received) {
            Ok(true) => {
                let _ = self.net.provide(peerbox_proto::link::provide_key(&link.id)).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot serve a finished download: {e}"),
        }
    }

    async fn run(self: Arc<Self>, id: i64, tx: watch::Sender<GetProgress>, samples: Arc<Mutex<Vec<(Instant, u64)>>>) {
        let Ok(Some(row)) = lock(&self.store).transfer(id) else { return };
        let _ = lock(&self.store).set_transfer_state(id, "running", None);
        self.live.bump();
        let result = match Link::decode(&row.link) {
            Ok(link) => {
                let me = Arc::downgrade(&self);
                let hold = Hold(Arc::new(move |total| me.upgrade().is_some_and(|t| t.must_wait(id, total))));
                let opts = GetOptions {
                    dest: row.dest.clone(),
                    overwrite: false,
                    ignore_link_addrs: false,
                    proof: row.proof,
                    hold: Some(hold),
                };
                let mut rx = tx.subscribe();
                let watcher = {
                    let me = self.clone();
                    async move {
                        let mut saved = Instant::now();
                        while rx.changed().await.is_ok() {
                            let (label, nums) = {
                                let p = rx.borrow_and_update();
                                (
                                    p.label.clone(),
                                    [p.total_bytes, p.done_bytes, p.files_total as u64, p.files_done as u64],
                                )
                            };
                            {
                                let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                                let now = Instant::now();
                                s.push((now, nums[1]));
                                s.retain(|(t, _)| now.duration_since(*t) <= RATE_WINDOW);
                            }
                            if saved.elapsed() >= SAVE_EVERY {
                                saved = Instant::now();
                                let _ = lock(&me.store).set_transfer_progress(id, &label, nums);
                            }
                            me.live.bump();
                        }
                    }
                };
                let getter = get::get(&self.net, &link, &opts, &tx);
                tokio::pin!(watcher);
                tokio::select! {
                    biased;
                    r = getter => r,
                    () = &mut watcher => unreachable_watch(),
                }
            }
            Err(e) => Err(e.into()),
        };
        self.save_progress(id, &tx.borrow());
        let label = tx.borrow().label.clone();
        let label = if label.is_empty() { row.label.clone() } else { label };
        match result {
            Ok(outcome) => {
                self.serve_received(&row.link, &outcome.received).await;
                let _ = lock(&self.store).set_transfer_state(id, "done", None);
                self.live.notice("download_done", label, row.dest.display().to_string());
            }
            Err(NodeError::Scheduled) => {
                let _ = lock(&self.store).set_transfer_state(id, "scheduled", None);
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = lock(&self.store).set_transfer_state(id, "failed", Some(&msg));
                self.live.notice("download_failed", label, msg);
            }
        }
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.live.settle();
    }

    fn save_progress(&self, id: i64, p: &GetProgress) {
        if p.total_bytes > 0 || !p.label.is_empty() {
            let nums = [p.total_bytes, p.done_bytes, p.files_total as u64, p.files_done as u64];
            let _ = lock(&self.store).set_transfer_progress(id, &p.label, nums);
        }
    }

    /// Stops a running task; returns its last progress.
    fn stop(&self, id: i64) -> Option<GetProgress> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)?;
        r.task.abort();
        let p = r.progress.borrow().clone();
        self.save_progress(id, &p);
        Some(p)
    }

    /// Pauses a download; its verified blocks stay for the resume.
    pub(crate) fn pause(&self, id: i64) -> Result<(), NodeError> {
        let row = lock(&self.store).transfer(id)?.ok_or_else(|| not_found(id))?;
        if !matches!(row.state.as_str(), "running" | "queued" | "scheduled") {
            return Err(NodeError::BadPath { path: PathBuf::new(), reason: format!("transfer {id} is {}", row.state) });
        }
        self.stop(id);
        lock(&self.store).set_transfer_state(id, "paused", None)?;
        self.live.bump();
        Ok(())
    }

    /// Resumes a paused or failed download, or starts a scheduled one now.
    pub(crate) fn resume(self: &Arc<Self>, id: i64) -> Result<(), NodeError> {
        let row = lock(&self.store).transfer(id)?.ok_or_else(|| not_found(id))?;
        if !matches!(row.state.as_str(), "paused" | "failed" | "scheduled") {
            return Err(NodeError::BadPath { path: PathBuf::new(), reason: format!("transfer {id} is {}", row.state) });
        }
        if row.state == "scheduled" {
            self.now.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        }
        lock(&self.store).set_transfer_state(id, "queued", None)?;
        self.start(id);
        Ok(())
    }

    /// Cancels a download and removes its partial files; finished files stay.
    /// Cancelling an ended download just removes it from the list.
    pub(crate) fn cancel(&self, id: i64) -> Result<(), NodeError> {
        let row = lock(&self.store).transfer(id)?.ok_or_else(|| not_found(id))?;
        if matches!(row.state.as_str(), "done" | "canceled") {
            lock(&self.store).remove_transfer(id)?;
        } else {
            if let Some(p) = self.stop(id) {
                for t in &p.temps {
                    // A staged folder holds only this download's files.
                    if std::fs::symlink_metadata(t).is_ok_and(|m| m.is_dir()) {
                        let _ = std::fs::remove_dir_all(t);
                    } else {
                        let _ = std::fs::remove_file(t);
                    }
                }
            }
            lock(&self.store).set_transfer_state(id, "canceled", None)?;
        }
        self.live.bump();
        Ok(())
    }

    /// Every download, newest first, with live speed for the running ones.
    pub(crate) fn list(&self) -> Result<Vec<TransferInfo>, NodeError> {
        let rows = lock(&self.store).transfers()?;
        let opens = crate::settings::load(&self.store)?.window().map(|w| w.opens());
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        Ok(rows
            .into_iter()
            .map(|mut row| {
                let peer = Link::decode(&row.link)
                    .ok()
                    .and_then(|l| libp2p::PeerId::from_bytes(&l.peer).ok())
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let (mut rate, mut eta, mut sources) = (0.0, None, 0);
                if let Some(r) = running.get(&row.id) {
                    let p = r.progress.borrow();
                    sources = p.sources;
                    if !p.label.is_empty() {
                        row.label = p.label.clone();
                    }
                    row.total_bytes = p.total_bytes;
                    row.done_bytes = p.done_bytes;
                    row.files_total = p.files_total as u64;
                    row.files_done = p.files_done as u64;
                    let s = r.samples.lock().unwrap_or_else(|p| p.into_inner());
                    if let (Some(a), Some(b)) = (s.first(), s.last()) {
                        let secs = b.0.duration_since(a.0).as_secs_f64();
                        if secs > 0.2 {
                            rate = b.1.saturating_sub(a.1) as f64 / secs;
                        }
                    }
                    if rate > 0.0 {
                        eta = Some((row.total_bytes.saturating_sub(row.done_bytes) as f64 / rate).ceil() as u64);
                    }
                }
                let waits_until = (row.state == "scheduled").then(|| opens.clone()).flatten();
                TransferInfo { row, rate, eta, peer, sources, waits_until }
            })
            .collect())
    }
}

/// Looks at the download window whenever it opens or closes, or the settings
/// change, for as long as the node runs.
async fn scheduler(t: std::sync::Weak<Transfers>) {
    loop {
        let Some(me) = t.upgrade() else { return };
        let sleep = me.apply_schedule();
        let wake = async { me.wake.notified().await };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake => {}
        }
    }
}

/// The progress watcher ends only when the download (which owns the sender) ends,
/// and `select!` polls the download first.
fn unreachable_watch() -> Result<get::GetOutcome, NodeError> {
    Err(NodeError::Internal("the progress watcher ended before the download".into()))
}
