//! `peerbox-bench scan`: how fast one Peerbox daemon scans and hashes a folder,
//! against the ceiling of this machine (shared/docs/BENCHMARKS.md, "scan + hash",
//! "rescan", "daemon peak RSS"). This module owns the two test trees, the
//! in-process 2-core `sha2` reference, the timing of each case and their report.
//!
//! Like `sync`, the command re-runs itself inside a loopback-only network
//! namespace (`netns.rs`), and each round gets a fresh loop-mounted ext4 image
//! (`ext4.rs`) holding both trees and every program's home. Needs root (the
//! namespace, the image, dropping the page cache). Each round, on the same files:
//!  1. initial scan + hash of 1,000 files of 1 MiB (random bytes; the "1 GiB" of
//!     BENCHMARKS.md) and of 100,000 files of 4 KiB (in subdirectories of
//!     1,000): timed from the `folder_add` call (what `peerbox folder add`
//!     sends) on a running daemon with a fresh home until its status shows the
//!     folder idle, then checked against what was written (file count and
//!     bytes: any difference fails the run). References on the same tree: the 2-core `sha2` limit (every
//!     file hashed with SHA-256 on 2 threads in this process, nothing stored)
//!     and, for orientation only, `find | xargs -P2 sha256sum`.
//!  2. rescan of the unchanged 100,000-file folder. The daemon has no command to
//!     rescan now, so the benchmark waits for its periodic full rescan
//!     (`FULL_RESCAN`, 60 s after the first scan) and times it from the `change`
//!     event that announces the scanning state until the status shows idle.
//!     Reference: Syncthing alone with the same tree, `POST /rest/db/scan`
//!     (which answers when the scan is done).
//!  3. cold start: the daemon stopped (SIGTERM) and started again on the same
//!     home, timed until its API answers with the folder present, and until the
//!     folder is idle (its start-up full scan done).
//!  4. the daemon's peak RSS (VmHWM) once it has indexed the 100,000 files.
//!
//! The page cache is dropped (`sync`, `drop_caches`) before every timed step on
//! either side, unless `--warm`, which instead reads each tree once untimed.
//! The daemon's state is read through its `change` event stream plus a status
//! call per event (and at least once a second), because each status call
//! reads the whole index and polling it hard would slow the scan it watches;
//! a state change is timed by the event that announced it (see [`wait_folder`]).
//!
//! Exit codes: 0 done (goals met or not: they are only reported); 1 failed
//! (not root, a Peerbox case that did not complete, or any wrong outcome such
//! as a daemon that indexed a different number of files than were written);
//! 130 interrupted.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::data::{self, CHUNK};
use crate::ext4::Image;
use crate::headline::{Headline, INFORMATION};
use crate::http::Events;
use crate::report::{fmt, median};
use crate::sync_peerbox::{Daemon, folder_status};
use crate::{netns, proc, syncthing};

/// Size of each file of the big tree.
const BIG_FILE: u64 = 1 << 20;
/// Size of each file of the small tree.
const SMALL_FILE: u64 = 4096;
/// Files per subdirectory of the small tree.
const PER_DIR: u32 = 1000;
/// Threads of the reference hasher: the cores of the machines this runs on.
const LIMIT_THREADS: usize = 2;
/// The daemon's periodic full rescan (crates/node/src/folders.rs, `FULL_RESCAN`):
/// the only way to get a full rescan of a running folder.
const PERIODIC_RESCAN: Duration = Duration::from_secs(60);
/// How long before the periodic rescan the page cache is dropped: well clear of
/// the tick, late enough that nothing reads the tree back in meanwhile.
const DROP_BEFORE_RESCAN: Duration = Duration::from_secs(8);
/// A status call at least this often while waiting, in case an event is missed.
const POLL: Duration = Duration::from_secs(1);
/// The daemon's least time between two `change` events (crates/cli/src/daemon.rs,
/// `EVENT_GAP`, 100 ms), with room for scheduling.
const EVENT_GAP: Duration = Duration::from_millis(150);
/// Goals.
const GOAL_LIMIT_RATIO: f64 = 0.8;
const GOAL_RSS_MIB: f64 = 150.0;

/// Options of `peerbox-bench scan`.
#[derive(Args, Debug)]
pub(crate) struct ScanArgs {
    /// Interleaved rounds; each makes both trees on a fresh ext4 image and runs every case on them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Files of 1 MiB in the big tree.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    big_files: u32,
    /// Files of 4 KiB in the small tree (also the folder of the rescan, cold start and RSS cases).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    small_files: u32,
    /// Keep the page cache warm (each tree read once, untimed) instead of dropping it before every timed step.
    #[arg(long)]
    warm: bool,
    /// Do not run (or install) Syncthing; no rescan reference.
    #[arg(long)]
    no_syncthing: bool,
    /// The peerbox binary [default: $PEERBOX_BIN, else `peerbox` next to this executable].
    #[arg(long, env = "PEERBOX_BIN", value_name = "PATH")]
    peerbox: Option<PathBuf>,
    /// Also write the table and goal lines to this file.
    #[arg(long, value_name = "FILE.md")]
    out: Option<PathBuf>,
    /// Also write the headline figures (for `peerbox-bench suite`) to this file.
    #[arg(long, value_name = "FILE.json")]
    headlines: Option<PathBuf>,
}

/// An outcome that is wrong, not merely slow (a daemon that indexed other files
/// than were written, a reference that hashed a different tree): always fatal.
#[derive(Debug)]
struct WrongOutcome(String);

impl std::fmt::Display for WrongOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WrongOutcome {}

fn wrong(msg: String) -> anyhow::Error {
    WrongOutcome(msg).into()
}

/// Runs the scan benchmark: outside the namespace, checks for root, installs
/// Syncthing if needed and re-runs this command inside; inside, runs the rounds.
pub(crate) fn main(args: ScanArgs) -> ExitCode {
    if proc::effective_uid() != Some(0) {
        eprintln!(
            "peerbox-bench scan needs root: it runs in its own network namespace, loop-mounts fresh ext4 images \
             and drops the page cache. Run it as root (e.g. `sudo bench/run scan`)."
        );
        return ExitCode::FAILURE;
    }
    let no_syncthing = args.no_syncthing;
    crate::sync::isolated(
        "the scan benchmark",
        no_syncthing,
        |ns| async move { inner(args, &ns).await },
        |e| e.downcast_ref::<WrongOutcome>().is_some(),
    )
}

/// One of the two test trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tree {
    /// 1 GiB in 1,000 files of 1 MiB.
    Big,
    /// 100,000 files of 4 KiB.
    Small,
}

impl Tree {
    const ALL: [Tree; 2] = [Tree::Big, Tree::Small];

    /// Its folder name (and Syncthing folder id).
    fn name(self) -> &'static str {
        match self {
            Tree::Big => "big",
            Tree::Small => "small",
        }
    }

    fn file_size(self) -> u64 {
        match self {
            Tree::Big => BIG_FILE,
            Tree::Small => SMALL_FILE,
        }
    }

    fn files(self, args: &ScanArgs) -> u32 {
        match self {
            Tree::Big => args.big_files,
            Tree::Small => args.small_files,
        }
    }

    fn bytes(self, args: &ScanArgs) -> u64 {
        u64::from(self.files(args)) * self.file_size()
    }

    fn label(self, args: &ScanArgs) -> String {
        let n = group(u64::from(self.files(args)));
        match self {
            // 1,000 × 1 MiB is the "1 GiB in 1,000 files" of BENCHMARKS.md, 2 % short of a GiB: say what it is.
            Tree::Big => format!("{n} files of 1 MiB ({})", crate::report::size_label(self.bytes(args))),
            Tree::Small => format!("{n} files of 4 KiB"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One tree's initial-scan figures in one round, seconds.
#[derive(Clone, Copy, Debug, Default)]
struct TreeRound {
    limit: Option<f64>,
    sha256sum: Option<f64>,
    peerbox: Option<f64>,
}

/// Every figure of one round.
#[derive(Clone, Debug, Default)]
struct Round {
    trees: [TreeRound; 2],
    /// Peerbox's periodic full rescan of the unchanged small tree, seconds.
    rescan: Option<f64>,
    /// Syncthing's `POST /rest/db/scan` of the same tree, seconds.
    st_rescan: Option<f64>,
    /// Syncthing's first scan of the tree, from its start until idle (orientation), seconds.
    st_initial: Option<f64>,
    /// Cold start: until the API answers with the folder present; until the folder is idle. Seconds.
    start_api: Option<f64>,
    start_idle: Option<f64>,
    /// Peak RSS of the daemon once it has indexed the small tree; and after its periodic rescan. Bytes.
    rss: Option<u64>,
    rss_after_rescan: Option<u64>,
    /// Peerbox cases that did not complete, with why.
    failed: Vec<String>,
}

/// Everything the rounds share.
struct Ctx {
    peerbox: PathBuf,
    syncthing: Option<syncthing::Syncthing>,
    args: ScanArgs,
    scratch: PathBuf,
    seed: u64,
}

async fn inner(args: ScanArgs, ns: &str) -> Result<bool> {
    netns::ensure_loopback_only(ns)?;
    // Dropped last (declared first): removes everything the rounds left.
    let crate::sync::Setup { peerbox, peerbox_version, syncthing: st, scratch } =
        crate::sync::Setup::make(ns, args.peerbox.clone(), args.no_syncthing, "scan").await?;
    eprintln!(
        "cache:     {}",
        if args.warm { "warm (each tree read once, untimed)" } else { "dropped before every timed step" }
    );

    let mut report = ScanReport::new(&args);
    let st_version = st.as_ref().ok().map(|s| s.version.clone());
    if let Err(why) = &st {
        report.notes.push(format!("Syncthing: {why}"));
    }
    let mut ctx = Ctx { peerbox, syncthing: st.ok(), args, scratch: scratch.path().to_owned(), seed: crate::seed() };
    // Both trees, with room for the ext4 inodes of the small one and every program's home and index.
    let image_size = (8u64 << 30).max(2 * (Tree::Big.bytes(&ctx.args) + u64::from(ctx.args.small_files) * 16384));

    for round in 1..=ctx.args.rounds {
        eprintln!("round {round}/{}", ctx.args.rounds);
        let image = Image::create(&ctx.scratch, &format!("round{round}"), image_size).await?;
        let mut r = Round::default();
        let result = run_round(&mut ctx, round, image.path(), &mut r, &mut report.notes).await;
        report.rounds.push(r);
        result?;
        image.remove().await?;
    }

    let text = report.render(&ctx.args, &peerbox_version, st_version.as_deref());
    println!();
    print!("{text}");
    if let Some(out) = &ctx.args.out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    crate::headline::write_if_asked(ctx.args.headlines.as_deref(), &report.headlines(&ctx.args))?;
    drop(scratch);
    Ok(!report.any_peerbox_failure())
}

/// One round on a fresh image: writes both trees, runs every case, and records
/// each figure in `r` as it comes. A Peerbox case that fails is recorded and
/// the cases that do not depend on it go on; a wrong outcome is an error.
async fn run_round(ctx: &mut Ctx, round: u32, image: &Path, r: &mut Round, notes: &mut Vec<String>) -> Result<()> {
    let logs = ctx.scratch.join(format!("round{round}-logs"));
    std::fs::create_dir_all(&logs)?;
    let seed = ctx.seed ^ u64::from(round).rotate_left(48);
    for tree in Tree::ALL {
        let t = Instant::now();
        let (dir, n) = (image.join(tree.name()), tree.files(&ctx.args));
        tokio::task::spawn_blocking(move || write_tree(&dir, tree, n, seed)).await??;
        eprintln!("  wrote {} in {:.1}s", tree.label(&ctx.args), t.elapsed().as_secs_f64());
    }
    sync_disks().await?;

    for tree in Tree::ALL {
        let dir = image.join(tree.name());
        let (n, bytes) = (u64::from(tree.files(&ctx.args)), tree.bytes(&ctx.args));
        let label = tree.name();
        if ctx.args.warm {
            let d = dir.clone();
            tokio::task::spawn_blocking(move || sha2_limit(&d, LIMIT_THREADS)).await??;
        }

        settle_cache(ctx.args.warm).await?;
        let t = Instant::now();
        let d = dir.clone();
        let (files, hashed) = tokio::task::spawn_blocking(move || sha2_limit(&d, LIMIT_THREADS)).await??;
        let secs = t.elapsed().as_secs_f64();
        if (files, hashed) != (n, bytes) {
            return Err(wrong(format!(
                "WRONG TREE: the sha2 reference hashed {files} files / {hashed} bytes in {label}, {n} / {bytes} were written"
            )));
        }
        eprintln!(
            "  {label:<5} sha2 limit ({LIMIT_THREADS} threads) {secs:.2}s ({:.0} MB/s)",
            bytes as f64 / secs / 1e6
        );
        r.trees[tree.index()].limit = Some(secs);

        settle_cache(ctx.args.warm).await?;
        let secs = sha256sum(&dir).await?;
        eprintln!("  {label:<5} find | xargs -P2 sha256sum {secs:.2}s ({:.0} MB/s)", bytes as f64 / secs / 1e6);
        r.trees[tree.index()].sha256sum = Some(secs);

        let home = image.join(format!("home-{label}"));
        let daemon = match initial_scan(ctx, tree, &dir, &home, &logs).await {
            Ok((secs, daemon, id, idle_at)) => {
                eprintln!(
                    "  {label:<5} Peerbox folder add → idle {secs:.2}s ({:.0} MB/s), {n} files indexed",
                    bytes as f64 / secs / 1e6
                );
                r.trees[tree.index()].peerbox = Some(secs);
                Some((daemon, id, idle_at))
            }
            Err(e) if e.downcast_ref::<WrongOutcome>().is_some() => return Err(e),
            Err(e) => {
                eprintln!("  {label} Peerbox initial scan FAILED: {e:#}");
                r.failed.push(format!("initial scan of {}: {e:#}", tree.label(&ctx.args)));
                None
            }
        };
        match (tree, daemon) {
            (Tree::Big, Some((daemon, ..))) => daemon.stop().await?,
            (Tree::Small, Some((daemon, id, idle_at))) => {
                held_folder(ctx, daemon, &id, idle_at, &home, &logs, r).await?;
                if ctx.syncthing.is_some() {
                    syncthing_rescan(ctx, &dir, &image.join("st-home"), &logs, r, notes, round).await?;
                }
            }
            (_, None) => {}
        }
    }
    Ok(())
}

/// Cases 2–4 on the daemon that has just indexed the small tree: its peak RSS,
/// its periodic rescan, then a cold start on the same home. Failures are recorded in `r`.
async fn held_folder(
    ctx: &Ctx,
    mut daemon: Daemon,
    id: &str,
    idle_at: Instant,
    home: &Path,
    logs: &Path,
    r: &mut Round,
) -> Result<()> {
    let n = u64::from(ctx.args.small_files);
    // Let whatever follows indexing (flushes, compaction) happen before reading the peak.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.ensure_running()?;
    r.rss = daemon.peak_rss();
    eprintln!("  small Peerbox peak RSS holding {n} files: {} MiB", fmt(r.rss.map(crate::mib), 0));

    match periodic_rescan(ctx, &mut daemon, id, idle_at, n).await {
        Ok(secs) => {
            eprintln!("  small Peerbox periodic full rescan {secs:.2}s");
            r.rescan = Some(secs);
        }
        Err(e) if e.downcast_ref::<WrongOutcome>().is_some() => return Err(e),
        Err(e) => {
            eprintln!("  small Peerbox rescan FAILED: {e:#}\n  its stderr ends:\n{}", daemon.stderr_tail());
            r.failed.push(format!("rescan: {e:#}"));
        }
    }
    r.rss_after_rescan = daemon.peak_rss();
    daemon.stop().await?;

    match cold_start(ctx, id, home, logs, n).await {
        Ok((api, idle)) => {
            eprintln!("  small Peerbox cold start: API answers after {api:.2}s, folder idle after {idle:.2}s");
            (r.start_api, r.start_idle) = (Some(api), Some(idle));
        }
        Err(e) if e.downcast_ref::<WrongOutcome>().is_some() => return Err(e),
        Err(e) => {
            eprintln!("  small Peerbox cold start FAILED: {e:#}");
            r.failed.push(format!("cold start: {e:#}"));
        }
    }
    Ok(())
}

/// Case 1 for Peerbox: a daemon with a fresh `home`, then `folder_add` of `dir`,
/// timed until the status shows the folder idle. Returns the seconds, the
/// daemon (still running), the folder id and when it was seen idle.
async fn initial_scan(
    ctx: &Ctx,
    tree: Tree,
    dir: &Path,
    home: &Path,
    logs: &Path,
) -> Result<(f64, Daemon, String, Instant)> {
    let name = format!("peerbox-daemon-{}", tree.name());
    let mut daemon = Daemon::start(&ctx.peerbox, home, logs, &name).await?;
    let mut changes = daemon.changes().await?;
    // After the daemon's own start-up, so only the tree is read from disk in the measurement.
    settle_cache(ctx.args.warm).await?;
    changes.clear();
    let start = Instant::now();
    let added = daemon
        .call(json!({ "op": "folder_add", "path": dir, "name": tree.name(), "mode": "send-receive" }))
        .await
        .context("folder_add")?;
    let id = added["id"].as_str().context("folder_add answered no id")?.to_owned();
    let limit = Duration::from_secs(600 + tree.bytes(&ctx.args) / 20_000_000 + u64::from(tree.files(&ctx.args)) / 100);
    let (seen, f) = wait_folder(&mut daemon, &mut changes, &id, start, limit, is_idle).await.with_context(|| {
        format!("waiting for the folder to be indexed; the daemon's stderr ends:\n{}", daemon.stderr_tail())
    })?;
    check_indexed(&f, tree.name(), u64::from(tree.files(&ctx.args)), tree.bytes(&ctx.args))?;
    Ok((seen.duration_since(start).as_secs_f64(), daemon, id, seen))
}

/// Case 2 for Peerbox: waits for the daemon's periodic full rescan of folder
/// `id` (first seen idle at `idle_at`) and times it from the `change` event
/// whose status shows it scanning until a status shows it idle again.
async fn periodic_rescan(ctx: &Ctx, daemon: &mut Daemon, id: &str, idle_at: Instant, n: u64) -> Result<f64> {
    let mut changes = daemon.changes().await?;
    let due = idle_at + PERIODIC_RESCAN;
    tokio::time::sleep_until((due - DROP_BEFORE_RESCAN).into()).await;
    settle_cache(ctx.args.warm).await?;
    changes.clear();
    let deadline = due + Duration::from_secs(60);
    let started = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        daemon.ensure_running()?;
        let Some(at) = changes.next(left).await? else {
            bail!("no periodic rescan seen within {} s of the first scan", (deadline - idle_at).as_secs());
        };
        let s = daemon.status().await?;
        let state = folder_status(&s, id).and_then(|f| f["state"]["state"].as_str()).unwrap_or_default();
        if state == "scanning" {
            break at;
        }
    };
    let (seen, f) = wait_folder(daemon, &mut changes, id, started, Duration::from_secs(600), is_idle).await?;
    check_indexed(&f, "small (after its rescan)", n, n * SMALL_FILE)?;
    // What the end would be off by if it were taken from the status answer.
    let t = Instant::now();
    daemon.status().await?;
    eprintln!("  (one status call with {n} files indexed takes {:.0} ms)", t.elapsed().as_secs_f64() * 1000.0);
    Ok(seen.duration_since(started).as_secs_f64())
}

/// Case 3: the daemon started again on `home` (it was stopped by the caller).
/// Returns (seconds until the API answers status with the folder, seconds until the folder is idle).
async fn cold_start(ctx: &Ctx, id: &str, home: &Path, logs: &Path, n: u64) -> Result<(f64, f64)> {
    settle_cache(ctx.args.warm).await?;
    let start = Instant::now();
    let mut daemon = Daemon::start(&ctx.peerbox, home, logs, "peerbox-daemon-restart").await?;
    let limit = Duration::from_secs(600);
    let api = loop {
        daemon.ensure_running()?;
        if let Ok(s) = daemon.status().await
            && folder_status(&s, id).is_some()
        {
            break start.elapsed().as_secs_f64();
        }
        if start.elapsed() > limit {
            bail!("the restarted daemon's status did not list folder {id} within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut changes = daemon.changes().await?;
    let waited = wait_folder(&mut daemon, &mut changes, id, start, limit, is_idle).await;
    let result = match waited {
        Ok((seen, f)) => {
            check_indexed(&f, "small (after a restart)", n, n * SMALL_FILE)?;
            Ok((api, seen.duration_since(start).as_secs_f64()))
        }
        Err(e) => Err(e.context(format!("the restarted daemon's stderr ends:\n{}", daemon.stderr_tail()))),
    };
    // The daemon waits for open event streams before it exits on SIGTERM.
    drop(changes);
    daemon.stop().await?;
    result
}

/// Case 2's reference: Syncthing alone on the same tree, first scan (from its
/// start, orientation), then the timed `POST /rest/db/scan`. A Syncthing that
/// cannot run is noted and left out from then on; one that indexes a different
/// number of files is a wrong outcome.
async fn syncthing_rescan(
    ctx: &mut Ctx,
    dir: &Path,
    home: &Path,
    logs: &Path,
    r: &mut Round,
    notes: &mut Vec<String>,
    round: u32,
) -> Result<()> {
    let Some(st) = &ctx.syncthing else { return Ok(()) };
    let n = u64::from(ctx.args.small_files);
    let warm = ctx.args.warm;
    let run = async {
        std::fs::create_dir_all(home)?;
        let start = Instant::now();
        let mut solo = syncthing::Solo::start(st, home, Tree::Small.name(), dir, logs).await?;
        let first = solo.wait_indexed(n, Duration::from_secs(1800)).await;
        let first = first.with_context(|| format!("its first scan; its log ends:\n{}", solo.stderr_tail()))?;
        let initial = start.elapsed().as_secs_f64();
        let got = first["localFiles"].as_u64().unwrap_or(0);
        if got != n {
            return Err(wrong(format!(
                "WRONG COUNT: Syncthing indexed {got} files in the small tree, {n} were written"
            )));
        }
        settle_cache(warm).await?;
        let t = Instant::now();
        solo.scan().await.context("POST /rest/db/scan")?;
        let secs = t.elapsed().as_secs_f64();
        let s = solo.status().await?;
        let got = s["localFiles"].as_u64().unwrap_or(0);
        if got != n {
            return Err(wrong(format!("WRONG COUNT: after its rescan Syncthing has {got} files, {n} were written")));
        }
        solo.stop().await?;
        anyhow::Ok((initial, secs))
    };
    match run.await {
        Ok((initial, secs)) => {
            eprintln!(
                "  small Syncthing first scan (from its start) {initial:.2}s; rescan (POST /rest/db/scan) {secs:.2}s"
            );
            (r.st_initial, r.st_rescan) = (Some(initial), Some(secs));
        }
        Err(e) if e.downcast_ref::<WrongOutcome>().is_some() => return Err(e),
        Err(e) => {
            // A reference that cannot run is reported, not fatal.
            eprintln!("  Syncthing failed, skipping it from now on: {e:#}");
            notes.push(format!("Syncthing failed in round {round}: {}", crate::first_line(&format!("{e:#}"))));
            ctx.syncthing = None;
        }
    }
    Ok(())
}

fn is_idle(f: &Value) -> bool {
    f["state"]["state"].as_str() == Some("idle")
}

/// Checks an idle folder's status against what was written.
fn check_indexed(f: &Value, what: &str, files: u64, bytes: u64) -> Result<()> {
    let (got, got_bytes) = (f["local_files"].as_u64().unwrap_or(0), f["local_bytes"].as_u64().unwrap_or(0));
    if (got, got_bytes) != (files, bytes) {
        return Err(wrong(format!(
            "WRONG COUNT: the daemon indexed {got} files / {got_bytes} bytes in {what}, {files} / {bytes} were written \
             (folder status: {f})"
        )));
    }
    if let Some(e) = f["state"]["error"].as_str() {
        return Err(wrong(format!("the daemon reports an error for {what}: {e}")));
    }
    Ok(())
}

/// Waits until folder `id`'s status satisfies `done`: a status call after each
/// `change` event, and at least every [`POLL`]. Returns when it happened and the
/// folder's status then.
///
/// A status call with 100,000 files indexed takes a quarter of a second, so the
/// answer that shows the change comes late. The change itself bumped an event,
/// sent at once or at most [`EVENT_GAP`] later: the end is the last event that
/// arrived after the previous answer (which did not show it yet) and within
/// that gap of this one, never later than this answer.
async fn wait_folder(
    daemon: &mut Daemon,
    changes: &mut Events,
    id: &str,
    start: Instant,
    limit: Duration,
    done: fn(&Value) -> bool,
) -> Result<(Instant, Value)> {
    let (mut before, mut trigger) = (start, None);
    loop {
        daemon.ensure_running()?;
        let s = daemon.status().await?;
        let seen = Instant::now();
        let f = folder_status(&s, id);
        if let Some(f) = f
            && done(f)
        {
            let mut arrivals: Vec<Instant> = trigger.into_iter().collect();
            arrivals.extend(changes.collect_until(seen + EVENT_GAP).await);
            let end = arrivals.into_iter().filter(|a| *a > before).max().map_or(seen, |a| a.min(seen));
            eprintln!(
                "  (timed by its change event; the status answer showing it came {:.0} ms later)",
                seen.duration_since(end).as_secs_f64() * 1000.0
            );
            return Ok((end, f.clone()));
        }
        if start.elapsed() > limit {
            bail!("not there within {} s; the folder's status: {}", limit.as_secs(), f.cloned().unwrap_or(Value::Null));
        }
        before = seen;
        trigger = changes.next(POLL).await?;
    }
}

/// Writes `n` files of random bytes for `tree` under `dir`, one file's bytes in
/// memory at a time. Blocking.
fn write_tree(dir: &Path, tree: Tree, n: u32, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let len = usize::try_from(tree.file_size()).context("file size")?;
    for i in 0..n {
        let path = match tree {
            Tree::Big => dir.join(format!("f{i:04}.bin")),
            Tree::Small => {
                let sub = dir.join(format!("d{:03}", i / PER_DIR));
                if i % PER_DIR == 0 {
                    std::fs::create_dir_all(&sub).with_context(|| format!("cannot create {}", sub.display()))?;
                }
                sub.join(format!("f{i:06}.bin"))
            }
        };
        let bytes = data::random_bytes(seed ^ (u64::from(i) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), len);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The 2-core `sha2` limit: walks `root` and hashes every regular file with
/// SHA-256 on `threads` threads taking files from one shared list, storing
/// nothing. Returns (files, bytes). Blocking.
fn sha2_limit(root: &Path, threads: usize) -> Result<(u64, u64)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let kind = e.file_type().with_context(|| format!("cannot read {}", e.path().display()))?;
            if kind.is_dir() {
                dirs.push(e.path());
            } else if kind.is_file() {
                files.push(e.path());
            }
        }
    }
    // Name order is the order the files were written in, so mostly disk order: read
    // in the order of directory entries (hashed on ext4), a cold tree costs seeks.
    files.sort_unstable();
    let next = AtomicUsize::new(0);
    let hash_some = || -> Result<(u64, u64, u8)> {
        let mut buf = vec![0u8; CHUNK];
        let (mut n, mut bytes, mut fold) = (0u64, 0u64, 0u8);
        while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
            let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut h = Sha256::new();
            loop {
                let got = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
                if got == 0 {
                    break;
                }
                h.update(&buf[..got]);
                bytes += got as u64;
            }
            // Uses every digest, so none of the hashing can be optimised away.
            fold ^= h.finalize()[0];
            n += 1;
        }
        Ok((n, bytes, fold))
    };
    let results: Vec<Result<(u64, u64, u8)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(hash_some)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a hashing thread panicked"))))
            .collect()
    });
    let (mut n, mut bytes, mut fold) = (0, 0, 0u8);
    for r in results {
        let (a, b, c) = r?;
        (n, bytes, fold) = (n + a, bytes + b, fold ^ c);
    }
    std::hint::black_box(fold);
    Ok((n, bytes))
}

/// The orientation reference: coreutils `sha256sum` over the tree, two at a time.
async fn sha256sum(dir: &Path) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; find \"$1\" -type f -print0 | xargs -0 -P2 -n 500 sha256sum > /dev/null",
            "bench",
        ])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot run find | xargs sha256sum")?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("find | xargs sha256sum failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(secs)
}

async fn sync_disks() -> Result<()> {
    let ok = Command::new("sync").status().await.is_ok_and(|s| s.success());
    if !ok {
        bail!("sync(1) failed");
    }
    Ok(())
}

/// Before a timed step: writes everything back and drops the page cache, so
/// every side reads the tree from disk alike; nothing with `--warm`.
async fn settle_cache(warm: bool) -> Result<()> {
    if warm {
        return Ok(());
    }
    sync_disks().await?;
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").context("cannot drop the page cache (/proc/sys/vm/drop_caches)")
}

/// 100000 → "100,000".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every figure of one invocation.
struct ScanReport {
    rounds: Vec<Round>,
    notes: Vec<String>,
    /// Rounds asked for (a failed run has fewer in `rounds`).
    planned: u32,
}

impl ScanReport {
    fn new(args: &ScanArgs) -> Self {
        Self { rounds: Vec::new(), notes: Vec::new(), planned: args.rounds }
    }

    fn any_peerbox_failure(&self) -> bool {
        self.rounds.len() < self.planned as usize || self.rounds.iter().any(|r| !r.failed.is_empty())
    }

    fn each(&self, pick: impl Fn(&Round) -> Option<f64>) -> Vec<Option<f64>> {
        self.rounds.iter().map(pick).collect()
    }

    fn median_of(&self, pick: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
        median(self.rounds.iter().filter_map(pick).collect())
    }

    /// Median over rounds of `num ÷ den` taken within each round.
    fn ratio(&self, num: impl Fn(&Round) -> Option<f64>, den: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
        median(self.rounds.iter().filter_map(|r| Some(num(r)? / den(r)?)).collect())
    }

    /// The suite's lines, against the performance goals (issue 8).
    fn headlines(&self, args: &ScanArgs) -> Vec<Headline> {
        let secs = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.2} s"));
        let small = group(u64::from(args.small_files));
        let mut out = Vec::new();
        for tree in Tree::ALL {
            let i = tree.index();
            let ratio = self.ratio(|r| r.trees[i].limit, |r| r.trees[i].peerbox);
            out.push(Headline {
                case: format!("initial scan + hash, {}", tree.label(args)),
                reference: "2-core sha2 limit".into(),
                peerbox: secs(self.median_of(|r| r.trees[i].peerbox)),
                theirs: secs(self.median_of(|r| r.trees[i].limit)),
                ratio,
                goal: format!("ratio ≥ {GOAL_LIMIT_RATIO}"),
                met: ratio.map(|r| r >= GOAL_LIMIT_RATIO),
            });
        }
        let ratio = self.ratio(|r| r.st_rescan, |r| r.rescan);
        out.push(Headline {
            case: format!("rescan of an unchanged {small}-file folder"),
            reference: "Syncthing".into(),
            peerbox: secs(self.median_of(|r| r.rescan)),
            theirs: secs(self.median_of(|r| r.st_rescan)),
            ratio,
            goal: "faster than Syncthing".into(),
            met: ratio.map(|r| r > 1.0),
        });
        let start = self.median_of(|r| r.start_api);
        out.push(Headline {
            case: format!("cold start with {small} files indexed (API answers)"),
            reference: String::new(),
            peerbox: secs(start),
            theirs: String::new(),
            ratio: None,
            goal: INFORMATION.into(),
            met: None,
        });
        let rss = self.rounds.iter().filter_map(|r| r.rss).max().map(crate::mib);
        out.push(Headline {
            case: format!("daemon peak RSS holding {small} files"),
            reference: String::new(),
            peerbox: rss.map_or_else(String::new, |r| format!("{r:.0} MiB")),
            theirs: String::new(),
            ratio: None,
            goal: format!("< {GOAL_RSS_MIB:.0} MiB"),
            met: rss.map(|r| r < GOAL_RSS_MIB),
        });
        out
    }

    fn render(&self, args: &ScanArgs, peerbox_version: &str, syncthing_version: Option<&str>) -> String {
        let n = self.rounds.len();
        let small = group(u64::from(args.small_files));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## peerbox-bench scan: scan + hash of a folder, against the 2-core sha2 limit and Syncthing\n"
        );
        let _ = writeln!(
            out,
            "{n} round{}, each on a fresh ext4 image (loop device with direct I/O) holding both trees (random bytes) and every program's home; \
             page cache {}. Initial scan: from the `folder_add` call on a running daemon (fresh home) until its status \
             shows the folder idle, checked against the files written; references on the same files in the same round: \
             the 2-core sha2 limit (SHA-256 of every file with the `sha2` crate on {LIMIT_THREADS} threads, in process, \
             no index) and `find | xargs -0 -P2 -n 500 sha256sum` (coreutils, no SHA-NI; orientation only). \
             Rescan: the daemon has no rescan command, so its periodic full rescan (60 s after the first scan) is timed \
             from the change event announcing it until the status shows idle; Syncthing alone on the same tree, \
             `POST /rest/db/scan`. Times are medians over rounds; ratios are taken within each round, then the median; \
             MB/s = 10^6 bytes/s. {}.\n",
            if n == 1 { "" } else { "s" },
            if args.warm {
                "warm (each tree read once, untimed, before its steps)"
            } else {
                "dropped before every timed step"
            },
            crate::report::versions(peerbox_version, syncthing_version),
        );
        let _ = writeln!(out, "| case | Peerbox | reference | ratio | each round: Peerbox / reference (ratio) |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");

        let secs = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2} s"));
        let rate = |v: Option<f64>, bytes: u64| {
            v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2} s ({:.0} MB/s)", bytes as f64 / v / 1e6))
        };
        let rounds = |p: &dyn Fn(&Round) -> Option<f64>, q: &dyn Fn(&Round) -> Option<f64>| {
            self.rounds
                .iter()
                .map(|r| {
                    let ratio = match (p(r), q(r)) {
                        (Some(a), Some(b)) => format!(" ({:.2})", b / a),
                        _ => String::new(),
                    };
                    format!("{} / {}{ratio}", fmt(p(r), 2), fmt(q(r), 2))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        for tree in Tree::ALL {
            let i = tree.index();
            let bytes = tree.bytes(args);
            let p = move |r: &Round| r.trees[i].peerbox;
            let l = move |r: &Round| r.trees[i].limit;
            let c = move |r: &Round| r.trees[i].sha256sum;
            let _ = writeln!(
                out,
                "| initial scan + hash, {}: Peerbox vs the 2-core sha2 limit | {} | {} | {} | {} |",
                tree.label(args),
                rate(self.median_of(p), bytes),
                rate(self.median_of(l), bytes),
                fmt(self.ratio(l, p), 2),
                rounds(&p, &l),
            );
            let _ = writeln!(
                out,
                "| the same, `sha256sum` -P2 (orientation; ratio = its time ÷ Peerbox's) | – | {} | {} | {} |",
                rate(self.median_of(c), bytes),
                fmt(self.ratio(c, p), 2),
                rounds(&p, &c),
            );
        }
        let p = |r: &Round| r.rescan;
        let s = |r: &Round| r.st_rescan;
        let _ = writeln!(
            out,
            "| rescan of the unchanged {small}-file folder: Peerbox (periodic) vs Syncthing (ratio = Syncthing ÷ Peerbox) | {} | {} | {} | {} |",
            secs(self.median_of(p)),
            secs(self.median_of(s)),
            fmt(self.ratio(s, p), 2),
            rounds(&p, &s),
        );
        let list = |pick: &dyn Fn(&Round) -> Option<f64>| {
            self.each(pick).iter().map(|v| secs(*v)).collect::<Vec<_>>().join(", ")
        };
        let a = |r: &Round| r.start_api;
        let _ = writeln!(
            out,
            "| cold start with {small} files indexed: until the API answers status with the folder | {} | – | – | {} |",
            secs(self.median_of(a)),
            list(&a),
        );
        let d = |r: &Round| r.start_idle;
        let _ = writeln!(
            out,
            "| cold start: until the folder is idle (its start-up full scan done) | {} | – | – | {} |",
            secs(self.median_of(d)),
            list(&d),
        );
        let m = |r: &Round| r.rss.map(crate::mib);
        let rss = self.rounds.iter().filter_map(|r| r.rss).max().map(crate::mib);
        let _ = writeln!(
            out,
            "| daemon peak RSS (VmHWM) holding {small} files, highest round | {} MiB | – | – | {} |",
            fmt(rss, 0),
            self.each(m).iter().map(|v| format!("{} MiB", fmt(*v, 0))).collect::<Vec<_>>().join(", "),
        );
        out.push('\n');

        for tree in Tree::ALL {
            let i = tree.index();
            let ratio = self.ratio(|r| r.trees[i].limit, |r| r.trees[i].peerbox);
            let _ = writeln!(
                out,
                "initial scan of {}: limit time / Peerbox time {} (goal >= {GOAL_LIMIT_RATIO}): {}",
                tree.label(args),
                fmt(ratio, 2),
                crate::report::verdict(ratio.map(|r| r >= GOAL_LIMIT_RATIO)),
            );
        }
        let _ = writeln!(
            out,
            "rescan of {small} unchanged files: Syncthing time / Peerbox time {} (> 1: Peerbox is faster)",
            fmt(self.ratio(s, p), 2),
        );
        let _ = writeln!(
            out,
            "daemon peak RSS holding {small} files {} MiB (goal < {GOAL_RSS_MIB:.0} MiB): {}",
            fmt(rss, 0),
            crate::report::verdict(rss.map(|r| r < GOAL_RSS_MIB)),
        );
        let st_initial = self.median_of(|r| r.st_initial);
        if st_initial.is_some() {
            let _ = writeln!(
                out,
                "(orientation: Syncthing's own first scan of the {small} files, from its start until idle: {})",
                secs(st_initial)
            );
        }
        let after = self.rounds.iter().filter_map(|r| r.rss_after_rescan).max().map(crate::mib);
        if after.is_some() {
            let _ = writeln!(out, "(the same daemon's peak RSS after its periodic rescan: {} MiB)", fmt(after, 0));
        }
        for (i, r) in self.rounds.iter().enumerate() {
            for f in &r.failed {
                let _ = writeln!(out, "round {}: Peerbox FAILED {}", i + 1, crate::first_line(f).replace('|', "/"));
            }
        }
        if self.rounds.len() < self.planned as usize {
            let _ = writeln!(out, "only {} of {} rounds ran", self.rounds.len(), self.planned);
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ScanArgs,
    }

    fn args() -> ScanArgs {
        Cli::parse_from(["scan"]).args
    }

    #[test]
    fn groups_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(100_000), "100,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn limit_hashes_every_file_once() -> Result<()> {
        let dir = tempfile::tempdir()?;
        write_tree(&dir.path().join("s"), Tree::Small, 2 * PER_DIR + 3, 1)?;
        assert_eq!(
            sha2_limit(&dir.path().join("s"), 2)?,
            (u64::from(2 * PER_DIR + 3), u64::from(2 * PER_DIR + 3) * 4096)
        );
        write_tree(&dir.path().join("b"), Tree::Big, 3, 1)?;
        assert_eq!(sha2_limit(&dir.path().join("b"), 2)?, (3, 3 << 20));
        Ok(())
    }

    #[test]
    fn ratios_are_taken_within_rounds() {
        let a = args();
        let mut r = ScanReport::new(&a);
        for slow in [1.0, 2.0, 1.0] {
            let tree = TreeRound { limit: Some(1.0 * slow), sha256sum: Some(4.0 * slow), peerbox: Some(1.25 * slow) };
            r.rounds.push(Round {
                trees: [tree, tree],
                rescan: Some(0.5 * slow),
                st_rescan: Some(2.0),
                start_api: Some(0.2),
                start_idle: Some(1.0),
                rss: Some(100 << 20),
                ..Default::default()
            });
        }
        assert_eq!(r.ratio(|r| r.trees[0].limit, |r| r.trees[0].peerbox), Some(0.8));
        assert_eq!(r.ratio(|r| r.st_rescan, |r| r.rescan), Some(4.0));
        let text = r.render(&a, "peerbox 0.1.0", Some("syncthing v1.19.2"));
        assert!(text.contains("limit time / Peerbox time 0.80 (goal >= 0.8): met"), "{text}");
        assert!(text.contains("Syncthing time / Peerbox time 4.00 (> 1: Peerbox is faster)"), "{text}");
        assert!(text.contains("holding 100,000 files 100 MiB (goal < 150 MiB): met"), "{text}");
        assert!(text.contains("1,000 files of 1 MiB (1000 MiB)"), "{text}");
        let h = r.headlines(&a);
        assert_eq!((h[0].ratio, h[0].met), (Some(0.8), Some(true)));
        assert_eq!((h[2].ratio, h[2].met, h[2].reference.as_str()), (Some(4.0), Some(true), "Syncthing"));
        assert_eq!((h[4].peerbox.as_str(), h[4].met), ("100 MiB", Some(true)));
        assert!(!r.any_peerbox_failure());
        r.rounds[1].failed.push("rescan: no periodic rescan seen".into());
        assert!(r.any_peerbox_failure());
        assert!(r.render(&a, "", None).contains("round 2: Peerbox FAILED rescan"));
    }
}
