"""Building kafka-python clients from the config, and translating their errors."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition

from streamdrift.config.model import KafkaSettings
from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, KafkaUnavailable
from streamdrift.kafka.batches import read_batches_in_one_pass

# Errors no retry can fix, even inside a transaction: the cluster refuses this client or this data.
_REFUSALS = (
    kafka_errors.AuthorizationError,
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTransactionTimeoutError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.UnsupportedCompressionTypeError,
)


@contextlib.contextmanager
def translated_errors(action: str, *, transactional: bool = False) -> Iterator[None]:
    """Re-raise kafka-python's errors as streamdrift's, classified by what the caller must do.

    `transactional`: a call on the transactional producer. Any failure there other than a fence or a refusal
    leaves the transaction's outcome to the broker (kafka-python moves the producer into an error state, often
    as a bare `KafkaError` naming a timeout): `KafkaUnavailable`, so that the caller rolls back with a new
    producer, whose initialisation settles the old transaction first.
    """
    try:
        yield
    except _FENCES as exc:
        raise _fenced(action) from exc
    except kafka_errors.FencedInstanceIdError as exc:
        raise Fenced(
            f"{action}: another member joined the group with this instance's id "
            "(give every replica its own processing.instance_id / STREAMDRIFT_INSTANCE_ID)"
        ) from exc
    except (
        kafka_errors.CommitFailedError,
        kafka_errors.IllegalGenerationError,
        kafka_errors.UnknownMemberIdError,
        kafka_errors.RebalanceInProgressError,
    ) as exc:
        raise CheckpointRefused(f"{action}: {exc}") from exc
    except (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError) as exc:
        raise KafkaUnavailable(f"{action}: the broker is unreachable ({type(exc).__name__})") from exc
    except _REFUSALS as exc:
        raise FatalServiceError(f"{action}: {_refusal(exc)}") from exc
    except kafka_errors.KafkaError as exc:
        if _names(exc, _FENCES):  # a fence kafka-python stored and now reports inside a bare KafkaError
            raise _fenced(action) from exc
        if getattr(exc, "retriable", False) or (transactional and not _names(exc, _REFUSALS)):
            raise KafkaUnavailable(f"{action}: {exc}") from exc
        raise FatalServiceError(f"{action}: {exc}") from exc


_FENCES = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)


def _fenced(action: str) -> Fenced:
    return Fenced(
        f"{action}: fenced by a newer instance with the same transactional id "
        "(give every replica its own processing.instance_id / STREAMDRIFT_INSTANCE_ID)"
    )


def _refusal(exc: kafka_errors.KafkaError) -> str:
    if isinstance(exc, kafka_errors.AuthorizationError):
        return f"not authorized ({type(exc).__name__}): grant this principal the ACLs the README lists"
    return f"{type(exc).__name__}: {exc}"


def _names(exc: kafka_errors.KafkaError, kinds: tuple[type[kafka_errors.KafkaError], ...]) -> bool:
    """kafka-python reports a transactional producer's stored error as a bare KafkaError naming it."""
    text = str(exc)
    return any(kind.__name__ in text for kind in kinds) or (
        kinds is _REFUSALS and "AuthorizationFailed" in text
    )


class ConnectionWatch(logging.Handler):
    """Reads kafka-python's log for connection failures that no retry can fix.

    kafka-python retries them like any network error until its bootstrap gives up, with nothing in the
    exception saying why; its log says why. The first such failure is kept as one readable line.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(logging.WARNING)
        self.settings = settings
        self.cause: str | None = None
        self.connecting = True  # until the first connection succeeds (KafkaClients.connect)
        self.lost_while_authenticating = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.cause is None:
            self.cause = self.explain(record.getMessage())

    def explain(self, message: str) -> str | None:
        settings = self.settings
        detail = _TLS_DETAIL.search(message)
        reason = detail.group(1) if detail else message
        credentials = f"the credentials of user {settings.sasl_plain_username!r} ({settings.sasl_mechanism})"
        if "SaslAuthenticationFailed" in message:
            return f"the broker rejected {credentials}: check sasl_plain_username and sasl_plain_password"
        if self.connecting and settings.sasl_mechanism:
            # The broker answers a failed SASL exchange with an error and then closes the connection;
            # kafka-python drops the answer when the close arrives in the same read, so all it reports is
            # that the broker closed a connection whose ApiVersions exchange had worked. Before any
            # connection has worked, three such in a row mean a rejection. A broker going away (stopped,
            # crashed, restarting) closes at most the connection it was serving so; the attempts after
            # that cannot connect at all, and such a failure starts the count again.
            if _LOST_AFTER_API_VERSIONS.search(message):
                self.lost_while_authenticating += 1
                if self.lost_while_authenticating >= LOSSES_MEANING_REJECTED:
                    return (
                        f"the broker closed {LOSSES_MEANING_REJECTED} connections in a row during SASL "
                        f"authentication, as it does when it has rejected {credentials}: check "
                        "sasl_plain_username and sasl_plain_password"
                    )
            elif message.startswith(_CONNECT_FAILED):
                self.lost_while_authenticating = 0
        if "UnsupportedSaslMechanism" in message:
            return f"the broker does not enable SASL {settings.sasl_mechanism}: check sasl_mechanism"
        if "CERTIFICATE_VERIFY_FAILED" in message and "mismatch" in message:
            return (
                f"TLS: the broker's certificate does not name the host connected to ({reason}): use the "
                "host name the certificate was issued for in bootstrap_servers and the advertised listeners"
            )
        if "CERTIFICATE_VERIFY_FAILED" in message:
            return f"TLS: the broker's certificate is not trusted ({reason}): check ssl_cafile"
        if "WRONG_VERSION_NUMBER" in message or "record layer failure" in message:
            return "TLS handshake failed: the listener does not speak TLS; check security_protocol, port"
        if "[SSL] PEM lib" in message:
            # Python's ssl cannot load the client certificate chain: a key it cannot decrypt, most often.
            return (
                "TLS: cannot load the client certificate and key (ssl_certfile, ssl_keyfile): check "
                "ssl_password, the password of the key, and that both files are PEM"
            )
        return None


LOSSES_MEANING_REJECTED = 3
# A connection the broker closed (end of stream: not refused, reset or timed out) after its ApiVersions
# exchange, the broker version known. kafka-python names a version on later attempts of the same client too,
# once one exchange has worked, so the version alone does not say how far a connection got.
_LOST_AFTER_API_VERSIONS = re.compile(
    r"broker_version=\(\d+, \d+\) \(disconnected\)>: "
    r"Connection lost: KafkaConnectionError: socket disconnected$"
)
# A connection attempt that failed before its ApiVersions exchange: refused, reset, timed out, TLS.
_CONNECT_FAILED = "Connection failed: "
_TLS_DETAIL = re.compile(r"certificate verify failed: (.*?)(?: \(_ssl\.c:\d+\))?$")


class KafkaClients:
    """Creates the consumer, producer and admin client with the same connection settings."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.watch = ConnectionWatch(settings)
        logging.getLogger("kafka").addHandler(self.watch)
        self._common: dict[str, Any] = settings.security()
        self._common["client_id"] = settings.client_id
        servers = settings.bootstrap_servers
        self._servers = servers if isinstance(servers, str) else ",".join(servers)

    def consumer(self, *, group_id: str | None, **overrides: Any) -> Any:
        config: dict[str, Any] = {
            **self._common,
            "group_id": group_id,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
        }
        config.update(overrides)
        with translated_errors(f"connecting the consumer to {self._servers}"):
            consumer = KafkaConsumer(**config)
        read_batches_in_one_pass(consumer)
        return consumer

    def producer(self, **overrides: Any) -> Any:
        config: dict[str, Any] = {**self._common, "acks": "all", "linger_ms": 5}
        config.update(overrides)
        with translated_errors(f"connecting the producer to {self._servers}"):
            return KafkaProducer(**config)

    def admin(self) -> Any:
        with translated_errors(f"connecting to {self._servers}"):
            return KafkaAdminClient(**self._common)

    def connect(self) -> Any:
        """The first connection: an admin client, or `FatalServiceError` as soon as kafka-python's log shows
        a failure no retry can fix (see `ConnectionWatch`), instead of after its bootstrap timeout."""
        outcome: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                outcome.append((True, self.admin()))
            except BaseException as exc:  # handed to the caller below
                outcome.append((False, exc))

        worker = threading.Thread(target=target, name="kafka: connecting", daemon=True)
        worker.start()
        while worker.is_alive() and self.watch.cause is None:
            worker.join(0.1)
        if outcome and outcome[0][0]:
            self.watch.connecting = False
            return outcome[0][1]
        self.raise_if_misconfigured()  # the worker may still be retrying: it is abandoned with the process
        raise outcome[0][1]

    def raise_if_misconfigured(self) -> None:
        """`FatalServiceError` when a connection failed for a reason no retry can fix."""
        if self.watch.cause is not None:
            raise FatalServiceError(f"cannot connect to {self._servers}: {self.watch.cause}")


def bounded(action: str, timeout_s: float, call: Callable[[], Any]) -> Any:
    """Run a blocking transactional kafka-python call with a deadline (they wait without one).

    Past the deadline the call is abandoned in its thread and `KafkaUnavailable` is raised; the caller must
    then stop using the client it was calling. Errors are translated as transactional (`translated_errors`).
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name=f"kafka: {action}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise KafkaUnavailable(f"{action}: no answer within {timeout_s:.0f} s")
    succeeded, value = outcome[0]
    if succeeded:
        return value
    with translated_errors(action, transactional=True):
        raise value


def abandon_producer(producer: Any) -> None:
    """Close a producer that may be wedged, without waiting for it, in a thread of its own."""

    def close() -> None:
        try:
            producer.close(timeout=0)
        except Exception:  # its flush gave up on records that no longer matter: stop its I/O thread anyway
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()

    threading.Thread(target=close, name="kafka: closing", daemon=True).start()


def partition_counts(admin: Any, topics: list[str]) -> dict[str, int]:
    """Partition count of each topic that exists (missing topics are left out)."""
    with translated_errors("describing topics"):
        described = admin.describe_topics(topics)
    for topic in described:
        error = kafka_errors.for_code(topic.get("error_code", 0))
        if issubclass(error, kafka_errors.AuthorizationError):  # not "missing": nothing would ever change
            raise FatalServiceError(f"describing topic {topic['name']}: {_refusal(error())}")
    return {
        topic["name"]: len(topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0 and topic.get("partitions")
    }


def ensure_topics(admin: Any, wanted: dict[str, dict[str, Any]]) -> list[str]:
    """Create the topics in `wanted` (name -> {num_partitions, replication_factor, configs}) that are missing.

    Returns the names created. A topic created concurrently by another instance counts as present.
    """
    existing = set(partition_counts(admin, list(wanted)))
    missing = {name: spec for name, spec in wanted.items() if name not in existing}
    if not missing:
        return []
    with translated_errors("creating topics"):
        admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
    return sorted(missing)


def topic_partition(topic: str, partition: int) -> Any:
    return TopicPartition(topic, partition)


REPLAY_FROM_PREFIX = "streamdrift.replay_from="


def offsets_to_commit(
    pending: Mapping[TopicPartition, int], replay_from: Mapping[TopicPartition, int]
) -> dict[TopicPartition, Any]:
    """Offsets to commit, each carrying in its metadata where a restore must start reading again."""
    return {
        tp: OffsetAndMetadata(offset, f"{REPLAY_FROM_PREFIX}{replay_from.get(tp, offset)}", -1)
        for tp, offset in pending.items()
    }


def committed_position(consumer: Any, tp: TopicPartition) -> tuple[int, int | None] | None:
    """The committed offset of a partition and where a restore must read from (None: not recorded).

    None when nothing is committed.
    """
    with translated_errors("reading committed offsets"):
        committed = consumer.committed(tp, metadata=True, timeout_ms=consumer.config["request_timeout_ms"])
    if committed is None or committed.offset is None or committed.offset < 0:
        return None
    metadata = committed.metadata or ""
    if not metadata.startswith(REPLAY_FROM_PREFIX):
        return committed.offset, None
    return committed.offset, min(committed.offset, int(metadata.removeprefix(REPLAY_FROM_PREFIX)))


READ_TO_END_TIMEOUT_MS = 1_000  # unanswered this long: not known to be read to its end


def read_to_end(consumer: Any, tp: TopicPartition) -> bool:
    """Whether the consumer has handed out every record the broker holds for the partition (read_committed:
    up to its last stable offset).

    kafka-python's own figures cannot tell: it updates a partition's high watermark only when it parses a
    fetch response, so a partition whose records are fetched but still queued in the client looks read to
    its end. So when those figures say "read to its end", the broker is asked (one ListOffsets round trip).
    """
    highwater = consumer.highwater(tp)
    if highwater is None:  # not fetched yet: unknown
        return False
    with translated_errors("reading a position"):
        position = consumer.position(tp, timeout_ms=0)
    if position is None or position < highwater:
        return False
    try:
        end = consumer.end_offsets([tp], timeout_ms=READ_TO_END_TIMEOUT_MS)[tp]
    except kafka_errors.KafkaError:  # the broker is slow or away: not known, so not read to its end
        return False
    return bool(position >= end)


class RebalanceCallbacks(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance notifications. They run on the consumer's network loop."""

    def __init__(
        self,
        on_revoked: Callable[[set[TopicPartition]], None],
        on_assigned: Callable[[set[TopicPartition]], None],
        on_lost: Callable[[set[TopicPartition]], None],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._on_lost = on_lost

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(set(assigned))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Evicted from the group (e.g. a stall past max_poll_interval_ms): nothing can be committed."""
        self._on_lost(set(lost))


def seconds_since_heartbeat(consumer: Any) -> float:
    """How long ago the group coordinator last answered a heartbeat (inf before the first one)."""
    metrics = consumer.metrics() or {}
    age = metrics.get("consumer-coordinator-metrics", {}).get("last-heartbeat-seconds-ago")
    return float("inf") if age is None else float(age)


def rejoin_group(consumer: Any, topics: list[str], listener: RebalanceCallbacks) -> None:
    """Forget this member's group identity and join again (after an eviction the broker forgot it)."""
    consumer.unsubscribe()
    consumer.subscribe(topics, listener=listener)
