//! The many-small-files case of the transfer mode (`--files N`): a folder of N
//! random files by link, peerbox share → get, against `tar` over a loopback
//! TCP socket (the limit) and `sendme`, in interleaved rounds. Each case of
//! each round runs on its own fresh ext4 image holding both sides' folders
//! and homes (shared/docs/BENCHMARKS.md: small-file figures are repeatable
//! only on a fresh file system), and every received file is checked by hash.
//! Called by `main`, which renders the [`Report`] this returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Sample;
use crate::data::{Tree, WrongBytes, generate_tree};
use crate::ext4::Image;
use crate::report::{Case, Report, Workload};
use crate::sendme::Sendme;

/// What one small-files run needs.
pub(crate) struct Plan<'a> {
    pub(crate) count: usize,
    pub(crate) file_size: u64,
    pub(crate) rounds: u32,
    pub(crate) peerbox: &'a Path,
    /// `None` when sendme is missing; the report then says why.
    pub(crate) sendme: Option<&'a Sendme>,
    /// Where the images go (they are removed after each case).
    pub(crate) scratch: &'a Path,
}

/// Runs every round and returns the samples; wrong bytes and peerbox or tar
/// failures end the run, a failing sendme is reported and left out.
pub(crate) async fn run(plan: &Plan<'_>, report: &mut Report) -> Result<()> {
    if crate::proc::effective_uid() != Some(0) {
        bail!(
            "the small-files case needs root: it loop-mounts a fresh ext4 image per case \
             (run it as root, or leave out --files for the one-file case)"
        );
    }
    let total = plan.count as u64 * plan.file_size;
    // Room for the source, two copies and a program's own store of it, with
    // inodes to spare (ext4 makes one per 16 KiB by default).
    let image_size = (2u64 << 30).max(6 * total + plan.count as u64 * (64 << 10));
    // Generous: a stuck child fails the run instead of hanging it.
    let limit = Duration::from_secs(120 + plan.count as u64 / 50 + total / 5_000_000);
    let seed = crate::seed();
    let mut sendme = plan.sendme;

    for round in 1..=plan.rounds {
        eprintln!("round {round}/{}", plan.rounds);
        let s = on_fresh_image(plan, round, Case::Plain, seed, image_size, |tree, work| async move {
            crate::plain::tar(&tree, &work.join("dest"), limit).await.context("tar over TCP")
        })
        .await?;
        progress(Case::Plain, &s, plan.count);
        report.add(round, Case::Plain, s);

        let s = on_fresh_image(plan, round, Case::Peerbox, seed, image_size, |tree, work| async move {
            crate::peerbox::run_tree(plan.peerbox, &tree, &work, limit).await.context("peerbox share → get")
        })
        .await?;
        progress(Case::Peerbox, &s, plan.count);
        report.add(round, Case::Peerbox, s);

        if let Some(sm) = sendme {
            let r = on_fresh_image(plan, round, Case::Sendme, seed, image_size, |tree, work| async move {
                crate::sendme::run_tree(sm, &tree, &work, limit).await
            })
            .await;
            match r {
                Ok(s) => {
                    progress(Case::Sendme, &s, plan.count);
                    report.add(round, Case::Sendme, s);
                }
                Err(e) if e.downcast_ref::<WrongBytes>().is_some() => return Err(e),
                Err(e) => {
                    // A reference that cannot run is reported, not fatal.
                    eprintln!("  sendme failed, skipping it from now on: {e:#}");
                    report.note(format!("sendme failed in round {round}: {}", crate::first_line(&format!("{e:#}"))));
                    sendme = None;
                }
            }
        }
    }
    Ok(())
}

impl Plan<'_> {
    fn workload(&self) -> Workload {
        Workload::Files { count: self.count, file_size: self.file_size }
    }
}

/// Makes a fresh image, writes the tree on it and makes that durable (so its
/// write-back is not timed), runs `case` with the tree and an empty work
/// folder on the same image, and removes the image whether the case worked or not.
async fn on_fresh_image<F, Fut>(
    plan: &Plan<'_>,
    round: u32,
    case: Case,
    seed: u64,
    image_size: u64,
    run_case: F,
) -> Result<Sample>
where
    F: FnOnce(Tree, PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<Sample>>,
{
    let label = match case {
        Case::Plain => "tar",
        Case::Peerbox => "peerbox",
        Case::Sendme => "sendme",
    };
    let image = Image::create(plan.scratch, &format!("round{round}-{label}"), image_size)
        .await
        .with_context(|| format!("cannot make a fresh ext4 image for {}", case.name_for(plan.workload())))?;
    let mount = image.path().to_owned();
    let (count, file_size) = (plan.count, plan.file_size);
    let src = mount.join("src").join("files");
    let t = Instant::now();
    let tree = tokio::task::spawn_blocking(move || generate_tree(&src, count, file_size, seed)).await??;
    sync_fs(&mount).await?;
    let made = t.elapsed().as_secs_f64();
    let work = mount.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    if round == 1 && case == Case::Plain {
        eprintln!("  (each case: fresh ext4 image, {count} files written and synced in {made:.1}s, not counted)");
    }
    let result = run_case(tree, work).await;
    // Every child has exited (or been killed) by now: the image can go.
    let removed = image.remove().await;
    let sample = result?;
    removed?;
    Ok(sample)
}

/// One syncfs of the file system holding `path`.
async fn sync_fs(path: &Path) -> Result<()> {
    let status =
        tokio::process::Command::new("sync").arg("-f").arg(path).status().await.context("cannot run sync -f")?;
    if !status.success() {
        bail!("sync -f {} failed ({status})", path.display());
    }
    Ok(())
}

fn progress(case: Case, s: &Sample, count: usize) {
    let mib = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.0}", crate::mib(b)));
    let rss = if s.rss_get.is_some() || s.rss_share.is_some() {
        format!(", peak RSS {} {} / {} {} MiB", case.get_side(), mib(s.rss_get), case.share_side(), mib(s.rss_share))
    } else {
        String::new()
    };
    eprintln!(
        "  {:<24} {:>6.2}s ({:.0} files/s){rss}, every file verified",
        case.name_for(Workload::Files { count, file_size: 0 }),
        s.secs,
        count as f64 / s.secs
    );
}
