//! `Link::decode` on any text: never panics; whatever it accepts encodes back to a
//! link that decodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerbox_proto::Link;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(link) = Link::decode(s) {
        let again = Link::decode(&link.encode()).expect("an accepted link re-encodes to a valid one");
        assert_eq!(again, link);
    }
});
