"""A log writer that the crash-durability test kills with SIGKILL at a random moment.

Run as ``python crash_writer.py HOME SEED`` with the node key's passphrase in
``$MEDLEDGER_PASSPHRASE``. It opens the node home, then appends random-size
batches forever. Each entry's bytes are a function of its index (``entry_bytes``), so the
parent can check every stored entry. The protocol on stdout, one line per event, each flushed
only after the call it reports has returned:

- ``START <size>``: the node is open and the log has ``size`` entries;
- ``ACK <first> <count>``: ``append`` returned, so entries [first, first + count) are durable;
- ``CKPT <size>``: ``checkpoint_if_grown`` returned a signed checkpoint of that size.

Any failure is printed to stderr and exits non-zero, so the parent can tell a crash it caused
from one the writer had by itself.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

MAX_BATCH = 300
CHECKPOINT_EVERY = 0.25  # chance of signing a checkpoint after an append


def entry_bytes(index: int) -> bytes:
    """The one valid content of entry ``index``: a prefix naming it, then 0..199 filler bytes."""
    return b"entry-%d-" % index + bytes([index % 251]) * ((index * 7919) % 200)


def run(home: Path, seed: int) -> None:
    from medledger.bootstrap import open_node

    rng = random.Random(seed)
    node = open_node(home)
    size = node.log.size()
    print(f"START {size}", flush=True)
    while True:
        count = rng.randint(1, MAX_BATCH)
        first = node.log.append([entry_bytes(i) for i in range(size, size + count)])
        if first != size:
            raise SystemExit(f"append returned index {first}, expected {size}")
        size += count
        print(f"ACK {first} {count}", flush=True)
        if rng.random() < CHECKPOINT_EVERY:
            checkpoint = node.log.checkpoint_if_grown()
            if checkpoint is not None:
                print(f"CKPT {checkpoint.size}", flush=True)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]))
