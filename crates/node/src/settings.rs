//! The device's own settings as users change them (name, serving downloads,
//! bootstrap peers), and the device facts shown beside them (host name, free
//! space). Values are validated here, before they reach the index, so the store
//! never holds one the UI could not show.

use std::path::Path;

use serde::Serialize;

use crate::NodeError;
use crate::share::SharedStore;

const DEVICE_NAME: &str = "device_name";
const SERVE_DOWNLOADS: &str = "serve_downloads";
const BOOTSTRAP: &str = "bootstrap";
const UPLOAD_LIMIT: &str = "upload_limit";
const DOWNLOAD_LIMIT: &str = "download_limit";
const PEER_UPLOAD_LIMIT: &str = "peer_upload_limit";
const PEER_DOWNLOAD_LIMIT: &str = "peer_download_limit";
const LIMIT_LAN: &str = "limit_lan";
const SCHEDULE: &str = "schedule";
const SCHEDULE_MIN_BYTES: &str = "schedule_min_bytes";
/// Downloads at least this large wait for the window unless told otherwise.
const DEFAULT_SCHEDULE_MIN_BYTES: u64 = 100 << 20;
/// Below this a limit would stall connections (timeouts, keep-alives): 8 KiB/s.
const MIN_LIMIT: u64 = 8 * 1024;
/// More bootstrap peers than anyone needs; bounds what a start dials.
const MAX_BOOTSTRAP: usize = 32;
/// Long enough for "Alice's MacBook Pro (office)", short enough for a sidebar.
const MAX_NAME_CHARS: usize = 64;

/// What the Settings page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// How this device calls itself (to its user, and in upload folders of request links).
    pub device_name: String,
    /// Whether files downloaded from links are served to others holding the same
    /// link (so a popular share does not rest on the sharer alone).
    pub serve_downloads: bool,
    /// DHT bootstrap peers used when none are given on the command line (taken at
    /// the next start).
    pub bootstrap: Vec<String>,
    /// Bandwidth limits in bytes per second (0: none), applied at once.
    pub bandwidth: peerbox_net::rate::Limits,
    /// The daily window (local time, `HH:MM-HH:MM`) large downloads wait for.
    pub schedule: Option<String>,
    /// Downloads from links at least this large wait for the window.
    pub schedule_min_bytes: u64,
}

impl Settings {
    /// The window, if one is set.
    pub fn window(&self) -> Option<crate::schedule::Window> {
        self.schedule.as_deref().and_then(|w| crate::schedule::Window::parse(w).ok())
    }
}

/// Changes to [`Settings`]; `None` leaves a value alone.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// A new name ("" returns to the default: the machine's host name).
    #[serde(default)]
    pub device_name: Option<String>,
    /// Serve downloads to others holding the same link.
    #[serde(default)]
    pub serve_downloads: Option<bool>,
    /// Replace the bootstrap peers (each `…/p2p/<PeerId>`; empty clears them).
    #[serde(default)]
    pub bootstrap: Option<Vec<String>>,
    /// All uploads together, bytes per second (0: no limit).
    #[serde(default)]
    pub upload_limit: Option<u64>,
    /// All downloads together, bytes per second (0: no limit).
    #[serde(default)]
    pub download_limit: Option<u64>,
    /// Uploads to any one peer, bytes per second (0: no limit).
    #[serde(default)]
    pub peer_upload_limit: Option<u64>,
    /// Downloads from any one peer, bytes per second (0: no limit).
    #[serde(default)]
    pub peer_download_limit: Option<u64>,
    /// Apply the limits to peers on the LAN too.
    #[serde(default)]
    pub limit_lan: Option<bool>,
    /// The daily window for large downloads, `HH:MM-HH:MM` ("" for none).
    #[serde(default)]
    pub schedule: Option<String>,
    /// Downloads at least this large wait for the window.
    #[serde(default)]
    pub schedule_min_bytes: Option<u64>,
}

pub(crate) fn load(store: &SharedStore) -> Result<Settings, NodeError> {
    let s = crate::share::lock(store);
    let device_name = s.setting(DEVICE_NAME)?.unwrap_or_else(default_device_name);
    let serve_downloads = s.setting(SERVE_DOWNLOADS)?.as_deref() != Some("0");
    let bootstrap = s.setting(BOOTSTRAP)?.map(|v| v.lines().map(str::to_owned).collect()).unwrap_or_default();
    let num = |k: &str| -> Result<u64, NodeError> { Ok(s.setting(k)?.and_then(|v| v.parse().ok()).unwrap_or(0)) };
    let bandwidth = peerbox_net::rate::Limits {
        upload: num(UPLOAD_LIMIT)?,
        download: num(DOWNLOAD_LIMIT)?,
        peer_upload: num(PEER_UPLOAD_LIMIT)?,
        peer_download: num(PEER_DOWNLOAD_LIMIT)?,
        limit_lan: s.setting(LIMIT_LAN)?.as_deref() == Some("1"),
    };
    let schedule = s.setting(SCHEDULE)?;
    let schedule_min_bytes =
        s.setting(SCHEDULE_MIN_BYTES)?.and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SCHEDULE_MIN_BYTES);
    Ok(Settings { device_name, serve_downloads, bootstrap, bandwidth, schedule, schedule_min_bytes })
}

pub(crate) fn change(store: &SharedStore, change: SettingsChange) -> Result<Settings, NodeError> {
    // Everything is checked before anything is stored, and all is stored at once:
    // one bad value changes nothing.
    let mut writes: Vec<(&str, Option<String>)> = Vec::new();
    if let Some(name) = change.device_name {
        let name = name.trim();
        let value = if name.is_empty() { None } else { Some(valid_device_name(name)?.to_owned()) };
        writes.push((DEVICE_NAME, value));
    }
    if let Some(list) = change.bootstrap {
        let addrs = valid_bootstrap(&list)?;
        let value = (!addrs.is_empty()).then(|| addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("\n"));
        writes.push((BOOTSTRAP, value));
    }
    let flag = |b: bool| Some(if b { "1" } else { "0" }.to_owned());
    if let Some(serve) = change.serve_downloads {
        writes.push((SERVE_DOWNLOADS, flag(serve)));
    }
    for (key, v) in [
        (UPLOAD_LIMIT, change.upload_limit),
        (DOWNLOAD_LIMIT, change.download_limit),
        (PEER_UPLOAD_LIMIT, change.peer_upload_limit),
        (PEER_DOWNLOAD_LIMIT, change.peer_download_limit),
    ] {
        let Some(v) = v else { continue };
        if v != 0 && v < MIN_LIMIT {
            return Err(NodeError::BadSetting(format!(
                "a bandwidth limit is 0 (none) or at least {MIN_LIMIT} bytes per second"
            )));
        }
        writes.push((key, (v != 0).then(|| v.to_string())));
    }
    if let Some(lan) = change.limit_lan {
        writes.push((LIMIT_LAN, flag(lan)));
    }
    match change.schedule.as_deref().map(str::trim) {
        None => {}
        Some("") => writes.push((SCHEDULE, None)),
        Some(w) => writes.push((SCHEDULE, Some(crate::schedule::Window::parse(w)?.text()))),
    }
    if let Some(n) = change.schedule_min_bytes {
        writes.push((SCHEDULE_MIN_BYTES, Some(n.to_string())));
    }
    let writes: Vec<(&str, Option<&str>)> = writes.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    crate::share::lock(store).set_settings(&writes)?;
    load(store)
}

fn valid_device_name(name: &str) -> Result<&str, NodeError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NodeError::BadSetting(format!("a device name has at most {MAX_NAME_CHARS} characters")));
    }
    // Control and bidi-override characters would let a name rewrite how the text
    // around it reads wherever it is shown.
    if name.chars().any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        return Err(NodeError::BadSetting("a device name cannot hold control characters".into()));
    }
    if name.contains(['/', '\\']) {
        // It names folders of uploads through request links.
        return Err(NodeError::BadSetting("a device name cannot hold / or \\".into()));
    }
    Ok(name)
}

/// Parses bootstrap addresses (blank lines skipped); at most [`MAX_BOOTSTRAP`].
pub(crate) fn valid_bootstrap(list: &[String]) -> Result<Vec<libp2p::Multiaddr>, NodeError> {
    if list.len() > MAX_BOOTSTRAP {
        return Err(NodeError::BadSetting(format!("at most {MAX_BOOTSTRAP} bootstrap peers")));
    }
    list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(parse_bootstrap).collect()
}

/// One bootstrap address; it must end in `/p2p/<PeerId>`.
pub fn parse_bootstrap(s: &str) -> Result<libp2p::Multiaddr, NodeError> {
    let s = s.trim();
    let addr: libp2p::Multiaddr =
        s.parse().map_err(|e| NodeError::BadSetting(format!("bootstrap address {s:?}: {e}")))?;
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(_)) => Ok(addr),
        _ => Err(NodeError::BadSetting(format!("bootstrap address {s:?} must end in /p2p/<PeerId>"))),
    }
}

/// The machine's host name, or "Peerbox device" when it has none worth showing.
pub(crate) fn default_device_name() -> String {
    let raw = host_name().unwrap_or_default();
    match valid_device_name(raw.trim()) {
        Ok(n) if !n.is_empty() => n.to_owned(),
        _ => "Peerbox device".into(),
    }
}

#[cfg(unix)]
fn host_name() -> Option<String> {
    Some(rustix::system::uname().nodename().to_string_lossy().into_owned())
}

#[cfg(not(unix))]
fn host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

/// Bytes free for this user on the filesystems holding `paths`, each filesystem
/// counted once; `None` when the platform does not say.
#[cfg(unix)]
pub(crate) fn free_bytes<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::BTreeSet::new();
    let mut free = 0u64;
    for path in paths {
        let Ok(meta) = std::fs::metadata(path) else { continue };
        if !seen.insert(meta.dev()) {
            continue;
        }
        let s = rustix::fs::statvfs(path).ok()?;
        free = free.saturating_add(s.f_bavail.saturating_mul(s.f_frsize));
    }
    Some(free)
}

#[cfg(not(unix))]
pub(crate) fn free_bytes<'a>(_paths: impl IntoIterator<Item = &'a Path>) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_users_type_are_kept_and_hostile_ones_refused() {
        for good in ["노트북", "Alice's laptop", "NAS (office)", "a"] {
            assert_eq!(valid_device_name(good).unwrap(), good);
        }
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        for bad in ["tab\there", "line\nbreak", "evil\u{202e}txt.exe", "a/b", "a\\b", long.as_str()] {
            assert!(matches!(valid_device_name(bad), Err(NodeError::BadSetting(_))), "{bad:?}");
        }
        assert!(!default_device_name().is_empty());
    }
}
