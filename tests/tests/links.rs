//! Links with limits, through real daemons on loopback: passwords (missing, wrong,
//! guessed too often), device limits, revoking and expiring folder links (who came
//! in through one leaves with it, on every member), and file-request links (files
//! in, nothing out, the size limit, nothing partial).

use std::path::Path;

use peerbox_tests::*;

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

async fn links(d: &Daemon) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["links", "--json"]).await).expect("links JSON");
    v.as_array().cloned().expect("a list")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_and_a_device_limit_guard_a_file_link() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let file = tmp.path().join("계약서.pdf");
    write(&file, &pattern(300_000, 3));
    let link = d.ok(&["share", "--password", "열쇠 123", "--max-uses", "1", s(&file)]).await;
    assert!(!link.contains("123"), "the password is not in the link");

    let none = get(&link, &tmp.path().join("none"), &[]).await;
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("password"), "says a password is needed: {}", none.stderr);
    let wrong = get(&link, &tmp.path().join("wrong"), &["--password", "열쇠 124"]).await;
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.stderr);
    for dir in ["none", "wrong"] {
        assert!(!tmp.path().join(dir).join("계약서.pdf").exists(), "nothing written for {dir}");
    }

    let right = get(&link, &tmp.path().join("right"), &["--password", "열쇠 123"]).await;
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert_eq!(file_hash(&tmp.path().join("right/계약서.pdf")), file_hash(&file));

    // One device used it: a second one (another identity) is turned away.
    let second = get(&link, &tmp.path().join("second"), &["--password", "열쇠 123"]).await;
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("as many devices"), "{}", second.stderr);
    assert!(!tmp.path().join("second/계약서.pdf").exists());

    let l = links(&d).await.into_iter().find(|l| l["label"] == "계약서.pdf").expect("listed");
    assert_eq!((l["uses"].as_u64(), l["max_uses"].as_u64()), (Some(1), Some(1)), "{l}");
    assert_eq!((l["password"].as_bool(), l["state"].as_str()), (Some(true), Some("used-up")), "{l}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_a_password_is_stopped_after_a_few_tries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let file = tmp.path().join("a.txt");
    write(&file, b"guarded");
    let link = d.ok(&["share", "--password", "correct horse", s(&file)]).await;
    for guess in ["a", "b", "c", "d", "e"] {
        let r = get(&link, &tmp.path().join("g"), &["--password", guess]).await;
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("wrong password"), "{guess}: {}", r.stderr);
    }
    let r = get(&link, &tmp.path().join("g"), &["--password", "correct horse"]).await;
    assert_eq!(r.code, 2, "even the right password waits after five wrong ones: {}", r.stderr);
    assert!(r.stderr.contains("too many wrong passwords"), "{}", r.stderr);
    assert!(!tmp.path().join("g/a.txt").exists());
    d.stop().await;
}

/// The members another daemon lists for folder `name`, from its status.
fn members(status: &serde_json::Value, name: &str) -> Vec<String> {
    status["folders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["name"] == name)
        .flat_map(|f| f["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["peer"].as_str().map(str::to_owned))
        .collect()
}

fn folder_error(status: &serde_json::Value) -> String {
    status["folders"][0]["state"]["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_folder_link_ends_access_for_who_came_through_it_on_every_member() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a_dir, b_dir, c_dir) = (tmp.path().join("a/Team"), tmp.path().join("b/Team"), tmp.path().join("c/Team"));
    write(&a_dir.join("plan.txt"), b"v1");
    let a = Daemon::start(&tmp.path().join("home-a")).await;
    let b = Daemon::start(&tmp.path().join("home-b")).await;
    let c = Daemon::start(&tmp.path().join("home-c")).await;
    a.ok(&["folder", "add", s(&a_dir), "--name", "Team"]).await;
    let for_b = a.ok(&["folder", "link", "Team"]).await;
    let for_c = a.ok(&["folder", "link", "Team"]).await;
    b.ok(&["folder", "join", &for_b, s(&b_dir)]).await;
    c.ok(&["folder", "join", &for_c, s(&c_dir)]).await;
    assert!(wait_until(|| content(&b_dir) == content(&a_dir) && content(&c_dir) == content(&a_dir)).await);
    let b_id = b.ok(&["id"]).await;
    let seen = wait_status(&c, |st| members(st, "Team").contains(&b_id)).await;
    assert!(members(&seen, "Team").contains(&b_id), "C learned of B from A: {seen}");

    let n = links(&a).await.into_iter().filter(|l| l["kind"] == "folder").map(|l| l["id"].as_i64()).min().flatten();
    a.ok(&["revoke", &n.expect("B's link is the first").to_string()]).await;

    let st = wait_status(&b, |st| folder_error(st).contains("no longer lets this device in")).await;
    assert!(folder_error(&st).contains("no longer lets this device in"), "B is told: {st}");
    assert!(!members(&a.status().await, "Team").contains(&b_id), "A removed B");
    let st = wait_status(&c, |st| !members(st, "Team").contains(&b_id)).await;
    assert!(!members(&st, "Team").contains(&b_id), "C forgot B too: {st}");

    // B's changes no longer reach the group; the group's still reach C.
    write(&b_dir.join("from-b.txt"), b"not welcome");
    write(&a_dir.join("plan.txt"), b"v2");
    assert!(wait_until(|| std::fs::read(c_dir.join("plan.txt")).ok().as_deref() == Some(b"v2")).await);
    assert!(!a_dir.join("from-b.txt").exists() && !c_dir.join("from-b.txt").exists(), "B's file reached no one");
    assert_eq!(std::fs::read(b_dir.join("plan.txt")).expect("B keeps its copy"), b"v1");
    for d in [a, b, c] {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_folder_link_ends_the_access_it_gave() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a_dir, b_dir) = (tmp.path().join("a/Team"), tmp.path().join("b/Team"));
    write(&a_dir.join("one.txt"), b"1");
    let a = Daemon::start(&tmp.path().join("home-a")).await;
    let b = Daemon::start(&tmp.path().join("home-b")).await;
    a.ok(&["folder", "add", s(&a_dir), "--name", "Team"]).await;
    let link = a.ok(&["folder", "link", "Team", "--expires", "3s"]).await;
    b.ok(&["folder", "join", &link, s(&b_dir)]).await;
    assert!(wait_until(|| content(&b_dir) == content(&a_dir)).await, "synced while the link lived");
    let expired = wait_until_async(|| async { links(&a).await.iter().any(|l| l["state"] == "expired") }).await;
    assert!(expired, "the link expired");
    write(&a_dir.join("two.txt"), b"2");
    let st = wait_status(&b, |st| folder_error(st).contains("no longer lets this device in")).await;
    assert!(folder_error(&st).contains("no longer lets this device in"), "{st}");
    assert!(!b_dir.join("two.txt").exists(), "nothing new after the link expired");
    let again = tmp.path().join("c/Team");
    let r = Daemon::start(&tmp.path().join("home-c")).await;
    let join = r.cli(&["folder", "join", &link, s(&again)]).await;
    assert_eq!(join.code, 2, "{}", join.stderr);
    assert!(join.stderr.contains("expired"), "{}", join.stderr);
    for d in [a, b, r] {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_request_takes_files_but_shows_nothing_and_holds_its_limits() {
    let tmp = tempfile::tempdir().expect("tmp");
    let inbox = tmp.path().join("owner/Inbox");
    write(&inbox.join("secret.txt"), b"not for senders");
    let owner = Daemon::start(&tmp.path().join("home-owner")).await;
    owner.ok(&["folder", "add", s(&inbox), "--name", "Inbox"]).await;
    let link = owner.ok(&["folder", "request", "Inbox", "--max-bytes", "1MiB", "--password", "drop it"]).await;

    // A sender cannot read, join or list through it.
    let m = misuse(&link).await;
    assert!(
        m.as_share.is_err() && m.as_folder.is_err() && m.index.is_err(),
        "{:?} {:?} {:?}",
        m.as_share,
        m.as_folder,
        m.index
    );
    let g = get(&link, &tmp.path().join("got"), &[]).await;
    assert_eq!(g.code, 2, "{}", g.stderr);

    let sender = tmp.path().join("sender");
    write(&sender.join("report.pdf"), &pattern(200_000, 1));
    write(&sender.join("photos/a.jpg"), &pattern(100_000, 2));
    write(&sender.join("photos/b.jpg"), &pattern(50_000, 4));
    write(&sender.join("big.iso"), &pattern(2 << 20, 5));
    let upload = |extra: &[&str], paths: &[&Path]| {
        let home = tempfile::tempdir().expect("home");
        let mut cmd = peerbox(home.path());
        cmd.args(["upload", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"]).args(extra).arg(&link);
        cmd.args(paths);
        async move {
            let out = tokio::time::timeout(STEP, cmd.output()).await.expect("upload hung").expect("spawn");
            drop(home);
            GetRun {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    };
    let wrong = upload(&["--password", "nope"], &[&sender.join("report.pdf")]).await;
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.stderr);

    let sent = upload(&["--password", "drop it"], &[&sender.join("report.pdf"), &sender.join("photos")]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let stored: Vec<&str> = sent.stdout.lines().collect();
    assert_eq!(stored.len(), 3, "{}", sent.stdout);
    let sub = stored[0].split('/').next().expect("a subfolder");
    assert!(stored.iter().all(|p| p.starts_with(&format!("{sub}/"))), "one subfolder for the drop: {stored:?}");
    assert_eq!(file_hash(&inbox.join(sub).join("report.pdf")), file_hash(&sender.join("report.pdf")));
    assert_eq!(file_hash(&inbox.join(sub).join("photos/b.jpg")), file_hash(&sender.join("photos/b.jpg")));
    assert_eq!(std::fs::read(inbox.join("secret.txt")).expect("kept"), b"not for senders");

    // Over what the link still takes: refused before a byte moves, nothing partial.
    let after_first = content(&inbox);
    let big = upload(&["--password", "drop it"], &[&sender.join("big.iso")]).await;
    assert_eq!(big.code, 2, "{}", big.stderr);
    assert!(big.stderr.contains("larger than this link still takes"), "{}", big.stderr);
    assert_eq!(content(&inbox), after_first, "nothing partial, not even an empty folder");
    assert!(!tree(&inbox).keys().any(|k| k.contains(".peerbox-tmp")), "{:?}", tree(&inbox));

    let l = links(&owner).await.into_iter().find(|l| l["kind"] == "request").expect("listed");
    assert_eq!(l["bytes_used"].as_u64(), Some(350_000), "{l}");
    assert_eq!(l["max_bytes"].as_u64(), Some(1 << 20), "{l}");

    // Revoked: the next sender is refused.
    owner.ok(&["revoke", &link]).await;
    let late = upload(&["--password", "drop it"], &[&sender.join("photos/a.jpg")]).await;
    assert_eq!(late.code, 2, "{}", late.stderr);
    assert!(late.stderr.contains("revoked"), "{}", late.stderr);
    owner.stop().await;
}
