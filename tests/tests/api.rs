//! The daemon's HTTP door, from the outside: it answers only on loopback, only
//! with its token (every route), only to a loopback Host, never with a CORS header
//! a web page could use, and hands out no file outside the folders, whatever the
//! URL or ticket says.

use std::path::Path;

use peerbox_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// The API's address and token.
fn api(d: &Daemon) -> (String, String) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.home.join("api.json")).expect("api.json")).expect("json");
    let url = v["url"].as_str().expect("url").trim_start_matches("http://").to_owned();
    let token = std::fs::read_to_string(d.home.join("api.token")).expect("token");
    (url, token)
}

/// One raw HTTP/1.1 request; returns the whole answer (status line, headers, body).
async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(STEP, s.read_to_string(&mut out)).await.expect("answered").expect("read");
    out
}

fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_needs_the_token_and_no_answer_carries_cors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&tmp.path().join("home")).await;
    let (addr, token) = api(&d);
    let bearer = format!("Bearer {token}");
    for (method, path, body) in [
        ("POST", "/api/v1/call", r#"{"op":"status"}"#),
        ("GET", "/api/v1/events", ""),
        ("PUT", "/api/v1/upload?path=x.txt", "data"),
        ("PUT", "/api/v1/drop?path=x.txt&size=4&batch=00000000000000000000000000000000", "data"),
        ("POST", "/api/v1/ticket", r#"{"folder":"F","path":"x"}"#),
    ] {
        let a = http(&addr, method, path, &[("Origin", "https://evil.example")], body).await;
        assert_eq!(status(&a), 401, "{method} {path} without the token: {a}");
        let a = http(&addr, method, path, &[("Authorization", "Bearer wrong")], body).await;
        assert_eq!(status(&a), 401, "{method} {path} with a wrong token: {a}");
    }
    // A browser's preflight from another site gets no permission to go on.
    let pre = http(
        &addr,
        "OPTIONS",
        "/api/v1/call",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        "",
    )
    .await;
    assert!(!pre.to_lowercase().contains("access-control-allow"), "{pre}");
    let ok = http(
        &addr,
        "POST",
        "/api/v1/call",
        &[("Authorization", &bearer), ("Origin", "https://evil.example")],
        r#"{"op":"status"}"#,
    )
    .await;
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(!ok.to_lowercase().contains("access-control-allow"), "no CORS header, even when authorised: {ok}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_listens_on_loopback_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let out = tokio::time::timeout(
            STEP,
            peerbox(&tmp.path().join("home"))
                .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", addr])
                .output(),
        )
        .await
        .expect("exits")
        .expect("spawn");
        assert!(!out.status.success(), "{addr}: started");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("loopback"),
            "{addr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_file_outside_the_folders_is_served_whatever_the_url_or_ticket_says() {
    let tmp = tempfile::tempdir().expect("tmp");
    let secret = tmp.path().join("secret.txt");
    put(&secret, b"SECRET outside every folder");
    let dir = tmp.path().join("F");
    put(&dir.join("ok.txt"), b"fine");
    std::os::unix::fs::symlink(&secret, dir.join("link-out.txt")).expect("symlink");
    let d = Daemon::start(&tmp.path().join("home")).await;
    d.ok(&["folder", "add", s(&dir), "--name", "F"]).await;
    let (addr, token) = api(&d);
    let bearer = format!("Bearer {token}");
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/ui/..%2f..%2f..%2fetc%2fpasswd",
        "/ui/%2e%2e%2fsecret.txt",
        &format!("/{}", secret.display()),
    ] {
        let a = http(&addr, "GET", path, &[], "").await;
        assert!(!a.contains("SECRET") && !a.contains("root:"), "{path}: {a}");
        assert_ne!(status(&a), 200, "{path}: {a}");
    }
    for (what, body) in [
        ("climbing out", r#"{"folder":"F","path":"../secret.txt"}"#),
        ("absolute", r#"{"folder":"F","path":"/etc/passwd"}"#),
        ("a link out of the folder", r#"{"folder":"F","path":"link-out.txt"}"#),
    ] {
        let a = http(&addr, "POST", "/api/v1/ticket", &[("Authorization", &bearer)], body).await;
        assert_eq!(status(&a), 400, "{what}: {a}");
    }
    // A ticket for a real file, swapped for a link out before it is used.
    let a =
        http(&addr, "POST", "/api/v1/ticket", &[("Authorization", &bearer)], r#"{"folder":"F","path":"ok.txt"}"#).await;
    assert_eq!(status(&a), 200, "{a}");
    let url = a.split("\"url\":\"").nth(1).and_then(|r| r.split('"').next()).expect("a ticket url").to_owned();
    std::fs::remove_file(dir.join("ok.txt")).expect("rm");
    std::os::unix::fs::symlink(&secret, dir.join("ok.txt")).expect("swap");
    let got = http(&addr, "GET", &url, &[], "").await;
    assert!(!got.contains("SECRET"), "the swapped-in link was followed: {got}");
    assert_eq!(status(&got), 400, "{got}");
    d.stop().await;
}

/// An open drive window holds an event stream; asked to stop, the daemon ends
/// the stream and exits rather than waiting for the window to close.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_stops_when_asked_with_a_drive_window_open() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(&tmp.path().join("home")).await;
    let (addr, token) = api(&d);
    let mut window = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let req = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    window.write_all(req.as_bytes()).await.expect("write");
    let mut first = vec![0; 4096];
    let n = tokio::time::timeout(STEP, window.read(&mut first)).await.expect("the stream starts").expect("read");
    assert!(String::from_utf8_lossy(&first[..n]).contains("200 OK"), "{}", String::from_utf8_lossy(&first[..n]));

    let pid = d.child.id().expect("pid");
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let exit = tokio::time::timeout(STEP, d.child.wait()).await.expect("the daemon stopped").expect("wait");
    assert!(exit.success(), "{exit:?}");
    // The stream was ended, not left hanging.
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, window.read_to_end(&mut rest)).await.expect("the stream ended").expect("read");
    assert!(!d.home.join("api.json").exists(), "the API's address is withdrawn");
}
