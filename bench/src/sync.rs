//! `peerbox-bench sync`: folder sync between two devices on one machine,
//! Peerbox against Syncthing run in the same invocation
//! (shared/docs/BENCHMARKS.md, "folder sync A → B" and "change → peer latency").
//!
//! The command re-runs itself inside a fresh network namespace that has only
//! loopback (`netns.rs`: `ip netns add`, `ip netns exec`; deleted at the end), so both
//! Peerbox daemons, both Syncthing instances and the benchmark's own API
//! polling are on 127.0.0.1 there and nothing can leave the machine. Needs root
//! (the namespace and the loop-mounted ext4 images).
//!
//! Each round makes a fresh ext4 image and runs, on it, Syncthing (the
//! reference) and then Peerbox, each as two devices A and B sharing one folder
//! per case, both sides joined and idle before anything is timed:
//!  1. change → peer latency: a file of a few bytes written in A, polled in B
//!     every 5 ms until it holds the right bytes; several samples per round.
//!  2. many small files (10,000 × 4 KiB): written in A, timed until all are in B
//!     (B's folder polled every 25 ms); then B's completion is confirmed (Peerbox:
//!     status `need_files` 0; Syncthing: REST completion 100) and every file compared.
//!  3. one big file (1 GiB): written and fsynced beside A's folder on the same
//!     file system, then renamed into it ("dropped in"); timed until it is whole in
//!     B; confirmed and hashed like case 2.
//!
//! Syncthing's throughput folders have the watcher off and are scanned through
//! `POST /rest/db/scan` right after the files are in place; its latency folder
//! has the watcher on with its minimum delay, 1 s. With `--with-rss`, one more
//! case: the peak RSS of a Peerbox daemon that has added and indexed a
//! 100,000-file folder (absolute MiB).
//!
//! Exit codes: 0 done (goals met or not); 1 failed (a Peerbox case that did not
//! complete, or any copy with wrong bytes); 130 interrupted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::process::Command;

use crate::data::{self, WrongBytes};
use crate::ext4::Image;
use crate::headline::Headline;
use crate::report::{fmt, median};
use crate::{netns, sync_peerbox, syncthing};

/// Folder (and Syncthing folder id) per case.
const LATENCY: &str = "latency";
const SMALL: &str = "small";
const BIG: &str = "big";
/// Goals.
const GOAL_LATENCY_MS: f64 = 1000.0;
const GOAL_LATENCY_IDEAL_MS: f64 = 300.0;
const GOAL_RSS_MIB: f64 = 150.0;
const GOAL_SMALL_SECS: f64 = 1.5;
const GOAL_SMALL_RATIO: f64 = 5.0;
const GOAL_BIG_RATIO: f64 = 2.0;

/// Options of `peerbox-bench sync`.
#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// Interleaved rounds; each runs every case for Syncthing, then for Peerbox, on a fresh ext4 image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Change → peer latency samples per round and program.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    latency_samples: u32,
    /// Number of 4 KiB files in the small-files case.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    files: u32,
    /// Size of the big file: 1GiB, 256MiB, ... (KiB/MiB/GiB are binary, KB/MB/GB decimal).
    #[arg(long, default_value = "1GiB", value_parser = data::parse_size)]
    size: u64,
    /// Also measure the peak RSS of a daemon holding a 100,000-file folder (creating them takes a while).
    #[arg(long)]
    with_rss: bool,
    /// Files in the --with-rss folder.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    rss_files: u32,
    /// Do not run (or install) Syncthing; Peerbox figures only.
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

/// Runs the sync benchmark: outside the namespace, makes it and re-runs this
/// command inside; inside, runs the cases.
pub(crate) fn main(args: SyncArgs) -> ExitCode {
    let no_syncthing = args.no_syncthing;
    isolated(
        "the sync benchmark",
        no_syncthing,
        |ns| async move { inner(args, &ns).await },
        |e| e.downcast_ref::<WrongBytes>().is_some(),
    )
}

/// Runs a benchmark that compares with Syncthing in a loopback-only namespace:
/// outside it, installs Syncthing if needed (this side still has the network)
/// and runs this command again inside; inside, runs `inner` until it ends or
/// is interrupted (dropping it stops every child, unmounts the images and
/// removes the scratch folder). `wrong` tells a wrong outcome from other errors.
pub(crate) fn isolated<F, Fut>(what: &str, no_syncthing: bool, inner: F, wrong: fn(&anyhow::Error) -> bool) -> ExitCode
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let Some(runtime) = crate::runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        if let Some(ns) = netns::current() {
            tokio::select! {
                r = inner(ns) => crate::exit_code(r, wrong),
                () = crate::interrupted() => {
                    eprintln!("\npeerbox-bench: interrupted; cleaning up");
                    ExitCode::from(130)
                }
            }
        } else {
            if !no_syncthing && let Err(why) = syncthing::probe(true).await {
                // Only to install it here when missing; the run inside probes again.
                eprintln!("syncthing: {why}");
            }
            match netns::rerun_inside(what).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("peerbox-bench: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    })
}

/// `n` random bytes as lowercase hex (API keys for the Syncthing instances).
pub(crate) fn random_hex(n: usize) -> String {
    hex::encode(data::random_bytes(crate::seed(), n))
}

/// Which program a pair runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Peerbox,
    Syncthing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Peerbox => "Peerbox",
            Kind::Syncthing => "Syncthing",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Kind::Peerbox => "peerbox",
            Kind::Syncthing => "syncthing",
        }
    }
}

/// Two devices of either program, sharing the three case folders.
enum Pair {
    Peerbox(sync_peerbox::Pair),
    Syncthing(syncthing::Pair),
}

impl Pair {
    fn a_dir(&self, folder: &str) -> Result<PathBuf> {
        match self {
            Pair::Peerbox(p) => Ok(p.a_dir(folder)?.to_owned()),
            Pair::Syncthing(p) => Ok(p.a_dir(folder)),
        }
    }

    fn b_dir(&self, folder: &str) -> Result<PathBuf> {
        match self {
            Pair::Peerbox(p) => Ok(p.b_dir(folder)?.to_owned()),
            Pair::Syncthing(p) => Ok(p.b_dir(folder)),
        }
    }

    /// After the files are in place in A: Syncthing's throughput folders are
    /// scanned on request; Peerbox (and Syncthing's latency folder) rely on the watcher.
    fn changed(&self, folder: &str) -> Option<tokio::task::JoinHandle<Result<()>>> {
        match self {
            Pair::Syncthing(p) if folder != LATENCY => Some(p.scan(folder)),
            _ => None,
        }
    }

    async fn confirm(&mut self, folder: &str, files: u64, limit: Duration) -> Result<()> {
        match self {
            Pair::Peerbox(p) => p.confirm(folder, files, limit).await,
            Pair::Syncthing(p) => p.confirm(folder, files, limit).await,
        }
    }

    async fn diagnosis(&self) -> String {
        match self {
            Pair::Peerbox(p) => p.diagnosis().await,
            Pair::Syncthing(p) => p.diagnosis().await,
        }
    }

    fn peak_rss(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Pair::Peerbox(p) => p.peak_rss(),
            Pair::Syncthing(p) => p.peak_rss(),
        }
    }

    async fn stop(self) -> Result<()> {
        match self {
            Pair::Peerbox(p) => p.stop().await,
            Pair::Syncthing(p) => p.stop().await,
        }
    }
}

/// One program's figures in one round.
#[derive(Clone, Debug, Default)]
struct SysRound {
    /// Latency samples, ms.
    latency_ms: Vec<f64>,
    /// Seconds for the small files.
    small: Option<f64>,
    /// Seconds for the big file.
    big: Option<f64>,
    /// Peak RSS of A and B over the round's cases, bytes.
    rss: (Option<u64>, Option<u64>),
    /// Cases that did not complete, with why.
    failed: Vec<String>,
}

/// The --with-rss case.
struct RssResult {
    files: u64,
    peak: Option<u64>,
    index_secs: f64,
}

/// Every figure of one invocation.
struct SyncReport {
    files: u32,
    size: u64,
    latency_samples: u32,
    /// Per round: [Peerbox, Syncthing].
    rounds: Vec<[Option<SysRound>; 2]>,
    rss: Option<Result<RssResult, String>>,
    notes: Vec<String>,
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Peerbox => 0,
        Kind::Syncthing => 1,
    }
}

/// Everything the runs share.
struct Ctx {
    peerbox: PathBuf,
    seed: u64,
    args: SyncArgs,
    scratch: PathBuf,
}

/// What a namespaced benchmark starts from: the binaries to compare and a scratch
/// folder (removed when dropped), said on stderr.
pub(crate) struct Setup {
    pub(crate) peerbox: PathBuf,
    pub(crate) peerbox_version: String,
    pub(crate) syncthing: Result<syncthing::Syncthing, String>,
    pub(crate) scratch: tempfile::TempDir,
}

impl Setup {
    pub(crate) async fn make(ns: &str, peerbox: Option<PathBuf>, no_syncthing: bool, mode: &str) -> Result<Self> {
        let peerbox = crate::find_peerbox(peerbox)?;
        let peerbox_version = crate::proc::probe(&peerbox, &["--version"]).await.unwrap_or_default().trim().to_owned();
        let syncthing =
            if no_syncthing { Err("skipped (--no-syncthing)".to_owned()) } else { syncthing::probe(false).await };
        let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
        let mut scratch = tempfile::Builder::new()
            .prefix(&format!("peerbox-bench-{mode}-"))
            .tempdir_in(&base)
            .with_context(|| format!("cannot make a scratch folder in {}", base.display()))?;
        // The daemons' logs (RUST_LOG=peerbox_node=debug has each pull's phases)
        // are what explains a figure; BENCH_KEEP keeps them.
        scratch.disable_cleanup(std::env::var_os("BENCH_KEEP").is_some());
        eprintln!("peerbox:   {} ({peerbox_version})", peerbox.display());
        match &syncthing {
            Ok(s) => eprintln!("syncthing: {}", s.version),
            Err(why) => eprintln!("syncthing: {why}"),
        }
        eprintln!("namespace: {ns} (loopback only)");
        eprintln!("scratch:   {}", scratch.path().display());
        Ok(Self { peerbox, peerbox_version, syncthing, scratch })
    }
}

async fn inner(args: SyncArgs, ns: &str) -> Result<bool> {
    netns::ensure_loopback_only(ns)?;

    // Dropped last (declared first): removes everything the rounds left.
    let Setup { peerbox, peerbox_version, syncthing: st, scratch } =
        Setup::make(ns, args.peerbox.clone(), args.no_syncthing, "sync").await?;

    let mut report = SyncReport {
        files: args.files,
        size: args.size,
        latency_samples: args.latency_samples,
        rounds: vec![[None, None]; args.rounds as usize],
        rss: None,
        notes: Vec::new(),
    };
    if let Err(why) = &st {
        report.note(format!("Syncthing: {why}"));
    }
    let mut st_ok = st.as_ref().ok();
    let ctx = Ctx { peerbox, seed: crate::seed(), args, scratch: scratch.path().to_owned() };
    // Room for both programs' A and B copies of everything, plus the staged big file.
    let image_size = (8u64 << 30).max(5 * ctx.args.size + 8 * u64::from(ctx.args.files) * 8192 + (2 << 30));

    for round in 1..=ctx.args.rounds {
        eprintln!("round {round}/{}", ctx.args.rounds);
        let image = Image::create(&ctx.scratch, &format!("round{round}"), image_size).await?;
        if let Some(s) = st_ok {
            let r = run_system(&ctx, Kind::Syncthing, Some(s), image.path(), round).await?;
            if !r.failed.is_empty() {
                // A reference that cannot run is reported, not fatal.
                eprintln!("  Syncthing failed, skipping it from now on");
                for f in &r.failed {
                    report.note(format!("Syncthing failed in round {round}: {}", crate::first_line(f)));
                }
                st_ok = None;
            }
            report.rounds[round as usize - 1][slot(Kind::Syncthing)] = Some(r);
        }
        let r = run_system(&ctx, Kind::Peerbox, None, image.path(), round).await?;
        report.rounds[round as usize - 1][slot(Kind::Peerbox)] = Some(r);
        image.remove().await?;
    }

    if ctx.args.with_rss {
        eprintln!("peak RSS with {} files", ctx.args.rss_files);
        report.rss = Some(rss_case(&ctx).await.map_err(|e| format!("{e:#}")));
        if let Some(Err(e)) = &report.rss {
            eprintln!("  failed: {e}");
        }
    }

    let text = report.render(&peerbox_version, st.as_ref().ok().map(|s| s.version.as_str()));
    println!();
    print!("{text}");
    if let Some(out) = &ctx.args.out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    crate::headline::write_if_asked(ctx.args.headlines.as_deref(), &report.headlines())?;
    drop(scratch);
    Ok(!report.any_peerbox_failure())
}

/// Starts one program's pair on the image, runs the three cases, stops it.
/// A case that fails (not wrong bytes) is recorded in the result; wrong bytes are an error.
async fn run_system(
    ctx: &Ctx,
    kind: Kind,
    st: Option<&syncthing::Syncthing>,
    image: &Path,
    round: u32,
) -> Result<SysRound> {
    let root = image.join(kind.dir());
    let logs = ctx.scratch.join(format!("round{round}-{}-logs", kind.dir()));
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&logs)?;
    let mut out = SysRound::default();
    let names = [LATENCY, SMALL, BIG];
    let started = match (kind, st) {
        (Kind::Syncthing, Some(st)) => {
            let specs: Vec<syncthing::FolderSpec> =
                names.iter().map(|&name| syncthing::FolderSpec { name, watch: name == LATENCY }).collect();
            syncthing::Pair::start(st, &root, &specs, &logs).await.map(Pair::Syncthing)
        }
        _ => sync_peerbox::Pair::start(&ctx.peerbox, &root, &names, &logs).await.map(Pair::Peerbox),
    };
    let mut pair = match started {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  {}: could not start both devices: {e:#}", kind.name());
            out.failed.push(format!("start: {e:#}"));
            return Ok(out);
        }
    };
    let label = kind.name();
    // Let both sides settle (first index exchange, watchers armed) before timing anything.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seed = ctx.seed ^ u64::from(round).rotate_left(48);
    match latency(&pair, ctx.args.latency_samples, seed).await {
        Ok(v) => {
            let each = v.iter().map(|ms| format!("{ms:.0}")).collect::<Vec<_>>().join(", ");
            eprintln!("  {label:<9} latency        median {} ms ({each})", fmt(median(v.clone()), 0));
            out.latency_ms = v;
        }
        Err(e) => fail(&mut out, &pair, label, "latency", e).await?,
    }

    match small_files(&mut pair, ctx.args.files, seed).await {
        Ok((secs, write, confirm)) => {
            eprintln!(
                "  {label:<9} {} small files {secs:.2}s (writing them in A took {write:.2}s; status confirmed {confirm:.2}s later), bytes verified",
                ctx.args.files
            );
            out.small = Some(secs);
        }
        Err(e) => fail(&mut out, &pair, label, "small files", e).await?,
    }

    match big_file(&mut pair, ctx.args.size, seed, &root.join("stage")).await {
        Ok((secs, confirm)) => {
            eprintln!(
                "  {label:<9} {} file     {secs:.2}s ({:.0} MB/s; status confirmed {confirm:.2}s later), bytes verified",
                crate::report::size_label(ctx.args.size),
                ctx.args.size as f64 / secs / 1e6
            );
            out.big = Some(secs);
        }
        Err(e) => fail(&mut out, &pair, label, "big file", e).await?,
    }

    out.rss = pair.peak_rss();
    if let Err(e) = pair.stop().await {
        eprintln!("  {label}: stopping: {e:#}");
    }
    Ok(out)
}

/// Records a failed case (with the pair's state), or passes wrong bytes on.
async fn fail(out: &mut SysRound, pair: &Pair, label: &str, case: &str, e: anyhow::Error) -> Result<()> {
    if e.downcast_ref::<WrongBytes>().is_some() {
        return Err(e);
    }
    let diag = pair.diagnosis().await;
    eprintln!("  {label} {case} FAILED: {e:#}\n{diag}");
    out.failed.push(format!("{case}: {e:#}"));
    Ok(())
}

/// Case 1: small writes in A, each timed until B holds the same bytes.
async fn latency(pair: &Pair, samples: u32, seed: u64) -> Result<Vec<f64>> {
    let (a, b) = (pair.a_dir(LATENCY)?, pair.b_dir(LATENCY)?);
    let limit = Duration::from_secs(60);
    let mut out = Vec::new();
    for i in 0..samples {
        let name = format!("note-{i:03}.txt");
        let content = format!("hi {i} {:08x}\n", seed as u32);
        let start = Instant::now();
        std::fs::write(a.join(&name), &content)?;
        loop {
            if std::fs::read(b.join(&name)).is_ok_and(|got| got == content.as_bytes()) {
                break;
            }
            if start.elapsed() > limit {
                if let Ok(got) = std::fs::read(b.join(&name)) {
                    return Err(WrongBytes(format!(
                        "WRONG BYTES in the latency case: B's {name} holds {got:?}, A wrote {content:?}"
                    ))
                    .into());
                }
                bail!("sample {i}: {name} did not reach B within {}s", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(start.elapsed().as_secs_f64() * 1000.0);
        // Let both sides go quiet (B's own watcher sees the new file) before the next one.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(out)
}

/// The name of small file `i`.
fn small_name(i: u32) -> String {
    format!("f{i:06}.bin")
}

/// Whether `name` is one of the small files (and not a temp file of either program).
fn is_small_name(name: &str) -> bool {
    name.len() == 11
        && name.starts_with('f')
        && name.ends_with(".bin")
        && name[1..7].bytes().all(|b| b.is_ascii_digit())
}

/// The content of small file `i`.
fn small_content(seed: u64, i: u32) -> Vec<u8> {
    data::random_bytes(seed ^ (u64::from(i) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), 4096)
}

fn count_small(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| is_small_name(&e.file_name().to_string_lossy())).count())
        .unwrap_or(0)
}

async fn sync_disks() {
    let _ = Command::new("sync").status().await;
}

/// Case 2: `n` files of 4 KiB written into A's `files/`; timed from the first
/// write until all are in B. Returns (seconds, seconds writing them in A,
/// seconds more until the program's own status confirmed completion).
async fn small_files(pair: &mut Pair, n: u32, seed: u64) -> Result<(f64, f64, f64)> {
    let (a, b) = (pair.a_dir(SMALL)?.join("files"), pair.b_dir(SMALL)?.join("files"));
    let contents: Vec<Vec<u8>> = (0..n).map(|i| small_content(seed, i)).collect();
    sync_disks().await;
    let start = Instant::now();
    let a2 = a.clone();
    let contents = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>> {
        std::fs::create_dir_all(&a2)?;
        for (i, c) in contents.iter().enumerate() {
            std::fs::write(a2.join(small_name(i as u32)), c)?;
        }
        Ok(contents)
    })
    .await??;
    let write = start.elapsed().as_secs_f64();
    let scan = pair.changed(SMALL);
    let limit = Duration::from_secs(900);
    let want = n as usize;
    loop {
        if count_small(&b) >= want {
            break;
        }
        if start.elapsed() > limit {
            bail!("only {} of {n} files reached B within {}s", count_small(&b), limit.as_secs());
        }
        // Listing 10,000 names costs a few ms of CPU on a 2-core machine: poll gently.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(scan) = scan {
        scan.await?.context("the scan request")?;
    }
    pair.confirm(SMALL, u64::from(n), Duration::from_secs(300)).await?;
    let confirm = start.elapsed().as_secs_f64() - secs;
    tokio::task::spawn_blocking(move || -> Result<()> {
        let found = count_small(&b);
        if found != want {
            return Err(
                WrongBytes(format!("WRONG FILES in the small-files case: B has {found} files, expected {n}")).into()
            );
        }
        for (i, c) in contents.iter().enumerate() {
            let name = small_name(i as u32);
            let got = std::fs::read(b.join(&name)).with_context(|| format!("cannot read B's {name}"))?;
            if &got != c {
                return Err(WrongBytes(format!(
                    "WRONG BYTES in the small-files case: B's {name} ({} bytes) differs from A's ({} bytes)",
                    got.len(),
                    c.len()
                ))
                .into());
            }
        }
        Ok(())
    })
    .await??;
    Ok((secs, write, confirm))
}

/// Case 3: one big file, written and fsynced in `stage` (same file system as
/// A), then renamed into A; timed from the rename until B has it whole.
/// Returns (seconds, seconds more until the status confirmed completion).
async fn big_file(pair: &mut Pair, size: u64, seed: u64, stage: &Path) -> Result<(f64, f64)> {
    std::fs::create_dir_all(stage)?;
    let staged = stage.join("big.bin");
    let s2 = staged.clone();
    let source = tokio::task::spawn_blocking(move || data::generate(&s2, size, seed)).await??;
    let (a, b) = (pair.a_dir(BIG)?.join("big.bin"), pair.b_dir(BIG)?.join("big.bin"));
    sync_disks().await;
    let start = Instant::now();
    std::fs::rename(&staged, &a).context("cannot move the big file into A")?;
    let scan = pair.changed(BIG);
    let limit = Duration::from_secs(120 + size / 2_000_000);
    loop {
        if std::fs::metadata(&b).is_ok_and(|m| m.is_file() && m.len() == size) {
            break;
        }
        if start.elapsed() > limit {
            let have = std::fs::metadata(&b).map(|m| m.len()).ok();
            bail!("the file did not reach B whole within {}s (B has {have:?} bytes of it)", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(scan) = scan {
        scan.await?.context("the scan request")?;
    }
    pair.confirm(BIG, 1, Duration::from_secs(300)).await?;
    let confirm = start.elapsed().as_secs_f64() - secs;
    data::verify("the big-file sync", &source, &b).await?;
    Ok((secs, confirm))
}

/// Case 4: a lone daemon adds a folder of many tiny files; its peak RSS once it is idle.
async fn rss_case(ctx: &Ctx) -> Result<RssResult> {
    let n = ctx.args.rss_files;
    let image = Image::create(&ctx.scratch, "rss", 8 << 30).await?;
    let dir = image.path().join("tree");
    let logs = ctx.scratch.join("rss-logs");
    std::fs::create_dir_all(&logs)?;
    let t = Instant::now();
    let d2 = dir.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for i in 0..n {
            let sub = d2.join(format!("d{:04}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir_all(&sub)?;
            }
            std::fs::write(sub.join(format!("f{i:07}.txt")), format!("{i}\n"))?;
        }
        Ok(())
    })
    .await??;
    sync_disks().await;
    eprintln!("  made {n} files in {:.1}s", t.elapsed().as_secs_f64());

    let mut daemon =
        sync_peerbox::Daemon::start(&ctx.peerbox, &image.path().join("home"), &logs, "peerbox-daemon-rss").await?;
    let start = Instant::now();
    let added = daemon
        .call(serde_json::json!({ "op": "folder_add", "path": dir, "name": "tree", "mode": "send-receive" }))
        .await?;
    let id = added["id"].as_str().context("folder_add answered no id")?.to_owned();
    let limit = Duration::from_secs(1800);
    let index_secs = loop {
        daemon.ensure_running()?;
        let s = daemon.status().await?;
        let f = sync_peerbox::folder_status(&s, &id);
        let files = f.and_then(|f| f["local_files"].as_u64()).unwrap_or(0);
        if files >= u64::from(n) && f.is_some_and(|f| f["state"]["state"].as_str() == Some("idle")) {
            break start.elapsed().as_secs_f64();
        }
        if start.elapsed() > limit {
            bail!("the daemon did not index {n} files within {}s (status: {s})", limit.as_secs());
        }
        // Each status call reads the whole index; do not poll hard.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Let anything that follows indexing (flushes, compaction) happen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.ensure_running()?;
    let peak = daemon.peak_rss();
    eprintln!(
        "  indexed in {index_secs:.1}s; peak RSS {} MiB",
        peak.map_or_else(|| "?".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
    );
    daemon.stop().await?;
    image.remove().await?;
    Ok(RssResult { files: u64::from(n), peak, index_secs })
}

impl SyncReport {
    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn each(&self, kind: Kind) -> impl Iterator<Item = &SysRound> {
        self.rounds.iter().filter_map(move |r| r[slot(kind)].as_ref())
    }

    fn any_peerbox_failure(&self) -> bool {
        self.each(Kind::Peerbox).any(|r| !r.failed.is_empty())
            || self.rss.as_ref().is_some_and(|r| r.is_err())
            || self.rounds.iter().any(|r| r[slot(Kind::Peerbox)].is_none())
    }

    /// Per-round figure of a case.
    fn per_round(&self, kind: Kind, pick: fn(&SysRound) -> Option<f64>) -> Vec<Option<f64>> {
        self.rounds.iter().map(|r| r[slot(kind)].as_ref().and_then(pick)).collect()
    }

    /// Median over rounds of Syncthing ÷ Peerbox within each round.
    fn ratio(&self, pick: fn(&SysRound) -> Option<f64>) -> Option<f64> {
        let pb = self.per_round(Kind::Peerbox, pick);
        let st = self.per_round(Kind::Syncthing, pick);
        median(pb.iter().zip(&st).filter_map(|(p, s)| Some((*s)? / (*p)?)).collect())
    }

    fn median_of(&self, kind: Kind, pick: fn(&SysRound) -> Option<f64>) -> Option<f64> {
        median(self.per_round(kind, pick).into_iter().flatten().collect())
    }

    /// The suite's lines, against the performance goals (issue 8).
    fn headlines(&self) -> Vec<Headline> {
        let lat: fn(&SysRound) -> Option<f64> = |r| median(r.latency_ms.clone());
        let small: fn(&SysRound) -> Option<f64> = |r| r.small;
        let big: fn(&SysRound) -> Option<f64> = |r| r.big;
        let ms = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.0} ms"));
        let secs = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.2} s"));
        let syncthing = "Syncthing".to_owned();
        let mut out = Vec::new();
        let (pl, rl) = (self.median_of(Kind::Peerbox, lat), self.ratio(lat));
        out.push(Headline {
            case: "change → peer latency, one small file".into(),
            reference: syncthing.clone(),
            peerbox: ms(pl),
            theirs: ms(self.median_of(Kind::Syncthing, lat)),
            ratio: rl,
            goal: format!("median < {GOAL_LATENCY_IDEAL_MS:.0} ms"),
            met: pl.map(|v| v < GOAL_LATENCY_IDEAL_MS),
        });
        let (ps, rs) = (self.median_of(Kind::Peerbox, small), self.ratio(small));
        out.push(Headline {
            case: format!("{} × 4 KiB files, folder sync", self.files),
            reference: syncthing.clone(),
            peerbox: secs(ps),
            theirs: secs(self.median_of(Kind::Syncthing, small)),
            ratio: rs,
            goal: format!("≤ {GOAL_SMALL_SECS} s and ≥ {GOAL_SMALL_RATIO}× Syncthing"),
            met: ps.zip(rs).map(|(p, r)| p <= GOAL_SMALL_SECS && r >= GOAL_SMALL_RATIO),
        });
        let rg = self.ratio(big);
        out.push(Headline {
            case: format!("one {} file, folder sync", crate::report::size_label(self.size)),
            reference: syncthing,
            peerbox: secs(self.median_of(Kind::Peerbox, big)),
            theirs: secs(self.median_of(Kind::Syncthing, big)),
            ratio: rg,
            goal: format!("≥ {GOAL_BIG_RATIO}× Syncthing"),
            met: rg.map(|r| r >= GOAL_BIG_RATIO),
        });
        if let Some(Ok(r)) = &self.rss {
            let peak = r.peak.map(crate::mib);
            out.push(Headline {
                case: format!("daemon peak RSS syncing a {}-file folder", r.files),
                reference: String::new(),
                peerbox: peak.map_or_else(String::new, |p| format!("{p:.0} MiB")),
                theirs: String::new(),
                ratio: None,
                goal: format!("< {GOAL_RSS_MIB:.0} MiB"),
                met: peak.map(|p| p < GOAL_RSS_MIB),
            });
        }
        out
    }

    fn render(&self, peerbox_version: &str, syncthing_version: Option<&str>) -> String {
        let lat: fn(&SysRound) -> Option<f64> = |r| median(r.latency_ms.clone());
        let small: fn(&SysRound) -> Option<f64> = |r| r.small;
        let big: fn(&SysRound) -> Option<f64> = |r| r.big;
        let mut out = String::new();
        let n = self.rounds.len();
        let _ = writeln!(out, "## peerbox-bench sync: folder sync between two devices, loopback, against Syncthing\n");
        let _ = writeln!(
            out,
            "{n} interleaved round{} (Syncthing, then Peerbox), each on a fresh ext4 image (loop device with direct I/O), all four processes in one \
             loopback-only network namespace; both devices joined and idle before each case. \
             Times are medians over rounds (latency: the median of {} samples within each round first); \
             ratio = Syncthing's time ÷ Peerbox's time in the same round, median over rounds (> 1: Peerbox is faster); \
             MB/s = 10^6 bytes/s. {}.\n",
            if n == 1 { "" } else { "s" },
            self.latency_samples,
            crate::report::versions(peerbox_version, syncthing_version),
        );
        let _ = writeln!(out, "| case | Peerbox | Syncthing | ratio | goal |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");

        let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String, kind: Kind| match v {
            Some(v) => f(v),
            None if self.each(kind).next().is_none() => "–".to_owned(),
            None => "FAILED".to_owned(),
        };
        let ms = |v: f64| format!("{v:.0} ms");
        let secs = |v: f64| format!("{v:.2} s");
        let rate = |v: f64| format!("{v:.2} s ({:.0} MB/s)", self.size as f64 / v / 1e6);

        let (pl, sl, rl) = (self.median_of(Kind::Peerbox, lat), self.median_of(Kind::Syncthing, lat), self.ratio(lat));
        let _ = writeln!(
            out,
            "| change → peer latency, one file of a few bytes | {} | {} | {} | < 1 s: {}; ideally < 300 ms: {} |",
            cell(pl, &ms, Kind::Peerbox),
            cell(sl, &ms, Kind::Syncthing),
            fmt(rl, 2),
            crate::report::verdict(pl.map(|v| v < GOAL_LATENCY_MS)),
            crate::report::verdict(pl.map(|v| v < GOAL_LATENCY_IDEAL_MS)),
        );
        let (ps, ss, rs) =
            (self.median_of(Kind::Peerbox, small), self.median_of(Kind::Syncthing, small), self.ratio(small));
        let _ = writeln!(
            out,
            "| {} × 4 KiB files A → B | {} | {} | {} | faster than Syncthing: {} |",
            self.files,
            cell(ps, &secs, Kind::Peerbox),
            cell(ss, &secs, Kind::Syncthing),
            fmt(rs, 2),
            crate::report::verdict(rs.map(|r| r > 1.0)),
        );
        let (pg, sg, rg) = (self.median_of(Kind::Peerbox, big), self.median_of(Kind::Syncthing, big), self.ratio(big));
        let _ = writeln!(
            out,
            "| one {} file A → B | {} | {} | {} | faster than Syncthing: {} |",
            crate::report::size_label(self.size),
            cell(pg, &rate, Kind::Peerbox),
            cell(sg, &rate, Kind::Syncthing),
            fmt(rg, 2),
            crate::report::verdict(rg.map(|r| r > 1.0)),
        );
        match &self.rss {
            Some(Ok(r)) => {
                let peak = r.peak.map(crate::mib);
                let _ = writeln!(
                    out,
                    "| daemon peak RSS holding a {}-file folder (indexed in {:.1} s) | {} MiB | – | – | < {GOAL_RSS_MIB:.0} MiB: {} |",
                    r.files,
                    r.index_secs,
                    fmt(peak, 0),
                    crate::report::verdict(peak.map(|p| p < GOAL_RSS_MIB)),
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(
                    out,
                    "| daemon peak RSS holding a large folder | FAILED | – | – | < {GOAL_RSS_MIB:.0} MiB: unknown ({}) |",
                    crate::first_line(e).replace('|', "/")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| daemon peak RSS holding a 100000-file folder | not run (--with-rss) | – | – | < {GOAL_RSS_MIB:.0} MiB: unknown |"
                );
            }
        }
        let rss_ab = |kind: Kind| {
            let a = self.each(kind).filter_map(|r| r.rss.0).max().map(crate::mib);
            let b = self.each(kind).filter_map(|r| r.rss.1).max().map(crate::mib);
            if a.is_none() && b.is_none() { "–".to_owned() } else { format!("{} / {} MiB", fmt(a, 0), fmt(b, 0)) }
        };
        let _ = writeln!(
            out,
            "| peak RSS of A / B over the cases above (highest round) | {} | {} | – | (information) |",
            rss_ab(Kind::Peerbox),
            rss_ab(Kind::Syncthing),
        );
        out.push('\n');

        let _ = writeln!(out, "Each round:");
        for kind in [Kind::Peerbox, Kind::Syncthing] {
            if self.each(kind).next().is_none() {
                continue;
            }
            let list = |pick: fn(&SysRound) -> Option<f64>, f: &dyn Fn(f64) -> String| {
                self.per_round(kind, pick)
                    .iter()
                    .map(|v| v.map_or_else(|| "–".to_owned(), f))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "- {}: latency {}; small files {}; big file {}",
                kind.name(),
                list(lat, &|v| format!("{v:.0} ms")),
                list(small, &|v| format!("{v:.2} s")),
                list(big, &|v| format!("{v:.2} s")),
            );
        }
        for kind in [Kind::Peerbox, Kind::Syncthing] {
            for (i, r) in self.rounds.iter().enumerate() {
                if let Some(r) = &r[slot(kind)] {
                    for f in &r.failed {
                        let _ = writeln!(out, "- {} round {}: FAILED {}", kind.name(), i + 1, crate::first_line(f));
                    }
                }
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(lat: f64, small: f64, big: f64) -> SysRound {
        SysRound {
            latency_ms: vec![lat, lat + 10.0, lat - 10.0],
            small: Some(small),
            big: Some(big),
            rss: (Some(30 << 20), Some(40 << 20)),
            failed: Vec::new(),
        }
    }

    #[test]
    fn small_names() {
        assert!(is_small_name(&small_name(0)));
        assert!(is_small_name(&small_name(9999)));
        assert!(!is_small_name(".syncthing.f000001.bin.tmp"));
        assert!(!is_small_name(".peerbox-tmp-0123"));
        assert_ne!(small_content(1, 0), small_content(1, 1));
        assert_eq!(small_content(1, 5), small_content(1, 5));
    }

    #[test]
    fn ratios_are_syncthing_over_peerbox_within_rounds() {
        let mut r = SyncReport {
            files: 10_000,
            size: 1 << 30,
            latency_samples: 3,
            rounds: vec![[None, None], [None, None], [None, None]],
            rss: None,
            notes: Vec::new(),
        };
        for (i, slow) in [1.0, 2.0, 1.0].into_iter().enumerate() {
            r.rounds[i] = [Some(round(150.0 * slow, 4.0 * slow, 5.0 * slow)), Some(round(1050.0, 10.0, 10.0))];
        }
        assert_eq!(r.ratio(|r| r.small), Some(2.5));
        let text = r.render("peerbox 0.1.0", Some("syncthing v1.19.2"));
        assert!(text.contains("| change → peer latency, one file of a few bytes | 150 ms | 1050 ms | 7.00 | < 1 s: met; ideally < 300 ms: met |"), "{text}");
        assert!(
            text.contains("| 10000 × 4 KiB files A → B | 4.00 s | 10.00 s | 2.50 | faster than Syncthing: met |"),
            "{text}"
        );
        assert!(text.contains("| 30 / 40 MiB | 30 / 40 MiB |"), "{text}");
        let h = r.headlines();
        assert_eq!(h[1].ratio, Some(2.5));
        assert_eq!(h[1].met, Some(false), "4 s is over 1.5 s: {h:?}");
        assert_eq!((h[0].peerbox.as_str(), h[0].met), ("150 ms", Some(true)));
        assert!(!r.any_peerbox_failure());
        if let Some(x) = r.rounds[1][0].as_mut() {
            x.failed.push("big file: timed out".into())
        }
        assert!(r.any_peerbox_failure());
    }
}
