//! The desktop shell: one window showing `ui/`, with the node running in-process.
//!
//! Thin by design. Commands only translate to and from the node API (`call`) or do
//! what only the shell can (settings of its own, opening files); everything else is
//! the node's and the UI's. The shell also tells the window about things as they
//! happen — `change`, `notice`, `drop-paths` and `open-link` events — and owns the
//! tray icon, OS notifications, the single-instance and deep-link handling.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use peerbox_node::{ApiError, Home, Node, NodeConfig, Request};
use serde_json::json;
use tauri::{AppHandle, DragDropEvent, Emitter, Manager, Window, WindowEvent};

mod events;
mod files;
mod links;
mod selftest;
mod settings;
mod tray;

use links::LinkInbox;
use selftest::Selftest;
use settings::{DesktopSettings, Settings, SettingsChange};

/// The window's label (tauri.conf.json).
pub(crate) const MAIN_WINDOW: &str = "main";
/// The argument autostart launches the app with: start hidden in the tray.
const AUTOSTART_ARG: &str = "--autostart";

/// One API request (JSON) to the node; its JSON answer or a `{code, message}` error.
#[tauri::command]
async fn call(
    node: tauri::State<'_, Node>,
    inbox: tauri::State<'_, LinkInbox>,
    app: AppHandle,
    req: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    // The UI subscribes to events before its first call: links can go out now.
    inbox.ui_ready(&app);
    let req: Request =
        serde_json::from_value(req).map_err(|e| ApiError { code: "bad_request", message: e.to_string() })?;
    let is_status = matches!(req, Request::Status);
    let out = node.call(req).await.map_err(|e| e.to_api())?;
    if is_status && let Some(selftest) = app.try_state::<Selftest>() {
        selftest.reached_node(&app);
    }
    Ok(out)
}

/// `{"autostart", "tray", "tray_available"}` for the Settings page.
#[tauri::command]
fn desktop_settings_get(app: AppHandle, settings: tauri::State<'_, Settings>) -> DesktopSettings {
    settings::get(&app, &settings)
}

/// Changes the settings named; returns them all.
#[tauri::command]
fn desktop_settings_set(
    app: AppHandle,
    settings: tauri::State<'_, Settings>,
    autostart: Option<bool>,
    tray: Option<bool>,
) -> Result<DesktopSettings, ApiError> {
    settings::set(&app, &settings, SettingsChange { autostart, tray })
}

/// Opens a file inside one of the node's folders with the system's default app.
#[tauri::command]
async fn open_path(node: tauri::State<'_, Node>, path: PathBuf) -> Result<(), ApiError> {
    files::open(&node, path).await
}

/// Shows a file inside one of the node's folders in the file manager.
#[tauri::command]
async fn reveal_path(node: tauri::State<'_, Node>, path: PathBuf) -> Result<(), ApiError> {
    files::reveal(&node, path).await
}

/// Brings the window back (from the tray, minimised or behind others).
pub(crate) fn show_main_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Close to tray, and files dropped from the OS.
fn on_window_event(window: &Window, event: &WindowEvent) {
    match event {
        WindowEvent::CloseRequested { api, .. }
            if window.label() == MAIN_WINDOW && window.try_state::<Settings>().is_some_and(|s| s.close_to_tray()) =>
        {
            api.prevent_close();
            let _ = window.hide();
        }
        WindowEvent::DragDrop(DragDropEvent::Drop { paths, position }) => {
            let paths: Vec<&str> = paths.iter().filter(|p| p.is_absolute()).filter_map(|p| p.to_str()).collect();
            if paths.is_empty() {
                return;
            }
            // CSS pixels, as the page measures.
            let at = position.to_logical::<f64>(window.scale_factor().unwrap_or(1.0));
            let payload = json!({ "paths": paths, "position": { "x": at.x, "y": at.y } });
            if let Err(e) = window.app_handle().emit_to(MAIN_WINDOW, "drop-paths", payload) {
                tracing::warn!("cannot pass dropped files to the window: {e}");
            }
        }
        _ => {}
    }
}

/// A D-Bus name for the single-instance plugin (Linux) per home folder, so that two
/// Peerbox devices (`PEERBOX_HOME`) can run side by side while a second launch on
/// the same home goes to the first. FNV-1a: stable across builds.
fn instance_id(home: &Path) -> String {
    let home = home.canonicalize().unwrap_or_else(|_| home.to_owned());
    let hash = home
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("org.peerbox.desktop.home_{hash:016x}")
}

/// Starts the node for the home (`PEERBOX_HOME` or the platform default) and
/// opens the window. Returns when the app quits.
pub fn run() -> ExitCode {
    // Before any thread starts (see the function).
    peerbox_node::tune_allocator();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let Some(home) = std::env::var_os("PEERBOX_HOME").map(PathBuf::from).or_else(Home::default_dir) else {
        eprintln!("peerbox: cannot find a home folder; set PEERBOX_HOME");
        return ExitCode::from(1);
    };
    if let Err(e) = std::fs::create_dir_all(&home) {
        eprintln!("peerbox: {}: {e}", home.display());
        return ExitCode::from(1);
    }
    let selftest = Selftest::from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();

    // The single-instance plugin comes first: a second launch hands its arguments to
    // the first and exits before anything else starts (the node above all: it would
    // find the home taken).
    let mut builder = tauri::Builder::default()
        .plugin(
            tauri_plugin_single_instance::Builder::new()
                .dbus_id(instance_id(&home))
                .callback(|app, argv, _cwd| {
                    // Autostart while already running changes nothing; any other
                    // launch means the user wants the window.
                    if !argv.iter().any(|a| a == AUTOSTART_ARG) {
                        show_main_window(app);
                    }
                    for link in links::links_in_args(argv.iter().skip(1)) {
                        app.state::<LinkInbox>().deliver(app, link);
                    }
                })
                .build(),
        )
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_autostart::Builder::new().arg(AUTOSTART_ARG).build())
        .plugin(tauri_plugin_notification::init())
        .manage(LinkInbox::default())
        .manage(Settings::load(&home))
        .on_window_event(on_window_event);
    builder = match selftest {
        Some(s) => builder.plugin(Selftest::plugin()).manage(s).invoke_handler(tauri::generate_handler![
            call,
            desktop_settings_get,
            desktop_settings_set,
            open_path,
            reveal_path,
            selftest::selftest_ack
        ]),
        None => builder.invoke_handler(tauri::generate_handler![
            call,
            desktop_settings_get,
            desktop_settings_set,
            open_path,
            reveal_path
        ]),
    };
    let result = builder
        .setup(move |app| {
            let handle = app.handle().clone();
            let config = NodeConfig { home, mdns: true, serve: true, ..Default::default() };
            let node = tauri::async_runtime::block_on(Node::start(config))?;
            app.manage(node);
            let settings = handle.state::<Settings>();
            if let Some(tray) = tray::create(&handle) {
                app.manage(tray);
                settings.set_tray(true, tray::host_present());
            }
            events::start(&handle, &handle.state::<Node>());

            #[cfg(any(windows, target_os = "linux"))]
            {
                use tauri_plugin_deep_link::DeepLinkExt as _;
                if let Err(e) = app.deep_link().register_all() {
                    tracing::warn!("cannot register peerbox:// links with the system: {e}");
                }
            }
            #[cfg(target_os = "macos")]
            {
                use tauri_plugin_deep_link::DeepLinkExt as _;
                let h = handle.clone();
                app.deep_link().on_open_url(move |event| {
                    for url in event.urls() {
                        if let Some(link) = links::valid_link(url.as_str()) {
                            h.state::<LinkInbox>().deliver(&h, link.to_owned());
                        }
                    }
                });
                if let Ok(Some(urls)) = app.deep_link().get_current() {
                    for url in urls {
                        if let Some(link) = links::valid_link(url.as_str()) {
                            handle.state::<LinkInbox>().deliver(&handle, link.to_owned());
                        }
                    }
                }
            }
            for link in links::links_in_args(&args) {
                handle.state::<LinkInbox>().deliver(&handle, link);
            }

            if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
                let _ = w.set_title("Peerbox");
                if args.iter().any(|a| a == AUTOSTART_ARG) && settings.close_to_tray() {
                    let _ = w.hide();
                }
            }
            if app.try_state::<Selftest>().is_some() {
                let shown = if settings.close_to_tray() { "closing hides" } else { "closing quits" };
                let made = if settings.tray_available() { "made" } else { "not available" };
                println!("selftest: tray icon {made}, {shown}");
                Selftest::start_timer(&handle);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_home_has_its_own_instance_name() {
        let a = instance_id(Path::new("/nonexistent/a"));
        assert_eq!(a, instance_id(Path::new("/nonexistent/a")));
        assert_ne!(a, instance_id(Path::new("/nonexistent/b")));
        // A valid D-Bus name element: letters, digits and `_`, not starting with a digit.
        let last = a.rsplit('.').next().unwrap();
        assert!(last.starts_with("home_") && last.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}
