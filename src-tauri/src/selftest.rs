//! A smoke test of the real window, run by `tests/window.rs` under Xvfb: with
//! `PEERBOX_DESKTOP_SELFTEST` set, the app exits 0 once
//!
//! 1. the UI has reached the node through `call` (`status`),
//! 2. a `change` event, caused by adding a folder after step 1, has reached script
//!    in the page, and
//! 3. if `PEERBOX_DESKTOP_SELFTEST_LINK` is set, that link (given to this launch or a
//!    second one as an argument) has reached script in the page as `open-link`, and
//! 4. closing the window has hidden it (when there is a tray),
//!
//! or 1 after a minute. Steps 2 and 3 are observed by a listener this module injects
//! into the page (it subscribes exactly as `ui/api.js` does, through
//! `__TAURI_INTERNALS__` and `plugin:event|listen`, under the window's capability and
//! CSP) and which reports back through the command `selftest_ack`. The command and the
//! script exist only in self-test mode.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use peerbox_node::{ApiError, Node, Request};
use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, Wry};

use crate::MAIN_WINDOW;
use crate::settings::Settings;

/// Turns self-test mode on.
pub(crate) const ENV: &str = "PEERBOX_DESKTOP_SELFTEST";
/// The link the self-test expects to reach the page.
pub(crate) const LINK_ENV: &str = "PEERBOX_DESKTOP_SELFTEST_LINK";
/// How long the app waits for every check before failing.
const LIMIT: Duration = Duration::from_secs(60);

/// Listens in the page as `ui/api.js` does and reports what arrives.
const PAGE_SCRIPT: &str = r#"
(() => {
  const internals = window.__TAURI_INTERNALS__;
  if (!internals || window.top !== window) return;
  const ack = (what, payload) => internals.invoke('selftest_ack', { what, payload: payload ?? null }).catch(() => {});
  for (const event of ['change', 'open-link']) {
    const handler = internals.transformCallback((e) => ack(event, e.payload));
    internals
      .invoke('plugin:event|listen', { event, target: { kind: 'Any' }, handler })
      .catch((e) => ack('listen-failed', { event, error: String((e && e.message) || e) }));
  }
})();
"#;

/// What the self-test has seen.
pub(crate) struct Selftest {
    expect_link: Option<String>,
    reached_node: AtomicBool,
    saw_change: AtomicBool,
    saw_link: AtomicBool,
    finished: AtomicBool,
}

impl Selftest {
    /// Self-test mode, if the environment asks for it.
    pub(crate) fn from_env() -> Option<Self> {
        std::env::var_os(ENV)?;
        Some(Self {
            expect_link: std::env::var(LINK_ENV).ok().filter(|l| !l.is_empty()),
            reached_node: AtomicBool::new(false),
            saw_change: AtomicBool::new(false),
            saw_link: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        })
    }

    /// The plugin that puts the listener into the page.
    pub(crate) fn plugin() -> TauriPlugin<Wry> {
        tauri::plugin::Builder::new("peerbox-selftest").js_init_script(PAGE_SCRIPT).build()
    }

    /// Fails the run if it has not passed within the limit.
    pub(crate) fn start_timer(app: &AppHandle) {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(LIMIT).await;
            let missing = app.try_state::<Selftest>().map(|s| s.missing()).unwrap_or_default();
            eprintln!("selftest failed: not seen within {LIMIT:?}: {}", missing.join(", "));
            app.exit(1);
        });
    }

    /// The UI called `status`: it reached the node. Causes a change (adds a folder
    /// in the home) for the `change` check.
    pub(crate) fn reached_node(&self, app: &AppHandle) {
        if self.reached_node.swap(true, Ordering::SeqCst) {
            return;
        }
        println!("selftest ok: the window reached the node");
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            let node = app.state::<Node>();
            let folder: PathBuf = node.home().dir().join("selftest-folder");
            let added = match std::fs::create_dir_all(&folder) {
                Ok(()) => node.call(Request::FolderAdd { path: folder, name: None, mode: None }).await.map(|_| ()),
                Err(e) => Err(peerbox_node::NodeError::Internal(e.to_string())),
            };
            if let Err(e) = added {
                eprintln!("selftest failed: cannot add a folder to cause a change: {e}");
                app.exit(1);
            }
        });
    }

    fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.reached_node.load(Ordering::SeqCst) {
            m.push("the UI calling the node");
        }
        if !self.saw_change.load(Ordering::SeqCst) {
            m.push("a change event in the page");
        }
        if self.expect_link.is_some() && !self.saw_link.load(Ordering::SeqCst) {
            m.push("the link in the page as open-link");
        }
        m
    }

    /// Once every check passed: closes the window (which must hide it when there is
    /// a tray) and exits.
    fn finish_if_done(&self, app: &AppHandle) {
        if !self.missing().is_empty() || self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            let code = close_to_tray(&app).await;
            if code == 0 {
                println!("selftest ok: all checks passed");
            }
            app.exit(code);
        });
    }
}

/// Closing the window hides it when there is a tray (the default setting).
async fn close_to_tray(app: &AppHandle) -> i32 {
    let Some(window) = app.get_webview_window(MAIN_WINDOW) else {
        eprintln!("selftest failed: no window");
        return 1;
    };
    if !app.state::<Settings>().close_to_tray() {
        println!("selftest: no tray, so closing the window would quit (not tried)");
        return 0;
    }
    if let Err(e) = window.close() {
        eprintln!("selftest failed: cannot close the window: {e}");
        return 1;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if let Ok(false) = window.is_visible() {
            println!("selftest ok: closing the window hid it to the tray");
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("selftest failed: closing the window did not hide it to the tray");
    1
}

/// Reports from the page's listener (self-test mode only).
#[tauri::command]
pub(crate) fn selftest_ack(
    app: AppHandle,
    selftest: tauri::State<'_, Selftest>,
    what: String,
    payload: serde_json::Value,
) -> Result<(), ApiError> {
    match what.as_str() {
        "change" => {
            let generation = payload.get("gen").and_then(serde_json::Value::as_u64).unwrap_or(0);
            if generation > 0 && !selftest.saw_change.swap(true, Ordering::SeqCst) {
                println!("selftest ok: a change event reached the page (gen {generation})");
            }
        }
        "open-link" => {
            let link = payload.get("link").and_then(serde_json::Value::as_str).unwrap_or_default();
            if selftest.expect_link.as_deref() == Some(link) && !selftest.saw_link.swap(true, Ordering::SeqCst) {
                println!("selftest ok: the link argument reached the page as open-link");
            } else {
                eprintln!("selftest: open-link {link:?} was not the expected one");
            }
        }
        "listen-failed" => {
            eprintln!("selftest failed: the page could not subscribe: {payload}");
            app.exit(1);
            return Ok(());
        }
        other => return Err(ApiError { code: "bad_request", message: format!("unknown check {other:?}") }),
    }
    selftest.finish_if_done(&app);
    Ok(())
}
