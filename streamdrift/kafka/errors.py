"""kafka-python's errors translated into streamdrift's, classified by what the caller must do (ports.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from kafka import errors as kafka_errors

from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, KafkaUnavailable

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
        stored = _stored_error(exc)  # what kafka-python stored and now reports inside a bare KafkaError
        if isinstance(stored, _FENCES):
            raise _fenced(action) from exc
        if isinstance(stored, _REFUSALS):
            raise FatalServiceError(f"{action}: {_refusal(stored)}") from exc
        if getattr(exc, "retriable", False) or transactional:
            raise KafkaUnavailable(f"{action}: {exc}") from exc
        raise FatalServiceError(f"{action}: {exc}") from exc


_FENCES = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)


def _fenced(action: str) -> Fenced:
    return Fenced(
        f"{action}: fenced by a newer instance with the same transactional id "
        "(give every replica its own processing.instance_id / STREAMDRIFT_INSTANCE_ID)"
    )


def _refusal(exc: kafka_errors.KafkaError) -> str:
    """Named by the Kafka protocol's error name (TOPIC_AUTHORIZATION_FAILED), as librdkafka names it too."""
    name = getattr(exc, "message", None) or type(exc).__name__
    if isinstance(exc, kafka_errors.AuthorizationError):
        return f"not authorized ({name}): grant this principal the ACLs the README lists"
    return f"{name}: {exc}"


_ERROR_CODE = re.compile(r"\[Error (-?\d+)\]")


def _stored_error(exc: kafka_errors.KafkaError) -> kafka_errors.KafkaError | None:
    """The error a transactional producer stored, which kafka-python reports later in a bare KafkaError:
    as an argument on a send ("Cannot perform send …", error), or only as text in a transactional method
    ("… in an error state: [Error 29] TopicAuthorizationFailedError: …"), where the protocol's error code
    names it."""
    for arg in exc.args:
        if isinstance(arg, kafka_errors.KafkaError):
            return arg
    code = _ERROR_CODE.search(str(exc))
    if code is None:
        return None
    error: kafka_errors.KafkaError = kafka_errors.for_code(int(code.group(1)))()
    return error


def raise_if_refused(error_code: int, what: str) -> None:
    """A per-topic error code of a metadata answer: an authorization error is a refusal, not "missing"."""
    error = kafka_errors.for_code(error_code)
    if issubclass(error, kafka_errors.AuthorizationError):
        raise FatalServiceError(f"{what}: {_refusal(error())}")
