#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the fuzz_proto seed corpus: real protocol messages, laid out in the
input format tests/fuzz/fuzz_proto.c reads (a mode byte, then pieces of
{u8 nfds, u32le length, bytes}). The structs are packed as uapi/pagemap_proto.h
defines them; sizes are asserted against its static_asserts.

    tests/fuzz/gen_proto_seeds.py [OUTDIR]   (default tests/fuzz/corpus/fuzz_proto)
"""
import os
import struct
import sys

MAGIC = 0x50414D50
REPLY, EVENT = 0x1, 0x2
(HELLO, NOP, OPEN, QUERY, LIST, CLIENTS, REVOKE, STATS, ALLOC, FREE, PLACE, QUERY_RANGE,
 MIGRATE, ADVISE, RANGES, ALLOCS, PEERS) = range(1, 18)
EV_REVOKED = 64

# fuzz_proto.c's mode byte
READER, STREAM, SEQPACKET, SEQPACKET_NB = 0, 1, 2, 3
EOF, PASSCRED = 4, 8


def name(s, size):
    b = s.encode()
    assert len(b) < size
    return b + b"\0" * (size - len(b))


def hdr(op, length, nfds=0, flags=0, req=1, version=1, magic=MAGIC):
    return struct.pack("<IHHIHHQ", magic, version, op, length, nfds, flags, req)


def msg(op, payload=b"", nfds=0, flags=0, req=1, **kw):
    return hdr(op, len(payload), nfds, flags, req, **kw) + payload


def reply(status):
    return struct.pack("<iI", status, 0)


def info(id_, device, region="", kind=1, state=1, numa=0, refs=1, cap=1 << 30, used=0):
    b = struct.pack("<Q", id_) + name(device, 64) + name(region, 32)
    b += struct.pack("<IIiIQQII", kind, state, numa, refs, cap, used, 48, 0) + b"\0" * 32
    assert len(b) == 176
    return b


def hello(client="pmctl", lo=1, hi=1):
    b = struct.pack("<HHI", lo, hi, 0) + name(client, 32)
    assert len(b) == 40
    return b


def open_req(device, region=""):
    b = name(device, 64) + name(region, 32) + struct.pack("<II", 0, 0)
    assert len(b) == 104
    return b


def list_reply(rec, count, flags=0):
    return reply(count) + struct.pack("<II", count, flags) + b"".join(rec)


def client_info(sid, pid, client):
    b = struct.pack("<QiIII", sid, pid, 1000, 1000, 2) + name(client, 32)
    assert len(b) == 56
    return b


def peer_info(nm, addr, dev, role=1, state=3):
    b = name(nm, 32) + name(addr, 64) + name(dev, 32)
    b += struct.pack("<IIIIQQ", role, state, 100000, 2, 1 << 30, 3)
    assert len(b) == 160
    return b


def run(op, first, count, flags=0):
    b = struct.pack("<QQQQ", first, count, 7, 0) + b"\0" * 32 + struct.pack("<IIiI", 0, flags, 0, 0)
    assert len(b) == 80
    return b


def piece(data, nfds=0):
    return struct.pack("<BI", nfds, len(data)) + data


def pieces(data, sizes, fds=None):
    """data cut into pieces of the given sizes (the last takes the rest)."""
    out, off = b"", 0
    fds = fds or {}
    for i, n in enumerate(sizes):
        out += piece(data[off:off + n], fds.get(i, 0))
        off += n
    return out + (piece(data[off:], fds.get(len(sizes), 0)) if off < len(data) else b"")


def seeds():
    s = {}
    h = msg(HELLO, hello())
    s["reader-hello"] = bytes([READER]) + piece(h)
    s["reader-hello-open-split"] = bytes([READER]) + pieces(
        h + msg(OPEN, open_req("node1"), req=2), [10, 20, 1, 90])
    s["reader-bytewise-nop"] = bytes([READER | EOF]) + pieces(msg(NOP, req=9), [1] * 23)
    s["reader-alloc-memfd"] = bytes([READER]) + piece(
        msg(ALLOC, struct.pack("<QQII", 8 << 20, 2 << 20, 0, 0), nfds=1), 1)
    s["reader-place"] = bytes([READER]) + piece(
        msg(PLACE, struct.pack("<QQQII", 1, 0, 4, 0, 0), nfds=1), 1)
    mig = struct.pack("<II", 0x1, 2) + struct.pack("<QQQiI", 1, 0, 2, 0, 0) + \
        struct.pack("<QQQiI", 1, 2, 2, -1, 0)
    s["reader-migrate-2fds"] = bytes([READER]) + piece(msg(MIGRATE, mig, nfds=2), 2)
    s["reader-advise"] = bytes([READER]) + piece(
        msg(ADVISE, struct.pack("<QQQII", 1, 0, 4, 1, 0), nfds=1), 1)
    s["reader-queries"] = bytes([READER]) + piece(
        msg(QUERY_RANGE, struct.pack("<QQQ", 1, 0, 4)) + msg(RANGES, struct.pack("<QQQ", 1, 0, 4))
        + msg(ALLOCS, struct.pack("<Q", 0)) + msg(FREE, struct.pack("<Q", 1))
        + msg(LIST) + msg(CLIENTS) + msg(STATS) + msg(PEERS))
    s["reader-revoke"] = bytes([READER]) + piece(msg(REVOKE, name("0000:03:00.0", 64) + b"\0" * 8))
    s["reader-bad-magic"] = bytes([READER]) + piece(msg(NOP, magic=0x50414D51))
    s["reader-too-long"] = bytes([READER]) + piece(hdr(NOP, 65537))
    s["reader-nfds-mismatch"] = bytes([READER]) + piece(msg(NOP, nfds=1))
    s["reader-5fds"] = bytes([READER]) + piece(msg(NOP, nfds=5), 5)
    s["reader-unknown-flags"] = bytes([READER]) + piece(msg(NOP, flags=0x8))
    s["reader-eof-mid-message"] = bytes([READER | EOF]) + piece(msg(OPEN, open_req("node0"))[:50], 1)
    s["reader-passcred"] = bytes([READER | PASSCRED]) + piece(h)
    s["stream-open-reply"] = bytes([STREAM]) + piece(
        msg(OPEN, reply(0) + info(7, "node1"), nfds=1, flags=REPLY), 1)
    s["stream-list-reply"] = bytes([STREAM]) + pieces(
        msg(LIST, list_reply([info(1, "node0"), info(2, "0000:03:00.0", "bar2", kind=2)], 2),
            flags=REPLY), [24, 100])
    s["stream-clients-reply"] = bytes([STREAM]) + piece(
        msg(CLIENTS, list_reply([client_info(1, 100, "pmctl"), client_info(2, 101, "")], 2),
            flags=REPLY))
    s["stream-peers-reply"] = bytes([STREAM]) + piece(
        msg(PEERS, list_reply([peer_info("a", "10.0.0.2:7471", "rxe0")], 1), flags=REPLY))
    s["stream-stats-reply"] = bytes([STREAM]) + piece(
        msg(STATS, reply(0) + struct.pack("<16Q", *range(16)), flags=REPLY))
    s["stream-ranges-reply"] = bytes([STREAM]) + piece(
        msg(RANGES, list_reply([run(RANGES, 0, 2), run(RANGES, 2, 2, 1)], 2), flags=REPLY))
    s["stream-hello-reply-truncated"] = bytes([STREAM]) + piece(
        msg(HELLO, reply(0) + struct.pack("<HHIQ", 1, 0, 65536, 3), flags=REPLY)[:30])
    s["seqpacket-query"] = bytes([SEQPACKET]) + piece(msg(QUERY, struct.pack("<II", 0, 0), nfds=1), 1)
    s["seqpacket-query-reply"] = bytes([SEQPACKET | EOF]) + piece(
        msg(QUERY, reply(0) + info(3, "emu0"), flags=REPLY))
    s["seqpacket-revoked-event"] = bytes([SEQPACKET_NB | EOF]) + piece(
        msg(EV_REVOKED, struct.pack("<QiI", 3, -19, 0), flags=EVENT, req=0))
    s["seqpacket-migrate-done"] = bytes([SEQPACKET_NB]) + piece(
        msg(MIGRATE, reply(0) + struct.pack("<QQQQ", 4 << 20, 0, 0, 4 << 20), flags=EVENT, req=0))
    s["seqpacket-short-datagram"] = bytes([SEQPACKET]) + piece(msg(NOP)[:12]) + piece(msg(NOP, b"x"))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_proto")
    os.makedirs(out, exist_ok=True)
    for n, data in sorted(seeds().items()):
        with open(os.path.join(out, n), "wb") as f:
            f.write(data)
    print(f"{len(seeds())} seeds in {out}")


if __name__ == "__main__":
    main()
