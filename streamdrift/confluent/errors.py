"""librdkafka's errors translated into streamdrift's, classified by what the caller must do (ports.py).

The classes and the wording are those of the kafka-python transport, so that the service, its logs and its
exit lines read the same whichever library runs underneath.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from confluent_kafka import KafkaError, KafkaException

from streamdrift.errors import (
    CheckpointRefused,
    FatalServiceError,
    Fenced,
    KafkaUnavailable,
    StreamdriftError,
)

E = KafkaError

# A newer producer holds this transactional id (librdkafka's own code and the broker's two).
FENCES = frozenset({E._FENCED, E.PRODUCER_FENCED, E.INVALID_PRODUCER_EPOCH})
# The group moved on: the offsets of this generation cannot be committed.
GROUP_MOVED_ON = frozenset(
    {
        E.ILLEGAL_GENERATION,
        E.UNKNOWN_MEMBER_ID,
        E.REBALANCE_IN_PROGRESS,
        E.FENCED_MEMBER_EPOCH,
        E.STALE_MEMBER_EPOCH,
        E._ASSIGNMENT_LOST,
    }
)
AUTHORIZATION = frozenset(
    {
        E.TOPIC_AUTHORIZATION_FAILED,
        E.GROUP_AUTHORIZATION_FAILED,
        E.CLUSTER_AUTHORIZATION_FAILED,
        E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        E.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
    }
)
# Errors no retry can fix, even inside a transaction: the cluster refuses this client or this data.
REFUSALS = AUTHORIZATION | {
    E.MSG_SIZE_TOO_LARGE,
    E.RECORD_LIST_TOO_LARGE,
    E.INVALID_TRANSACTION_TIMEOUT,
    E.UNSUPPORTED_VERSION,
    E.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    E.UNSUPPORTED_COMPRESSION_TYPE,
}
# The broker is away or did not answer in time.
UNREACHABLE = frozenset(
    {
        E._TRANSPORT,
        E._ALL_BROKERS_DOWN,
        E._RESOLVE,
        E._FAIL,
        E._TIMED_OUT,
        E._TIMED_OUT_QUEUE,
        E._MSG_TIMED_OUT,
        E.REQUEST_TIMED_OUT,
        E.NETWORK_EXCEPTION,
        E.BROKER_NOT_AVAILABLE,
    }
)
# Passing states a retry gets past (the broker's retriable codes, and librdkafka's waits). librdkafka sets
# `retriable()` only on some of the errors it returns, so the codes are listed too.
TRANSIENT = UNREACHABLE | {
    E.LEADER_NOT_AVAILABLE,
    E.NOT_LEADER_FOR_PARTITION,
    E.REPLICA_NOT_AVAILABLE,
    E.COORDINATOR_LOAD_IN_PROGRESS,
    E.COORDINATOR_NOT_AVAILABLE,
    E.NOT_COORDINATOR,
    E.NOT_ENOUGH_REPLICAS,
    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    E.KAFKA_STORAGE_ERROR,
    E.FETCH_SESSION_ID_NOT_FOUND,
    E.INVALID_FETCH_SESSION_EPOCH,
    E.FENCED_LEADER_EPOCH,
    E.UNKNOWN_LEADER_EPOCH,
    E.OFFSET_NOT_AVAILABLE,
    E.PREFERRED_LEADER_NOT_AVAILABLE,
    E.ELIGIBLE_LEADERS_NOT_AVAILABLE,
    E.CONCURRENT_TRANSACTIONS,
    E.UNSTABLE_OFFSET_COMMIT,
    E.THROTTLING_QUOTA_EXCEEDED,
    E.UNKNOWN_TOPIC_OR_PART,
    E.REBOOTSTRAP_REQUIRED,
    E._WAIT_COORD,
    E._WAIT_CACHE,
    E._QUEUE_FULL,
    E._NODE_UPDATE,
    E._RETRY,
    E._PREV_IN_PROGRESS,
    E._IN_PROGRESS,
    E._PURGE_QUEUE,
    E._PURGE_INFLIGHT,
}
# A fetched record batch that cannot be read: a CRC mismatch, damaged records or compression.
DAMAGED = frozenset({E._BAD_MSG, E._BAD_COMPRESSION, E.INVALID_MSG})

INSTANCE_ID_HINT = "(give every replica its own processing.instance_id / STREAMDRIFT_INSTANCE_ID)"


def translate(action: str, error: KafkaError, *, transactional: bool = False) -> StreamdriftError:
    """streamdrift's error for a librdkafka error met while doing `action` ("committing the transaction").

    `transactional`: a call on the transactional producer. Any failure there other than a fence, a refusal
    or the group moving on leaves the transaction's outcome to the broker: `KafkaUnavailable`, so that the
    caller rolls back with a new producer, whose initialisation settles the old transaction first.
    """
    error = underlying(error)
    code = error.code()
    if code in FENCES:
        return fenced(action)
    if code == E.FENCED_INSTANCE_ID:
        return Fenced(f"{action}: another member joined the group with this instance's id {INSTANCE_ID_HINT}")
    if code in GROUP_MOVED_ON:
        return CheckpointRefused(f"{action}: {describe(error)}")
    if code in REFUSALS:
        return FatalServiceError(f"{action}: {refusal(error)}")
    if code in UNREACHABLE:
        return KafkaUnavailable(f"{action}: the broker is unreachable ({error.name()})")
    if transactional or code in TRANSIENT or error.retriable() or error.txn_requires_abort():
        return KafkaUnavailable(f"{action}: {describe(error)}")
    return FatalServiceError(f"{action}: {describe(error)}")


def translate_exception(action: str, exc: BaseException, *, transactional: bool = False) -> StreamdriftError:
    """`translate` for what confluent_kafka raises: a KafkaException (holding a KafkaError, or only a text),
    or BufferError (the producer's queue is full)."""
    if isinstance(exc, BufferError):
        return KafkaUnavailable(f"{action}: the producer's queue is full ({exc})")
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if error is not None:
        return translate(action, error, transactional=transactional)
    if transactional:
        return KafkaUnavailable(f"{action}: {exc}")
    return FatalServiceError(f"{action}: {exc}")


@contextlib.contextmanager
def translated_errors(action: str, *, transactional: bool = False) -> Iterator[None]:
    """Re-raise confluent_kafka's errors inside the block as streamdrift's (`translate`)."""
    try:
        yield
    except (KafkaException, BufferError) as exc:
        raise translate_exception(action, exc, transactional=transactional) from exc


def fenced(action: str) -> Fenced:
    return Fenced(f"{action}: fenced by a newer instance with the same transactional id {INSTANCE_ID_HINT}")


def refusal(error: KafkaError) -> str:
    if error.code() in AUTHORIZATION:
        return f"not authorized ({error.name()}): grant this principal the ACLs the README lists"
    return describe(error)


def describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def _fatal_prefixes() -> list[tuple[str, int]]:
    """librdkafka's text of each error code, longest first: a fatal error names its cause by that text."""
    codes = {getattr(E, name) for name in dir(E) if name.lstrip("_")[:1].isupper()}
    texts = [(f"Fatal error: {E(code).str()}", code) for code in codes if isinstance(code, int)]
    return sorted(texts, key=lambda item: len(item[0]), reverse=True)


_FATAL_PREFIXES = _fatal_prefixes()


def underlying(error: KafkaError) -> KafkaError:
    """The cause of a `_FATAL` error: librdkafka reports a client's fatal error (a fence, most often) as
    `_FATAL` with the cause's text first ("Fatal error: Broker: ...: details")."""
    if error.code() != E._FATAL:
        return error
    text = error.str()
    for prefix, code in _FATAL_PREFIXES:
        if text.startswith(prefix) and code != E._FATAL:
            return KafkaError(code, text, fatal=True)
    return error
