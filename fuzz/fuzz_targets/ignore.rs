//! `.peerboxignore` text (synced from peers) compiled and matched: never panics,
//! and never ignores the file itself or Peerbox's own folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerbox_engine::ignores::{IGNORE_FILE, Ignores};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, probe) = text.split_once('\u{0}').unwrap_or((&text, "a/b.txt"));
    let ig = Ignores::parse(patterns);
    assert!(!ig.is_ignored(IGNORE_FILE, false));
    assert!(!ig.is_ignored(".peerbox", true));
    if let Ok(p) = peerbox_proto::RelPath::new(probe) {
        let _ = ig.is_ignored(p.as_str(), false);
        let _ = ig.is_ignored(p.as_str(), true);
    }
});
