//! The node's errors, each with a stable code for the API and a message for people.

use std::path::{Path, PathBuf};

use peerbox_proto::blocks::Refusal;
use peerbox_proto::drop::DropRefusal;
use serde::Serialize;

/// A failure of a node operation.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The link could not be read.
    #[error("{0}")]
    BadLink(#[from] peerbox_proto::LinkError),
    /// The link is well-formed but cannot be used (expired, wrong kind, bad id).
    #[error("{0}")]
    LinkUnusable(String),
    /// A path the user named is missing or unusable.
    #[error("{}: {reason}", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Destination files exist with other content.
    #[error("{0}")]
    WouldOverwrite(String),
    /// Another process owns the home folder.
    #[error("another Peerbox process is using {} (a running share or daemon); stop it, or pass --home to act as another device", .0.display())]
    HomeBusy(PathBuf),
    /// The device key is unreadable.
    #[error("the device key {} is damaged; move it away to create a new identity (this device will get a new id)", .0.display())]
    BadKey(PathBuf),
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The engine failed.
    #[error("{0}")]
    Engine(peerbox_engine::EngineError),
    /// The index failed.
    #[error("{0}")]
    Store(#[from] peerbox_store::StoreError),
    /// The network failed.
    #[error("{0}")]
    Net(#[from] peerbox_net::NetError),
    /// A session with the peer failed.
    #[error("{0}")]
    Session(#[from] peerbox_net::blocks::SessionError),
    /// The download could not complete.
    #[error("{0}")]
    Incomplete(String),
    /// A setting's value is not acceptable.
    #[error("{0}")]
    BadSetting(String),
    /// The owner of a request link turned files away.
    #[error("{0}")]
    DropRefused(peerbox_proto::drop::DropRefusal),
    /// A source sent blocks that do not match their hashes, again and again.
    #[error("a source sent blocks that do not match their hashes; it was dropped")]
    BadSource,
    /// A download waits for the download window (Settings → schedule).
    #[error("waits for the download window")]
    Scheduled,
    /// The link takes a password and none was given.
    #[error("this link is protected by a password; give it with --password (or type it in the drive)")]
    PasswordNeeded,
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    /// Whether the user (or a link they hold) is at fault, as opposed to the
    /// machine or the network. The CLI exits with 2 for these.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::BadLink(_)
                | Self::LinkUnusable(_)
                | Self::BadPath { .. }
                | Self::WouldOverwrite(_)
                | Self::BadSetting(_)
                | Self::PasswordNeeded
        ) || matches!(self, Self::Session(peerbox_net::blocks::SessionError::Refused(_)))
            || matches!(self, Self::DropRefused(r) if !matches!(r, DropRefusal::Corrupt | DropRefusal::Disk))
    }

    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadLink(_) => "bad_link",
            Self::LinkUnusable(_) => "link_unusable",
            Self::BadPath { .. } => "bad_path",
            Self::WouldOverwrite(_) => "would_overwrite",
            Self::HomeBusy(_) => "home_busy",
            Self::BadKey(_) => "bad_key",
            Self::Io { .. } => "io",
            Self::Engine(_) => "engine",
            Self::Store(_) => "store",
            Self::Net(_) => "network",
            Self::Session(peerbox_net::blocks::SessionError::Refused(r)) => match r {
                Refusal::WrongPassword => "wrong_password",
                Refusal::TooManyAttempts => "too_many_attempts",
                Refusal::UsedUp => "used_up",
                Refusal::Expired => "expired",
                _ => "refused",
            },
            Self::PasswordNeeded => "password_needed",
            Self::Scheduled => "scheduled",
            Self::BadSource => "bad_source",
            Self::DropRefused(r) => match r {
                DropRefusal::Unknown => "refused",
                DropRefusal::Expired => "expired",
                DropRefusal::WrongPassword => "wrong_password",
                DropRefusal::TooManyAttempts => "too_many_attempts",
                DropRefusal::UsedUp => "used_up",
                DropRefusal::TooBig { .. } => "too_big",
                DropRefusal::BadName => "bad_name",
                DropRefusal::Corrupt => "corrupt",
                DropRefusal::Disk => "owner_disk",
            },
            Self::Session(_) => "session",
            Self::Incomplete(_) => "incomplete",
            Self::BadSetting(_) => "bad_setting",
            Self::Internal(_) => "internal",
        }
    }

    /// The error as the API shows it.
    pub fn to_api(&self) -> ApiError {
        ApiError { code: self.code(), message: self.to_string() }
    }
}

impl From<peerbox_engine::EngineError> for NodeError {
    fn from(e: peerbox_engine::EngineError) -> Self {
        match e {
            peerbox_engine::EngineError::WouldOverwrite(_) => Self::WouldOverwrite(e.to_string()),
            peerbox_engine::EngineError::DuplicateName(_)
            | peerbox_engine::EngineError::Refused(_)
            | peerbox_engine::EngineError::NotInTrash(_)
            | peerbox_engine::EngineError::NoSuchVersion(_) => {
                Self::BadPath { path: PathBuf::new(), reason: e.to_string() }
            }
            peerbox_engine::EngineError::Exists(path) => {
                Self::BadPath { path, reason: "something with that name is already there".into() }
            }
            peerbox_engine::EngineError::Path(path, err) => Self::BadPath { path, reason: err.to_string() },
            other => Self::Engine(other),
        }
    }
}

/// A serializable error: a stable code and a human message.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For people.
    pub message: String,
}
