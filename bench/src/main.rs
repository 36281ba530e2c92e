//! `peerbox-bench`: one file by link, share → get, over loopback (the default,
//! or `peerbox-bench transfer`; with `--files N`, a folder of N small files,
//! in `files.rs`); folder sync against Syncthing
//! (`peerbox-bench sync`, in `sync.rs`); scanning and hashing a folder against
//! the 2-core `sha2` limit and Syncthing's rescan (`peerbox-bench scan`, in
//! `scan.rs`); and the DHT at scale (`peerbox-bench dht`, in `dht.rs`).
//!
//! The transfer benchmark makes one random file, then runs interleaved rounds of three cases — a
//! plain TCP copy + fsync (the reference), `peerbox share` → `peerbox get`,
//! and iroh's `sendme` when installed — and prints a markdown table of
//! medians, per-round figures, ratios to the reference taken within each
//! round, and peak RSS (see shared/docs/BENCHMARKS.md for the method). With
//! `--files N` the cases move a folder of N files instead, the reference being
//! `tar` over a TCP socket, each case on a fresh ext4 image (needs root).
//!
//! Exit codes: 0 done (goals met or not: they are only reported); 1 failed,
//! including any copy whose bytes differ from the source; 130 interrupted.

mod data;
mod dht;
mod ext4;
mod files;
mod headline;
mod http;
mod netns;
mod peerbox;
mod plain;
mod proc;
mod report;
mod scan;
mod sendme;
mod suite;
mod sync;
mod sync_peerbox;
mod syncthing;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::data::{Source, WrongBytes};
use crate::report::{Case, Report, Workload};

#[derive(Parser)]
#[command(
    name = "peerbox-bench",
    version,
    about = "Benchmark one file by link (peerbox share → get) against a plain TCP copy + fsync and sendme, over loopback \
             (the default, or `transfer`); folder sync against Syncthing (`sync`); folder scan and hash (`scan`); \
             the DHT at scale (`dht`).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The transfer benchmark's options, when no mode is named.
    #[command(flatten)]
    transfer: TransferArgs,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// One file by link, share → get, against a plain TCP copy + fsync and sendme (the default).
    Transfer(TransferArgs),
    /// Folder sync between two daemons (latency, 10,000 small files, one big file, RSS) against Syncthing.
    /// Needs root: runs in a loopback-only network namespace, on loop-mounted ext4 images.
    Sync(sync::SyncArgs),
    /// Folder scan and hash (1,000 files of 1 MiB; 100,000 of 4 KiB) against the 2-core sha2 limit,
    /// rescan against Syncthing, cold start and peak RSS with 100,000 files indexed.
    /// Needs root: runs in a loopback-only network namespace, on loop-mounted ext4 images, dropping the page cache.
    Scan(scan::ScanArgs),
    /// The DHT at scale: many nodes in one process, lookups of announced content ids.
    Dht(dht::DhtArgs),
    /// Every case above, each against its reference, into one results folder with a summary
    /// table (summary.md) and a chart (chart.svg). Needs root (as `sync` and `scan` do).
    Suite(suite::SuiteArgs),
}

/// Options of the transfer benchmark.
#[derive(Args)]
struct TransferArgs {
    /// File size: 1GiB, 256MiB, 500MB, ... (KiB/MiB/GiB are binary, KB/MB/GB decimal).
    #[arg(long, default_value = "1GiB", value_parser = data::parse_size)]
    size: u64,
    /// Interleaved rounds; each runs every case once, reference first.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// The peerbox binary [default: $PEERBOX_BIN, else `peerbox` next to this executable].
    #[arg(long, env = "PEERBOX_BIN", value_name = "PATH")]
    peerbox: Option<PathBuf>,
    /// Also write the table and goal lines to this file.
    #[arg(long, value_name = "FILE.md")]
    out: Option<PathBuf>,
    /// Also write the headline figures (for `peerbox-bench suite`) to this file.
    #[arg(long, value_name = "FILE.json")]
    headlines: Option<PathBuf>,
    /// Move a folder of this many files instead of one file (against tar over
    /// TCP and sendme, each case on a fresh ext4 image; needs root).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    files: Option<u32>,
    /// The size of each file with --files.
    #[arg(long, default_value = "4KiB", value_parser = data::parse_size, requires = "files")]
    file_size: u64,
}

/// One case's measurement in one round.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// Seconds for the whole transfer as that case defines it.
    pub(crate) secs: f64,
    /// Peak RSS of the receiving process, bytes.
    pub(crate) rss_get: Option<u64>,
    /// Peak RSS of the sending process, bytes.
    pub(crate) rss_share: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli = match cli.mode {
        None => cli.transfer,
        Some(Mode::Transfer(t)) => t,
        Some(Mode::Sync(s)) => return sync::main(s),
        Some(Mode::Scan(s)) => return scan::main(s),
        Some(Mode::Dht(d)) => return dht::main(d),
        Some(Mode::Suite(s)) => return suite::main(s),
    };
    let Some(runtime) = crate::runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        tokio::select! {
            r = run(cli) => exit_code(r.map(|()| true), |e| e.downcast_ref::<WrongBytes>().is_some()),
            // Dropping `run` kills every child's process group and removes the scratch folder.
            () = interrupted() => {
                eprintln!("\npeerbox-bench: interrupted; cleaning up");
                ExitCode::from(130)
            }
        }
    })
}

/// The async runtime every mode runs on; `None` (said why) if it cannot start.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| eprintln!("peerbox-bench: cannot start: {e}")).ok()
}

/// The exit code for how a run ended, saying why it failed: a wrong outcome
/// (bytes that differ, a wrong count) as FAILED, anything else as itself.
pub(crate) fn exit_code(r: Result<bool>, wrong: impl Fn(&anyhow::Error) -> bool) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            if wrong(&e) {
                eprintln!("\npeerbox-bench: FAILED — {e:#}");
            } else {
                eprintln!("\npeerbox-bench: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Finds the peerbox binary: --peerbox / $PEERBOX_BIN, else next to this executable.
pub(crate) fn find_peerbox(given: Option<PathBuf>) -> Result<PathBuf> {
    const HOW: &str =
        "run `cargo build --release -p peerbox-cli -p peerbox-bench` (or pass --peerbox PATH, or set PEERBOX_BIN)";
    let path = match given {
        Some(p) => p,
        None => {
            let exe = std::env::current_exe().context("cannot tell where this executable is")?;
            exe.parent().context("this executable has no folder")?.join("peerbox")
        }
    };
    if !path.is_file() {
        bail!("the peerbox binary is not at {}; {HOW}", path.display());
    }
    std::fs::canonicalize(&path).with_context(|| format!("cannot resolve {}", path.display()))
}

async fn run(cli: TransferArgs) -> Result<()> {
    let peerbox_bin = find_peerbox(cli.peerbox.clone())?;
    let peerbox_version = proc::probe(&peerbox_bin, &["--version"]).await.unwrap_or_default().trim().to_owned();
    let sendme = sendme::probe().await;

    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    // Dropped last (declared first): removes everything the rounds left.
    let scratch = tempfile::Builder::new()
        .prefix("peerbox-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot make a scratch folder in {}", base.display()))?;

    eprintln!("peerbox:  {} ({})", peerbox_bin.display(), peerbox_version);
    match &sendme {
        Ok(s) => eprintln!("sendme:   {} (in a loopback-only network namespace)", s.version),
        Err(why) => eprintln!("sendme: {why}"),
    }
    eprintln!("scratch:  {}", scratch.path().display());

    let report = match cli.files {
        None => one_file(&cli, &peerbox_bin, sendme.as_ref(), scratch.path()).await?,
        Some(count) => {
            let count = usize::try_from(count).context("--files is too large for this machine")?;
            let mut report = Report::of(Workload::Files { count, file_size: cli.file_size }, cli.rounds);
            if let Err(why) = &sendme {
                report.note(format!("sendme: {why}"));
            }
            let plan = files::Plan {
                count,
                file_size: cli.file_size,
                rounds: cli.rounds,
                peerbox: &peerbox_bin,
                sendme: sendme.as_ref().ok(),
                scratch: scratch.path(),
            };
            files::run(&plan, &mut report).await?;
            report
        }
    };

    let text = report.render(&peerbox_version, sendme.as_ref().ok().map(|s| s.version.as_str()));
    println!();
    print!("{text}");
    std::io::stdout().flush()?;
    if let Some(out) = &cli.out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    let lines = report.headlines(sendme.as_ref().err().map(String::as_str));
    crate::headline::write_if_asked(cli.headlines.as_deref(), &lines)?;
    drop(scratch);
    Ok(())
}

/// The one-file case: makes the file, then runs the interleaved rounds.
async fn one_file(
    cli: &TransferArgs,
    peerbox_bin: &Path,
    sendme: Result<&sendme::Sendme, &String>,
    scratch: &Path,
) -> Result<Report> {
    let t = Instant::now();
    let path = scratch.join(format!("random-{}.bin", report::size_label(cli.size).replace(' ', "")));
    let (size, seed) = (cli.size, seed());
    eprint!("writing {} of random data ... ", report::size_label(size));
    let source = tokio::task::spawn_blocking(move || data::generate(&path, size, seed)).await??;
    eprintln!("{:.1}s, SHA-256 {}", t.elapsed().as_secs_f64(), &source.sha256[..16]);
    // Dirty pages left by whatever ran just before (bench/run's cargo build
    // writes hundreds of MB) would otherwise be written back during round 1.
    let synced = tokio::process::Command::new("sync").status().await.is_ok_and(|s| s.success());
    if !synced {
        eprintln!("(could not run sync(1); round 1 may include earlier write-back)");
    }

    // Generous: a stuck child fails the run instead of hanging it.
    let limit = Duration::from_secs(120 + size / 5_000_000);
    let mut report = Report::new(size, cli.rounds);
    let mut sendme_ok = sendme.ok();
    if let Err(why) = &sendme {
        report.note(format!("sendme: {why}"));
    }

    // The disks here write blocks that were never (or not recently) written
    // several times slower than blocks freed a moment ago, so the first copy
    // is slow whichever case makes it. One untimed copy evens that out.
    let dir = round_dir(scratch, 0, "warm-up")?;
    let s = plain::run(&source, &dir.join("copy.bin")).await.context("warm-up copy")?;
    eprintln!("warm-up (not counted): plain copy {:.0} MB/s", source.size as f64 / s.secs / 1e6);
    std::fs::remove_dir_all(&dir)?;

    for round in 1..=cli.rounds {
        eprintln!("round {round}/{}", cli.rounds);
        let dir = round_dir(scratch, round, "plain")?;
        let s = plain::run(&source, &dir.join("copy.bin")).await.context("plain TCP copy")?;
        progress(Case::Plain, &s, &source);
        report.add(round, Case::Plain, s);
        std::fs::remove_dir_all(&dir)?;

        let dir = round_dir(scratch, round, "peerbox")?;
        let s = peerbox::run(peerbox_bin, &source, &dir, limit).await.context("peerbox share → get")?;
        progress(Case::Peerbox, &s, &source);
        report.add(round, Case::Peerbox, s);
        std::fs::remove_dir_all(&dir)?;

        if let Some(sm) = sendme_ok {
            let dir = round_dir(scratch, round, "sendme")?;
            match sendme::run(sm, &source, &dir, limit).await {
                Ok(s) => {
                    progress(Case::Sendme, &s, &source);
                    report.add(round, Case::Sendme, s);
                }
                Err(e) if e.downcast_ref::<WrongBytes>().is_some() => return Err(e),
                Err(e) => {
                    // A reference that cannot run is reported, not fatal.
                    eprintln!("  sendme failed, skipping it from now on: {e:#}");
                    report.note(format!("sendme failed in round {round}: {}", first_line(&format!("{e:#}"))));
                    sendme_ok = None;
                }
            }
            std::fs::remove_dir_all(&dir)?;
        }
    }
    Ok(report)
}

fn round_dir(scratch: &Path, round: u32, case: &str) -> Result<PathBuf> {
    let dir = scratch.join(format!("round{round}-{case}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn progress(case: Case, s: &Sample, source: &Source) {
    let mib = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.0}", b as f64 / 1048576.0));
    let rss = if s.rss_get.is_some() || s.rss_share.is_some() {
        format!(", peak RSS {} {} / {} {} MiB", case.get_side(), mib(s.rss_get), case.share_side(), mib(s.rss_share))
    } else {
        String::new()
    };
    eprintln!(
        "  {:<24} {:>8.0} MB/s ({:.2}s){rss}, bytes verified",
        case.name(),
        source.size as f64 / s.secs / 1e6,
        s.secs
    );
}

/// The first line of a program's output (its version line, say).
pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Bytes as MiB.
pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// A seed that differs between runs.
pub(crate) fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
