//! The folder protocol's frames (index exchange, joins, blocks by path): header
//! check, decode, and the record check every announced record passes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerbox_proto::blocks::HEADER_LEN;
use peerbox_proto::index::{SyncFrame, SyncResponse, parse_header};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let (head, payload) = data.split_at(HEADER_LEN);
    let Ok((tag, len)) = parse_header(head.try_into().expect("five bytes")) else { return };
    let payload = Bytes::copy_from_slice(&payload[..len.min(payload.len())]);
    let Ok(frame) = SyncFrame::decode(tag, payload) else { return };
    if let SyncFrame::Response(SyncResponse::Index { records, .. }) = &frame {
        for r in records {
            if let Ok(p) = r.check() {
                assert_eq!(p.as_str(), r.path);
            }
            let _ = r.version.relation(&r.version.bump(r.modified_by));
        }
    }
    let f = frame.encode();
    let (t2, _) = parse_header(f[..HEADER_LEN].try_into().expect("header")).expect("our own header");
    assert_eq!(SyncFrame::decode(t2, Bytes::copy_from_slice(&f[HEADER_LEN..])).expect("our own frame"), frame);
});
