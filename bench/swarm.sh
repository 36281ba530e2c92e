#!/usr/bin/env bash
# Swarm download speed-up: one link fetched from 1, 3 and 10 seeders whose uploads are
# each capped (tc tbf, like a home upload link), on a bridge of network namespaces this
# script makes and removes. Seeders are daemons that downloaded the link (uncapped, before
# the measurement) and serve it to others holding it; the getter finds them in the DHT.
# Needs root. Usage: bench/swarm.sh [--size MiB] [--rate mbit] [--out FILE.md]
# Binary: $PEERBOX_BIN (default: target/release/peerbox, built by bench/run).
set -euo pipefail

SIZE_MIB=64
RATE_MBIT=40
OUT=""
while (($#)); do
  case "$1" in
    --size) SIZE_MIB=$2; shift 2 ;;
    --rate) RATE_MBIT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--size MiB] [--rate mbit] [--out FILE.md]" >&2; exit 2 ;;
  esac
done
[[ $SIZE_MIB =~ ^[0-9]+$ && $RATE_MBIT =~ ^[0-9]+$ ]] || { echo "--size and --rate take whole numbers" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, tc)" >&2; exit 1; }
for c in ip tc python3 sha256sum; do command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERBOX=${PEERBOX_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/peerbox}
[ -x "$PEERBOX" ] || { echo "peerbox binary missing at $PEERBOX (bench/run builds it; or set PEERBOX_BIN)" >&2; exit 1; }

P=pbsw$RANDOM
WORK=$(mktemp -d /tmp/peerbox-swarm.XXXXXX)
NODES=(boot get s0 s1 s2 s3 s4 s5 s6 s7 s8 s9)
cleanup() {
  for n in "${NODES[@]}" inet; do
    ip netns pids "$P-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.3
  for n in "${NODES[@]}" inet; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$P-inet"
ip -n "$P-inet" link add br0 type bridge
ip -n "$P-inet" link set br0 up
i=1
for n in "${NODES[@]}"; do
  ip netns add "$P-$n"
  ip -n "$P-$n" link set lo up
  ip -n "$P-inet" link add "v$i" type veth peer name eth0 netns "$P-$n"
  ip -n "$P-inet" link set "v$i" master br0 up
  ip -n "$P-$n" addr add "10.201.0.$i/24" dev eth0
  ip -n "$P-$n" link set eth0 up
  i=$((i + 1))
done

pb() { local n=$1; shift; ip netns exec "$P-$n" "$PEERBOX" --home "$WORK/$n" "$@"; }
daemon() {
  local n=$1; shift
  ip netns exec "$P-$n" "$PEERBOX" --home "$WORK/$n" daemon --no-mdns --listen /ip4/0.0.0.0/tcp/0 "$@" \
    >"$WORK/$n.log" 2>&1 </dev/null &
  for _ in $(seq 200); do grep -q 'running; API on' "$WORK/$n.log" 2>/dev/null && return 0; sleep 0.05; done
  echo "daemon $n did not start:" >&2; cat "$WORK/$n.log" >&2; return 1
}
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
wait_done() {
  for _ in $(seq 600); do
    [ "$(field "$(pb "$1" transfers --json)" 'v[0]["state"] if v else ""')" = "done" ] && return 0
    sleep 0.1
  done
  echo "$1's download did not finish" >&2; return 1
}

daemon boot --relay
st=$(pb boot status --json)
BOOT="$(field "$st" '[a for a in v["listen"] if a.startswith("/ip4/10.201.")][0]')/p2p/$(field "$st" 'v["peer_id"]')"
daemon s0 --bootstrap "$BOOT"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/file.bin"
LINK=$(pb s0 share "$WORK/file.bin" 2>/dev/null | grep '^peerbox://')

cap() { ip netns exec "$P-$1" tc qdisc replace dev eth0 root tbf rate "${RATE_MBIT}mbit" burst 64kb latency 100ms; }
cap s0
run_get() { # SEEDERS
  local t0 t1 out
  t0=$EPOCHREALTIME
  out=$(pb get get --json --no-mdns --bootstrap "$BOOT" "$LINK" "$WORK/got-$1")
  t1=$EPOCHREALTIME
  [ "$(sha256sum <"$WORK/got-$1/file.bin")" = "$(sha256sum <"$WORK/file.bin")" ] || { echo "bytes differ" >&2; exit 1; }
  SECS[$1]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  USED[$1]=$(field "$out" 'len(v["sources"])')
  rm -rf "$WORK/got-$1" "$WORK/get"
}
declare -A SECS USED
add_seeders() { # FROM TO (inclusive): uncapped download, then capped
  local k
  for k in $(seq "$1" "$2"); do
    daemon "s$k" --bootstrap "$BOOT"
    pb "s$k" download "$LINK" "$WORK/s$k-got" >/dev/null
    wait_done "s$k"
    cap "s$k"
  done
}

run_get 1
add_seeders 1 2
run_get 3
add_seeders 3 9
run_get 10

{
  echo "Swarm download of ${SIZE_MIB} MiB, each seeder's upload capped at ${RATE_MBIT} Mbit/s (tc tbf), getter uncapped:"
  echo
  echo "| seeders | sources used | seconds | speed-up |"
  echo "|---|---|---|---|"
  for k in 1 3 10; do
    echo "| $k | ${USED[$k]} | ${SECS[$k]} | $(awk -v a="${SECS[1]}" -v b="${SECS[$k]}" 'BEGIN{printf "%.1f×", a/b}') |"
  done
} | tee "${OUT:-/dev/null}"
