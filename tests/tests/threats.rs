//! Every row of ../shared/docs/THREATS.md that involves a peer, one test each,
//! named after its row. Each puts a real daemon or the real `peerbox get` in front
//! of a peer that passed the handshake and misbehaves on purpose (a fake sharer, a
//! fake member, a raw frame writer, a stranger), asserts the behaviour the row owes,
//! and that nothing outside the destination or folder changed (the parent directory
//! is snapshotted before and after).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use peerbox_proto::index::{FolderId, SyncRefusal, SyncRequest, SyncResponse, WireMember, WireRecord};
use peerbox_proto::manifest::{BlockHash, Entry, EntryKind, MIN_BLOCK_SIZE};
use peerbox_tests::*;

const BLOCK: usize = MIN_BLOCK_SIZE as usize;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A download from `link` into `parent/out/dest`, with the parent's tree before
/// and after.
struct Downloaded {
    run: GetRun,
    before: std::collections::BTreeMap<String, String>,
    after: std::collections::BTreeMap<String, String>,
    dest: PathBuf,
    _parent: tempfile::TempDir,
}

async fn download(link: &str, prepare: impl FnOnce(&Path)) -> Downloaded {
    let parent = tempfile::tempdir().expect("tmp");
    let out = parent.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let dest = out.join("dest");
    prepare(parent.path());
    let before = tree(parent.path());
    let run = get(link, &dest, &[]).await;
    let after = tree(parent.path());
    Downloaded { run, before, after, dest, _parent: parent }
}

/// A hostile manifest: `entries` beside one good file, every block answered `evil`.
async fn hostile_manifest(entries: Vec<Entry>) -> Downloaded {
    let mut all = vec![file_entry("good.txt", b"good")];
    all.extend(entries);
    let sharer = FakeSharer::start(all, Arc::new(|_, _| Ok(Bytes::from_static(b"evil")))).await;
    download(&sharer.link, |_| {}).await
}

fn refused_whole(d: &Downloaded, what: &str) {
    assert_eq!(d.run.code, 1, "{what}: {}", d.run.stderr);
    assert!(d.run.stderr.contains("invalid file list"), "{what}: {}", d.run.stderr);
    assert!(!d.run.stderr.contains('\u{1b}') && !d.run.stderr.contains('\0'), "{what}: peer text unescaped");
    assert_eq!(d.after, d.before, "{what}: something was written");
}

/// A daemon owning folder "F" (with `mine.txt`) and its link, inside a temp root.
struct Owner {
    root: tempfile::TempDir,
    daemon: Daemon,
    dir: PathBuf,
    link: String,
}

impl Owner {
    async fn start(link_args: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("area/F");
        put(&dir.join("mine.txt"), b"the owner's file");
        let daemon = Daemon::start(&root.path().join("home")).await;
        daemon.ok(&["folder", "add", s(&dir), "--name", "F"]).await;
        let mut args = vec!["folder", "link", "F"];
        args.extend_from_slice(link_args);
        let link = daemon.ok(&args).await;
        Self { root, daemon, dir, link }
    }

    /// Everything beside the folder and the home: must never change.
    fn outside(&self) -> Vec<(String, String)> {
        tree(self.root.path()).into_iter().filter(|(k, _)| !k.starts_with("area/F") && !k.starts_with("home")).collect()
    }

    /// Waits until the folder holds `path` (proof the member's records were taken).
    async fn has(&self, path: &str) -> bool {
        let p = self.dir.join(path);
        wait_until(|| p.exists()).await
    }
}

/// Records with `paths` as a member announces them, plus `fine.txt` whose bytes
/// it serves: once that arrives, the owner has processed the whole batch.
fn with_marker(paths: &[&str]) -> (Vec<WireRecord>, Bytes) {
    let data = Bytes::from_static(b"fine bytes");
    let mut records: Vec<WireRecord> = paths.iter().map(|p| wire_file(p, b"evil", 77)).collect();
    records.push(wire_file("fine.txt", &data, 77));
    (records, data)
}

/// A hostile member's `paths` offered to a real owner: only `fine.txt` arrives,
/// and nothing outside the folder changes.
async fn hostile_records(paths: &[&str], what: &str) {
    let owner = Owner::start(&[]).await;
    let outside = owner.outside();
    let (records, data) = with_marker(paths);
    let _member = FakeMember::join(&owner.link, records, data).await;
    assert!(owner.has("fine.txt").await, "{what}: the well-formed record arrived");
    assert_eq!(owner.outside(), outside, "{what}: something was written outside the folder");
    let inside: Vec<String> = content(&owner.dir).into_keys().collect();
    assert_eq!(inside, ["fine.txt", "mine.txt"], "{what}: only the valid file is in the folder");
    owner.daemon.stop().await;
}

// ------------------------------------------------------------------ paths

#[tokio::test(flavor = "multi_thread")]
async fn row01_escaping_paths_are_refused() {
    let escaping = ["../../x", "a/../../x", "/etc/x", "C:\\x", "\\\\srv\\s"];
    for p in escaping {
        refused_whole(&hostile_manifest(vec![file_entry(p, b"evil")]).await, p);
    }
    hostile_records(&escaping, "escaping records").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row02_non_canonical_paths_are_refused_not_cleaned() {
    let odd = ["sub/../x", "./x", "x/", "a//b"];
    for p in odd {
        refused_whole(&hostile_manifest(vec![file_entry(p, b"evil")]).await, p);
    }
    hostile_records(&odd, "non-canonical records").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row03_control_characters_and_backslashes_are_refused_and_shown_escaped() {
    let odd = ["n\0ul", "bell\u{7}", "a\u{1b}[2Jb", "line\nbreak", "back\\slash"];
    for p in odd {
        refused_whole(&hostile_manifest(vec![file_entry(p, b"evil")]).await, &format!("{p:?}"));
    }
    hostile_records(&odd, "control characters").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row04_a_name_that_is_html_is_kept_as_text() {
    // Valid as a name, so it syncs; it is data everywhere it is shown (the drive's
    // rendering of it is tests/ui/drive.test.mjs, "a file named like HTML").
    let name = "<img src=x onerror=alert(1)>.txt";
    let owner = Owner::start(&[]).await;
    let data = Bytes::from_static(b"just text");
    let _member = FakeMember::join(&owner.link, vec![wire_file(name, &data, 77)], data).await;
    assert!(owner.has(name).await);
    let ls: serde_json::Value = serde_json::from_str(&owner.daemon.ok(&["ls", "F", "--json"]).await).expect("json");
    assert!(ls["entries"].as_array().expect("entries").iter().any(|e| e["name"] == name), "{ls}");
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row06_overlong_names_deep_paths_and_invalid_utf8_get_a_clear_error() {
    let long = "n".repeat(300);
    let deep = vec!["d"; 10_000].join("/");
    for (what, p) in [("300-byte name", long.as_str()), ("10,000-deep path", deep.as_str())] {
        refused_whole(&hostile_manifest(vec![file_entry(p, b"evil")]).await, what);
    }
    // Invalid UTF-8 cannot be a String: the frame itself is refused.
    let mut frame = vec![0, 0, 0, 7, 16];
    frame.extend_from_slice(&[1, 2, 0xff, 0xfe, 1, 0]);
    let raw = RawSharer::start(frame).await;
    let d = download(&raw.link, |_| {}).await;
    assert_eq!(d.run.code, 1, "{}", d.run.stderr);
    assert!(d.run.stderr.contains("malformed") || d.run.stderr.contains("protocol"), "{}", d.run.stderr);
    assert_eq!(d.after, d.before);
    // The longest valid name still arrives: temp names are hashes, never longer.
    let longest = "ㄱ".repeat(85);
    let ok = FakeSharer::honest(vec![(longest.as_str(), pattern(2 * BLOCK, 2))]).await;
    let d = download(&ok.link, |_| {}).await;
    assert_eq!(d.run.code, 0, "{}", d.run.stderr);
    assert_eq!(std::fs::read(d.dest.join(&longest)).expect("arrived"), pattern(2 * BLOCK, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn row07_names_that_collide_by_case_or_unicode_form_are_reported_not_overwritten() {
    let sharer = FakeSharer::honest(vec![
        ("Readme.md", b"one".to_vec()),
        ("README.md", b"two".to_vec()),
        ("ok.txt", b"ok".to_vec()),
    ])
    .await;
    let d = download(&sharer.link, |_| {}).await;
    assert_eq!(d.run.code, 1, "problems are reported: {}", d.run.stderr);
    assert!(d.run.stderr.contains("differs only in case"), "{}", d.run.stderr);
    assert_eq!(std::fs::read(d.dest.join("ok.txt")).expect("the rest arrives"), b"ok");
    assert!(!d.dest.join("Readme.md").exists() && !d.dest.join("README.md").exists(), "neither is written");
    // The NFD form of a Hangul name is not what a peer may send: names travel NFC.
    refused_whole(&hostile_manifest(vec![file_entry("\u{1112}\u{1161}\u{11ab}.txt", b"nfd")]).await, "NFD name");
    // In a folder: a member announcing both spellings beside an existing file.
    let owner = Owner::start(&[]).await;
    let (mut records, data) = with_marker(&[]);
    records.push(wire_file("MINE.txt", b"would shadow mine.txt", 77));
    let _member = FakeMember::join(&owner.link, records, data).await;
    assert!(owner.has("fine.txt").await);
    assert_eq!(std::fs::read(owner.dir.join("mine.txt")).expect("kept"), b"the owner's file");
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row08_names_inside_peerbox_or_like_temp_files_are_refused() {
    let reserved = [".peerbox/trash/x", ".peerbox/versions/x", ".peerbox-tmp-0123", "sub/.peerbox-tmp-in-1"];
    for p in reserved {
        refused_whole(&hostile_manifest(vec![file_entry(p, b"evil")]).await, p);
    }
    hostile_records(&reserved, "reserved names").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row09_a_symlink_in_the_destination_is_not_followed() {
    let sharer = FakeSharer::honest(vec![("l/.bashrc", b"alias ls='rm -rf ~'".to_vec())]).await;
    let d = download(&sharer.link, |parent| {
        std::fs::create_dir_all(parent.join("home-of-victim")).expect("victim");
        std::fs::create_dir_all(parent.join("out/dest")).expect("dest");
        std::os::unix::fs::symlink(parent.join("home-of-victim"), parent.join("out/dest/l")).expect("symlink");
    })
    .await;
    assert_ne!(d.run.code, 0, "{}", d.run.stderr);
    assert_eq!(d.after, d.before, "nothing written through the link");
    // In a folder: the same, under the owner's own symlink.
    let owner = Owner::start(&[]).await;
    let victim = owner.root.path().join("victim");
    std::fs::create_dir(&victim).expect("victim");
    std::os::unix::fs::symlink(&victim, owner.dir.join("l")).expect("symlink");
    let (mut records, data) = with_marker(&[]);
    records.push(wire_file("l/.bashrc", b"evil", 77));
    let _member = FakeMember::join(&owner.link, records, data).await;
    assert!(owner.has("fine.txt").await);
    assert!(tree(&victim).is_empty(), "nothing written through the owner's symlink");
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row10_a_directory_swapped_for_a_symlink_mid_write_cannot_redirect_it() {
    // A folder already at the destination, and a new one (filled under a temp name).
    for there in [true, false] {
        let data = pattern(4 * BLOCK, 9);
        let entries = vec![Entry { path: "sub".into(), kind: EntryKind::Dir }, file_entry("sub/big.bin", &data)];
        // The sharer holds block 2 until the swap is done.
        let (release, held) = std::sync::mpsc::sync_channel::<()>(0);
        let held = Arc::new(Mutex::new(held));
        let served = data.clone();
        let sharer = FakeSharer::start(
            entries,
            Arc::new(move |f, b| {
                if b == 2 {
                    let _ = held.lock().expect("lock").recv();
                }
                serve_slice(&[Vec::new(), served.clone()], f, b)
            }),
        )
        .await;
        let parent = tempfile::tempdir().expect("tmp");
        let victim = parent.path().join("victim");
        std::fs::create_dir(&victim).expect("victim");
        let dest = parent.path().join("dest");
        if there {
            std::fs::create_dir_all(dest.join("sub")).expect("sub");
        }
        let link = sharer.link.clone();
        let d = dest.clone();
        let getter = tokio::spawn(async move { get(&link, &d, &[]).await });
        // Once the temp file is being filled, swap its directory for a symlink out.
        let filling = || {
            let dirs = std::fs::read_dir(&dest).into_iter().flatten().flatten().map(|e| e.path());
            dirs.filter(|p| p.is_dir()).find(|p| std::fs::read_dir(p).is_ok_and(|mut r| r.next().is_some()))
        };
        assert!(wait_until(|| filling().is_some()).await, "there: {there}");
        let folder = filling().expect("a folder being filled");
        assert_eq!(folder == dest.join("sub"), there, "{}", folder.display());
        std::fs::rename(&folder, dest.join("moved")).expect("move");
        std::os::unix::fs::symlink(&victim, &folder).expect("swap");
        let before = tree(&victim);
        release.send(()).expect("release");
        let run = tokio::time::timeout(STEP, getter).await.expect("get ended").expect("join");
        assert_ne!(run.code, 0, "the confined rename fails: {}", run.stderr);
        assert!(run.stderr.contains("symbolic link"), "says why: {}", run.stderr);
        assert_eq!(tree(&victim), before, "nothing escaped through the swapped-in symlink");
        assert!(tree(&victim).is_empty());
        assert_eq!(dest.join("sub").is_symlink(), there, "a swapped stage is not moved in");
    }
}

// ------------------------------------------------------------------ frames and sizes

#[tokio::test(flavor = "multi_thread")]
async fn row11_hostile_length_prefixes_are_refused_before_allocating() {
    for (what, frame) in [
        ("length 0xFFFFFFFF", vec![0xff, 0xff, 0xff, 0xff, 16]),
        ("a block frame over the cap", vec![0x10, 0, 0, 0, 19]),
        ("length zero", vec![0, 0, 0, 0, 16]),
    ] {
        let raw = RawSharer::start(frame).await;
        let d = download(&raw.link, |_| {}).await;
        assert_eq!(d.run.code, 1, "{what}: {}", d.run.stderr);
        assert!(d.run.stderr.contains("protocol violation"), "{what}: {}", d.run.stderr);
        assert_eq!(d.after, d.before, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row12_sizes_that_do_not_match_their_blocks_are_refused() {
    let data = pattern(3 * BLOCK, 4);
    let mut bigger = file_entry("lies.bin", &data);
    if let EntryKind::File(f) = &mut bigger.kind {
        f.size += 4 * BLOCK as u64;
    }
    let mut fewer = file_entry("fewer.bin", &data);
    if let EntryKind::File(f) = &mut fewer.kind {
        f.blocks.pop();
    }
    for (what, e) in [("size larger than its blocks", bigger), ("a block short", fewer)] {
        refused_whole(&hostile_manifest(vec![e]).await, what);
    }
    // Folder records: a lying size, and a deleted entry that still has blocks.
    let owner = Owner::start(&[]).await;
    let (mut records, marker) = with_marker(&[]);
    let mut lying = wire_file("lying.bin", &data, 77);
    lying.size = 10 << 30;
    let mut tomb = wire_file("mine.txt", b"x", 77);
    tomb.deleted = true;
    tomb.version.0.insert(u64::MAX, 9);
    records.extend([lying, tomb]);
    let _member = FakeMember::join(&owner.link, records, marker).await;
    assert!(owner.has("fine.txt").await);
    assert!(!owner.dir.join("lying.bin").exists(), "nothing preallocated or written");
    assert_eq!(std::fs::read(owner.dir.join("mine.txt")).expect("not deleted"), b"the owner's file");
    owner.daemon.stop().await;
}

/// A member that announces a new batch of tombstones for made-up paths at every
/// index request, forever.
struct Flood {
    sent: Mutex<u64>,
}

impl peerbox_net::sync::SyncSource for Flood {
    fn join(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        _: [u8; 32],
        _: Option<[u8; 32]>,
    ) -> Result<SyncResponse, SyncRefusal> {
        Err(SyncRefusal::NotAllowed)
    }
    fn index(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        since: u64,
    ) -> Result<(Vec<WireRecord>, u64, Vec<WireMember>), SyncRefusal> {
        let mut sent = self.sent.lock().expect("lock");
        let records: Vec<WireRecord> = (0..1000)
            .map(|i| {
                let mut r = wire_file(&format!("flood/{}", since + i), b"", 77);
                r.deleted = true;
                r.size = 0;
                r.blocks.clear();
                r.seq = since + i + 1;
                r
            })
            .collect();
        *sent += records.len() as u64;
        Ok((records, since + 1000, Vec::new()))
    }
    fn watch(&self, _: peerbox_net::PeerId, _: FolderId) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    fn block(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        _: &str,
        _: u32,
        _: BlockHash,
        _: &peerbox_net::Buffers,
    ) -> Option<Bytes> {
        None
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row13_an_endless_index_is_taken_in_bounded_batches_then_cut_off() {
    let owner = Owner::start(&[]).await;
    let outside = owner.outside();
    let flood = Arc::new(Flood { sent: Mutex::new(0) });
    let _member = FakeMember::join_with(&owner.link, flood.clone()).await;
    let st =
        wait_status(&owner.daemon, |st| st["folders"][0]["state"]["warnings"].to_string().contains("more than")).await;
    let warnings = st["folders"][0]["state"]["warnings"].to_string();
    assert!(warnings.contains("200000 changes in a minute"), "{warnings}");
    let sent = *flood.sent.lock().expect("lock");
    // Cut off at the budget, give or take the batch in flight.
    let before = sent;
    let st = owner.daemon.status().await;
    assert!(st["peer_id"].is_string(), "the daemon still answers");
    assert!(*flood.sent.lock().expect("lock") <= before + 2000, "it stopped asking");
    assert!(sent <= 200_000 + 2000, "{sent} records taken");
    assert_eq!(owner.outside(), outside);
    assert_eq!(content(&owner.dir).len(), 1, "nothing of it on disk");
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row14_garbage_truncated_and_unknown_frames_end_the_session() {
    for (what, reply) in [
        ("garbage", b"\x00\x00\x00\x05\x10garbage beyond".to_vec()),
        ("truncated", vec![0, 0, 0, 100, 16, 1, 2, 3]),
        ("unknown tag", vec![0, 0, 0, 2, 99, 0]),
        ("nothing at all", Vec::new()),
        ("a block before any file list", vec![0, 0, 0, 6, 19, 0, 0, 0, 0, 7]),
    ] {
        let raw = RawSharer::start(reply).await;
        let d = download(&raw.link, |_| {}).await;
        assert_eq!(d.run.code, 1, "{what}: {}", d.run.stderr);
        assert!(!d.run.stderr.trim().is_empty(), "{what}: says why");
        assert_eq!(d.after, d.before, "{what}");
    }
}

// ------------------------------------------------------------------ blocks and sessions

/// A member that announces `record` and serves `block` for every request: honest
/// if the file is made of identical blocks of that content, a liar otherwise.
struct Serving {
    record: WireRecord,
    block: Bytes,
    asked: Mutex<u64>,
}

impl peerbox_net::sync::SyncSource for Serving {
    fn join(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        _: [u8; 32],
        _: Option<[u8; 32]>,
    ) -> Result<SyncResponse, SyncRefusal> {
        Err(SyncRefusal::NotAllowed)
    }
    fn index(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        since: u64,
    ) -> Result<(Vec<WireRecord>, u64, Vec<WireMember>), SyncRefusal> {
        Ok((if since == 0 { vec![self.record.clone()] } else { vec![] }, 1, Vec::new()))
    }
    fn watch(&self, _: peerbox_net::PeerId, _: FolderId) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    fn block(
        &self,
        _: peerbox_net::PeerId,
        _: FolderId,
        _: &str,
        _: u32,
        _: BlockHash,
        _: &peerbox_net::Buffers,
    ) -> Option<Bytes> {
        *self.asked.lock().expect("lock") += 1;
        Some(self.block.clone())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row15_bad_blocks_are_discarded_fetched_elsewhere_and_their_sender_dropped() {
    // A file of 256 identical blocks, announced identically by two members: one
    // serves the block, the other garbage.
    let block = Bytes::from(pattern(BLOCK, 3));
    let data: Vec<u8> = std::iter::repeat_n(block.as_ref(), 256).flatten().copied().collect();
    let record = wire_file("shared.bin", &data, 77);
    let owner = Owner::start(&[]).await;
    let outside = owner.outside();
    let honest = Arc::new(Serving { record: record.clone(), block: block.clone(), asked: Mutex::new(0) });
    let liar = Arc::new(Serving { record, block: Bytes::from(vec![0u8; BLOCK]), asked: Mutex::new(0) });
    let liar_member = FakeMember::join_with(&owner.link, liar.clone()).await;
    let _honest_member = FakeMember::join_with(&owner.link, honest.clone()).await;
    assert!(owner.has("shared.bin").await, "the file arrived");
    assert_eq!(std::fs::read(owner.dir.join("shared.bin")).expect("read"), data, "only verified bytes");
    let st = owner.daemon.status().await;
    let warnings = st["folders"][0]["state"]["warnings"].to_string();
    assert!(warnings.contains(&liar_member.peer.to_string()), "the liar is named and dropped: {warnings}");
    // Its fair half would be 128 blocks; once its first block fails the check it
    // is asked nothing more, so it reads only what was already asked: one pull
    // window (32 requests), and at most a refill of half a window after it.
    let asked = *liar.asked.lock().expect("lock");
    assert!(asked <= 48, "asked the liar little: {asked}");
    assert_eq!(owner.outside(), outside);
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row16_a_peer_gone_mid_file_leaves_the_temp_file_and_the_download_resumes() {
    let data = pattern(20 * BLOCK, 6);
    let entry = file_entry("movie.bin", &data);
    let served = data.clone();
    let (release, held) = std::sync::mpsc::sync_channel::<()>(0);
    let held = Arc::new(Mutex::new(held));
    let going = FakeSharer::start(
        vec![entry.clone()],
        Arc::new(move |f, b| {
            if b >= 8 {
                let _ = held.lock().expect("lock").recv();
                return Err(peerbox_proto::blocks::MissingReason::Unreadable);
            }
            serve_slice(std::slice::from_ref(&served), f, b)
        }),
    )
    .await;
    let parent = tempfile::tempdir().expect("tmp");
    let dest = parent.path().join("dest");
    let mut getter = Getter::start(&going.link, &dest);
    // Some blocks in: the sharer goes away.
    assert!(getter.wait_bytes(4 * BLOCK as u64).await, "{}", getter.log);
    drop(going);
    drop(release);
    let (code, log) = getter.finish().await;
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("run the same command again"), "{log}");
    assert!(!dest.join("movie.bin").exists(), "no partial file under its name");
    assert!(tree(&dest).keys().any(|k| k.contains(".peerbox-tmp-")), "the temp file is kept");
    let back = FakeSharer::honest(vec![("movie.bin", data.clone())]).await;
    let again = get(&back.link, &dest, &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let j = again.json();
    assert!(j["resumed_bytes"].as_u64().expect("resumed") > 0, "{j}");
    assert!(j["fetched_bytes"].as_u64().expect("fetched") < data.len() as u64, "{j}");
    assert_eq!(file_hash(&dest.join("movie.bin")), hash_of(&data));
}

#[tokio::test(flavor = "multi_thread")]
async fn row17_a_stranger_learns_nothing_about_what_exists() {
    let owner = Owner::start(&[]).await;
    let link = peerbox_proto::Link::decode(&owner.link).expect("link");
    let mut real = [0u8; 16];
    real.copy_from_slice(&link.id[..16]);
    let made_up = [0x42u8; 16];
    let stranger = Stranger::near(&owner.link).await;
    type Ask = fn(FolderId) -> SyncRequest;
    let asks: [(&str, Ask); 3] = [
        ("index", |f| SyncRequest::Index { folder: f, since: 0, wait: false }),
        ("join with a wrong secret", |f| SyncRequest::Join { folder: f, secret: [1; 32], proof: None }),
        ("a block", |f| SyncRequest::Block { req: 1, folder: f, path: "mine.txt".into(), index: 0, hash: [0; 32] }),
    ];
    for (what, ask) in asks {
        let (a, b) = (stranger.ask(ask(real)).await, stranger.ask(ask(made_up)).await);
        assert_eq!(a, b, "{what}: the answer for a real folder is the answer for none");
    }
    let share = owner.root.path().join("shared.txt");
    put(&share, b"shared");
    let file_link = peerbox_proto::Link::decode(&owner.daemon.ok(&["share", s(&share)]).await).expect("link");
    let wrong_secret = stranger.open(file_link.id, [3; 32]).await;
    let made_up_id = stranger.open([0x24; 32], [3; 32]).await;
    assert_eq!(wrong_secret, made_up_id);
    assert!(wrong_secret.contains("does not recognise"), "{wrong_secret}");
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row18_revoked_expired_forged_truncated_or_garbled_links_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("a.txt");
    put(&file, b"a");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let good = d.ok(&["share", s(&file)]).await;
    let revoked = d.ok(&["share", s(&file)]).await;
    d.ok(&["revoke", &revoked]).await;
    let mut forged = peerbox_proto::Link::decode(&good).expect("link");
    forged.secret = [7; 32];
    let mut expired = forged.clone();
    expired.secret = peerbox_proto::Link::decode(&good).expect("link").secret;
    expired.expires = Some(1);
    let cases = [
        ("revoked", revoked.clone(), "revoked"),
        ("forged", forged.encode(), "revoked, or never valid"),
        ("expired", expired.encode(), "expired"),
        ("truncated", good[..good.len() - 7].to_owned(), "damaged"),
        ("garbled", tamper(&good, 20), "damaged"),
        ("not a link", "https://example.invalid/x".to_owned(), "not a Peerbox link"),
    ];
    for (what, link, says) in cases {
        let dl = download(&link, |_| {}).await;
        assert_eq!(dl.run.code, 2, "{what}: {}", dl.run.stderr);
        assert!(dl.run.stderr.contains(says), "{what}: {}", dl.run.stderr);
        assert_eq!(dl.after, dl.before, "{what}: nothing downloaded");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row19_a_read_only_members_changes_go_nowhere() {
    let owner = Owner::start(&["--read-only"]).await;
    let rw_link = owner.daemon.ok(&["folder", "link", "F"]).await;
    let outside = owner.outside();
    let data = Bytes::from_static(b"from a reader");
    let mut takeover = wire_file("mine.txt", &data, 77);
    takeover.version.0.insert(u64::MAX, 9);
    let _reader = FakeMember::join(&owner.link, vec![wire_file("from-reader.txt", &data, 77), takeover], data).await;
    // A read-write member's file is the signal that the owner has looked.
    let marker = Bytes::from_static(b"from a writer");
    let _writer = FakeMember::join(&rw_link, vec![wire_file("from-writer.txt", &marker, 78)], marker).await;
    assert!(owner.has("from-writer.txt").await);
    let _ = wait_status(&owner.daemon, |st| st["folders"][0]["state"]["state"] == "idle").await;
    assert!(!owner.dir.join("from-reader.txt").exists(), "a read-only member's file was taken");
    assert_eq!(std::fs::read(owner.dir.join("mine.txt")).expect("kept"), b"the owner's file");
    assert_eq!(owner.outside(), outside);
    owner.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row20_ten_thousand_handshakes_leave_the_daemon_working_and_bounded() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("still.bin");
    put(&file, &pattern(3 * BLOCK, 1));
    let d = Daemon::start(&tmp.path().join("home")).await;
    let link = d.ok(&["share", s(&file)]).await;
    let tcp = tcp_of(&link);
    // 10,000 connections that start a handshake with junk, 500 at a time.
    let mut opened = 0usize;
    for _ in 0..20 {
        let wave: Vec<_> = (0..500)
            .map(|i| {
                let tcp = tcp.clone();
                tokio::spawn(async move {
                    let Ok(Ok(mut c)) = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(&tcp)).await else {
                        return false;
                    };
                    let _ = c.write_all(&[0x13, b'/', b'm', b'u', b'l', b't', b'i', i as u8]).await;
                    true
                })
            })
            .collect();
        for w in wave {
            opened += w.await.expect("join") as usize;
        }
    }
    assert!(opened > 9_000, "only {opened} of 10,000 connected");
    // Still itself: the API answers, a real download works, memory is bounded.
    assert!(d.status().await["peer_id"].is_string());
    let got = get(&link, &tmp.path().join("dl"), &[]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(file_hash(&tmp.path().join("dl/still.bin")), file_hash(&file));
    let pid = d.child.id().expect("pid");
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    assert!(rss < 300 * 1024, "peak RSS {rss} kB after 10,000 handshakes");
    d.stop().await;
}
