//! The desktop app end to end: a real window under Xvfb, the real webview loading
//! `ui/`, the UI calling the in-process node through Tauri's IPC.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_window_opens_and_the_ui_reaches_the_node() {
    let home = tempfile::tempdir().expect("home");
    let xvfb = ["/usr/bin/xvfb-run", "/usr/local/bin/xvfb-run"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(xvfb) = xvfb else {
        panic!("xvfb-run is missing: install the xvfb package (./test does)");
    };
    let mut child = Command::new(xvfb)
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_peerbox-desktop"))
        .env("PEERBOX_HOME", home.path())
        .env("PEERBOX_DESKTOP_SELFTEST", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the app under xvfb-run");
    // The app exits by itself: 0 once the UI has called the node, 1 after its own
    // 60 s limit. This bound only guards against a hang of the harness itself.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the desktop app neither succeeded nor failed in time");
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success() && stdout.contains("selftest ok"),
        "exit {status}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
