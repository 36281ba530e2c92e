//! The system's file-watch limit hit (a folder with more directories than the
//! limit allows): the daemon says so, and still finds changes, by looking every
//! few seconds. A test binary of its own: the limit is the whole machine's, and
//! cargo runs test binaries one at a time. Needs root to lower the limit.

use peerbox_tests::*;

const LIMIT: &str = "/proc/sys/fs/inotify/max_user_watches";

/// Sets the watch limit for the test and puts the old one back after.
struct WatchLimit(String);

impl WatchLimit {
    fn set(n: u32) -> Self {
        assert!(is_root(), "this test needs root (it lowers the system's watch limit); ./test runs it as root");
        let old = std::fs::read_to_string(LIMIT).expect("read the watch limit");
        std::fs::write(LIMIT, n.to_string()).expect("set the watch limit");
        Self(old)
    }
}

impl Drop for WatchLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(LIMIT, self.0.trim());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_watch_limit_changes_are_still_found() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("Big");
    for i in 0..64 {
        put(&dir.join(format!("d{i}/f.txt")), b"x");
    }
    let d = Daemon::start(&tmp.path().join("home")).await;
    let limit = WatchLimit::set(16);
    d.ok(&["folder", "add", dir.to_str().expect("utf8"), "--name", "Big"]).await;
    let st = wait_status(&d, |st| st["folders"][0]["state"]["warnings"].to_string().contains("not watching")).await;
    let warnings = st["folders"][0]["state"]["warnings"].to_string();
    assert!(warnings.contains("not watching"), "the limit is reported: {st}");
    drop(limit);
    // A new file is found without a watcher.
    put(&dir.join("d3/new.txt"), b"found anyway");
    let found = wait_until_async(|| async {
        let v: serde_json::Value = serde_json::from_str(&d.ok(&["ls", "Big", "d3", "--json"]).await).expect("json");
        v["entries"].as_array().is_some_and(|e| e.iter().any(|e| e["name"] == "new.txt"))
    })
    .await;
    assert!(found, "the new file was found by a rescan");
    d.stop().await;
}
