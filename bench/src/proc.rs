//! Child processes for the cases that run other programs (peerbox, sendme):
//! each child leads its own process group, and a [`Proc`] kills the whole
//! group when dropped unless it was waited for, so an error or Ctrl-C never
//! leaves a sharer or a `/usr/bin/time`-wrapped getter running. Also: peak
//! RSS from `/proc/PID/status` and from `/usr/bin/time`, signals, PATH lookup,
//! the effective user id.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Where GNU time lives on Debian; used for the getter's and receiver's peak RSS.
const GNU_TIME: &str = "/usr/bin/time";

/// A running child in its own process group; the group is SIGKILLed on drop
/// unless the child was reaped through [`Proc::wait_timeout`] or [`Proc::stop`].
pub(crate) struct Proc {
    name: String,
    child: Child,
    pid: u32,
    stderr_log: PathBuf,
    reaped: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin closed, stdout piped and stderr sent to `stderr_log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, stderr_log: &Path) -> Result<Self> {
        let log =
            std::fs::File::create(stderr_log).with_context(|| format!("cannot create {}", stderr_log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log)).process_group(0).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().with_context(|| format!("{name} exited at once"))?;
        Ok(Self { name: name.to_owned(), child, pid, stderr_log: stderr_log.to_owned(), reaped: false })
    }

    /// The child's pid (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the child's stdout.
    pub(crate) fn stdout(&mut self) -> Result<ChildStdout> {
        self.child.stdout.take().with_context(|| format!("{}: stdout already taken", self.name))
    }

    /// The last lines the child wrote on stderr, for error messages.
    pub(crate) fn stderr_tail(&self) -> String {
        stderr_tail(&self.stderr_log)
    }

    /// Fails if the child has already exited (a server that died early).
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.reaped = true;
            bail!("{} exited early ({status}); its stderr ends:\n{}", self.name, self.stderr_tail());
        }
        Ok(())
    }

    /// Peak resident set (VmHWM) of the running child, in bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        peak_rss_of(self.pid)
    }

    /// Waits for the child to exit, at most `limit`.
    pub(crate) async fn wait_timeout(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                self.reaped = true;
                Ok(status)
            }
            Err(_) => bail!(
                "{} did not finish within {}s; its stderr ends:\n{}",
                self.name,
                limit.as_secs(),
                self.stderr_tail()
            ),
        }
    }

    /// Sends `signal` (e.g. "TERM", "INT") to the child, waits up to `grace`
    /// for it to exit, and SIGKILLs its group if it does not.
    pub(crate) async fn stop(&mut self, signal: &str, grace: Duration) -> Result<()> {
        if self.reaped {
            return Ok(());
        }
        send_signal(signal, &self.pid.to_string()).await?;
        if self.wait_timeout(grace).await.is_err() {
            eprintln!("  ({} ignored SIG{signal} for {}s; killing it)", self.name, grace.as_secs());
            kill_group(self.pid);
            self.child.wait().await?;
            self.reaped = true;
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.pid);
        }
    }
}

/// SIGKILLs every process in group `pgid` (best effort; used on error paths).
fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends a signal by name to a pid through kill(1) (the workspace forbids `unsafe`).
async fn send_signal(signal: &str, target: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("cannot run kill(1)")?;
    if !status.success() {
        bail!("kill -{signal} {target} failed ({status})");
    }
    Ok(())
}

/// Peak resident set (VmHWM) of a live process, in bytes.
pub(crate) fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The largest peak RSS (VmHWM) among a live process and its direct children,
/// in bytes: for programs such as `syncthing serve` whose work is done by a child
/// that a small monitor process started.
pub(crate) fn peak_rss_with_children(pid: u32) -> Option<u64> {
    let children = std::fs::read_dir("/proc").into_iter().flatten().filter_map(|e| {
        let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    });
    std::iter::once(pid).chain(children).filter_map(peak_rss_of).max()
}

/// Reads lines from a child's stdout until `pick` returns something, at most
/// `limit`; then keeps draining the rest in the background so the child never
/// blocks on a full pipe. Returns the pick and every line seen so far.
pub(crate) async fn read_until<T>(
    stdout: ChildStdout,
    limit: Duration,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> Result<(Option<T>, Vec<String>)> {
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let found = loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Err(_) => bail!("timed out after {}s", limit.as_secs()),
            Ok(line) => line?,
        };
        let Some(line) = line else { break None };
        let got = pick(&line);
        seen.push(line);
        if got.is_some() {
            break got;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((found, seen))
}

/// What a measured, run-to-completion command produced.
pub(crate) struct Measured {
    /// Wall time from just before spawning to exit, as the user sees it.
    pub(crate) wall: Duration,
    /// Peak RSS of the measured program in bytes, from `/usr/bin/time` (if present).
    pub(crate) peak_rss: Option<u64>,
    /// Its stdout.
    pub(crate) stdout: String,
    /// The end of its stderr.
    pub(crate) stderr_tail: String,
    /// Its exit status.
    pub(crate) status: std::process::ExitStatus,
}

/// Runs `program args...` in `cwd` to completion under `/usr/bin/time` (when
/// present) and measures it. `prefix` goes before `/usr/bin/time` (e.g.
/// nsenter), so only the program itself is measured for memory.
pub(crate) async fn run_measured(
    name: &str,
    prefix: &[&OsStr],
    program: &Path,
    args: &[&OsStr],
    cwd: &Path,
    logs: &Path,
    limit: Duration,
) -> Result<Measured> {
    let time_file = logs.join(format!("{name}.time"));
    let use_time = Path::new(GNU_TIME).exists();
    let mut argv: Vec<&OsStr> = prefix.to_vec();
    if use_time {
        argv.extend([
            OsStr::new(GNU_TIME),
            OsStr::new("-o"),
            time_file.as_os_str(),
            OsStr::new("-f"),
            OsStr::new("%M %e"),
        ]);
    }
    argv.push(program.as_os_str());
    argv.extend_from_slice(args);
    let (first, rest) = argv.split_first().context("empty command line")?;
    let mut cmd = Command::new(first);
    cmd.args(rest).current_dir(cwd);

    let start = Instant::now();
    let mut proc = Proc::spawn(name, cmd, &logs.join(format!("{name}.stderr")))?;
    let mut stdout = proc.stdout()?;
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await.map(|_| out)
    });
    let status = proc.wait_timeout(limit).await?;
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&reader.await??).into_owned();
    let peak_rss = if use_time {
        std::fs::read_to_string(&time_file)
            .ok()
            .and_then(|s| s.lines().last()?.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    } else {
        None
    };
    Ok(Measured { wall, peak_rss, stdout, stderr_tail: proc.stderr_tail(), status })
}

/// The last few lines of a log file.
pub(crate) fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() { "(nothing)".into() } else { tail }
}

/// The effective user id of this process (from `/proc/self/status`; the
/// workspace forbids the `unsafe` a direct `geteuid` call would need).
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // "Uid:\treal\teffective\tsaved\tfs"
    status.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(2)?.parse().ok()
}

/// Finds an executable by name on PATH.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Runs a short command and returns its stdout and stderr together (for
/// `--help` and `--version` probes); `None` if it cannot run.
pub(crate) async fn probe(program: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(program).args(args).stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .ok()?
    .ok()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}
