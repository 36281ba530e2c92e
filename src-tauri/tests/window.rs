//! The desktop app end to end: a real window under Xvfb, the real webview loading
//! `ui/`, the UI calling the in-process node through Tauri's IPC, and events from the
//! shell reaching script in the page (see `src/selftest.rs` for what the app checks).
//!
//! Each app runs in a process group of its own; every test ends by checking that the
//! group is empty (no app, Xvfb or WebKit process left behind).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A link as the app gets it from the OS or a command line (decoding is the node's job).
const LINK: &str = "peerbox://3yZe7d9Qk5sPq2MvXhR8bNf6tLwUaC4gJ1oE";
/// One app at a time: `xvfb-run -a` can pick the same display for two servers
/// started at once, and the machine may have two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Guards against a hang of the harness; the app fails by itself after 60 s.
const HARNESS_LIMIT: Duration = Duration::from_secs(150);

fn xvfb_run() -> &'static str {
    let found = ["/usr/bin/xvfb-run", "/usr/local/bin/xvfb-run"].into_iter().find(|p| Path::new(p).exists());
    found.unwrap_or_else(|| panic!("xvfb-run is missing: install the xvfb package (./test does)"))
}

/// A private environment: a home, and XDG folders so that registering the link
/// handler and the autostart entry never touch the real user's.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn command(&self, dbus: &str) -> Command {
        let mut c = Command::new(xvfb_run());
        c.args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(env!("CARGO_BIN_EXE_peerbox-desktop"))
            .env("PEERBOX_HOME", self.home())
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg-runtime"))
            .env("DBUS_SESSION_BUS_ADDRESS", dbus)
            .env_remove(SELFTEST)
            .env_remove(SELFTEST_LINK)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let runtime = self.dir.path().join("xdg-runtime");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        c
    }

    /// No session bus at all: no single-instance, no notifications, no file manager.
    fn no_bus(&self) -> String {
        format!("unix:path={}", self.dir.path().join("no-bus").display())
    }
}

const SELFTEST: &str = "PEERBOX_DESKTOP_SELFTEST";
const SELFTEST_LINK: &str = "PEERBOX_DESKTOP_SELFTEST_LINK";

/// A started process group, its output read as it comes.
struct Running {
    child: Child,
    pgid: i32,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("start the app under xvfb-run");
        let pgid = i32::try_from(child.id()).expect("pid");
        let (tx, lines) = sync_channel(1024);
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self { child, pgid, lines, stdout: Vec::new(), stderr: Some(stderr) }
    }

    /// Waits for a stdout line containing `text`.
    fn wait_for_line(&mut self, text: &str) {
        let deadline = Instant::now() + HARNESS_LIMIT;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.stdout.push(line);
                    if found {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        let (stdout, stderr) = self.finish_output();
                        panic!("exited ({status}) before printing {text:?}\nstdout: {stdout}\nstderr: {stderr}");
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.kill_group();
        let (stdout, stderr) = self.finish_output();
        panic!("no {text:?} in time\nstdout: {stdout}\nstderr: {stderr}");
    }

    /// Waits for the exit; returns the status, all stdout and stderr.
    fn wait(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + HARNESS_LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                self.kill_group();
                let (stdout, stderr) = self.finish_output();
                panic!("the desktop app neither succeeded nor failed in time\nstdout: {stdout}\nstderr: {stderr}");
            }
            std::thread::park_timeout(Duration::from_millis(100));
        };
        let (stdout, stderr) = self.finish_output();
        let left = wait_group_empty(self.pgid);
        assert!(left.is_empty(), "processes left behind: {left:?}\nstdout: {stdout}\nstderr: {stderr}");
        (status, stdout, stderr)
    }

    fn finish_output(&mut self) -> (String, String) {
        // The reader threads end when every writer (the app and its helpers) is gone.
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        self.stdout.extend(self.lines.try_iter());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
            self.stdout.push(line);
        }
        (self.stdout.join("\n"), stderr)
    }

    fn kill_group(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pgid)]).status();
        let _ = self.child.wait();
    }
}

/// Live (not zombie) processes in the group `pgid`, after giving them a few seconds
/// to go; any still there are killed so that a failing test leaves nothing behind.
fn wait_group_empty(pgid: i32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = live_in_group(pgid);
        if left.is_empty() {
            return left;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn live_in_group(pgid: i32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(") ")?;
            let mut f = rest.split_whitespace();
            let state = f.next()?;
            let group: i32 = f.nth(1)?.parse().ok()?;
            (group == pgid && state != "Z").then(|| head.replacen(" (", " ", 1))
        })
        .collect()
}

#[test]
fn the_window_reaches_the_node_and_hears_changes_and_its_link_argument() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    // Minimise to tray, chosen by the user: without a tray host (none under Xvfb)
    // it is off by default.
    std::fs::create_dir_all(env.home()).expect("home");
    std::fs::write(env.home().join("desktop.json"), br#"{"tray": true}"#).expect("settings");
    let mut cmd = env.command(&env.no_bus());
    cmd.arg(LINK).env(SELFTEST, "1").env(SELFTEST_LINK, LINK);
    let (status, stdout, stderr) = Running::start(cmd).wait();
    let passed = status.success()
        && [
            "selftest ok: the window reached the node",
            "selftest ok: a change event reached the page",
            "selftest ok: the link argument reached the page as open-link",
            "selftest ok: closing the window hid it to the tray",
            "selftest ok: all checks passed",
        ]
        .iter()
        .all(|l| stdout.contains(l));
    assert!(passed, "exit {status}\nstdout: {stdout}\nstderr: {stderr}");
}

/// A session bus of our own, for the single-instance plugin.
struct Bus {
    daemon: Child,
    address: String,
}

impl Bus {
    fn start() -> Option<Self> {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut address = String::new();
        BufReader::new(daemon.stdout.take()?).read_line(&mut address).ok()?;
        let address = address.trim().to_owned();
        if address.is_empty() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return None;
        }
        Some(Self { daemon, address })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_second_launch_hands_its_link_to_the_first_and_exits() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bus) = Bus::start() else {
        eprintln!("skipped: dbus-daemon is not installed (the dbus package), so there is no session bus to test with");
        return;
    };
    let env = Env::new();
    let mut first = env.command(&bus.address);
    first.env(SELFTEST, "1").env(SELFTEST_LINK, LINK);
    let mut first = Running::start(first);
    // The first instance owns its D-Bus name from before its window loads.
    first.wait_for_line("selftest ok: the window reached the node");
    assert!(!live_in_group(first.pgid).is_empty(), "the process-group check sees the running app");

    let mut second = env.command(&bus.address);
    second.arg(LINK);
    let (status, stdout, stderr) = Running::start(second).wait();
    assert!(status.success(), "the second launch failed: exit {status}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("another Peerbox process"), "the second launch started a node: {stderr}");

    let (status, stdout, stderr) = first.wait();
    assert!(
        status.success()
            && stdout.contains("selftest ok: the link argument reached the page as open-link")
            // No StatusNotifier host on this bus: hiding the window would lose it.
            && stdout.contains("closing quits"),
        "exit {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
}
