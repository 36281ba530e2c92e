//! The reference for the sync benchmark: two Syncthing instances (Debian's
//! `syncthing` package), configured as shared/docs/BENCHMARKS.md says: homes
//! made with `syncthing generate`, GUI/REST and sync listener on 127.0.0.1 at
//! ports picked free at run time, global and local discovery, relays, NAT
//! traversal, usage and crash reporting and upgrades off, each device added to
//! the other at `tcp://127.0.0.1:PORT`, one send-receive folder per case shared
//! by both. Folders for throughput have the watcher off and a 1 h rescan
//! interval (a scan is asked for through `POST /rest/db/scan`); the latency
//! folder has the watcher on with `fsWatcherDelayS=1`, its minimum. Runs inside
//! the benchmark's loopback-only network namespace. Called by `sync`; `scan`
//! runs one instance alone through [`Solo`].

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tokio::process::Command;

use crate::http;
use crate::proc::{Proc, find_on_path, peak_rss_with_children, probe as run_probe};

/// An installed Syncthing.
pub(crate) struct Syncthing {
    path: PathBuf,
    /// `syncthing --version`, first line.
    pub(crate) version: String,
}

/// Finds `syncthing`; when it is missing and `install` is set, installs the
/// Debian package with apt-get first. `Err` says why the reference is skipped.
pub(crate) async fn probe(install: bool) -> Result<Syncthing, String> {
    if find_on_path("syncthing").is_none()
        && install
        && let Some(apt) = find_on_path("apt-get")
    {
        eprintln!("syncthing is not installed; installing it: apt-get install -y syncthing");
        let ok = Command::new(&apt)
            .args(["install", "-y", "-q", "syncthing"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("apt-get install -y syncthing failed");
        }
    }
    let Some(path) = find_on_path("syncthing") else {
        return Err("skipped: syncthing is not installed (apt-get install -y syncthing)".into());
    };
    let version = run_probe(&path, &["--version"]).await.unwrap_or_default();
    // "syncthing v1.19.2-ds1 \"Fermium Flea\" (go1.19.8 linux-amd64) …": keep the first two words.
    let version = version.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    Ok(Syncthing { path, version })
}

/// One folder to share.
pub(crate) struct FolderSpec<'a> {
    /// Folder id, label and directory name.
    pub(crate) name: &'a str,
    /// Watcher on (delay 1 s) or off (scans only on request).
    pub(crate) watch: bool,
}

struct Instance {
    proc: Proc,
    /// GUI / REST address, `127.0.0.1:PORT`.
    gui: String,
    key: String,
    id: String,
}

impl Instance {
    async fn get(&self, path: &str) -> Result<Value> {
        http::json(&self.gui, "GET", path, &[("X-API-Key", &self.key)], b"").await
    }
}

/// Two running instances A and B sharing the folders.
pub(crate) struct Pair {
    a: Instance,
    b: Instance,
    root: PathBuf,
}

/// `n` distinct ports on 127.0.0.1 that are free now (all held open together, then released).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).collect::<std::io::Result<_>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Runs `syncthing generate` for `home` and returns the device id.
async fn generate(st: &Syncthing, home: &Path) -> Result<String> {
    let out = Command::new(&st.path)
        .arg("generate")
        .arg(format!("--home={}", home.display()))
        .arg("--no-default-folder")
        .env("STNODEFAULTFOLDER", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot run syncthing generate")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "syncthing generate failed ({}): {text}", out.status);
    text.lines()
        .find_map(|l| l.split_once("Device ID:").map(|(_, id)| id.trim().to_owned()))
        .filter(|id| id.len() > 50)
        .with_context(|| format!("syncthing generate printed no device id: {text}"))
}

/// Starts `syncthing serve` on `home`, its log in `logs/NAME.stderr`.
fn serve(st: &Syncthing, home: &Path, name: &str, logs: &Path) -> Result<Proc> {
    let mut cmd = Command::new(&st.path);
    cmd.arg("serve")
        .arg(format!("--home={}", home.display()))
        .args(["--no-browser", "--no-restart", "--no-upgrade", "--no-default-folder"])
        .env("STNOUPGRADE", "1")
        .env("STNODEFAULTFOLDER", "1")
        .current_dir(logs);
    Proc::spawn(name, cmd, &logs.join(format!("{name}.stderr")))
}

/// A config.xml for one instance (`me` is 0 for A, 1 for B).
fn config(
    ids: [&str; 2],
    listen: [u16; 2],
    gui: u16,
    key: &str,
    me: usize,
    folders: &[FolderSpec],
    root: &Path,
) -> String {
    let side = ["a", "b"][me];
    let mut x = String::from("<configuration version=\"36\">\n");
    for f in folders {
        let path = root.join(side).join(f.name);
        let _ = writeln!(
            x,
            "    <folder id=\"{n}\" label=\"{n}\" path=\"{p}\" type=\"sendreceive\" rescanIntervalS=\"3600\" \
             fsWatcherEnabled=\"{w}\" fsWatcherDelayS=\"1\" ignorePerms=\"false\" autoNormalize=\"true\">\n\
             \x20       <filesystemType>basic</filesystemType>\n\
             \x20       <device id=\"{a}\" introducedBy=\"\"></device>\n\
             \x20       <device id=\"{b}\" introducedBy=\"\"></device>\n\
             \x20       <minDiskFree unit=\"%\">1</minDiskFree>\n\
             \x20   </folder>",
            n = f.name,
            p = path.display(),
            w = f.watch,
            a = ids[0],
            b = ids[1],
        );
    }
    for (i, name) in ["a", "b"].iter().enumerate() {
        let _ = writeln!(
            x,
            "    <device id=\"{}\" name=\"{name}\" compression=\"metadata\" introducer=\"false\" \
             skipIntroductionRemovals=\"false\" introducedBy=\"\">\n\
             \x20       <address>tcp://127.0.0.1:{}</address>\n\
             \x20       <autoAcceptFolders>false</autoAcceptFolders>\n\
             \x20   </device>",
            ids[i], listen[i]
        );
    }
    x.push_str(&gui_and_options(gui, key, listen[me]));
    x
}

/// The end of every config.xml: GUI/REST and the sync listener on loopback, and
/// every way of reaching other machines off.
fn gui_and_options(gui: u16, key: &str, listen: u16) -> String {
    format!(
        "    <gui enabled=\"true\" tls=\"false\" debugging=\"false\">\n\
         \x20       <address>127.0.0.1:{gui}</address>\n\
         \x20       <apikey>{key}</apikey>\n\
         \x20   </gui>\n\
         \x20   <options>\n\
         \x20       <listenAddress>tcp://127.0.0.1:{listen}</listenAddress>\n\
         \x20       <globalAnnounceEnabled>false</globalAnnounceEnabled>\n\
         \x20       <localAnnounceEnabled>false</localAnnounceEnabled>\n\
         \x20       <relaysEnabled>false</relaysEnabled>\n\
         \x20       <natEnabled>false</natEnabled>\n\
         \x20       <urAccepted>-1</urAccepted>\n\
         \x20       <autoUpgradeIntervalH>0</autoUpgradeIntervalH>\n\
         \x20       <crashReportingEnabled>false</crashReportingEnabled>\n\
         \x20       <startBrowser>false</startBrowser>\n\
         \x20       <announceLANAddresses>false</announceLANAddresses>\n\
         \x20       <setLowPriority>false</setLowPriority>\n\
         \x20   </options>\n\
         </configuration>\n"
    )
}

/// A config.xml for one instance alone with one folder at `path`: watcher off
/// and a 1 h rescan interval, so it scans only when asked (or when it starts).
fn solo_config(id: &str, listen: u16, gui: u16, key: &str, folder: &str, path: &Path) -> String {
    let mut x = String::from("<configuration version=\"36\">\n");
    let _ = writeln!(
        x,
        "    <folder id=\"{folder}\" label=\"{folder}\" path=\"{p}\" type=\"sendreceive\" rescanIntervalS=\"3600\" \
         fsWatcherEnabled=\"false\" fsWatcherDelayS=\"1\" ignorePerms=\"false\" autoNormalize=\"true\">\n\
         \x20       <filesystemType>basic</filesystemType>\n\
         \x20       <device id=\"{id}\" introducedBy=\"\"></device>\n\
         \x20       <minDiskFree unit=\"%\">1</minDiskFree>\n\
         \x20   </folder>\n\
         \x20   <device id=\"{id}\" name=\"solo\" compression=\"metadata\" introducer=\"false\" \
         skipIntroductionRemovals=\"false\" introducedBy=\"\">\n\
         \x20       <address>dynamic</address>\n\
         \x20       <autoAcceptFolders>false</autoAcceptFolders>\n\
         \x20   </device>",
        p = path.display(),
    );
    x.push_str(&gui_and_options(gui, key, listen));
    x
}

impl Pair {
    /// Generates two homes under `root` (`root/st-home-a`, `root/st-home-b`;
    /// folders `root/a/NAME`, `root/b/NAME`), starts both instances and waits
    /// until they are connected and every folder is idle.
    pub(crate) async fn start(st: &Syncthing, root: &Path, folders: &[FolderSpec<'_>], logs: &Path) -> Result<Self> {
        let homes = [root.join("st-home-a"), root.join("st-home-b")];
        let ids = [generate(st, &homes[0]).await?, generate(st, &homes[1]).await?];
        let ports = free_ports(4)?;
        let (listen, gui) = ([ports[0], ports[1]], [ports[2], ports[3]]);
        let keys = [crate::sync::random_hex(16), crate::sync::random_hex(16)];
        for (me, home) in homes.iter().enumerate() {
            let xml = config([&ids[0], &ids[1]], listen, gui[me], &keys[me], me, folders, root);
            std::fs::write(home.join("config.xml"), xml)?;
            for f in folders {
                // The folder marker Syncthing insists on.
                std::fs::create_dir_all(root.join(["a", "b"][me]).join(f.name).join(".stfolder"))?;
            }
        }
        let mut inst = Vec::new();
        for (me, home) in homes.iter().enumerate() {
            let proc = serve(st, home, &format!("syncthing-{}", ["a", "b"][me]), logs)?;
            inst.push(Instance {
                proc,
                gui: format!("127.0.0.1:{}", gui[me]),
                key: keys[me].clone(),
                id: ids[me].clone(),
            });
        }
        let b = inst.pop().context("no instance B")?;
        let a = inst.pop().context("no instance A")?;
        let mut pair = Self { a, b, root: root.to_owned() };
        pair.wait_ready(folders, Duration::from_secs(120)).await.context("waiting for Syncthing to be ready")?;
        Ok(pair)
    }

    async fn wait_ready(&mut self, folders: &[FolderSpec<'_>], limit: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            for i in [&mut self.a, &mut self.b] {
                i.proc.ensure_running()?;
            }
            match self.ready(folders).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if start.elapsed() > limit {
                bail!(
                    "not connected and idle after {}s (last error: {last}); A's log ends:\n{}\nB's log ends:\n{}",
                    limit.as_secs(),
                    self.a.proc.stderr_tail(),
                    self.b.proc.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ready(&self, folders: &[FolderSpec<'_>]) -> Result<bool> {
        for (me, other) in [(&self.a, &self.b), (&self.b, &self.a)] {
            let c = me.get("/rest/system/connections").await?;
            if c["connections"][&other.id]["connected"].as_bool() != Some(true) {
                return Ok(false);
            }
            for f in folders {
                let s = me.get(&format!("/rest/db/status?folder={}", f.name)).await?;
                if s["state"].as_str() != Some("idle") || s["needFiles"].as_u64() != Some(0) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// A's copy of folder `name`.
    pub(crate) fn a_dir(&self, name: &str) -> PathBuf {
        self.root.join("a").join(name)
    }

    /// B's copy of folder `name`.
    pub(crate) fn b_dir(&self, name: &str) -> PathBuf {
        self.root.join("b").join(name)
    }

    /// Asks A to scan folder `name` now. Syncthing answers only when the scan
    /// is done, so this runs as its own task; await it after the case.
    pub(crate) fn scan(&self, name: &str) -> tokio::task::JoinHandle<Result<()>> {
        let (gui, key, path) = (self.a.gui.clone(), self.a.key.clone(), format!("/rest/db/scan?folder={name}"));
        tokio::spawn(async move { http::json(&gui, "POST", &path, &[("X-API-Key", &key)], b"").await.map(|_| ()) })
    }

    /// Waits until A reports B's completion of folder `name` at 100 % with
    /// nothing needed (the files were already seen in B by the caller), and B
    /// itself has nothing left to pull and at least `files` files.
    pub(crate) async fn confirm(&mut self, name: &str, files: u64, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.a.proc.ensure_running()?;
            self.b.proc.ensure_running()?;
            let c = self.a.get(&format!("/rest/db/completion?folder={name}&device={}", self.b.id)).await?;
            let s = self.b.get(&format!("/rest/db/status?folder={name}")).await?;
            let done = c["completion"].as_f64().is_some_and(|p| p >= 100.0)
                && c["needItems"].as_u64() == Some(0)
                && s["needFiles"].as_u64() == Some(0)
                && s["localFiles"].as_u64().is_some_and(|n| n >= files);
            if done {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("Syncthing did not report completion within {}s: completion {c}, B status {s}", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What to show when a case fails.
    pub(crate) async fn diagnosis(&self) -> String {
        let mut out = String::new();
        for (n, i) in [("A", &self.a), ("B", &self.b)] {
            let c = i.get("/rest/system/connections").await.map_or_else(|e| format!("{e:#}"), |v| v.to_string());
            let _ = writeln!(out, "{n} connections: {c}\n{n} log ends:\n{}", i.proc.stderr_tail());
        }
        out
    }

    /// Peak RSS of A and B so far, bytes: of the worker process that `syncthing
    /// serve` starts under its monitor (whichever of the two is larger).
    pub(crate) fn peak_rss(&self) -> (Option<u64>, Option<u64>) {
        (peak_rss_with_children(self.a.proc.pid()), peak_rss_with_children(self.b.proc.pid()))
    }

    /// Stops both instances (SIGTERM, then SIGKILL after 30 s).
    pub(crate) async fn stop(mut self) -> Result<()> {
        let ra = self.a.proc.stop("TERM", Duration::from_secs(30)).await;
        let rb = self.b.proc.stop("TERM", Duration::from_secs(30)).await;
        ra.and(rb)
    }
}

/// One instance alone with one folder and no other device, for timing its
/// scans (`scan`): the folder is scanned when the instance starts and then only
/// through [`Solo::scan`].
pub(crate) struct Solo {
    inst: Instance,
    folder: String,
}

impl Solo {
    /// Generates `home`, shares `path` as folder `folder` with no one, starts the
    /// instance and waits until its REST API answers (its first scan may still run).
    pub(crate) async fn start(st: &Syncthing, home: &Path, folder: &str, path: &Path, logs: &Path) -> Result<Self> {
        let id = generate(st, home).await?;
        let ports = free_ports(2)?;
        let key = crate::sync::random_hex(16);
        std::fs::write(home.join("config.xml"), solo_config(&id, ports[0], ports[1], &key, folder, path))?;
        // The folder marker Syncthing insists on.
        std::fs::create_dir_all(path.join(".stfolder"))?;
        let proc = serve(st, home, "syncthing-solo", logs)?;
        let mut solo = Self {
            inst: Instance { proc, gui: format!("127.0.0.1:{}", ports[1]), key, id },
            folder: folder.to_owned(),
        };
        let start = Instant::now();
        loop {
            solo.inst.proc.ensure_running()?;
            match solo.status().await {
                Ok(_) => return Ok(solo),
                Err(e) if start.elapsed() > Duration::from_secs(120) => {
                    bail!(
                        "its REST API did not answer within 120 s ({e:#}); its log ends:\n{}",
                        solo.inst.proc.stderr_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `GET /rest/db/status` of the folder.
    pub(crate) async fn status(&self) -> Result<Value> {
        self.inst.get(&format!("/rest/db/status?folder={}", self.folder)).await
    }

    /// Waits until the folder is idle with exactly `files` files indexed; polled
    /// every 100 ms. Returns the status that showed it.
    pub(crate) async fn wait_indexed(&mut self, files: u64, limit: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            self.inst.proc.ensure_running()?;
            let s = self.status().await?;
            if s["state"].as_str() == Some("idle") && s["localFiles"].as_u64().is_some_and(|n| n >= files) {
                return Ok(s);
            }
            if start.elapsed() > limit {
                bail!("not idle with {files} files within {} s: {s}", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scans the folder now: `POST /rest/db/scan`, which answers when the scan is done.
    pub(crate) async fn scan(&self) -> Result<()> {
        let path = format!("/rest/db/scan?folder={}", self.folder);
        http::json(&self.inst.gui, "POST", &path, &[("X-API-Key", &self.inst.key)], b"").await.map(|_| ())
    }

    /// The end of its log.
    pub(crate) fn stderr_tail(&self) -> String {
        self.inst.proc.stderr_tail()
    }

    /// Stops it (SIGTERM, then SIGKILL after 30 s).
    pub(crate) async fn stop(mut self) -> Result<()> {
        self.inst.proc.stop("TERM", Duration::from_secs(30)).await
    }
}
