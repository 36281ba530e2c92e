//! Writes the seed corpora under `fuzz/corpus/<target>/`: one well-formed input of
//! every message kind, and the hostile inputs of THREATS.md. Run from `fuzz/` with
//! `cargo run --bin seeds` after changing a wire format; the files are committed.

use std::path::Path;

use bytes::Bytes;
use peerbox_proto::blocks::{ClientMsg, MissingReason, Refusal, ServerMsg};
use peerbox_proto::drop::{DropClient, DropFrame, DropRefusal, DropServer};
use peerbox_proto::index::{SyncFrame, SyncRefusal, SyncRequest, SyncResponse, Version, WireMember, WireRecord};
use peerbox_proto::manifest::{Entry, EntryKind, FileMeta};
use peerbox_proto::{Link, LinkKind};

fn write(target: &str, seeds: Vec<Vec<u8>>) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (i, s) in seeds.into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("seed");
    }
}

fn file(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File(FileMeta {
            size: 5,
            mtime_ns: 1,
            executable: false,
            block_size: 1 << 17,
            blocks: vec![[7; 32]],
        }),
    }
}

fn record(path: &str, dir: bool, deleted: bool) -> WireRecord {
    let mut version = Version::default();
    version.0.insert(1, 2);
    WireRecord {
        path: path.into(),
        dir,
        deleted,
        size: if dir || deleted { 0 } else { 5 },
        mtime_ns: 1,
        executable: false,
        block_size: 1 << 17,
        blocks: if dir || deleted { vec![] } else { vec![[1; 32]] },
        version,
        seq: 3,
        modified_by: 1,
        have: true,
    }
}

fn main() {
    let link = |kind, password| {
        Link {
            kind,
            id: [3; 32],
            peer: vec![0, 36, 8, 1, 18, 32, 1, 2, 3],
            addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x90]],
            secret: [9; 32],
            read_only: false,
            expires: Some(1_900_000_000),
            password,
            sole_source: password,
        }
        .encode()
        .into_bytes()
    };
    write(
        "link",
        vec![
            link(LinkKind::Files, false),
            link(LinkKind::Folder, true),
            link(LinkKind::Request, true),
            b"peerbox://".to_vec(),
            b"https://example.invalid".to_vec(),
            b" <peerbox://2NEpo7TZRRrLZSi2U> ".to_vec(),
        ],
    );

    let paths = [
        "a/b/c.txt",
        "../../x",
        "a/../../x",
        "/etc/x",
        "C:\\x",
        "\\\\srv\\s",
        "sub/../x",
        "./x",
        "x/",
        "a//b",
        "a\0b",
        "a\u{1b}[31mb",
        "<img src=x onerror=alert(1)>",
        "CON",
        "nul.txt",
        "a.",
        ".peerbox/trash/x",
        ".peerbox-tmp-1",
        ".peerboxignore",
        "Readme.md",
        "\u{1112}\u{1161}\u{11ab}",
        "\u{d55c}",
        "사진/여행 🏖.jpg",
    ];
    let mut path_seeds: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    path_seeds.push(vec!["d"; 300].join("/").into_bytes());
    path_seeds.push("x".repeat(300).into_bytes());
    path_seeds.push(vec![0xff, 0xfe, b'a']);
    write("path", path_seeds);

    write(
        "block_frames",
        vec![
            ClientMsg::Open { id: [1; 32], secret: [2; 32], proof: None }.encode(),
            ClientMsg::Open { id: [1; 32], secret: [2; 32], proof: Some([3; 32]) }.encode(),
            ClientMsg::Get { req: 1, file: 0, block: 0 }.encode(),
            ServerMsg::ManifestPart(vec![Entry { path: "d".into(), kind: EntryKind::Dir }, file("d/f"), file("../x")])
                .encode(),
            ServerMsg::ManifestEnd { entries: 2 }.encode(),
            ServerMsg::Refused(Refusal::WrongPassword).encode(),
            ServerMsg::Block { req: 1, data: Bytes::from_static(b"hello") }.encode(),
            ServerMsg::Missing { req: 2, reason: MissingReason::Changed }.encode(),
            vec![0xff, 0xff, 0xff, 0xff, 19],
            vec![0, 0, 0, 0, 1],
        ],
    );

    let member = WireMember { peer: vec![1, 2, 3], read_write: true, addrs: vec![vec![4, 127, 0, 0, 1]] };
    write(
        "index_frames",
        vec![
            SyncFrame::Request(SyncRequest::Join { folder: [1; 16], secret: [2; 32], proof: None }).encode(),
            SyncFrame::Request(SyncRequest::Index { folder: [1; 16], since: 5, wait: true }).encode(),
            SyncFrame::Request(SyncRequest::Block {
                req: 1,
                folder: [1; 16],
                path: "a".into(),
                index: 0,
                hash: [0; 32],
            })
            .encode(),
            SyncFrame::Response(SyncResponse::Joined {
                name: "Team".into(),
                read_write: true,
                members: vec![member.clone()],
                pending: false,
            })
            .encode(),
            SyncFrame::Response(SyncResponse::Index {
                records: vec![record("a.txt", false, false), record("d", true, false), record("../x", false, true)],
                last: 3,
                members: vec![member],
            })
            .encode(),
            SyncFrame::Response(SyncResponse::Refused(SyncRefusal::UsedUp)).encode(),
            SyncFrame::Response(SyncResponse::Missing { req: 4 }).encode(),
            SyncFrame::Block { req: 4, data: Bytes::from_static(b"data") }.encode(),
        ],
    );

    write(
        "drop_frames",
        vec![
            DropFrame::Client(DropClient::Open {
                folder: [1; 16],
                secret: [2; 32],
                proof: Some([3; 32]),
                from: "민수의 노트북".into(),
                batch: [4; 16],
            })
            .encode(),
            DropFrame::Client(DropClient::File { path: "사진/a.jpg".into(), size: 3 }).encode(),
            DropFrame::Client(DropClient::Data(Bytes::from_static(b"abc"))).encode(),
            DropFrame::Client(DropClient::End { sha256: [5; 32] }).encode(),
            DropFrame::Server(DropServer::Opened { name: "Inbox".into(), remaining: Some(10) }).encode(),
            DropFrame::Server(DropServer::Refused(DropRefusal::TooBig { remaining: 1 })).encode(),
            DropFrame::Server(DropServer::Ready).encode(),
            DropFrame::Server(DropServer::Stored { path: "x/y".into() }).encode(),
        ],
    );

    write(
        "manifest",
        vec![
            postcard::to_stdvec(&vec![Entry { path: "d".into(), kind: EntryKind::Dir }, file("d/f")]).expect("encode"),
            postcard::to_stdvec(&vec![file("../../etc/passwd"), file("a\0b")]).expect("encode"),
        ],
    );

    write(
        "ignore",
        vec![
            b"# comment\n*.tmp\ncache/\n!keep.tmp\n/top.txt\n".to_vec(),
            b"**/node_modules\n\0node_modules/x/y.js".to_vec(),
            b"{unclosed\n[a-\n\\\n".to_vec(),
            b"*\n!*/\n\0a/b".to_vec(),
        ],
    );
}
