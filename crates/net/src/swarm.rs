//! The swarm, its behaviours, and the loop that owns it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify, kad, mdns,
    memory_connection_limits, noise, ping, relay, tcp,
};
use tokio::sync::{mpsc, oneshot};

use crate::NetError;
use crate::rate::{Limiter, Throttled};

/// Most connections in total. A desktop locker talks to tens of peers, not thousands.
pub const MAX_CONNECTIONS: u32 = 256;
/// Most connections with one peer: one per transport is normal, a few spare.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Most half-open inbound connections: the handshake flood bound.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Refuse new connections once the process uses this share of physical memory.
const MAX_MEMORY_FRACTION: f64 = 0.9;
/// How long a connection with no open streams stays up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long we wait for listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands queued to the loop before callers wait.
const COMMAND_QUEUE: usize = 64;
/// Events queued to the node before the loop drops the oldest kinds of news.
const EVENT_QUEUE: usize = 256;
/// Peerbox's own DHT, separate from the public IPFS one unless asked.
const PEERBOX_KAD: StreamProtocol = StreamProtocol::new("/peerbox/kad/1.0.0");
/// The public IPFS (Amino) DHT.
const AMINO_KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// A lookup gives up after this; a getter is waiting on it.
const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// After a relayed connection comes up, how long a dial waits for hole punching to
/// give a direct one, so the caller's streams take the direct path.
const PUNCH_GRACE: Duration = Duration::from_secs(3);
/// How long a dial that found no address waits for mDNS to see the peer on the
/// LAN (its answers take a moment after start).
const MDNS_GRACE: Duration = Duration::from_secs(5);
/// How often a dial goes again when the listener took the connection and dropped it
/// before the handshake finished: what a peer does while its half-open connections
/// are at `MAX_PENDING_INCOMING`, say under a handshake flood. Backing off from
/// `BUSY_BACKOFF`, doubling, the last try starts about 8 s after the first.
const BUSY_RETRIES: u32 = 5;
const BUSY_BACKOFF: Duration = Duration::from_millis(250);
/// How long start-up waits for bootstrap peers to answer.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);
/// What one relay (`daemon --relay`) gives others. Generous enough for a link
/// transfer that cannot be hole-punched, bounded so one relay survives many users.
const RELAY_MAX_RESERVATIONS: usize = 256;
const RELAY_MAX_RESERVATIONS_PER_PEER: usize = 4;
const RELAY_MAX_CIRCUITS: usize = 64;
const RELAY_MAX_CIRCUITS_PER_PEER: usize = 8;
const RELAY_MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(30 * 60);
const RELAY_MAX_CIRCUIT_BYTES: u64 = 1 << 30;

/// The well-known bootstrap peers of the public IPFS DHT, used only with
/// [`Dht::Amino`] and no bootstrap addresses of one's own.
pub const AMINO_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
];

/// How to start the network.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device key.
    pub keypair: Keypair,
    /// Addresses to listen on; empty means all interfaces, random ports.
    pub listen: Vec<Multiaddr>,
    /// Whether to find and announce peers on the LAN.
    pub mdns: bool,
    /// Peers to join the DHT through, each ending in `/p2p/<PeerId>`. Those that
    /// are relays also get a reservation, so peers behind NAT can be reached.
    pub bootstrap: Vec<Multiaddr>,
    /// Serve as a circuit relay (and DHT server) for others.
    pub relay_server: bool,
    /// Known to be reachable where it listens (a server, a lab): answer DHT queries
    /// from the start instead of waiting for AutoNAT. Implied by `relay_server`.
    pub reachable: bool,
    /// Which DHT to use.
    pub dht: Dht,
    /// Treat private (RFC 1918) addresses as public for reachability checks: for
    /// labs and networks that are private end to end.
    pub private_is_public: bool,
}

/// Which Kademlia network to join.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dht {
    /// Peerbox's own (`/peerbox/kad/1.0.0`): only Peerbox devices take part.
    #[default]
    Peerbox,
    /// The public IPFS DHT (`/ipfs/kad/1.0.0`), with its bootstrap peers when none
    /// are given.
    Amino,
}

/// How a peer is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A direct connection we or they dialed.
    Direct,
    /// Only through a relay.
    Relayed,
    /// Direct, after hole punching through NAT.
    HolePunched,
}

impl ConnKind {
    /// As shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
            Self::HolePunched => "hole-punched",
        }
    }
}

/// What the network knows about its own reach.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NetInfo {
    /// public, private or unknown (AutoNAT).
    pub reachability: String,
    /// Relays holding a reservation for us.
    pub relays: Vec<String>,
    /// Peers in the DHT routing table.
    pub dht_peers: usize,
    /// Whether we answer DHT queries (server) or only ask (client).
    pub dht_mode: String,
    /// Addresses others confirmed reach us.
    pub external: Vec<String>,
    /// Whether this node relays for others.
    pub relay_server: bool,
    /// Connections open now, in and out (at most 256, 4 per peer).
    pub connections: u32,
    /// Shares and folders whose provider record some DHT peer took: others can
    /// find this device by them.
    pub announced: usize,
}

/// News from the network.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// A connection to `peer` came up, or the best kind of connection changed.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its address on the best connection.
        addr: Multiaddr,
        /// How we reach it.
        kind: ConnKind,
    },
    /// A round trip to `peer` was measured.
    Rtt {
        /// The peer.
        peer: PeerId,
        /// The time.
        rtt: Duration,
    },
    /// The last connection to `peer` went down.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// `peer` said where it listens (identify): where to dial it later, after a
    /// restart too.
    Identified {
        /// The peer.
        peer: PeerId,
        /// Its listen addresses, at most 8.
        listen: Vec<Multiaddr>,
    },
    /// mDNS saw `peer` on the LAN.
    Discovered {
        /// The peer.
        peer: PeerId,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    stream: libp2p_stream::Behaviour,
}

enum Command {
    Dial {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Info {
        reply: oneshot::Sender<NetInfo>,
    },
    Provide {
        key: Vec<u8>,
    },
    Providers {
        key: Vec<u8>,
        within: Duration,
        found: mpsc::Sender<PeerId>,
    },
    /// A provider search's time is up: answer with what it found.
    ProvidersDue {
        id: kad::QueryId,
    },
    /// A relayed dial's grace for hole punching ran out.
    PunchGraceOver {
        peer: PeerId,
    },
    /// A dial's wait for mDNS ran out.
    MdnsGraceOver {
        peer: PeerId,
    },
    /// A dial hung up on by a busy listener is due to try again.
    RedialBusy {
        peer: PeerId,
    },
}

/// A handle on the running network. Cloning is cheap; the loop stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    peer_id: PeerId,
    limiter: Limiter,
    listening: Listening,
}

/// Where each connected peer said it listens (identify), while it is connected.
type Listening = Arc<std::sync::Mutex<HashMap<PeerId, Vec<Multiaddr>>>>;

/// A stream of one of Peerbox's protocols, its bytes under the bandwidth limits.
pub type PeerStream = Throttled<libp2p::Stream>;

/// Inbound streams of one protocol, each under the bandwidth limits. Must be
/// polled in a tight loop (see [`Network::accept`]).
pub struct Incoming {
    inner: libp2p_stream::IncomingStreams,
    limiter: Limiter,
}

impl futures::Stream for Incoming {
    type Item = (PeerId, PeerStream);

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let limiter = self.limiter.clone();
        self.inner.poll_next_unpin(cx).map(|next| next.map(|(peer, s)| (peer, Throttled::new(s, limiter, peer))))
    }
}

impl Network {
    /// Builds the swarm, starts listening and spawns the loop. Returns once every
    /// listener has reported at least one address, so [`Self::listen_addrs`] is
    /// immediately useful for links.
    pub async fn start(config: Config) -> Result<(Self, mpsc::Receiver<NetEvent>), NetError> {
        let peer_id = config.keypair.public().to_peer_id();
        let mdns_on = config.mdns;
        let relay_server = config.relay_server;
        let reachable = config.reachable || relay_server;
        let private_is_public = config.private_is_public;
        // Without anyone to join through, the DHT has nobody to refresh with: no
        // periodic bootstrap (it would only warn every few minutes).
        let joins_dht = !config.bootstrap.is_empty() || config.dht == Dht::Amino || relay_server;
        let kad_protocol = match config.dht {
            Dht::Peerbox => PEERBOX_KAD,
            Dht::Amino => AMINO_KAD,
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                // TLS first, ours: AES-GCM, several times faster than ChaCha20 here.
                (crate::tls::Config::new, noise::Config::new),
                // yamux, ours: 64 KiB data frames instead of 16 KiB (see mux.rs).
                crate::mux::Config::new,
            )
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_quic()
            .with_dns()
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_relay_client((crate::tls::Config::new, noise::Config::new), crate::mux::Config::new)
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_behaviour(|key, relay_client| {
                let local = key.public().to_peer_id();
                let mdns =
                    if mdns_on { Some(mdns::tokio::Behaviour::new(mdns::Config::default(), local)?) } else { None };
                let relay = relay_server.then(|| {
                    relay::Behaviour::new(
                        local,
                        relay::Config {
                            max_reservations: RELAY_MAX_RESERVATIONS,
                            max_reservations_per_peer: RELAY_MAX_RESERVATIONS_PER_PEER,
                            max_circuits: RELAY_MAX_CIRCUITS,
                            max_circuits_per_peer: RELAY_MAX_CIRCUITS_PER_PEER,
                            max_circuit_duration: RELAY_MAX_CIRCUIT_DURATION,
                            max_circuit_bytes: RELAY_MAX_CIRCUIT_BYTES,
                            ..Default::default()
                        },
                    )
                });
                let mut kad_config = kad::Config::new(kad_protocol);
                kad_config.set_query_timeout(KAD_QUERY_TIMEOUT);
                if !joins_dht {
                    kad_config.set_periodic_bootstrap_interval(None);
                }
                let mut kad = kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
                if reachable {
                    kad.set_mode(Some(kad::Mode::Server));
                }
                let autonat = autonat::Behaviour::new(
                    local,
                    autonat::Config { only_global_ips: !private_is_public, ..Default::default() },
                );
                Ok(Behaviour {
                    limits: connection_limits::Behaviour::new(
                        connection_limits::ConnectionLimits::default()
                            .with_max_established(Some(MAX_CONNECTIONS))
                            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING)),
                    ),
                    memory: memory_connection_limits::Behaviour::with_max_percentage(MAX_MEMORY_FRACTION),
                    identify: identify::Behaviour::new(
                        identify::Config::new("/peerbox/id/1".into(), key.public())
                            .with_agent_version(format!("peerbox/{}", env!("CARGO_PKG_VERSION"))),
                    ),
                    ping: ping::Behaviour::default(),
                    mdns: Toggle::from(mdns),
                    relay_client,
                    relay: Toggle::from(relay),
                    dcutr: dcutr::Behaviour::new(local),
                    autonat,
                    kad,
                    stream: libp2p_stream::Behaviour::new(),
                })
            })
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build();

        let explicit = !config.listen.is_empty();
        let listen = if explicit { config.listen } else { default_listen() };
        let mut waiting = HashMap::new();
        for addr in listen {
            match swarm.listen_on(addr.clone()) {
                Ok(id) => {
                    waiting.insert(id, addr);
                }
                Err(e) if explicit => return Err(NetError::Listen { addr, reason: e.to_string() }),
                Err(e) => tracing::debug!(%addr, "not listening: {e}"),
            }
        }
        wait_for_listeners(&mut swarm, waiting, explicit).await?;
        if reachable {
            // Reachable where it listens: say so, so the relay behaviour offers
            // its service (it waits for an external address) and provider records
            // carry these addresses.
            let listening: Vec<Multiaddr> = swarm.listeners().cloned().collect();
            let public: Vec<&Multiaddr> = listening.iter().filter(|a| !is_loopback(a)).collect();
            let chosen = if public.is_empty() { listening.iter().collect() } else { public };
            for a in chosen {
                swarm.add_external_address(a.clone());
            }
        }

        let mut bootstrap = config.bootstrap;
        if bootstrap.is_empty() && config.dht == Dht::Amino {
            bootstrap = AMINO_BOOTSTRAP.iter().filter_map(|a| a.parse().ok()).collect();
        }
        let mut bootstrap_peers = BTreeMap::new();
        for addr in bootstrap {
            let Some(peer) = peer_of(&addr) else {
                return Err(NetError::Listen { addr, reason: "a bootstrap address must end in /p2p/<PeerId>".into() });
            };
            if peer == peer_id {
                continue;
            }
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm.behaviour_mut().autonat.add_server(peer, Some(addr.clone()));
            bootstrap_peers.insert(peer, addr);
        }

        let control = swarm.behaviour().stream.new_control();
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let limiter = Limiter::default();
        let listening = Listening::default();
        let event_loop = EventLoop {
            limiter: limiter.clone(),
            listening: listening.clone(),
            swarm,
            commands: command_rx,
            own: commands.downgrade(),
            events: event_tx,
            dials: HashMap::new(),
            lookups: HashMap::new(),
            looked_up: HashSet::new(),
            provider_queries: HashMap::new(),
            provided: HashSet::new(),
            announced: HashSet::new(),
            conns: HashMap::new(),
            punched: HashSet::new(),
            shown: HashMap::new(),
            bootstrap: bootstrap_peers.clone(),
            reserving: HashSet::new(),
            reserved: HashSet::new(),
            nat: "unknown",
            relay_server,
            mdns_on,
            unpunchable: HashSet::new(),
            mdns_waiting: HashSet::new(),
            mdns_waited: HashSet::new(),
            busy_redials: HashMap::new(),
        };
        tokio::spawn(event_loop.run());
        let network = Self { commands, control, peer_id, limiter, listening };
        // Join the DHT before callers use it: a getter whose link is stale looks
        // the sharer up right away.
        // One bootstrap peer is enough to start; the others keep dialling in the
        // background (an offline one must not hold up every `get`).
        let mut joins: futures::stream::FuturesUnordered<_> = bootstrap_peers
            .into_iter()
            .map(|(peer, addr)| {
                let n = network.clone();
                async move {
                    let r = n.dial(peer, vec![addr]).await;
                    if let Err(e) = &r {
                        tracing::warn!(%peer, "bootstrap peer unreachable: {e}");
                    }
                    r.is_ok()
                }
            })
            .collect();
        let _ = tokio::time::timeout(BOOTSTRAP_TIMEOUT, async {
            while let Some(ok) = joins.next().await {
                if ok {
                    break;
                }
            }
        })
        .await;
        if !joins.is_empty() {
            tokio::spawn(async move { while joins.next().await.is_some() {} });
        }
        Ok((network, events))
    }

    /// This device's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Where a connected peer said it listens (empty until identify has run).
    pub fn listen_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.listening.lock().unwrap_or_else(|p| p.into_inner()).get(peer).cloned().unwrap_or_default()
    }

    /// Addresses we listen on, best for sharing first (LAN before loopback).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::ListenAddrs { reply }).await.map_err(|_| NetError::Stopped)?;
        let mut addrs = rx.await.map_err(|_| NetError::Stopped)?;
        addrs.sort_by_key(address_rank);
        Ok(addrs)
    }

    /// Connects to `peer`, trying `addrs` and whatever mDNS and the DHT know; when
    /// all fail, looks the peer up in the DHT and tries what it says. Returns at
    /// once when already connected.
    pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Dial { peer, addrs, reply }).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// What the network knows about its own reach.
    pub async fn info(&self) -> Result<NetInfo, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Info { reply }).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Announces in the DHT that this device has `key` (a hashed content or folder
    /// id), now and again whenever our reachable addresses change.
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.commands.send(Command::Provide { key }).await.map_err(|_| NetError::Stopped)
    }

    /// Peers the DHT says have `key`, found within `within` (a search can wait
    /// long on peers that never answer), dialled as they are found.
    pub async fn providers(&self, key: Vec<u8>, within: Duration) -> Result<Vec<PeerId>, NetError> {
        let mut rx = self.find_providers(key, within).await?;
        let mut all = Vec::new();
        while let Some(p) = rx.recv().await {
            all.push(p);
        }
        Ok(all)
    }

    /// Like [`Self::providers`], but each provider arrives as soon as it is found
    /// (and dialled); the channel closes when the search ends.
    pub async fn find_providers(&self, key: Vec<u8>, within: Duration) -> Result<mpsc::Receiver<PeerId>, NetError> {
        let (found, rx) = mpsc::channel(64);
        self.commands.send(Command::Providers { key, within, found }).await.map_err(|_| NetError::Stopped)?;
        Ok(rx)
    }

    /// Opens a stream for `protocol` to a connected (or dialable) peer.
    pub async fn open_stream(&self, peer: PeerId, protocol: &'static str) -> Result<PeerStream, NetError> {
        let mut control = self.control.clone();
        let s = match control.open_stream(peer, StreamProtocol::new(protocol)).await {
            Ok(s) => s,
            // The stream may have been put on a connection that was closing (a
            // relayed one after a hole punch): once more picks a live one.
            Err(_) => control
                .open_stream(peer, StreamProtocol::new(protocol))
                .await
                .map_err(|e| NetError::Stream { peer, reason: e.to_string() })?,
        };
        Ok(Throttled::new(s, self.limiter.clone(), peer))
    }

    /// Starts accepting inbound streams for `protocol`. The returned stream must be
    /// polled in a tight loop: `libp2p-stream` drops inbound streams while its
    /// small buffer is full.
    pub fn accept(&self, protocol: &'static str) -> Option<Incoming> {
        let inner = self.control.clone().accept(StreamProtocol::new(protocol)).ok()?;
        Some(Incoming { inner, limiter: self.limiter.clone() })
    }

    /// The bandwidth limits every stream passes through.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The PeerId an address ends in (`/p2p/<id>`).
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Lower is better for a link: LAN IPv4 TCP first, loopback and IPv6 link-local
/// later, relayed addresses last (they work from anywhere, but slowly).
fn address_rank(a: &Multiaddr) -> u8 {
    let mut rank = 0;
    for p in a.iter() {
        match p {
            Protocol::P2pCircuit => rank += 20,
            Protocol::Ip4(ip) if ip.is_loopback() => rank += 8,
            Protocol::Ip6(ip) if ip.is_loopback() => rank += 9,
            Protocol::Ip6(ip) if (ip.segments()[0] & 0xffc0) == 0xfe80 => rank += 10,
            Protocol::Ip6(_) => rank += 2,
            Protocol::QuicV1 => rank += 1,
            _ => {}
        }
    }
    rank
}

async fn wait_for_listeners(
    swarm: &mut Swarm<Behaviour>,
    mut waiting: HashMap<libp2p::core::transport::ListenerId, Multiaddr>,
    explicit: bool,
) -> Result<(), NetError> {
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    while !waiting.is_empty() {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    tracing::info!(%address, "listening");
                    waiting.remove(&listener_id);
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    if let Some(addr) = waiting.remove(&listener_id)
                        && explicit {
                            let reason = reason.err().map(|e| e.to_string()).unwrap_or_else(|| "closed".into());
                            return Err(NetError::Listen { addr, reason });
                        }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = waiting.remove(&listener_id)
                        && explicit {
                            return Err(NetError::Listen { addr, reason: error.to_string() });
                        }
                }
                other => tracing::trace!(?other, "event while starting"),
            },
            _ = &mut deadline => {
                let addr = waiting.into_values().next().unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen { addr, reason: "no address reported in time".into() });
            }
        }
    }
    Ok(())
}

/// A search for the providers of a key: where to report them, and who was found.
struct ProviderQuery {
    report: mpsc::Sender<PeerId>,
    found: HashSet<PeerId>,
}

/// One connection as the loop tracks it.
struct Conn {
    addr: Multiaddr,
    relayed: bool,
}

struct EventLoop {
    limiter: Limiter,
    listening: Listening,
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// For timers that report back; weak, so the loop still stops with the last handle.
    own: mpsc::WeakSender<Command>,
    events: mpsc::Sender<NetEvent>,
    dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    /// DHT lookups of peers whose addresses all failed.
    lookups: HashMap<kad::QueryId, PeerId>,
    /// Peers looked up during the current dial (one lookup per dial).
    looked_up: HashSet<PeerId>,
    provider_queries: HashMap<kad::QueryId, ProviderQuery>,
    provided: HashSet<kad::RecordKey>,
    /// Of those, the ones a DHT peer has stored.
    announced: HashSet<kad::RecordKey>,
    conns: HashMap<PeerId, HashMap<ConnectionId, Conn>>,
    punched: HashSet<PeerId>,
    /// The kind last reported per peer, so news goes out only on change.
    shown: HashMap<PeerId, ConnKind>,
    bootstrap: BTreeMap<PeerId, Multiaddr>,
    reserving: HashSet<PeerId>,
    reserved: HashSet<PeerId>,
    nat: &'static str,
    relay_server: bool,
    mdns_on: bool,
    /// Peers whose hole punch failed while the relayed connection lasts.
    unpunchable: HashSet<PeerId>,
    /// Dials waiting for mDNS to find their peer.
    mdns_waiting: HashSet<PeerId>,
    /// Peers that had their mDNS wait during the current dial.
    mdns_waited: HashSet<PeerId>,
    /// The current dial's addresses and how often a busy listener made it go again.
    busy_redials: HashMap<PeerId, (u32, Vec<Multiaddr>)>,
}

impl EventLoop {
    async fn run(mut self) {
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    // Every handle is gone: nobody can use the network any more.
                    None => break,
                },
            }
        }
    }

    fn emit(&self, event: NetEvent) {
        // News is advisory; a slow consumer loses some rather than stalling the swarm.
        if self.events.try_send(event).is_err() {
            tracing::debug!("event queue full, dropping an event");
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs { reply } => {
                let mut addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
                for a in self.swarm.external_addresses() {
                    if !addrs.contains(a) {
                        addrs.push(a.clone());
                    }
                }
                let _ = reply.send(addrs);
            }
            Command::Info { reply } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                let dht_peers = kad.kbuckets().map(|b| b.num_entries()).sum();
                let dht_mode = kad.mode().to_string();
                let _ = reply.send(NetInfo {
                    reachability: self.nat.into(),
                    relays: self.reserved.iter().map(|p| p.to_string()).collect(),
                    dht_peers,
                    dht_mode,
                    external: self.swarm.external_addresses().map(|a| a.to_string()).collect(),
                    relay_server: self.relay_server,
                    connections: self.swarm.network_info().connection_counters().num_established(),
                    announced: self.announced.len(),
                });
            }
            Command::Provide { key } => {
                let key = kad::RecordKey::new(&key);
                self.provided.insert(key.clone());
                if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                    tracing::debug!("cannot provide: {e}");
                }
            }
            Command::Providers { key, within, found } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&key));
                self.provider_queries.insert(id, ProviderQuery { report: found, found: HashSet::new() });
                self.after(within, Command::ProvidersDue { id });
            }
            Command::ProvidersDue { id } => {
                // Dropping the query's sender closes the caller's channel.
                if self.provider_queries.remove(&id).is_some()
                    && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    q.finish();
                }
            }
            Command::PunchGraceOver { peer } => self.answer_dials(peer),
            Command::MdnsGraceOver { peer } => {
                if self.mdns_waiting.remove(&peer) {
                    self.dial_failed(peer, "not reachable at the link's addresses, nor found on the LAN".into());
                }
            }
            Command::Dial { peer, addrs, reply } => {
                if self.swarm.is_connected(&peer) {
                    let relayed_only = self.kind_of(&peer).map(|k| k.0) == Some(ConnKind::Relayed);
                    if relayed_only && !self.unpunchable.contains(&peer) {
                        // Reached through a relay (by someone else's dial, say a
                        // DHT query): try the direct path and let hole punching
                        // finish before the caller's streams start.
                        self.dials.entry(peer).or_default().push(reply);
                        if !addrs.is_empty() {
                            let opts =
                                DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::NotDialing).build();
                            let _ = self.swarm.dial(opts);
                        }
                        self.after(PUNCH_GRACE, Command::PunchGraceOver { peer });
                        return;
                    }
                    let _ = reply.send(Ok(()));
                    return;
                }
                self.looked_up.remove(&peer);
                self.mdns_waited.remove(&peer);
                self.busy_redials.insert(peer, (0, addrs.clone()));
                self.dials.entry(peer).or_default().push(reply);
                self.start_dial(peer, addrs);
            }
            Command::RedialBusy { peer } => {
                if self.dials.contains_key(&peer)
                    && !self.swarm.is_connected(&peer)
                    && let Some((_, addrs)) = self.busy_redials.get(&peer)
                {
                    let addrs = addrs.clone();
                    self.start_dial(peer, addrs);
                }
            }
        }
    }

    fn start_dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            // Already dialing: that attempt answers.
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => self.dial_failed(peer, e.to_string()),
        }
    }

    /// Every address failed: look the peer up once, or give up.
    fn dial_failed(&mut self, peer: PeerId, reason: String) {
        if self.swarm.is_connected(&peer) || !self.dials.contains_key(&peer) {
            return;
        }
        let has_dht = self.swarm.behaviour_mut().kad.kbuckets().any(|b| b.num_entries() > 0);
        if has_dht && self.looked_up.insert(peer) {
            tracing::debug!(%peer, "unreachable at its known addresses; looking it up in the DHT");
            let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
            self.lookups.insert(id, peer);
            return;
        }
        if self.mdns_on && self.mdns_waited.insert(peer) {
            self.mdns_waiting.insert(peer);
            self.after(MDNS_GRACE, Command::MdnsGraceOver { peer });
            return;
        }
        self.busy_redials.remove(&peer);
        for reply in self.dials.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(NetError::Unreachable { peer, reason: reason.clone() }));
        }
    }

    /// Sends `cmd` back to the loop after `delay`.
    fn after(&self, delay: Duration, cmd: Command) {
        let own = self.own.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(tx) = own.upgrade() {
                let _ = tx.send(cmd).await;
            }
        });
    }

    fn answer_dials(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            self.busy_redials.remove(&peer);
            for reply in self.dials.remove(&peer).unwrap_or_default() {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn relayed_ids(&self, peer: &PeerId) -> Vec<ConnectionId> {
        self.conns
            .get(peer)
            .map(|c| c.iter().filter(|(_, c)| c.relayed).map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }

    fn kind_of(&self, peer: &PeerId) -> Option<(ConnKind, Multiaddr)> {
        let conns = self.conns.get(peer)?;
        if let Some(c) = conns.values().find(|c| !c.relayed) {
            let kind = if self.punched.contains(peer) { ConnKind::HolePunched } else { ConnKind::Direct };
            return Some((kind, c.addr.clone()));
        }
        conns.values().next().map(|c| (ConnKind::Relayed, c.addr.clone()))
    }

    fn report_kind(&mut self, peer: PeerId) {
        match self.kind_of(&peer) {
            Some((kind, addr)) => {
                if self.shown.get(&peer) != Some(&kind) {
                    self.shown.insert(peer, kind);
                    self.emit(NetEvent::Connected { peer, addr, kind });
                }
            }
            None => {
                if self.shown.remove(&peer).is_some() {
                    self.emit(NetEvent::Disconnected { peer });
                }
                self.listening.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
            }
        }
    }

    /// Reserve a slot on a bootstrap peer that relays, so peers that cannot dial
    /// us directly can come through it (and then try a hole punch).
    fn maybe_reserve(&mut self, relay: PeerId, protocols: &[StreamProtocol]) {
        if self.relay_server || self.reserving.contains(&relay) {
            return;
        }
        let Some(addr) = self.bootstrap.get(&relay).cloned() else { return };
        if !protocols.iter().any(|p| p.as_ref() == relay::HOP_PROTOCOL_NAME.as_ref()) {
            tracing::debug!(%relay, ?protocols, "bootstrap peer does not relay");
            return;
        }
        match self.swarm.listen_on(addr.with(Protocol::P2pCircuit)) {
            Ok(_) => {
                self.reserving.insert(relay);
            }
            Err(e) => tracing::warn!(%relay, "cannot listen through the relay: {e}"),
        }
    }

    fn republish(&mut self) {
        let keys: Vec<_> = self.provided.iter().cloned().collect();
        for key in keys {
            let _ = self.swarm.behaviour_mut().kad.start_providing(key);
        }
    }

    fn on_kad(&mut self, ev: kad::Event) {
        let kad::Event::OutboundQueryProgressed { id, result, step, .. } = ev else { return };
        match result {
            kad::QueryResult::GetClosestPeers(r) => {
                let Some(&peer) = self.lookups.get(&id) else { return };
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let addrs: Vec<Multiaddr> =
                    peers.into_iter().filter(|p| p.peer_id == peer).flat_map(|p| p.addrs).take(16).collect();
                if !addrs.is_empty() {
                    self.lookups.remove(&id);
                    tracing::debug!(%peer, ?addrs, "found in the DHT");
                    for a in &addrs {
                        self.swarm.add_peer_address(peer, a.clone());
                    }
                    self.start_dial(peer, addrs);
                } else if step.last {
                    self.lookups.remove(&id);
                    self.dial_failed(peer, "not reachable, and not found in the DHT".into());
                }
            }
            kad::QueryResult::GetProviders(r) => {
                let me = *self.swarm.local_peer_id();
                let mut dial = Vec::new();
                let Some(ProviderQuery { report, found }) = self.provider_queries.get_mut(&id) else { return };
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                    for p in providers.into_iter().filter(|p| *p != me) {
                        if found.insert(p) {
                            // Caller gone or slow: it still gets the others it reads.
                            let _ = report.try_send(p);
                            dial.push(p);
                        }
                    }
                }
                for p in dial {
                    // Dial now: the addresses the providers came with live only as
                    // long as this query.
                    if !self.swarm.is_connected(&p) {
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(p).condition(PeerCondition::DisconnectedAndNotDialing).build());
                    }
                }
                if step.last {
                    self.provider_queries.remove(&id);
                }
            }
            kad::QueryResult::StartProviding(Ok(kad::AddProviderOk { key })) if self.provided.contains(&key) => {
                self.announced.insert(key);
            }
            _ => {}
        }
    }

    /// Tells the limiter whether `peer` is reached over the LAN only.
    fn update_lan(&self, peer: PeerId) {
        match self.conns.get(&peer) {
            None => self.limiter.forget(&peer),
            Some(c) => self.limiter.set_lan(peer, c.values().all(|c| !c.relayed && crate::rate::is_lan(&c.addr))),
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                let addr = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let relayed = is_relayed(&addr);
                tracing::debug!(%peer_id, %addr, relayed, "connected");
                self.conns.entry(peer_id).or_default().insert(connection_id, Conn { addr, relayed });
                self.update_lan(peer_id);
                if relayed {
                    if self.kind_of(&peer_id).map(|k| k.0) == Some(ConnKind::Relayed)
                        && self.dials.contains_key(&peer_id)
                    {
                        // Give hole punching a moment before the dialer's streams go
                        // through the relay.
                        self.after(PUNCH_GRACE, Command::PunchGraceOver { peer: peer_id });
                    }
                } else {
                    // A direct path makes relayed ones redundant, and libp2p-stream
                    // picks a connection at random: close them, and answer dials
                    // once they are gone so no first stream lands on a closing one.
                    let relayed_ids = self.relayed_ids(&peer_id);
                    if relayed_ids.is_empty() {
                        self.answer_dials(peer_id);
                    }
                    for id in relayed_ids {
                        self.swarm.close_connection(id);
                    }
                }
                self.report_kind(peer_id);
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, .. } => {
                if let Some(c) = self.conns.get_mut(&peer_id) {
                    c.remove(&connection_id);
                    if c.is_empty() {
                        self.conns.remove(&peer_id);
                        self.punched.remove(&peer_id);
                        self.unpunchable.remove(&peer_id);
                    }
                }
                self.update_lan(peer_id);
                let direct = self.conns.get(&peer_id).is_some_and(|c| c.values().any(|c| !c.relayed));
                if direct && self.relayed_ids(&peer_id).is_empty() {
                    self.answer_dials(peer_id);
                }
                self.report_kind(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if hung_up_on(&error)
                    && self.dials.contains_key(&peer)
                    && let Some((tries, _)) = self.busy_redials.get_mut(&peer)
                    && *tries < BUSY_RETRIES
                {
                    let delay = BUSY_BACKOFF * 2u32.pow(*tries);
                    *tries += 1;
                    tracing::debug!(%peer, ?delay, "the peer hung up during the handshake; dialling again");
                    self.after(delay, Command::RedialBusy { peer });
                    return;
                }
                self.dial_failed(peer, error.to_string());
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
                // Provider records carry the addresses we had when we published.
                self.republish();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "found on the LAN");
                    self.swarm.add_peer_address(peer, addr.clone());
                    if self.mdns_waiting.remove(&peer) {
                        self.start_dial(peer, vec![addr]);
                    }
                    self.emit(NetEvent::Discovered { peer });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                tracing::trace!(%peer_id, agent = %info.agent_version, "identified");
                let kad_protocol = self.swarm.behaviour().kad.protocol_names().first().cloned();
                let speaks_kad = kad_protocol.is_some_and(|k| info.protocols.contains(&k));
                // Remember where the peer listens, so we can dial it back later
                // (an inbound connection's address is not one we can dial).
                for addr in info.listen_addrs.iter().take(16) {
                    self.swarm.add_peer_address(peer_id, addr.clone());
                    if speaks_kad {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                    }
                }
                let listen: Vec<Multiaddr> = info.listen_addrs.iter().take(8).cloned().collect();
                if self.conns.contains_key(&peer_id) {
                    self.listening.lock().unwrap_or_else(|p| p.into_inner()).insert(peer_id, listen.clone());
                }
                self.emit(NetEvent::Identified { peer: peer_id, listen });
                if self.bootstrap.contains_key(&peer_id) {
                    self.maybe_reserve(peer_id, &info.protocols);
                    if self.provided.is_empty() {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    } else {
                        self.republish();
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                ..
            })) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                self.reserved.insert(relay_peer_id);
            }
            SwarmEvent::ListenerClosed { addresses, .. } => {
                for a in addresses.iter().filter(|a| is_relayed(a)) {
                    if let Some(relay) = relay_of(a) {
                        self.reserving.remove(&relay);
                        self.reserved.remove(&relay);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result })) => match result {
                Ok(_) => {
                    // The direct connection closed the relayed ones as it came up.
                    tracing::info!(peer = %remote_peer_id, "hole punched");
                    self.punched.insert(remote_peer_id);
                    self.report_kind(remote_peer_id);
                }
                Err(e) => {
                    tracing::info!(peer = %remote_peer_id, "hole punching failed, staying relayed: {e}");
                    self.unpunchable.insert(remote_peer_id);
                    // No need to wait out the grace: the relay it is.
                    self.answer_dials(remote_peer_id);
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. })) => {
                self.nat = match new {
                    autonat::NatStatus::Public(_) => "public",
                    autonat::NatStatus::Private => "private",
                    autonat::NatStatus::Unknown => "unknown",
                };
                tracing::info!(reachability = self.nat, "reachability changed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                self.emit(NetEvent::Rtt { peer, rtt });
            }
            SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
                tracing::debug!(%send_back_addr, "incoming connection failed: {error}");
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }
}

/// Whether a dial failed because the listener dropped a connection it had taken,
/// rather than refusing it or failing the handshake: the sign of a busy listener.
fn hung_up_on(error: &libp2p::swarm::DialError) -> bool {
    let libp2p::swarm::DialError::Transport(errors) = error else {
        return false;
    };
    errors.iter().any(|(_, e)| chain_has_hang_up(e))
}

fn chain_has_hang_up(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                return true;
            }
            // An io::Error's `source` skips the error it wraps.
            if let Some(inner) = io.get_ref()
                && chain_has_hang_up(inner)
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// The relay's PeerId in a relayed address (`…/p2p/<relay>/p2p-circuit…`).
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last = Some(peer),
            Protocol::P2pCircuit => return last,
            _ => {}
        }
    }
    None
}
