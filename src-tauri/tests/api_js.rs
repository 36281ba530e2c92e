//! `tauriTransport()` in `ui/api.js` (listen, unlisten, command, calls waiting for
//! subscriptions) against a fake of Tauri's page-side IPC, run in Node. The real
//! page-side path is covered by `window.rs`; this covers the UI's own code.

use std::process::Command;

#[test]
fn the_tauri_transport_listens_unlistens_and_maps_errors() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api_js.mjs");
    let out = match Command::new("node").arg(script).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: node is not installed");
            return;
        }
        Err(e) => panic!("cannot run node: {e}"),
    };
    assert!(
        out.status.success(),
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
