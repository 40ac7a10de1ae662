#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Seed programs for fuzz_engine (the op codes are in fuzz_engine.c's step()):
# the high nibble of an op byte picks the client, the low one the operation.
import os
import sys

CONNECT, DISCONNECT, ALLOC, FREE, OPEN, CLOSE, MIGRATE = 0, 1, 2, 3, 4, 5, 6
FAULT, ADVISE, REVOKE, QUERY, SEAL_WRITE, PUMP = 9, 11, 12, 13, 14, 15
NODE0, NODE1, EMU0, EMU1 = 0, 1, 2, 3
ASYNC, DISCARD = 1, 2
SYSTEM, PREFERRED = 4, 5


def op(client, code, *args):
    return bytes([client << 4 | code, *args])


def migrate(c, flags, target, alloc, first, count):
    return op(c, MIGRATE, flags, target, alloc, first, count)


def fault(c, alloc, chunk):
    return op(c, FAULT, 0, 0, alloc, chunk, 0)


seeds = {
    # The deadlock the engine had: an async migration of 16 chunks to a
    # device pool, and a fault on its last chunk while it runs.
    "fault-during-async": op(0, CONNECT) + op(0, ALLOC, 15) + op(0, OPEN, EMU0)
    + op(0, PUMP, 3) + migrate(0, ASYNC, 0, 0, 0, 15) + fault(0, 0, 15) + op(0, PUMP, 3),
    # Two clients, a revoke of a pool while both migrate into it.
    "revoke-mid-migration": op(0, CONNECT) + op(1, CONNECT) + op(0, ALLOC, 15)
    + op(1, ALLOC, 15) + op(0, OPEN, EMU0) + op(1, OPEN, EMU0) + op(0, PUMP, 2)
    + migrate(0, ASYNC, 0, 0, 0, 15) + migrate(1, ASYNC, 0, 0, 0, 15)
    + op(0, REVOKE, 0) + op(1, PUMP, 3) + fault(1, 0, 3),
    # Advice, a move to the preferred location, a fault, a free.
    "advise-prefetch-fault": op(0, CONNECT) + op(0, ALLOC, 7) + op(0, OPEN, EMU1)
    + op(0, PUMP, 2) + op(0, ADVISE, 1, 0, 0, 0, 7) + migrate(0, 0, PREFERRED, 0, 0, 7)
    + fault(0, 0, 2) + op(0, QUERY, 0, 0, 7, 1) + op(0, FREE, 0),
    # DISCARD moves pool to pool and home, across two pools.
    "discard-ping-pong": op(0, CONNECT) + op(0, ALLOC, 7) + op(0, OPEN, EMU0)
    + op(0, OPEN, EMU1) + op(0, PUMP, 2) + migrate(0, DISCARD, 0, 0, 0, 7)
    + migrate(0, DISCARD, 1, 0, 0, 7) + migrate(0, 0, SYSTEM, 0, 0, 7),
    # A client that leaves with migrations in flight and handles open.
    "leave-mid-flight": op(0, CONNECT) + op(0, ALLOC, 15) + op(0, OPEN, EMU0)
    + op(0, PUMP, 2) + migrate(0, ASYNC, 0, 0, 0, 15) + op(0, DISCONNECT)
    + op(0, CONNECT) + op(0, ALLOC, 3),
    # A memfd sealed against writes after ALLOC: copies in and out of it
    # fail, inline ones too (a failed inline copy once overran the chunk
    # table).
    "sealed-memfd": op(0, CONNECT) + op(0, ALLOC, 15) + op(0, OPEN, EMU0) + op(0, PUMP, 2)
    + op(0, SEAL_WRITE, 0) + migrate(0, 0, 0, 0, 0, 15) + fault(0, 0, 15)
    + migrate(0, ASYNC, SYSTEM, 0, 0, 15),
    # Frees while a batch of two ranges runs, then the allocation is gone.
    "free-mid-batch": op(0, CONNECT) + op(0, ALLOC, 15) + op(0, ALLOC, 15)
    + op(0, OPEN, EMU0) + op(0, PUMP, 2)
    + op(0, MIGRATE, 0x80 | ASYNC, 0, 0, 0, 15, 0, 1, 0, 15) + op(0, FREE, 0)
    + fault(0, 1, 4),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                          "corpus", "fuzz_engine")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
