"""The etcd ordering adapter against a real 3-member etcd cluster on loopback."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from medledger.adapters.etcd_cluster import EtcdCluster
from medledger.adapters.etcd_http import EtcdClient
from medledger.adapters.etcd_ordering import Election, EtcdLog, NotLeaderError
from medledger.core.consortium.batch import Batch, decode_batch, seal_batch
from medledger.core.identity.keys import ParticipantKey

SUBMITTER = ParticipantKey.from_seed(b"\x07" * 32)


def sealed(n: int = 0) -> tuple[str, bytes]:
    batch = Batch("net", secrets.token_hex(16), SUBMITTER.did, 1000 + n, (b"{}",))
    return batch.batch_id, seal_batch(batch, SUBMITTER.sign).wire


@pytest.fixture
def log(etcd3: EtcdCluster) -> Iterator[EtcdLog]:
    """A fresh key prefix in the shared cluster; its client closed afterwards."""
    client = EtcdClient(etcd3.endpoints, timeout_s=2.0)
    yield EtcdLog(client, f"/t/{secrets.token_hex(4)}")
    client.close()


def ids_in_order(log: EtcdLog) -> list[str]:
    out: list[str] = []
    position = 1
    while True:
        items, _ = log.read(position)
        if not items:
            return out
        for p, raw in items:
            assert p == position, "positions are contiguous"
            out.append(decode_batch(raw).batch.batch_id)
            position += 1


def test_fenced_appends_take_consecutive_positions_read_back_in_pages(log: EtcdLog) -> None:
    fence = Election(log, b'{"did":"a"}').campaign()
    assert fence is not None
    written = []
    for i in range(10):
        batch_id, wire = sealed(i)
        assert log.append(batch_id, wire, fence) == i + 1
        written.append(batch_id)
    assert ids_in_order(log) == written  # paginated: 3 batches per range read
    assert log.head() == 10


def test_only_one_submitter_is_elected_and_a_stale_fence_is_refused(log: EtcdLog) -> None:
    first, second = Election(log, b'{"did":"a"}'), Election(log, b'{"did":"b"}')
    old = first.campaign()
    assert old is not None
    assert second.campaign() is None, "one submitter at a time"
    first.resign()  # its lease is revoked: the leader key goes with it
    new = second.campaign()
    assert new is not None
    batch_id, wire = sealed()
    with pytest.raises(NotLeaderError):
        log.append(batch_id, wire, old)
    assert log.append(batch_id, wire, new) == 1
    assert ids_in_order(log) == [batch_id]


def test_appends_resume_after_kill_9_of_the_etcd_leader_without_loss_or_duplicate(
    etcd3: EtcdCluster, log: EtcdLog
) -> None:
    election = Election(log, b'{"did":"a"}', ttl_s=10)
    fence = election.campaign()
    assert fence is not None
    acknowledged: list[str] = []
    times: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            batch_id, wire = sealed(i)
            log.append(batch_id, wire, fence)  # returns only once the batch is in etcd
            acknowledged.append(batch_id)
            times.append(time.monotonic())
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acknowledged) < 20:
            time.sleep(0.01)
        victim = etcd3.leader()
        killed_at = time.monotonic()
        etcd3.kill(victim)
        while not any(t > killed_at + 0.01 for t in times[-5:]) or len(acknowledged) < 60:
            assert time.monotonic() - killed_at < 30, "appends did not resume"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=60)
    stall = min(t for t in times if t > killed_at) - killed_at
    etcd3.start_member(victim)
    in_log = ids_in_order(log)
    assert sorted(set(in_log)) == sorted(in_log), "no batch is written twice"
    assert in_log[: len(acknowledged)] == acknowledged, "every acknowledged batch, in order"
    assert stall < 10.0, f"appends stalled {stall:.2f} s"


def test_a_watch_wakes_readers_and_pruning_bounds_the_log(etcd3: EtcdCluster, log: EtcdLog) -> None:
    fence = Election(log, b'{"did":"a"}').campaign()
    assert fence is not None
    woken = threading.Event()
    stop = threading.Event()
    revision = log.client.range(log.k_seq).revision + 1
    watcher = threading.Thread(target=log.watch_changes, args=(revision, woken.set, stop))
    watcher.start()
    try:
        for i in range(12):
            log.append(*sealed(i), fence)
        assert woken.wait(5), "the watch woke the reader"
    finally:
        stop.set()
        log.client.put(log.prefix + b"poke", b"")  # lets the streaming watch return
        watcher.join(timeout=10)
    log.prune(below_position=10, below_height=10)
    assert log.floor() == 10
    items, _ = log.read(1)
    assert [p for p, _ in items] == [10, 11, 12]
    log.defragment_all(etcd3.endpoints)  # one member at a time
    assert log.head() == 12
