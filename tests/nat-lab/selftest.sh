#!/usr/bin/env bash
# Self-test of the NAT lab (lab.sh) with plain tools: ping and python3 probes
# (nettool.py), no Peerbox. Needs root. Exit 0 when every check passed.
#
#   bash tests/nat-lab/selftest.sh            # all scenarios
#   bash tests/nat-lab/selftest.sh cone       # only cone/cone (also: symmetric, mixed, traps)
#
# Scenarios:
#   cone/cone            LAN (ping, UDP, mDNS multicast), NAT seen by the relay, private
#                        addresses unreachable, endpoint-independent mapping, UDP hole
#                        punching a1<->b1 succeeds, netem delay/loss, bulk TCP under delay
#   symmetric/symmetric  mapping differs per destination, hole punching fails
#   cone/symmetric       hole punching fails (port-restricted cone vs symmetric)
#   traps                lab_down runs from the EXIT trap and on SIGTERM
# After each: no namespace, state folder or process of the lab is left, and the host's
# links, namespaces and nftables ruleset are as before the test.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/nat-lab/lab.sh
. "$HERE/lab.sh"

PY=$(_lab_python)
TOOL="$HERE/nettool.py"
RELAY=10.200.0.1
LOGROOT=$(mktemp -d /tmp/pblab-selftest.XXXXXX)
PASSED=0
FAILED=0
FAILURES=()

ok() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
bad() {
  FAILED=$((FAILED + 1))
  FAILURES+=("[$SCENARIO] $1")
  printf '  FAIL  %s\n' "$1"
  [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/        | /'
}
# check DESC CMD...: passes when CMD exits 0.
check() {
  local desc=$1 out t=$EPOCHREALTIME
  shift
  if out=$("$@" 2>&1); then ok "$desc$(took "$t")"; else bad "$desc$(took "$t")" "$out"; fi
}
took() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{ d = b - a; if (d >= 0.5) printf " [%.1fs]", d }'; }
# check_not DESC CMD...: passes when CMD fails.
check_not() {
  local desc=$1 out t=$EPOCHREALTIME
  shift
  if out=$("$@" 2>&1); then bad "$desc (it succeeded)" "$out"; else ok "$desc$(took "$t")"; fi
}

host_snapshot() {
  ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort
  # Other labs (a concurrent run) come and go: each scenario checks its own namespaces.
  ip netns list | awk '{print $1}' | grep -Ev '^pb([0-9a-f]{4}-|probe[0-9]+$)' | sort
  nft list ruleset 2>/dev/null | md5sum
}

start_scenario() { # NAME NAT_A NAT_B
  SCENARIO=$1
  echo "== $1 (nat-a $2, nat-b $3)"
  export LAB_LOG_DIR=$LOGROOT/$1
  local t0=$SECONDS
  lab_up --nat-a "$2" --nat-b "$3" || { bad "lab_up"; return 1; }
  ok "lab_up --nat-a $2 --nat-b $3 ($LAB_PREFIX, $((SECONDS - t0))s)"
  lab_bg relay whoami "$PY" -u "$TOOL" whoami-server 3478 3479
  lab_wait_log whoami '^ready' || { bad "whoami server on the relay"; return 1; }
}

end_scenario() {
  local prefix=$LAB_PREFIX run=$LAB_RUN_DIR pids p left=""
  pids=$(for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-"); do ip netns pids "$ns"; done)
  lab_down
  lab_down # idempotent
  ! ip netns list | grep "^$prefix-" >/dev/null || left+="namespaces: $(ip netns list | grep "^$prefix-" | tr '\n' ' ') "
  [ ! -e "$run" ] || left+="state folder $run "
  for p in $pids; do lab_alive "$p" && left+="process $p "; done
  if [ -z "$left" ]; then ok "lab_down left nothing of $prefix (namespaces, links, nft tables, processes, state)"; else bad "lab_down left: $left"; fi
}

whoami_from() { # NODE EXPECTED_IP: TCP to the relay; both ends must see EXPECTED_IP
  local seen
  seen=$(lab_exec "$1" "$PY" "$TOOL" whoami-tcp "$RELAY" 3478) || return 1
  echo "$1 -> relay: relay saw $seen"
  [[ $seen == "$2":* ]] || return 1
  grep -q "tcp 3478 from ${seen}\$" "$LAB_LOG_DIR/whoami.log" || { echo "not in the relay's log"; return 1; }
}

mapping_is() { # NODE same|different
  local line
  line=$(lab_exec "$1" "$PY" "$TOOL" mapping "$RELAY" 3478 3479) || return 1
  echo "$line"
  [[ $line == *"($2)" ]]
}

punch_log() { cat "$LAB_LOG_DIR/punch-a1.log" "$LAB_LOG_DIR/punch-b1.log" 2>/dev/null; }
punch() { # 0 when both a1 and b1 received the other's datagram
  local pa pb ra rb session=s$RANDOM$RANDOM
  lab_bg a1 punch-a1 "$PY" -u "$TOOL" punch "$RELAY" 3478 a1 b1 4 "$session"
  pa=$LAB_LAST_PID
  lab_bg b1 punch-b1 "$PY" -u "$TOOL" punch "$RELAY" 3478 b1 a1 4 "$session"
  pb=$LAB_LAST_PID
  wait "$pa"; ra=$?
  wait "$pb"; rb=$?
  punch_log
  [ "$ra" = 0 ] && [ "$rb" = 0 ]
}

unicast_lan() { # FROM TO_NODE
  local to_ip
  to_ip=$(lab_ip "$2")
  lab_bg "$2" "udp-$1-$2" "$PY" -u "$TOOL" udp-recv "$to_ip" 5000 3
  local pid=$LAB_LAST_PID
  lab_wait_log "udp-$1-$2" '^ready' 5 || return 1
  lab_exec "$1" "$PY" "$TOOL" udp-send "$to_ip" 5000 "hello from $1"
  wait "$pid" || { cat "$LAB_LOG_DIR/udp-$1-$2.log"; return 1; }
  grep got "$LAB_LOG_DIR/udp-$1-$2.log"
}

multicast_lan() { # FROM TO: mDNS group 224.0.0.251:5353 on LAN A
  lab_bg "$2" "mcast-$1-$2" "$PY" -u "$TOOL" mcast-recv 224.0.0.251 5353 "$(lab_ip "$2")" 5
  local pid=$LAB_LAST_PID
  lab_wait_log "mcast-$1-$2" '^ready' 5 || return 1
  lab_exec "$1" "$PY" "$TOOL" mcast-send 224.0.0.251 5353 "$(lab_ip "$1")" "mdns-like from $1" 5
  wait "$pid" || { cat "$LAB_LOG_DIR/mcast-$1-$2.log"; return 1; }
  grep got "$LAB_LOG_DIR/mcast-$1-$2.log"
}

rtt() { # NODE COUNT INTERVAL -> "loss% min avg max"
  lab_exec "$1" ping -q -n -c "$2" -i "$3" -W 2 "$RELAY" 2>&1 | awk '
    /packet loss/ { for (i = 1; i <= NF; i++) if ($i ~ /%$/) loss = $i }
    /^rtt/ { split($4, v, "/"); min = v[1]; avg = v[2]; max = v[3] }
    END { print loss, min, avg, max }'
}

relay_reaches_lan() { # 0 if the relay reaches a1's private address
  lab_exec relay ping -c1 -W1 192.168.1.10 2>&1 && return 0
  # Even with a route via nata's public address, nata drops unsolicited inbound.
  lab_exec relay ip route add 192.168.1.0/24 via 10.200.0.11
  local r=1
  lab_exec relay ping -c1 -W1 192.168.1.10 2>&1 && r=0
  lab_exec relay ip route del 192.168.1.0/24 via 10.200.0.11
  return $r
}

scenario_cone() {
  start_scenario cone/cone cone cone || { lab_down; return; }
  check "a1 -> a2 ping on LAN A" lab_exec a1 ping -c2 -i 0.2 -W1 -q 192.168.1.11
  check "a2 -> a1 ping on LAN A" lab_exec a2 ping -c2 -i 0.2 -W1 -q 192.168.1.10
  check "a1 -> a2 UDP datagram on LAN A" unicast_lan a1 a2
  check "a1 -> a2 multicast 224.0.0.251:5353 (mDNS group)" multicast_lan a1 a2
  check "a2 -> a1 multicast 224.0.0.251:5353 (mDNS group)" multicast_lan a2 a1
  check "a1 -> relay ping" lab_exec a1 ping -c2 -i 0.2 -W1 -q "$RELAY"
  check "a1 -> relay TCP: relay sees 10.200.0.11 (NAT A)" whoami_from a1 10.200.0.11
  check "a2 -> relay TCP: relay sees 10.200.0.11 (NAT A)" whoami_from a2 10.200.0.11
  check "b1 -> relay TCP: relay sees 10.200.0.12 (NAT B)" whoami_from b1 10.200.0.12
  check_not "relay -> 192.168.1.10 fails (not routed; dropped by nata even with a route)" relay_reaches_lan
  check_not "b1 -> 192.168.1.10 fails (private address)" lab_exec b1 ping -c1 -W1 192.168.1.10
  check "a1: one socket, same public ip:port towards two relay ports (cone)" mapping_is a1 same
  check "b1: one socket, same public ip:port towards two relay ports (cone)" mapping_is b1 same
  check "UDP hole punch a1 <-> b1 succeeds (cone/cone)" punch
  CONE_PUNCH=$(punch_log)

  local base
  base=$(rtt a1 5 0.2)
  check "baseline a1 -> relay RTT < 10 ms (loss min avg max: $base)" awk -v m="$(echo "$base" | cut -d' ' -f2)" 'BEGIN{exit !(m != "" && m < 10)}'
  check "lab_netem 50ms 2%" lab_netem 50ms 2%
  NETEM_RTT=$(rtt a1 10 0.2)
  check "with netem a1 -> relay RTT >= 50 ms (loss min avg max: $NETEM_RTT)" awk -v m="$(echo "$NETEM_RTT" | cut -d' ' -f2)" 'BEGIN{exit !(m != "" && m >= 50)}'
  NETEM_LOSS=$(rtt a1 300 0.005)
  check "with netem 2% per crossing, 300 pings lose 1..36 (about 4%: $NETEM_LOSS)" awk -v l="$(echo "$NETEM_LOSS" | cut -d' ' -f1 | tr -d %)" 'BEGIN{exit !(l+0 > 0 && l+0 <= 12)}'
  check "lab_netem 50ms 0 (delay only)" lab_netem 50ms 0
  lab_bg relay sink "$PY" -u "$TOOL" sink 5001
  lab_wait_log sink '^ready' 5
  NETEM_BULK=$(lab_exec a1 "$PY" "$TOOL" source "$RELAY" 5001 8000000 2>&1)
  check "8 MB TCP a1 -> relay through the 50 ms delay: $NETEM_BULK" grep -q "ack=done" <<<"$NETEM_BULK"
  check "lab_netem off" lab_netem off
  base=$(rtt a1 5 0.2)
  check "after lab_netem off a1 -> relay RTT < 10 ms again ($base)" awk -v m="$(echo "$base" | cut -d' ' -f2)" 'BEGIN{exit !(m != "" && m < 10)}'
  check "UDP hole punch a1 <-> b1 still succeeds after netem" punch
  end_scenario
}

scenario_symmetric() {
  start_scenario symmetric/symmetric symmetric symmetric || { lab_down; return; }
  check "a1 -> relay TCP: relay sees 10.200.0.11" whoami_from a1 10.200.0.11
  check "b1 -> relay TCP: relay sees 10.200.0.12" whoami_from b1 10.200.0.12
  check "a1: one socket, different public ports towards two relay ports (symmetric)" mapping_is a1 different
  check "b1: one socket, different public ports towards two relay ports (symmetric)" mapping_is b1 different
  check_not "UDP hole punch a1 <-> b1 fails (symmetric/symmetric)" punch
  SYM_PUNCH=$(punch_log)
  end_scenario
}

scenario_mixed() {
  start_scenario cone/symmetric cone symmetric || { lab_down; return; }
  check "a1: same mapping (cone)" mapping_is a1 same
  check "b1: different mapping (symmetric)" mapping_is b1 different
  check_not "UDP hole punch a1 <-> b1 fails (port-restricted cone vs symmetric)" punch
  MIXED_PUNCH=$(punch_log)
  end_scenario
}

scenario_traps() {
  SCENARIO=traps
  echo "== traps"
  local f="$LOGROOT/trap-prefix" p pid sleeper
  # EXIT: a script that brings a lab up and exits (with an error) leaves nothing.
  LAB_LOG_DIR='' bash -c '. "$1"; lab_up >/dev/null 2>&1; echo "$LAB_PREFIX" >"$2"; exit 3' _ "$HERE/lab.sh" "$f"
  p=$(cat "$f")
  if [ -n "$p" ] && ! ip netns list | grep "^$p-" >/dev/null && [ ! -e "$LAB_STATE_ROOT/$p" ]; then
    ok "EXIT trap: lab $p gone after its script exited"
  else bad "EXIT trap: lab '$p' left: $(ip netns list | grep "^$p-" | tr '\n' ' ')"; fi
  # SIGTERM while waiting.
  rm -f "$f"
  LAB_LOG_DIR='' bash -c '. "$1"; lab_up >/dev/null 2>&1; sleep 30 & echo "$LAB_PREFIX $!" >"$2"; wait' _ "$HERE/lab.sh" "$f" &
  pid=$!
  for _ in $(seq 100); do [ -s "$f" ] && break; sleep 0.1; done
  read -r p sleeper <"$f"
  kill -TERM "$pid"
  wait "$pid"
  kill "$sleeper" 2>/dev/null
  if [ -n "$p" ] && ! ip netns list | grep "^$p-" >/dev/null && [ ! -e "$LAB_STATE_ROOT/$p" ]; then
    ok "SIGTERM: lab $p gone after its script was killed"
  else bad "SIGTERM: lab '$p' left: $(ip netns list | grep "^$p-" | tr '\n' ' ')"; fi
}

T0=$SECONDS
BEFORE=$(host_snapshot)
SCENARIO=require
lab_require
only=${1:-all}
CONE_PUNCH="" SYM_PUNCH="" MIXED_PUNCH="" NETEM_RTT="" NETEM_LOSS="" NETEM_BULK=""
case $only in all | cone) scenario_cone ;; esac
case $only in all | symmetric) scenario_symmetric ;; esac
case $only in all | mixed) scenario_mixed ;; esac
case $only in all | traps) scenario_traps ;; esac
SCENARIO=host
AFTER=$(host_snapshot)
if [ "$BEFORE" = "$AFTER" ]; then ok "host links, namespaces and nft ruleset unchanged"
else bad "host state changed" "$(diff <(echo "$BEFORE") <(echo "$AFTER"))"; fi

echo
echo "== summary ($((SECONDS - T0))s, netem via $LAB_NETEM_IMPL)"
[ -z "$CONE_PUNCH" ] || printf 'cone/cone punch:\n%s\n' "$CONE_PUNCH" | sed '2,$s/^/  /'
[ -z "$SYM_PUNCH" ] || printf 'symmetric/symmetric punch:\n%s\n' "$SYM_PUNCH" | sed '2,$s/^/  /'
[ -z "$MIXED_PUNCH" ] || printf 'cone/symmetric punch:\n%s\n' "$MIXED_PUNCH" | sed '2,$s/^/  /'
[ -z "$NETEM_RTT" ] || echo "netem 50ms 2%: ping loss/min/avg/max $NETEM_RTT; 300 fast pings: $NETEM_LOSS"
[ -z "$NETEM_BULK" ] || echo "netem 50ms 0%: $NETEM_BULK"
echo "passed $PASSED, failed $FAILED"
if ((FAILED)); then
  printf '  %s\n' "${FAILURES[@]}"
  echo "logs kept in $LOGROOT"
  exit 1
fi
rm -rf "$LOGROOT"
