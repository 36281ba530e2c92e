//! Faults of the machine rather than of peers, with real daemons: a full disk, a
//! read-only destination, clocks years apart. Each owes a clear error, nothing
//! partial or changed, and a retry that finishes once the fault is gone. The disk
//! tests mount small filesystems, so they need root (as ./test runs them).

use std::path::Path;

use peerbox_tests::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn folder_error(st: &serde_json::Value) -> String {
    st["folders"][0]["state"]["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_changes_nothing_and_the_pull_finishes_when_space_returns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a_dir = tmp.path().join("alice/Team");
    put(&a_dir.join("small.txt"), b"fits");
    let big = pattern(8 << 20, 4);
    put(&a_dir.join("big.bin"), &big);
    let disk = Mount::tmpfs(&tmp.path().join("small-disk"), "4m");
    let b_dir = disk.0.join("Team");
    let (a, b) = join_team(tmp.path(), &a_dir, &b_dir).await;

    let st = wait_status(&b, |st| folder_error(st).contains("No space left")).await;
    assert!(folder_error(&st).contains("No space left"), "a clear error: {st}");
    assert!(!b_dir.join("big.bin").exists(), "no partial file under its name");
    assert_eq!(std::fs::read(a_dir.join("big.bin")).expect("A's copy"), big, "the sender's copy is untouched");

    // Space comes back: the retry finishes it, with no help.
    disk.remount("size=64m");
    assert!(
        wait_until(|| std::fs::read(b_dir.join("big.bin")).is_ok_and(|d| d == big)).await,
        "finished after the disk grew"
    );
    assert!(wait_until(|| b_dir.join("small.txt").exists()).await);
    let st = wait_status(&b, |st| folder_error(st).is_empty()).await;
    assert_eq!(folder_error(&st), "", "the error is gone once the pull finished");
    assert!(!tree(&b_dir).keys().any(|k| k.contains(".peerbox-tmp-")), "no temp file left");
    a.stop().await;
    b.stop().await;

    // The same for a download by link.
    let share = Sharer::start(&[&a_dir.join("big.bin")], &[]).await;
    let small = Mount::tmpfs(&tmp.path().join("tiny"), "2m");
    let dest = small.0.join("dl");
    let run = get(&share.link, &dest, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("No space left"), "{}", run.stderr);
    assert!(!dest.join("big.bin").exists());
    small.remount("size=64m");
    let again = get(&share.link, &dest, &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(file_hash(&dest.join("big.bin")), file_hash(&a_dir.join("big.bin")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_destination_is_refused_clearly_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("report.pdf");
    put(&file, &pattern(300_000, 2));
    let share = Sharer::start(&[&file], &[]).await;
    let ro = Mount::tmpfs(&tmp.path().join("ro"), "8m");
    std::fs::create_dir(ro.0.join("dest")).expect("dest");
    ro.remount("ro");
    let before = tree(&ro.0);
    let run = get(&share.link, &ro.0.join("dest"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Read-only file system"), "{}", run.stderr);
    assert_eq!(tree(&ro.0), before, "nothing changed");
    ro.remount("rw");
    let again = get(&share.link, &ro.0.join("dest"), &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(file_hash(&ro.0.join("dest/report.pdf")), file_hash(&file));

    // A folder whose disk turns read-only: sync stops with a clear error, and goes
    // on when the disk can be written again.
    let a_dir = tmp.path().join("alice/Team");
    put(&a_dir.join("one.txt"), b"1");
    let disk = Mount::tmpfs(&tmp.path().join("b-disk"), "8m");
    let b_dir = disk.0.join("Team");
    let (a, b) = join_team(tmp.path(), &a_dir, &b_dir).await;
    assert!(wait_until(|| b_dir.join("one.txt").exists()).await);
    disk.remount("ro");
    put(&a_dir.join("two.txt"), b"2");
    let st = wait_status(&b, |st| folder_error(st).contains("Read-only")).await;
    assert!(folder_error(&st).contains("Read-only"), "{st}");
    assert!(!b_dir.join("two.txt").exists());
    disk.remount("rw");
    assert!(wait_until(|| b_dir.join("two.txt").exists()).await, "synced once writable again");
    a.stop().await;
    b.stop().await;
}

/// libfaketime for a multithreaded program, with the monotonic clock left alone
/// (timers keep working; only the wall clock is years off).
fn faked(offset: &'static str) -> Vec<(&'static str, &'static str)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(Path::new(lib).exists(), "{lib} is missing: install the faketime package (./test does)");
    vec![("LD_PRELOAD", lib), ("FAKETIME", offset), ("DONT_FAKE_MONOTONIC", "1")]
}

#[tokio::test(flavor = "multi_thread")]
async fn clocks_years_apart_change_nothing_about_what_wins() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a_dir, b_dir) = (tmp.path().join("alice/Team"), tmp.path().join("bob/Team"));
    put(&a_dir.join("plan.txt"), b"v1");
    let a = Daemon::start(&tmp.path().join("home-a")).await;
    // Bob's machine thinks it is five years from now.
    let b = Daemon::start_env(&tmp.path().join("home-b"), &[], &faked("+1826d")).await;
    assert!(b.status().await["peer_id"].is_string());
    a.ok(&["folder", "add", s(&a_dir), "--name", "Team"]).await;
    let link = a.ok(&["folder", "link", "Team"]).await;
    b.ok(&["folder", "join", &link, s(&b_dir)]).await;
    assert!(wait_until(|| std::fs::read(b_dir.join("plan.txt")).is_ok_and(|d| d == b"v1")).await);

    // Bob edits, and his file is stamped five years ahead, as his clock says.
    put(&b_dir.join("plan.txt"), b"v2 from the future");
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(5 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(b_dir.join("plan.txt"))
        .expect("open")
        .set_modified(future)
        .expect("mtime");
    assert!(wait_until(|| std::fs::read(a_dir.join("plan.txt")).is_ok_and(|d| d == b"v2 from the future")).await);
    // Alice edits after seeing it: hers is newer, whatever the timestamps say.
    put(&a_dir.join("plan.txt"), b"v3, later but stamped earlier");
    assert!(
        wait_until(|| std::fs::read(b_dir.join("plan.txt")).is_ok_and(|d| d == b"v3, later but stamped earlier")).await,
        "the version vector decides, not the clock"
    );
    // Bob's v2 was replaced by sync there, so it is kept as a version, not lost.
    let versions = b.ok(&["versions", "list", "Team", "plan.txt"]).await;
    assert!(versions.lines().count() >= 1, "{versions}");
    assert_eq!(content(&a_dir), content(&b_dir));
    a.stop().await;
    b.stop().await;
}
