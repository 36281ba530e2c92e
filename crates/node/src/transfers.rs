//! The transfer queue: downloads from links that the node runs on the user's
//! behalf (the drive's "Open link → download"), with pause, resume and cancel.
//!
//! A download's row in the index says what and where; its temp files on disk say
//! how far it got, so pausing is just stopping the task (the next run resumes from
//! the verified blocks), and a restart picks up every download that was running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbox_net::Network;
use peerbox_proto::Link;
use peerbox_store::TransferRow;
use serde::Serialize;
use tokio::sync::watch;

use crate::NodeError;
use crate::get::{self, GetOptions, GetProgress};
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
}

fn not_found(id: i64) -> NodeError {
    NodeError::BadPath { path: PathBuf::new(), reason: format!("no transfer {id}") }
}

impl Transfers {
    pub(crate) fn new(store: SharedStore, net: Network, live: Arc<Live>) -> Arc<Self> {
        Arc::new(Self { store, net, live, running: Mutex::new(HashMap::new()) })
    }

    /// Restarts what was running or queued when the node last stopped.
    pub(crate) fn resume_all(self: &Arc<Self>) -> Result<(), NodeError> {
        let rows = lock(&self.store).transfers()?;
        for r in rows.into_iter().filter(|r| r.state == "running" || r.state == "queued") {
            self.start(r.id);
        }
        Ok(())
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
                let opts =
                    GetOptions { dest: row.dest.clone(), overwrite: false, ignore_link_addrs: false, proof: row.proof };
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
            Err(e) => {
                let msg = e.to_string();
                let _ = lock(&self.store).set_transfer_state(id, "failed", Some(&msg));
                self.live.notice("download_failed", label, msg);
            }
        }
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.live.bump();
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
        if !matches!(row.state.as_str(), "running" | "queued") {
            return Err(NodeError::BadPath { path: PathBuf::new(), reason: format!("transfer {id} is {}", row.state) });
        }
        self.stop(id);
        lock(&self.store).set_transfer_state(id, "paused", None)?;
        self.live.bump();
        Ok(())
    }

    /// Resumes a paused or failed download.
    pub(crate) fn resume(self: &Arc<Self>, id: i64) -> Result<(), NodeError> {
        let row = lock(&self.store).transfer(id)?.ok_or_else(|| not_found(id))?;
        if !matches!(row.state.as_str(), "paused" | "failed") {
            return Err(NodeError::BadPath { path: PathBuf::new(), reason: format!("transfer {id} is {}", row.state) });
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
                    let _ = std::fs::remove_file(t);
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
                TransferInfo { row, rate, eta, peer, sources }
            })
            .collect())
    }
}

/// The progress watcher ends only when the download (which owns the sender) ends,
/// and `select!` polls the download first.
fn unreachable_watch() -> Result<get::GetOutcome, NodeError> {
    Err(NodeError::Internal("the progress watcher ended before the download".into()))
}
