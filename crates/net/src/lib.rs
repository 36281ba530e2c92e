//! Peerbox's network: one libp2p swarm per device and Peerbox's wire protocols.
//!
//! [`Network::start`] builds the swarm (TCP with TLS or Noise and yamux, QUIC,
//! identify, ping, mDNS, connection and memory limits), starts listening, and
//! spawns the loop that owns the swarm. The returned [`Network`] is a cheap handle:
//! commands go to the loop through a bounded channel, each with its own reply.
//! Streams for Peerbox's protocols are opened and accepted through
//! `libp2p-stream`; [`blocks`] speaks `/peerbox/blocks/1` over them.
//!
//! Knows nothing of folders or files on disk: the node plugs a [`blocks::BlockSource`]
//! into the server side.

pub mod blocks;
mod buffers;
pub mod drop;
mod error;
mod mux;
pub mod rate;
mod swarm;
pub mod sync;
mod tls;

pub use buffers::Buffers;
pub use error::NetError;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use swarm::{
    AMINO_BOOTSTRAP, Config, ConnKind, Dht, Incoming, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_PENDING_INCOMING,
    NetEvent, NetInfo, Network, PeerStream,
};

/// Frame reading and writing shared by the protocols.
pub mod frame;
