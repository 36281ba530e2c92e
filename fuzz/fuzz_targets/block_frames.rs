//! The block protocol's frames, as either side receives them: header check, then
//! decode; a decoded message encodes to a frame that decodes to the same message,
//! and manifest entries validate without panicking.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerbox_proto::blocks::{ClientMsg, HEADER_LEN, ServerMsg, parse_header};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let (head, payload) = data.split_at(HEADER_LEN);
    let Ok((tag, len)) = parse_header(head.try_into().expect("five bytes")) else { return };
    let payload = &payload[..len.min(payload.len())];
    if let Ok(m) = ClientMsg::decode(tag, payload) {
        let f = m.encode();
        let (t2, l2) = parse_header(f[..HEADER_LEN].try_into().expect("header")).expect("our own header");
        assert_eq!(l2, f.len() - HEADER_LEN);
        assert_eq!(ClientMsg::decode(t2, &f[HEADER_LEN..]).expect("our own frame"), m);
    }
    if let Ok(m) = ServerMsg::decode(tag, Bytes::copy_from_slice(payload)) {
        if let ServerMsg::ManifestPart(entries) = &m {
            for e in entries {
                let _ = e.validate();
            }
        }
        let f = m.encode();
        let (t2, _) = parse_header(f[..HEADER_LEN].try_into().expect("header")).expect("our own header");
        assert_eq!(ServerMsg::decode(t2, Bytes::copy_from_slice(&f[HEADER_LEN..])).expect("our own frame"), m);
    }
});
