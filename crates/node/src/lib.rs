//! Peerbox's composition root. [`Node::start`] opens the home (device key, index,
//! lock), starts the network, and joins the engine to the network's protocols; the
//! methods on [`Node`] are the one API that the CLI (and later the HTTP API and
//! the desktop app) call.
//!
//! `engine` and `net` never see each other: this crate adapts one to the other
//! (the share server implements `net`'s `BlockSource` over the index and disk;
//! downloads hand `net`'s blocks to `engine`'s verified writer).

mod alloc;
pub mod api;
mod drops;
mod error;
mod fds;
mod folders;
mod get;
mod home;
pub mod links;
mod live;
pub mod qr;
pub mod schedule;
pub mod settings;
mod share;
mod transfers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
pub use peerbox_net::Dht;
use peerbox_net::{Config as NetConfig, Network};
use peerbox_proto::Link;
use peerbox_proto::blocks::PROTOCOL;
use serde::Serialize;
use tokio::sync::watch;

pub use alloc::tune_allocator;
pub use api::{PeerInfo, Request};
pub use drops::{DropOutcome, DropProgress};
pub use error::{ApiError, NodeError};
pub use fds::raise_open_file_limit;
pub use folders::{Added, FolderInfo, FolderState, MemberInfo};
pub use get::{GetOptions, GetOutcome, GetProgress, Hold};
pub use home::Home;
pub use live::{Notice, Pacer};
pub use peerbox_store::now;
pub use transfers::TransferInfo;

/// How to start a node.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// The home folder.
    pub home: PathBuf,
    /// Listen addresses; empty for all interfaces on random ports.
    pub listen: Vec<Multiaddr>,
    /// Whether to use mDNS on the LAN.
    pub mdns: bool,
    /// Whether this node serves shares (owns the home and its index). A node that
    /// only downloads can run beside one that owns the home.
    pub serve: bool,
    /// DHT bootstrap peers (`…/p2p/<PeerId>`); relays among them carry us when
    /// we are behind NAT.
    pub bootstrap: Vec<Multiaddr>,
    /// Relay for others and answer DHT queries (`daemon --relay`).
    pub relay: bool,
    /// Which DHT.
    pub dht: peerbox_net::Dht,
    /// Treat private addresses as public for reachability (labs).
    pub private_is_public: bool,
}

/// A running node.
pub struct Node {
    net: Network,
    store: Option<share::SharedStore>,
    home: Home,
    folders: Option<Arc<folders::Folders>>,
    transfers: Option<Arc<transfers::Transfers>>,
    peers: Arc<Mutex<std::collections::BTreeMap<PeerId, PeerInfo>>>,
    live: Arc<live::Live>,
    proofs: links::ProofCache,
    rates: Arc<Mutex<Rates>>,
}

/// Bytes per second through limited streams, averaged over the last second.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rates {
    /// Upload.
    pub up: f64,
    /// Download.
    pub down: f64,
}

/// Samples the limiter's byte counts every second until the node is gone.
async fn sample_rates(limiter: peerbox_net::rate::Limiter, rates: std::sync::Weak<Mutex<Rates>>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last = (std::time::Instant::now(), limiter.totals());
    loop {
        tick.tick().await;
        let Some(rates) = rates.upgrade() else { return };
        let now = (std::time::Instant::now(), limiter.totals());
        let secs = now.0.duration_since(last.0).as_secs_f64().max(0.001);
        *rates.lock().unwrap_or_else(|p| p.into_inner()) = Rates {
            up: now.1.0.saturating_sub(last.1.0) as f64 / secs,
            down: now.1.1.saturating_sub(last.1.1) as f64 / secs,
        };
        last = now;
    }
}

/// Progress of hashing for a share.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShareProgress {
    /// Bytes hashed so far.
    pub hashed_bytes: u64,
}

/// A share that was made.
#[derive(Debug, Clone, Serialize)]
pub struct ShareOutcome {
    /// The link to give out.
    pub link: String,
    /// "trip.mp4 and 2 more".
    pub label: String,
    /// Files in the share.
    pub files: usize,
    /// Bytes in the share.
    pub bytes: u64,
    /// What was left out, and why.
    pub skipped: Vec<String>,
    /// The link as a QR code.
    pub qr: Option<qr::Qr>,
}

impl Node {
    /// Starts a node.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        tune_allocator();
        let open_files = raise_open_file_limit();
        let mut home = Home::open(&config.home)?;
        let keypair = if config.serve {
            home.lock()?;
            home.keypair().clone()
        } else {
            match home.lock() {
                Ok(()) => home.keypair().clone(),
                // The owner is busy sharing: download under a one-off identity
                // rather than dialling ourselves.
                Err(NodeError::HomeBusy(_)) => libp2p::identity::Keypair::generate_ed25519(),
                Err(e) => return Err(e),
            }
        };
        let store = if config.serve {
            let path = config.home.join(home::INDEX_FILE);
            Some(Arc::new(Mutex::new(peerbox_store::Store::open(&path)?)))
        } else {
            None
        };
        // Bootstrap peers from the command line win; else those kept in Settings.
        let mut bootstrap = config.bootstrap;
        if bootstrap.is_empty()
            && let Some(store) = &store
        {
            let saved = settings::load(store)?.bootstrap;
            bootstrap = settings::valid_bootstrap(&saved).unwrap_or_default();
        }
        let (net, mut events) = Network::start(NetConfig {
            keypair,
            listen: config.listen,
            mdns: config.mdns,
            bootstrap,
            relay_server: config.relay,
            reachable: false,
            dht: config.dht,
            private_is_public: config.private_is_public,
        })
        .await?;
        if let Some(store) = &store {
            net.limiter().set_limits(settings::load(store)?.bandwidth);
        }
        let rates = Arc::new(Mutex::new(Rates::default()));
        tokio::spawn(sample_rates(net.limiter().clone(), Arc::downgrade(&rates)));
        let peers: Arc<Mutex<std::collections::BTreeMap<PeerId, PeerInfo>>> = Arc::default();
        let live = Arc::new(live::Live::default());
        let seen = peers.clone();
        let peer_live = live.clone();
        let addr_book = store.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                peer_live.bump();
                let mut p = seen.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    peerbox_net::NetEvent::Connected { peer, addr, kind } => {
                        let rtt_ms = p.get(&peer).and_then(|i| i.rtt_ms);
                        p.insert(
                            peer,
                            PeerInfo {
                                peer: peer.to_string(),
                                connected: true,
                                addr: addr.to_string(),
                                kind: kind.as_str(),
                                rtt_ms,
                            },
                        );
                    }
                    peerbox_net::NetEvent::Rtt { peer, rtt } => {
                        if let Some(i) = p.get_mut(&peer) {
                            i.rtt_ms = Some(rtt.as_millis().min(u64::MAX as u128) as u64);
                        }
                    }
                    peerbox_net::NetEvent::Disconnected { peer } => {
                        if let Some(i) = p.get_mut(&peer) {
                            i.connected = false;
                        }
                    }
                    peerbox_net::NetEvent::Identified { peer, listen } => {
                        // Members find each other again after restarts, and without
                        // the one who introduced them, at the addresses they gave.
                        if let Some(store) = &addr_book
                            && !listen.is_empty()
                        {
                            let addrs: Vec<Vec<u8>> = listen.iter().map(|a| a.to_vec()).collect();
                            if let Err(e) = share::lock(store).learn_member_addrs(&peer.to_bytes(), &addrs) {
                                tracing::warn!(%peer, "cannot store where a member listens: {e}");
                            }
                        }
                    }
                    peerbox_net::NetEvent::Discovered { .. } => {}
                }
            }
        });
        let gate = store.as_ref().map(|s| Arc::new(links::Gate::new(s.clone())));
        if let (Some(store), Some(gate)) = (&store, &gate) {
            let incoming =
                net.accept(PROTOCOL).ok_or_else(|| NodeError::Internal("block protocol registered twice".into()))?;
            let source = Arc::new(share::StoreSource {
                store: store.clone(),
                gate: gate.clone(),
                open: Mutex::new(Default::default()),
            });
            tokio::spawn(peerbox_net::blocks::serve(incoming, source));
        }
        if let Some(store) = &store {
            let ids = share::lock(store).live_share_ids()?;
            for id in ids {
                net.provide(peerbox_proto::link::provide_key(&id)).await?;
            }
        }
        let folders = match (&store, &gate) {
            (Some(store), Some(gate)) => {
                let f = folders::Folders::new(store.clone(), gate.clone(), net.clone(), live.clone(), open_files);
                let incoming = net
                    .accept(peerbox_proto::index::PROTOCOL)
                    .ok_or_else(|| NodeError::Internal("sync protocol registered twice".into()))?;
                tokio::spawn(peerbox_net::sync::serve(incoming, Arc::new(folders::FolderSource(f.clone()))));
                let incoming = net
                    .accept(peerbox_proto::drop::PROTOCOL)
                    .ok_or_else(|| NodeError::Internal("drop protocol registered twice".into()))?;
                let dropbox = drops::DropBox::new(store.clone(), gate.clone(), f.clone(), live.clone());
                tokio::spawn(peerbox_net::drop::serve(incoming, Arc::new(drops::DropDoor(dropbox))));
                f.start_all()?;
                Some(f)
            }
            _ => None,
        };
        let transfers = match &store {
            Some(store) => {
                let t = transfers::Transfers::new(store.clone(), net.clone(), live.clone());
                t.resume_all()?;
                Some(t)
            }
            None => None,
        };
        Ok(Self { net, store, home, folders, transfers, peers, live, proofs: Default::default(), rates })
    }

    /// This device's settings.
    pub fn settings(&self) -> Result<settings::Settings, NodeError> {
        match &self.store {
            Some(store) => settings::load(store),
            None => Ok(settings::Settings {
                device_name: settings::default_device_name(),
                serve_downloads: false,
                bootstrap: Vec::new(),
                bandwidth: Default::default(),
                schedule: None,
                schedule_min_bytes: 0,
            }),
        }
    }

    /// This node's PeerId on the network.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// A counter that moves whenever something a status view shows changes.
    /// Consumers throttle: it can move thousands of times a second during a sync.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.live.changes()
    }

    /// Changes paced for a view: at most one per `gap`, but something finishing
    /// (a folder going idle, a download ending) is told at once.
    pub fn paced_changes(&self, gap: std::time::Duration) -> Pacer {
        self.live.pacer(gap)
    }

    /// Things to tell the user about, as they happen.
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.live.notices()
    }

    /// The home folder.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Addresses we listen on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        Ok(self.net.listen_addrs().await?)
    }

    /// Hashes `paths`, records them as a share and returns a link to it with
    /// `limits` (expiry, password, devices). The node serves the share for as long
    /// as it runs.
    pub async fn share(
        &self,
        paths: Vec<PathBuf>,
        limits: links::Limits,
        progress: watch::Sender<ShareProgress>,
    ) -> Result<ShareOutcome, NodeError> {
        let store = self.store.clone().ok_or_else(|| NodeError::Internal("this node does not serve".into()))?;
        if limits.max_bytes.is_some() {
            return Err(NodeError::BadSetting("a size limit is for file requests, not shared files".into()));
        }
        let roots = share::check_paths(&paths)?;
        let scan_store = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let cache = share::StoreCache(scan_store);
            let report = |n: u64| progress.send_modify(|p| p.hashed_bytes += n);
            peerbox_engine::scan(&roots, &cache, &report)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
        let (id, label) = {
            let store = store.clone();
            let entries = result.entries.clone();
            tokio::task::spawn_blocking(move || share::record_share(&store, &entries))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        let addrs = self.net.listen_addrs().await?.iter().map(|a| a.to_vec()).collect();
        let made =
            links::make(&store, self.peer_id(), addrs, peerbox_store::LinkTarget::Files(id), true, false, limits)
                .await?;
        self.net.provide(peerbox_proto::link::provide_key(&id)).await?;

        let (files, bytes) = result.entries.iter().fold((0, 0), |(n, b), s| match &s.entry.kind {
            peerbox_proto::EntryKind::File(f) => (n + 1, b + f.size),
            peerbox_proto::EntryKind::Dir => (n, b),
        });
        let link = made.text;
        Ok(ShareOutcome {
            qr: qr::encode(&link),
            link,
            label,
            files,
            bytes,
            skipped: result.skipped.iter().map(|s| format!("{}: {}", s.path.display(), s.reason)).collect(),
        })
    }

    /// Downloads what `link` opens into `opts.dest`.
    pub async fn get(
        &self,
        link: &Link,
        opts: &GetOptions,
        progress: &watch::Sender<GetProgress>,
    ) -> Result<GetOutcome, NodeError> {
        get::get(&self.net, link, opts, progress).await
    }

    /// Checks a link without contacting anyone (kind, expiry, ids).
    pub fn check_link(&self, link: &Link) -> Result<(), NodeError> {
        get::check_link(link, self.peer_id()).map(|_| ())
    }
}

impl Node {
    fn folders(&self) -> Result<&Arc<folders::Folders>, NodeError> {
        self.folders.as_ref().ok_or_else(|| NodeError::Internal("this node does not keep folders".into()))
    }

    fn transfers(&self) -> Result<&Arc<transfers::Transfers>, NodeError> {
        self.transfers.as_ref().ok_or_else(|| NodeError::Internal("this node does not keep a transfer queue".into()))
    }

    /// Where downloads go unless told otherwise.
    pub fn downloads_dir(&self) -> PathBuf {
        directories::UserDirs::new()
            .and_then(|d| d.download_dir().map(|p| p.to_owned()))
            .unwrap_or_else(|| self.home.dir().join("Downloads"))
    }

    /// Dispatches one API request; the answer is JSON.
    pub async fn call(&self, req: Request) -> Result<serde_json::Value, NodeError> {
        use serde_json::json;
        let mode = |m: Option<String>| -> Result<peerbox_store::FolderMode, NodeError> {
            match m {
                None => Ok(peerbox_store::FolderMode::SendReceive),
                Some(s) => peerbox_store::FolderMode::parse(&s).ok_or_else(|| NodeError::BadPath {
                    path: PathBuf::new(),
                    reason: format!("unknown mode {s:?}; use send-receive, receive-only or on-demand"),
                }),
            }
        };
        Ok(match req {
            Request::Status => {
                let listen: Vec<String> = self.listen_addrs().await?.iter().map(|a| a.to_string()).collect();
                let folders = self.folders()?.list()?;
                let free_bytes = settings::free_bytes(folders.iter().map(|f| f.path.as_path()));
                json!({
                    "peer_id": self.peer_id().to_string(),
                    "listen": listen,
                    "folders": folders,
                    "free_bytes": free_bytes,
                    "requests": self.folders()?.requests()?,
                    "peers": self.peers(),
                    "transfers": self.transfers()?.list()?,
                    "downloads_dir": self.downloads_dir(),
                    "network": self.net.info().await?,
                    "device_name": self.settings()?.device_name,
                    "bandwidth": {
                        "limits": self.net.limiter().limits(),
                        "rates": *self.rates.lock().unwrap_or_else(|p| p.into_inner()),
                    },
                })
            }
            Request::FolderList => json!(self.folders()?.list()?),
            Request::Browse { folder, path } => self.folders()?.browse(&folder, &path)?,
            Request::Search { query } => self.folders()?.search(&query)?,
            Request::Share { paths, expires_in, password, max_uses } => {
                let (tx, _rx) = watch::channel(ShareProgress::default());
                let limits = links::Limits { expires_in, password, max_uses, max_bytes: None };
                json!(self.share(paths, limits, tx).await?)
            }
            Request::FolderAdd { path, name, mode: m } => {
                let id = self.folders()?.add(&path, name, mode(m)?)?;
                json!({ "id": hex::encode(id) })
            }
            Request::FolderLink { folder, read_only, expires_in, approve, password, max_uses } => {
                let limits = links::Limits { expires_in, password, max_uses, max_bytes: None };
                let link = self.folders()?.link(&folder, read_only, approve, limits).await?;
                json!({ "qr": qr::encode(&link), "link": link })
            }
            Request::FolderRequest { folder, expires_in, password, max_uses, max_bytes } => {
                let limits = links::Limits { expires_in, password, max_uses, max_bytes };
                let link = self.folders()?.request_link(&folder, limits).await?;
                json!({ "qr": qr::encode(&link), "link": link })
            }
            Request::InspectLink { link } => json!(links::inspect(&Link::decode(&link)?, self.peer_id())),
            Request::DropProbe { link, password } => {
                let link = Link::decode(&link)?;
                let proof = links::proof_for(&link, password.as_deref()).await?;
                let o = drops::probe(&self.net, &link, proof, &self.settings()?.device_name).await?;
                json!({ "folder": o.name, "remaining": o.remaining })
            }
            Request::DropPaths { link, password, paths } => {
                let (tx, _rx) = watch::channel(DropProgress::default());
                json!(self.drop_paths(&link, password.as_deref(), &paths, &tx).await?)
            }
            Request::Requests => json!(self.folders()?.requests()?),
            Request::Approve { folder, peer } => {
                let peer: PeerId = peer
                    .parse()
                    .map_err(|_| NodeError::BadPath { path: peer.clone().into(), reason: "not a PeerId".into() })?;
                self.folders()?.approve(&folder, &peer)?;
                json!({})
            }
            Request::FolderJoin { link, path, mode: m, password } => {
                let link = Link::decode(&link)?;
                let proof = links::proof_for(&link, password.as_deref()).await?;
                let id = self.folders()?.join(&link, proof, &path, mode(m)?).await?;
                json!({ "id": hex::encode(id) })
            }
            Request::FolderLeave { folder } => {
                let f = self.folders()?.leave(&folder)?;
                json!({ "id": hex::encode(f.id), "path": f.path })
            }
            Request::FolderResume { folder } => {
                self.folders()?.resume(&folder)?;
                json!({})
            }
            Request::TrashList { folder } => json!(self.folders()?.trash_list(&folder)?),
            Request::TrashRestore { folder, path, at } => {
                self.folders()?.trash_restore(&folder, &path, at.as_deref())?;
                json!({})
            }
            Request::Versions { folder, path } => json!(self.folders()?.versions(&folder, &path)?),
            Request::VersionRestore { folder, path, version } => {
                let indexed = self.folders()?.index_waiter(&folder)?;
                let at = self.folders()?.restore_version(&folder, &path, &version)?;
                indexed.wait().await;
                json!({ "restored": at })
            }
            Request::FolderSet { folder, keep_versions } => {
                if let Some(k) = keep_versions {
                    self.folders()?.set_keep_versions(&folder, k)?;
                }
                json!({})
            }
            Request::Fetch { folder, path } => {
                self.folders()?.fetch(&folder, &path)?;
                json!({})
            }
            // Edits answer once the index shows them, so a listing right after
            // (the drive reloads at once) includes the change.
            Request::Mkdir { folder, dir, name } => {
                let indexed = self.folders()?.index_waiter(&folder)?;
                let path = self.folders()?.mkdir(&folder, &dir, &name)?;
                indexed.wait().await;
                json!({ "path": path })
            }
            Request::Rename { folder, from, to } => {
                let indexed = self.folders()?.index_waiter(&folder)?;
                self.folders()?.rename(&folder, &from, &to)?;
                indexed.wait().await;
                json!({})
            }
            Request::Delete { folder, paths } => {
                let indexed = self.folders()?.index_waiter(&folder)?;
                let deleted = self.folders()?.delete(&folder, &paths)?;
                indexed.wait().await;
                json!({ "deleted": deleted })
            }
            Request::AddPaths { folder, dir, paths } => self.folders()?.add_paths(&folder, &dir, &paths)?,
            Request::ResolveConflict { folder, path, keep } => {
                json!({ "path": self.folders()?.resolve_conflict(&folder, &path, &keep)? })
            }
            Request::LocalPath { folder, path } => json!({ "path": self.folders()?.local_file(&folder, &path)? }),
            Request::Download { link, dest, password } => {
                let dest = dest.unwrap_or_else(|| self.downloads_dir());
                let parsed = Link::decode(&link)?;
                let proof = links::proof_for(&parsed, password.as_deref()).await?;
                json!({ "id": self.transfers()?.add(&link, &dest, proof)? })
            }
            Request::Transfers => json!(self.transfers()?.list()?),
            Request::TransferPause { id } => {
                self.transfers()?.pause(id)?;
                json!({})
            }
            Request::TransferResume { id } => {
                self.transfers()?.resume(id)?;
                json!({})
            }
            Request::TransferCancel { id } => {
                self.transfers()?.cancel(id)?;
                json!({})
            }
            Request::Peers => json!(self.peers()),
            Request::Settings => json!(self.settings()?),
            Request::SettingsSet(change) => {
                let store = self.store.clone().ok_or_else(|| NodeError::Internal("this node does not serve".into()))?;
                let s = tokio::task::spawn_blocking(move || settings::change(&store, change))
                    .await
                    .map_err(|e| NodeError::Internal(e.to_string()))??;
                self.net.limiter().set_limits(s.bandwidth);
                self.transfers()?.reschedule();
                self.live.bump();
                json!(s)
            }
            Request::Links => self.links()?,
            Request::Revoke { target } => self.revoke(&target)?,
        })
    }

    /// Receives a file from a stream of chunks into a folder (`folder` Some) or, for
    /// a quick share, into the home's drop folder; never replaces an existing file.
    pub async fn upload(
        &self,
        folder: Option<&str>,
        path: &str,
        chunks: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    ) -> Result<folders::Added, NodeError> {
        let drop_dir = self.home.dir().join(home::DROP_DIR);
        self.folders()?.upload(folder, &drop_dir, path, chunks).await
    }

    /// Sends files and folders on this machine through file-request link `link`.
    pub async fn drop_paths(
        &self,
        link: &str,
        password: Option<&str>,
        paths: &[PathBuf],
        progress: &watch::Sender<DropProgress>,
    ) -> Result<DropOutcome, NodeError> {
        let link = Link::decode(link)?;
        let proof = links::proof_for(&link, password).await?;
        if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
            return Err(NodeError::BadPath { path: p.clone(), reason: "give an absolute path".into() });
        }
        drops::send_paths(&self.net, &link, proof, &self.settings()?.device_name, paths, progress).await
    }

    /// Sends one file arriving as `chunks` through file-request link `link`, as part
    /// of drop `batch` (32 hex digits: files of one batch land together). Returns
    /// where it landed in the owner's folder.
    pub async fn drop_stream(
        &self,
        link: &str,
        password: Option<&str>,
        batch: &str,
        path: &str,
        size: u64,
        chunks: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    ) -> Result<String, NodeError> {
        let link = Link::decode(link)?;
        let batch = drops::parse_batch(batch)?;
        let proof = self.proofs.get(&link, password).await?;
        let file = drops::StreamedFile { batch, path: path.to_owned(), size, chunks };
        drops::send_stream(&self.net, &link, proof, &self.settings()?.device_name, file).await
    }

    /// Opens a local file of a folder for reading, confined to the folder.
    pub fn open_local(&self, folder: &str, path: &str) -> Result<std::fs::File, NodeError> {
        self.folders()?.open_local(folder, path)
    }

    /// Peers seen since start.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    fn links(&self) -> Result<serde_json::Value, NodeError> {
        let store = self.store.as_ref().ok_or_else(|| NodeError::Internal("no index".into()))?;
        Ok(serde_json::json!(links::list(store)?))
    }

    fn revoke(&self, target: &str) -> Result<serde_json::Value, NodeError> {
        let store = self.store.as_ref().ok_or_else(|| NodeError::Internal("no index".into()))?;
        if let Some(rec) = links::find(store, target)? {
            share::lock(store).revoke_link(rec.id)?;
            // Members who came in through a folder link leave with it; file
            // downloads and uploads through it stop at their next request.
            let members = match rec.target {
                peerbox_store::LinkTarget::Folder(_) => self.folders()?.remove_via_link(rec.id)?,
                _ => 0,
            };
            self.live.bump();
            return Ok(serde_json::json!({ "revoked": "link", "members": members }));
        }
        let peer: PeerId = target.trim().parse().map_err(|_| NodeError::BadPath {
            path: target.into(),
            reason: "neither a peerbox:// link, a link's number nor a PeerId".into(),
        })?;
        let n = self.folders()?.remove_member(&peer)?;
        Ok(serde_json::json!({ "revoked": "peer", "folders": n }))
    }
}
