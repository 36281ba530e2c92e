# shellcheck shell=bash
# Peerbox NAT lab: a small "internet" built from network namespaces, veth pairs,
# Linux bridges and nftables masquerade, for tests that need real NAT between peers.
# Source it (bash), then call the lab_* functions. Needs root. Touches nothing outside
# the namespaces it creates: every veth is created inside them, never on the host.
#
#   . tests/nat-lab/lab.sh
#   lab_require                                   # checks (and installs) what it needs
#   lab_up --nat-a cone --nat-b symmetric         # builds it; lab_down runs at exit
#   lab_exec a1 ping -c1 10.200.0.1               # a command inside a node
#   lab_bg relay relayd peerbox ...               # a daemon inside a node (killed by lab_down)
#   lab_netem 50ms 2%                             # delay + loss on the public segment
#   lab_down                                      # idempotent
#
# Topology (namespace names are "$LAB_PREFIX-NODE", LAB_PREFIX e.g. "pb3f9a", per run):
#
#                      inet: bridge br0 = public segment 10.200.0.0/24
#        +-------------------+--------------------+
#   relay 10.200.0.1    nata pub 10.200.0.11    natb pub 10.200.0.12
#   (eth0)                   | masquerade            | masquerade
#                       nata br0 192.168.1.1     natb br0 192.168.2.1
#                        |            |                 |
#                   a1 .1.10      a2 .1.11          b1 .2.10       (eth0, default via .1)
#
# Interface names inside the nodes: hosts (a1 a2 b1) and relay use eth0; routers
# (nata natb) use "pub" (public side) and "br0" (LAN bridge, ports named after the
# hosts); inet has br0 with ports "relay", "nata", "natb". Every node has lo up.
# LAN bridges have multicast snooping off, so mDNS (224.0.0.251) reaches every host
# on the LAN. IPv6 is left as the kernel sets it (link-local only, no routing).
#
# NAT kinds (per router, lab_up --nat-a/--nat-b):
#   cone       plain `masquerade`: keeps the source port when it is free, so one
#              socket gets the same public ip:port towards every peer (endpoint-
#              independent mapping; filtering is per remote ip:port, i.e. a
#              "port-restricted cone"). UDP hole punching works.
#   symmetric  `masquerade fully-random`: every new (src, dst) flow gets a random
#              public port, so the port a peer learns via the relay is useless to
#              another peer: hole punching fails and traffic must be relayed.
# Both routers drop unsolicited inbound packets on their public side (except ICMP
# echo to the router itself), like a home router; nothing is port-forwarded.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO=$(cd "$LAB_DIR/../.." && pwd)
LAB_STATE_ROOT=${LAB_STATE_ROOT:-/tmp/peerbox-nat-lab}
LAB_NODES=(inet relay nata natb a1 a2 b1)
LAB_HOSTS=(a1 a2 b1)
LAB_PUBLIC_NODES=(relay nata natb)
# shellcheck disable=SC2034 # for callers
LAB_PUBLIC_NET=10.200.0.0/24
declare -gA LAB_ADDR=([relay]=10.200.0.1 [nata]=10.200.0.11 [natb]=10.200.0.12
  [a1]=192.168.1.10 [a2]=192.168.1.11 [b1]=192.168.2.10)
declare -gA LAB_LAN_ADDR=([nata]=192.168.1.1 [natb]=192.168.2.1)
declare -gA LAB_ROUTER=([a1]=nata [a2]=nata [b1]=natb)
declare -gA LAB_PUBLIC_IF=([relay]=eth0 [nata]=pub [natb]=pub)
# Debian packages that provide the commands the lab runs.
declare -gA LAB_CMD_DEB=([ip]=iproute2 [tc]=iproute2 [bridge]=iproute2 [nft]=nftables
  [iptables-nft]=iptables [iptables-legacy]=iptables [ping]=iputils-ping [python3]=python3)
LAB_PYTHON=${LAB_PYTHON:-}
LAB_NETEM_IMPL=${LAB_NETEM_IMPL:-auto} # auto | tc | nfqueue (see lab_netem)
LAB_IPTABLES=${LAB_IPTABLES:-}         # set by lab_require: iptables-nft or iptables-legacy

_lab_log() { echo "nat-lab: $*" >&2; }

# Fatal error: exits the calling script (returns 1 instead in an interactive shell).
_lab_die() {
  echo "nat-lab: ERROR: $*" >&2
  case $- in *i*) return 1 ;; esac
  exit 1
}

_lab_node_ok() {
  local n
  for n in "${LAB_NODES[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

# lab_ns NODE: the network namespace name of NODE in the current lab.
lab_ns() {
  _lab_node_ok "${1:-}" || { echo "nat-lab: unknown node '${1:-}' (nodes: ${LAB_NODES[*]})" >&2; return 2; }
  [ -n "${LAB_PREFIX:-}" ] || { echo "nat-lab: no lab is up (lab_up first)" >&2; return 2; }
  echo "$LAB_PREFIX-$1"
}

# lab_exec NODE CMD...: run CMD inside NODE (ip netns exec). Exit status is CMD's.
lab_exec() {
  local ns
  ns=$(lab_ns "${1:-}") || return $?
  shift
  ip netns exec "$ns" "$@"
}

# lab_ip NODE: NODE's own address (routers: their public address).
lab_ip() {
  if ! _lab_node_ok "${1:-}" || [ -z "${LAB_ADDR[$1]:-}" ]; then
    echo "nat-lab: node '${1:-}' has no address" >&2
    return 2
  fi
  echo "${LAB_ADDR[$1]}"
}

# lab_public_ip NODE: the address the public segment sees for NODE (a host's router).
lab_public_ip() {
  local n=${1:-}
  [ -n "${LAB_ROUTER[$n]:-}" ] && n=${LAB_ROUTER[$n]}
  lab_ip "$n"
}

# lab_lan_ip ROUTER: a router's LAN (gateway) address.
lab_lan_ip() {
  [ -n "${LAB_LAN_ADDR[${1:-}]:-}" ] || { echo "nat-lab: '${1:-}' is not a router" >&2; return 2; }
  echo "${LAB_LAN_ADDR[$1]}"
}

# lab_nat_kind a|b: the NAT kind lab_up gave that router.
lab_nat_kind() { cat "$LAB_RUN_DIR/nat-$1" 2>/dev/null; }

_lab_python() {
  if [ -z "$LAB_PYTHON" ]; then
    if [ -x /usr/bin/python3 ]; then LAB_PYTHON=/usr/bin/python3; else LAB_PYTHON=$(command -v python3 || true); fi
  fi
  [ -n "$LAB_PYTHON" ] && echo "$LAB_PYTHON"
}

# lab_py NODE SCRIPT.py ARGS...: run a python script of this folder inside NODE.
lab_py() {
  local node=$1 script=$2
  shift 2
  lab_exec "$node" "$(_lab_python)" -u "$LAB_DIR/$script" "$@"
}

# lab_bg NODE NAME CMD...: start CMD in the background inside NODE; stdout+stderr go
# to "$LAB_LOG_DIR/NAME.log". Sets LAB_LAST_PID (a child of this shell: `wait` works;
# don't call lab_bg inside $(...)). lab_stop NAME kills it; lab_down kills every
# process in the lab's namespaces anyway.
lab_bg() {
  local node=$1 name=$2 ns
  shift 2
  ns=$(lab_ns "$node") || return $?
  mkdir -p "$LAB_LOG_DIR" "$LAB_RUN_DIR/pids"
  : >"$LAB_LOG_DIR/$name.log" # now, so lab_wait_log never reads an old run's lines
  ip netns exec "$ns" "$@" >>"$LAB_LOG_DIR/$name.log" 2>&1 </dev/null &
  LAB_LAST_PID=$!
  echo "$LAB_LAST_PID" >"$LAB_RUN_DIR/pids/$name"
}

# lab_alive PID: true while PID runs (a zombie, dead but not yet reaped, counts as gone).
lab_alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st%% *}" != Z ] && [ "${st%% *}" != X ]
}

# lab_stop NAME: kill (TERM, then KILL after 3 s) what lab_bg NAME started.
lab_stop() {
  local f="$LAB_RUN_DIR/pids/$1" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  rm -f "$f"
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 60; i++)); do lab_alive "$pid" || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# lab_wait_log NAME PATTERN [SECONDS=10]: wait until $LAB_LOG_DIR/NAME.log has a line
# matching PATTERN (grep -E). Returns 1 on timeout (and prints the log).
lab_wait_log() {
  local f="$LAB_LOG_DIR/$1.log" pat=$2 t=${3:-10} i
  for ((i = 0; i < t * 20; i++)); do
    grep -qE -- "$pat" "$f" 2>/dev/null && return 0
    sleep 0.05
  done
  _lab_log "timed out after ${t}s waiting for /$pat/ in $f:"
  sed 's/^/  | /' "$f" >&2 2>/dev/null || true
  return 1
}

# --------------------------------------------------------------------------- require

# lab_require: checks every capability the lab needs; installs missing Debian packages
# (iproute2 nftables iptables iputils-ping python3) the way scripts/deps.sh does. If
# something still lacks, prints exactly what and how to get it, and exits non-zero.
# Sets LAB_NETEM_IMPL to "tc" (kernel sch_netem) or "nfqueue" (netem.py fallback).
lab_require() {
  [ "${_LAB_REQUIRED:-}" = 1 ] && return 0
  local problems=() cmd debs=() p
  if [ "$(id -u)" -ne 0 ]; then
    problems+=("root: network namespaces, veths and nftables need root (CAP_SYS_ADMIN + CAP_NET_ADMIN): run as root, e.g. sudo -E $0")
  fi
  for cmd in ip tc bridge nft iptables-nft iptables-legacy ping python3; do
    if [ "$cmd" = python3 ]; then _lab_python >/dev/null && continue; fi
    command -v "$cmd" >/dev/null 2>&1 || debs+=("${LAB_CMD_DEB[$cmd]}")
  done
  if ((${#debs[@]})) && [ "$(id -u)" -eq 0 ]; then
    # shellcheck source=/dev/null
    declare -F peerbox_need_debs >/dev/null || . "$LAB_REPO/scripts/deps.sh"
    mapfile -t debs < <(printf '%s\n' "${debs[@]}" | sort -u)
    peerbox_need_debs "${debs[@]}" || true
    hash -r
  fi
  for cmd in ip tc nft ping python3; do
    if [ "$cmd" = python3 ]; then _lab_python >/dev/null && continue; fi
    command -v "$cmd" >/dev/null 2>&1 ||
      problems+=("command '$cmd' missing: install it with: apt-get install -y ${LAB_CMD_DEB[$cmd]}")
  done
  if ! ((${#problems[@]})); then
    _lab_probe_kernel || true # appends to problems
  fi
  if ((${#problems[@]})); then
    echo "nat-lab: this machine cannot run the NAT lab; missing:" >&2
    for p in "${problems[@]}"; do echo "  - $p" >&2; done
    _lab_die "lab_require failed (${#problems[@]} problem(s) above)"
    return 1
  fi
  _LAB_REQUIRED=1
}

# Tries, in a scratch namespace, everything lab_up and lab_netem do. Appends to the
# caller's `problems` array.
_lab_probe_kernel() {
  local ns="pbprobe$BASHPID" out
  ip netns del "$ns" 2>/dev/null || true
  if ! out=$(ip netns add "$ns" 2>&1); then
    problems+=("network namespaces: 'ip netns add' failed ($out): the kernel needs CONFIG_NET_NS and the process CAP_SYS_ADMIN (in a container: --privileged, or --cap-add SYS_ADMIN --cap-add NET_ADMIN)")
    return 1
  fi
  _lab_probe_in "$ns" || true
  ip netns del "$ns" 2>/dev/null || true
  return 0
}

_lab_probe_in() {
  local ns=$1 out tcok=0 qok=0 ipt
  if ! out=$(ip netns exec "$ns" true 2>&1); then
    problems+=("'ip netns exec' failed ($out): it needs to unshare the mount namespace and mount /sys (CAP_SYS_ADMIN; in a container: --privileged)")
    return 1
  fi
  out=$(ip -n "$ns" link add v0 type veth peer name v1 2>&1) ||
    problems+=("veth pairs: $out: the kernel needs CONFIG_VETH (modprobe veth)")
  out=$(ip -n "$ns" link add br0 type bridge mcast_snooping 0 2>&1) ||
    problems+=("Linux bridge: $out: the kernel needs CONFIG_BRIDGE (modprobe bridge)")
  ip -n "$ns" link set v0 up 2>/dev/null || true
  out=$(ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 2>&1) ||
    problems+=("ip forwarding in a namespace: $out (sysctl net.ipv4.ip_forward=1 must be writable)")
  if ! out=$(ip netns exec "$ns" nft -f - 2>&1 <<'EOF'
table ip pbprobe {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "v0" masquerade
		oifname "v1" masquerade fully-random
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
	}
	chain prerouting {
		type filter hook prerouting priority -310; policy accept;
		iifname "v0" numgen random mod 10000 < 200 drop
	}
}
EOF
  ); then
    problems+=("nf_tables NAT: 'nft' could not load a masquerade/conntrack/numgen ruleset: $out. The kernel needs CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ, CONFIG_NFT_CT, CONFIG_NFT_NUMGEN, CONFIG_NF_CONNTRACK (modprobe nf_tables nft_chain_nat nft_masq nft_ct nft_numgen); userspace: apt-get install -y nftables")
  fi
  # Delay/loss: the kernel's netem qdisc, else NFQUEUE + netem.py.
  if ip netns exec "$ns" tc qdisc add dev v0 root netem delay 1ms loss 1% >/dev/null 2>&1; then
    tcok=1
  fi
  LAB_IPTABLES=
  for ipt in iptables-nft iptables-legacy; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    if ip netns exec "$ns" "$ipt" -t raw -A PREROUTING -i v1 -j NFQUEUE --queue-num 0 --queue-bypass >/dev/null 2>&1 &&
      ip netns exec "$ns" "$(_lab_python)" "$LAB_DIR/netem.py" --check >/dev/null 2>&1; then
      LAB_IPTABLES=$ipt qok=1
      break
    fi
  done
  case $LAB_NETEM_IMPL in
  auto)
    if ((tcok)); then LAB_NETEM_IMPL=tc
    elif ((qok)); then
      LAB_NETEM_IMPL=nfqueue
      _lab_log "note: this kernel has no sch_netem (tc netem); lab_netem uses NFQUEUE + netem.py instead (via $LAB_IPTABLES)"
    else
      problems+=("sch_netem (delay/loss): 'tc qdisc add ... netem' failed: the kernel needs CONFIG_NET_SCH_NETEM (modprobe sch_netem; Debian ships it in linux-image-*, Ubuntu in linux-modules-extra-\$(uname -r)); the fallback needs NFQUEUE (CONFIG_NETFILTER_NETLINK_QUEUE + CONFIG_NETFILTER_XT_TARGET_NFQUEUE) with iptables (apt-get install -y iptables) and python3, and failed too")
    fi ;;
  tc) ((tcok)) || problems+=("sch_netem: LAB_NETEM_IMPL=tc but 'tc qdisc add ... netem' failed: the kernel needs CONFIG_NET_SCH_NETEM (modprobe sch_netem)") ;;
  nfqueue) ((qok)) || problems+=("NFQUEUE: LAB_NETEM_IMPL=nfqueue but an iptables NFQUEUE rule or binding the queue failed: the kernel needs CONFIG_NETFILTER_NETLINK_QUEUE + CONFIG_NETFILTER_XT_TARGET_NFQUEUE; userspace: apt-get install -y iptables python3") ;;
  *) problems+=("LAB_NETEM_IMPL='$LAB_NETEM_IMPL': use auto, tc or nfqueue") ;;
  esac
  return 0
}

# --------------------------------------------------------------------------- up/down

# lab_up [--nat-a cone|symmetric] [--nat-b cone|symmetric] [--prefix NAME]
# Builds the lab (about 0.5 s); sets LAB_PREFIX, LAB_RUN_DIR (state) and LAB_LOG_DIR
# (logs of lab_bg; default $LAB_RUN_DIR/logs, removed by lab_down unless
# LAB_KEEP_LOGS=1; a LAB_LOG_DIR set before lab_up is never removed). Installs
# `lab_down` on EXIT (run before an EXIT trap already set) unless LAB_TRAP=0.
lab_up() {
  local nat_a=cone nat_b=cone prefix=""
  while (($#)); do
    case $1 in
    --nat-a) nat_a=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --nat-a=*) nat_a=${1#*=}; shift ;;
    --nat-b) nat_b=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --nat-b=*) nat_b=${1#*=}; shift ;;
    --prefix) prefix=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    *) _lab_die "lab_up: unknown argument '$1' (usage: lab_up [--nat-a cone|symmetric] [--nat-b cone|symmetric] [--prefix NAME])"; return 1 ;;
    esac
  done
  case "$nat_a/$nat_b" in
  cone/cone | cone/symmetric | symmetric/cone | symmetric/symmetric) ;;
  *) _lab_die "lab_up: NAT kinds are cone or symmetric (got --nat-a '$nat_a' --nat-b '$nat_b')"; return 1 ;;
  esac
  if [ -n "${LAB_PREFIX:-}" ] && ip netns list | grep "^$LAB_PREFIX-" >/dev/null; then
    _lab_die "lab_up: lab $LAB_PREFIX is already up; lab_down first"
    return 1
  fi
  lab_require || return 1
  lab_gc
  if [ -z "$prefix" ]; then
    while :; do
      prefix=pb$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
      ip netns list | grep "^$prefix-" >/dev/null || [ -e "$LAB_STATE_ROOT/$prefix" ] || break
    done
  fi
  [[ $prefix =~ ^[a-zA-Z0-9_]{1,12}$ ]] || { _lab_die "lab_up: --prefix must be 1-12 of [a-zA-Z0-9_]"; return 1; }
  LAB_PREFIX=$prefix
  LAB_RUN_DIR=$LAB_STATE_ROOT/$prefix
  _LAB_LOG_AUTO=0
  if [ -z "${LAB_LOG_DIR:-}" ]; then LAB_LOG_DIR=$LAB_RUN_DIR/logs _LAB_LOG_AUTO=1; fi
  mkdir -p "$LAB_RUN_DIR/pids" "$LAB_LOG_DIR"
  echo "$$" >"$LAB_RUN_DIR/owner"
  echo "$nat_a" >"$LAB_RUN_DIR/nat-a"
  echo "$nat_b" >"$LAB_RUN_DIR/nat-b"
  _lab_install_trap
  local t0=$SECONDS
  if ! (set -euo pipefail; _lab_build "$nat_a" "$nat_b") >"$LAB_RUN_DIR/build.log" 2>&1; then
    _lab_log "lab_up failed; build log:"
    sed 's/^/  | /' "$LAB_RUN_DIR/build.log" >&2
    lab_down
    _lab_die "lab_up failed"
    return 1
  fi
  _lab_log "up: $LAB_PREFIX (nat-a $nat_a, nat-b $nat_b) in $((SECONDS - t0))s; logs in $LAB_LOG_DIR"
}

_lab_sysctl() { ip netns exec "$1" sysctl -qw "$2" >/dev/null; }

# veth NS1:IF1 <-> NS2:IF2, created inside NS1 with the peer moved straight to NS2.
_lab_veth() {
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" multicast on up
  ip -n "$3" link set "$4" multicast on up
}

_lab_bridge() {
  ip -n "$1" link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
  ip -n "$1" link set br0 multicast on up
  # Bridged frames stay out of iptables/nftables IP hooks (br_netfilter).
  local k
  for k in bridge-nf-call-iptables bridge-nf-call-ip6tables bridge-nf-call-arptables; do
    if ip netns exec "$1" test -e "/proc/sys/net/bridge/$k"; then _lab_sysctl "$1" "net.bridge.$k=0"; fi
  done
}

_lab_build() {
  local nat_a=$1 nat_b=$2 n ns r h lan kind flags inet relay
  for n in "${LAB_NODES[@]}"; do
    ns=$LAB_PREFIX-$n
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  inet=$LAB_PREFIX-inet relay=$LAB_PREFIX-relay
  _lab_bridge "$inet"

  _lab_veth "$relay" eth0 "$inet" relay
  ip -n "$inet" link set relay master br0
  ip -n "$relay" addr add "${LAB_ADDR[relay]}/24" dev eth0

  for r in a b; do
    ns=$LAB_PREFIX-nat$r
    [ "$r" = a ] && lan=192.168.1 kind=$nat_a || lan=192.168.2 kind=$nat_b
    _lab_veth "$ns" pub "$inet" "nat$r"
    ip -n "$inet" link set "nat$r" master br0
    ip -n "$ns" addr add "${LAB_ADDR[nat$r]}/24" dev pub
    _lab_bridge "$ns"
    ip -n "$ns" addr add "$lan.1/24" dev br0
    _lab_sysctl "$ns" net.ipv4.ip_forward=1
    flags=""
    [ "$kind" = symmetric ] && flags=" fully-random"
    ip netns exec "$ns" nft -f - <<EOF
table ip pblab {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "pub" ip saddr $lan.0/24 masquerade$flags
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "br0" oifname "pub" accept
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "pub" ct state established,related accept
		iifname "pub" icmp type echo-request accept
		iifname "pub" drop
	}
}
EOF
  done

  for h in "${LAB_HOSTS[@]}"; do
    ns=$LAB_PREFIX-$h r=$LAB_PREFIX-${LAB_ROUTER[$h]}
    _lab_veth "$ns" eth0 "$r" "$h"
    ip -n "$r" link set "$h" master br0
    ip -n "$ns" addr add "${LAB_ADDR[$h]}/24" dev eth0
    ip -n "$ns" route add default via "${LAB_LAN_ADDR[${LAB_ROUTER[$h]}]}" dev eth0
  done

  # Ready when every host reaches its gateway and every router the relay.
  local target ok i
  for n in a1 a2 b1 nata natb; do
    if [ -n "${LAB_ROUTER[$n]:-}" ]; then target=${LAB_LAN_ADDR[${LAB_ROUTER[$n]}]}; else target=${LAB_ADDR[relay]}; fi
    ok=0
    for ((i = 0; i < 20; i++)); do
      if ip netns exec "$LAB_PREFIX-$n" ping -c1 -W1 -q "$target" >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.1
    done
    ((ok)) || { echo "$n cannot reach $target"; return 1; }
  done
}

_lab_trap_cmd() { printf '%s' "$2"; } # of `trap -p`: trap -- 'CMD' SIGNAL

_lab_install_trap() {
  [ "${LAB_TRAP:-1}" = 1 ] || return 0
  local cur prev=""
  cur=$(trap -p EXIT)
  case $cur in *lab_down*) return 0 ;; esac
  [ -n "$cur" ] && eval "prev=\$(_lab_trap_cmd ${cur#trap })"
  # shellcheck disable=SC2064
  trap "lab_down; ${prev:-:}" EXIT
  [ -n "$(trap -p INT)" ] || trap 'exit 130' INT
  [ -n "$(trap -p TERM)" ] || trap 'exit 143' TERM
}

# lab_down [PREFIX]: kills every process in the lab's namespaces (by pid), deletes the
# namespaces (and with them every veth, bridge and nft table) and the state folder.
# Idempotent; without a lab it does nothing.
lab_down() {
  local prefix=${1:-${LAB_PREFIX:-}} nss ns pids=() p i
  [ -n "$prefix" ] || return 0
  mapfile -t nss < <(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true)
  for ns in "${nss[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$p"); done
  done
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      local alive=0
      for p in "${pids[@]}"; do lab_alive "$p" && alive=1 && break; done
      ((alive)) || break
      sleep 0.05
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  fi
  for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -d "$LAB_STATE_ROOT/$prefix" ]; then
    if [ "${LAB_KEEP_LOGS:-0}" = 1 ] && [ -d "$LAB_STATE_ROOT/$prefix/logs" ]; then
      find "$LAB_STATE_ROOT/$prefix" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
      _lab_log "logs kept in $LAB_STATE_ROOT/$prefix/logs"
    else
      rm -rf "${LAB_STATE_ROOT:?}/$prefix"
    fi
  fi
  if [ "$prefix" = "${LAB_PREFIX:-}" ]; then
    if [ "${_LAB_LOG_AUTO:-0}" = 1 ]; then unset LAB_LOG_DIR; fi
    unset LAB_PREFIX LAB_RUN_DIR _LAB_LOG_AUTO
  fi
  return 0
}

# lab_gc: lab_down for labs whose owning shell (the one that ran lab_up) is gone.
lab_gc() {
  local d owner
  for d in "$LAB_STATE_ROOT"/pb*; do
    [ -f "$d/owner" ] || continue
    owner=$(cat "$d/owner")
    [ "$owner" = "$$" ] && continue
    kill -0 "$owner" 2>/dev/null && continue
    _lab_log "removing stale lab $(basename "$d") (owner $owner is gone)"
    lab_down "$(basename "$d")"
  done
}

# lab_info: prints the lab's nodes, namespaces and addresses.
lab_info() {
  local n
  echo "lab $LAB_PREFIX: nat-a $(lab_nat_kind a), nat-b $(lab_nat_kind b), netem $(cat "$LAB_RUN_DIR/netem" 2>/dev/null || echo off)"
  for n in "${LAB_NODES[@]}"; do
    printf '  %-6s %-14s %s\n' "$n" "$LAB_PREFIX-$n" "$(ip -n "$LAB_PREFIX-$n" -4 -br addr show | awk '$1!="lo"{sub(/@.*/,"",$1); printf "%s=%s ", $1, $3}')"
  done
}

# --------------------------------------------------------------------------- netem

# lab_netem DELAY LOSS [NODE...]    e.g. lab_netem 50ms 2%   lab_netem 0 0 / lab_netem off
# Every packet that crosses the public segment is delayed by DELAY and dropped with
# probability LOSS, once per crossing; NODEs default to relay nata natb, the three
# public interfaces. So the RTT between a host and the relay (or between a1 and b1)
# grows by 2×DELAY. Where it is applied:
#   tc (kernel sch_netem):  netem qdisc on the EGRESS of relay eth0, nata pub, natb pub.
#   nfqueue (fallback, this kernel has no sch_netem): on the INGRESS of the same
#     interfaces, before conntrack: an nft `numgen random` rule drops LOSS, then an
#     iptables NFQUEUE rule hands the rest to netem.py, which releases them DELAY later.
# DELAY: 50ms, 0.05s, 50 (ms). LOSS: 2%, 2, 0.5%. A new call replaces the old setting.
lab_netem() {
  [ -n "${LAB_PREFIX:-}" ] || { _lab_die "lab_netem: no lab is up"; return 1; }
  local delay=${1:-} loss=${2:-0} ms pct per10k n ns ifc nodes
  [ -n "$delay" ] || { _lab_die "usage: lab_netem DELAY LOSS [NODE...] | lab_netem off"; return 1; }
  shift 2 2>/dev/null || shift $#
  nodes=("$@")
  ((${#nodes[@]})) || nodes=("${LAB_PUBLIC_NODES[@]}")
  for n in "${nodes[@]}"; do
    [ -n "${LAB_PUBLIC_IF[$n]:-}" ] || { _lab_die "lab_netem: $n has no public interface (use ${LAB_PUBLIC_NODES[*]})"; return 1; }
  done
  [ "$delay" = off ] && delay=0 loss=0
  ms=$(awk -v d="$delay" 'BEGIN{ if (d ~ /^[0-9.]+ms$/) {sub(/ms$/,"",d); print d+0}
    else if (d ~ /^[0-9.]+s$/) {sub(/s$/,"",d); print d*1000} else if (d ~ /^[0-9.]+$/) print d+0; else print "bad" }')
  pct=$(awk -v l="$loss" 'BEGIN{ sub(/%$/,"",l); if (l ~ /^[0-9.]+$/ && l+0 <= 100) print l+0; else print "bad" }')
  if [ "$ms" = bad ] || [ "$pct" = bad ]; then
    _lab_die "lab_netem: cannot read DELAY '$delay' / LOSS '$loss' (e.g. lab_netem 50ms 2%)"
    return 1
  fi
  per10k=$(awk -v p="$pct" 'BEGIN{ printf "%d", p*100 + 0.5 }')
  _lab_netem_clear
  if [ "$ms" = 0 ] && [ "$per10k" = 0 ]; then
    rm -f "$LAB_RUN_DIR/netem"
    return 0
  fi
  for n in "${nodes[@]}"; do
    ns=$LAB_PREFIX-$n ifc=${LAB_PUBLIC_IF[$n]}
    if [ "$LAB_NETEM_IMPL" = tc ]; then
      ip netns exec "$ns" tc qdisc replace dev "$ifc" root netem delay "${ms}ms" loss "${pct}%" ||
        { _lab_die "lab_netem: tc netem on $n failed"; return 1; }
      continue
    fi
    if [ "$per10k" != 0 ]; then
      ip netns exec "$ns" nft -f - <<EOF || { _lab_die "lab_netem: nft loss rule on $n failed"; return 1; }
table ip pblab_netem {
	chain ingress {
		type filter hook prerouting priority -310; policy accept;
		iifname "$ifc" numgen random mod 10000 < $per10k drop
	}
}
EOF
    fi
    if [ "$ms" != 0 ]; then
      lab_bg "$n" "netem-$n" "$(_lab_python)" -u "$LAB_DIR/netem.py" --queue 0 --delay-ms "$ms"
      lab_wait_log "netem-$n" '^ready' 10 || { _lab_die "lab_netem: netem.py did not start on $n"; return 1; }
      ip netns exec "$ns" "$LAB_IPTABLES" -t raw -A PREROUTING -i "$ifc" -j NFQUEUE --queue-num 0 --queue-bypass ||
        { _lab_die "lab_netem: $LAB_IPTABLES NFQUEUE rule on $n failed"; return 1; }
    fi
    echo "$n" >>"$LAB_RUN_DIR/netem-nodes"
  done
  echo "${ms}ms ${pct}% on ${nodes[*]} ($LAB_NETEM_IMPL)" >"$LAB_RUN_DIR/netem"
}

_lab_netem_clear() {
  local n ns
  [ -f "$LAB_RUN_DIR/netem-nodes" ] || return 0
  local nodes
  mapfile -t nodes < <(sort -u "$LAB_RUN_DIR/netem-nodes")
  for n in "${nodes[@]}"; do
    ns=$LAB_PREFIX-$n
    if [ "$LAB_NETEM_IMPL" = tc ]; then
      ip netns exec "$ns" tc qdisc del dev "${LAB_PUBLIC_IF[$n]}" root 2>/dev/null || true
    else
      ip netns exec "$ns" "$LAB_IPTABLES" -t raw -D PREROUTING -i "${LAB_PUBLIC_IF[$n]}" -j NFQUEUE --queue-num 0 --queue-bypass 2>/dev/null || true
      ip netns exec "$ns" nft delete table ip pblab_netem 2>/dev/null || true
      lab_stop "netem-$n"
    fi
  done
  rm -f "$LAB_RUN_DIR/netem-nodes"
}
