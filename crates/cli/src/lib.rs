//! The `peerbox` command: share files by link and download them.
//!
//! Exit codes: 0 done; 2 bad usage or bad input (a malformed, damaged, forged,
//! revoked or expired link; a missing path; a destination that would be
//! overwritten); 1 any other failure.

mod client;
mod daemon;
mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use peerbox_node::{GetOptions, Home, Node, NodeConfig, NodeError};
use peerbox_proto::Link;

/// Exit code for bad usage or bad input.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for any other failure.
const EXIT_FAILED: u8 = 1;

/// `println!`, except that a reader that went away (`peerbox ls | head`) ends the
/// command quietly, as it ends other Unix tools, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::output_failed(e)
        }
    };
}

fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("peerbox: cannot write the output: {e}");
    std::process::exit(EXIT_FAILED.into())
}

#[derive(Parser)]
#[command(
    name = "peerbox",
    version,
    about = "A peer-to-peer file locker: share files by link, straight from your disk."
)]
struct Cli {
    /// Home folder holding this device's key and index [default: the platform data folder].
    #[arg(long, global = true, env = "PEERBOX_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print this device's id (its PeerId).
    Id,
    /// Share files and folders: print a link, then serve them until interrupted.
    Share {
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print a JSON object instead of the bare link on the first line.
        #[arg(long)]
        json: bool,
        /// Files and folders to share; folders keep their tree.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run the node in the background: folders, sync, and the API on loopback.
    Daemon {
        #[command(flatten)]
        net: NetArgs,
        /// Relay connections for peers behind NAT and answer DHT queries: for a
        /// reachable server others use as --bootstrap. Resource limits apply
        /// (see the README).
        #[arg(long)]
        relay: bool,
        /// Loopback address for the API.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        api: std::net::SocketAddr,
    },
    /// Shared folders (talks to the running daemon).
    #[command(subcommand)]
    Folder(FolderCmd),
    /// Folders with state and completion, and peers.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show this device's settings, or change them.
    Settings {
        /// A new device name ("" returns to the host name).
        #[arg(long)]
        device_name: Option<String>,
        /// Serve files downloaded from links to others holding the same link.
        #[arg(long, value_name = "true|false")]
        serve_downloads: Option<bool>,
        /// Keep these DHT bootstrap peers (repeatable; replaces the list; used from
        /// the next start when none are given with --bootstrap).
        #[arg(long, value_name = "MULTIADDR", conflicts_with = "no_bootstrap")]
        bootstrap: Vec<String>,
        /// Forget the kept bootstrap peers.
        #[arg(long)]
        no_bootstrap: bool,
        #[command(flatten)]
        bandwidth: BandwidthArgs,
        /// Run large downloads only in this daily window of local time, e.g.
        /// 01:00-07:00 ("" for any time); outside it they wait, resumable.
        #[arg(long, value_name = "HH:MM-HH:MM")]
        schedule: Option<String>,
        /// Downloads at least this large wait for the window [default: 100MiB].
        #[arg(long, value_name = "SIZE", value_parser = parse_size_or_zero)]
        schedule_min_size: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Peers this device has seen.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deleted files of a folder (and versions past what the folder keeps).
    #[command(subcommand)]
    Trash(TrashCmd),
    /// Earlier versions of a file, kept when sync replaced it.
    #[command(subcommand)]
    Versions(VersionsCmd),
    /// List devices asking to join your folders, or let one in.
    Approve {
        /// Folder id, name or path (with PEER: approve).
        folder: Option<String>,
        /// The PeerId of the device to let in.
        peer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The links this device made, with uses and state (and those it serves for
    /// downloads it received).
    Links {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a link you made (also ends open sessions), or remove a peer from every folder.
    Revoke {
        /// A peerbox:// link, a link's number from `peerbox links`, or a PeerId.
        target: String,
    },
    /// List what is inside a shared folder (or a directory in it), as the drive shows it.
    Ls {
        /// Folder id, name or path.
        folder: String,
        /// Directory inside the folder.
        #[arg(default_value = "")]
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find files and folders by name in every shared folder.
    Search {
        /// Part of a name.
        query: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the drive's address (with a login token) and open it in a browser if one can start.
    Open,
    /// Make a directory in a shared folder.
    Mkdir {
        /// Folder id, name or path.
        folder: String,
        /// The new directory's path inside the folder.
        path: String,
    },
    /// Rename or move something inside a shared folder (never replaces anything).
    Mv {
        /// Folder id, name or path.
        folder: String,
        /// Path now.
        from: String,
        /// Path after.
        to: String,
    },
    /// Delete from a shared folder: into its trash, here and on every member.
    Rm {
        /// Folder id, name or path.
        folder: String,
        /// Paths inside the folder.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// The daemon's download queue; or pause, resume or cancel one download.
    Transfers {
        /// pause, resume or cancel.
        #[arg(value_parser = ["pause", "resume", "cancel"], requires = "id")]
        action: Option<String>,
        /// The download's id (see the list).
        id: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue a download in the daemon (it runs in the background, resumes after restarts).
    Download {
        /// The peerbox:// link.
        link: String,
        /// Destination folder [default: your Downloads folder].
        dest: Option<PathBuf>,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Send files and folders through a file-request link into its owner's folder.
    Upload {
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        password: PasswordArg,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        /// The peerbox:// file-request link.
        link: String,
        /// Files and folders to send.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Fetch a file or folder of an on-demand folder and keep it.
    Fetch {
        /// Folder id, name or path.
        folder: String,
        /// Path inside the folder.
        path: String,
    },
    /// Download what a link shares into DEST (default: the current folder).
    Get {
        #[command(flatten)]
        net: NetArgs,
        /// Replace existing files whose content differs.
        #[arg(long)]
        overwrite: bool,
        /// Report progress on stderr even when it is not a terminal.
        #[arg(long)]
        progress: bool,
        /// Print a JSON summary on stdout instead of the list of paths.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        password: PasswordArg,
        /// Ignore the addresses in the link: find the sharer on the LAN or in the
        /// DHT only (for network labs).
        #[arg(long, hide = true)]
        no_link_addrs: bool,
        /// The peerbox:// link.
        link: String,
        /// Destination folder.
        dest: Option<PathBuf>,
    },
}

const MODES: [&str; 3] = ["send-receive", "receive-only", "on-demand"];

#[derive(Subcommand)]
enum FolderCmd {
    /// Add a folder to your locker; prints its id.
    Add {
        /// The folder (created if missing).
        path: PathBuf,
        /// Display name [default: the folder's name].
        #[arg(long)]
        name: Option<String>,
        /// How it syncs.
        #[arg(long, default_value = "send-receive", value_parser = MODES)]
        mode: String,
    },
    /// List folders.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a link that lets others join a folder; prints it.
    Link {
        /// Folder id, name or path.
        folder: String,
        /// Holders may read but not change.
        #[arg(long)]
        read_only: bool,
        /// Devices joining through this link wait until you `peerbox approve` them.
        #[arg(long)]
        approve: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Make a file-request link: whoever holds it can drop files into the folder
    /// (each upload in a folder of its own) but cannot list or read anything in it.
    Request {
        /// Folder id, name or path.
        folder: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// The most bytes that may arrive through the link in all (e.g. 500MiB, 2GB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_bytes: Option<u64>,
    },
    /// Join a folder from a link into PATH.
    Join {
        /// The peerbox:// link.
        link: String,
        /// Where to keep the folder.
        path: PathBuf,
        /// How it syncs.
        #[arg(long, default_value = "send-receive", value_parser = MODES)]
        mode: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Stop syncing a folder (its files stay where they are).
    Leave {
        /// Folder id, name or path.
        folder: String,
    },
    /// Change a folder's settings.
    Set {
        /// Folder id, name or path.
        folder: String,
        /// Versions to keep of each file that sync replaces (0: replaced files go to the trash).
        #[arg(long, value_name = "N")]
        keep_versions: Option<u32>,
    },
    /// Resume a folder paused because many files were deleted at once (accepts the deletes).
    Resume {
        /// Folder id, name or path.
        folder: String,
    },
}

#[derive(Subcommand)]
enum VersionsCmd {
    /// List a file's kept versions, newest first (1 is the newest).
    List {
        /// Folder id, name or path.
        folder: String,
        /// Path inside the folder.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a version back (what is there now is kept as a version).
    Restore {
        /// Folder id, name or path.
        folder: String,
        /// Path inside the folder.
        path: String,
        /// Its number from the list, or its time.
        version: String,
    },
}

#[derive(Subcommand)]
enum TrashCmd {
    /// List what is in a folder's trash.
    List {
        /// Folder id, name or path.
        folder: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a file back where it was.
    Restore {
        /// Folder id, name or path.
        folder: String,
        /// Path inside the folder.
        path: String,
        /// Which deletion (as listed) [default: the newest].
        #[arg(long)]
        at: Option<String>,
    },
}

/// Bandwidth limits, per second, as people type sizes ("2MiB", "500KB"; 0 for none).
#[derive(Args)]
struct BandwidthArgs {
    /// All uploads together, per second (e.g. 2MiB; 0 for no limit).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    upload_limit: Option<u64>,
    /// All downloads together, per second.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    download_limit: Option<u64>,
    /// Uploads to any one peer, per second.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_upload_limit: Option<u64>,
    /// Downloads from any one peer, per second.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_download_limit: Option<u64>,
    /// Apply the limits to peers on the LAN too (by default they are exempt).
    #[arg(long, value_name = "true|false")]
    limit_lan: Option<bool>,
}

impl BandwidthArgs {
    fn any(&self) -> bool {
        self.upload_limit.is_some()
            || self.download_limit.is_some()
            || self.peer_upload_limit.is_some()
            || self.peer_download_limit.is_some()
            || self.limit_lan.is_some()
    }
}

fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_size(s)
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    if matches!(t, "0" | "none" | "off") {
        return Ok(0);
    }
    Ok(t.parse::<bytesize::ByteSize>().map_err(|e| format!("{e} (try 2MiB, 500KB or 0 for none)"))?.as_u64())
}

/// The limits a new link can carry.
#[derive(Args)]
struct LimitArgs {
    /// Stop honouring the link after this long (e.g. 30m, 12h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    expires: Option<Duration>,
    /// Holders must also give this password (the link alone is not enough).
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// How many devices may use the link.
    #[arg(long, value_name = "N")]
    max_uses: Option<u64>,
}

impl LimitArgs {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "expires_in": self.expires.map(|d| d.as_secs()),
            "password": self.password,
            "max_uses": self.max_uses,
        })
    }
}

/// The password of a link that takes one.
#[derive(Args)]
struct PasswordArg {
    /// The link's password, when it takes one.
    #[arg(long, value_name = "PASSWORD", env = "PEERBOX_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

/// Merges `extra`'s fields into the JSON object `base`.
fn with(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn parse_size(s: &str) -> Result<u64, String> {
    let n = s.trim().parse::<bytesize::ByteSize>().map_err(|e| format!("{e} (try 500MiB or 2GB)"))?.as_u64();
    if n == 0 {
        return Err("must be more than zero".into());
    }
    Ok(n)
}

#[derive(Args)]
struct NetArgs {
    /// Address to listen on (repeatable), e.g. /ip4/0.0.0.0/tcp/4001 [default: all interfaces, random ports].
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<peerbox_node::Multiaddr>,
    /// Do not look for or announce peers on the LAN.
    #[arg(long)]
    no_mdns: bool,
    /// A DHT bootstrap peer, ending in /p2p/<PeerId> (repeatable). Relays among
    /// them carry this device when it is behind NAT. Nothing public is used
    /// unless given here or with --dht amino.
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_bootstrap, env = "PEERBOX_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<peerbox_node::Multiaddr>,
    /// Which DHT to join: "peerbox" (Peerbox devices only) or "amino" (the public
    /// IPFS DHT, with its public bootstrap peers when no --bootstrap is given).
    #[arg(long, value_name = "DHT", default_value = "peerbox", value_parser = parse_dht)]
    dht: peerbox_node::Dht,
    /// Treat private addresses as public when checking reachability (for labs
    /// and networks that are private end to end).
    #[arg(long, hide = true)]
    private_is_public: bool,
}

impl NetArgs {
    fn node_config(self, home: PathBuf, serve: bool, relay: bool) -> NodeConfig {
        NodeConfig {
            home,
            listen: self.listen,
            mdns: !self.no_mdns,
            serve,
            bootstrap: self.bootstrap,
            relay,
            dht: self.dht,
            private_is_public: self.private_is_public,
        }
    }
}

fn parse_bootstrap(s: &str) -> Result<peerbox_node::Multiaddr, String> {
    peerbox_node::settings::parse_bootstrap(s).map_err(|e| e.to_string())
}

fn parse_dht(s: &str) -> Result<peerbox_node::Dht, String> {
    match s {
        "peerbox" => Ok(peerbox_node::Dht::Peerbox),
        "amino" | "ipfs" => Ok(peerbox_node::Dht::Amino),
        _ => Err("expected peerbox or amino".into()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (try 30m, 12h or 7d)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// Runs the command line in `std::env::args` and returns the exit code.
pub fn main() -> ExitCode {
    // Before the runtime's threads start (see the function).
    peerbox_node::tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peerbox: cannot start: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let bad_input = e.downcast_ref::<NodeError>().is_some_and(NodeError::is_bad_input)
                || e.downcast_ref::<peerbox_proto::LinkError>().is_some()
                || e.downcast_ref::<client::DaemonError>().is_some_and(|d| d.bad_input);
            eprintln!("peerbox: {e:#}");
            ExitCode::from(if bad_input { EXIT_BAD_INPUT } else { EXIT_FAILED })
        }
    }
}

fn init_logging(verbose: u8) {
    // Kademlia warns that it cannot refresh when this device joined no DHT (a
    // LAN-only setup, the normal case): not something a user can act on.
    let default = match verbose {
        0 => "warn,libp2p_kad=error",
        1 => "info,libp2p_kad=error",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn home_dir(cli_home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    cli_home.or_else(Home::default_dir).context("cannot find a home folder for Peerbox; pass --home DIR")
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = home_dir(cli.home)?;
    match cli.command {
        Command::Id => {
            let home = Home::open(&home)?;
            outln!("{}", home.peer_id());
            Ok(ExitCode::SUCCESS)
        }
        Command::Share { net, limits, json, paths } => share(home, net, limits, json, paths).await,
        Command::Get { net, overwrite, progress, json, password, no_link_addrs, link, dest } => {
            let flags =
                GetFlags { overwrite, show_progress: progress, json, no_link_addrs, password: password.password };
            get(home, net, flags, &link, dest).await
        }
        Command::Upload { net, password, json, link, paths } => {
            upload(home, net, password.password, json, &link, paths).await
        }
        Command::Daemon { net, api, relay } => {
            daemon::run(net.node_config(home, true, relay), api).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Folder(cmd) => folder(&home, cmd).await,
        Command::Status { json } => {
            let v = client::call(&home, serde_json::json!({ "op": "status" })).await?;
            if json {
                outln!("{v}");
            } else {
                print_status(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Settings {
            device_name,
            serve_downloads,
            bootstrap,
            no_bootstrap,
            bandwidth,
            schedule,
            schedule_min_size,
            json,
        } => {
            let bootstrap = if no_bootstrap { Some(Vec::new()) } else { (!bootstrap.is_empty()).then_some(bootstrap) };
            let changes = device_name.is_some()
                || serve_downloads.is_some()
                || bootstrap.is_some()
                || bandwidth.any()
                || schedule.is_some()
                || schedule_min_size.is_some();
            let v = if changes {
                let change = serde_json::json!({
                    "op": "settings_set", "device_name": device_name, "serve_downloads": serve_downloads,
                    "bootstrap": bootstrap, "upload_limit": bandwidth.upload_limit,
                    "download_limit": bandwidth.download_limit, "peer_upload_limit": bandwidth.peer_upload_limit,
                    "peer_download_limit": bandwidth.peer_download_limit, "limit_lan": bandwidth.limit_lan,
                    "schedule": schedule, "schedule_min_bytes": schedule_min_size,
                });
                client::call(&home, change).await?
            } else {
                client::call(&home, serde_json::json!({ "op": "settings" })).await?
            };
            if json {
                outln!("{v}");
            } else {
                outln!("device name: {}", text(&v["device_name"]));
                outln!("serve downloads: {}", if v["serve_downloads"] == true { "yes" } else { "no" });
                for b in v["bootstrap"].as_array().into_iter().flatten() {
                    outln!("bootstrap: {}", text(b));
                }
                let rate = |k: &str| match v["bandwidth"][k].as_u64() {
                    Some(0) | None => "no limit".to_owned(),
                    Some(n) => format!("{}/s", progress::bytes(n)),
                };
                outln!("upload limit: {} (each peer: {})", rate("upload"), rate("peer_upload"));
                outln!("download limit: {} (each peer: {})", rate("download"), rate("peer_download"));
                outln!("limits apply on the LAN: {}", if v["bandwidth"]["limit_lan"] == true { "yes" } else { "no" });
                match v["schedule"].as_str() {
                    Some(w) => outln!(
                        "download window: {} (downloads of {} or more wait for it)",
                        w.escape_debug(),
                        progress::bytes(v["schedule_min_bytes"].as_u64().unwrap_or(0))
                    ),
                    None => outln!("download window: any time"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Peers { json } => {
            let v = client::call(&home, serde_json::json!({ "op": "peers" })).await?;
            if json {
                outln!("{v}");
            } else {
                for p in v.as_array().into_iter().flatten() {
                    outln!(
                        "{}  {}  {}  {}",
                        text(&p["peer"]),
                        if p["connected"].as_bool() == Some(true) { "online" } else { "offline" },
                        text(&p["kind"]),
                        text(&p["addr"])
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trash(TrashCmd::List { folder, json }) => {
            let v = client::call(&home, serde_json::json!({ "op": "trash_list", "folder": folder })).await?;
            if json {
                outln!("{v}");
            } else {
                for e in v.as_array().into_iter().flatten() {
                    outln!(
                        "{}  {:>10}  {}",
                        text(&e["deleted_at"]),
                        progress::bytes(e["size"].as_u64().unwrap_or(0)),
                        text(&e["path"])
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trash(TrashCmd::Restore { folder, path, at }) => {
            client::call(&home, serde_json::json!({ "op": "trash_restore", "folder": folder, "path": path, "at": at }))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Versions(VersionsCmd::List { folder, path, json }) => {
            let v =
                client::call(&home, serde_json::json!({ "op": "versions", "folder": folder, "path": path })).await?;
            if json {
                outln!("{v}");
            } else {
                for e in v.as_array().into_iter().flatten() {
                    outln!(
                        "{:>3}  {}  {:>10}",
                        e["n"],
                        text(&e["at"]),
                        progress::bytes(e["size"].as_u64().unwrap_or(0))
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Versions(VersionsCmd::Restore { folder, path, version }) => {
            let req =
                serde_json::json!({ "op": "version_restore", "folder": folder, "path": path, "version": version });
            let v = client::call(&home, req).await?;
            eprintln!("restored the version of {}", text(&v["restored"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { folder: Some(folder), peer: Some(peer), .. } => {
            client::call(&home, serde_json::json!({ "op": "approve", "folder": folder, "peer": peer })).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { folder: Some(_), peer: None, .. } => {
            anyhow::bail!(client::DaemonError::usage("name the device to approve: peerbox approve FOLDER PEER"))
        }
        Command::Approve { json, .. } => {
            let v = client::call(&home, serde_json::json!({ "op": "requests" })).await?;
            if json {
                outln!("{v}");
            } else {
                for r in v.as_array().into_iter().flatten() {
                    outln!(
                        "{} asks to join {:?} ({}): peerbox approve {} {}",
                        text(&r["peer"]),
                        text(&r["folder_name"]),
                        if r["read_write"].as_bool() == Some(true) { "read-write" } else { "read-only" },
                        text(&r["folder"]),
                        text(&r["peer"])
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Links { json } => {
            let v = client::call(&home, serde_json::json!({ "op": "links" })).await?;
            if json {
                outln!("{v}");
            } else {
                for l in v.as_array().into_iter().flatten() {
                    outln!("{}", link_line(l));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { target } => {
            let v = client::call(&home, serde_json::json!({ "op": "revoke", "target": target })).await?;
            eprintln!("revoked {}", text(&v["revoked"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { folder, path, json } => {
            let v = client::call(&home, serde_json::json!({ "op": "browse", "folder": folder, "path": path })).await?;
            if json {
                outln!("{v}");
            } else {
                for e in v["entries"].as_array().into_iter().flatten() {
                    let size = if e["dir"].as_bool() == Some(true) {
                        "-".to_owned()
                    } else {
                        progress::bytes(e["size"].as_u64().unwrap_or(0))
                    };
                    let slash = if e["dir"].as_bool() == Some(true) { "/" } else { "" };
                    outln!("{:>10}  {:<8}  {}{slash}", size, text(&e["state"]), text(&e["name"]));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Search { query, json } => {
            let v = client::call(&home, serde_json::json!({ "op": "search", "query": query })).await?;
            if json {
                outln!("{v}");
            } else {
                for e in v["entries"].as_array().into_iter().flatten() {
                    outln!("{}: {}", text(&e["folder_name"]), text(&e["path"]));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch { folder, path } => {
            client::call(&home, serde_json::json!({ "op": "fetch", "folder": folder, "path": path })).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Open => {
            let url = client::ui_url(&home)?;
            outln!("{url}");
            // A browser needs a display; on a headless server the address is the answer.
            if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
                let _ = std::process::Command::new("xdg-open")
                    .arg(&url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mkdir { folder, path } => {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let v =
                client::call(&home, serde_json::json!({ "op": "mkdir", "folder": folder, "dir": dir, "name": name }))
                    .await?;
            outln!("{}", text(&v["path"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Mv { folder, from, to } => {
            client::call(&home, serde_json::json!({ "op": "rename", "folder": folder, "from": from, "to": to }))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm { folder, paths } => {
            client::call(&home, serde_json::json!({ "op": "delete", "folder": folder, "paths": paths })).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Download { link, dest, password } => {
            let dest = dest.map(|d| std::path::absolute(&d)).transpose()?;
            Link::decode(&link)?;
            let req =
                serde_json::json!({ "op": "download", "link": link, "dest": dest, "password": password.password });
            let v = client::call(&home, req).await?;
            outln!("{}", v["id"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::Transfers { action, id, json } => {
            if let (Some(action), Some(id)) = (action, id) {
                client::call(&home, serde_json::json!({ "op": format!("transfer_{action}"), "id": id })).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let v = client::call(&home, serde_json::json!({ "op": "transfers" })).await?;
            if json {
                outln!("{v}");
            } else {
                for t in v.as_array().into_iter().flatten() {
                    let (done, total) = (t["done_bytes"].as_u64().unwrap_or(0), t["total_bytes"].as_u64().unwrap_or(0));
                    let pct = (done * 100).checked_div(total).unwrap_or(0);
                    let waits = match t["waits_until"].as_str() {
                        Some(at) => format!("  (waits for the window at {})", at.escape_debug()),
                        None => String::new(),
                    };
                    outln!(
                        "{}  {:<9} {pct:>3}%  {}  -> {}{waits}",
                        t["id"],
                        text(&t["state"]),
                        text(&t["label"]),
                        text(&t["dest"])
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line of `peerbox links`: number, state, kind, uses, limits, what it opens.
fn link_line(l: &serde_json::Value) -> String {
    let uses = match l["max_uses"].as_u64() {
        Some(m) => format!("{}/{m} devices", l["uses"].as_u64().unwrap_or(0)),
        None => format!("{} devices", l["uses"].as_u64().unwrap_or(0)),
    };
    let mut notes = Vec::new();
    if let Some(e) = l["expires"].as_u64() {
        let left = e.saturating_sub(peerbox_node::now());
        notes.push(if left == 0 {
            "expired".to_owned()
        } else {
            format!("expires in {}", humantime::format_duration(Duration::from_secs(left)))
        });
    }
    if l["password"] == true {
        notes.push("password".into());
    }
    if l["kind"] == "request" {
        let used = progress::bytes(l["bytes_used"].as_u64().unwrap_or(0));
        notes.push(match l["max_bytes"].as_u64() {
            Some(m) => format!("{used} of {} received", progress::bytes(m)),
            None => format!("{used} received"),
        });
    }
    if l["read_only"] == false && l["kind"] == "folder" {
        notes.push("read-write".into());
    }
    if l["received"] == true {
        notes.push("received: serving a download".into());
    }
    format!(
        "{:>4}  {:<8} {:<7} {:<14} {}{}",
        l["id"].as_i64().unwrap_or(0),
        text(&l["state"]),
        text(&l["kind"]),
        uses,
        if l["label"].is_string() { text(&l["label"]) } else { "(gone)".into() },
        if notes.is_empty() { String::new() } else { format!("  [{}]", notes.join(", ")) },
    )
}

/// A JSON string field as text with control characters escaped: peers choose
/// folder and file names, and they must never drive the terminal.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.escape_debug().to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_status(v: &serde_json::Value) {
    outln!("device {}", text(&v["peer_id"]));
    for f in v["folders"].as_array().into_iter().flatten() {
        let state = match f["paused"].as_str() {
            Some(p) => p.escape_debug().to_string(),
            None => text(&f["state"]["state"]),
        };
        outln!(
            "folder {} {:?} {} {:.0}% ({} files, {} to pull) {}",
            &text(&f["id"])[..8.min(text(&f["id"]).len())],
            text(&f["name"]),
            state,
            f["completion"].as_f64().unwrap_or(0.0),
            f["local_files"],
            f["need_files"],
            text(&f["path"])
        );
        if let Some(e) = f["state"]["error"].as_str() {
            outln!("  error: {}", e.escape_debug());
        }
        for c in f["state"]["conflicts"].as_array().into_iter().flatten() {
            outln!("  conflict: {}", text(c));
        }
        for t in f["state"]["transfers"].as_array().into_iter().flatten() {
            outln!(
                "  pulling {} ({}, from {} member{})",
                text(&t["path"]),
                progress::bytes(t["size"].as_u64().unwrap_or(0)),
                t["sources"],
                if t["sources"] == 1 { "" } else { "s" }
            );
        }
    }
    for r in v["requests"].as_array().into_iter().flatten() {
        outln!(
            "request {} asks to join {:?}: peerbox approve {} {}",
            text(&r["peer"]),
            text(&r["folder_name"]),
            text(&r["folder"]),
            text(&r["peer"])
        );
    }
    for p in v["peers"].as_array().into_iter().flatten() {
        outln!(
            "peer {} {} {}",
            text(&p["peer"]),
            if p["connected"].as_bool() == Some(true) { "online" } else { "offline" },
            text(&p["kind"])
        );
    }
}

async fn folder(home: &std::path::Path, cmd: FolderCmd) -> anyhow::Result<ExitCode> {
    let abs = |p: &std::path::Path| std::path::absolute(p).context("cannot resolve the path");
    match cmd {
        FolderCmd::Add { path, name, mode } => {
            let v = client::call(
                home,
                serde_json::json!({ "op": "folder_add", "path": abs(&path)?, "name": name, "mode": mode }),
            )
            .await?;
            outln!("{}", text(&v["id"]));
        }
        FolderCmd::List { json } => {
            let v = client::call(home, serde_json::json!({ "op": "folder_list" })).await?;
            if json {
                outln!("{v}");
            } else {
                for f in v.as_array().into_iter().flatten() {
                    outln!("{}  {}  {}  {}", text(&f["id"]), text(&f["mode"]), text(&f["name"]), text(&f["path"]));
                }
            }
        }
        FolderCmd::Link { folder, read_only, approve, limits } => {
            let req = serde_json::json!({ "op": "folder_link", "folder": folder, "read_only": read_only, "approve": approve });
            let v = client::call(home, with(req, limits.json())).await?;
            outln!("{}", text(&v["link"]));
        }
        FolderCmd::Request { folder, limits, max_bytes } => {
            let req = serde_json::json!({ "op": "folder_request", "folder": folder, "max_bytes": max_bytes });
            let v = client::call(home, with(req, limits.json())).await?;
            outln!("{}", text(&v["link"]));
        }
        FolderCmd::Join { link, path, mode, password } => {
            // Check the link here first: a bad one is reported without the daemon.
            Link::decode(&link)?;
            let req = serde_json::json!({
                "op": "folder_join", "link": link, "path": abs(&path)?, "mode": mode, "password": password.password,
            });
            let v = client::call(home, req).await?;
            outln!("{}", text(&v["id"]));
        }
        FolderCmd::Set { folder, keep_versions } => {
            let req = serde_json::json!({ "op": "folder_set", "folder": folder, "keep_versions": keep_versions });
            client::call(home, req).await?;
        }
        FolderCmd::Leave { folder } => {
            client::call(home, serde_json::json!({ "op": "folder_leave", "folder": folder })).await?;
        }
        FolderCmd::Resume { folder } => {
            client::call(home, serde_json::json!({ "op": "folder_resume", "folder": folder })).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn share(
    home: PathBuf,
    net: NetArgs,
    limits: LimitArgs,
    json: bool,
    paths: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // A running daemon owns this home: it shares for us and keeps serving.
    if client::daemon_running(&home) {
        let abs: Vec<PathBuf> = paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect();
        let v = client::call(&home, with(serde_json::json!({ "op": "share", "paths": abs }), limits.json())).await?;
        for s in v["skipped"].as_array().into_iter().flatten() {
            eprintln!("peerbox: skipped {}", text(s));
        }
        if json {
            outln!("{v}");
        } else {
            outln!("{}", text(&v["link"]));
        }
        eprintln!("Shared through the running daemon, which serves it until it stops or the link is revoked.");
        return Ok(ExitCode::SUCCESS);
    }
    let node = Node::start(net.node_config(home, true, false)).await?;
    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let bar = progress::hashing(rx);
    let limits = peerbox_node::links::Limits {
        expires_in: limits.expires.map(|d| d.as_secs()),
        password: limits.password,
        max_uses: limits.max_uses,
        max_bytes: None,
    };
    let outcome = node.share(paths, limits, tx).await;
    bar.finish().await;
    let outcome = outcome?;
    for s in &outcome.skipped {
        eprintln!("peerbox: skipped {s}");
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&outcome)?)?;
    } else {
        writeln!(out, "{}", outcome.link)?;
    }
    out.flush()?;
    drop(out);
    eprintln!(
        "Sharing {} ({} file{}, {}). Keep this running; press Ctrl-C to stop.",
        outcome.label,
        outcome.files,
        if outcome.files == 1 { "" } else { "s" },
        progress::bytes(outcome.bytes)
    );
    shutdown_signal().await;
    eprintln!("Stopped sharing.");
    Ok(ExitCode::SUCCESS)
}

async fn upload(
    home: PathBuf,
    net: NetArgs,
    password: Option<String>,
    json: bool,
    link: &str,
    paths: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let parsed = Link::decode(link)?;
    if parsed.kind != peerbox_proto::LinkKind::Request {
        anyhow::bail!(client::DaemonError::usage(
            "this link does not take files: download it with `peerbox get`, or join it with `peerbox folder join`"
        ));
    }
    let abs = paths.iter().map(std::path::absolute).collect::<Result<Vec<_>, _>>()?;
    let outcome: serde_json::Value = if client::daemon_running(&home) {
        let req = serde_json::json!({ "op": "drop_paths", "link": link, "password": password, "paths": abs });
        client::call(&home, req).await?
    } else {
        let node = Node::start(net.node_config(home, false, false)).await?;
        let (tx, rx) = tokio::sync::watch::channel(peerbox_node::DropProgress::default());
        let bar = progress::upload(rx);
        let r = node.drop_paths(link, password.as_deref(), &abs, &tx).await;
        bar.finish().await;
        let o = r?;
        let mut v = serde_json::to_value(&o)?;
        v["bad_input"] = o.bad_input.into();
        v
    };
    if json {
        outln!("{outcome}");
    } else {
        for p in outcome["stored"].as_array().into_iter().flatten() {
            outln!("{}", text(p));
        }
    }
    let refused = outcome["refused"].as_array().cloned().unwrap_or_default();
    for r in &refused {
        eprintln!("peerbox: not sent: {}: {}", text(&r[0]), text(&r[1]));
    }
    let stored = outcome["stored"].as_array().map(|a| a.len()).unwrap_or(0);
    eprintln!("Sent {stored} file{} to {:?}.", if stored == 1 { "" } else { "s" }, text(&outcome["folder"]));
    Ok(match refused.is_empty() {
        true => ExitCode::SUCCESS,
        false if outcome["bad_input"] != false => ExitCode::from(EXIT_BAD_INPUT),
        false => ExitCode::from(EXIT_FAILED),
    })
}

/// The switches of `peerbox get`.
struct GetFlags {
    overwrite: bool,
    show_progress: bool,
    json: bool,
    no_link_addrs: bool,
    password: Option<String>,
}

async fn get(
    home: PathBuf,
    net: NetArgs,
    flags: GetFlags,
    link: &str,
    dest: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let GetFlags { overwrite, show_progress, json, no_link_addrs, password } = flags;
    // Read the link before anything touches the network or the disk.
    let link = Link::decode(link)?;
    let dest = match dest {
        Some(d) => d,
        None => std::env::current_dir().context("cannot tell the current folder; pass DEST")?,
    };
    let proof = peerbox_node::links::proof_for(&link, password.as_deref()).await?;
    let node = Node::start(net.node_config(home, false, false)).await?;
    node.check_link(&link)?;
    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let bar = progress::download(rx, show_progress);
    let opts = GetOptions { dest, overwrite, ignore_link_addrs: no_link_addrs, proof, hold: None };
    let result = tokio::select! {
        r = node.get(&link, &opts, &tx) => r,
        _ = shutdown_signal() => {
            bar.finish().await;
            eprintln!("peerbox: interrupted; run the same command again to resume");
            return Ok(ExitCode::from(130));
        }
    };
    bar.finish().await;
    let outcome = result?;
    // How the sharer was reached, for people and for labs that check it.
    let sharer = peerbox_node::PeerId::from_bytes(&link.peer).map(|p| p.to_string()).unwrap_or_default();
    let connection = node.peers().into_iter().find(|p| p.peer == sharer).map(|p| p.kind).unwrap_or("unknown");
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(&outcome)?;
        v["connection"] = connection.into();
        writeln!(out, "{v}")?;
    } else {
        for p in &outcome.paths {
            writeln!(out, "{}", p.display())?;
        }
    }
    out.flush()?;
    eprintln!(
        "Done: {} in {} file{} (fetched {}, already here {}; connection: {connection}).",
        progress::bytes(outcome.total_bytes),
        outcome.files,
        if outcome.files == 1 { "" } else { "s" },
        progress::bytes(outcome.fetched_bytes),
        progress::bytes(outcome.resumed_bytes)
    );
    if outcome.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &outcome.problems {
            eprintln!("peerbox: {p}");
        }
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
