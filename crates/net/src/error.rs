//! Errors of the network layer.

use libp2p::{Multiaddr, PeerId};

/// A network failure, phrased for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Building the transport failed.
    #[error("cannot start networking: {0}")]
    Transport(String),
    /// A listen address could not be used.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The peer could not be reached on any address.
    #[error("cannot reach {peer}: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// What went wrong with the last address tried.
        reason: String,
    },
    /// A stream could not be opened.
    #[error("cannot open a stream to {peer}: {reason}")]
    Stream {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The network loop has stopped.
    #[error("the network has stopped")]
    Stopped,
}
