//! The product side of the sync benchmark: two `peerbox daemon`s (devices A and
//! B, each with its own home), listening on loopback only without mDNS, with
//! one folder per case added on A, linked, and joined on B. The benchmark talks
//! to each daemon's loopback API directly (the calls `peerbox folder …` and
//! `peerbox status --json` make), so polling costs no process start-ups.
//! Called by `sync`; `scan` uses its [`Daemon`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::http;
use crate::proc::{Proc, read_until};

/// Listen on loopback only, on a port the OS picks.
const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// One running daemon.
pub(crate) struct Daemon {
    proc: Proc,
    /// `127.0.0.1:PORT` of its API.
    api: String,
    token: String,
}

impl Daemon {
    /// Starts `peerbox --home HOME daemon` and waits for its `api http://…` line.
    pub(crate) async fn start(bin: &Path, home: &Path, logs: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(home)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--home").arg(home).args(["daemon", "--no-mdns", "--listen", LISTEN]).current_dir(logs);
        let mut proc = Proc::spawn(name, cmd, &logs.join(format!("{name}.stderr")))?;
        let stdout = proc.stdout()?;
        let (url, seen) = read_until(stdout, Duration::from_secs(60), |l| {
            l.trim().strip_prefix("api http://").map(|u| u.trim_end_matches('/').to_owned())
        })
        .await
        .with_context(|| format!("waiting for {name}'s API line; its stderr ends:\n{}", proc.stderr_tail()))?;
        let Some(api) = url else {
            bail!("{name} printed no `api` line (stdout: {seen:?}); its stderr ends:\n{}", proc.stderr_tail());
        };
        let token = std::fs::read_to_string(home.join("api.token"))
            .with_context(|| format!("cannot read {name}'s API token"))?
            .trim()
            .to_owned();
        Ok(Self { proc, api, token })
    }

    /// One API call (`{"op": …}`), as the `peerbox` command makes it.
    pub(crate) async fn call(&self, req: Value) -> Result<Value> {
        let auth = format!("Bearer {}", self.token);
        let body = serde_json::to_vec(&req)?;
        http::json(
            &self.api,
            "POST",
            "/api/v1/call",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            &body,
        )
        .await
    }

    /// `status` (what `peerbox status --json` prints).
    pub(crate) async fn status(&self) -> Result<Value> {
        self.call(json!({ "op": "status" })).await
    }

    /// Its `change` events (`GET /api/v1/events`): something a status view shows
    /// has moved. Cheaper to wait on than polling `status`, which reads the whole index.
    pub(crate) async fn changes(&self) -> Result<http::Events> {
        let auth = format!("Bearer {}", self.token);
        http::events(&self.api, "/api/v1/events", &[("Authorization", &auth)], "change").await
    }

    /// Peak RSS (VmHWM) so far, bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        self.proc.peak_rss()
    }

    /// Fails if it has exited.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        self.proc.ensure_running()
    }

    /// The end of its stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        self.proc.stderr_tail()
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub(crate) async fn stop(mut self) -> Result<()> {
        self.proc.stop("TERM", Duration::from_secs(30)).await
    }
}

/// The folder `id` in a `status` answer.
pub(crate) fn folder_status<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["folders"].as_array()?.iter().find(|f| f["id"].as_str() == Some(id))
}

/// Two daemons sharing one folder per name.
pub(crate) struct Pair {
    a: Daemon,
    b: Daemon,
    /// (name, folder id, A's path, B's path).
    folders: Vec<(String, String, PathBuf, PathBuf)>,
}

impl Pair {
    /// Starts A and B under `root` (homes `root/home-a`, `root/home-b`; folders
    /// `root/a/NAME` and `root/b/NAME`), adds each folder on A, joins it on B,
    /// and waits until both sides are connected and idle.
    pub(crate) async fn start(bin: &Path, root: &Path, names: &[&str], logs: &Path) -> Result<Self> {
        let a = Daemon::start(bin, &root.join("home-a"), logs, "peerbox-daemon-a").await?;
        let b = Daemon::start(bin, &root.join("home-b"), logs, "peerbox-daemon-b").await?;
        let mut pair = Self { a, b, folders: Vec::new() };
        for name in names {
            let (pa, pb) = (root.join("a").join(name), root.join("b").join(name));
            std::fs::create_dir_all(&pa)?;
            let added = pair
                .a
                .call(json!({ "op": "folder_add", "path": pa, "name": name, "mode": "send-receive" }))
                .await
                .with_context(|| format!("folder add {name} on A"))?;
            let id = added["id"].as_str().context("folder_add answered no id")?.to_owned();
            let link = pair
                .a
                .call(json!({ "op": "folder_link", "folder": id, "read_only": false, "approve": false, "expires_in": null }))
                .await
                .with_context(|| format!("folder link {name} on A"))?;
            let link = link["link"].as_str().context("folder_link answered no link")?.to_owned();
            let joined = pair
                .b
                .call(json!({ "op": "folder_join", "link": link, "path": pb, "mode": "send-receive" }))
                .await
                .with_context(|| format!("folder join {name} on B"))?;
            let jid = joined["id"].as_str().unwrap_or_default();
            if jid != id {
                bail!("B joined folder {jid:?}, A added {id:?}");
            }
            pair.folders.push(((*name).to_owned(), id, pa, pb));
        }
        pair.wait_idle(Duration::from_secs(120)).await.context("waiting for both daemons to be connected and idle")?;
        Ok(pair)
    }

    fn folder(&self, name: &str) -> Result<&(String, String, PathBuf, PathBuf)> {
        self.folders.iter().find(|f| f.0 == name).with_context(|| format!("no folder {name}"))
    }

    /// A's copy of folder `name`.
    pub(crate) fn a_dir(&self, name: &str) -> Result<&Path> {
        Ok(&self.folder(name)?.2)
    }

    /// B's copy of folder `name`.
    pub(crate) fn b_dir(&self, name: &str) -> Result<&Path> {
        Ok(&self.folder(name)?.3)
    }

    /// Waits until both sides see each other and every folder is idle with nothing to pull.
    pub(crate) async fn wait_idle(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.a.ensure_running()?;
            self.b.ensure_running()?;
            let (sa, sb) = (self.a.status().await?, self.b.status().await?);
            let connected = |s: &Value| {
                s["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["connected"].as_bool() == Some(true)))
            };
            let idle = |s: &Value| {
                self.folders.iter().all(|(_, id, ..)| {
                    folder_status(s, id).is_some_and(|f| {
                        f["state"]["state"].as_str() == Some("idle") && f["need_files"].as_u64() == Some(0)
                    })
                })
            };
            if connected(&sa) && connected(&sb) && idle(&sa) && idle(&sb) {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("not idle after {}s; A: {sa}\nB: {sb}", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until B's status for folder `name` shows nothing to pull, at least
    /// `files` files, and idle. Polled every 50 ms (each status call reads the
    /// folder's index, so it is not free for the daemon).
    pub(crate) async fn confirm(&mut self, name: &str, files: u64, limit: Duration) -> Result<()> {
        let id = self.folder(name)?.1.clone();
        let start = Instant::now();
        loop {
            self.b.ensure_running()?;
            let s = self.b.status().await?;
            let done = folder_status(&s, &id).is_some_and(|f| {
                f["need_files"].as_u64() == Some(0)
                    && f["local_files"].as_u64().is_some_and(|n| n >= files)
                    && f["state"]["state"].as_str() == Some("idle")
            });
            if done {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "B's status did not reach need_files 0 / {files} files / idle within {}s: {}",
                    limit.as_secs(),
                    folder_status(&s, &id).cloned().unwrap_or(Value::Null)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What to show when a case fails: both statuses and the ends of both logs.
    pub(crate) async fn diagnosis(&self) -> String {
        let sa = self.a.status().await.map_or_else(|e| format!("(no status: {e:#})"), |v| v.to_string());
        let sb = self.b.status().await.map_or_else(|e| format!("(no status: {e:#})"), |v| v.to_string());
        format!(
            "A status: {sa}\nB status: {sb}\nA stderr ends:\n{}\nB stderr ends:\n{}",
            self.a.stderr_tail(),
            self.b.stderr_tail()
        )
    }

    /// Peak RSS of A and B so far, bytes.
    pub(crate) fn peak_rss(&self) -> (Option<u64>, Option<u64>) {
        (self.a.peak_rss(), self.b.peak_rss())
    }

    /// Stops both daemons.
    pub(crate) async fn stop(self) -> Result<()> {
        let (ra, rb) = (self.a.stop().await, self.b.stop().await);
        ra.and(rb)
    }
}
