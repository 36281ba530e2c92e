//! The desktop app's own settings, for the Settings page: start at login (kept by
//! the autostart plugin, i.e. by the OS) and "minimise to tray" (kept in
//! `desktop.json` in the home folder). Commands `desktop_settings_get` and
//! `desktop_settings_set` read and change them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use peerbox_node::ApiError;
use serde::Serialize;
use serde_json::{Map, Value};
use tauri::AppHandle;
use tauri_plugin_autostart::ManagerExt as _;

/// The settings file, in the home folder.
pub(crate) const FILE: &str = "desktop.json";
/// Largest settings file read; anything bigger is not ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What the Settings page shows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct DesktopSettings {
    /// Peerbox starts when the user logs in.
    pub(crate) autostart: bool,
    /// Closing the window hides it to the tray (the preference; it only takes effect
    /// when `tray_available`).
    pub(crate) tray: bool,
    /// A tray icon could be created in this session.
    pub(crate) tray_available: bool,
}

/// A change from the Settings page; absent fields stay as they are.
#[derive(Debug, Default)]
pub(crate) struct SettingsChange {
    /// Start at login.
    pub(crate) autostart: Option<bool>,
    /// Minimise to tray.
    pub(crate) tray: Option<bool>,
}

/// The tray preference and where it is kept.
pub(crate) struct Settings {
    file: PathBuf,
    tray_pref: Mutex<Option<bool>>,
    tray_available: AtomicBool,
    tray_shown: AtomicBool,
}

impl Settings {
    /// Reads `desktop.json` in `home` (a missing or unreadable file means defaults).
    pub(crate) fn load(home: &Path) -> Self {
        let file = home.join(FILE);
        let tray_pref = read_object(&file).get("tray").and_then(Value::as_bool);
        Self {
            file,
            tray_pref: Mutex::new(tray_pref),
            tray_available: AtomicBool::new(false),
            tray_shown: AtomicBool::new(false),
        }
    }

    /// Records that the tray icon exists, and whether something is known to show it.
    /// (On Linux an icon can be made with no tray host running, e.g. on GNOME without
    /// the AppIndicator extension: hiding the window there would lose it.)
    pub(crate) fn set_tray(&self, available: bool, shown: bool) {
        self.tray_available.store(available, Ordering::Relaxed);
        self.tray_shown.store(available && shown, Ordering::Relaxed);
    }

    /// Whether the tray icon exists.
    pub(crate) fn tray_available(&self) -> bool {
        self.tray_available.load(Ordering::Relaxed)
    }

    /// The "minimise to tray" preference: as saved, or on when the tray is known to
    /// show.
    pub(crate) fn tray_pref(&self) -> bool {
        let saved = *self.tray_pref.lock().unwrap_or_else(|e| e.into_inner());
        saved.unwrap_or_else(|| self.tray_shown.load(Ordering::Relaxed))
    }

    /// Whether closing the window should hide it rather than quit.
    pub(crate) fn close_to_tray(&self) -> bool {
        self.tray_available() && self.tray_pref()
    }

    /// Saves the tray preference (keeping whatever else the file holds).
    pub(crate) fn set_tray_pref(&self, on: bool) -> Result<(), ApiError> {
        let mut pref = self.tray_pref.lock().unwrap_or_else(|e| e.into_inner());
        let mut obj = read_object(&self.file);
        obj.insert("tray".into(), Value::Bool(on));
        write_atomically(&self.file, &Value::Object(obj))
            .map_err(|e| ApiError { code: "io", message: format!("{}: {e}", self.file.display()) })?;
        *pref = Some(on);
        Ok(())
    }
}

/// The settings as the Settings page shows them.
pub(crate) fn get(app: &AppHandle, settings: &Settings) -> DesktopSettings {
    let autostart = app.autolaunch().is_enabled().unwrap_or_else(|e| {
        tracing::debug!("cannot tell whether autostart is on: {e}");
        false
    });
    DesktopSettings { autostart, tray: settings.tray_pref(), tray_available: settings.tray_available() }
}

/// Applies a change from the Settings page; returns the settings after it.
pub(crate) fn set(app: &AppHandle, settings: &Settings, change: SettingsChange) -> Result<DesktopSettings, ApiError> {
    if let Some(on) = change.tray {
        settings.set_tray_pref(on)?;
    }
    if let Some(on) = change.autostart {
        // auto-launch 0.5 makes ~/.config/autostart with create_dir: the parent must exist.
        #[cfg(target_os = "linux")]
        if on && let Some(home) = std::env::var_os("HOME") {
            let _ = std::fs::create_dir_all(Path::new(&home).join(".config"));
        }
        let launcher = app.autolaunch();
        let done = if on { launcher.enable() } else { launcher.disable() };
        done.map_err(|e| ApiError { code: "io", message: format!("cannot change start at login: {e}") })?;
    }
    Ok(get(app, settings))
}

fn read_object(file: &Path) -> Map<String, Value> {
    let read = || -> Option<Map<String, Value>> {
        let f = std::fs::File::open(file).ok()?;
        if f.metadata().ok()?.len() > MAX_FILE_BYTES {
            return None;
        }
        match serde_json::from_reader(std::io::BufReader::new(f)) {
            Ok(Value::Object(m)) => Some(m),
            _ => {
                tracing::warn!("{} is not a JSON object; using defaults", file.display());
                None
            }
        }
    };
    read().unwrap_or_default()
}

fn write_atomically(file: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = file.with_extension("json.tmp");
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_preference_defaults_to_whether_there_is_a_tray_and_persists() {
        let home = tempfile::tempdir().unwrap();
        let s = Settings::load(home.path());
        assert!(!s.tray_pref() && !s.close_to_tray(), "no tray: closing quits");
        s.set_tray(true, false);
        assert!(!s.tray_pref() && !s.close_to_tray(), "an icon nothing shows: closing quits, by default");
        s.set_tray(true, true);
        assert!(s.tray_pref() && s.close_to_tray(), "a tray: closing hides, by default");

        s.set_tray_pref(false).unwrap();
        assert!(!s.close_to_tray());
        let again = Settings::load(home.path());
        again.set_tray(true, true);
        assert!(!again.tray_pref(), "kept in {FILE}");

        again.set_tray_pref(true).unwrap();
        again.set_tray(true, false);
        assert!(again.close_to_tray(), "the user's choice holds where no host is seen");
        again.set_tray(false, false);
        assert!(again.tray_pref() && !again.close_to_tray(), "never without an icon");
    }

    #[test]
    fn other_keys_in_the_file_survive_and_junk_means_defaults() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(FILE);
        std::fs::write(&file, br#"{"later": 1}"#).unwrap();
        Settings::load(home.path()).set_tray_pref(true).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"later": 1, "tray": true}));

        std::fs::write(&file, b"[not json").unwrap();
        let s = Settings::load(home.path());
        assert!(!s.tray_pref());
        s.set_tray_pref(false).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "{\n  \"tray\": false\n}");
    }
}
