//! Opening a file with the system's default app, and showing it in the file manager,
//! for the commands `open_path` and `reveal_path`. Both act only on paths inside one
//! of the node's folders: the UI (and anything that gets to run script in it) cannot
//! make the shell open arbitrary files.

use std::path::{Path, PathBuf};

use peerbox_node::{ApiError, Node, Request};

/// File kinds that the system would run rather than show. A peer can put any file in
/// a shared folder, so "open" refuses these; "show in folder" still works.
const PROGRAM_EXTENSIONS: &[&str] = &[
    "app", "appimage", "apk", "bat", "cmd", "com", "command", "cpl", "desktop", "exe", "hta", "inf", "jar", "js",
    "jse", "lnk", "msc", "msi", "msp", "pif", "ps1", "reg", "scf", "scr", "sh", "url", "vb", "vbe", "vbs", "website",
    "workflow", "ws", "wsc", "wsf", "wsh",
];

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError { code: "bad_request", message: message.into() }
}

/// The local paths of the node's folders.
pub(crate) async fn folder_roots(node: &Node) -> Result<Vec<PathBuf>, ApiError> {
    let list = node.call(Request::FolderList).await.map_err(|e| e.to_api())?;
    Ok(list
        .as_array()
        .map(|folders| {
            folders.iter().filter_map(|f| f.get("path").and_then(|p| p.as_str())).map(PathBuf::from).collect()
        })
        .unwrap_or_default())
}

/// `path`, resolved (symbolic links and `..` included), if it lies inside one of
/// `roots` (or is one); a `bad_request` error otherwise.
pub(crate) fn inside_folders(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    if !path.is_absolute() {
        return Err(bad_request(format!("{} is not an absolute path", path.display())));
    }
    let real = path.canonicalize().map_err(|e| bad_request(format!("{}: {e}", path.display())))?;
    let inside = roots.iter().filter_map(|r| r.canonicalize().ok()).any(|root| real.starts_with(&root));
    if inside { Ok(real) } else { Err(bad_request(format!("{} is not inside a Peerbox folder", path.display()))) }
}

/// Whether opening `path` would run it.
pub(crate) fn is_program(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PROGRAM_EXTENSIONS.iter().any(|p| p.eq_ignore_ascii_case(e)))
}

/// Opens a file (or folder) inside the node's folders with the system's default app.
pub(crate) async fn open(node: &Node, path: PathBuf) -> Result<(), ApiError> {
    let real = inside_folders(&path, &folder_roots(node).await?)?;
    if is_program(&real) {
        return Err(ApiError {
            code: "refused",
            message: format!("{} is a program; Peerbox does not start programs (use Show in folder)", path.display()),
        });
    }
    tauri_plugin_opener::open_path(&real, None::<&str>)
        .map_err(|e| ApiError { code: "io", message: format!("cannot open {}: {e}", path.display()) })
}

/// Shows a file inside the node's folders in the file manager (or opens its folder
/// when the file manager cannot select it).
pub(crate) async fn reveal(node: &Node, path: PathBuf) -> Result<(), ApiError> {
    let real = inside_folders(&path, &folder_roots(node).await?)?;
    // Revealing talks to the file manager over D-Bus and waits for it.
    let shown = tauri::async_runtime::spawn_blocking({
        let real = real.clone();
        move || tauri_plugin_opener::reveal_item_in_dir(&real)
    })
    .await;
    match shown {
        Ok(Ok(())) => Ok(()),
        other => {
            if let Ok(Err(e)) = other {
                tracing::debug!("file manager could not show {}: {e}; opening its folder", real.display());
            }
            let dir = if real.is_dir() { real.as_path() } else { real.parent().unwrap_or(&real) };
            tauri_plugin_opener::open_path(dir, None::<&str>)
                .map_err(|e| ApiError { code: "io", message: format!("cannot show {}: {e}", path.display()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("drive");
        std::fs::create_dir_all(folder.join("docs")).unwrap();
        std::fs::write(folder.join("docs/a.txt"), b"a").unwrap();
        let roots = vec![folder.clone()];

        let err = inside_folders(Path::new("/etc/passwd"), &roots).unwrap_err();
        assert_eq!(err.code, "bad_request");
        assert!(inside_folders(Path::new("/etc/passwd"), &[]).is_err(), "no folders, nothing to open");
        assert!(inside_folders(&folder.join("docs/../../"), &roots).is_err(), "`..` is resolved first");
        assert!(inside_folders(Path::new("docs/a.txt"), &roots).is_err(), "relative paths are refused");
        assert!(inside_folders(&folder.join("docs/missing.txt"), &roots).is_err());
        // A sibling whose name starts with the folder's name is not inside it.
        std::fs::create_dir_all(dir.path().join("drive2")).unwrap();
        assert!(inside_folders(&dir.path().join("drive2"), &roots).is_err());

        assert_eq!(
            inside_folders(&folder.join("docs/a.txt"), &roots).unwrap(),
            folder.join("docs/a.txt").canonicalize().unwrap()
        );
        assert!(inside_folders(&folder, &roots).is_ok(), "the folder itself");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_inside_a_folder_that_points_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("drive");
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", folder.join("passwd")).unwrap();
        assert!(inside_folders(&folder.join("passwd"), &[folder]).is_err());
    }

    #[test]
    fn programs_are_recognised_by_extension() {
        for p in ["a.exe", "b.DESKTOP", "c.bat", "d.sh", "e.lnk", "f.AppImage"] {
            assert!(is_program(Path::new(p)), "{p}");
        }
        for p in ["a.txt", "b.jpg", "README", "c.exe.txt", "d.pdf"] {
            assert!(!is_program(Path::new(p)), "{p}");
        }
    }
}
