//! The `peerbox` binary; everything lives in the library so tests can build the
//! same entry point.

fn main() -> std::process::ExitCode {
    peerbox_cli::main()
}
