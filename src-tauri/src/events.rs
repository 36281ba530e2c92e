//! What the node tells the window while it runs: the event `change` `{"gen": n}` at
//! most ~10 times a second however fast the node's change counter moves (at once
//! when something finishes), the event
//! `notice` with each [`Notice`], an OS notification for notices (at most one every
//! two seconds; a burst becomes one summary), and the tray's status line.
//!
//! Started once from setup; each loop ends when the node's channels close.

use std::time::Duration;

use peerbox_node::{Node, Notice, Pacer, Request};
use serde_json::json;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt as _;
use tokio::sync::{broadcast, watch};

use crate::MAIN_WINDOW;

/// Pause after each `change` event: changes during it coalesce into the next one
/// (something finishing is sent at once).
const CHANGE_GAP: Duration = Duration::from_millis(100);
/// Pause after each tray status update (it reads the folder list).
const TRAY_GAP: Duration = Duration::from_secs(1);
/// Pause after each OS notification.
const NOTIFY_GAP: Duration = Duration::from_secs(2);
/// Notices named in one summary notification.
const SUMMARY_LINES: usize = 3;
/// Longest peer-supplied text put into a notification, in characters.
const MAX_FIELD_CHARS: usize = 200;

/// Starts the loops.
pub(crate) fn start(app: &AppHandle, node: &Node) {
    tauri::async_runtime::spawn(forward_changes(app.clone(), node.paced_changes(CHANGE_GAP)));
    tauri::async_runtime::spawn(forward_notices(app.clone(), node.notices()));
    tauri::async_runtime::spawn(notify(app.clone(), node.notices()));
    tauri::async_runtime::spawn(tray_status(app.clone(), node.changes()));
}

async fn forward_changes(app: AppHandle, mut changes: Pacer) {
    while let Some(generation) = changes.next().await {
        if let Err(e) = app.emit_to(MAIN_WINDOW, "change", json!({ "gen": generation })) {
            tracing::debug!("cannot send a change event: {e}");
        }
    }
}

async fn forward_notices(app: AppHandle, mut notices: broadcast::Receiver<Notice>) {
    loop {
        match notices.recv().await {
            Ok(notice) => {
                if let Err(e) = app.emit_to(MAIN_WINDOW, "notice", &notice) {
                    tracing::debug!("cannot send a notice event: {e}");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!("{n} notices were not passed to the window"),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn notify(app: AppHandle, mut notices: broadcast::Receiver<Notice>) {
    loop {
        let mut batch = Vec::new();
        let mut more = 0u64;
        match notices.recv().await {
            Ok(n) => batch.push(n),
            Err(broadcast::error::RecvError::Lagged(n)) => more += n,
            Err(broadcast::error::RecvError::Closed) => return,
        }
        loop {
            match notices.try_recv() {
                Ok(n) if batch.len() < SUMMARY_LINES => batch.push(n),
                Ok(_) => more += 1,
                Err(broadcast::error::TryRecvError::Lagged(n)) => more += n,
                Err(_) => break,
            }
        }
        let (title, body) = notification_text(&batch, more);
        // The plugin hands the work to a task and returns; a missing notification
        // daemon only makes that task fail.
        if let Err(e) = app.notification().builder().title(title).body(body).show() {
            tracing::debug!("cannot show a notification: {e}");
        }
        tokio::time::sleep(NOTIFY_GAP).await;
    }
}

/// Title and body for one notice, or a summary of several (`more` not listed).
pub(crate) fn notification_text(batch: &[Notice], more: u64) -> (String, String) {
    if let ([n], 0) = (batch, more) {
        return one_notice(n);
    }
    let total = batch.len() as u64 + more;
    let mut lines: Vec<String> = batch
        .iter()
        .map(|n| {
            let (title, body) = one_notice(n);
            format!("{title}: {body}")
        })
        .collect();
    if more > 0 {
        lines.push(format!("and {more} more"));
    }
    (format!("Peerbox: {total} new notices"), lines.join("\n"))
}

fn one_notice(n: &Notice) -> (String, String) {
    let subject = plain(&n.subject);
    let detail = plain(&n.detail);
    let with_detail = |s: String| if detail.is_empty() { s } else { format!("{s} ({detail})") };
    match n.kind {
        "download_done" => ("Download finished".into(), subject),
        "download_failed" => ("Download failed".into(), with_detail(subject)),
        "conflict" => ("Conflict: both versions kept".into(), with_detail(subject)),
        "join_request" if !detail.is_empty() => ("Join request".into(), format!("{detail} asks to join {subject}")),
        "join_request" => ("Join request".into(), format!("A device asks to join {subject}")),
        _ => ("Peerbox".into(), with_detail(subject)),
    }
}

/// Peer-supplied text made safe to show: one line, bounded, and (on Linux, where
/// notification servers read a little HTML) with markup characters escaped.
fn plain(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX_FIELD_CHARS {
            out.push('…');
            break;
        }
        match c {
            c if c.is_control() => out.push(' '),
            '&' if cfg!(target_os = "linux") => out.push_str("&amp;"),
            '<' if cfg!(target_os = "linux") => out.push_str("&lt;"),
            '>' if cfg!(target_os = "linux") => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

async fn tray_status(app: AppHandle, mut changes: watch::Receiver<u64>) {
    loop {
        if let Some(tray) = app.try_state::<crate::tray::Tray>() {
            let node = app.state::<Node>();
            let folders = match node.call(Request::FolderList).await {
                Ok(list) => list.as_array().map_or(0, Vec::len),
                Err(e) => {
                    tracing::debug!("tray status: {e}");
                    0
                }
            };
            let peers = node.peers().iter().filter(|p| p.connected).count();
            tray.set_status(&status_line(folders, peers));
        }
        if changes.changed().await.is_err() {
            return;
        }
        changes.borrow_and_update();
        tokio::time::sleep(TRAY_GAP).await;
    }
}

/// "Peerbox — 2 folders, 1 peer".
pub(crate) fn status_line(folders: usize, peers: usize) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    format!("Peerbox — {folders} folder{}, {peers} peer{}", s(folders), s(peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: &'static str, subject: &str, detail: &str) -> Notice {
        Notice { kind, subject: subject.into(), detail: detail.into() }
    }

    #[test]
    fn one_notice_reads_as_a_sentence() {
        assert_eq!(
            notification_text(&[notice("download_done", "photos", "")], 0),
            ("Download finished".to_owned(), "photos".to_owned())
        );
        assert_eq!(
            notification_text(&[notice("join_request", "Team", "12D3KooW…abcd")], 0).1,
            "12D3KooW…abcd asks to join Team"
        );
        assert_eq!(notification_text(&[notice("download_failed", "a.txt", "refused")], 0).1, "a.txt (refused)");
    }

    #[test]
    fn a_burst_becomes_one_summary() {
        let batch = [notice("download_done", "a", ""), notice("conflict", "b", ""), notice("download_done", "c", "")];
        let (title, body) = notification_text(&batch, 7);
        assert_eq!(title, "Peerbox: 10 new notices");
        assert_eq!(body.lines().count(), 4);
        assert!(body.ends_with("and 7 more"));
        assert_eq!(notification_text(&[], 3).0, "Peerbox: 3 new notices", "only lag");
    }

    #[test]
    fn peer_text_is_one_bounded_line_without_markup() {
        let (_, body) = notification_text(&[notice("download_done", "<a href='x'>a</a>\nb", "")], 0);
        assert!(!body.contains('\n'));
        if cfg!(target_os = "linux") {
            assert_eq!(body, "&lt;a href='x'&gt;a&lt;/a&gt; b");
        }
        let (_, body) = notification_text(&[notice("download_done", &"x".repeat(5000), "")], 0);
        assert_eq!(body.chars().count(), MAX_FIELD_CHARS + 1);
    }

    #[test]
    fn the_status_line_counts() {
        assert_eq!(status_line(0, 0), "Peerbox — 0 folders, 0 peers");
        assert_eq!(status_line(1, 1), "Peerbox — 1 folder, 1 peer");
        assert_eq!(status_line(3, 2), "Peerbox — 3 folders, 2 peers");
    }
}
