//! `peerbox://` links handed to the app from outside: as an argument of this launch,
//! of a second launch (forwarded by the single-instance plugin), from the OS (deep
//! links on macOS), or from the tray's "Open link…". They reach the UI as the event
//! `open-link` `{"link": "…"}`.
//!
//! A link may arrive before the page has loaded and subscribed, so links wait in a
//! small queue until the UI's first `call` (the UI subscribes before it calls).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::json;
use tauri::{AppHandle, Emitter};

use crate::MAIN_WINDOW;

/// The link scheme, compared without regard to case.
const SCHEME: &str = "peerbox://";
/// Longest link forwarded (bytes). Real links are far shorter; this only bounds what
/// a stranger's command line can push into the UI.
pub(crate) const MAX_LINK_BYTES: usize = 4096;
/// Links kept while the UI is not ready; older ones are dropped first.
const QUEUE: usize = 8;

/// The `peerbox://` link in `arg`, if it is one worth forwarding.
pub(crate) fn valid_link(arg: &str) -> Option<&str> {
    let ok =
        arg.len() <= MAX_LINK_BYTES && arg.get(..SCHEME.len()).is_some_and(|head| head.eq_ignore_ascii_case(SCHEME));
    ok.then_some(arg)
}

/// The links among a command line's arguments (without the program name).
pub(crate) fn links_in_args<I, S>(args: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter().filter_map(|a| valid_link(a.as_ref()).map(str::to_owned)).collect()
}

/// Links waiting for the UI, and whether it is ready.
#[derive(Default)]
pub(crate) struct LinkInbox {
    state: Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    ui_ready: bool,
    pending: VecDeque<String>,
}

impl LinkInbox {
    /// Sends `link` to the UI now, or keeps it until the UI is ready. The empty link
    /// asks the UI for its "open a link" dialog.
    pub(crate) fn deliver(&self, app: &AppHandle, link: String) {
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !s.ui_ready {
                if s.pending.len() == QUEUE {
                    s.pending.pop_front();
                }
                s.pending.push_back(link);
                return;
            }
        }
        emit(app, &link);
    }

    /// The UI has subscribed and called: send what waited. Later calls do nothing.
    pub(crate) fn ui_ready(&self, app: &AppHandle) {
        let pending = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.ui_ready {
                return;
            }
            s.ui_ready = true;
            std::mem::take(&mut s.pending)
        };
        for link in pending {
            emit(app, &link);
        }
    }
}

fn emit(app: &AppHandle, link: &str) {
    if let Err(e) = app.emit_to(MAIN_WINDOW, "open-link", json!({ "link": link })) {
        tracing::warn!("cannot send a link to the window: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_peerbox_links_are_forwarded() {
        assert_eq!(valid_link("peerbox://2Nq"), Some("peerbox://2Nq"));
        assert_eq!(valid_link("PeerBox://2Nq"), Some("PeerBox://2Nq"));
        assert_eq!(valid_link("peerbox://"), Some("peerbox://"), "decoding is the node's job");
        for bad in [
            "",
            "peerbox:/x",
            "peerbox:",
            "https://example.com",
            " peerbox://x",
            "--flag",
            "/tmp/x",
            "ピアボックス://x",
        ] {
            assert_eq!(valid_link(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn links_are_bounded_in_size() {
        let at_limit = format!("peerbox://{}", "2".repeat(MAX_LINK_BYTES - SCHEME.len()));
        assert_eq!(at_limit.len(), MAX_LINK_BYTES);
        assert!(valid_link(&at_limit).is_some());
        let over = format!("{at_limit}2");
        assert!(valid_link(&over).is_none());
    }

    #[test]
    fn arguments_other_than_links_are_ignored() {
        let args = ["--autostart", "peerbox://abc", "file.txt", "PEERBOX://DEF"];
        assert_eq!(links_in_args(args), vec!["peerbox://abc".to_owned(), "PEERBOX://DEF".to_owned()]);
    }
}
