#!/usr/bin/env bash
# End-to-end test of the desktop app's real window over WebDriver (tauri-driver in
# front of WebKitWebDriver, the app under Xvfb); see webdriver.test.mjs.
# Installs what it needs, idempotently: webkit2gtk-driver, xvfb, xauth, dbus-daemon,
# fonts for Korean, Node when absent, and tauri-driver 2.1.0 (scripts/deps.sh).
# Binaries: $PEERBOX_BIN (CLI) and $PEERBOX_DESKTOP_BIN (app), default
# ../../target/debug/{peerbox,peerbox-desktop} (build them first).
set -euo pipefail
cd "$(dirname "$0")"
. ../../scripts/deps.sh

debs=(webkit2gtk-driver xvfb xauth dbus-daemon fonts-noto-cjk)
# Node may come from elsewhere (nvm, NodeSource): ask apt for it only when absent.
command -v node >/dev/null 2>&1 || debs+=(nodejs)
peerbox_need_debs "${debs[@]}"
peerbox_need_rust
peerbox_need_tauri_driver

root="$(cd ../.. && pwd)"
export PEERBOX_BIN="${PEERBOX_BIN:-$root/target/debug/peerbox}"
export PEERBOX_DESKTOP_BIN="${PEERBOX_DESKTOP_BIN:-$root/target/debug/peerbox-desktop}"
exec node --test "$@"
