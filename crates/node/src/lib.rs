//! Peerbox's composition root. [`Node::start`] opens the home (device key, index,
//! lock), starts the network, and joins the engine to the network's protocols; the
//! methods on [`Node`] are the one API that the CLI (and later the HTTP API and
//! the desktop app) call.
//!
//! `engine` and `net` never see each other: this crate adapts one to the other
//! (the share server implements `net`'s `BlockSource` over the index and disk;
//! downloads hand `net`'s blocks to `engine`'s verified writer).

mod error;
mod get;
mod home;
mod share;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use libp2p::{Multiaddr, PeerId};
use peerbox_net::{Config as NetConfig, Network};
use peerbox_proto::Link;
use peerbox_proto::blocks::PROTOCOL;
use serde::Serialize;
use tokio::sync::watch;

pub use error::{ApiError, NodeError};
pub use get::{GetOptions, GetOutcome, GetProgress};
pub use home::Home;

/// How to start a node.
#[derive(Debug, Clone)]
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
}

/// A running node.
pub struct Node {
    net: Network,
    store: Option<share::SharedStore>,
    home: Home,
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
}

impl Node {
    /// Starts a node.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
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
        let (net, mut events) = Network::start(NetConfig { keypair, listen: config.listen, mdns: config.mdns }).await?;
        // Events are not used yet; drain them so the loop never waits on us.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        if let Some(store) = &store {
            let incoming =
                net.accept(PROTOCOL).ok_or_else(|| NodeError::Internal("block protocol registered twice".into()))?;
            let source = Arc::new(share::StoreSource { store: store.clone(), open: Mutex::new(Default::default()) });
            tokio::spawn(peerbox_net::blocks::serve(incoming, source));
        }
        Ok(Self { net, store, home })
    }

    /// This node's PeerId on the network.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// The home folder.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Addresses we listen on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        Ok(self.net.listen_addrs().await?)
    }

    /// Hashes `paths`, records them as a share and returns a link to it. The node
    /// serves the share for as long as it runs.
    pub async fn share(
        &self,
        paths: Vec<PathBuf>,
        expires: Option<u64>,
        progress: watch::Sender<ShareProgress>,
    ) -> Result<ShareOutcome, NodeError> {
        let store = self.store.clone().ok_or_else(|| NodeError::Internal("this node does not serve".into()))?;
        let roots = share::check_paths(&paths)?;
        let scan_store = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let cache = share::StoreCache(scan_store);
            let report = |n: u64| progress.send_modify(|p| p.hashed_bytes += n);
            peerbox_engine::scan(&roots, &cache, &report)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
        let (id, label, secret) = {
            let store = store.clone();
            let entries = result.entries.clone();
            tokio::task::spawn_blocking(move || {
                let (id, label) = share::record_share(&store, &entries)?;
                let secret = share::add_link(&store, id, expires)?;
                Ok::<_, NodeError>((id, label, secret))
            })
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        let addrs = self.net.listen_addrs().await?;
        let link = Link {
            kind: peerbox_proto::LinkKind::Files,
            id,
            peer: self.peer_id().to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            secret,
            read_only: true,
            expires,
        };
        let (files, bytes) = result.entries.iter().fold((0, 0), |(n, b), s| match &s.entry.kind {
            peerbox_proto::EntryKind::File(f) => (n + 1, b + f.size),
            peerbox_proto::EntryKind::Dir => (n, b),
        });
        Ok(ShareOutcome {
            link: link.encode(),
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
