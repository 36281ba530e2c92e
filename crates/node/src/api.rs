//! The one API: requests as plain serde types, dispatched by [`crate::Node::call`].
//! The CLI (through the daemon's HTTP door), the browser UI and the desktop shell
//! all speak it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A request to the node. JSON: `{"op": "folder_add", "path": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Device id, addresses, folders, peers.
    Status,
    /// Folders with state.
    FolderList,
    /// The entries inside a folder's directory.
    Browse {
        /// Id, name or path.
        folder: String,
        /// Directory inside the folder ("" for the root).
        #[serde(default)]
        path: String,
    },
    /// Entries whose name contains `query`, in every folder.
    Search {
        /// Part of a name.
        query: String,
    },
    /// Share files and folders by link; the node serves them while it runs.
    Share {
        /// Paths to share (absolute).
        paths: Vec<PathBuf>,
        /// Seconds from now until the link stops working.
        #[serde(default)]
        expires_in: Option<u64>,
        /// A password the link's holders must give too.
        #[serde(default)]
        password: Option<String>,
        /// How many devices may download through the link.
        #[serde(default)]
        max_uses: Option<u64>,
    },
    /// Add a local folder.
    FolderAdd {
        /// Where it is.
        path: PathBuf,
        /// Display name (default: the folder's name).
        #[serde(default)]
        name: Option<String>,
        /// send-receive, receive-only or on-demand.
        #[serde(default)]
        mode: Option<String>,
    },
    /// Make a link to a folder.
    FolderLink {
        /// Id, name or path.
        folder: String,
        /// Holders may only read.
        #[serde(default)]
        read_only: bool,
        /// Seconds from now until the link stops working.
        #[serde(default)]
        expires_in: Option<u64>,
        /// Joining through the link waits for the owner's approval.
        #[serde(default)]
        approve: bool,
        /// A password the link's holders must give too.
        #[serde(default)]
        password: Option<String>,
        /// How many devices may join through the link.
        #[serde(default)]
        max_uses: Option<u64>,
    },
    /// Make a file-request link: its holders may drop files into the folder but
    /// never list or read it.
    FolderRequest {
        /// Id, name or path.
        folder: String,
        /// Seconds from now until the link stops working.
        #[serde(default)]
        expires_in: Option<u64>,
        /// A password the link's holders must give too.
        #[serde(default)]
        password: Option<String>,
        /// How many devices may upload through the link.
        #[serde(default)]
        max_uses: Option<u64>,
        /// How many bytes may arrive through the link in all.
        #[serde(default)]
        max_bytes: Option<u64>,
    },
    /// Check a file-request link with its owner: the folder's name and how many
    /// bytes it still takes.
    DropProbe {
        /// The link.
        link: String,
        /// Its password, if it takes one.
        #[serde(default)]
        password: Option<String>,
    },
    /// Send files and folders on this machine through a file-request link.
    DropPaths {
        /// The link.
        link: String,
        /// Its password, if it takes one.
        #[serde(default)]
        password: Option<String>,
        /// Absolute paths on this machine.
        paths: Vec<PathBuf>,
    },
    /// What a link is, read without contacting anyone.
    InspectLink {
        /// The link.
        link: String,
    },
    /// Devices asking to join (through links made with `approve`).
    Requests,
    /// Let a device that asked join a folder.
    Approve {
        /// Id, name or path.
        folder: String,
        /// The asking device's PeerId.
        peer: String,
    },
    /// Join a folder from a link.
    FolderJoin {
        /// The link.
        link: String,
        /// Where to keep it here.
        path: PathBuf,
        /// send-receive, receive-only or on-demand.
        #[serde(default)]
        mode: Option<String>,
        /// The link's password, if it takes one.
        #[serde(default)]
        password: Option<String>,
    },
    /// Stop syncing a folder (its files stay).
    FolderLeave {
        /// Id, name or path.
        folder: String,
    },
    /// Resume a folder paused by the mass-delete guard.
    FolderResume {
        /// Id, name or path.
        folder: String,
    },
    /// List a folder's trash.
    TrashList {
        /// Id, name or path.
        folder: String,
    },
    /// Restore from the trash.
    TrashRestore {
        /// Id, name or path.
        folder: String,
        /// Path in the folder.
        path: String,
        /// Which deletion (default: newest).
        #[serde(default)]
        at: Option<String>,
    },
    /// The kept versions of a file, newest first.
    Versions {
        /// Id, name or path.
        folder: String,
        /// Path in the folder.
        path: String,
    },
    /// Put a kept version of a file back.
    VersionRestore {
        /// Id, name or path.
        folder: String,
        /// Path in the folder.
        path: String,
        /// Its number in the list (1: the newest) or its time.
        version: String,
    },
    /// Change a folder's settings; fields left out stay as they are.
    FolderSet {
        /// Id, name or path.
        folder: String,
        /// Versions to keep of each file replaced by sync (0: none, to the trash).
        #[serde(default)]
        keep_versions: Option<u32>,
    },
    /// Fetch and keep a path of an on-demand folder.
    Fetch {
        /// Id, name or path.
        folder: String,
        /// Path in the folder.
        path: String,
    },
    /// Make a directory in a folder.
    Mkdir {
        /// Id, name or path.
        folder: String,
        /// The directory it goes in ("" for the root).
        #[serde(default)]
        dir: String,
        /// Its name.
        name: String,
    },
    /// Rename or move an entry inside a folder.
    Rename {
        /// Id, name or path.
        folder: String,
        /// Path now.
        from: String,
        /// Path after.
        to: String,
    },
    /// Move entries to the folder's trash (on every member).
    Delete {
        /// Id, name or path.
        folder: String,
        /// Paths in the folder.
        paths: Vec<String>,
    },
    /// Copy files or folders from this machine into a folder.
    AddPaths {
        /// Id, name or path.
        folder: String,
        /// The directory they go in ("" for the root).
        #[serde(default)]
        dir: String,
        /// Absolute paths on this machine.
        paths: Vec<PathBuf>,
    },
    /// Settle a conflict: keep the "original" or the conflict "copy".
    ResolveConflict {
        /// Id, name or path.
        folder: String,
        /// The conflict copy's path.
        path: String,
        /// "original" or "copy".
        keep: String,
    },
    /// Where a local file of a folder is on this machine.
    LocalPath {
        /// Id, name or path.
        folder: String,
        /// Path in the folder.
        path: String,
    },
    /// Download what a file link opens, in the background (the transfer queue).
    Download {
        /// The link.
        link: String,
        /// Destination folder (default: the user's Downloads folder).
        #[serde(default)]
        dest: Option<PathBuf>,
        /// The link's password, if it takes one.
        #[serde(default)]
        password: Option<String>,
    },
    /// The transfer queue.
    Transfers,
    /// Pause a download.
    TransferPause {
        /// Its id.
        id: i64,
    },
    /// Resume a paused or failed download.
    TransferResume {
        /// Its id.
        id: i64,
    },
    /// Cancel a download (partial files removed), or clear an ended one.
    TransferCancel {
        /// Its id.
        id: i64,
    },
    /// Connected and known peers.
    Peers,
    /// This device's settings.
    Settings,
    /// Change settings; fields left out stay as they are.
    SettingsSet(crate::settings::SettingsChange),
    /// The links this device made (and those it serves for downloads it received).
    Links,
    /// Revoke a link, or remove a peer from every folder.
    Revoke {
        /// A peerbox:// link, a link's number from `links`, or a PeerId.
        target: String,
    },
}

/// A peer as shown.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    /// PeerId.
    pub peer: String,
    /// Whether a connection is up.
    pub connected: bool,
    /// Its address on the last connection.
    pub addr: String,
    /// direct, relayed or hole-punched.
    pub kind: &'static str,
    /// Round trip on the last ping, in milliseconds.
    pub rtt_ms: Option<u64>,
}
