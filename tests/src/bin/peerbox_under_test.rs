//! `peerbox`, built inside the test package (see Cargo.toml).

fn main() -> std::process::ExitCode {
    peerbox_cli::main()
}
