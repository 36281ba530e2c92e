//! What the window may ask of the app, read from the real config and sources: the
//! capability grants only event listening, and every command the shell registers
//! is one the UI calls (none sits there unused for a script to find).

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root")
}

#[test]
fn the_window_gets_event_listening_and_nothing_else() {
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tauri.conf.json")).expect("config")).expect("json");
    let caps = conf["app"]["security"]["capabilities"].as_array().expect("capabilities");
    assert_eq!(caps.len(), 1, "one capability: {caps:?}");
    assert_eq!(caps[0]["windows"], serde_json::json!(["main"]));
    assert_eq!(caps[0]["permissions"], serde_json::json!(["core:event:allow-listen", "core:event:allow-unlisten"]));
    let csp = conf["app"]["security"]["csp"].as_str().expect("csp");
    for must in ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"] {
        assert!(csp.contains(must), "the CSP has {must}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
}

/// Names inside the non-selftest `generate_handler![…]` of the shell.
fn registered() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src-tauri/src/lib.rs")).expect("lib.rs");
    let at = src.rfind("generate_handler![").expect("a handler list");
    let list = &src[at + "generate_handler![".len()..];
    let list = &list[..list.find(']').expect("end of list")];
    list.split(',').map(|s| s.trim().rsplit("::").next().unwrap_or("").to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Commands the UI invokes: `call`, and every `shellCommand('name'`.
fn used() -> BTreeSet<String> {
    let mut out = BTreeSet::from(["call".to_owned()]);
    for f in std::fs::read_dir(root().join("ui")).expect("ui") {
        let p = f.expect("entry").path();
        if p.extension().is_some_and(|e| e == "js") {
            let text = std::fs::read_to_string(&p).expect("js");
            for part in text.split("shellCommand('").skip(1) {
                if let Some(name) = part.split('\'').next() {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn every_registered_command_is_one_the_ui_calls() {
    assert_eq!(registered(), used(), "registered commands (left) and those the UI calls (right)");
}
