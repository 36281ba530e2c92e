//! Progress on stderr: a bar with bytes, rate and ETA on a terminal; plain lines
//! when asked for on a pipe; nothing otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use peerbox_node::{DropProgress, GetProgress, ShareProgress};
use tokio::sync::watch;

/// A running progress display.
pub(crate) struct Display {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Display {
    /// Stops the display, leaving the last line drawn.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
}

/// Human-readable bytes (binary units, as file managers show).
pub(crate) fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// Hashing progress while a share is prepared (terminal only).
pub(crate) fn hashing(mut rx: watch::Receiver<ShareProgress>) -> Display {
    let (stop, mut stopped) = watch::channel(false);
    if !std::io::stderr().is_terminal() {
        return Display { task: None, stop };
    }
    let task = tokio::spawn(async move {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} hashing {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                r = rx.changed() => if r.is_err() { break },
            }
            bar.set_message(bytes(rx.borrow().hashed_bytes));
        }
        bar.finish_and_clear();
    });
    Display { task: Some(task), stop }
}

/// Download progress: a bar on a terminal, `progress DONE/TOTAL` lines with
/// `--progress` elsewhere (for scripts and tests), else nothing.
pub(crate) fn download(mut rx: watch::Receiver<GetProgress>, lines: bool) -> Display {
    let (stop, mut stopped) = watch::channel(false);
    let tty = std::io::stderr().is_terminal();
    if !tty && !lines {
        return Display { task: None, stop };
    }
    let task = tokio::spawn(async move {
        let bar = tty.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let mut last = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            let p = rx.borrow_and_update().clone();
            match &bar {
                Some(bar) => {
                    if p.resumed_bytes > 0 && last.is_none() {
                        bar.set_message(format!("(resumed {})", bytes(p.resumed_bytes)));
                    }
                    bar.set_length(p.total_bytes);
                    bar.set_position(p.done_bytes);
                }
                None => {
                    if last != Some((p.done_bytes, p.total_bytes)) {
                        eprintln!(
                            "progress {}/{} bytes, {}/{} files",
                            p.done_bytes, p.total_bytes, p.files_done, p.files_total
                        );
                    }
                }
            }
            last = Some((p.done_bytes, p.total_bytes));
        }
        if let Some(bar) = bar {
            let p = rx.borrow().clone();
            bar.set_position(p.done_bytes);
            bar.finish();
        }
    });
    Display { task: Some(task), stop }
}

/// Upload progress through a file-request link (terminal only).
pub(crate) fn upload(mut rx: watch::Receiver<DropProgress>) -> Display {
    let (stop, mut stopped) = watch::channel(false);
    if !std::io::stderr().is_terminal() {
        return Display { task: None, stop };
    }
    let task = tokio::spawn(async move {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            let p = rx.borrow_and_update().clone();
            bar.set_length(p.total_bytes);
            bar.set_position(p.sent_bytes);
        }
        bar.finish();
    });
    Display { task: Some(task), stop }
}
