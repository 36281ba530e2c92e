//! Reaching peers beyond the LAN, on loopback with real daemons: a relay that is
//! also the DHT bootstrap, a sharer that reserves a slot on it, and getters whose
//! links are stale or relay-only. (The NAT lab under `tests/nat-lab/` does the
//! same across real NAT routers.)

use std::path::Path;

use peerbox_tests::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A relay daemon and its `/…/p2p/<id>` address for `--bootstrap`.
async fn relay(home: &Path) -> (Daemon, String) {
    let r = Daemon::start_with(home, &["--relay"]).await;
    let st = r.status().await;
    let listen = st["listen"][0].as_str().expect("relay listens").to_owned();
    let addr = format!("{listen}/p2p/{}", st["peer_id"].as_str().expect("peer id"));
    assert_eq!(st["network"]["relay_server"], true);
    assert_eq!(st["network"]["dht_mode"], "server", "a relay answers DHT queries");
    (r, addr)
}

/// A sharer bootstrapped through the relay, once the relay holds a slot for it
/// and it listens there (libp2p reports the reservation and the circuit address
/// as two events, in either order).
async fn sharer(home: &Path, bootstrap: &str) -> (Daemon, serde_json::Value) {
    let a = Daemon::start_with(home, &["--bootstrap", bootstrap]).await;
    let st = wait_status(&a, |st| {
        st["network"]["relays"].as_array().is_some_and(|r| !r.is_empty())
            && st["network"]["dht_mode"] == "server"
            && st["listen"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l.as_str().is_some_and(|l| l.contains("/p2p-circuit"))))
    })
    .await;
    assert!(
        st["network"]["relays"].as_array().is_some_and(|r| !r.is_empty()),
        "the relay holds a slot for the sharer: {}",
        st["network"]
    );
    (a, st)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_link_is_resolved_through_the_dht() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (r, bootstrap) = relay(&tmp.path().join("relay")).await;
    let (a, st) = sharer(&tmp.path().join("alice"), &bootstrap).await;
    assert!(
        st["listen"].as_array().expect("listen").iter().any(|l| l.as_str().is_some_and(|l| l.contains("/p2p-circuit"))),
        "the sharer is reachable through the relay: {}",
        st["listen"]
    );

    let data = pattern(3 << 20, 7);
    let file = tmp.path().join("clip.bin");
    std::fs::write(&file, &data).expect("write");
    let link = a.ok(&["share", s(&file)]).await;
    let link = link.lines().find(|l| l.starts_with("peerbox://")).expect("a link").to_owned();
    // Alice moved: nothing listens where the link says any more.
    let stale = relink(&link, &["/ip4/127.0.0.1/tcp/9"]);

    let lost = get(&stale, &tmp.path().join("lost"), &[]).await;
    assert_ne!(lost.code, 0, "without the DHT the stale link cannot work");
    assert!(!tmp.path().join("lost/clip.bin").exists());

    let dest = tmp.path().join("got");
    let run = get(&stale, &dest, &["--bootstrap", &bootstrap]).await;
    assert_eq!(run.code, 0, "the DHT found Alice: {}", run.stderr);
    assert_eq!(file_hash(&dest.join("clip.bin")), file_hash(&file));
    a.stop().await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_only_link_transfers_and_the_connection_kind_is_shown() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (r, bootstrap) = relay(&tmp.path().join("relay")).await;
    let (a, _) = sharer(&tmp.path().join("alice"), &bootstrap).await;
    // Bob knows Alice only by the relayed address in the link: no DHT, no LAN.
    let b = Daemon::start(&tmp.path().join("bob")).await;

    let dir = tmp.path().join("alice-files");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), b"through the relay").expect("write");
    let link = a.ok(&["share", s(&dir)]).await;
    let link = link.lines().find(|l| l.starts_with("peerbox://")).expect("a link").to_owned();
    let circuit: Vec<String> = link_addrs(&link).into_iter().filter(|a| a.contains("/p2p-circuit")).collect();
    assert!(!circuit.is_empty(), "the link carries the relayed address");
    let relay_only = relink(&link, &circuit.iter().map(String::as_str).collect::<Vec<_>>());

    let dest = tmp.path().join("bob-files");
    b.ok(&["download", &relay_only, s(&dest)]).await;
    assert!(
        wait_until(|| std::fs::read(dest.join("alice-files/notes.txt")).ok().as_deref() == Some(b"through the relay"))
            .await,
        "the download finished"
    );
    // Bob reached Alice through the relay; on loopback a hole punch then succeeds.
    let alice = a.status().await["peer_id"].as_str().expect("id").to_owned();
    let peers: serde_json::Value = serde_json::from_str(&b.ok(&["peers", "--json"]).await).expect("json");
    let seen = peers.as_array().expect("peers").iter().find(|p| p["peer"] == alice.as_str()).expect("Alice listed");
    eprintln!("Bob reached Alice: {}", seen["kind"]);
    assert!(
        ["relayed", "hole-punched"].contains(&seen["kind"].as_str().unwrap_or("")),
        "the kind says how Bob reached Alice: {seen}"
    );
    for d in [a, b, r] {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bootstrap_addresses_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    for bad in ["/ip4/127.0.0.1/tcp/4001", "not-an-address", "/ip4/127.0.0.1/tcp/1/p2p/notapeerid"] {
        let out = peerbox(&tmp.path().join("home"))
            .args(["daemon", "--no-mdns", "--bootstrap", bad])
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad} refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bootstrap") || err.contains("multiaddr"), "{bad}: {err}");
    }
    assert!(!tmp.path().join("home/index.sqlite").exists(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread")]
async fn recipients_serve_what_they_got_and_a_download_pulls_from_every_seeder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (r, bootstrap) = relay(&tmp.path().join("relay")).await;
    let (alice, _) = sharer(&tmp.path().join("alice"), &bootstrap).await;
    let data = pattern(24 << 20, 3);
    let file = tmp.path().join("video.bin");
    std::fs::write(&file, &data).expect("write");
    let link = alice.ok(&["share", s(&file)]).await;
    let link = link.lines().find(|l| l.starts_with("peerbox://")).expect("a link").to_owned();

    // Two friends download it with their daemons; each then serves it too.
    let mut friends = Vec::new();
    for name in ["carol", "dave"] {
        let (d, _) = sharer(&tmp.path().join(name), &bootstrap).await;
        let dest = tmp.path().join(format!("{name}-got"));
        d.ok(&["download", &link, s(&dest)]).await;
        let got = dest.join("video.bin");
        assert!(wait_until(|| got.metadata().is_ok_and(|m| m.len() == data.len() as u64)).await, "{name} got it");
        let st = wait_status(&d, |st| st["transfers"][0]["state"] == "done").await;
        assert_eq!(st["transfers"][0]["state"], "done", "{name}'s download finished");
        // A getter finds it only once the DHT has its provider record.
        let st = wait_status(&d, |st| st["network"]["announced"].as_u64().unwrap_or(0) >= 1).await;
        assert!(st["network"]["announced"].as_u64().unwrap_or(0) >= 1, "{name} announced what it got: {st}");
        friends.push(d);
    }
    let served: serde_json::Value =
        serde_json::from_str(&friends[0].ok(&["links", "--json"]).await).expect("links json");
    assert_eq!(served[0]["received"], true, "a friend lists the link it serves as received: {served}");
    let off: serde_json::Value =
        serde_json::from_str(&friends[1].ok(&["settings", "--json"]).await).expect("settings json");
    assert_eq!(off["serve_downloads"], true, "serving downloads is on unless turned off");
    // Seeders slower than the getter, as over the internet, so the download lasts
    // (~1 s) until every source the DHT names has joined: on bare loopback the
    // first one could send all 24 MiB before the lookup ends (seen once in 30 runs).
    for d in std::iter::once(&alice).chain(&friends) {
        d.ok(&["settings", "--upload-limit", "8MiB", "--limit-lan", "true"]).await;
    }

    let dest = tmp.path().join("bob");
    let run = get(&link, &dest, &["--bootstrap", &bootstrap]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(file_hash(&dest.join("video.bin")), file_hash(&file));
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json summary");
    let sources = summary["sources"].as_object().expect("sources");
    let mut ids = vec![alice.status().await["peer_id"].as_str().expect("id").to_owned()];
    for d in &friends {
        ids.push(d.status().await["peer_id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        assert!(sources.get(id).and_then(|b| b.as_u64()).unwrap_or(0) > 0, "{id} served some blocks: {sources:?}");
    }
    let total: u64 = sources.values().filter_map(|b| b.as_u64()).sum();
    assert_eq!(total, data.len() as u64, "every byte came from one of them");
    eprintln!("three seeders served {sources:?}");
    for d in friends {
        d.stop().await;
    }
    alice.stop().await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_peers_kept_in_settings_are_used_at_the_next_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (r, bootstrap) = relay(&tmp.path().join("relay")).await;
    let home = tmp.path().join("alice");
    let a = Daemon::start(&home).await;
    for bad in ["/ip4/127.0.0.1/tcp/4001", "nonsense"] {
        let run = a.cli(&["settings", "--bootstrap", bad]).await;
        assert_eq!(run.code, 2, "{bad} refused: {}", run.stderr);
        assert!(run.stderr.contains("bootstrap address"), "{}", run.stderr);
    }
    a.ok(&["settings", "--bootstrap", &bootstrap]).await;
    let kept: serde_json::Value = serde_json::from_str(&a.ok(&["settings", "--json"]).await).expect("json");
    assert_eq!(kept["bootstrap"], serde_json::json!([bootstrap]), "only the good address was kept");
    a.stop().await;

    // No --bootstrap this time: the kept peer is joined, and its relay holds a slot.
    let a = Daemon::start(&home).await;
    let st = wait_status(&a, |st| st["network"]["relays"].as_array().is_some_and(|r| !r.is_empty())).await;
    assert!(
        !st["network"]["relays"].as_array().expect("relays").is_empty(),
        "joined through the kept peer: {}",
        st["network"]
    );
    a.ok(&["settings", "--no-bootstrap"]).await;
    let kept: serde_json::Value = serde_json::from_str(&a.ok(&["settings", "--json"]).await).expect("json");
    assert_eq!(kept["bootstrap"], serde_json::json!([]));
    a.stop().await;
    r.stop().await;
}

/// THREATS.md, "very slow peer": a source that trickles must not hold a download
/// up. Alice, the sharer, sends at 64 KiB/s; Carol, who downloaded it before, is
/// fast. Once nothing is left to ask, Carol is asked for second copies of what
/// Alice still owes, and Alice's session is stopped when everything is in. Without
/// that, the blocks first asked of Alice would come at her pace.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_source_does_not_hold_up_a_download() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (r, bootstrap) = relay(&tmp.path().join("relay")).await;
    let (alice, _) = sharer(&tmp.path().join("alice"), &bootstrap).await;
    let data = pattern(24 << 20, 5);
    let file = tmp.path().join("slides.bin");
    std::fs::write(&file, &data).expect("write");
    let link = alice.ok(&["share", s(&file)]).await;
    let link = link.lines().find(|l| l.starts_with("peerbox://")).expect("a link").to_owned();

    let (carol, _) = sharer(&tmp.path().join("carol"), &bootstrap).await;
    carol.ok(&["download", &link, s(&tmp.path().join("carol-got"))]).await;
    let st = wait_status(&carol, |st| {
        st["transfers"][0]["state"] == "done" && st["network"]["announced"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(st["transfers"][0]["state"], "done", "Carol's download finished: {st}");
    alice.ok(&["settings", "--upload-limit", "64KiB", "--limit-lan", "true"]).await;

    let dest = tmp.path().join("bob");
    let run = get(&link, &dest, &["--bootstrap", &bootstrap]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(file_hash(&dest.join("slides.bin")), file_hash(&file));
    let summary = run.json();
    let sources = summary["sources"].as_object().expect("sources");
    let from = |d: serde_json::Value| sources.get(d["peer_id"].as_str().expect("id")).and_then(|b| b.as_u64());
    let slow = from(alice.status().await).unwrap_or(0);
    let fast = from(carol.status().await).unwrap_or(0);
    eprintln!("slow sharer sent {slow} bytes, fast friend {fast}");
    // A session is asked for at least 4 blocks (128 KiB each here) at once; without
    // the endgame the slow sharer must deliver all of those herself (it took 8.9 s).
    assert!(slow < (4 * 128) << 10, "the slow sharer delivered {slow} bytes: its blocks waited for it");
    assert_eq!(slow + fast, data.len() as u64, "every byte counted once: {sources:?}");
    assert!(!tree(&dest).keys().any(|k| k.contains(".peerbox-tmp-")), "no temp file left");
    for d in [carol, alice, r] {
        d.stop().await;
    }
}
