//! What the drive does to folders and downloads, through real daemons on loopback:
//! new folder, rename, move and delete reaching members; uploads over the daemon's
//! HTTP door (never overwriting, nothing left by a broken one); the download queue
//! with pause, resume, cancel and a restart in the middle.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use peerbox_proto::manifest::{Entry, EntryKind};
use peerbox_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn new_folder_rename_move_and_delete_reach_members_and_bad_edits_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, a_dir, b_dir) = folder_pair(tmp.path(), &[("a.txt", b"alpha"), ("docs/b.txt", b"beta")]).await;

    assert_eq!(a.ok(&["mkdir", "Team", "새 폴더"]).await, "새 폴더");
    assert!(wait_until(|| b_dir.join("새 폴더").is_dir()).await, "new folder reached B");

    a.ok(&["mv", "Team", "a.txt", "새 폴더/a-renamed.txt"]).await;
    assert!(
        wait_until(|| std::fs::read(b_dir.join("새 폴더/a-renamed.txt")).ok().as_deref() == Some(b"alpha")
            && !b_dir.join("a.txt").exists())
        .await,
        "move reached B: {:?}",
        content(&b_dir)
    );

    a.ok(&["rm", "Team", "docs/b.txt"]).await;
    assert!(wait_until(|| !b_dir.join("docs/b.txt").exists()).await, "delete reached B");
    for d in [&a, &b] {
        let trash = d.ok(&["trash", "list", "Team"]).await;
        assert!(trash.contains("docs/b.txt"), "deleted file is in the trash: {trash}");
    }

    // Bad edits: each refused with exit 2, and neither side changes.
    let before = (tree(&a_dir), tree(&b_dir));
    for args in [
        vec!["mv", "Team", "새 폴더/a-renamed.txt", "docs"],
        vec!["mv", "Team", "새 폴더", "새 폴더/inside"],
        vec!["mv", "Team", "새 폴더/a-renamed.txt", "../escaped.txt"],
        vec!["mv", "Team", "no-such.txt", "x.txt"],
        vec!["rm", "Team", "no-such.txt"],
        vec!["rm", "Team", ".peerbox/trash"],
        vec!["rm", "Team", "/etc/passwd"],
        vec!["mkdir", "Team", "docs"],
        vec!["mkdir", "Team", "a/../../x"],
        vec!["mkdir", "Nope", "x"],
    ] {
        let r = a.cli(&args).await;
        assert_eq!(r.code, 2, "{args:?} should be refused as bad input: {}", r.stderr);
        assert!(!r.stderr.trim().is_empty(), "{args:?} says why");
    }
    assert!(!tmp.path().join("alice/escaped.txt").exists());
    assert_eq!((tree(&a_dir), tree(&b_dir)), before, "refused edits changed nothing");
    a.stop().await;
    b.stop().await;
}

/// One raw HTTP/1.1 request to a daemon's API; returns (status, body).
async fn http(home: &Path, method: &str, target: &str, token: bool, body: &[u8], send: usize) -> (u16, String) {
    let api: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("api.json")).expect("api.json")).expect("json");
    let hostport = api["url"].as_str().expect("url").trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&hostport).await.expect("connect");
    let auth = if token {
        format!("Authorization: Bearer {}\r\n", std::fs::read_to_string(home.join("api.token")).expect("token").trim())
    } else {
        String::new()
    };
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body[..send.min(body.len())]).await.expect("body");
    if send < body.len() {
        // A client that goes away mid-upload.
        drop(conn);
        return (0, String::new());
    }
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").expect("http answer");
    (h.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status"), b.to_owned())
}

fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn no_temp_files(root: &Path) -> bool {
    tree(root).keys().all(|k| !k.rsplit('/').next().unwrap_or(k).starts_with(".peerbox-tmp"))
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_reach_members_never_overwrite_and_broken_ones_leave_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, a_dir, b_dir) = folder_pair(tmp.path(), &[("x.txt", b"x")]).await;
    let home = tmp.path().join("home-a");
    let data = pattern(3 << 20, 7);
    let target = format!("/api/v1/upload?folder=Team&path={}", q("up/한글 파일.bin"));

    let (code, body) = http(&home, "PUT", &target, true, &data, data.len()).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["path"].as_str(), v["bytes"].as_u64()), (Some("up/한글 파일.bin"), Some(data.len() as u64)));
    assert!(wait_until(|| std::fs::read(b_dir.join("up/한글 파일.bin")).ok() == Some(data.clone())).await);

    // The same name again: kept beside it, nothing replaced.
    let (code, body) = http(&home, "PUT", &target, true, b"second", 6).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("up/한글 파일 (2).bin"), "{body}");
    assert_eq!(std::fs::read(a_dir.join("up/한글 파일.bin")).expect("first"), data);

    let before = tree(&a_dir);
    // Broken off half way, without the token, and with hostile paths: nothing lands.
    http(&home, "PUT", "/api/v1/upload?folder=Team&path=half.bin", true, &data, 1 << 20).await;
    let (code, _) = http(&home, "PUT", "/api/v1/upload?folder=Team&path=nope.bin", false, b"data", 4).await;
    assert_eq!(code, 401);
    for p in ["../out.bin", "/etc/x", ".peerbox/trash/x", "a/./b", ".peerbox-tmp-x"] {
        let (code, body) =
            http(&home, "PUT", &format!("/api/v1/upload?folder=Team&path={}", q(p)), true, b"d", 1).await;
        assert_eq!(code, 400, "{p}: {body}");
    }
    // The broken upload's writer finishes cleaning up on its own schedule.
    assert!(wait_until(|| tree(&a_dir) == before).await, "{:?}", tree(&a_dir));
    assert!(no_temp_files(&a_dir));
    assert!(!tmp.path().join("alice/out.bin").exists());

    // A quick share from a browser: upload without a folder, then share it.
    let (code, body) =
        http(&home, "PUT", &format!("/api/v1/upload?path={}", q("여행.bin")), true, &data[..5000], 5000).await;
    assert_eq!(code, 200, "{body}");
    let abs = serde_json::from_str::<serde_json::Value>(&body).expect("json")["abs"].as_str().expect("abs").to_owned();
    let call = serde_json::json!({ "op": "share", "paths": [abs] }).to_string();
    let (code, body) = http(&home, "POST", "/api/v1/call", true, call.as_bytes(), call.len()).await;
    assert_eq!(code, 200, "{body}");
    let link =
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["link"].as_str().expect("link").to_owned();
    let dest = tmp.path().join("got");
    let run = get(&link, &dest, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(dest.join("여행.bin")).expect("got"), &data[..5000]);
    a.stop().await;
    b.stop().await;
}

/// Blocks from `from` on wait until the gate opens (a sharer on a slow line).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (m, c) = &*self.0;
        let mut open = m.lock().expect("gate");
        while !*open {
            open = c.wait(open).expect("gate");
        }
    }
    fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().expect("gate") = true;
        c.notify_all();
    }
}

async fn gated_sharer(data: Vec<u8>, from: u32) -> (FakeSharer, Gate) {
    gated(vec![file_entry("film.bin", &data)], vec![data], from).await
}

/// A sharer of `entries` (with `files`, by entry) whose blocks from `from` on wait for the gate.
async fn gated(entries: Vec<Entry>, files: Vec<Vec<u8>>, from: u32) -> (FakeSharer, Gate) {
    let gate = Gate::default();
    let g = gate.clone();
    let sharer = FakeSharer::start(
        entries,
        Arc::new(move |f, b| {
            if b >= from {
                g.wait();
            }
            serve_slice(&files, f, b)
        }),
    )
    .await;
    (sharer, gate)
}

fn transfer(status: &serde_json::Value, id: u64) -> serde_json::Value {
    status["transfers"].as_array().into_iter().flatten().find(|t| t["id"] == id).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_pause_resume_survive_a_restart_and_cancel_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home-b");
    let dest = tmp.path().join("downloads");
    let data = pattern(4 << 20, 3);
    // 4 MiB in 128 KiB blocks: the first 4 arrive, the rest wait for the gate.
    let (sharer, gate) = gated_sharer(data.clone(), 4).await;
    let b = Daemon::start(&home).await;
    let id: u64 = b.ok(&["download", &sharer.link, s(&dest)]).await.parse().expect("id");
    let got_some = |t: &serde_json::Value| t["state"] == "running" && t["done_bytes"].as_u64().unwrap_or(0) >= 4 << 17;
    let st = wait_status(&b, |s| got_some(&transfer(s, id))).await;
    assert!(got_some(&transfer(&st, id)), "{st}");
    assert_eq!(transfer(&st, id)["label"], "film.bin");

    b.ok(&["transfers", "pause", &id.to_string()]).await;
    let st = b.status().await;
    assert_eq!(transfer(&st, id)["state"], "paused");
    // Pausing again is refused: it is not running.
    assert_eq!(b.cli(&["transfers", "pause", &id.to_string()]).await.code, 2);

    // A restart keeps the paused download and what it had.
    b.stop().await;
    let b = Daemon::start(&home).await;
    let t = transfer(&b.status().await, id);
    assert_eq!(t["state"], "paused", "{t}");
    assert!(t["done_bytes"].as_u64().unwrap_or(0) >= 4 << 17, "{t}");
    b.ok(&["transfers", "resume", &id.to_string()]).await;
    gate.open();
    let st = wait_status(&b, |s| transfer(s, id)["state"] == "done").await;
    assert_eq!(transfer(&st, id)["state"], "done", "{st}");
    assert_eq!(std::fs::read(dest.join("film.bin")).expect("file"), data);
    assert!(no_temp_files(&dest));

    // A download that is running when the daemon stops carries on after the restart.
    let data2 = pattern(4 << 20, 9);
    let (sharer2, gate2) = gated_sharer(data2.clone(), 4).await;
    let dest2 = tmp.path().join("downloads2");
    let id2: u64 = b.ok(&["download", &sharer2.link, s(&dest2)]).await.parse().expect("id");
    wait_status(&b, |s| got_some(&transfer(s, id2))).await;
    b.stop().await;
    let b = Daemon::start(&home).await;
    let st = wait_status(&b, |s| transfer(s, id2)["state"] == "running").await;
    assert_eq!(transfer(&st, id2)["state"], "running", "{st}");
    gate2.open();
    let st = wait_status(&b, |s| transfer(s, id2)["state"] == "done").await;
    assert_eq!(transfer(&st, id2)["state"], "done", "{st}");
    assert_eq!(std::fs::read(dest2.join("film.bin")).expect("file"), data2);

    // Cancel: the partial file goes, nothing is left in the destination.
    let (sharer3, gate3) = gated_sharer(pattern(4 << 20, 5), 4).await;
    let dest3 = tmp.path().join("downloads3");
    let id3: u64 = b.ok(&["download", &sharer3.link, s(&dest3)]).await.parse().expect("id");
    wait_status(&b, |s| got_some(&transfer(s, id3))).await;
    b.ok(&["transfers", "cancel", &id3.to_string()]).await;
    assert_eq!(transfer(&b.status().await, id3)["state"], "canceled");
    assert!(tree(&dest3).is_empty(), "{:?}", tree(&dest3));
    // Its blocked block readers must end, or the runtime waits for them forever.
    gate3.open();

    // A folder too: the folder it was filling under a temp name goes with its files.
    let data4 = pattern(4 << 20, 6);
    let album = vec![Entry { path: "album".into(), kind: EntryKind::Dir }, file_entry("album/film.bin", &data4)];
    let (sharer4, gate4) = gated(album, vec![Vec::new(), data4], 4).await;
    let dest4 = tmp.path().join("downloads4");
    let id4: u64 = b.ok(&["download", &sharer4.link, s(&dest4)]).await.parse().expect("id");
    wait_status(&b, |s| got_some(&transfer(s, id4))).await;
    assert!(!tree(&dest4).is_empty(), "the download had begun writing");
    b.ok(&["transfers", "cancel", &id4.to_string()]).await;
    assert!(tree(&dest4).is_empty(), "{:?}", tree(&dest4));
    gate4.open();

    // Bad links are refused up front.
    for bad in ["peerbox://garbage", "not a link", &tamper(&sharer.link, 5)] {
        let r = b.cli(&["download", bad, s(&dest)]).await;
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn device_name_is_kept_across_restarts_and_bad_names_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let d = Daemon::start(&home).await;
    let default = d.status().await["device_name"].as_str().expect("a default name").to_owned();
    assert!(!default.is_empty());

    let out = d.ok(&["settings", "--device-name", "  사무실 노트북 "]).await;
    assert_eq!(out.lines().next(), Some("device name: 사무실 노트북"), "{out}");
    for bad in ["tab\there", "a/b", "evil\u{202e}gpj.exe", &"x".repeat(65)] {
        let run = d.cli(&["settings", "--device-name", bad]).await;
        assert_eq!(run.code, 2, "{bad:?} refused: {}", run.stderr);
        assert!(run.stderr.contains("device name"), "clear error: {}", run.stderr);
    }
    d.stop().await;

    let d = Daemon::start(&home).await;
    assert_eq!(d.status().await["device_name"], "사무실 노트북", "kept across a restart, bad names changed nothing");
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["settings", "--device-name", "", "--json"]).await).expect("json");
    assert_eq!(v["device_name"], default.as_str(), "an empty name returns to the default");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links_are_listed_with_uses_and_state_and_revoked_by_number() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let (one, two, team) = (tmp.path().join("하나.txt"), tmp.path().join("two.txt"), tmp.path().join("Team"));
    write(&one, b"first");
    write(&two, b"second");
    write(&team.join("a.txt"), b"team");
    let link_one = d.ok(&["share", s(&one)]).await;
    d.ok(&["share", "--expires", "1s", s(&two)]).await;
    d.ok(&["folder", "add", s(&team), "--name", "Team"]).await;
    d.ok(&["folder", "link", "Team"]).await;

    let links = |d: &Daemon| {
        let d = d.home.clone();
        async move {
            let out = peerbox(&d).args(["links", "--json"]).output().await.expect("links");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
        }
    };
    let got = get(&link_one, &tmp.path().join("got"), &[]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    let v = links(&d).await;
    let all = v.as_array().expect("a list");
    assert_eq!(all.len(), 3, "{v}");
    let by_label = |label: &str| all.iter().find(|l| l["label"] == label).cloned().expect(label);
    assert_eq!(by_label("하나.txt")["uses"], 1, "the download counted");
    assert_eq!(by_label("Team")["kind"], "folder");
    assert!(
        wait_until_async(|| async {
            links(&d)
                .await
                .as_array()
                .is_some_and(|a| a.iter().any(|l| l["label"] == "two.txt" && l["state"] == "expired"))
        })
        .await,
        "the 1 s link expired"
    );

    let id = by_label("하나.txt")["id"].as_i64().expect("id").to_string();
    d.ok(&["revoke", &id]).await;
    assert_eq!(
        links(&d).await.as_array().expect("list").iter().find(|l| l["label"] == "하나.txt").expect("listed")["state"],
        "revoked"
    );
    let refused = get(&link_one, &tmp.path().join("again"), &[]).await;
    assert_eq!(refused.code, 2, "a revoked link is refused: {}", refused.stderr);
    assert!(!tmp.path().join("again/하나.txt").exists());
    let bad = d.cli(&["revoke", "999"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("no link 999"), "{}", bad.stderr);
    d.stop().await;
}
