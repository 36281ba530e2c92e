//! `peerbox daemon`: the long-running node, with the API on loopback over HTTP.
//!
//! The API listens on 127.0.0.1 only, requires the bearer token stored in the home
//! folder (mode 0600), accepts only a loopback `Host` (no DNS rebinding), and sends
//! no CORS headers, so web pages cannot use it. `api.json` in the home tells other
//! `peerbox` processes where it is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use peerbox_node::{Node, NodeConfig, Request};

/// The token file in the home folder.
pub(crate) const TOKEN_FILE: &str = "api.token";
/// The address file in the home folder.
pub(crate) const API_FILE: &str = "api.json";

struct Api {
    node: Node,
    token: String,
    port: u16,
}

pub(crate) async fn run(
    home: PathBuf,
    listen: Vec<peerbox_node::Multiaddr>,
    mdns: bool,
    api: SocketAddr,
) -> anyhow::Result<()> {
    if !api.ip().is_loopback() {
        anyhow::bail!("the API only listens on loopback addresses (got {api})");
    }
    let node = Node::start(NodeConfig { home: home.clone(), listen, mdns, serve: true }).await?;
    let listener = tokio::net::TcpListener::bind(api).await.with_context(|| format!("cannot listen on {api}"))?;
    let addr = listener.local_addr()?;
    let token = hex_token();
    write_private(&home.join(TOKEN_FILE), token.as_bytes())?;
    let url = format!("http://{addr}");
    write_private(
        &home.join(API_FILE),
        serde_json::json!({ "url": url, "pid": std::process::id() }).to_string().as_bytes(),
    )?;
    println!("api {url}");
    println!("ui {url}/#token={token}");
    eprintln!("Peerbox daemon {} running; API on {url} (token in {})", node.peer_id(), home.join(TOKEN_FILE).display());
    let state = Arc::new(Api { node, token: token.clone(), port: addr.port() });
    let app = axum::Router::new()
        .route("/api/v1/call", axum::routing::post(call))
        .route("/", axum::routing::get(|| async { ui_file("index.html") }))
        // The UI's files sit beside index.html (as in the desktop app), and also
        // under /ui/ for links written that way.
        .route(
            "/ui/{file}",
            axum::routing::get(|axum::extract::Path(file): axum::extract::Path<String>| async move { ui_file(&file) }),
        )
        .route(
            "/{file}",
            axum::routing::get(|axum::extract::Path(file): axum::extract::Path<String>| async move { ui_file(&file) }),
        )
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(crate::shutdown_signal()).await?;
    let _ = std::fs::remove_file(home.join(API_FILE));
    eprintln!("Peerbox daemon stopped.");
    Ok(())
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// The policy the UI runs under: nothing but its own files and the API.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

fn ui_file(name: &str) -> Response {
    let Some((_, body)) = embedded::UI_FILES.iter().find(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    (
        [
            ("content-type", mime),
            ("content-security-policy", CSP),
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        *body,
    )
        .into_response()
}

fn hex_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response()
}

async fn call(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let host_ok = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == format!("127.0.0.1:{}", api.port) || h == format!("localhost:{}", api.port));
    if !host_ok {
        return error(StatusCode::FORBIDDEN, "bad_host", "requests must be addressed to the loopback API".into());
    }
    let token = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), api.token.as_bytes())) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong API token".into());
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    match api.node.call(req).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = if e.is_bad_input() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
            let a = e.to_api();
            error(status, a.code, a.message)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
