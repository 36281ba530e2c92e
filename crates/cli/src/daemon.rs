//! `peerbox daemon`: the long-running node, with the API on loopback over HTTP.
//!
//! The API listens on 127.0.0.1 only, requires the bearer token stored in the home
//! folder (mode 0600), accepts only a loopback `Host` (no DNS rebinding), and sends
//! no CORS headers, so web pages cannot use it. `api.json` in the home tells other
//! `peerbox` processes where it is.
//!
//! Besides `POST /api/v1/call` (one request, one JSON answer) it has three routes the
//! browser UI needs: `GET /api/v1/events` (a Server-Sent Events stream: `change`,
//! throttled to 10 a second, and `notice`), `PUT /api/v1/upload?folder=&path=` (a file
//! streamed into a folder, or into the quick-share drop folder when `folder` is
//! absent), `PUT /api/v1/drop?path=&size=&batch=` (a file sent on through someone
//! else's file-request link), and `GET /api/v1/download/TICKET` (a file of a folder, by a one-time
//! ticket from `POST /api/v1/ticket`, so a plain link can start a browser download
//! without putting the token in a URL).

use std::net::SocketAddr;
use std::path::Path;
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
    /// One-time download tickets, by ticket.
    tickets: std::sync::Mutex<std::collections::HashMap<String, Ticket>>,
    /// Turns true when the daemon is asked to stop: event streams end then, so an
    /// open drive window does not hold the shutdown.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// How long requests still running (a download, an upload) may finish after
/// the stop signal.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a download ticket names, (folder, path in it), and when it was made.
type Ticket = ((String, String), std::time::Instant);

/// How long a download ticket stays good.
const TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Tickets outstanding at most (old ones are dropped first).
const MAX_TICKETS: usize = 256;
/// The least time between two `change` events on one stream.
const EVENT_GAP: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) async fn run(config: NodeConfig, api: SocketAddr) -> anyhow::Result<()> {
    if !api.ip().is_loopback() {
        anyhow::bail!("the API only listens on loopback addresses (got {api})");
    }
    let home = config.home.clone();
    let node = Node::start(config).await?;
    let listener = tokio::net::TcpListener::bind(api).await.with_context(|| format!("cannot listen on {api}"))?;
    let addr = listener.local_addr()?;
    let token = hex_token();
    write_private(&home.join(TOKEN_FILE), token.as_bytes())?;
    let url = format!("http://{addr}");
    write_private(
        &home.join(API_FILE),
        serde_json::json!({ "url": url, "pid": std::process::id() }).to_string().as_bytes(),
    )?;
    // Whoever started the daemon may not read its output: it runs on regardless.
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "api {url}");
    let _ = writeln!(std::io::stdout(), "ui {url}/#token={token}");
    eprintln!("Peerbox daemon {} running; API on {url} (token in {})", node.peer_id(), home.join(TOKEN_FILE).display());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let state = Arc::new(Api {
        node,
        token: token.clone(),
        port: addr.port(),
        tickets: Default::default(),
        stopping: stopping.clone(),
    });
    let app = axum::Router::new()
        .route("/api/v1/call", axum::routing::post(call))
        .route("/api/v1/events", axum::routing::get(events))
        .route("/api/v1/upload", axum::routing::put(upload))
        .route("/api/v1/drop", axum::routing::put(drop_file))
        .route("/api/v1/ticket", axum::routing::post(ticket))
        .route("/api/v1/download/{ticket}", axum::routing::get(download))
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
    let mut graceful = stopping.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|s| *s).await;
    });
    let mut hard = stopping;
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = hard.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => eprintln!("Requests still open {} s after the stop signal; stopping anyway.", STOP_GRACE.as_secs()),
    }
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

fn check_host(api: &Api, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let host_ok = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == format!("127.0.0.1:{}", api.port) || h == format!("localhost:{}", api.port));
    if host_ok {
        Ok(())
    } else {
        Err(Box::new(error(StatusCode::FORBIDDEN, "bad_host", "requests must be addressed to the loopback API".into())))
    }
}

/// The loopback Host and the bearer token, which every route but the ticketed
/// download requires.
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), Box<Response>> {
    check_host(api, headers)?;
    let token = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), api.token.as_bytes())) {
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong API token".into())));
    }
    Ok(())
}

fn node_error(e: &peerbox_node::NodeError) -> Response {
    let status = if e.is_bad_input() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
    let a = e.to_api();
    error(status, a.code, a.message)
}

async fn call(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    match api.node.call(req).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => node_error(&e),
    }
}

/// `change` whenever the node's state moves (at most every [`EVENT_GAP`]), and
/// `notice` for each notice. The stream ends when the client goes away.
async fn events(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    let mut changes = api.node.paced_changes(EVENT_GAP);
    let mut notices = api.node.notices();
    let mut stopping = api.stopping.clone();
    tokio::spawn(async move {
        let change = |n: u64| Event::default().event("change").data(format!("{{\"gen\":{n}}}"));
        // The first event tells the client the stream is live.
        let mut pending = Some(changes.current());
        loop {
            if let Some(n) = pending.take()
                && tx.send(change(n)).await.is_err()
            {
                return;
            }
            tokio::select! {
                c = changes.next() => match c {
                    Some(n) => pending = Some(n),
                    None => return,
                },
                n = notices.recv() => match n {
                    Ok(notice) => {
                        let data = serde_json::to_string(&notice).unwrap_or_default();
                        if tx.send(Event::default().event("notice").data(data)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => pending = Some(changes.current()),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = tx.closed() => return,
                // It only ever turns true (or its sender goes): either way, stop.
                _ = stopping.changed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A request body as a bounded queue of chunks (an error ends it), and the future
/// that fills the queue: memory stays at a few chunks however large the body.
fn body_chunks(
    body: axum::body::Body,
) -> (impl std::future::Future<Output = ()>, tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>) {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let feed = async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(|e| e.to_string());
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    (feed, rx)
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    #[serde(default)]
    folder: Option<String>,
    path: String,
}

/// A file streamed into a folder (or the quick-share drop folder). Answers with
/// where it landed: `{path, abs, bytes}`.
async fn upload(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<UploadQuery>,
    body: axum::body::Body,
) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let (feed, rx) = body_chunks(body);
    let folder = q.folder.filter(|f| !f.is_empty());
    let (_, result) = tokio::join!(feed, api.node.upload(folder.as_deref(), &q.path, rx));
    match result {
        Ok(added) => Json(added).into_response(),
        Err(e) => node_error(&e),
    }
}

#[derive(serde::Deserialize)]
struct DropQuery {
    path: String,
    size: u64,
    batch: String,
}

/// A file streamed on through someone's file-request link (the link and its
/// password in `x-peerbox-link` and `x-peerbox-password`, never in the URL).
/// Answers with where it landed in the owner's folder: `{path}`.
async fn drop_file(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<DropQuery>,
    body: axum::body::Body,
) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(link) = header("x-peerbox-link") else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "the x-peerbox-link header is missing".into());
    };
    let password = match header("x-peerbox-password").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match percent_encoding::percent_decode_str(&p).decode_utf8() {
            Ok(p) => Some(p.into_owned()),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the password header is not percent-encoded UTF-8".into(),
                );
            }
        },
    };
    let (feed, rx) = body_chunks(body);
    let send = api.node.drop_stream(&link, password.as_deref(), &q.batch, &q.path, q.size, rx);
    let (_, result) = tokio::join!(feed, send);
    match result {
        Ok(path) => Json(serde_json::json!({ "path": path })).into_response(),
        Err(e) => node_error(&e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    folder: String,
    path: String,
}

/// A one-time address for downloading one local file of a folder.
async fn ticket(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let req: TicketRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    // Checked now, so a bad path is refused here rather than at download.
    if let Err(e) = api.node.open_local(&req.folder, &req.path) {
        return node_error(&e);
    }
    let t = hex_token();
    let mut tickets = api.tickets.lock().unwrap_or_else(|p| p.into_inner());
    tickets.retain(|_, (_, at)| at.elapsed() < TICKET_TTL);
    if tickets.len() >= MAX_TICKETS
        && let Some(oldest) = tickets.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
    {
        tickets.remove(&oldest);
    }
    tickets.insert(t.clone(), ((req.folder, req.path), std::time::Instant::now()));
    Json(serde_json::json!({ "url": format!("/api/v1/download/{t}") })).into_response()
}

/// Streams the file a ticket names, once.
async fn download(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::Path(t): axum::extract::Path<String>,
) -> Response {
    if let Err(r) = check_host(&api, &headers) {
        return *r;
    }
    let entry = api.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(&t);
    let Some(((folder, path), _)) = entry.filter(|(_, at)| at.elapsed() < TICKET_TTL) else {
        return error(StatusCode::NOT_FOUND, "no_ticket", "this download address has been used or has expired".into());
    };
    let file = match api.node.open_local(&folder, &path) {
        Ok(f) => tokio::fs::File::from_std(f),
        Err(e) => return node_error(&e),
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("download");
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    (
        [
            ("content-type", "application/octet-stream".to_owned()),
            ("content-length", len.to_string()),
            ("content-disposition", format!("attachment; filename*=UTF-8''{}", percent_encode(name))),
            ("x-content-type-options", "nosniff".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// RFC 5987 encoding for a file name in Content-Disposition.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
