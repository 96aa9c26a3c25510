"""In-memory fakes of the ports (streamdrift/ports.py), for tests of the service without a broker.

Each fake records its calls in order (`calls`; fakes sharing a `journal` list also write them there, as
`"producer.flush"`, `"consumer.commit"`) and fails as an adapter does when told: `fail(call, error)`. The
producer checks the service keeps a transactional producer's contract (a transaction open around sends and
commits, nothing called once closed or abandoned) with `AssertionError`, which the service cannot swallow.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from streamdrift.errors import StreamdriftError
from streamdrift.ports import (
    Admin,
    Batch,
    Bound,
    CommitOffset,
    GroupMetadata,
    OutRecord,
    Reader,
    RebalanceHandler,
    TopicPartition,
)


class FakeGroupMetadata:
    """The consumer's group generation: opaque to the service, compared by identity in tests."""


class _Recorder:
    role = "fake"

    def __init__(self, journal: list[str] | None) -> None:
        self.calls: list[str] = []
        self.journal: list[str] = [] if journal is None else journal
        self._failures: dict[str, tuple[int, StreamdriftError]] = {}

    def fail(self, call: str, error: StreamdriftError, *, at: int = 1) -> None:
        """Raise `error` from the `at`-th call of `call` made from now on (once)."""
        self._failures[call] = (self.calls.count(call) + at, error)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        self.journal.append(f"{self.role}.{name}")
        failure = self._failures.get(name)
        if failure is not None and self.calls.count(name) == failure[0]:
            del self._failures[name]
            raise failure[1]


class FakeConsumer(_Recorder):
    """A group member holding `assigned`; `commit` stores offsets where `committed` finds them."""

    role = "consumer"

    def __init__(
        self, assignment: Collection[TopicPartition] = (), *, journal: list[str] | None = None
    ) -> None:
        super().__init__(journal)
        self.assigned: set[TopicPartition] = set(assignment)
        self.paused: set[TopicPartition] = set()
        self.pauses: list[set[TopicPartition]] = []
        self.resumes: list[set[TopicPartition]] = []
        self.seeks: list[tuple[TopicPartition, int | str]] = []  # an offset, "beginning" or "end"
        self.commits: list[dict[TopicPartition, CommitOffset]] = []
        self.committed_offsets: dict[TopicPartition, CommitOffset] = {}
        self.highwaters: dict[TopicPartition, int] = {}
        self.batches: list[Batch] = []  # handed out by `poll`, one a call
        self.metadata = FakeGroupMetadata()
        self.topics: list[str] = []
        self.handler: RebalanceHandler | None = None

    def subscribe(self, topics: Sequence[str], handler: RebalanceHandler) -> None:
        self._call("subscribe")
        self.topics, self.handler = list(topics), handler

    def rejoin(self) -> None:
        self._call("rejoin")

    def poll(self, timeout_s: float) -> Batch:
        self._call("poll")
        return self.batches.pop(0) if self.batches else {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._call("pause")
        self.pauses.append(set(partitions))
        self.paused |= set(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._call("resume")
        self.resumes.append(set(partitions))
        self.paused -= set(partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._call("seek")
        self.seeks.append((partition, offset))

    def seek_to_beginning(self, partition: TopicPartition) -> None:
        self._call("seek")
        self.seeks.append((partition, "beginning"))

    def seek_to_end(self, partition: TopicPartition) -> None:
        self._call("seek")
        self.seeks.append((partition, "end"))

    def committed(self, partition: TopicPartition) -> CommitOffset | None:
        return self.committed_offsets.get(partition)

    def commit(self, offsets: Mapping[TopicPartition, CommitOffset]) -> None:
        self._call("commit")
        self.commits.append(dict(offsets))
        self.committed_offsets.update(offsets)

    def group_metadata(self) -> GroupMetadata:
        return self.metadata

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.highwaters.get(partition)

    def read_to_end(self, partition: TopicPartition) -> bool:
        return True

    def offset_at(self, partition: TopicPartition, bound: Bound) -> int:
        return 0 if bound.offset is None else bound.offset

    def seconds_since_heartbeat(self) -> float:
        return 0.0

    def close(self) -> None:
        self._call("close")


class FakeProducer(_Recorder):
    """Keeps what was sent (`sent`) and the offsets sent to transactions, with their group (`offsets`)."""

    role = "producer"

    def __init__(
        self,
        *,
        transactional_id: str | None = None,
        transaction_timeout_ms: int | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(journal)
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.sent: list[OutRecord] = []
        self.offsets: list[tuple[dict[TopicPartition, CommitOffset], GroupMetadata]] = []
        self.in_transaction = False

    @property
    def abandoned(self) -> bool:
        return "abandon" in self.calls

    def _call(self, name: str) -> None:
        finished = {"close", "abandon"} & set(self.calls)
        assert not finished, f"{name} called on a producer after {finished.pop()}"
        super()._call(name)

    def _in_transaction(self, name: str) -> None:
        assert self.transactional_id is None or self.in_transaction, f"{name} outside a transaction"

    def init_transactions(self) -> None:
        assert self.transactional_id is not None, "init_transactions on a producer without transactional id"
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        assert "init_transactions" in self.calls, "begin_transaction before init_transactions"
        assert not self.in_transaction, "begin_transaction inside a transaction"
        self._call("begin_transaction")
        self.in_transaction = True

    def send(self, record: OutRecord) -> None:
        self._in_transaction("send")
        self._call("send")
        self.sent.append(record)

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, CommitOffset], group: GroupMetadata
    ) -> None:
        self._in_transaction("send_offsets_to_transaction")
        self._call("send_offsets_to_transaction")
        self.offsets.append((dict(offsets), group))

    def commit_transaction(self) -> None:
        self._in_transaction("commit_transaction")
        self._call("commit_transaction")
        self.in_transaction = False

    def abort_transaction(self) -> None:
        self._in_transaction("abort_transaction")
        self._call("abort_transaction")
        self.in_transaction = False

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")

    def abandon(self) -> None:
        self._call("abandon")


class FakeTransport:
    """Hands out fake clients and keeps every one made; `producers_made` counts the producers."""

    def __init__(self, *, journal: list[str] | None = None) -> None:
        self.name = "fake"
        self.journal = journal
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []

    @property
    def producers_made(self) -> int:
        return len(self.producers)

    def group_consumer(
        self,
        *,
        group_id: str,
        instance_id: str,
        max_poll_records: int,
        auto_offset_reset: str,
        session_timeout_ms: int,
        max_poll_interval_ms: int,
    ) -> FakeConsumer:
        consumer = FakeConsumer(journal=self.journal)
        self.consumers.append(consumer)
        return consumer

    def reader(self, *, max_poll_records: int = 500, large_fetches: bool = False) -> Reader:
        raise NotImplementedError("no reader in the fakes: these tests restore nothing from Kafka")

    def producer(
        self, *, transactional_id: str | None = None, transaction_timeout_ms: int | None = None
    ) -> FakeProducer:
        producer = FakeProducer(
            transactional_id=transactional_id,
            transaction_timeout_ms=transaction_timeout_ms,
            journal=self.journal,
        )
        self.producers.append(producer)
        return producer

    def connect(self) -> Admin:
        raise NotImplementedError("no admin client in the fakes")

    def raise_if_misconfigured(self) -> None:
        """Never: a fake transport is configured as it should be."""
