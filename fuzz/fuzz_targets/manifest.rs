//! A manifest as a peer could send it (postcard entries): every entry validates
//! or is refused without panicking, and the content id is computed the same way
//! entry by entry as all at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerbox_proto::manifest::{ContentHasher, Entry, content_id};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = postcard::from_bytes::<Vec<Entry>>(data) else { return };
    let mut h = ContentHasher::default();
    for e in &entries {
        if let Ok(p) = e.validate() {
            assert_eq!(p.as_str(), e.path);
        }
        h.update(e);
    }
    assert_eq!(h.finish(), content_id(&entries));
});
