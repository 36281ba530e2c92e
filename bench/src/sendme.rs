//! The outside reference: iroh's `sendme` (`cargo install sendme --locked`).
//! `sendme send PATH` (a file: [`run`]; a folder: [`run_tree`]) prints a
//! ticket and serves; `sendme receive TICKET` downloads into its current
//! folder. Both run inside one fresh network namespace that has only loopback
//! (`unshare -n`, then `nsenter` for the receiver), because sendme would
//! otherwise try relays, DNS discovery and port mapping on the real network.
//! Relays are also switched off when the installed version has `--relay`.
//! Called by `main` and `files`: [`probe`] once, [`run`] or [`run_tree`] once
//! per round.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

use crate::Sample;
use crate::data::{Source, Tree, verify, verify_tree};
use crate::proc::{Proc, find_on_path, probe as run_probe, read_until, run_measured};

/// An installed, usable sendme.
pub(crate) struct Sendme {
    path: PathBuf,
    /// `sendme --version`, for the report.
    pub(crate) version: String,
    /// Extra flags for both send and receive (`--relay disabled`, `--no-progress`).
    common: Vec<&'static str>,
    unshare: PathBuf,
    nsenter: PathBuf,
}

/// Finds sendme and checks that it can be isolated; `Err` says why it is skipped.
pub(crate) async fn probe() -> Result<Sendme, String> {
    let Some(path) = find_on_path("sendme") else {
        return Err("not installed (cargo install sendme --locked)".into());
    };
    let version = run_probe(&path, &["--version"]).await.unwrap_or_default().trim().to_owned();
    let (Some(unshare), Some(nsenter)) = (find_on_path("unshare"), find_on_path("nsenter")) else {
        return Err("skipped: needs unshare(1) and nsenter(1) to run it in a loopback-only network namespace".into());
    };
    // The namespace needs root (or CAP_SYS_ADMIN) and ip(8) to bring lo up.
    let isolated = run_probe(&unshare, &["-n", "sh", "-c", "ip link set lo up && echo namespace-ok"]).await;
    if !isolated.is_some_and(|out| out.contains("namespace-ok")) {
        return Err("skipped: cannot make a loopback-only network namespace (`unshare -n` needs root, and ip(8)); \
             sendme would otherwise reach for relays and the LAN"
            .into());
    }
    // Flag names change between releases: use only those this build has.
    let send_help = run_probe(&path, &["send", "--help"]).await.unwrap_or_default();
    let recv_help = run_probe(&path, &["receive", "--help"]).await.unwrap_or_default();
    let mut common = Vec::new();
    if send_help.contains("--relay") && recv_help.contains("--relay") {
        common.extend(["--relay", "disabled"]);
    }
    if send_help.contains("--no-progress") && recv_help.contains("--no-progress") {
        common.push("--no-progress");
    }
    Ok(Sendme { path, version, common, unshare, nsenter })
}

/// One send → receive round of one file. `work` is an empty folder for this round.
pub(crate) async fn run(sendme: &Sendme, source: &Source, work: &Path, limit: Duration) -> Result<Sample> {
    let (sample, recv_dir) = send_receive(sendme, &source.path, work, limit).await?;
    let name = source.path.file_name().context("source has no file name")?;
    verify("sendme send → receive", source, &recv_dir.join(name)).await?;
    std::fs::remove_dir_all(&recv_dir)?;
    Ok(sample)
}

/// One send → receive round of a folder of many files. `work` is an empty
/// folder for this round, on the same file system as the tree.
pub(crate) async fn run_tree(sendme: &Sendme, tree: &Tree, work: &Path, limit: Duration) -> Result<Sample> {
    let (sample, recv_dir) = send_receive(sendme, &tree.root, work, limit).await?;
    // sendme names what it receives like the source, in its current folder.
    let (tree2, copy) = (tree.clone(), recv_dir.join(tree.dir_name()?));
    tokio::task::spawn_blocking(move || verify_tree("sendme send → receive", &tree2, &copy)).await??;
    std::fs::remove_dir_all(&recv_dir)?;
    Ok(sample)
}

/// Serves `what` with `sendme send` and fetches it with `sendme receive`
/// into `work/receive`; returns the receiver's time and both peak RSS
/// figures, and the folder it received into.
async fn send_receive(sendme: &Sendme, what: &Path, work: &Path, limit: Duration) -> Result<(Sample, PathBuf)> {
    let send_dir = work.join("send");
    let recv_dir = work.join("receive");
    for d in [&send_dir, &recv_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }

    // unshare without --fork execs sh, which execs sendme: the pid we hold is sendme's.
    let mut cmd = Command::new(&sendme.unshare);
    cmd.args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
        .arg(&sendme.path)
        .arg("send")
        .args(&sendme.common)
        .arg(what)
        .current_dir(&send_dir);
    let mut sender = Proc::spawn("sendme send", cmd, &work.join("send.stderr"))?;
    let stdout = sender.stdout()?;
    let (ticket, seen) = read_until(stdout, limit, find_ticket).await.with_context(|| {
        format!("waiting for the ticket from sendme send; its stderr ends:\n{}", sender.stderr_tail())
    })?;
    let Some(ticket) = ticket else {
        bail!(
            "sendme send printed no ticket; stdout was:\n{}\nstderr ends:\n{}",
            seen.join("\n"),
            sender.stderr_tail()
        );
    };
    sender.ensure_running()?;

    let netns = OsString::from(format!("--net=/proc/{}/ns/net", sender.pid()));
    let prefix = [sendme.nsenter.as_os_str(), netns.as_os_str(), OsStr::new("--")];
    let mut args: Vec<&OsStr> = vec![OsStr::new("receive")];
    args.extend(sendme.common.iter().map(OsStr::new));
    args.push(OsStr::new(&ticket));
    let got = run_measured("sendme-receive", &prefix, &sendme.path, &args, &recv_dir, work, limit).await?;
    ensure!(
        got.status.success(),
        "sendme receive failed ({}); stdout: {}\nstderr ends:\n{}",
        got.status,
        got.stdout.trim(),
        got.stderr_tail
    );

    let rss_send = sender.peak_rss();
    sender.ensure_running()?;
    // sendme send stops cleanly on Ctrl-C (SIGINT), not on SIGTERM.
    sender.stop("INT", Duration::from_secs(30)).await?;
    Ok((Sample { secs: got.wall.as_secs_f64(), rss_get: got.peak_rss, rss_share: rss_send }, recv_dir))
}

/// Picks the ticket out of one line of `sendme send` output: the word after
/// `sendme receive`, or failing that any long word starting with `blob`.
fn find_ticket(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after_receive =
        words.windows(3).find(|w| w[0].ends_with("sendme") && (w[1] == "receive" || w[1] == "recv")).map(|w| w[2]);
    after_receive
        .or_else(|| words.iter().copied().find(|w| w.starts_with("blob") && w.len() > 40))
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned())
        .filter(|w| w.len() > 20)
}

#[cfg(test)]
mod tests {
    use super::find_ticket;

    #[test]
    fn ticket_lines() {
        let t = "blobabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnop";
        assert_eq!(find_ticket(&format!("sendme receive {t}")).as_deref(), Some(t));
        assert_eq!(find_ticket(&format!("  $ sendme receive {t}  ")).as_deref(), Some(t));
        assert_eq!(find_ticket(&format!("ticket: {t}")).as_deref(), Some(t));
        assert_eq!(find_ticket("to get this data, use"), None);
        assert_eq!(find_ticket("imported file /tmp/x, 1.00 GiB, hash abc"), None);
    }
}
