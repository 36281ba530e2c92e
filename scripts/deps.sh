# Installs, idempotently, what building and testing Peerbox needs on Debian.
# Sourced by ./run and ./test; safe to run again and again.

peerbox_need_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

peerbox_need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust is missing: install it from https://rustup.rs (rustup), then run this again." >&2
    exit 1
  fi
}

# Packages every build needs.
PEERBOX_BUILD_DEBS=(build-essential pkg-config)
# The desktop app (Tauri 2 on WebKitGTK).
PEERBOX_DESKTOP_DEBS=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev dbus-daemon)
