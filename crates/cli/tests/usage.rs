//! The `peerbox` command's contract with scripts: exit codes, what goes to stdout,
//! and that bad input changes nothing.

use std::process::{Command, Output};

fn peerbox(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peerbox"));
    c.arg("--home").arg(home).env_remove("PEERBOX_HOME").env_remove("RUST_LOG");
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run peerbox")
}

#[test]
fn id_is_created_once_and_stays_the_same() {
    let home = tempfile::tempdir().unwrap();
    let a = run(peerbox(home.path()).arg("id"));
    assert!(a.status.success());
    let b = run(peerbox(home.path()).arg("id"));
    assert_eq!(a.stdout, b.stdout);
    let id = String::from_utf8(a.stdout).unwrap();
    assert!(id.trim().starts_with("12D3KooW"), "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::read_dir(home.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.ends_with("identity.key"))
            .unwrap();
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn the_home_can_come_from_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let by_flag = run(peerbox(home.path()).arg("id"));
    let by_env = run(Command::new(env!("CARGO_BIN_EXE_peerbox")).arg("id").env("PEERBOX_HOME", home.path()));
    assert_eq!(by_flag.stdout, by_env.stdout);
}

#[test]
fn sharing_a_missing_path_is_bad_input() {
    let home = tempfile::tempdir().unwrap();
    let out = run(peerbox(home.path())
        .args(["share", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg(home.path().join("no-such-file")));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "printed a link for nothing");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["share"],
        vec!["get"],
        vec!["frobnicate"],
        vec!["share", "--expires", "soon", "x"],
        vec!["share", "--expires", "0s", "x"],
        vec!["get", "--listen", "not-an-address", "peerbox://x"],
    ] {
        let out = run(peerbox(home.path()).args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_listen_address_that_cannot_be_used_is_a_clear_failure() {
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    // An address of another host cannot be bound here.
    let out = run(peerbox(home.path()).args(["share", "--no-mdns", "--listen", "/ip4/192.0.2.1/tcp/0"]).arg(&f));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
