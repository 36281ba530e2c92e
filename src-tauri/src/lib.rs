//! The desktop shell: one window showing `ui/`, with the node running in-process.
//!
//! Thin by design: the only command is `call`, which hands an API request to the
//! same dispatch the daemon's HTTP door uses, and returns its JSON or a
//! `{code, message}` error. Everything else is the node's and the UI's.

use std::process::ExitCode;

use peerbox_node::{ApiError, Home, Node, NodeConfig, Request};
use tauri::Manager;

/// Set to make the app exit 0 once the UI has reached the node through `call`
/// (a smoke test of window, webview, IPC and node together), or 1 after a timeout.
const SELFTEST_ENV: &str = "PEERBOX_DESKTOP_SELFTEST";

#[tauri::command]
async fn call(
    node: tauri::State<'_, Node>,
    app: tauri::AppHandle,
    req: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let req: Request =
        serde_json::from_value(req).map_err(|e| ApiError { code: "bad_request", message: e.to_string() })?;
    let is_status = matches!(req, Request::Status);
    let out = node.call(req).await.map_err(|e| e.to_api())?;
    if is_status && std::env::var_os(SELFTEST_ENV).is_some() {
        println!("selftest ok: the window reached the node");
        app.exit(0);
    }
    Ok(out)
}

/// Starts the node for the home (`PEERBOX_HOME` or the platform default) and
/// opens the window. Returns when the app quits.
pub fn run() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let Some(home) = std::env::var_os("PEERBOX_HOME").map(Into::into).or_else(Home::default_dir) else {
        eprintln!("peerbox: cannot find a home folder; set PEERBOX_HOME");
        return ExitCode::from(1);
    };
    let config = NodeConfig { home, listen: Vec::new(), mdns: true, serve: true };
    let node = match tauri::async_runtime::block_on(Node::start(config)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("peerbox: {e}");
            return ExitCode::from(1);
        }
    };
    let selftest = std::env::var_os(SELFTEST_ENV).is_some();
    let result = tauri::Builder::default()
        .manage(node)
        .invoke_handler(tauri::generate_handler![call])
        .setup(move |app| {
            if selftest {
                let handle = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    eprintln!("selftest failed: the UI never reached the node");
                    handle.exit(1);
                });
            }
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.set_title("Peerbox");
            }
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerbox: {e}");
            ExitCode::from(1)
        }
    }
}
