//! The DHT at scale, in one process: `--nodes` real libp2p swarms on loopback
//! running Peerbox's own Kademlia (all reachable, as servers on the internet would
//! be), each joined through the first. `--ids` random content ids are announced by
//! random nodes and looked up from other random nodes; the report gives lookup
//! success and median and 90th-percentile lookup time. No reference: the figures are
//! absolute.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use peerbox_net::{Config, Dht, Keypair, Multiaddr, Network};

/// Options of the DHT benchmark.
#[derive(Args)]
pub(crate) struct DhtArgs {
    /// Nodes in the network.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(3..=500))]
    nodes: u32,
    /// Content ids announced and looked up.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    ids: u32,
    /// How long one lookup may take before it counts as failed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub(crate) fn main(args: DhtArgs) -> ExitCode {
    let Some(runtime) = crate::runtime() else { return ExitCode::FAILURE };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerbox-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(bootstrap: Vec<Multiaddr>) -> Result<Network> {
    let (net, mut events) = Network::start(Config {
        keypair: Keypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        mdns: false,
        bootstrap,
        relay_server: false,
        reachable: true,
        dht: Dht::Peerbox,
        private_is_public: true,
    })
    .await?;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    Ok(net)
}

/// A small deterministic generator: the run is reproducible without a seed flag.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn run(args: DhtArgs) -> Result<()> {
    let n = args.nodes as usize;
    let t0 = Instant::now();
    let first = start(Vec::new()).await.context("first node")?;
    let addr = first.listen_addrs().await?.into_iter().next().context("first node has no address")?;
    let boot: Multiaddr = format!("{addr}/p2p/{}", first.peer_id()).parse()?;
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start(vec![boot.clone()]).await.with_context(|| format!("node {i}"))?);
    }
    // Routing tables fill as nodes bootstrap; wait until every node knows a few.
    let settle = Instant::now();
    loop {
        let mut min = usize::MAX;
        for node in &nodes {
            min = min.min(node.info().await?.dht_peers);
        }
        if min >= 3.min(n - 1) || settle.elapsed() > Duration::from_secs(30) {
            eprintln!("{n} nodes up in {:.1} s; every node knows ≥ {min} others", t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rng = Lcg(0x5eed_5eed);
    let mut published = Vec::new();
    for i in 0..args.ids {
        let key: Vec<u8> = (0..32).map(|_| rng.next() as u8).chain(i.to_le_bytes()).collect();
        let owner = rng.below(n);
        nodes[owner].provide(key.clone()).await?;
        published.push((key, owner));
    }
    // Publishing is fire-and-forget; give the ADD_PROVIDER rounds a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut times = Vec::new();
    let mut found = 0usize;
    for (key, owner) in &published {
        let mut asker = rng.below(n);
        if asker == *owner {
            asker = (asker + 1) % n;
        }
        let start = Instant::now();
        let providers = nodes[asker].providers(key.clone(), args.timeout).await?;
        let took = start.elapsed();
        if providers.contains(&nodes[*owner].peer_id()) {
            found += 1;
            times.push(took);
        }
    }
    times.sort();
    let pct = |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1))).copied();
    let ms =
        |d: Option<Duration>| d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "—".into());
    println!("| DHT case | value |");
    println!("|---|---|");
    println!("| nodes | {n} |");
    println!("| content ids announced | {} |", args.ids);
    println!(
        "| lookups that found the announcer | {found} of {} ({:.0} %) |",
        args.ids,
        100.0 * found as f64 / args.ids as f64
    );
    println!("| median lookup | {} |", ms(pct(0.5)));
    println!("| 90th percentile | {} |", ms(pct(0.9)));
    Ok(())
}
