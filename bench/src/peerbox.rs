//! The product case: `peerbox share` in one process, `peerbox get` in another,
//! each with a fresh home, over loopback only (no mDNS), of one file ([`run`])
//! or of a folder of many files ([`run_tree`]). Times the whole `get` process
//! as the user sees it (start, connect, manifest, transfer, fsync, rename),
//! checks its JSON summary, verifies every byte, and records both sides' peak
//! RSS. Called once per round by `main` and `files`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

use crate::Sample;
use crate::data::{Source, Tree, verify, verify_tree};
use crate::proc::{Proc, read_until, run_measured};

/// Listen on loopback only, on a port the OS picks.
const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// One share → get round of one file. `work` is an empty folder for this round.
pub(crate) async fn run(peerbox: &Path, source: &Source, work: &Path, limit: Duration) -> Result<Sample> {
    let dest = work.join("download");
    let (sample, stdout) = share_get(peerbox, &source.path, work, &dest, limit).await?;
    let summary = Summary::parse(&stdout)?;
    summary.expect_fresh(1, source.size)?;
    ensure!(summary.paths.len() == 1, "expected one path in the summary, got {:?}", summary.paths);
    let path = &summary.paths[0];
    let file = if path.is_absolute() { path.clone() } else { dest.join(path) };
    verify("peerbox share → get", source, &file).await?;
    std::fs::remove_dir_all(&dest)?;
    Ok(sample)
}

/// One share → get round of a folder of many files. `work` is an empty
/// folder for this round, on the same file system as the tree.
pub(crate) async fn run_tree(peerbox: &Path, tree: &Tree, work: &Path, limit: Duration) -> Result<Sample> {
    let dest = work.join("download");
    let (sample, stdout) = share_get(peerbox, &tree.root, work, &dest, limit).await?;
    let summary = Summary::parse(&stdout)?;
    summary.expect_fresh(tree.count(), tree.total_bytes())?;
    // The folder keeps its name under DEST, as a shared folder keeps its tree.
    let (tree2, copy) = (tree.clone(), dest.join(tree.dir_name()?));
    tokio::task::spawn_blocking(move || verify_tree("peerbox share → get", &tree2, &copy)).await??;
    std::fs::remove_dir_all(&dest)?;
    Ok(sample)
}

/// Shares `what` from a fresh home, gets it with another fresh home into
/// `dest`, and stops the sharer. Returns the `get` process's time and both
/// peak RSS figures, and what `get --json` printed.
async fn share_get(peerbox: &Path, what: &Path, work: &Path, dest: &Path, limit: Duration) -> Result<(Sample, String)> {
    let share_home = work.join("share-home");
    let get_home = work.join("get-home");
    for d in [share_home.as_path(), get_home.as_path(), dest] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }

    let mut cmd = Command::new(peerbox);
    cmd.arg("--home").arg(&share_home).args(["share", "--listen", LISTEN, "--no-mdns"]).arg(what).current_dir(work);
    let mut share = Proc::spawn("peerbox share", cmd, &work.join("share.stderr"))?;
    let stdout = share.stdout()?;
    // The first line is the link; it comes after the sharer has hashed everything.
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
        first_chars(got.stdout.trim(), 2000),
        got.stderr_tail
    );

    let rss_share = share.peak_rss();
    share.ensure_running()?;
    share.stop("TERM", Duration::from_secs(30)).await?;
    Ok((Sample { secs: got.wall.as_secs_f64(), rss_get: got.peak_rss, rss_share }, got.stdout))
}

/// At most `n` characters of `s` (a summary of 10,000 paths is too long for an error).
fn first_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{} …", &s[..i]),
        None => s.to_owned(),
    }
}

/// What `peerbox get --json` says it did.
#[derive(Debug, PartialEq)]
struct Summary {
    /// Files in the share (folders not counted).
    files: Option<u64>,
    total_bytes: Option<u64>,
    fetched_bytes: Option<u64>,
    /// Every entry's final path (files and folders), as printed.
    paths: Vec<PathBuf>,
}

impl Summary {
    /// Reads the last JSON line of `get --json`'s stdout; fails on reported problems.
    fn parse(stdout: &str) -> Result<Self> {
        let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("peerbox get printed no JSON summary: {:?}", first_chars(stdout, 2000)))?;
        let problems = v["problems"].as_array().map(Vec::len).unwrap_or(0);
        ensure!(problems == 0, "peerbox get reported problems: {}", first_chars(&v["problems"].to_string(), 2000));
        let paths = v["paths"].as_array().context("no `paths` in the summary")?;
        let paths = paths
            .iter()
            .map(|p| p.as_str().map(PathBuf::from).context("a `paths` entry is not a string"))
            .collect::<Result<_>>()?;
        Ok(Self {
            files: v["files"].as_u64(),
            total_bytes: v["total_bytes"].as_u64(),
            fetched_bytes: v["fetched_bytes"].as_u64(),
            paths,
        })
    }

    /// Checks the counts of a fresh download of `files` files, `bytes` bytes in all.
    fn expect_fresh(&self, files: usize, bytes: u64) -> Result<()> {
        ensure!(
            self.total_bytes == Some(bytes) && self.fetched_bytes == Some(bytes),
            "peerbox get summary says total_bytes {:?}, fetched_bytes {:?}; expected {bytes} for both (a fresh download)",
            self.total_bytes,
            self.fetched_bytes,
        );
        // Older builds did not print `files`; the bytes and the check of every file still hold.
        if let Some(n) = self.files {
            ensure!(n == files as u64, "peerbox get summary says {n} files; expected {files}");
        }
        ensure!(
            self.paths.len() >= files,
            "peerbox get summary lists {} paths; expected at least {files}",
            self.paths.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let out = "progress\n{\"paths\":[\"/d/files\",\"/d/files/f000000.bin\",\"/d/files/f000001.bin\"],\"files\":2,\
                   \"total_bytes\":8192,\"fetched_bytes\":8192,\"resumed_bytes\":0,\"problems\":[],\"connection\":\"direct\"}\n";
        let s = Summary::parse(out).unwrap();
        assert_eq!(s.files, Some(2));
        assert_eq!(s.paths.len(), 3);
        s.expect_fresh(2, 8192).unwrap();
        assert!(s.expect_fresh(3, 12288).is_err());
        assert!(s.expect_fresh(2, 4096).is_err());

        let resumed = out.replace("\"fetched_bytes\":8192", "\"fetched_bytes\":0");
        assert!(Summary::parse(&resumed).unwrap().expect_fresh(2, 8192).is_err());
        let problems = out.replace("\"problems\":[]", "\"problems\":[\"f000001.bin: gone\"]");
        assert!(Summary::parse(&problems).is_err());
        assert!(Summary::parse("no json here").is_err());
        assert!(Summary::parse("{\"paths\":[1]}").is_err());
    }

    #[test]
    fn long_output_is_cut() {
        assert_eq!(first_chars("abc", 5), "abc");
        assert_eq!(first_chars("abcdef", 3), "abc …");
        assert_eq!(first_chars("ééé", 2), "éé …");
    }
}
