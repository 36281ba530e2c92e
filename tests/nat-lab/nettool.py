#!/usr/bin/env python3
"""Small network probes for the NAT lab (standard library only). Servers print
"ready ..." once listening, and one line per client they see.

  whoami-server PORT [PORT...]   TCP and UDP on each PORT: answers the peer's ip:port as
                                 it sees it. UDP also serves the punch rendezvous.
  whoami-tcp HOST PORT           prints what the server saw (ip:port)
  mapping HOST PORT PORT...      one UDP socket asks each server PORT what ip:port it
                                 sees; prints them ("same" = endpoint-independent mapping)
  punch HOST PORT ME PEER [SECS [SESSION]]
                                 UDP hole punch: register with the rendezvous at HOST:PORT
                                 (under SESSION, default "s"), learn PEER's public ip:port,
                                 then both sides send to each other from that same socket.
                                 Exit 0 when a datagram from PEER arrived, 1 if none did
                                 within SECS (default 5).
  udp-recv BIND_IP PORT SECS     prints the first datagram (exit 1 on timeout)
  udp-send HOST PORT MSG
  mcast-recv GROUP PORT IFACE_IP SECS     joins GROUP on the interface with IFACE_IP
  mcast-send GROUP PORT IFACE_IP MSG [N]  sends N times (default 5, 100 ms apart)
  sink PORT                      TCP: counts bytes per connection, prints "got N bytes"
  source HOST PORT BYTES         TCP: sends BYTES, prints "sent N bytes in S s"
"""
import select
import socket
import struct
import sys
import time


def out(*args):
    print(*args, flush=True)


def whoami_server(ports):
    tcp, udp = [], []
    for p in ports:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("0.0.0.0", p))
        t.listen(16)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", p))
        tcp.append(t)
        udp.append(u)
    out("ready", " ".join(map(str, ports)))
    regs = {}  # punch rendezvous: (session, name) -> (ip, port)
    while True:
        r, _, _ = select.select(tcp + udp, [], [])
        for s in r:
            if s in tcp:
                c, addr = s.accept()
                out("tcp %d from %s:%d" % (s.getsockname()[1], *addr))
                c.sendall(("%s:%d\n" % addr).encode())
                c.close()
                continue
            data, addr = s.recvfrom(2048)
            words = data.decode(errors="replace").split()
            seen = "%s:%d" % addr
            if words[:1] == ["REG"] and len(words) == 4:
                session, me, peer = words[1:]
                regs[(session, me)] = addr
                out("udp %d REG %s %s from %s" % (s.getsockname()[1], session, me, seen))
                if (session, peer) in regs:
                    s.sendto(("PEER %s %s:%d" % (peer, *regs[(session, peer)])).encode(), addr)
                else:
                    s.sendto(b"WAIT", addr)
            else:
                out("udp %d from %s" % (s.getsockname()[1], seen))
                s.sendto(seen.encode(), addr)


def whoami_tcp(host, port):
    with socket.create_connection((host, port), timeout=5) as c:
        out(c.recv(256).decode().strip())


def ask(sock, msg, addr, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(msg, addr)
        r, _, _ = select.select([sock], [], [], 0.3)
        if r:
            data, src = sock.recvfrom(2048)
            if src == addr:
                return data.decode()
    raise SystemExit("no answer from %s:%d" % addr)


def mapping(host, ports):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    seen = [ask(s, b"WHOAMI", (host, p)) for p in ports]
    out("local port %d mapped %s (%s)" % (s.getsockname()[1], " ".join(seen),
                                          "same" if len(set(seen)) == 1 else "different"))


def punch(host, port, me, peer, secs, session):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    server = (host, port)
    t0 = time.monotonic()
    peer_addr = None
    while peer_addr is None:
        if time.monotonic() - t0 > 10:
            out("PUNCH FAIL: %s never learned %s's address from the rendezvous" % (me, peer))
            return 1
        words = ask(s, ("REG %s %s %s" % (session, me, peer)).encode(), server).split()
        if words[0] == "PEER":
            ip, p = words[2].rsplit(":", 1)
            peer_addr = (ip, int(p))
        else:
            time.sleep(0.1)
    out("%s: local port %d, %s is at %s:%d" % (me, s.getsockname()[1], peer, *peer_addr))
    start = time.monotonic()
    sent, got, last_send = 0, None, 0.0
    while time.monotonic() - start < secs:
        now = time.monotonic()
        if now - last_send >= 0.05:
            s.sendto(("PUNCH %s %d" % (me, sent)).encode(), peer_addr)
            sent += 1
            last_send = now
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        data, src = s.recvfrom(2048)
        words = data.decode(errors="replace").split()
        if words[:2] == ["PUNCH", peer] and got is None:
            got = (src, time.monotonic() - start, " ".join(words))
            # Go on sending a while: the peer may not have heard us yet.
            secs = min(secs, got[1] + 1.0)
    if got:
        out("PUNCH OK: %s got '%s' from %s:%d after %.2fs (sent %d)" % (me, got[2], *got[0], got[1], sent))
        return 0
    out("PUNCH FAIL: %s got nothing from %s (%s:%d) in %.1fs (sent %d)" % (me, peer, *peer_addr, secs, sent))
    return 1


def udp_recv(bind_ip, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind_ip, port))
    out("ready")
    s.settimeout(secs)
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        out("timeout")
        return 1
    out("got '%s' from %s:%d" % (data.decode(), *src))
    return 0


def udp_send(host, port, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), (host, port))


def mcast_recv(group, port, iface_ip, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface_ip)))
    out("ready")
    s.settimeout(secs)
    try:
        while True:
            data, src = s.recvfrom(2048)
            if src[0] != iface_ip:  # not our own loopback copy
                out("got '%s' from %s:%d" % (data.decode(), *src))
                return 0
    except socket.timeout:
        out("timeout")
        return 1


def mcast_send(group, port, iface_ip, msg, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface_ip))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    for _ in range(n):
        s.sendto(msg.encode(), (group, port))
        time.sleep(0.1)


def sink(port):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", port))
    t.listen(4)
    out("ready")
    while True:
        c, addr = t.accept()
        n = 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            n += len(b)
        c.sendall(b"done")
        c.close()
        out("got %d bytes from %s:%d" % (n, *addr))


def source(host, port, nbytes):
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as c:
        chunk = b"x" * 65536
        left = nbytes
        while left > 0:
            c.sendall(chunk[:left])
            left -= min(left, len(chunk))
        c.shutdown(socket.SHUT_WR)
        c.settimeout(60)
        ack = c.recv(16)
    dt = time.monotonic() - t0
    out("sent %d bytes in %.2f s (%.1f MB/s) ack=%s" % (nbytes, dt, nbytes / dt / 1e6, ack.decode()))
    return 0 if ack == b"done" else 1


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, a = argv[0], argv[1:]
    if cmd == "whoami-server":
        return whoami_server([int(p) for p in a])
    if cmd == "whoami-tcp":
        return whoami_tcp(a[0], int(a[1]))
    if cmd == "mapping":
        return mapping(a[0], [int(p) for p in a[1:]])
    if cmd == "punch":
        return punch(a[0], int(a[1]), a[2], a[3], float(a[4]) if len(a) > 4 else 5.0,
                     a[5] if len(a) > 5 else "s")
    if cmd == "udp-recv":
        return udp_recv(a[0], int(a[1]), float(a[2]))
    if cmd == "udp-send":
        return udp_send(a[0], int(a[1]), a[2])
    if cmd == "mcast-recv":
        return mcast_recv(a[0], int(a[1]), a[2], float(a[3]))
    if cmd == "mcast-send":
        return mcast_send(a[0], int(a[1]), a[2], a[3], int(a[4]) if len(a) > 4 else 5)
    if cmd == "sink":
        return sink(int(a[0]))
    if cmd == "source":
        return source(a[0], int(a[1]), int(a[2]))
    sys.exit("unknown command %s\n%s" % (cmd, __doc__))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
