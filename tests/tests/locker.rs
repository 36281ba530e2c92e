//! The locker's extras through real daemons on loopback: versions of replaced
//! files (listed, restored, pruned into the trash), shared ignore patterns,
//! bandwidth limits and scheduled downloads.

use std::path::Path;

use peerbox_tests::*;

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

async fn versions(d: &Daemon, path: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["versions", "list", "Team", path, "--json"]).await).expect("JSON");
    v.as_array().cloned().expect("a list")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn replaced_files_keep_their_versions_which_restore_everywhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, a_dir, b_dir) = folder_pair(tmp.path(), &[("docs/plan.txt", b"v1")]).await;
    let plan = |d: &Path| d.join("docs/plan.txt");
    for v in 2..=6 {
        let text = format!("v{v}");
        write(&plan(&a_dir), text.as_bytes());
        assert!(wait_until(|| read(&plan(&b_dir)) == text.as_bytes()).await, "B got {text}");
    }
    // B kept what each update replaced: v5 … v1, newest first, five by default.
    let kept = versions(&b, "docs/plan.txt").await;
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert_eq!(kept.iter().map(|v| v["n"].as_u64().expect("n")).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(versions(&a, "docs/plan.txt").await.is_empty(), "edits made here leave no versions here");

    // Restore version N−2 (v3): it is live on B, then on A; v6 is kept as a version.
    assert!(kept.iter().all(|v| v["size"] == 2), "only whole versions were kept: {kept:?}");
    let n = kept.len() - 2;
    b.ok(&["versions", "restore", "Team", "docs/plan.txt", &n.to_string()]).await;
    assert_eq!(String::from_utf8_lossy(&read(&plan(&b_dir))), "v3", "{kept:?}");
    assert!(wait_until(|| read(&plan(&a_dir)) == b"v3").await, "the restore reached A");
    let sizes: Vec<u64> =
        versions(&b, "docs/plan.txt").await.iter().map(|v| v["size"].as_u64().expect("size")).collect();
    assert_eq!(sizes.len(), 5, "v6 joined the versions, the oldest left for the trash");
    assert!(versions(&a, "docs/plan.txt").await.len() == 1, "A kept the v6 the restore replaced");

    // Fewer versions kept: the rest go to the trash, not away.
    b.ok(&["folder", "set", "Team", "--keep-versions", "2"]).await;
    write(&plan(&a_dir), b"v7");
    assert!(wait_until(|| read(&plan(&b_dir)) == b"v7").await);
    assert_eq!(versions(&b, "docs/plan.txt").await.len(), 2);
    let trash = b.ok(&["trash", "list", "Team"]).await;
    assert!(trash.lines().filter(|l| l.ends_with("docs/plan.txt")).count() >= 4, "{trash}");

    // Bad input: exit 2, nothing changes.
    let before = (tree(&a_dir), tree(&b_dir));
    for args in [
        vec!["versions", "restore", "Team", "docs/plan.txt", "99"],
        vec!["versions", "restore", "Team", "docs/plan.txt", "../../etc/passwd"],
        vec!["versions", "restore", "Team", "../plan.txt", "1"],
        vec!["versions", "list", "Team", "/etc/passwd"],
        vec!["folder", "set", "Team", "--keep-versions", "5000"],
    ] {
        let r = b.cli(&args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.trim().is_empty(), "{args:?} says why");
    }
    assert_eq!((tree(&a_dir), tree(&b_dir)), before);
    a.stop().await;
    b.stop().await;
}

fn ls_states(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap_or("").to_owned(), e["state"].as_str().unwrap_or("").to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ignore_rule_added_on_one_member_is_honoured_by_all() {
    let tmp = tempfile::tempdir().expect("tmp");
    let big = pattern(300_000, 9);
    let (a, b, a_dir, b_dir) = folder_pair(tmp.path(), &[("keep.txt", b"k"), ("cache/big.bin", &big)]).await;
    assert_eq!(read(&b_dir.join("cache/big.bin")), big, "synced before it was ignored");

    // A bad line costs only itself; the rules around it hold.
    write(&a_dir.join(".peerboxignore"), b"# shared\ncache/\n{unclosed\n*.tmp\n");
    assert!(wait_until(|| b_dir.join(".peerboxignore").exists()).await, "the ignore file itself syncs");

    // Ignored files are never deleted on others...
    std::fs::remove_file(a_dir.join("cache/big.bin")).expect("rm");
    // ...and never sent, either way.
    write(&b_dir.join("notes.tmp"), b"B's scratch");
    write(&a_dir.join("draft.tmp"), b"A's scratch");
    write(&b_dir.join("from-b.txt"), b"b");
    write(&a_dir.join("from-a.txt"), b"a");
    assert!(wait_until(|| a_dir.join("from-b.txt").exists() && b_dir.join("from-a.txt").exists()).await);
    // Both devices have scanned past the ignored files by now; one more round trip
    // each way makes sure nothing about them is still on its way.
    write(&a_dir.join("later-a.txt"), b"1");
    write(&b_dir.join("later-b.txt"), b"2");
    assert!(wait_until(|| a_dir.join("later-b.txt").exists() && b_dir.join("later-a.txt").exists()).await);
    assert_eq!(read(&b_dir.join("cache/big.bin")), big, "B keeps what A deleted under an ignore rule");
    assert!(!a_dir.join("notes.tmp").exists(), "B's ignored file did not reach A");
    assert!(!b_dir.join("draft.tmp").exists(), "A's ignored file did not reach B");

    // The drive shows them, greyed.
    let ls_b: serde_json::Value = serde_json::from_str(&b.ok(&["ls", "Team", "--json"]).await).expect("json");
    let states = ls_states(&ls_b);
    assert!(states.contains(&("notes.tmp".into(), "ignored".into())), "{states:?}");
    assert!(states.contains(&("cache".into(), "ignored".into())), "{states:?}");
    assert!(states.contains(&(".peerboxignore".into(), "local".into())), "{states:?}");
    let ls_a: serde_json::Value = serde_json::from_str(&a.ok(&["ls", "Team", "--json"]).await).expect("json");
    assert!(ls_states(&ls_a).contains(&("draft.tmp".into(), "ignored".into())), "{:?}", ls_states(&ls_a));
    let inside: serde_json::Value =
        serde_json::from_str(&b.ok(&["ls", "Team", "cache", "--json"]).await).expect("json");
    assert_eq!(ls_states(&inside), [("big.bin".to_owned(), "ignored".to_owned())]);
    let status = b.status().await;
    let skipped = status["folders"][0]["state"]["skipped"].to_string();
    assert!(skipped.contains(".peerboxignore line 3"), "the bad line is reported: {skipped}");

    // Lifting the rule brings the files back into sync.
    write(&b_dir.join(".peerboxignore"), b"cache/\n");
    assert!(
        wait_until(|| a_dir.join("notes.tmp").exists() && b_dir.join("draft.tmp").exists()).await,
        "no longer ignored"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_limit_holds_over_ten_seconds_and_lan_peers_are_exempt_unless_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let size = 10 << 20;
    let file = tmp.path().join("video.bin");
    write(&file, &pattern(size, 6));
    d.ok(&["settings", "--upload-limit", "1MiB"]).await;
    let link = d.ok(&["share", file.to_str().expect("utf8")]).await;

    // Loopback is the LAN, exempt by default: far faster than the limit allows.
    let start = std::time::Instant::now();
    let r = get(&link, &tmp.path().join("fast"), &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exempt = start.elapsed().as_secs_f64();
    assert!(exempt < 5.0, "10 MiB to a LAN peer took {exempt:.1} s under a 1 MiB/s internet limit");

    // Limits on the LAN too: the same download runs at the limit, within 20 %.
    d.ok(&["settings", "--limit-lan", "true"]).await;
    let start = std::time::Instant::now();
    let r = get(&link, &tmp.path().join("slow"), &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let secs = start.elapsed().as_secs_f64();
    let rate = size as f64 / secs / (1 << 20) as f64;
    eprintln!("measured {rate:.3} MiB/s over {secs:.1} s against a 1 MiB/s limit");
    assert!((0.8..=1.2).contains(&rate), "10 MiB took {secs:.1} s: {rate:.2} MiB/s against a 1 MiB/s limit");
    assert_eq!(file_hash(&tmp.path().join("slow/video.bin")), file_hash(&file));
    let st = d.status().await;
    assert_eq!(st["bandwidth"]["limits"]["upload"], 1 << 20, "{}", st["bandwidth"]);

    // Bad limits are refused and change nothing.
    for bad in ["100", "fast", "-1MiB"] {
        let r = d.cli(&["settings", "--upload-limit", bad]).await;
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
    }
    assert_eq!(d.status().await["bandwidth"]["limits"]["upload"], 1 << 20);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_revoked_mid_download_stops_it() {
    use tokio::io::AsyncBufReadExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let file = tmp.path().join("big.bin");
    write(&file, &pattern(8 << 20, 2));
    // Slow enough (about 16 s) that the revocation lands in the middle.
    d.ok(&["settings", "--upload-limit", "512KiB", "--limit-lan", "true"]).await;
    let link = d.ok(&["share", file.to_str().expect("utf8")]).await;
    let home = tempfile::tempdir().expect("home");
    let dest = tmp.path().join("dl");
    let mut getter = peerbox(home.path())
        .args(["get", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--progress"])
        .arg(&link)
        .arg(&dest)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn get");
    let mut lines = tokio::io::BufReader::new(getter.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    let started = tokio::time::timeout(STEP, async {
        while let Ok(Some(l)) = lines.next_line().await {
            log.push_str(&l);
            log.push('\n');
            if l.starts_with("progress ") && !l.starts_with("progress 0/") {
                return true;
            }
        }
        false
    })
    .await
    .expect("progress in time");
    assert!(started, "the download began: {log}");
    d.ok(&["revoke", &link]).await;
    let rest = tokio::time::timeout(STEP, async {
        while let Ok(Some(l)) = lines.next_line().await {
            log.push_str(&l);
            log.push('\n');
        }
    });
    rest.await.expect("get ended");
    let status = getter.wait().await.expect("wait");
    assert_eq!(status.code(), Some(2), "a revoked link is the holder's problem: {log}");
    assert!(log.contains("revoked"), "{log}");
    assert!(!dest.join("big.bin").exists(), "no file appears from a revoked link");
    d.stop().await;
}

/// A daily window `from`..`to` minutes away from now, local time, as settings take it.
fn window(from: i64, to: i64) -> String {
    let now = jiff::ZonedDateTime::now();
    let minute = now.hour() as i64 * 60 + now.minute() as i64;
    let at = |d: i64| {
        let m = (minute + d).rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}-{}", at(from), at(to))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_holds_a_large_download_until_its_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("movie.mkv");
    write(&file, &pattern(3 << 20, 8));
    let small = tmp.path().join("note.txt");
    write(&small, b"small things need no window");
    let sharer = Sharer::start(&[&file], &[]).await;
    let small_sharer = Sharer::start(&[&small], &[]).await;
    let d = Daemon::start(&tmp.path().join("home")).await;
    let shut = window(60, 120);
    d.ok(&["settings", "--schedule", &shut, "--schedule-min-size", "1MiB"]).await;
    let dest = tmp.path().join("dl");
    let id = d.ok(&["download", &sharer.link, dest.to_str().expect("utf8")]).await;
    let small_id = d.ok(&["download", &small_sharer.link, dest.to_str().expect("utf8")]).await;

    let transfer = |st: &serde_json::Value, id: &str| {
        st["transfers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id))
            .cloned()
            .unwrap_or_default()
    };
    let st =
        wait_status(&d, |st| transfer(st, &id)["state"] == "scheduled" && transfer(st, &small_id)["state"] == "done")
            .await;
    let t = transfer(&st, &id);
    assert_eq!(t["state"], "scheduled", "outside its window the large one waits: {t}");
    assert_eq!(t["total_bytes"], 3 << 20, "its size is known: {t}");
    assert_eq!(t["waits_until"], shut.split('-').next().expect("start"), "{t}");
    assert_eq!(transfer(&st, &small_id)["state"], "done", "a small one does not wait");
    assert!(!dest.join("movie.mkv").exists(), "nothing of it is in place");
    let listed = d.ok(&["transfers"]).await;
    assert!(listed.contains("waits for the window"), "{listed}");

    // A restart keeps it waiting.
    d.stop().await;
    let d = Daemon::start(&tmp.path().join("home")).await;
    let st = wait_status(&d, |st| transfer(st, &id)["state"] == "scheduled").await;
    assert_eq!(transfer(&st, &id)["state"], "scheduled", "{st}");

    // The window opens (here: the window moves over now): it runs and completes.
    d.ok(&["settings", "--schedule", &window(-60, 60)]).await;
    let st = wait_status(&d, |st| transfer(st, &id)["state"] == "done").await;
    assert_eq!(transfer(&st, &id)["state"], "done", "{st}");
    assert_eq!(file_hash(&dest.join("movie.mkv")), file_hash(&file));

    // Bad windows are refused and change nothing.
    for bad in ["25:00-26:00", "7-8", "01:00-01:00", "tonight"] {
        let r = d.cli(&["settings", "--schedule", bad]).await;
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
    }
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["settings", "--json"]).await).expect("json");
    assert_eq!(v["schedule"], window(-60, 60));
    d.stop().await;
    drop((sharer, small_sharer));
}
