#!/usr/bin/env bash
# Peerbox across real NAT routers, in the namespaced lab of lab.sh. Needs root.
#
#   tests/nat-lab/peerbox.sh            # both scenarios
#   tests/nat-lab/peerbox.sh cone       # only cone/cone (also: symmetric)
#
# A relay/bootstrap daemon on the public segment; Alice (a1) behind router A, a second
# device (a2) on her LAN, Bob (b1) behind router B. Proves, with real daemons:
#   1. a2 finds a1 by mDNS (the link's addresses ignored) and transfers directly;
#   2. b1 gets Alice's link through the relay, upgraded by hole punching when both
#      NATs are cone-like, relayed when one maps every destination anew (symmetric);
#      which happened is reported and asserted per scenario;
#   3. a link whose addresses are all gone is resolved through the DHT;
#   4. (cone) after two friends' daemons downloaded the link (a2 next to Alice, b1
#      behind the other NAT), a getter pulls blocks from all three seeders, whose
#      uploads are then capped at 4 Mbit/s like home uplinks (tc tbf; Dave, on the
#      getter's node, also by his own upload limit);
#   5. with 50 ms delay and 2 % loss on the public links the transfer still completes
#      and verifies.
# Binary: $PEERBOX_BIN (default: target/debug/peerbox of this clone).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/nat-lab/lab.sh
. "$HERE/lab.sh"

PEERBOX=${PEERBOX_BIN:-$ROOT/target/debug/peerbox}
[ -x "$PEERBOX" ] || { echo "peerbox binary missing at $PEERBOX: build it (cargo build -p peerbox-cli) or set PEERBOX_BIN" >&2; exit 1; }
PY=$(_lab_python)
LOGROOT=$(mktemp -d /tmp/pblab-peerbox.XXXXXX)
PASSED=0
FAILED=0
FAILURES=()
REPORT=()

ok() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
bad() {
  FAILED=$((FAILED + 1))
  FAILURES+=("[$SCENARIO] $1")
  printf '  FAIL  %s\n' "$1"
  [ -z "${2:-}" ] || printf '%s\n' "$2" | tail -n 30 | sed 's/^/        | /'
}

# pb NODE HOME ARGS...: the CLI inside NODE against the daemon of HOME.
pb() {
  local node=$1 home=$2
  shift 2
  lab_exec "$node" "$PEERBOX" --home "$home" "$@"
}

# daemon NODE NAME ARGS...: starts `peerbox daemon` in NODE with home $RUN/NAME.
daemon() {
  local node=$1 name=$2
  shift 2
  lab_bg "$node" "$name" env RUST_LOG=info "$PEERBOX" --home "$RUN/$name" daemon \
    --listen /ip4/0.0.0.0/tcp/0 --listen /ip4/0.0.0.0/udp/0/quic-v1 "$@"
  lab_wait_log "$name" 'running; API on' 20
}

json_field() { # JSON EXPR (python expression over `v`)
  "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# wait_json NODE HOME EXPR SECS: polls `status --json` until EXPR (over v) is true.
wait_status() {
  local node=$1 home=$2 expr=$3 secs=$4 end st
  end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    st=$(pb "$node" "$home" status --json 2>/dev/null) &&
      [ "$(json_field "$st" "$expr")" = True ] && return 0
    sleep 0.2
  done
  pb "$node" "$home" status --json 2>&1 | head -c 2000
  return 1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# get NODE NAME LINK ARGS...: `peerbox get --json` in NODE into $RUN/NAME; prints the
# JSON summary (with "connection") and checks the bytes.
get() {
  local node=$1 name=$2 link=$3 out
  shift 3
  out=$(lab_exec "$node" env RUST_LOG="${PB_GET_LOG:-warn}" timeout 120 "$PEERBOX" --home "$RUN/$name-home" get --json "$@" "$link" "$RUN/$name" 2>"$LAB_LOG_DIR/$name.err") || {
    cat "$LAB_LOG_DIR/$name.err"
    return 1
  }
  echo "$out"
  [ "$(sha "$RUN/$name/$(basename "$FILE")")" = "$(sha "$FILE")" ] || { echo "the bytes differ"; return 1; }
}

scenario() { # NAME NAT_A NAT_B EXPECTED_KIND
  SCENARIO=$1
  local expected=$4 t0=$SECONDS out kind
  echo "== $1 (nat-a $2, nat-b $3)"
  export LAB_LOG_DIR=$LOGROOT/$1
  lab_up --nat-a "$2" --nat-b "$3" || { bad "lab_up"; return 1; }
  RUN=$LAB_RUN_DIR/pb
  mkdir -p "$RUN"
  FILE=$RUN/clip.bin
  head -c $((8 << 20)) /dev/urandom >"$FILE"

  daemon relay relay --relay --no-mdns || { bad "relay daemon starts"; return 1; }
  local rst rid rtcp
  rst=$(pb relay "$RUN/relay" status --json) || { bad "relay status" "$rst"; return 1; }
  rid=$(json_field "$rst" 'v["peer_id"]')
  rtcp=$(json_field "$rst" '[a for a in v["listen"] if a.startswith("/ip4/10.200.0.1/tcp/")][0]')
  BOOT="$rtcp/p2p/$rid"
  ok "relay up at $BOOT"

  daemon a1 alice --bootstrap "$BOOT" || { bad "Alice's daemon starts"; return 1; }
  if wait_status a1 "$RUN/alice" 'len(v["network"]["relays"]) > 0' 20 >/dev/null; then
    ok "Alice holds a relay reservation"
  else
    bad "Alice holds a relay reservation" "$(tail -n 20 "$LAB_LOG_DIR/alice.log")"
    return 1
  fi
  LINK=$(pb a1 "$RUN/alice" share "$FILE" 2>/dev/null | grep '^peerbox://') || { bad "Alice shares a file"; return 1; }
  ok "Alice shared 8 MiB"

  # 1. Same LAN, link addresses ignored: only mDNS can find Alice.
  if out=$(get a2 lan "$LINK" --no-link-addrs); then
    kind=$(json_field "$out" 'v["connection"]')
    if [ "$kind" = direct ]; then ok "1. a2 found Alice by mDNS and fetched directly"; else bad "1. a2 reached Alice directly (got $kind)"; fi
  else
    bad "1. a2 finds Alice by mDNS and fetches" "$out"
  fi

  # 2. Across both NATs through the relay, then (maybe) a hole punch.
  local t=$EPOCHREALTIME
  if out=$(get b1 wan "$LINK" --no-mdns --bootstrap "$BOOT"); then
    kind=$(json_field "$out" 'v["connection"]')
    REPORT+=("$1: Bob reached Alice $kind ($(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s for 8 MiB)")
    if [ "$kind" = "$expected" ]; then ok "2. b1 fetched across both NATs: $kind"; else bad "2. b1 across both NATs expected $expected, got $kind" "$(cat "$LAB_LOG_DIR/wan.err")"; fi
  else
    bad "2. b1 fetches across both NATs" "$out"
  fi

  # 3. Every address in the link is stale: the DHT finds Alice.
  if out=$(get b1 dht "$LINK" --no-mdns --no-link-addrs --bootstrap "$BOOT"); then
    ok "3. a link with no usable address resolved through the DHT ($(json_field "$out" 'v["connection"]'))"
  else
    bad "3. a stale link resolves through the DHT" "$out"
  fi

  # 4. Friends who downloaded serve too: a download pulls from three seeders.
  if [ "$1" = cone ]; then
    local f ok4=1
    for f in "a2 carol" "b1 dave"; do
      # shellcheck disable=SC2086 # two words: node and name
      set -- $f
      daemon "$1" "$2" --bootstrap "$BOOT" || { bad "4. $2's daemon starts"; ok4=0; continue; }
      pb "$1" "$RUN/$2" download "$LINK" "$RUN/$2-got" >/dev/null || { bad "4. $2 queues the download"; ok4=0; continue; }
      wait_status "$1" "$RUN/$2" 'v["transfers"] and v["transfers"][0]["state"] == "done"' 60 >/dev/null ||
        { bad "4. $2's download finishes"; ok4=0; }
      # Serving starts with the download's end; being found takes the DHT's word.
      wait_status "$1" "$RUN/$2" 'v["network"]["announced"] >= 1' 30 >/dev/null ||
        { bad "4. $2 announces what it downloaded in the DHT"; ok4=0; }
    done
    set -- cone
    # Home uplinks, capped so that every seeder is still busy when the last one
    # joins. Dave shares b1 (and so NAT B) with the getter: no hole punch works
    # between them, so his session waits out the 3 s punch grace and then goes
    # through the relay. At 4 Mbit/s, Alice and Carol alone need 8 s for 8 MiB.
    local n
    for n in a1 a2 b1; do
      lab_exec "$n" tc qdisc replace dev eth0 root tbf rate 4mbit burst 32kb latency 400ms ||
        { bad "4. cap $n's upload with tc tbf (kernel sch_tbf)"; ok4=0; }
    done
    # Once Dave and the getter find each other's addresses on b1, their traffic
    # goes over b1's loopback, past tc: uncapped, Dave sent all 8 MiB before the
    # others' sessions opened. His own upload limit caps that path too.
    pb b1 "$RUN/dave" settings --upload-limit 512KiB --limit-lan true >/dev/null ||
      { bad "4. cap dave's upload with peerbox settings"; ok4=0; }
    if ((ok4)) && out=$(get b1 swarm "$LINK" --no-mdns --bootstrap "$BOOT"); then
      local served
      served=$(json_field "$out" 'len([b for b in v["sources"].values() if b > 0])')
      REPORT+=("$1: three seeders served $(json_field "$out" '", ".join("%.1f MiB" % (b / 1048576) for b in v["sources"].values())')")
      if [ "$served" = 3 ]; then ok "4. a download pulled blocks from all three seeders"; else bad "4. three seeders each served some (only $served did)" "$out"; fi
    elif ((ok4)); then
      bad "4. a download from three seeders" "$out"
    fi
    for n in a1 a2 b1; do lab_exec "$n" tc qdisc del dev eth0 root 2>/dev/null || true; done
  fi

  # 5. Delay and loss on the public segment.
  lab_netem 50ms 2% >/dev/null || { bad "lab_netem 50ms 2%"; return 1; }
  t=$EPOCHREALTIME
  if out=$(get b1 lossy "$LINK" --no-mdns --bootstrap "$BOOT"); then
    REPORT+=("$1: with 50 ms and 2 % loss: $(json_field "$out" 'v["connection"]'), $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s for 8 MiB")
    ok "5. with 50 ms delay and 2 % loss the transfer completes and verifies"
  else
    bad "5. transfer under 50 ms delay and 2 % loss" "$out"
  fi
  lab_netem off >/dev/null || true

  lab_down
  ok "$1 done in $((SECONDS - t0)) s"
}

lab_require || exit 1
case "${1:-all}" in
  cone) scenario cone cone cone hole-punched ;;
  symmetric) scenario symmetric symmetric symmetric relayed ;;
  all)
    scenario cone cone cone hole-punched
    scenario symmetric symmetric symmetric relayed
    ;;
  *) echo "usage: $0 [cone|symmetric]" >&2; exit 2 ;;
esac

echo
for r in "${REPORT[@]}"; do echo "report: $r"; done
echo "NAT lab: $PASSED passed, $FAILED failed (logs in $LOGROOT)"
if ((FAILED)); then
  printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
rm -rf "$LOGROOT"
