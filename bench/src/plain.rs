//! The references that are the practical limit on this machine: for one
//! file, a plain TCP copy over loopback into a new file plus fsync, in this
//! process on tokio ([`run`]); for a folder of many files, `tar` piped through
//! a loopback TCP socket into `tar -x`, then one `sync -f` ([`tar`]). Peerbox
//! is reported as a ratio to them. Called once per round by `main` and
//! `files`, before the other cases.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::Sample;
use crate::data::{CHUNK, Source, Tree, verify, verify_tree};

/// Copies `source` to `dest` over a loopback socket; times connect → fsync done.
/// Verifies the copy, then deletes it.
pub(crate) async fn run(source: &Source, dest: &Path) -> Result<Sample> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;

    let dest_owned = dest.to_owned();
    let receiver = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        let mut file = tokio::fs::File::create(&dest_owned)
            .await
            .with_context(|| format!("cannot create {}", dest_owned.display()))?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = read_full(&mut sock, &mut buf).await?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await?;
            total += n as u64;
        }
        file.flush().await?;
        file.sync_all().await?;
        anyhow::Ok(total)
    });

    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).await?;
    let src_path = source.path.clone();
    let sender = tokio::spawn(async move {
        let mut file = tokio::fs::File::open(&src_path).await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf).await?;
            if n == 0 {
                break;
            }
            sock.write_all(&buf[..n]).await?;
        }
        sock.shutdown().await?;
        anyhow::Ok(())
    });
    sender.await.context("sender task")??;
    let received = receiver.await.context("receiver task")??;
    let elapsed = start.elapsed();

    ensure!(received == source.size, "plain copy received {received} of {} bytes", source.size);
    verify("the plain TCP copy", source, dest).await?;
    tokio::fs::remove_file(dest).await?;
    Ok(Sample { secs: elapsed.as_secs_f64(), rss_get: None, rss_share: None })
}

/// Reads until `buf` is full or EOF, so each file or socket write is a whole 1 MiB chunk.
async fn read_full(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Sends `tree` with `tar -cf -` over a loopback socket into `tar -xf -` in
/// `dest` (an empty folder), then makes it durable with one `sync -f` (one
/// syncfs for the whole batch, as peerbox does). Times from starting the
/// sender until the sync returns. Verifies every file, then deletes the copy.
pub(crate) async fn tar(tree: &Tree, dest: &Path, limit: Duration) -> Result<Sample> {
    let parent = tree.root.parent().context("the source folder has no parent")?;
    let name = tree.dir_name()?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot listen on loopback")?;
    let addr = listener.local_addr()?;

    let start = Instant::now();
    // The tars read and write the sockets themselves: nothing of this process
    // sits between them, as it would not between two machines either.
    let out = std::net::TcpStream::connect(addr).context("cannot connect on loopback")?;
    let mut sender = tar_command()
        .arg("-C")
        .arg(parent)
        .arg("-cf")
        .arg("-")
        .arg(name)
        .stdout(Stdio::from(OwnedFd::from(out)))
        .spawn()
        .context("cannot start tar -c")?;
    let (inp, _) = listener.accept().context("cannot accept the loopback connection")?;
    let mut receiver = tar_command()
        .arg("-C")
        .arg(dest)
        .arg("-xf")
        .arg("-")
        .stdin(Stdio::from(OwnedFd::from(inp)))
        .spawn()
        .context("cannot start tar -x")?;
    let both = async {
        let (sent, received) = tokio::join!(sender.wait(), receiver.wait());
        anyhow::Ok((sent?, received?))
    };
    let (sent, received) = tokio::time::timeout(limit, both)
        .await
        .with_context(|| format!("tar over TCP did not finish within {}s", limit.as_secs()))??;
    ensure!(sent.success(), "tar -c failed ({sent})");
    ensure!(received.success(), "tar -x failed ({received})");
    let synced =
        Command::new("sync").arg("-f").arg(dest).stdin(Stdio::null()).status().await.context("cannot run sync -f")?;
    if !synced.success() {
        bail!("sync -f {} failed ({synced})", dest.display());
    }
    let elapsed = start.elapsed();

    let (tree2, copy) = (tree.clone(), dest.join(name));
    tokio::task::spawn_blocking(move || verify_tree("tar over TCP", &tree2, &copy)).await??;
    std::fs::remove_dir_all(dest.join(name))?;
    Ok(Sample { secs: elapsed.as_secs_f64(), rss_get: None, rss_share: None })
}

/// `tar` with nothing on stdin or stdout (each side then replaces one with
/// its socket), its stderr left on ours, killed if the run gives up on it.
fn tar_command() -> Command {
    let mut cmd = Command::new("tar");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true);
    cmd
}
