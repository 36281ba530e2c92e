//! The swarm, its behaviours, and the loop that owns it.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify, mdns, memory_connection_limits, noise, ping,
    tcp, tls, yamux,
};
use tokio::sync::{mpsc, oneshot};

use crate::NetError;

/// Most connections in total. A desktop locker talks to tens of peers, not thousands.
const MAX_CONNECTIONS: u32 = 256;
/// Most connections with one peer: one per transport is normal, a few spare.
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Most half-open inbound connections: the handshake flood bound.
const MAX_PENDING_INCOMING: u32 = 64;
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

/// How to start the network.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device key.
    pub keypair: Keypair,
    /// Addresses to listen on; empty means all interfaces, random ports.
    pub listen: Vec<Multiaddr>,
    /// Whether to find and announce peers on the LAN.
    pub mdns: bool,
}

/// News from the network.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// A connection to `peer` came up.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: Multiaddr,
    },
    /// The last connection to `peer` went down.
    Disconnected {
        /// The peer.
        peer: PeerId,
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
    stream: libp2p_stream::Behaviour,
}

enum Command {
    Dial { peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), NetError>> },
    ListenAddrs { reply: oneshot::Sender<Vec<Multiaddr>> },
}

/// A handle on the running network. Cloning is cheap; the loop stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    peer_id: PeerId,
}

impl Network {
    /// Builds the swarm, starts listening and spawns the loop. Returns once every
    /// listener has reported at least one address, so [`Self::listen_addrs`] is
    /// immediately useful for links.
    pub async fn start(config: Config) -> Result<(Self, mpsc::Receiver<NetEvent>), NetError> {
        let peer_id = config.keypair.public().to_peer_id();
        let mdns_on = config.mdns;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                // TLS first: AES-GCM is several times faster than ChaCha20 here.
                (tls::Config::new, noise::Config::new),
                yamux::Config::default,
            )
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_quic()
            .with_behaviour(|key| {
                let mdns = if mdns_on {
                    Some(mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id())?)
                } else {
                    None
                };
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

        let control = swarm.behaviour().stream.new_control();
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let event_loop = EventLoop { swarm, commands: command_rx, events: event_tx, dials: HashMap::new() };
        tokio::spawn(event_loop.run());
        Ok((Self { commands, control, peer_id }, events))
    }

    /// This device's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Addresses we listen on, best for sharing first (LAN before loopback).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::ListenAddrs { reply }).await.map_err(|_| NetError::Stopped)?;
        let mut addrs = rx.await.map_err(|_| NetError::Stopped)?;
        addrs.sort_by_key(address_rank);
        Ok(addrs)
    }

    /// Connects to `peer`, trying `addrs` and whatever mDNS knows. Returns at once
    /// when already connected.
    pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Dial { peer, addrs, reply }).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Opens a stream for `protocol` to a connected (or dialable) peer.
    pub async fn open_stream(&self, peer: PeerId, protocol: &'static str) -> Result<libp2p::Stream, NetError> {
        self.control
            .clone()
            .open_stream(peer, StreamProtocol::new(protocol))
            .await
            .map_err(|e| NetError::Stream { peer, reason: e.to_string() })
    }

    /// Starts accepting inbound streams for `protocol`. The returned stream must be
    /// polled in a tight loop: `libp2p-stream` drops inbound streams while its
    /// small buffer is full.
    pub fn accept(&self, protocol: &'static str) -> Option<libp2p_stream::IncomingStreams> {
        self.control.clone().accept(StreamProtocol::new(protocol)).ok()
    }
}

fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Lower is better for a link: LAN IPv4 TCP first, loopback and IPv6 link-local last.
fn address_rank(a: &Multiaddr) -> u8 {
    use libp2p::multiaddr::Protocol;
    let mut rank = 0;
    for p in a.iter() {
        match p {
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

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
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
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial { peer, addrs, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .extend_addresses_through_behaviour()
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                match self.swarm.dial(opts) {
                    Ok(()) => self.dials.entry(peer).or_default().push(reply),
                    Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                        // Already dialing: wait for that attempt.
                        self.dials.entry(peer).or_default().push(reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Unreachable { peer, reason: e.to_string() }));
                    }
                }
            }
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                for reply in self.dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
                if num_established.get() == 1 {
                    let addr = match endpoint {
                        ConnectedPoint::Dialer { address, .. } => address,
                        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                    };
                    tracing::debug!(%peer_id, %addr, "connected");
                    self.emit(NetEvent::Connected { peer: peer_id, addr });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                tracing::debug!(%peer_id, "disconnected");
                self.emit(NetEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if !self.swarm.is_connected(&peer) {
                    for reply in self.dials.remove(&peer).unwrap_or_default() {
                        let _ = reply.send(Err(NetError::Unreachable { peer, reason: error.to_string() }));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "found on the LAN");
                    self.swarm.add_peer_address(peer, addr);
                    self.emit(NetEvent::Discovered { peer });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                tracing::trace!(%peer_id, agent = %info.agent_version, "identified");
                // Remember where the peer listens, so we can dial it back later
                // (an inbound connection's address is not one we can dial).
                for addr in info.listen_addrs.into_iter().take(16) {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
                tracing::debug!(%send_back_addr, "incoming connection failed: {error}");
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }
}
