//! A very small HTTP/1.1 client for the loopback APIs the sync and scan
//! benchmarks poll: the Peerbox daemon's (`POST /api/v1/call`, bearer token; and
//! its `GET /api/v1/events` stream, read by [`events`]) and Syncthing's REST
//! API (`X-API-Key`). One request per connection, bounded answers, a timeout on
//! every call. Only ever given `127.0.0.1:PORT` addresses.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Largest answer read.
const MAX_RESPONSE: u64 = 64 << 20;
/// A call that takes longer than this fails (Syncthing's scan call blocks until the scan is done).
const CALL_LIMIT: Duration = Duration::from_secs(300);

/// Sends one request to `hostport` (`127.0.0.1:PORT`) and returns the status and body.
pub(crate) async fn request(
    hostport: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    ensure!(hostport.starts_with("127.0.0.1:"), "refusing to call a non-loopback address {hostport}");
    tokio::time::timeout(CALL_LIMIT, request_inner(hostport, method, path, headers, body))
        .await
        .with_context(|| format!("{method} http://{hostport}{path} took over {}s", CALL_LIMIT.as_secs()))?
        .with_context(|| format!("{method} http://{hostport}{path}"))
}

async fn request_inner(
    hostport: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(hostport).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    (&mut s).take(MAX_RESPONSE).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP answer")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("malformed status line")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Ok((status, body))
}

/// Like [`request`], but fails on a status >= 400 and parses the body as JSON
/// (an empty body is `null`).
pub(crate) async fn json(
    hostport: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<serde_json::Value> {
    let (status, text) = request(hostport, method, path, headers, body).await?;
    if status >= 400 {
        bail!("{method} {path}: HTTP {status}: {}", text.trim());
    }
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {path}: the answer is not JSON: {text:?}"))
}

/// Events of a Server-Sent Events stream, as their arrival times; the reading
/// task stops when this is dropped.
pub(crate) struct Events {
    rx: mpsc::Receiver<Instant>,
    task: tokio::task::JoinHandle<()>,
}

/// Events queued before the reader starts dropping them: a consumer that is this
/// far behind only needs to know that something happened.
const EVENT_QUEUE: usize = 64;

impl Events {
    /// The arrival time of the next event, or `None` if none came within
    /// `wait`. Fails when the stream has ended.
    pub(crate) async fn next(&mut self, wait: Duration) -> Result<Option<Instant>> {
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Err(_) => Ok(None),
            Ok(Some(at)) => Ok(Some(at)),
            Ok(None) => bail!("the event stream ended"),
        }
    }

    /// The arrival times of the events queued now and of those that arrive until `until`.
    pub(crate) async fn collect_until(&mut self, until: Instant) -> Vec<Instant> {
        let mut out = Vec::new();
        while let Ok(Some(at)) = tokio::time::timeout_at(until.into(), self.rx.recv()).await {
            out.push(at);
        }
        out
    }

    /// Forgets the events that have arrived so far.
    pub(crate) fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens `GET path` on `hostport` as a Server-Sent Events stream and reports
/// every event named `name` (`event: NAME` lines) with the time it arrived.
pub(crate) async fn events(hostport: &str, path: &str, headers: &[(&str, &str)], name: &str) -> Result<Events> {
    ensure!(hostport.starts_with("127.0.0.1:"), "refusing to call a non-loopback address {hostport}");
    let open = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await?;
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        let mut lines = BufReader::new(s).lines();
        let status = lines.next_line().await?.context("no answer")?;
        let code: u16 =
            status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("malformed status line")?;
        ensure!(code == 200, "HTTP {code}");
        while let Some(l) = lines.next_line().await? {
            if l.trim().is_empty() {
                break;
            }
        }
        anyhow::Ok(lines)
    };
    let mut lines = tokio::time::timeout(Duration::from_secs(30), open)
        .await
        .with_context(|| format!("GET http://{hostport}{path} took over 30 s"))?
        .with_context(|| format!("GET http://{hostport}{path}"))?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let want = format!("event: {name}");
    // Chunked framing puts the chunk sizes on lines of their own; each event is
    // one chunk, so its `event:` line arrives whole and the sizes never match.
    let task = tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.trim() == want && tx.try_send(Instant::now()).is_err() && tx.is_closed() {
                return;
            }
        }
    });
    Ok(Events { rx, task })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunks() {
        assert_eq!(super::dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
