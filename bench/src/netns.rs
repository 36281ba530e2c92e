//! The loopback-only network namespace that the root-only modes (`sync`, `scan`)
//! run in, so that nothing their daemons do can leave the machine:
//! [`rerun_inside`] makes a fresh namespace with only `lo` up (`ip netns add`),
//! runs this very command again inside it, marked by [`ENV`], and deletes the
//! namespace afterwards; the run inside checks with [`ensure_loopback_only`]
//! that it really sees nothing but loopback before it starts anything.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

/// Set in the run inside the namespace: its name.
const ENV: &str = "PEERBOX_BENCH_NETNS";

/// The namespace this process runs in, when it is the run inside one.
pub(crate) fn current() -> Option<String> {
    std::env::var_os(ENV).map(|ns| ns.to_string_lossy().into_owned())
}

/// Deletes the namespace when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let ok = std::process::Command::new("ip").args(["netns", "del", &self.0]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("peerbox-bench: could not delete network namespace {} (ip netns del {0})", self.0);
        }
    }
}

/// Makes the namespace, runs this command (same arguments) again inside it,
/// passes Ctrl-C / SIGTERM on, and deletes the namespace afterwards. `what`
/// names the benchmark in the error shown when the namespace cannot be made.
pub(crate) async fn rerun_inside(what: &str) -> Result<ExitCode> {
    let ns = format!("peerbox-bench-{}", std::process::id());
    let out = Command::new("ip").args(["netns", "add", &ns]).output().await.context("cannot run ip(8)")?;
    if !out.status.success() {
        bail!(
            "cannot make a network namespace (`ip netns add {ns}`: {}); {what} needs root \
             for it and for loop-mounting its ext4 images",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let guard = Netns(ns.clone());
    let up = Command::new("ip").args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]).status().await?;
    ensure!(up.success(), "cannot bring lo up in namespace {ns}");

    let exe = std::env::current_exe().context("cannot tell where this executable is")?;
    // `ip netns exec` execs the command (no fork), so the child's pid is the benchmark's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env(ENV, &ns)
        .spawn()
        .context("cannot start the benchmark inside the namespace")?;
    let status = tokio::select! {
        s = child.wait() => s?,
        () = crate::interrupted() => {
            // Ctrl-C reaches the child directly (same process group); pass SIGTERM on too, then let it clean up.
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
                Ok(s) => s?,
                Err(_) => {
                    let _ = child.kill().await;
                    child.wait().await?
                }
            }
        }
    };
    drop(guard);
    Ok(match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::from(130),
    })
}

/// Refuses to go on anywhere but a namespace whose only interface is `lo`.
pub(crate) fn ensure_loopback_only(ns: &str) -> Result<()> {
    let ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .context("cannot list network interfaces")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    ensure!(ifaces == ["lo"], "expected only `lo` in namespace {ns}, found {ifaces:?}; refusing to run");
    Ok(())
}
