"""The timestamp merge of repartition mode, and the forwarded record's source headers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from streamdrift.service.records import forwarded_record, forwarded_source
from streamdrift.service.repartition import TimestampMerge


@dataclass(frozen=True)
class Rec:
    timestamp: int
    offset: int


def merge_of(*partitions: int, wait_s: float = 1.0) -> TimestampMerge[int, Rec]:
    merge: TimestampMerge[int, Rec] = TimestampMerge(wait_s=wait_s, max_buffered=3)
    merge.assign(partitions)
    return merge


def test_releases_oldest_first_across_partitions_when_all_are_read_to_their_end() -> None:
    merge = merge_of(0, 1)
    merge.add(0, [Rec(1, 0), Rec(4, 1), Rec(5, 2)])
    merge.add(1, [Rec(2, 0), Rec(3, 1), Rec(9, 2)])
    released = merge.drain(lambda p: True, now=0.0)
    assert [r.timestamp for r in released] == [1, 2, 3, 4, 5, 9]


def test_equal_timestamps_go_to_the_lower_partition_first() -> None:
    merge = merge_of(0, 1)
    merge.add(1, [Rec(7, 200)])
    merge.add(0, [Rec(7, 100)])
    assert merge.drain(lambda p: True, now=0.0) == [Rec(7, 100), Rec(7, 200)]


def test_waits_for_an_empty_partition_that_is_not_read_to_its_end() -> None:
    merge = merge_of(0, 1, wait_s=1.0)
    merge.add(0, [Rec(1, 0), Rec(2, 1)])
    assert merge.drain(lambda p: p == 0, now=10.0) == []  # partition 1 may still deliver older records
    assert merge.drain(lambda p: p == 0, now=10.5) == []
    merge.add(1, [Rec(0, 0)])
    assert [r.timestamp for r in merge.drain(lambda p: p == 0, now=10.6)] == [0]
    # Partition 1 ran dry again, still not read to its end: the merge waits for it anew.
    assert merge.drain(lambda p: p == 0, now=10.7) == []


def test_goes_on_without_a_silent_partition_after_the_wait() -> None:
    merge = merge_of(0, 1, wait_s=1.0)
    merge.add(0, [Rec(1, 0), Rec(2, 1)])
    assert merge.drain(lambda p: False, now=10.0) == []
    assert [r.timestamp for r in merge.drain(lambda p: False, now=11.0)] == [1, 2]
    merge.add(0, [Rec(3, 2)])
    assert [r.timestamp for r in merge.drain(lambda p: False, now=11.1)] == [3]  # still silent: no new wait


def test_stops_at_a_partition_that_runs_dry_mid_drain_and_is_not_read_to_its_end() -> None:
    merge = merge_of(0, 1)
    merge.add(0, [Rec(1, 0)])
    merge.add(1, [Rec(2, 0), Rec(3, 1)])
    # Partition 0's next record may be older than 2: only its buffered one goes.
    assert merge.drain(lambda p: p == 1, now=0.0) == [Rec(1, 0)]


def test_full_partitions_are_reported_and_drop_forgets_the_buffer() -> None:
    merge = merge_of(0, 1)
    merge.add(0, [Rec(1, 0), Rec(2, 1), Rec(3, 2)])
    assert merge.full() == [0]
    merge.drop(0)
    assert merge.full() == []
    assert merge.drain(lambda p: True, now=0.0) == []


@given(st.lists(st.lists(st.integers(0, 50), max_size=20), min_size=1, max_size=4), st.randoms())
def test_released_in_timestamp_order_whatever_the_arrival_order(
    per_partition: list[list[int]], rng: random.Random
) -> None:
    """Each partition's timestamps ascend (as a producer stamping in order writes them); whatever the order in
    which fetches deliver the pieces, once everything is read the release order is the global one."""
    streams = {p: [Rec(t, i) for i, t in enumerate(sorted(ts))] for p, ts in enumerate(per_partition)}
    merge = merge_of(*streams)
    delivered = dict.fromkeys(streams, 0)
    released: list[tuple[int, Rec]] = []
    origin = {id(r): p for p, recs in streams.items() for r in recs}
    while any(delivered[p] < len(streams[p]) for p in streams):
        p = rng.choice([p for p in streams if delivered[p] < len(streams[p])])
        take = rng.randint(1, 5)
        merge.add(p, streams[p][delivered[p] : delivered[p] + take])
        delivered[p] = min(len(streams[p]), delivered[p] + take)
        for r in merge.drain(lambda q: delivered[q] == len(streams[q]), now=0.0):
            released.append((origin[id(r)], r))
    expected = sorted(
        ((p, r) for p, recs in streams.items() for r in recs), key=lambda x: (x[1].timestamp, x[0])
    )
    assert released == expected


def test_a_forwarded_record_names_its_source_and_keeps_value_headers_and_timestamp() -> None:
    out = forwarded_record(
        "internal",
        "model-7",
        value=b'{"model_id":"model-7"}',
        headers=[("trace", b"abc"), ("streamdrift.source.offset", b"999")],
        source_topic="events",
        partition=3,
        offset=41,
        timestamp_ms=1_700_000_000_123,
    )
    assert (out.topic, out.key, out.value, out.timestamp_ms, out.partition) == (
        "internal",
        b"model-7",
        b'{"model_id":"model-7"}',
        1_700_000_000_123,
        None,
    )
    assert out.headers[0] == ("trace", b"abc")
    assert forwarded_source(out.headers) == ("events", 3, 41)  # a stale source header was replaced
    assert forwarded_source([("trace", b"abc")]) is None
    assert forwarded_source([*out.headers[:-1], ("streamdrift.source.offset", b"x")]) is None
