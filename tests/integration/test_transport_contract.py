"""The ports' contract (streamdrift/ports.py), held by every transport against the real broker: topics, key
placement, transactions and what read_committed readers see of them, fences, committed offsets with their
metadata, the group consumer's rebalance handler (the whole assignment, pause and seek inside it), reading to
the end, offsets by time, and end offsets that stop at an open transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from streamdrift.config.model import KafkaSettings
from streamdrift.errors import Fenced
from streamdrift.ports import (
    Bound,
    CommitOffset,
    GroupConsumer,
    InRecord,
    OutRecord,
    Reader,
    TopicPartition,
    TopicSpec,
    Transport,
)
from tests.conftest import unique_name

CALL_TIMEOUT_S = 20.0
WAIT_S = 20.0

try:
    from streamdrift.kafka.transport import KafkaPythonTransport
except ImportError:  # not written yet
    KafkaPythonTransport = None  # type: ignore[assignment,misc]

TRANSPORTS = [
    pytest.param(
        "kafka-python",
        marks=pytest.mark.xfail(
            KafkaPythonTransport is None, reason="streamdrift.kafka.transport is not there yet", strict=False
        ),
    ),
    "confluent",
]


def make_transport(name: str, bootstrap_servers: str, rebalance: str = "eager") -> Transport:
    settings = KafkaSettings(bootstrap_servers=bootstrap_servers, client_id="streamdrift-contract")
    if name == "confluent":
        from streamdrift.confluent import ConfluentTransport

        return ConfluentTransport(settings, call_timeout_s=CALL_TIMEOUT_S, rebalance=rebalance)
    if KafkaPythonTransport is None:
        pytest.xfail("streamdrift.kafka.transport is not there yet")
    return KafkaPythonTransport(settings, call_timeout_s=CALL_TIMEOUT_S, rebalance=rebalance)


class Clients:
    """The transport under test, and every client made with it, closed at the end of the test."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._closers: list[Callable[[], None]] = []
        self.admin = transport.connect()
        self._closers.append(self.admin.close)

    def topic(self, partitions: int = 1) -> str:
        name = unique_name("contract")
        assert self.admin.ensure_topics({name: TopicSpec(partitions=partitions, replication_factor=1)}) == [
            name
        ]
        return name

    def producer(self, transactional_id: str | None = None) -> Any:
        producer = self.transport.producer(transactional_id=transactional_id, transaction_timeout_ms=60_000)
        self._closers.append(producer.close)
        return producer

    def reader(self) -> Reader:
        reader = self.transport.reader(max_poll_records=100)
        self._closers.append(reader.close)
        return reader

    def group_consumer(self, group_id: str, member: str = "1") -> GroupConsumer:
        consumer = self.transport.group_consumer(
            group_id=group_id, instance_id=f"{group_id}-{member}", max_poll_records=100,
            auto_offset_reset="earliest", session_timeout_ms=10_000, max_poll_interval_ms=60_000,
        )  # fmt: skip
        self._closers.append(consumer.close)
        return consumer

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


@pytest.fixture(params=TRANSPORTS)
def transport_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def clients(transport_name: str, bootstrap_servers: str) -> Iterator[Clients]:
    made = Clients(make_transport(transport_name, bootstrap_servers))
    try:
        yield made
    finally:
        made.close()


def record(topic: str, key: bytes | None, value: bytes, **fields: Any) -> OutRecord:
    return OutRecord(topic=topic, key=key, value=value, headers=[("h", b"1")], **fields)


def read_all(reader: Reader, partitions: Collection[TopicPartition]) -> list[InRecord]:
    """Every record of the partitions up to their end offsets (read_committed: the last stable offset)."""
    wanted = sorted(partitions)
    reader.assign(wanted)
    ends = reader.end_offsets(wanted)
    for tp in wanted:
        reader.seek(tp, reader.beginning_offsets([tp])[tp])
    found: list[InRecord] = []
    deadline = time.monotonic() + WAIT_S
    while any(reader.position(tp) < ends[tp] for tp in wanted):
        assert time.monotonic() < deadline, f"read {len(found)} records, ends {ends}"
        for records in reader.poll(0.5).values():
            found.extend(records)
    return found


def poll_until(consumer: GroupConsumer | Reader, done: Callable[[], bool], into: list[InRecord]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, "waited too long"
        for records in consumer.poll(0.2).values():
            into.extend(records)


def test_topics_are_created_once_and_counted(clients: Clients) -> None:
    name, missing = unique_name("contract"), unique_name("contract-missing")
    wanted = {name: TopicSpec(partitions=3, replication_factor=1, configs={"cleanup.policy": "compact"})}
    assert clients.admin.ensure_topics(wanted) == [name]
    assert clients.admin.ensure_topics(wanted) == []  # already there: counts as present
    assert clients.admin.partition_counts([name, missing]) == {name: 3}
    reader = clients.reader()
    assert reader.partitions_of(name) == [0, 1, 2]
    assert reader.partitions_of(missing) == []


def test_keys_land_on_the_same_partitions_whichever_transport_wrote_them(bootstrap_servers: str) -> None:
    """murmur2, as the Java clients place keys: alerts and repartitioned events of a key meet on one
    partition whichever transport wrote them; an explicit partition is kept."""
    placements: dict[str, dict[bytes, int]] = {}
    for name in ("kafka-python", "confluent"):
        clients = Clients(make_transport(name, bootstrap_servers))
        try:
            topic = clients.topic(partitions=7)
            producer = clients.producer()
            keys = [f"model-{i}".encode() for i in range(60)]
            for key in keys:
                producer.send(record(topic, key, b"v"))
            producer.send(record(topic, b"model-0", b"pinned", partition=6))
            producer.send(record(topic, None, b"unkeyed"))
            producer.flush()
            found = read_all(clients.reader(), [TopicPartition(topic, p) for p in range(7)])
        finally:
            clients.close()
        assert len(found) == len(keys) + 2
        assert [(r.partition, r.headers) for r in found if r.value == b"pinned"] == [(6, [("h", b"1")])]
        placements[name] = {r.key: r.partition for r in found if r.key is not None and r.value == b"v"}
        assert len(set(placements[name].values())) > 3
    assert placements["confluent"] == placements["kafka-python"]


def test_committed_transactions_are_seen_aborted_ones_never_and_a_newer_producer_fences(
    clients: Clients,
) -> None:
    source, sink = clients.topic(), clients.topic()
    group = unique_name("contract-group")
    consumer = clients.group_consumer(group)
    assigned: list[set[TopicPartition]] = []
    consumer.subscribe([source], Handler(consumer, assigned))
    poll_until(consumer, lambda: bool(assigned and assigned[-1]), [])
    transactional_id = unique_name("contract-tx")
    first = clients.producer(transactional_id)
    first.init_transactions()
    first.begin_transaction()
    for i in range(3):
        first.send(record(sink, b"k", f"committed-{i}".encode()))
    where = TopicPartition(source, 0)
    first.send_offsets_to_transaction(
        {where: CommitOffset(5, "streamdrift.replay_from=2")}, consumer.group_metadata()
    )
    first.commit_transaction()
    assert consumer.committed(where) == CommitOffset(5, "streamdrift.replay_from=2")

    first.begin_transaction()
    first.send(record(sink, b"k", b"aborted"))
    first.flush()
    second = clients.producer(transactional_id)
    second.init_transactions()  # aborts the first one's open transaction, and fences it
    with pytest.raises(Fenced, match="fenced by a newer instance with the same transactional id"):
        first.commit_transaction()
    with pytest.raises(Fenced, match="fenced by a newer instance with the same transactional id"):
        first.send(record(sink, b"k", b"zombie"))
        first.flush()
    first.abandon()
    second.begin_transaction()
    second.send(record(sink, b"k", b"committed-3"))
    second.commit_transaction()
    values = [r.value for r in read_all(clients.reader(), [TopicPartition(sink, 0)])]
    assert values == [b"committed-0", b"committed-1", b"committed-2", b"committed-3"]


class Handler:
    """Pauses every partition it is newly given and seeks it to offset 7, as the service's handler pauses
    the partitions it must restore before reading them; `resume`: and resumes them at once."""

    def __init__(
        self, consumer: GroupConsumer, assigned: list[set[TopicPartition]], *, resume: bool = False
    ) -> None:
        self.consumer, self.assigned, self.resume = consumer, assigned, resume
        self.revoked: list[set[TopicPartition]] = []

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        new = partitions - (self.assigned[-1] if self.assigned else set())
        self.assigned.append(set(partitions))
        assert self.consumer.assignment() == partitions
        self.consumer.pause(new)
        for tp in new:
            self.consumer.seek(tp, 7)
        if self.resume:
            self.consumer.resume(new)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(set(partitions))

    def on_lost(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(set(partitions))


def test_the_handler_gets_the_whole_assignment_and_can_pause_and_seek_in_it(clients: Clients) -> None:
    topic = clients.topic(partitions=3)
    partitions = {TopicPartition(topic, p) for p in range(3)}
    producer = clients.producer()
    for p in range(3):
        for i in range(10):
            producer.send(record(topic, None, f"{p}-{i}".encode(), partition=p))
    producer.flush()
    consumer = clients.group_consumer(unique_name("contract-group"))
    assigned: list[set[TopicPartition]] = []
    consumer.subscribe([topic], Handler(consumer, assigned))
    found: list[InRecord] = []
    # An assignment may come empty first (kafka-python, before it knows the new topic's partitions).
    poll_until(consumer, lambda: bool(assigned and assigned[-1]), found)
    assert assigned[-1] == partitions
    for _ in range(5):  # paused: nothing comes
        for records in consumer.poll(0.2).values():
            found.extend(records)
    assert found == []
    assert not any(consumer.read_to_end(tp) for tp in partitions)

    consumer.resume(partitions)
    poll_until(consumer, lambda: len(found) >= 9, found)
    assert sorted((r.partition, r.offset) for r in found) == [(p, o) for p in range(3) for o in (7, 8, 9)]
    poll_until(consumer, lambda: all(consumer.read_to_end(tp) for tp in partitions), found)
    assert len(found) == 9
    assert consumer.highwater(TopicPartition(topic, 0)) == 10
    producer.send(record(topic, None, b"one more", partition=0))
    producer.flush()
    assert not consumer.read_to_end(TopicPartition(topic, 0))  # the broker knows of one more

    consumer.commit({TopicPartition(topic, 1): CommitOffset(10, "streamdrift.replay_from=7")})
    assert consumer.committed(TopicPartition(topic, 1)) == CommitOffset(10, "streamdrift.replay_from=7")
    assert consumer.committed(TopicPartition(topic, 2)) is None
    # The coordinator answers the member's heartbeats (every 3 s): inf before the first one.
    poll_until(consumer, lambda: consumer.seconds_since_heartbeat() < 5, found)


def test_joining_again_twice_with_no_assignment_between_ends_assigned(clients: Clients) -> None:
    """The service rejoins a member left waiting for an assignment (rebalance.py), and once more if that
    brought none; on librdkafka the second time replaces the consumer (group.py). Either way the member ends
    up assigned its partitions again and reads from where the handler seeks."""
    topic = clients.topic(partitions=2)
    partitions = {TopicPartition(topic, p) for p in range(2)}
    producer = clients.producer()
    for p in range(2):
        for i in range(10):
            producer.send(record(topic, None, f"{p}-{i}".encode(), partition=p))
    producer.flush()
    consumer = clients.group_consumer(unique_name("contract-group"))
    assigned: list[set[TopicPartition]] = []
    handler = Handler(consumer, assigned, resume=True)
    consumer.subscribe([topic], handler)
    found: list[InRecord] = []
    poll_until(consumer, lambda: bool(assigned and assigned[-1]), found)
    assert assigned[-1] == partitions

    consumer.rejoin()
    consumer.rejoin()  # no poll in between: the first rejoin cannot have brought an assignment
    assigned.clear()
    found.clear()
    poll_until(consumer, lambda: bool(assigned and assigned[-1]), found)
    assert assigned[-1] == partitions
    poll_until(consumer, lambda: len(found) >= 6, found)
    assert sorted((r.partition, r.offset) for r in found) == [(p, o) for p in range(2) for o in (7, 8, 9)]


@pytest.mark.parametrize(
    "transport_name",
    [
        "kafka-python",
        "confluent",
    ],
)
def test_cooperative_rebalancing_hands_each_member_its_whole_assignment(
    transport_name: str, bootstrap_servers: str
) -> None:
    """A second member joins: the first gives up only what moves (on_revoked) and then hears of all it keeps
    (on_assigned, the whole assignment); the second pauses and seeks what it was given, inside the handler."""
    clients = Clients(make_transport(transport_name, bootstrap_servers, rebalance="cooperative"))
    try:
        topic = clients.topic(partitions=4)
        partitions = {TopicPartition(topic, p) for p in range(4)}
        producer = clients.producer()
        for p in range(4):
            for i in range(10):
                producer.send(record(topic, None, f"{p}-{i}".encode(), partition=p))
        producer.flush()
        group = unique_name("contract-group")
        first, second = clients.group_consumer(group, "a"), clients.group_consumer(group, "b")
        first_assigned: list[set[TopicPartition]] = []
        first_handler = Handler(first, first_assigned, resume=True)
        first.subscribe([topic], first_handler)
        read: list[InRecord] = []
        poll_until(first, lambda: first.assignment() == partitions and len(read) >= 12, read)
        second_assigned: list[set[TopicPartition]] = []
        second.subscribe([topic], Handler(second, second_assigned, resume=True))
        from_second: list[InRecord] = []

        def both_have_some() -> bool:
            for records in first.poll(0.1).values():
                read.extend(records)
            return bool(first.assignment() and second.assignment())

        poll_until(second, both_have_some, from_second)
        poll_until(second, lambda: len(from_second) >= 3 * len(second.assignment()), from_second)
        kept, moved = first.assignment(), second.assignment()
        revoked = list(first_handler.revoked)  # before closing: a closing member may give up the rest
    finally:
        clients.close()
    assert kept | moved == partitions and not kept & moved
    assert revoked == [moved]  # only what moved
    assert first_assigned[-1] == kept  # the whole assignment, not only what was added
    assert second_assigned[-1] == moved
    assert sorted((r.partition, r.offset) for r in from_second) == sorted(
        (tp.partition, offset) for tp in moved for offset in (7, 8, 9)
    )


def test_offsets_by_time_and_end_offsets_that_stop_at_an_open_transaction(clients: Clients) -> None:
    topic = clients.topic()
    tp = TopicPartition(topic, 0)
    producer = clients.producer(unique_name("contract-tx"))
    producer.init_transactions()
    producer.begin_transaction()
    hour_ago = int(time.time() * 1000) - 3_600_000
    times = [hour_ago, hour_ago + 1000, hour_ago + 2000]
    for i, at in enumerate(times):
        producer.send(record(topic, b"k", f"v{i}".encode(), timestamp_ms=at))
    producer.commit_transaction()  # offsets 0-2, the commit marker (stamped now) at 3
    reader = clients.reader()
    reader.assign([tp])
    assert reader.offset_at(tp, Bound(time_ms=times[1])) == 1
    assert reader.offset_at(tp, Bound(time_ms=times[1] - 500)) == 1
    assert reader.offset_at(tp, Bound(time_ms=hour_ago + 7_200_000)) == 4  # none at or after: the end
    assert reader.offset_at(tp, Bound(offset=2)) == 2

    producer.begin_transaction()
    producer.send(record(topic, b"k", b"open"))
    producer.flush()  # written, not committed: the last stable offset stays before it
    assert reader.end_offsets([tp]) == {tp: 4}
    assert reader.beginning_offsets([tp]) == {tp: 0}
    assert [r.value for r in read_all(reader, [tp])] == [b"v0", b"v1", b"v2"]
    assert reader.position(tp) == 4
    producer.commit_transaction()  # the broker writes the commit marker after: the end moves soon after
    poll_until(reader, lambda: reader.end_offsets([tp]) == {tp: 6}, [])
    assert [r.timestamp for r in read_all(reader, [tp])][:3] == times
