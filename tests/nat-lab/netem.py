#!/usr/bin/env python3
"""Userspace stand-in for `tc qdisc ... netem delay`, for kernels built without
sch_netem (CONFIG_NET_SCH_NETEM). Standard library only.

An nftables rule `queue num N bypass` hands packets to NFQUEUE queue N; this
program binds that queue (raw netlink, metadata only: the payload stays in the
kernel) and accepts every packet DELAY milliseconds after it arrived. The delay is
constant, so packets leave in order and one batch verdict ("accept every id up to
X") releases all that are due. Loss is not done here: lab.sh drops packets with an
nft `numgen random` rule before the queue.

  netem.py --queue 0 --delay-ms 50     run until SIGTERM/SIGINT; prints "ready" once bound
  netem.py --check                     bind queue 0 and exit 0 (capability probe)

On SIGTERM it releases the packets it holds, then exits; the kernel unbinds the
queue and, with `bypass` in the rule, packets then pass undelayed (not dropped).
"""
import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQA_CFG_F_FAIL_OPEN = 1
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_ACCEPT = 1


def nla(kind, data):
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


class Queue:
    def __init__(self, num, maxlen):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        # A lost notification must not stop the loop: batch verdicts release such packets.
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.request(NFQNL_MSG_CONFIG,
                     [nla(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))])
        self.request(NFQNL_MSG_CONFIG, [
            nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
            nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)),
            # When the queue is full, accept rather than drop (fail open).
            nla(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
            nla(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
        ])

    def message(self, kind, flags, attrs):
        self.seq += 1
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", self.num) + b"".join(attrs)
        head = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, self.seq, 0)
        return head + body

    def request(self, kind, attrs):
        """Send a config message and wait for its ack; raise on a netlink error."""
        self.sock.send(self.message(kind, NLM_F_REQUEST | NLM_F_ACK, attrs))
        seq = self.seq
        while True:
            for mtype, mseq, payload in self.parse(self.sock.recv(65536)):
                if mtype == NLMSG_ERROR and mseq == seq:
                    err = struct.unpack("=i", payload[:4])[0]
                    if err:
                        raise OSError(-err, "NFQUEUE config: " + os.strerror(-err))
                    return

    @staticmethod
    def parse(data):
        off = 0
        while off + 16 <= len(data):
            length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
            if length < 16:
                break
            yield mtype, seq, data[off + 16:off + length]
            off += (length + 3) & ~3

    def packet_ids(self, data):
        for mtype, _seq, payload in self.parse(data):
            if mtype != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            off = 4  # struct nfgenmsg
            while off + 4 <= len(payload):
                alen, atype = struct.unpack_from("=HH", payload, off)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", payload, off + 4)[0]
                    break
                off += (alen + 3) & ~3

    def accept_up_to(self, packet_id):
        verdict = nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(self.message(NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, [verdict]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--maxlen", type=int, default=16384, help="packets held at most (then fail open)")
    ap.add_argument("--check", action="store_true", help="bind the queue, then exit")
    args = ap.parse_args()

    q = Queue(args.queue, args.maxlen)
    if args.check:
        print("ok: NFQUEUE queue %d bound" % args.queue)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print("ready: queue %d delay %.3f ms" % (args.queue, args.delay_ms), flush=True)

    delay = args.delay_ms / 1000.0
    pending = collections.deque()  # (due, packet id); due times never decrease
    q.sock.setblocking(False)
    try:
        run(q, delay, pending)
    finally:  # stopping: let what is still held go now rather than be dropped
        if pending:
            q.accept_up_to(pending[-1][1])
    return 0


def run(q, delay, pending):
    while True:
        timeout = None
        if pending:
            timeout = max(0.0, pending[0][0] - time.monotonic())
        readable, _, _ = select.select([q.sock], [], [], timeout)
        if readable:
            now = time.monotonic()
            while True:
                try:
                    data = q.sock.recv(262144)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ENOBUFS despite NO_ENOBUFS: keep going
                    break
                for packet_id in q.packet_ids(data):
                    pending.append((now + delay, packet_id))
        now = time.monotonic()
        last = None
        while pending and pending[0][0] <= now:
            last = pending.popleft()[1]
        if last is not None:
            q.accept_up_to(last)


if __name__ == "__main__":
    sys.exit(main())
