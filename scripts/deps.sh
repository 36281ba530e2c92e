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

# A cargo-installed tool at an exact version, built once into a cache outside the
# clone and put on PATH: peerbox_need_cargo_tool CRATE VERSION. Cargo's own record
# of what it installed there says which version it is (some tools have no
# --version).
peerbox_need_cargo_tool() {
  local crate=$1 version=$2
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/peerbox-tools"
  if ! cargo install --list --root "$dir" 2>/dev/null | grep -qx "$crate v$version:"; then
    echo "installing: $crate $version into $dir" >&2
    # Built in a temporary target folder: not the project's (CARGO_TARGET_DIR).
    env -u CARGO_TARGET_DIR cargo install --locked --quiet --version "$version" --root "$dir" "$crate" >&2
  fi
  case ":$PATH:" in *":$dir/bin:"*) ;; *) export PATH="$dir/bin:$PATH" ;; esac
}

# tauri-driver (the WebDriver intermediary for the desktop window test).
PEERBOX_TAURI_DRIVER_VERSION=2.1.0
peerbox_need_tauri_driver() {
  peerbox_need_cargo_tool tauri-driver "$PEERBOX_TAURI_DRIVER_VERSION"
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
