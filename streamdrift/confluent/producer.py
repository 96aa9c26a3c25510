"""librdkafka's producer as the ports' `Producer`: idempotent, transactional when given a transactional id.

Every blocking call is bounded by librdkafka's own timeouts (the transport's call timeout), so no call needs
a thread of its own. A failed write is reported to the delivery callback, served by `poll` and `flush`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent.errors import INSTANCE_ID_HINT, REFUSALS, describe, translate_exception
from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, KafkaUnavailable
from streamdrift.ports import CommitOffset, GroupMetadata, OutRecord, TopicPartition

CLOSE_TIMEOUT_S = 10.0
_FULL_QUEUE_WAIT_S = 0.1
_CAUSE_WAIT_S = 1.0


class ConfluentProducer:
    def __init__(self, producer: Producer, *, transactional: bool, call_timeout_s: float) -> None:
        self._producer: Producer | None = producer
        self._transactional = transactional
        self._call_timeout_s = call_timeout_s
        self._failed = 0  # writes failed since the last flush
        self._first_failure: str | None = None
        self._refused: KafkaError | None = None  # a write the cluster refused (not authorized, too large)
        self._fatal: KafkaError | None = None  # what made the producer unusable (a fence, most often)
        self._in_transaction = False  # begun and not yet committed (a failed one is never reused)

    @property
    def _client(self) -> Producer:
        if self._producer is None:
            raise FatalServiceError("using a producer after it was closed")
        return self._producer

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Errors as streamdrift's (errors.py). Once librdkafka has failed the producer for good, it reports
        every later call as `_FATAL` only: those are translated as the error that failed it."""
        try:
            yield
        except (KafkaException, BufferError) as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.code() == KafkaError._FATAL and self._fatal is None:
                self._serve_callbacks(lambda: self._fatal is not None)
            if error is not None and error.code() == KafkaError._STATE and self._transactional:
                # The transaction failed on an earlier write: its cause comes with that write's delivery,
                # or, when librdkafka purged the write first, from the transaction itself.
                self._serve_callbacks(lambda: self._refused is not None)
                if self._refused is None:
                    self._ask_why_the_transaction_failed()
                if self._refused is not None:
                    exc = KafkaException(self._refused)
            if error is not None and error.code() == KafkaError._FATAL and self._fatal is not None:
                exc = KafkaException(self._fatal)
            elif error is not None and error.code() == KafkaError._FATAL:
                # Failed for good, and the cause never came. A fence, most often: after the broker aborted a
                # transaction open too long, the service outlives it with a new producer; otherwise a new one
                # (same transactional id) could fence a newer instance that fenced this one: it must stop.
                if self._transactional:
                    raise Fenced(
                        f"{action}: the producer failed for good without naming the cause "
                        f"({describe(error)}); most often, fenced by a newer instance with the same "
                        f"transactional id {INSTANCE_ID_HINT}"
                    ) from exc
                raise FatalServiceError(f"{action}: {describe(error)}") from exc
            elif error is not None and error.fatal():
                self._fatal = self._fatal or error
            raise translate_exception(action, exc, transactional=self._transactional) from exc

    def _serve_callbacks(self, known: Callable[[], bool]) -> None:
        """A call failed with `_FATAL` or `_STATE` only: the cause (a fence, a refused write) reaches the
        error or delivery callback, which librdkafka serves in `poll`. Served here, briefly, until it is
        `known`, before the error is classified."""
        deadline = time.monotonic() + _CAUSE_WAIT_S
        while not known() and self._producer is not None and time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a failed producer may raise from its callbacks
                self._producer.poll(0.05)

    def _ask_why_the_transaction_failed(self) -> None:
        """A refused partition (AddPartitionsToTxn: not authorized) puts librdkafka's transaction in its
        abortable-error state and purges the queued writes, so no delivery names the refusal; every later
        transactional call is refused with `_STATE`, but a call that needs a state the transaction is not in
        is answered with the error that failed it (rdkafka_txnmgr.c, `rd_kafka_txn_require_state`).
        `begin_transaction` is that call: inside a transaction it can only fail, and changes nothing."""
        if not self._in_transaction or self._producer is None:
            return
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            cause = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if cause is not None and cause.code() in REFUSALS:
                self._refused = cause

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback, for this producer (the transport's connection watch hears it too)."""
        if error.fatal() and error.code() != KafkaError._FATAL:
            self._fatal = self._fatal or error
        if error.code() in REFUSALS:
            self._refused = self._refused or error

    def init_transactions(self) -> None:
        with self._translated("initialising transactions"):
            self._client.init_transactions(self._call_timeout_s)

    def begin_transaction(self) -> None:
        with self._translated("beginning a transaction"):
            self._client.begin_transaction()
        self._in_transaction = True

    def send(self, record: OutRecord) -> None:
        """Queue the record; when librdkafka's queue is full, wait for room (serving deliveries) up to the
        call timeout."""
        client = self._client
        deadline = time.monotonic() + self._call_timeout_s
        with self._translated("sending a record"):
            while True:
                try:
                    client.produce(
                        record.topic, value=record.value, key=record.key,
                        partition=-1 if record.partition is None else record.partition,
                        on_delivery=self._delivered, timestamp=record.timestamp_ms or 0,
                        headers=list(record.headers),
                    )  # fmt: skip
                    break
                except BufferError:
                    if time.monotonic() >= deadline:
                        raise
                    client.poll(_FULL_QUEUE_WAIT_S)
            client.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            if error.fatal() and error.code() != KafkaError._FATAL:
                self._fatal = self._fatal or error
            if error.code() in REFUSALS:
                self._refused = self._refused or error
            self._failed += 1
            if self._first_failure is None:
                self._first_failure = f"{message.topic()}: {describe(error)}"

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, CommitOffset], group: GroupMetadata
    ) -> None:
        positions = [Theirs(tp.topic, tp.partition, c.offset, c.metadata) for tp, c in offsets.items()]
        try:
            with self._translated("committing the transaction"):
                self._client.send_offsets_to_transaction(positions, group, self._call_timeout_s)
        except Fenced as fence:
            cause = fence.__cause__
            error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.FENCED_INSTANCE_ID:
                # The member the offsets name is not the group's any more (its session expired while the
                # broker was away, and it joined again): the group moved on, as for a stale generation.
                raise CheckpointRefused(f"committing the transaction: {describe(error)}") from fence
            raise

    def commit_transaction(self) -> None:
        with self._translated("committing the transaction"):
            self._client.commit_transaction(self._call_timeout_s)
        self._in_transaction = False

    def abort_transaction(self) -> None:
        with self._translated("aborting the transaction"):
            self._client.abort_transaction(self._call_timeout_s)
        self._in_transaction = False

    def flush(self) -> None:
        """Waits for every write. Outside a transaction a failed one is `FatalServiceError`; inside one the
        commit fails instead (librdkafka then requires an abort), as with the kafka-python transport."""
        with self._translated("flushing alerts"):
            left = self._client.flush(self._call_timeout_s)
        if left:
            raise KafkaUnavailable(
                f"flushing alerts: {left} writes not delivered within {self._call_timeout_s:.0f} s"
            )
        failed, first = self._failed, self._first_failure
        self._failed, self._first_failure = 0, None
        if failed and not self._transactional:
            raise FatalServiceError(f"{failed} writes failed, first: {first}")

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        # What is left undelivered is not waited for; a producer failed for good (fenced) may raise anything
        # from its callbacks here, and closing must not hide the error that ended the run.
        with contextlib.suppress(Exception):
            producer.flush(CLOSE_TIMEOUT_S)

    def abandon(self) -> None:
        """Let go of a producer that may be wedged, without waiting: whatever it still holds is purged, and
        it is destroyed in a thread of its own (destroying waits for its requests in flight)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return

        def destroy(held: list[Producer]) -> None:
            try:
                held[0].purge(in_queue=True, in_flight=True, blocking=False)
                held[0].poll(0)
            except (KafkaException, RuntimeError):  # already failed: nothing to purge
                pass
            held.clear()  # the last reference: librdkafka destroys the client here, not in the caller

        threading.Thread(
            target=destroy, args=([producer],), name="confluent: abandoning", daemon=True
        ).start()
