//! The path validator on any text. What it accepts stays under any root it is
//! joined to: every component is a plain name, none is `.`, `..`, empty, a root or
//! a prefix, none is Peerbox's own, and none holds a separator or control character.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use peerbox_proto::RelPath;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(p) = RelPath::new(s) else { return };
    let joined = Path::new("/root").join(p.as_str());
    assert!(joined.starts_with("/root"));
    let mut n = 0;
    for c in Path::new(p.as_str()).components() {
        assert!(matches!(c, Component::Normal(_)), "{s:?} has {c:?}");
        n += 1;
    }
    assert_eq!(n, p.segments().count(), "{s:?}: every segment is one component");
    for seg in p.segments() {
        assert!(!seg.is_empty() && seg != "." && seg != "..");
        assert!(!seg.contains(['/', '\\']) && !seg.chars().any(char::is_control));
        assert!(!seg.starts_with(".peerbox") || seg == peerbox_proto::path::IGNORE_FILE);
    }
    // Validation is idempotent and normalisation changes nothing it accepted.
    assert_eq!(RelPath::from_local_segments(p.segments()).as_ref(), Ok(&p));
});
