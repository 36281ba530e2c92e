//! The tray icon: a status line (also the tooltip where the OS shows one), "Show
//! Peerbox", "Open link…" and "Quit". Where no tray can be made (no StatusNotifier
//! host, no appindicator library) the app runs without one and closing the window
//! quits.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

use crate::links::LinkInbox;
use crate::{MAIN_WINDOW, show_main_window};

const SHOW: &str = "show";
const OPEN_LINK: &str = "open-link";
const QUIT: &str = "quit";

/// The tray icon and its status line.
pub(crate) struct Tray {
    icon: TrayIcon<Wry>,
    status: MenuItem<Wry>,
}

impl Tray {
    /// Shows `line` as the tooltip and the menu's first (disabled) item.
    pub(crate) fn set_status(&self, line: &str) {
        if let Err(e) = self.icon.set_tooltip(Some(line)) {
            tracing::debug!("tray tooltip: {e}");
        }
        if let Err(e) = self.status.set_text(line) {
            tracing::debug!("tray status: {e}");
        }
    }
}

/// Whether something is known to show tray icons: on Linux, a StatusNotifier host
/// (KDE, most desktops; GNOME only with the AppIndicator extension). Elsewhere the
/// OS always shows them.
pub(crate) fn host_present() -> bool {
    #[cfg(target_os = "linux")]
    {
        let ask = || -> zbus::Result<bool> {
            let bus = zbus::blocking::Connection::session()?;
            let dbus = zbus::blocking::fdo::DBusProxy::new(&bus)?;
            Ok(dbus.name_has_owner(zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")?)?)
        };
        ask().unwrap_or_else(|e| {
            tracing::debug!("cannot ask the session bus for a tray host: {e}");
            false
        })
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// Makes the tray icon; `None` (after logging why) when this session has no tray.
pub(crate) fn create(app: &AppHandle) -> Option<Tray> {
    // The Linux tray loads libappindicator at run time and panics when it is missing.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(app))) {
        Ok(Ok(tray)) => Some(tray),
        Ok(Err(e)) => {
            tracing::warn!("no tray icon: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("no tray icon: creating it panicked (is libayatana-appindicator3 installed?)");
            None
        }
    }
}

fn build(app: &AppHandle) -> tauri::Result<Tray> {
    let status = MenuItem::with_id(app, "status", crate::events::status_line(0, 0), false, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, SHOW, "Show Peerbox", true, None::<&str>)?,
            &MenuItem::with_id(app, OPEN_LINK, "Open link…", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, QUIT, "Quit Peerbox", true, None::<&str>)?,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id("main")
        .tooltip("Peerbox")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            SHOW => show_main_window(app),
            OPEN_LINK => {
                show_main_window(app);
                app.state::<LinkInbox>().deliver(app, String::new());
            }
            QUIT => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            // Windows and macOS report clicks (Linux shows the menu instead).
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                show_main_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let icon = builder.build(app)?;
    tracing::debug!("tray icon made for {MAIN_WINDOW}");
    Ok(Tray { icon, status })
}
