//! Embeds the drive UI (`ui/` at the repository root) into the binary, so an
//! installed `peerbox daemon` serves it without any files beside it.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    let mut files: Vec<_> = std::fs::read_dir(&ui)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out =
        String::from("/// The UI's files: (name, contents).\npub(crate) static UI_FILES: &[(&str, &[u8])] = &[\n");
    for f in files {
        let Some(name) = f.file_name().and_then(|n| n.to_str()) else { continue };
        let abs = f.canonicalize().unwrap_or(f.clone());
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", abs.display().to_string());
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("ui_files.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
