//! The file-request protocol's frames: header check, decode, round trip.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerbox_proto::blocks::HEADER_LEN;
use peerbox_proto::drop::{DropFrame, parse_header};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let (head, payload) = data.split_at(HEADER_LEN);
    let Ok((tag, len)) = parse_header(head.try_into().expect("five bytes")) else { return };
    let payload = Bytes::copy_from_slice(&payload[..len.min(payload.len())]);
    let Ok(frame) = DropFrame::decode(tag, payload) else { return };
    let f = frame.encode();
    let (t2, _) = parse_header(f[..HEADER_LEN].try_into().expect("header")).expect("our own header");
    assert_eq!(DropFrame::decode(t2, Bytes::copy_from_slice(&f[HEADER_LEN..])).expect("our own frame"), frame);
});
