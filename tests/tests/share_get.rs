//! `peerbox share` → `peerbox get` end to end, with the real binary on loopback,
//! and every bad input the share-by-link capability owes a behaviour for.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use peerbox_proto::Link;
use peerbox_proto::blocks::MissingReason;
use peerbox_proto::manifest::{Entry, EntryKind, MIN_BLOCK_SIZE};
use peerbox_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const BLOCK: usize = MIN_BLOCK_SIZE as usize;

/// Sizes that sit on block edges, as iroh-blobs' INTERESTING_SIZES.
const SIZES: [(&str, usize); 6] = [
    ("empty.bin", 0),
    ("one.bin", 1),
    ("block-minus-one.bin", BLOCK - 1),
    ("block.bin", BLOCK),
    ("block-plus-one.bin", BLOCK + 1),
    ("many-blocks.bin", 9 * BLOCK + 17),
];

#[allow(clippy::unwrap_used)]
fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_of_every_edge_size_and_a_unicode_tree_arrive_identical() {
    let src = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, (name, size)) in SIZES.iter().enumerate() {
        let p = src.path().join(name);
        write(&p, &pattern(*size, i as u8));
        paths.push(p);
    }
    let tree_root = src.path().join("보고서 report");
    write(&tree_root.join("a/b/c/deep.txt"), b"deep");
    write(&tree_root.join("사진/여행 🏖️.jpg"), &pattern(3 * BLOCK + 5, 99));
    write(&tree_root.join("naïve café.txt"), b"nfc");
    std::fs::create_dir_all(tree_root.join("empty folder")).unwrap();
    paths.push(tree_root);

    let path_refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let sharer = Sharer::start(&path_refs, &[]).await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("downloads");
    let run = get(&sharer.link, &dest, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    assert_eq!(tree(&dest), tree(src.path()), "destination differs from the source");
    let json = run.json();
    let expected: u64 = SIZES.iter().map(|(_, s)| *s as u64).sum::<u64>() + 4 + (3 * BLOCK + 5) as u64 + 3;
    assert_eq!(json["total_bytes"], expected);
    assert_eq!(json["fetched_bytes"], expected);
    // No temp files left behind.
    assert!(tree(&dest).keys().all(|k| !k.contains(".peerbox-tmp-")));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_downloaders_at_once_both_get_everything() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("video.bin");
    write(&file, &pattern(40 * BLOCK + 3, 7));
    let sharer = Sharer::start(&[&file], &[]).await;
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a"), out.path().join("b"));
    let (ra, rb) = tokio::join!(get(&sharer.link, &a, &[]), get(&sharer.link, &b, &[]));
    assert_eq!(ra.code, 0, "{}", ra.stderr);
    assert_eq!(rb.code, 0, "{}", rb.stderr);
    let want = file_hash(&file);
    assert_eq!(file_hash(&a.join("video.bin")), want);
    assert_eq!(file_hash(&b.join("video.bin")), want);
}

/// More files than the downloader may hold open: they arrive whole, and no temp
/// file is left. (A download used to open every file's temp file at once.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_link_of_more_files_than_the_open_file_limit_arrives_whole() {
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("many");
    for i in 0..600usize {
        write(&dir.join(format!("d{}/f{i}.txt", i % 7)), format!("file {i} ").repeat(i % 50 + 1).as_bytes());
    }
    let big: Vec<u8> = (0..5 * BLOCK + 3).map(|i| (i * 31 % 251) as u8).collect();
    write(&dir.join("big.bin"), &big);
    let sharer = Sharer::start(&[&dir], &[]).await;
    let dest = tempfile::tempdir().unwrap();
    let run = get_with_open_files(&sharer.link, dest.path(), 128).await;
    assert_eq!(run.code, 0, "get failed: {}", run.stderr);
    // Every file, identical, and nothing else (no temp file) in the destination.
    assert_eq!(tree(&dest.path().join("many")), tree(&dir));
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_download_resumes_from_verified_blocks() {
    const BLOCKS: usize = 32;
    const SERVED: usize = 12;
    let data = pattern(BLOCKS * BLOCK, 3);
    let entry = file_entry("big.bin", &data);

    // A sharer that serves the first SERVED blocks, then stops answering until the
    // test lets go, as a sharer whose laptop went to sleep.
    let (release, held) = std::sync::mpsc::sync_channel::<()>(0);
    let held = Arc::new(Mutex::new(held));
    let first = data.clone();
    let stalling = FakeSharer::start(
        vec![entry.clone()],
        Arc::new(move |f, b| {
            if b as usize >= SERVED {
                let _ = held.lock().unwrap().recv();
                return Err(MissingReason::Unreadable);
            }
            serve_slice(std::slice::from_ref(&first), f, b)
        }),
    )
    .await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    let home = tempfile::tempdir().unwrap();
    let mut child = peerbox(home.path())
        .args(["get", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--progress"])
        .arg(&stalling.link)
        .arg(&dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let want = (SERVED * BLOCK) as u64;
    tokio::time::timeout(STEP, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(done) = line.strip_prefix("progress ").and_then(|r| r.split('/').next())
                && done.parse::<u64>().unwrap() >= want
            {
                return;
            }
        }
        panic!("downloader exited before reaching {want} bytes");
    })
    .await
    .expect("no progress");
    child.start_kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().await.unwrap();
    drop(release);
    assert!(!dest.join("big.bin").exists(), "a partial file must never appear under its final name");

    // The same content from another sharer (new link, same content id).
    let honest = FakeSharer::honest(vec![("big.bin", data.clone())]).await;
    let run = get(&honest.link, &dest, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["resumed_bytes"], want, "verified blocks were not kept");
    assert_eq!(json["fetched_bytes"], (data.len() as u64) - want, "the second run fetched more than what was missing");
    assert_eq!(std::fs::read(dest.join("big.bin")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_files_are_never_overwritten_silently() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("notes.txt");
    write(&file, b"from the sharer");
    let sharer = Sharer::start(&[&file], &[]).await;
    let out = tempfile::tempdir().unwrap();

    // Identical content is already done: nothing fetched.
    write(&out.path().join("same/notes.txt"), b"from the sharer");
    let run = get(&sharer.link, &out.path().join("same"), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["fetched_bytes"], 0);

    // Different content: refused, untouched, and the message says what to do.
    let mine = out.path().join("diff/notes.txt");
    write(&mine, b"my own notes");
    let run = get(&sharer.link, &out.path().join("diff"), &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--overwrite"), "{}", run.stderr);
    assert_eq!(std::fs::read(&mine).unwrap(), b"my own notes");

    let run = get(&sharer.link, &out.path().join("diff"), &["--overwrite"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&mine).unwrap(), b"from the sharer");
}

/// Malformed, truncated, tampered, expired and secret-less links: exit 2, with a
/// reason, and nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn bad_links_are_refused_and_nothing_is_written() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("secret.txt");
    write(&file, b"only for link holders");
    let sharer = Sharer::start(&[&file], &[]).await;
    let good = Link::decode(&sharer.link).unwrap();

    let expired = Link { expires: Some(1), ..good.clone() }.encode();
    let no_secret = Link { secret: [7; 32], ..good.clone() }.encode();
    let other_content = Link { id: [9; 32], ..good.clone() }.encode();
    let len = sharer.link.len();
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", "peerbox://not-a-link!".into(), "cannot appear"),
        ("not a link", "https://example.invalid/x".into(), "not a Peerbox link"),
        ("truncated", sharer.link[..len - 10].into(), "damaged"),
        ("tampered early", tamper(&sharer.link, 5), "damaged"),
        ("tampered late", tamper(&sharer.link, len - 20), "damaged"),
        ("expired", expired, "expired"),
        ("without the secret", no_secret, "does not recognise"),
        ("for other content", other_content, "does not recognise"),
    ];
    for (what, link, says) in cases {
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("dest");
        let run = get(&link, &dest, &[]).await;
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
        assert!(!dest.exists(), "{what}: wrote into the destination");
        assert!(tree(out.path()).is_empty(), "{what}: wrote something");
    }
}

/// What a hostile sharer can send, and what must come of it: an error, exit 1,
/// and nothing outside the destination touched (nor a bad file inside it).
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_sharer_cannot_write_bad_bytes_or_escape_the_destination() {
    let data = pattern(3 * BLOCK + 1, 5);
    let good = file_entry("ok.bin", &data);

    // Blocks with the wrong content, or the wrong length.
    let wrong = pattern(data.len(), 6);
    let longer: Vec<u8> = [data.clone(), vec![0]].concat();
    for (what, served) in [("wrong hash", wrong), ("wrong size", longer)] {
        let sharer = FakeSharer::start(
            vec![good.clone()],
            Arc::new(move |_, b| {
                let start = b as usize * BLOCK;
                let end = if start + BLOCK >= served.len() - 1 { served.len() } else { start + BLOCK };
                Ok(Bytes::copy_from_slice(&served[start..end.max(start)]))
            }),
        )
        .await;
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("dest");
        let run = get(&sharer.link, &dest, &[]).await;
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.contains("failed verification"), "{what}: {}", run.stderr);
        assert!(!dest.join("ok.bin").exists(), "{what}: an unverified file appeared");
        assert!(tree(out.path()).keys().all(|k| k.starts_with("dest")), "{what}: wrote outside the destination");
    }

    // Manifests that name paths outside the destination, or lie about sizes.
    let escaping = [
        "../x",
        "a/../../x",
        "/etc/x",
        "C:\\x",
        "\\\\srv\\s",
        "a\0b",
        "sub/../x",
        "./x",
        "x/",
        ".peerbox/x",
        "a/\u{1b}[2Jb",
    ];
    let mut hostile: Vec<(String, Entry)> =
        escaping.iter().map(|p| (format!("path {p:?}"), file_entry(p, b"evil"))).collect();
    let mut lying = file_entry("lies.bin", &data);
    if let EntryKind::File(f) = &mut lying.kind {
        f.size += BLOCK as u64 * 4;
    }
    hostile.push(("size larger than its blocks".into(), lying));
    for (what, entry) in hostile {
        let sharer =
            FakeSharer::start(vec![good.clone(), entry], Arc::new(|_, _| Ok(Bytes::from_static(b"evil")))).await;
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let dest = out.join("dest");
        let before = tree(parent.path());
        let run = get(&sharer.link, &dest, &[]).await;
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.contains("invalid file list"), "{what}: {}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{what}: a peer's text reached the terminal unescaped");
        assert_eq!(tree(parent.path()), before, "{what}: something was written");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn output_into_a_closed_pipe_ends_the_command_quietly() {
    // `peerbox links | head -1`: the reader is gone before all is written.
    let tmp = tempfile::tempdir().expect("tmp");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = peerbox(&tmp.path().join("home"))
        .arg("id")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let out = child.wait_with_output().await.expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// A TCP front for `target` that takes the first `resets` connections, waits for the
/// dialer's first bytes, and resets them: what a sharer does while its half-open
/// connections are full. Later connections pass through. Counts the resets.
#[allow(clippy::unwrap_used)]
async fn busy_front(target: String, resets: usize) -> (String, Arc<Mutex<usize>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reset = Arc::new(Mutex::new(0));
    let counted = reset.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = listener.accept().await else { return };
            if *counted.lock().unwrap() < resets {
                let mut first = [0u8; 1];
                let _ = c.read(&mut first).await;
                c.set_zero_linger().unwrap();
                *counted.lock().unwrap() += 1;
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                let mut up = tokio::net::TcpStream::connect(&target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
            });
        }
    });
    (format!("/ip4/127.0.0.1/tcp/{port}"), reset)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharer_that_hangs_up_while_busy_is_dialled_again() {
    let data = pattern(3 * BLOCK + 5, 9);
    let sharer = FakeSharer::honest(vec![("busy.bin", data.clone())]).await;
    let (front, reset) = busy_front(tcp_of(&sharer.link), 3).await;
    let out = tempfile::tempdir().unwrap();
    let run = get(&relink(&sharer.link, &[&front]), out.path(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(*reset.lock().unwrap(), 3, "the getter did not go through the busy front");
    assert_eq!(std::fs::read(out.path().join("busy.bin")).unwrap(), data);
}
