//! Connection limits, tested from outside against a real daemon: one peer cannot
//! take more than its share of connections, many peers cannot take more than the
//! total, and once they leave the daemon serves again. (Handshake floods, request
//! budgets and memory are in threats.rs; sessions and queues in the net crate.)

use std::path::Path;

use peerbox_net::{
    Keypair, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_PENDING_INCOMING, Multiaddr, Network, PeerId,
};
use peerbox_tests::*;

fn connections(st: &serde_json::Value) -> u64 {
    st["network"]["connections"].as_u64().expect("status shows the open connections")
}

/// The daemon's PeerId and loopback TCP address.
async fn whereabouts(d: &Daemon) -> (PeerId, Vec<Multiaddr>) {
    let st = d.status().await;
    let peer = st["peer_id"].as_str().expect("peer id").parse().expect("a PeerId");
    let addrs = st["listen"]
        .as_array()
        .expect("listen")
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        .map(|a| a.parse().expect("multiaddr"))
        .collect();
    (peer, addrs)
}

/// Dials from every network, a wave at a time (fewer than the daemon's bound on
/// half-open connections, which would turn the rest away before their handshake);
/// waits for each dial to end either way.
async fn dial_all(nets: &[Network], peer: PeerId, addrs: &[Multiaddr]) {
    for wave in nets.chunks(MAX_PENDING_INCOMING as usize / 2) {
        let dials: Vec<_> = wave
            .iter()
            .map(|n| {
                let (n, addrs) = (n.clone(), addrs.to_vec());
                tokio::spawn(async move { tokio::time::timeout(STEP, n.dial(peer, addrs)).await })
            })
            .collect();
        for d in dials {
            let _ = d.await;
        }
    }
}

/// Polls the daemon's connection count until it reaches `at_least`, asserting on
/// every poll that it never passes `cap`; then a few more polls, for late arrivals.
async fn holds_at(d: &Daemon, at_least: u64, cap: u64) {
    let (mut reached, mut most) = (false, 0);
    let mut after = 0;
    let deadline = tokio::time::Instant::now() + STEP;
    while after < 10 && tokio::time::Instant::now() < deadline {
        let n = connections(&d.status().await);
        assert!(n <= cap, "{n} connections open, over the limit of {cap}");
        most = most.max(n);
        reached |= n >= at_least;
        if reached {
            after += 1;
        }
    }
    assert!(reached, "never reached {at_least} connections (at most {most})");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_peer_gets_at_most_its_share_of_connections() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let (peer, addrs) = whereabouts(&d).await;
    let key = Keypair::generate_ed25519();
    let per_peer = u64::from(MAX_CONNECTIONS_PER_PEER);
    let mut same = Vec::new();
    for _ in 0..2 * per_peer {
        same.push(network_as(key.clone()).await);
    }
    dial_all(&same, peer, &addrs).await;
    holds_at(&d, per_peer, per_peer).await;
    // Another peer is not crowded out by the first.
    let other = network_as(Keypair::generate_ed25519()).await;
    dial_all(std::slice::from_ref(&other), peer, &addrs).await;
    holds_at(&d, per_peer + 1, per_peer + 1).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_peers_get_at_most_the_total_and_the_daemon_serves_again_when_they_go() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("after.bin");
    put(&file, &pattern(200_000, 5));
    let d = Daemon::start(&tmp.path().join("home")).await;
    let link = d.ok(&["share", s(&file)]).await;
    let (peer, addrs) = whereabouts(&d).await;
    let total = u64::from(MAX_CONNECTIONS);
    let mut crowd = Vec::new();
    for _ in 0..total + 40 {
        crowd.push(network_as(Keypair::generate_ed25519()).await);
    }
    dial_all(&crowd, peer, &addrs).await;
    holds_at(&d, total, total).await;
    assert!(d.status().await["peer_id"].is_string(), "the API still answers");

    // The crowd leaves: the connections close and a real download works.
    drop(crowd);
    let st = wait_status(&d, |st| connections(st) < total / 2).await;
    assert!(connections(&st) < total / 2, "connections not released: {st}");
    let got = get(&link, &tmp.path().join("dl"), &[]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(file_hash(&tmp.path().join("dl/after.bin")), file_hash(&file));
    d.stop().await;
}
