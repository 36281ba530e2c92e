//! The product case: `peerbox share` in one process, `peerbox get` in another,
//! each with a fresh home, over loopback only (no mDNS). Times the whole `get`
//! process as the user sees it (start, connect, manifest, transfer, fsync,
//! rename), verifies the bytes, and records both sides' peak RSS. Called once
//! per round by `main`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

use crate::Sample;
use crate::data::{Source, verify};
use crate::proc::{Proc, read_until, run_measured};

/// Listen on loopback only, on a port the OS picks.
const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// One share → get round. `work` is an empty folder for this round.
pub(crate) async fn run(peerbox: &Path, source: &Source, work: &Path, limit: Duration) -> Result<Sample> {
    let share_home = work.join("share-home");
    let get_home = work.join("get-home");
    let dest = work.join("download");
    for d in [&share_home, &get_home, &dest] {
        std::fs::create_dir_all(d)?;
    }

    let mut cmd = Command::new(peerbox);
    cmd.arg("--home")
        .arg(&share_home)
        .args(["share", "--listen", LISTEN, "--no-mdns"])
        .arg(&source.path)
        .current_dir(work);
    let mut share = Proc::spawn("peerbox share", cmd, &work.join("share.stderr"))?;
    let stdout = share.stdout()?;
    // The first line is the link; it comes after the sharer has hashed the file.
    let (link, _) = read_until(stdout, limit, |line| Some(line.trim().to_owned())).await.with_context(|| {
        format!("waiting for the link from peerbox share; its stderr ends:\n{}", share.stderr_tail())
    })?;
    let Some(link) = link.filter(|l| !l.is_empty()) else {
        bail!("peerbox share printed no link; its stderr ends:\n{}", share.stderr_tail());
    };
    share.ensure_running()?;

    let args: Vec<&OsStr> = vec![
        OsStr::new("--home"),
        get_home.as_os_str(),
        OsStr::new("get"),
        OsStr::new("--listen"),
        OsStr::new(LISTEN),
        OsStr::new("--no-mdns"),
        OsStr::new("--json"),
        OsStr::new(&link),
        dest.as_os_str(),
    ];
    let got = run_measured("peerbox-get", &[], peerbox, &args, work, work, limit).await?;
    ensure!(
        got.status.success(),
        "peerbox get failed ({}); stdout: {}\nstderr ends:\n{}",
        got.status,
        got.stdout.trim(),
        got.stderr_tail
    );
    let file = downloaded_file(&got.stdout, &dest, source)?;

    let rss_share = share.peak_rss();
    share.ensure_running()?;
    share.stop("TERM", Duration::from_secs(30)).await?;

    verify("peerbox share → get", source, &file).await?;
    std::fs::remove_dir_all(&dest)?;
    Ok(Sample { secs: got.wall.as_secs_f64(), rss_get: got.peak_rss, rss_share })
}

/// Reads `get --json`'s summary, checks its counts, and returns the file's path.
fn downloaded_file(stdout: &str, dest: &Path, source: &Source) -> Result<PathBuf> {
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("peerbox get printed no JSON summary: {stdout:?}"))?;
    let problems = summary["problems"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(problems == 0, "peerbox get reported problems: {}", summary["problems"]);
    let total = summary["total_bytes"].as_u64();
    let fetched = summary["fetched_bytes"].as_u64();
    ensure!(
        total == Some(source.size) && fetched == Some(source.size),
        "peerbox get summary says total_bytes {total:?}, fetched_bytes {fetched:?}; expected {} for both (a fresh download)",
        source.size
    );
    let paths = summary["paths"].as_array().context("no `paths` in the summary")?;
    ensure!(paths.len() == 1, "expected one path in the summary, got {}", summary["paths"]);
    let path = PathBuf::from(paths[0].as_str().context("`paths[0]` is not a string")?);
    Ok(if path.is_absolute() { path } else { dest.join(path) })
}
