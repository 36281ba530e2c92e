//! The reference case: a plain TCP copy over loopback into a new file plus
//! fsync, in this process on tokio. It is the practical limit for moving one
//! file between two programs on this machine; peerbox is reported as a ratio
//! to it. Called once per round by `main`, before the other cases.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Sample;
use crate::data::{CHUNK, Source, verify};

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
