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

# tauri-driver 2.1.0 (the WebDriver intermediary for the desktop window test), built
# once into a cache outside the clone and put on PATH. tauri-driver has no --version,
# so cargo's own record of what it installed there says which version it is.
PEERBOX_TAURI_DRIVER_VERSION=2.1.0
peerbox_need_tauri_driver() {
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/peerbox-tools"
  if ! [ -x "$dir/bin/tauri-driver" ] ||
    ! cargo install --list --root "$dir" 2>/dev/null | grep -qx "tauri-driver v$PEERBOX_TAURI_DRIVER_VERSION:"; then
    echo "installing: tauri-driver $PEERBOX_TAURI_DRIVER_VERSION into $dir" >&2
    # Built in a temporary target folder: not the project's (CARGO_TARGET_DIR).
    env -u CARGO_TARGET_DIR cargo install --locked --quiet --version "$PEERBOX_TAURI_DRIVER_VERSION" --root "$dir" tauri-driver >&2
  fi
  case ":$PATH:" in *":$dir/bin:"*) ;; *) export PATH="$dir/bin:$PATH" ;; esac
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
# The desktop window test drives the app through WebKitGTK's WebDriver.
PEERBOX_DESKTOP_DEBS+=(webkit2gtk-driver)
