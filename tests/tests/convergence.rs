//! Sync as a property, with three real daemons: random sequences of creates,
//! edits, renames and deletes, devices going offline (stopped, while their user
//! keeps editing: the partition a closed laptop makes), coming back, restarting,
//! and being killed mid-sync. Whatever the sequence, all members converge, no
//! file is ever partial, and every version a user wrote is still somewhere: live,
//! a conflict copy, in a version history or in the trash.
//!
//! The sequences are seeded: `PEERBOX_SYNC_SEEDS=7,8,9` replays or widens them
//! (CI runs a few), `PEERBOX_SYNC_STEPS` lengthens them. A failure names its seed
//! and the operations that led there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use peerbox_tests::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name) {
        Ok(v) => v.split(',').map(|s| s.trim().parse().expect("a number")).collect(),
        Err(_) => default.to_vec(),
    }
}

/// Where a device's files live, and its daemon when it is online. Each device
/// keeps the port it first got, so members that were offline together still find
/// each other (nothing else tells them where to look: no mDNS, no DHT here).
struct Device {
    name: &'static str,
    home: PathBuf,
    dir: PathBuf,
    port: Option<u16>,
    daemon: Option<Daemon>,
    /// Content written here while no other member could see it: a later local
    /// overwrite of it is the user's own doing, and nothing is owed for it.
    unseen: HashMap<String, String>,
}

impl Device {
    /// `name`'s device under `tmp`, its folder `tmp/NAME/FOLDER`, not started.
    fn new(tmp: &Path, name: &'static str, folder: &str) -> Self {
        Self {
            name,
            home: tmp.join(format!("home-{name}")),
            dir: tmp.join(format!("{name}/{folder}")),
            port: None,
            daemon: None,
            unseen: HashMap::new(),
        }
    }

    async fn start(&mut self) {
        self.start_env(&[]).await;
    }

    /// Like [`Self::start`], with environment variables for the daemon (a fault).
    async fn start_env(&mut self, env: &[(&str, &str)]) {
        let listen = self.port.map(|p| format!("/ip4/127.0.0.1/tcp/{p}"));
        let extra: Vec<&str> = listen.iter().flat_map(|l| ["--listen", l.as_str()]).collect();
        let d = Daemon::start_env(&self.home, &extra, env).await;
        if self.port.is_none() {
            let st = d.status().await;
            let addr = st["listen"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
                .expect("a loopback TCP address")
                .to_owned();
            self.port =
                Some(addr["/ip4/127.0.0.1/tcp/".len()..].split('/').next().and_then(|p| p.parse().ok()).expect("port"));
        }
        self.daemon = Some(d);
    }

    async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.child.start_kill().expect("kill -9");
            let _ = d.child.wait().await;
        }
    }

    /// The user's files under their own names (not Peerbox's folder, not temp
    /// files of pulls under way), by path.
    fn files(&self) -> BTreeMap<String, String> {
        content(&self.dir).into_iter().filter(|(k, h)| h != "dir" && !k.contains(".peerbox-tmp-")).collect()
    }
}

/// The random history and what it owes.
struct Run {
    seed: u64,
    rng: StdRng,
    devices: Vec<Device>,
    /// Every content a user wrote, by hash, with who wrote it when.
    written: HashMap<String, String>,
    /// The hashes that must still be found at the end.
    owed: BTreeSet<String>,
    log: Vec<String>,
    counter: u64,
}

const NAMES: [&str; 16] = [
    "a.txt",
    "b.txt",
    "c.md",
    "d.bin",
    "docs/e.txt",
    "docs/f.txt",
    "docs/g.md",
    "docs/deep/h.bin",
    "docs/deep/i.txt",
    "j.txt",
    "k.txt",
    "보고서.txt",
    "photos/l.jpg",
    "photos/m.jpg",
    "photos/n.jpg",
    "o.txt",
];

impl Run {
    fn online(&self) -> Vec<usize> {
        (0..self.devices.len()).filter(|&i| self.devices[i].daemon.is_some()).collect()
    }

    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    fn context(&self) -> String {
        format!("seed {} (replay: PEERBOX_SYNC_SEEDS={}), history:\n  {}", self.seed, self.seed, self.log.join("\n  "))
    }

    /// New, unique content: mostly small, sometimes several blocks.
    fn fresh(&mut self, who: usize) -> Vec<u8> {
        self.counter += 1;
        let mut data =
            format!("seed {} write {} on {}\n", self.seed, self.counter, self.devices[who].name).into_bytes();
        if self.rng.random_bool(0.2) {
            let extra = self.rng.random_range(100_000..700_000);
            data.extend(pattern(extra, (self.counter % 251) as u8));
        }
        data
    }

    fn write(&mut self, who: usize, rel: &str) {
        let data = self.fresh(who);
        let h = hash_of(&data);
        let path = self.devices[who].dir.join(rel);
        let old = try_file_hash(&path);
        put(&path, &data);
        self.forget_unseen(who, old.as_deref());
        self.written.insert(h.clone(), format!("{rel} on {} (#{})", self.devices[who].name, self.counter));
        self.owed.insert(h.clone());
        self.devices[who].unseen.insert(h, rel.to_owned());
    }

    /// A local overwrite or delete of content nobody else saw: not owed.
    fn forget_unseen(&mut self, who: usize, old: Option<&str>) {
        if let Some(old) = old
            && self.devices[who].unseen.remove(old).is_some()
        {
            self.owed.remove(old);
        }
    }

    /// One random thing a user does on device `who`.
    fn edit(&mut self, who: usize, deletes_left: &mut u32) {
        let files = self.devices[who].files();
        let free: Vec<&str> = NAMES.iter().copied().filter(|n| !files.contains_key(*n)).collect();
        let existing: Vec<String> = files.keys().cloned().collect();
        let roll = self.rng.random_range(0..100);
        let name = self.devices[who].name;
        if (roll < 25 || existing.is_empty()) && !free.is_empty() {
            let rel = free[self.rng.random_range(0..free.len())].to_owned();
            self.note(format!("{name}: create {rel}"));
            self.write(who, &rel);
        } else if roll < 65 && !existing.is_empty() {
            let rel = existing[self.rng.random_range(0..existing.len())].clone();
            self.note(format!("{name}: edit {rel}"));
            self.write(who, &rel);
        } else if roll < 85 && !existing.is_empty() && !free.is_empty() {
            let from = existing[self.rng.random_range(0..existing.len())].clone();
            let to = free[self.rng.random_range(0..free.len())].to_owned();
            self.note(format!("{name}: rename {from} -> {to}"));
            let dir = &self.devices[who].dir;
            std::fs::create_dir_all(dir.join(&to).parent().expect("parent")).expect("mkdir");
            std::fs::rename(dir.join(&from), dir.join(&to)).expect("rename");
            if let Some(h) = files.get(&from)
                && let Some(p) = self.devices[who].unseen.get_mut(h)
            {
                p.clone_from(&to);
            }
        } else if *deletes_left > 0 && existing.len() > 12 {
            // Few deletes at a time: many at once would (rightly) pause the folder.
            *deletes_left -= 1;
            let rel = existing[self.rng.random_range(0..existing.len())].clone();
            self.note(format!("{name}: delete {rel}"));
            std::fs::remove_file(self.devices[who].dir.join(&rel)).expect("delete");
            self.forget_unseen(who, files.get(&rel).map(String::as_str));
        } else if !existing.is_empty() {
            let rel = existing[self.rng.random_range(0..existing.len())].clone();
            self.note(format!("{name}: edit {rel}"));
            self.write(who, &rel);
        }
    }

    /// Waits until every online member holds the same files; then what any of
    /// them wrote has been seen by the others.
    async fn settle(&mut self) {
        let online = self.online();
        if online.len() < 2 {
            return;
        }
        let same = wait_until(|| {
            let first = content(&self.devices[online[0]].dir);
            online[1..].iter().all(|&i| content(&self.devices[i].dir) == first)
        })
        .await;
        assert!(same, "online members did not converge: {}\n{}", self.trees(), self.context());
        for &i in &online {
            self.devices[i].unseen.clear();
        }
    }

    /// Every path with what each device holds there (a short hash, "dir", or -),
    /// marked where they differ.
    fn trees(&self) -> String {
        let all: Vec<BTreeMap<String, String>> = self.devices.iter().map(|d| content(&d.dir)).collect();
        let paths: BTreeSet<&String> = all.iter().flat_map(|t| t.keys()).collect();
        let mut out = String::from("path: alice bob carol\n");
        for p in paths {
            let each: Vec<&str> = all.iter().map(|t| t.get(p).map_or("-", |h| &h[..h.len().min(8)])).collect();
            let mark = if each.windows(2).all(|w| w[0] == w[1]) { " " } else { "≠" };
            let who: Vec<String> =
                all.iter().map(|t| t.get(p).and_then(|h| self.written.get(h)).cloned().unwrap_or_default()).collect();
            out.push_str(&format!("{mark} {p}: {} {who:?}\n", each.join(" ")));
        }
        out
    }

    /// No file under its final name is anything but some version a user wrote.
    fn check_no_partial_files(&self) {
        for d in &self.devices {
            for (rel, h) in d.files() {
                assert!(
                    self.written.contains_key(&h),
                    "{}: {rel} holds bytes nobody wrote\n{}",
                    d.name,
                    self.context()
                );
            }
        }
    }
}

async fn history(seed: u64, steps: usize) {
    let tmp = tempfile::tempdir().expect("tmp");
    let devices = ["alice", "bob", "carol"].into_iter().map(|name| Device::new(tmp.path(), name, "Team")).collect();
    let mut run = Run {
        seed,
        rng: StdRng::seed_from_u64(seed),
        devices,
        written: HashMap::new(),
        owed: BTreeSet::new(),
        log: Vec::new(),
        counter: 0,
    };
    for rel in &NAMES[..13] {
        run.write(0, rel);
    }
    for d in &mut run.devices {
        d.start().await;
    }
    let a_dir = run.devices[0].dir.to_str().expect("utf8").to_owned();
    let alice = run.devices[0].daemon.as_ref().expect("alice");
    alice.ok(&["folder", "add", &a_dir, "--name", "Team"]).await;
    let link = alice.ok(&["folder", "link", "Team"]).await;
    for i in 1..3 {
        let dir = run.devices[i].dir.to_str().expect("utf8").to_owned();
        run.devices[i].daemon.as_ref().expect("online").ok(&["folder", "join", &link, &dir]).await;
    }
    run.settle().await;

    let mut deletes_left = [3u32; 3];
    for _ in 0..steps {
        let who = run.rng.random_range(0..3);
        let online = run.devices[who].daemon.is_some();
        let roll = run.rng.random_range(0..100);
        let name = run.devices[who].name;
        if online && roll < 12 {
            run.note(format!("{name}: goes offline"));
            run.devices[who].stop().await;
        } else if online && roll < 20 {
            // Someone edits, and this device is killed in the middle of passing it
            // on (or of taking it in), then comes back.
            let online = run.online();
            let editor = online[run.rng.random_range(0..online.len())];
            run.edit(editor, &mut deletes_left[editor]);
            run.note(format!("{name}: killed (kill -9) at once, and restarted"));
            run.devices[who].kill().await;
            run.check_no_partial_files();
            run.devices[who].start().await;
            run.settle().await;
        } else if !online && roll < 35 {
            run.note(format!("{name}: comes back"));
            deletes_left[who] = 3;
            run.devices[who].start().await;
            run.settle().await;
        } else {
            run.edit(who, &mut deletes_left[who]);
            if online {
                run.settle().await;
            }
        }
        run.check_no_partial_files();
    }

    // Everyone comes back; the group must end identical.
    for i in 0..3 {
        if run.devices[i].daemon.is_none() {
            run.note(format!("{}: comes back at the end", run.devices[i].name));
            run.devices[i].start().await;
        }
    }
    run.settle().await;
    for d in &run.devices {
        let daemon = d.daemon.as_ref().expect("online");
        let st = wait_status(daemon, |st| st["folders"][0]["need_files"] == 0).await;
        assert_eq!(st["folders"][0]["need_files"], 0, "{}: {st}\n{}", d.name, run.context());
    }
    run.settle().await;
    run.check_no_partial_files();

    // Every owed version is somewhere on some member: live (perhaps as a conflict
    // copy), among the versions kept, or in the trash.
    let mut everywhere: BTreeSet<String> = BTreeSet::new();
    for d in &run.devices {
        everywhere.extend(tree(&d.dir).into_values());
        assert!(
            !tree(&d.dir).keys().any(|k| k.contains(".peerbox-tmp-")),
            "{}: a temp file left after the group settled: {:?}\n{}",
            d.name,
            tree(&d.dir).keys().filter(|k| k.contains(".peerbox-tmp-")).collect::<Vec<_>>(),
            run.context()
        );
    }
    let lost: Vec<&String> = run.owed.iter().filter(|h| !everywhere.contains(*h)).map(|h| &run.written[h]).collect();
    assert!(lost.is_empty(), "versions lost: {lost:?}\n{}\n{}", run.trees(), run.context());
    eprintln!(
        "seed {seed}: {} steps, {} versions written, {} owed, all found; {} files each",
        steps,
        run.written.len(),
        run.owed.len(),
        run.devices[0].files().len()
    );
    for d in &mut run.devices {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_histories_across_three_devices_converge_and_lose_no_version() {
    let steps = env_list("PEERBOX_SYNC_STEPS", &[40])[0] as usize;
    // Seed 5 kills a device mid-pull of a version that is replaced before it comes
    // back: it left a temp file behind for good until stale ones were removed.
    for seed in env_list("PEERBOX_SYNC_SEEDS", &[1, 2, 3, 5]) {
        history(seed, steps).await;
    }
}

/// Files under `dir` by kind, without reading them (cheap enough to poll while
/// a sync runs): (whole files under their names, temp files).
fn count_files(dir: &Path) -> (usize, usize) {
    let (mut whole, mut temp) = (0, 0);
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match e.file_type() {
                Ok(t) if t.is_dir() && name != ".peerbox" => todo.push(e.path()),
                Ok(t) if t.is_file() && name.starts_with(".peerbox-tmp-") => temp += 1,
                Ok(t) if t.is_file() => whole += 1,
                _ => {}
            }
        }
    }
    (whole, temp)
}

fn temp_files(dir: &Path) -> usize {
    count_files(dir).1
}

/// A large first sync, with either device (or both) killed with `kill -9` again
/// and again at random points: mid-file, between files, mid-scan. After each kill
/// no file is partial under its own name; while the receiver is down, the sender
/// edits files the receiver already had. In the end both trees are equal by hash,
/// no temp file is left, no conflict copy was made (nobody edited concurrently),
/// and every replaced version is in the receiver's history.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_sync_killed_again_and_again_ends_whole_with_every_version() {
    const FILES: u32 = 400;
    let seed = env_list("PEERBOX_CRASH_SEED", &[11])[0];
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut a, mut b) = (Device::new(tmp.path(), "alice", "Big"), Device::new(tmp.path(), "bob", "Big"));
    // 400 files, about 220 MiB: small ones, some of several blocks, some large.
    for i in 0..FILES {
        let len = match i % 32 {
            0 => 8 << 20,
            1..=4 => rng.random_range(1 << 20..3 << 20),
            _ => rng.random_range(1_000..64_000),
        };
        put(&a.dir.join(format!("set{}/file{i:03}.bin", i % 7)), &pattern(len, (i % 251) as u8));
    }
    a.start().await;
    b.start().await;
    let a_path = a.dir.to_str().expect("utf8").to_owned();
    let alice = a.daemon.as_ref().expect("alice");
    alice.ok(&["folder", "add", &a_path, "--name", "Big"]).await;
    let link = alice.ok(&["folder", "link", "Big"]).await;
    let b_path = b.dir.to_str().expect("utf8").to_owned();
    b.daemon.as_ref().expect("bob").ok(&["folder", "join", &link, &b_path]).await;

    // Every version Alice's files have had: what Bob may hold under each name.
    let mut versions: HashMap<String, BTreeSet<String>> =
        a.files().into_iter().map(|(rel, h)| (rel, BTreeSet::from([h]))).collect();
    let mut owed: Vec<(String, String)> = Vec::new();
    let mut log = Vec::new();
    let mut edits = 0u32;
    for round in 0..8 {
        let done = count_files(&b.dir).0;
        let goal = (done + rng.random_range(1..60)).min(FILES as usize);
        // Kill at a random point: once Bob holds `goal` files, or is mid-file.
        let mid_file = rng.random_bool(0.4);
        // Files arrive as temp files first, put in place by the batch.
        let reached = wait_until(|| {
            let (whole, temp) = count_files(&b.dir);
            whole + temp >= goal || (mid_file && temp > 0) || whole == FILES as usize
        })
        .await;
        let expected = a.files();
        if !reached || b.files() == expected {
            log.push(format!("round {round}: sync finished before the kill"));
            break;
        }
        let which = rng.random_range(0..10);
        let victim = match which {
            1 => "alice",
            2 => "both",
            _ => "bob",
        };
        log.push(format!("round {round}: kill {victim} with {} files", b.files().len()));
        if which != 1 {
            b.kill().await;
        }
        if which == 1 || which == 2 {
            a.kill().await;
        }
        for (rel, h) in b.files() {
            assert!(
                versions.get(&rel).is_some_and(|v| v.contains(&h)),
                "a partial or wrong {rel} after a kill (seed {seed}): {log:?}"
            );
        }
        if b.daemon.is_none() {
            // While Bob is down, Alice replaces a file he already had.
            let had = b.files();
            if let Some((rel, old)) = had.iter().nth(rng.random_range(0..had.len().max(1))) {
                edits += 1;
                let data = format!("edit {edits} of {rel} while bob was down");
                put(&a.dir.join(rel), data.as_bytes());
                versions.entry(rel.clone()).or_default().insert(hash_of(data.as_bytes()));
                owed.push((rel.clone(), old.clone()));
            }
        }
        if a.daemon.is_none() {
            a.start().await;
        }
        if b.daemon.is_none() {
            b.start().await;
        }
    }

    let whole = wait_until(|| content(&b.dir) == content(&a.dir) && temp_files(&b.dir) == 0).await;
    assert!(whole, "not equal after the kills (seed {seed}): {log:?}");
    let st = wait_status(b.daemon.as_ref().expect("bob"), |st| st["folders"][0]["need_files"] == 0).await;
    assert_eq!(st["folders"][0]["need_files"], 0, "{st}");
    assert_eq!(content(&b.dir), content(&a.dir), "both trees equal by hash (seed {seed}): {log:?}");
    assert_eq!(a.files().len(), FILES as usize, "the sender lost nothing, and no conflict copy (seed {seed}): {log:?}");
    let kept: BTreeSet<String> = tree(&b.dir).into_values().collect();
    for (rel, old) in &owed {
        assert!(kept.contains(old), "the version of {rel} bob had before alice's edit is gone (seed {seed}): {log:?}");
    }
    eprintln!("seed {seed}: {log:?}; {} replaced versions kept", owed.len());
    a.stop().await;
    b.stop().await;
}

/// Alice and Bob running, Bob joined to Alice's folder "Team" that holds one file
/// `name`, and both in sync.
async fn synced_pair(tmp: &Path, name: &str, content: &[u8]) -> (Device, Device) {
    let (mut a, mut b) = (Device::new(tmp, "alice", "Team"), Device::new(tmp, "bob", "Team"));
    put(&a.dir.join(name), content);
    a.start().await;
    b.start().await;
    let alice = a.daemon.as_ref().expect("alice");
    alice.ok(&["folder", "add", a.dir.to_str().expect("utf8"), "--name", "Team"]).await;
    let link = alice.ok(&["folder", "link", "Team"]).await;
    b.daemon.as_ref().expect("bob").ok(&["folder", "join", &link, b.dir.to_str().expect("utf8")]).await;
    assert!(wait_until(|| b.files() == a.files()).await, "the first sync");
    (a, b)
}

/// The instant the pull journal is for: Bob has put Alice's version of a file in
/// place but not yet recorded it when he dies, and by then he has heard of her
/// next version. Restarted, he must take the file on disk for her version, not
/// for an edit of his own that conflicts with her next one.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_after_a_pull_is_in_place_but_not_recorded_makes_no_conflict() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut a, mut b) = synced_pair(tmp.path(), "notes.txt", b"first").await;

    // From now on Bob's pulls stop between the rename and the index commit.
    b.stop().await;
    b.start_env(&[("PEERBOX_FAULT", "stall-before-commit")]).await;
    let (second, third) = (b"the second version".as_slice(), b"the third version, longer".as_slice());
    put(&a.dir.join("notes.txt"), second);
    let in_place = wait_until(|| try_file_hash(&b.dir.join("notes.txt")) == Some(hash_of(second))).await;
    assert!(in_place, "bob put the second version in place");
    put(&a.dir.join("notes.txt"), third);
    let db = b.home.join("index.sqlite");
    let heard = wait_until(|| announced_size(&db, "notes.txt") == Some(third.len() as u64)).await;
    assert!(heard, "bob heard of the third version");
    b.kill().await;

    b.start().await;
    let same = wait_until(|| b.files() == a.files()).await;
    assert!(same, "equal again: alice {:?}, bob {:?}", a.files(), b.files());
    assert_eq!(b.files().get("notes.txt"), Some(&hash_of(third)), "the newest version won");
    assert_eq!(b.files().len(), 1, "no conflict copy: {:?}", b.files());
    assert_eq!(a.files().len(), 1, "no conflict copy: {:?}", a.files());
    let kept: BTreeSet<String> = tree(&b.dir).into_values().collect();
    assert!(kept.contains(&hash_of(second)), "bob's second version is in his history");
    a.stop().await;
    b.stop().await;
}

/// THREATS.md, "local edit lands just before a remote update": Bob saves the file
/// in the instant between his daemon fetching Alice's new version and putting it
/// in place. His save must not be overwritten: both versions stay, one live and
/// one a conflict copy, on both devices.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_edit_just_before_a_remote_update_is_kept_as_a_conflict_not_overwritten() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut a, mut b) = synced_pair(tmp.path(), "plan.txt", b"first draft").await;

    // Bob's next pull waits, its file fetched and verified, until the test lets go.
    let gate = tmp.path().join("gate");
    b.stop().await;
    let gate_env = gate.to_str().expect("utf8").to_owned();
    b.start_env(&[("PEERBOX_FAULT", "pause-before-place"), ("PEERBOX_FAULT_GATE", &gate_env)]).await;
    let (hers, his) = (b"alice's second draft".as_slice(), b"bob's own edit, saved just then".as_slice());
    put(&a.dir.join("plan.txt"), hers);
    let reached = tmp.path().join("gate.reached");
    assert!(wait_until(|| reached.exists()).await, "bob's pull reached the instant before it puts the file in place");
    put(&b.dir.join("plan.txt"), his);
    put(&gate, b"");

    let both = [hash_of(hers), hash_of(his)].into_iter().collect::<BTreeSet<_>>();
    let settled = || {
        let (fa, fb) = (a.files(), b.files());
        fa == fb && fb.len() == 2 && fb.values().cloned().collect::<BTreeSet<_>>() == both
    };
    assert!(wait_until(settled).await, "both versions kept on both: alice {:?}, bob {:?}", a.files(), b.files());
    let names: Vec<String> = b.files().into_keys().collect();
    assert!(names.iter().any(|n| n == "plan.txt"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("plan.sync-conflict-") && n.ends_with(".txt")), "{names:?}");
    a.stop().await;
    b.stop().await;
}

/// The size a member last announced for `path`, as the daemon at `db` recorded it
/// (read from its SQLite file, as a user's `sqlite3` would).
fn announced_size(db: &Path, path: &str) -> Option<u64> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT size FROM remote_files WHERE path = ?1", [path], |r| r.get::<_, i64>(0))
        .ok()
        .map(|s| s as u64)
}
