//! The locker's extras through real daemons on loopback: versions of replaced
//! files (listed, restored, pruned into the trash), shared ignore patterns,
//! bandwidth limits and scheduled downloads.

use std::path::{Path, PathBuf};

use peerbox_tests::*;

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Two daemons sharing folder "Team" (A made it with `files`, B joined read-write).
async fn pair(tmp: &Path, files: &[(&str, &[u8])]) -> (Daemon, Daemon, PathBuf, PathBuf) {
    let (a_dir, b_dir) = (tmp.join("alice/Team"), tmp.join("bob/Team"));
    for (p, d) in files {
        write(&a_dir.join(p), d);
    }
    let a = Daemon::start(&tmp.join("home-a")).await;
    let b = Daemon::start(&tmp.join("home-b")).await;
    a.ok(&["folder", "add", s(&a_dir), "--name", "Team"]).await;
    let link = a.ok(&["folder", "link", "Team"]).await;
    b.ok(&["folder", "join", &link, s(&b_dir)]).await;
    assert!(wait_until(|| content(&b_dir) == content(&a_dir)).await, "initial sync");
    (a, b, a_dir, b_dir)
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
    let (a, b, a_dir, b_dir) = pair(tmp.path(), &[("docs/plan.txt", b"v1")]).await;
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
    let n = kept.len() - 2;
    b.ok(&["versions", "restore", "Team", "docs/plan.txt", &n.to_string()]).await;
    assert_eq!(read(&plan(&b_dir)), b"v3");
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
