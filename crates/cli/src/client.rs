//! Talking to the running daemon of a home folder over its loopback API.
//!
//! A deliberately small HTTP/1.1 client: one request per connection, loopback only,
//! bodies bounded.

use std::path::Path;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon::{API_FILE, TOKEN_FILE};

/// Largest answer we read.
const MAX_RESPONSE: u64 = 64 << 20;

/// An error the daemon answered with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DaemonError {
    /// 4xx: the request was bad (exit 2); else 1.
    pub(crate) bad_input: bool,
    message: String,
}

/// Whether a daemon answers for `home` (its address file exists and it accepts
/// connections).
pub(crate) fn daemon_running(home: &Path) -> bool {
    let Ok(api) = std::fs::read_to_string(home.join(API_FILE)) else { return false };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&api) else { return false };
    let Some(hostport) = v["url"].as_str().and_then(|u| u.strip_prefix("http://")) else { return false };
    let Ok(addr) = hostport.parse::<std::net::SocketAddr>() else { return false };
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
}

/// Sends one API request to the daemon owning `home`.
pub(crate) async fn call(home: &Path, req: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let api = std::fs::read_to_string(home.join(API_FILE)).map_err(|_| {
        anyhow::anyhow!("no Peerbox daemon is running for {}; start one with `peerbox daemon`", home.display())
    })?;
    let api: serde_json::Value = serde_json::from_str(&api).context("api.json is damaged; restart the daemon")?;
    let url = api["url"].as_str().context("api.json has no url")?;
    let hostport = url.strip_prefix("http://").context("api.json url is not http")?;
    let token = std::fs::read_to_string(home.join(TOKEN_FILE)).context("cannot read the API token")?;
    let body = serde_json::to_vec(&req)?;
    let mut s = tokio::net::TcpStream::connect(hostport)
        .await
        .with_context(|| format!("the daemon at {url} does not answer; is it still running?"))?;
    let head = format!(
        "POST /api/v1/call HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token.trim(),
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    let mut raw = Vec::new();
    (&mut s).take(MAX_RESPONSE).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed answer from the daemon")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("malformed status line")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    let value: serde_json::Value = serde_json::from_str(&body).context("the daemon's answer is not JSON")?;
    if status >= 400 {
        let message = value["error"]["message"].as_str().unwrap_or("request failed").to_owned();
        bail!(DaemonError { bad_input: (400..500).contains(&status) && status != 401 && status != 403, message });
    }
    Ok(value)
}

impl DaemonError {
    /// A usage mistake caught before asking the daemon.
    pub(crate) fn usage(message: &str) -> Self {
        Self { bad_input: true, message: message.to_owned() }
    }
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

/// The drive's address with the login token, for the daemon owning `home`.
pub(crate) fn ui_url(home: &Path) -> anyhow::Result<String> {
    if !daemon_running(home) {
        bail!("no Peerbox daemon is running for {}; start one with `peerbox daemon`", home.display());
    }
    let api: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(home.join(API_FILE))?)
        .context("api.json is damaged; restart the daemon")?;
    let url = api["url"].as_str().context("api.json has no url")?;
    let token = std::fs::read_to_string(home.join(TOKEN_FILE)).context("cannot read the API token")?;
    Ok(format!("{url}/#token={}", token.trim()))
}
