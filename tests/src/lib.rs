//! Helpers for Peerbox's end-to-end tests: run the real `peerbox` binary as sharer
//! and downloader on loopback, compare trees by hash, and a fake peer that speaks
//! the block protocol and misbehaves on purpose.

#![allow(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerbox_net::blocks::{BlockSource, ShareReader};
use peerbox_net::{Config, Keypair, Network, PeerId};
use peerbox_proto::blocks::{MissingReason, PROTOCOL, Refusal};
use peerbox_proto::manifest::{Entry, EntryKind, FileMeta, block_size_for, content_id};
use peerbox_proto::{Link, LinkKind};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long any single step of a test may take before it counts as hung.
pub const STEP: Duration = Duration::from_secs(60);

/// The `peerbox` binary under test: `PEERBOX_BIN` (to test an installed build),
/// else the CLI entry point cargo built for this package from current sources.
pub fn peerbox_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PEERBOX_BIN") {
        return p.into();
    }
    // Cargo builds a package's binaries into target/<profile>/ before running its
    // integration tests, which live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(format!("peerbox-under-test{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing; run through `cargo test`", bin.display());
    bin
}

/// A `peerbox` command with its own home, on loopback, without mDNS.
pub fn peerbox(home: &Path) -> Command {
    let mut c = Command::new(peerbox_bin());
    c.arg("--home").arg(home).kill_on_drop(true);
    c.env_remove("PEERBOX_HOME").env_remove("RUST_LOG");
    // PEERBOX_TEST_LOG=debug shows the processes' logs when a test needs debugging.
    if let Some(level) = std::env::var_os("PEERBOX_TEST_LOG") {
        c.env("RUST_LOG", level);
    }
    c
}

const LOOPBACK: [&str; 4] = ["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--listen=/ip4/127.0.0.1/udp/0/quic-v1"];

/// A running `peerbox share`.
pub struct Sharer {
    pub child: Child,
    pub link: String,
    pub home: tempfile::TempDir,
}

impl Sharer {
    /// Starts sharing `paths` and waits for the link line.
    pub async fn start(paths: &[&Path], extra: &[&str]) -> Self {
        let home = tempfile::tempdir().expect("home");
        let mut cmd = peerbox(home.path());
        cmd.arg("share").args(LOOPBACK).args(extra).args(paths);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn peerbox share");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let link = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("share printed no link in time")
            .expect("read stdout")
            .expect("share exited before printing a link");
        // Keep draining so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, link, home }
    }
}

/// The result of a `peerbox get`.
#[derive(Debug)]
pub struct GetRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl GetRun {
    /// The `--json` summary.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.stdout))
    }
}

/// Runs `peerbox get --json LINK DEST` with a fresh home and waits for it.
pub async fn get(link: &str, dest: &Path, extra: &[&str]) -> GetRun {
    get_run(link, dest, extra, None).await
}

/// Like [`get`], under an open-file limit of `n` (soft and hard).
#[cfg(target_os = "linux")]
pub async fn get_with_open_files(link: &str, dest: &Path, n: u32) -> GetRun {
    get_run(link, dest, &[], Some(n)).await
}

async fn get_run(link: &str, dest: &Path, extra: &[&str], open_files: Option<u32>) -> GetRun {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = peerbox(home.path());
    cmd.arg("get").args(LOOPBACK).arg("--json").args(extra).arg(link).arg(dest);
    if let Some(n) = open_files {
        cmd = with_open_files(cmd, n);
    }
    let out = tokio::time::timeout(STEP, cmd.output()).await.expect("get hung").expect("spawn get");
    GetRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `inner` run under an open-file limit of `n`, soft and hard (so it cannot be
/// raised), through util-linux `prlimit`.
fn with_open_files(inner: Command, n: u32) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={n}:{n}")).arg("--").arg(inner.as_std().get_program());
    cmd.args(inner.as_std().get_args()).kill_on_drop(true);
    for (k, v) in inner.as_std().get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// Every file (with its SHA-256) and directory under `root`, by relative path.
/// Symlinks are listed as such, never followed.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.expect("dir entry");
        let p = e.path();
        let rel = p.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let ft = e.file_type().expect("file type");
        if ft.is_symlink() {
            out.insert(
                rel,
                format!("symlink -> {}", std::fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default()),
            );
        } else if ft.is_dir() {
            out.insert(rel.clone(), "dir".into());
            walk(root, &p, out);
        } else if let Some(h) = try_file_hash(&p) {
            // A file that vanished while we looked (sync in progress) is left out.
            out.insert(rel, h);
        }
    }
}

/// SHA-256 of a file, streamed.
pub fn file_hash(p: &Path) -> String {
    try_file_hash(p).unwrap_or_else(|| panic!("cannot read {}", p.display()))
}

/// SHA-256 of a file, streamed; `None` if it cannot be read (gone, say).
pub fn try_file_hash(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(hex::encode(h.finalize()))
}

/// SHA-256 of bytes, as [`tree`] and [`file_hash`] give it for a file.
pub fn hash_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic, incompressible-looking bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u64;
    while out.len() < len {
        let h = Sha256::digest([&[seed][..], &counter.to_le_bytes()].concat());
        out.extend_from_slice(&h[..(len - out.len()).min(32)]);
        counter += 1;
    }
    out
}

/// A manifest file entry describing `data` (what an honest sharer would send).
pub fn file_entry(path: &str, data: &[u8]) -> Entry {
    let bs = block_size_for(data.len() as u64);
    Entry {
        path: path.into(),
        kind: EntryKind::File(FileMeta {
            size: data.len() as u64,
            mtime_ns: 1_700_000_000_000_000_000,
            executable: false,
            block_size: bs,
            blocks: data.chunks(bs as usize).map(|c| Sha256::digest(c).into()).collect(),
        }),
    }
}

/// How the fake sharer answers a block request: given (file, block), the bytes
/// it sends, or a refusal. May block (runs on a blocking thread).
pub type Answer = dyn Fn(u32, u32) -> Result<Bytes, MissingReason> + Send + Sync;

/// A peer that passed the handshake and speaks `/peerbox/blocks/1`, serving any
/// manifest — valid or hostile — and answering blocks however the test says.
pub struct FakeSharer {
    pub link: String,
    pub peer: PeerId,
    _net: Network,
}

struct FakeSource {
    entries: Vec<Entry>,
    secret: [u8; 32],
    answer: Arc<Answer>,
}

struct FakeReader {
    entries: Vec<Entry>,
    answer: Arc<Answer>,
}

impl BlockSource for FakeSource {
    fn open(
        &self,
        _: PeerId,
        id: [u8; 32],
        secret: [u8; 32],
        _: Option<[u8; 32]>,
    ) -> Result<Arc<dyn ShareReader>, Refusal> {
        if secret != self.secret || id != content_id(&self.entries) {
            return Err(Refusal::Unknown);
        }
        Ok(Arc::new(FakeReader { entries: self.entries.clone(), answer: self.answer.clone() }))
    }
}

impl ShareReader for FakeReader {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }
    fn read_block(&self, file: u32, block: u32, _: &peerbox_net::Buffers) -> Result<Bytes, MissingReason> {
        (self.answer)(file, block)
    }
}

/// A network of a fresh identity on loopback, as every fake peer uses.
pub async fn fake_network() -> Network {
    network_as(Keypair::generate_ed25519()).await
}

/// A network on loopback with the identity `keypair` (several may share one).
pub async fn network_as(keypair: Keypair) -> Network {
    let (net, mut events) = Network::start(Config {
        keypair,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        mdns: false,
        bootstrap: Vec::new(),
        relay_server: false,
        reachable: false,
        dht: Default::default(),
        private_is_public: false,
    })
    .await
    .expect("fake network");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    net
}

impl FakeSharer {
    /// Starts a fake sharer of `entries` on loopback; `answer` serves blocks.
    pub async fn start(entries: Vec<Entry>, answer: Arc<Answer>) -> Self {
        let net = fake_network().await;
        let secret = [42u8; 32];
        let id = content_id(&entries);
        let incoming = net.accept(PROTOCOL).expect("accept");
        tokio::spawn(peerbox_net::blocks::serve(incoming, Arc::new(FakeSource { entries, secret, answer })));
        let addrs = net.listen_addrs().await.expect("addrs");
        let link = Link {
            kind: LinkKind::Files,
            id,
            peer: net.peer_id().to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            secret,
            read_only: true,
            expires: None,
            password: false,
            sole_source: false,
        };
        Self { link: link.encode(), peer: net.peer_id(), _net: net }
    }

    /// Serves `files` (path, bytes) honestly.
    pub async fn honest(files: Vec<(&str, Vec<u8>)>) -> Self {
        let entries = files.iter().map(|(p, d)| file_entry(p, d)).collect();
        let data: Vec<Vec<u8>> = files.into_iter().map(|(_, d)| d).collect();
        Self::start(entries, Arc::new(move |f, b| serve_slice(&data, f, b))).await
    }
}

/// Honest answer for block `b` of file `f` from in-memory contents.
pub fn serve_slice(data: &[Vec<u8>], f: u32, b: u32) -> Result<Bytes, MissingReason> {
    let d = data.get(f as usize).ok_or(MissingReason::OutOfRange)?;
    let bs = block_size_for(d.len() as u64) as usize;
    let start = b as usize * bs;
    d.get(start..(start + bs).min(d.len())).map(Bytes::copy_from_slice).ok_or(MissingReason::OutOfRange)
}

/// `link` with its addresses replaced by `addrs`: what a getter holds when the
/// sharer moved since making it.
pub fn relink(link: &str, addrs: &[&str]) -> String {
    let mut l = peerbox_proto::Link::decode(link).expect("a valid link");
    l.addrs = addrs.iter().map(|a| a.parse::<peerbox_net::Multiaddr>().expect("multiaddr").to_vec()).collect();
    l.encode()
}

/// The addresses a link carries.
pub fn link_addrs(link: &str) -> Vec<String> {
    let l = peerbox_proto::Link::decode(link).expect("a valid link");
    l.addrs.iter().filter_map(|a| peerbox_net::Multiaddr::try_from(a.clone()).ok()).map(|a| a.to_string()).collect()
}

/// The `host:port` of a link's first TCP address.
pub fn tcp_of(link: &str) -> String {
    link_addrs(link)
        .into_iter()
        .find_map(|a| {
            let parts: Vec<&str> = a.split('/').collect();
            (parts.get(3) == Some(&"tcp")).then(|| format!("{}:{}", parts[2], parts[4]))
        })
        .expect("a TCP address")
}

/// Changes one character of a link's payload (keeping it base58), as a typo would.
pub fn tamper(link: &str, at: usize) -> String {
    let mut chars: Vec<char> = link.chars().collect();
    let i = "peerbox://".len() + at;
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}

/// A running `peerbox daemon` with its own home, on loopback.
pub struct Daemon {
    pub child: Child,
    pub home: PathBuf,
}

impl Daemon {
    /// Starts a daemon for `home` and waits until its API is up.
    pub async fn start(home: &Path) -> Self {
        Self::start_with(home, &[]).await
    }

    /// Like [`Self::start`], with more daemon arguments (`--relay`, `--bootstrap A`…).
    pub async fn start_with(home: &Path, extra: &[&str]) -> Self {
        Self::start_env(home, extra, &[]).await
    }

    /// Like [`Self::start_with`], with environment variables for the daemon (a
    /// faked clock, say).
    pub async fn start_env(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = peerbox(home);
        cmd.envs(env.iter().copied());
        Self::spawn(cmd, home, extra).await
    }

    /// Like [`Self::start`], under an open-file limit of `n` (soft and hard, so
    /// the daemon cannot raise it), through util-linux `prlimit`.
    #[cfg(target_os = "linux")]
    pub async fn start_with_open_files(home: &Path, n: u32) -> Self {
        Self::spawn(with_open_files(peerbox(home), n), home, &[]).await
    }

    async fn spawn(mut cmd: Command, home: &Path, extra: &[&str]) -> Self {
        cmd.args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"]).args(extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn daemon");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("daemon did not start in time")
            .expect("read")
            .expect("daemon exited");
        assert!(first.starts_with("api http://127.0.0.1:"), "{first}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, home: home.to_owned() }
    }

    /// Runs `peerbox --home HOME ARGS...` against this daemon.
    pub async fn cli(&self, args: &[&str]) -> GetRun {
        let out = tokio::time::timeout(STEP, peerbox(&self.home).args(args).output())
            .await
            .expect("cli hung")
            .expect("spawn cli");
        GetRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Like [`Self::cli`], but the command must succeed; returns stdout trimmed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let r = self.cli(args).await;
        assert_eq!(r.code, 0, "peerbox {args:?} failed: {}", r.stderr);
        r.stdout.trim().to_owned()
    }

    /// `status --json`.
    pub async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"]).await).expect("status JSON")
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        let _ = tokio::time::timeout(STEP, self.child.wait()).await;
    }
}

/// Polls `status --json` until `cond` holds on it (or the step limit passes);
/// returns the last status, so a test asserts with what it saw.
pub async fn wait_status(d: &Daemon, mut cond: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let s = d.status().await;
        if cond(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `cond` holds, checking every 20 ms, for at most `STEP`. Returns
/// whether it held — so a test can assert with its own message.
pub async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + STEP;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        if cond() {
            return true;
        }
    }
    cond()
}

/// Waits until the async `cond` holds, polling every 100 ms, for at most `STEP`.
pub async fn wait_until_async<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Like [`tree`], without Peerbox's marker folder.
pub fn content(root: &Path) -> BTreeMap<String, String> {
    tree(root).into_iter().filter(|(k, _)| !k.starts_with(".peerbox")).collect()
}

/// A folder member that passed the handshake and joined with a valid link, then
/// announces whatever records the test gives it and serves `block_data` for every
/// block request.
pub struct FakeMember {
    pub peer: PeerId,
    _net: Network,
}

struct FakeIndex {
    records: Vec<peerbox_proto::index::WireRecord>,
    block_data: Bytes,
}

impl peerbox_net::sync::SyncSource for FakeIndex {
    fn join(
        &self,
        _: PeerId,
        _: peerbox_proto::index::FolderId,
        _: [u8; 32],
        _: Option<[u8; 32]>,
    ) -> Result<peerbox_proto::index::SyncResponse, peerbox_proto::index::SyncRefusal> {
        Err(peerbox_proto::index::SyncRefusal::NotAllowed)
    }
    fn index(
        &self,
        _: PeerId,
        _: peerbox_proto::index::FolderId,
        since: u64,
    ) -> Result<
        (Vec<peerbox_proto::index::WireRecord>, u64, Vec<peerbox_proto::index::WireMember>),
        peerbox_proto::index::SyncRefusal,
    > {
        let records = if since == 0 { self.records.clone() } else { Vec::new() };
        Ok((records, 1, Vec::new()))
    }
    fn watch(&self, _: PeerId, _: peerbox_proto::index::FolderId) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    fn block(
        &self,
        _: PeerId,
        _: peerbox_proto::index::FolderId,
        _: &str,
        _: u32,
        _: [u8; 32],
        _: &peerbox_net::Buffers,
    ) -> Option<Bytes> {
        Some(self.block_data.clone())
    }
}

impl FakeMember {
    /// Joins the folder behind `link` (a real daemon's folder link) and starts
    /// announcing `records`.
    pub async fn join(link: &str, records: Vec<peerbox_proto::index::WireRecord>, block_data: Bytes) -> Self {
        let net = fake_network().await;
        let incoming = net.accept(peerbox_proto::index::PROTOCOL).expect("accept");
        tokio::spawn(peerbox_net::sync::serve(incoming, Arc::new(FakeIndex { records, block_data })));
        let link = Link::decode(link).expect("link");
        let owner = PeerId::from_bytes(&link.peer).expect("peer");
        let addrs = link.addrs.iter().filter_map(|a| peerbox_net::Multiaddr::try_from(a.clone()).ok()).collect();
        net.dial(owner, addrs).await.expect("dial owner");
        let mut stream = net.open_stream(owner, peerbox_proto::index::PROTOCOL).await.expect("stream");
        let mut folder = [0u8; 16];
        folder.copy_from_slice(&link.id[..16]);
        let answer = peerbox_net::sync::request(
            &mut stream,
            peerbox_proto::index::SyncRequest::Join { folder, secret: link.secret, proof: None },
            STEP,
        )
        .await
        .expect("join");
        assert!(matches!(answer, peerbox_proto::index::SyncResponse::Joined { pending: false, .. }), "{answer:?}");
        Self { peer: net.peer_id(), _net: net }
    }
}

/// A record as an honest member would announce a file with `data`.
pub fn wire_file(path: &str, data: &[u8], device: u64) -> peerbox_proto::index::WireRecord {
    let EntryKind::File(meta) = file_entry(path, data).kind else { unreachable!("file entry") };
    let mut version = peerbox_proto::index::Version::default();
    version.0.insert(device, 1);
    peerbox_proto::index::WireRecord {
        path: path.into(),
        dir: false,
        deleted: false,
        size: meta.size,
        mtime_ns: meta.mtime_ns,
        executable: false,
        block_size: meta.block_size,
        blocks: meta.blocks,
        version,
        seq: 1,
        modified_by: device,
        have: true,
    }
}

/// What the owner of `link` answers a device that holds it and tries to use it
/// for something else: open it as a file share, join it as a folder, and ask for
/// the folder's index.
pub struct Misuse {
    pub as_share: Result<(), String>,
    pub as_folder: Result<(), String>,
    pub index: Result<usize, String>,
}

/// Tries every reading use of `link` against its owner, from a fresh identity.
pub async fn misuse(link: &str) -> Misuse {
    let net = fake_network().await;
    let link = Link::decode(link).expect("link");
    let owner = PeerId::from_bytes(&link.peer).expect("peer");
    let addrs = link.addrs.iter().filter_map(|a| peerbox_net::Multiaddr::try_from(a.clone()).ok()).collect();
    net.dial(owner, addrs).await.expect("dial owner");
    let stream = net.open_stream(owner, PROTOCOL).await.expect("blocks stream");
    let as_share = peerbox_net::blocks::open_share(stream, link.id, link.secret, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let mut folder = [0u8; 16];
    folder.copy_from_slice(&link.id[..16]);
    let mut stream = net.open_stream(owner, peerbox_proto::index::PROTOCOL).await.expect("sync stream");
    let join = peerbox_net::sync::request(
        &mut stream,
        peerbox_proto::index::SyncRequest::Join { folder, secret: link.secret, proof: None },
        STEP,
    )
    .await;
    let as_folder = match join {
        Ok(peerbox_proto::index::SyncResponse::Joined { .. }) => Ok(()),
        other => Err(format!("{other:?}")),
    };
    let index = peerbox_net::sync::request(
        &mut stream,
        peerbox_proto::index::SyncRequest::Index { folder, since: 0, wait: false },
        STEP,
    )
    .await;
    let index = match index {
        Ok(peerbox_proto::index::SyncResponse::Index { records, .. }) => Ok(records.len()),
        other => Err(format!("{other:?}")),
    };
    Misuse { as_share, as_folder, index }
}

/// Writes `data` to `p`, making its parent folders.
pub fn put(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// Two daemons sharing folder "Team": A made it under `tmp/alice/Team` with
/// `files`, B joined it read-write at `tmp/bob/Team`; returns once both hold the
/// same files.
pub async fn folder_pair(tmp: &Path, files: &[(&str, &[u8])]) -> (Daemon, Daemon, PathBuf, PathBuf) {
    let (a_dir, b_dir) = (tmp.join("alice/Team"), tmp.join("bob/Team"));
    for (p, d) in files {
        put(&a_dir.join(p), d);
    }
    let (a, b) = join_team(tmp, &a_dir, &b_dir).await;
    assert!(wait_until(|| content(&b_dir) == content(&a_dir)).await, "initial sync");
    (a, b, a_dir, b_dir)
}

/// Two daemons (homes under `tmp`): A adds `a_dir` as folder "Team", B joins it
/// read-write at `b_dir`. Returns at once, without waiting for the first sync.
pub async fn join_team(tmp: &Path, a_dir: &Path, b_dir: &Path) -> (Daemon, Daemon) {
    let a = Daemon::start(&tmp.join("home-a")).await;
    let b = Daemon::start(&tmp.join("home-b")).await;
    let path = |p: &Path| p.to_str().expect("utf8 path").to_owned();
    a.ok(&["folder", "add", &path(a_dir), "--name", "Team"]).await;
    let link = a.ok(&["folder", "link", "Team"]).await;
    b.ok(&["folder", "join", &link, &path(b_dir)]).await;
    (a, b)
}

/// A sharer that answers a download's first frame with whatever bytes the test
/// gives (hostile lengths, garbage, a truncated frame), then closes: for the
/// frame-level rows of THREATS.md. Its link names any content id.
pub struct RawSharer {
    pub link: String,
    _net: Network,
}

impl RawSharer {
    pub async fn start(reply: Vec<u8>) -> Self {
        use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
        let net = fake_network().await;
        let mut incoming = net.accept(PROTOCOL).expect("accept");
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 5];
                    if stream.read_exact(&mut first).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
                    let mut rest = vec![0u8; len.saturating_sub(1).min(4096)];
                    let _ = stream.read_exact(&mut rest).await;
                    let _ = stream.write_all(&reply).await;
                    let _ = stream.close().await;
                });
            }
        });
        let addrs = net.listen_addrs().await.expect("addrs");
        let link = Link {
            kind: LinkKind::Files,
            id: [5; 32],
            peer: net.peer_id().to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            secret: [6; 32],
            read_only: true,
            expires: None,
            password: false,
            sole_source: false,
        };
        Self { link: link.encode(), _net: net }
    }
}

/// A device that holds no link and is no member: it asks a daemon (at `link`'s
/// address, for its PeerId) things it has no right to.
pub struct Stranger {
    net: Network,
    owner: PeerId,
}

impl Stranger {
    pub async fn near(link: &str) -> Self {
        let net = fake_network().await;
        let l = Link::decode(link).expect("link");
        let owner = PeerId::from_bytes(&l.peer).expect("peer");
        let addrs = l.addrs.iter().filter_map(|a| peerbox_net::Multiaddr::try_from(a.clone()).ok()).collect();
        net.dial(owner, addrs).await.expect("dial");
        Self { net, owner }
    }

    /// The answer to one folder request, as text (`Debug` of the response, or the error).
    pub async fn ask(&self, req: peerbox_proto::index::SyncRequest) -> String {
        let mut stream = self.net.open_stream(self.owner, peerbox_proto::index::PROTOCOL).await.expect("stream");
        match peerbox_net::sync::request(&mut stream, req, STEP).await {
            Ok(r) => format!("{r:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Opening content `id` with `secret` on the block protocol, as text.
    pub async fn open(&self, id: [u8; 32], secret: [u8; 32]) -> String {
        let stream = self.net.open_stream(self.owner, PROTOCOL).await.expect("stream");
        match peerbox_net::blocks::open_share(stream, id, secret, None).await {
            Ok(_) => "opened".into(),
            Err(e) => format!("error: {e}"),
        }
    }
}

impl FakeMember {
    /// Joins the folder behind `link` and answers members' requests with `source`.
    pub async fn join_with(link: &str, source: Arc<dyn peerbox_net::sync::SyncSource>) -> Self {
        let net = fake_network().await;
        let incoming = net.accept(peerbox_proto::index::PROTOCOL).expect("accept");
        tokio::spawn(peerbox_net::sync::serve(incoming, source));
        let link = Link::decode(link).expect("link");
        let owner = PeerId::from_bytes(&link.peer).expect("peer");
        let addrs = link.addrs.iter().filter_map(|a| peerbox_net::Multiaddr::try_from(a.clone()).ok()).collect();
        net.dial(owner, addrs).await.expect("dial owner");
        let mut stream = net.open_stream(owner, peerbox_proto::index::PROTOCOL).await.expect("stream");
        let mut folder = [0u8; 16];
        folder.copy_from_slice(&link.id[..16]);
        let answer = peerbox_net::sync::request(
            &mut stream,
            peerbox_proto::index::SyncRequest::Join { folder, secret: link.secret, proof: None },
            STEP,
        )
        .await
        .expect("join");
        assert!(matches!(answer, peerbox_proto::index::SyncResponse::Joined { pending: false, .. }), "{answer:?}");
        Self { peer: net.peer_id(), _net: net }
    }
}

/// A `peerbox get --progress` running in the background, read line by line.
pub struct Getter {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    pub log: String,
    _home: tempfile::TempDir,
}

impl Getter {
    /// Starts `peerbox get --progress --json LINK DEST` with a fresh home.
    pub fn start(link: &str, dest: &Path) -> Self {
        let home = tempfile::tempdir().expect("home");
        let mut cmd = peerbox(home.path());
        cmd.arg("get").args(LOOPBACK).args(["--progress", "--json"]).arg(link).arg(dest);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn get");
        let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Self { child, lines, log: String::new(), _home: home }
    }

    /// Waits until it reports at least `bytes` verified (false if it ended first).
    pub async fn wait_bytes(&mut self, bytes: u64) -> bool {
        let deadline = tokio::time::Instant::now() + STEP;
        while let Ok(Ok(Some(l))) = tokio::time::timeout_at(deadline, self.lines.next_line()).await {
            self.log.push_str(&l);
            self.log.push('\n');
            let done =
                l.strip_prefix("progress ").and_then(|r| r.split('/').next()).and_then(|n| n.parse::<u64>().ok());
            if done.is_some_and(|d| d >= bytes) {
                return true;
            }
        }
        false
    }

    /// Waits for it to end; returns its exit code and everything it said.
    pub async fn finish(mut self) -> (i32, String) {
        while let Ok(Ok(Some(l))) = tokio::time::timeout(STEP, self.lines.next_line()).await {
            self.log.push_str(&l);
            self.log.push('\n');
        }
        let code = tokio::time::timeout(STEP, self.child.wait()).await.expect("get ended").expect("wait");
        (code.code().unwrap_or(-1), self.log)
    }
}

/// A filesystem mounted for a test (a small tmpfs, say), unmounted when dropped.
pub struct Mount(pub PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. "4m") at `dir` (created). Needs root.
    pub fn tmpfs(dir: &Path, size: &str) -> Self {
        assert!(is_root(), "this test needs root (it mounts a small filesystem); ./test runs it as root");
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "cannot mount a tmpfs at {}", dir.display());
        Self(dir.to_owned())
    }

    /// Remounts with other options ("size=64m", "ro", "rw").
    pub fn remount(&self, opts: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "cannot remount {} with {opts}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}
