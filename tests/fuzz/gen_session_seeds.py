#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the fuzz_session seed corpus: what a client writes on its control
connection, in fuzz_session.c's input format (a mode byte: bit 7 no HELLO
first, bits 0-2 the fds sent with the second piece: memfd, pipe, socket;
then the bytes of the stream).

    tests/fuzz/gen_session_seeds.py [OUTDIR]   (default tests/fuzz/corpus/fuzz_session)
"""
import os
import struct
import sys

MAGIC = 0x50414D50
(HELLO, NOP, OPEN, QUERY, LIST, CLIENTS, REVOKE, STATS, ALLOC, FREE, PLACE, QUERY_RANGE,
 MIGRATE, ADVISE, RANGES, ALLOCS, PEERS) = range(1, 18)
MEMFD, PIPE, SOCKET, NO_HELLO = 1, 2, 4, 0x80


def msg(op, payload=b"", nfds=0, req=2):
    return struct.pack("<IHHIHHQ", MAGIC, 1, op, len(payload), nfds, 0, req) + payload


def name(s, size):
    b = s.encode()
    return b + b"\0" * (size - len(b))


def open_(dev):
    return msg(OPEN, name(dev, 64) + name("", 32) + struct.pack("<II", 0, 0))


def alloc(size, chunk, nfds=1):
    return msg(ALLOC, struct.pack("<QQII", size, chunk, 0, 0), nfds)


def migrate(alloc_id, first, count, target, flags=0, nfds=0):
    return msg(MIGRATE, struct.pack("<II", flags, 1)
               + struct.pack("<QQQiI", alloc_id, first, count, target, 0), nfds)


def hello():
    return msg(HELLO, struct.pack("<HHI", 1, 1, 0) + name("seed", 32), req=1)


seeds = {
    "admin-requests": bytes([0]) + msg(NOP) + msg(LIST) + msg(CLIENTS) + msg(STATS)
    + msg(PEERS) + msg(ALLOCS, struct.pack("<Q", 0)),
    "open-nodes": bytes([0]) + open_("node0") + open_("0000:03:00.0") + open_("MEM1")
    + open_("nope"),
    # ALLOC's memfd rides with the second piece: the split falls inside it
    # or after it, depending on the size; either is a case.
    "alloc-migrate": bytes([MEMFD]) + alloc(1 << 20, 64 << 10) + migrate(1, 0, 4, -1)
    + msg(QUERY_RANGE, struct.pack("<QQQ", 1, 0, 16)) + msg(FREE, struct.pack("<Q", 1)),
    "wrong-fd-kinds": bytes([PIPE | SOCKET]) + alloc(1 << 20, 64 << 10, nfds=2)
    + migrate(1, 0, 1, 0, nfds=1) + msg(PLACE, struct.pack("<QQQII", 1, 0, 1, 0, 0), 1),
    "no-hello": bytes([NO_HELLO]) + msg(NOP) + hello() + msg(NOP),
    "revoke": bytes([0]) + open_("0000:04:00.0")
    + msg(REVOKE, name("0000:04:00.0", 64) + struct.pack("<II", 0, 0)) + msg(LIST),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                          "corpus", "fuzz_session")
os.makedirs(out, exist_ok=True)
for k, v in seeds.items():
    with open(os.path.join(out, k), "wb") as f:
        f.write(v)
