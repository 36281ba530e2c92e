#!/usr/bin/env bash
# Browser end-to-end tests of the drive UI (ui/) against a real peerbox daemon.
# Installs what they need, idempotently: Debian's chromium and fonts (Korean, emoji),
# then playwright-core from package-lock.json (npm ci) when node_modules is missing
# or older than the lock file; then runs `node --test`.
# The daemon binary: $PEERBOX_BIN, default ../../target/debug/peerbox (build it first).
set -euo pipefail
cd "$(dirname "$0")"

debs=(chromium fonts-noto-cjk fonts-noto-color-emoji)
# Node may come from elsewhere (nvm, NodeSource): ask apt for it only when absent.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || debs+=(nodejs npm)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/jsqr ]; then
  npm ci --no-audit --no-fund >&2
fi

export PEERBOX_BIN="${PEERBOX_BIN:-$(cd ../.. && pwd)/target/debug/peerbox}"
if [ ! -x "$PEERBOX_BIN" ]; then
  echo "no peerbox binary at $PEERBOX_BIN: build it (cargo build -p peerbox-cli) or set PEERBOX_BIN" >&2
  exit 1
fi
exec node --test "$@"
