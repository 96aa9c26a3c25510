"""The exit contract: whatever a Kafka client raises during a run ends as streamdrift's own error, classified
by what the caller must do, and the command ends with one line on stderr and exit code 1 — never a traceback.

Every exception class kafka-python defines is tried, so a new kind cannot slip through unclassified.
"""

from __future__ import annotations

import argparse
import inspect
import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
from kafka import errors as kafka_errors

from streamdrift.cli import main as cli
from streamdrift.errors import (
    CheckpointRefused,
    FatalServiceError,
    Fenced,
    KafkaUnavailable,
    StreamdriftError,
)
from streamdrift.kafka.errors import translated_errors

KAFKA_ERRORS = sorted(
    (
        kind
        for _, kind in inspect.getmembers(kafka_errors, inspect.isclass)
        if issubclass(kind, kafka_errors.KafkaError)
    ),
    key=lambda kind: kind.__name__,
)


def build(kind: type[kafka_errors.KafkaError]) -> kafka_errors.KafkaError:
    try:
        return kind("a detail\nover two lines")
    except TypeError:  # a few take other arguments
        return kind()


def test_kafka_python_defines_the_errors_this_test_walks() -> None:
    assert len(KAFKA_ERRORS) > 150
    assert kafka_errors.CorruptRecordError in KAFKA_ERRORS


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
@pytest.mark.parametrize("kind", KAFKA_ERRORS, ids=lambda kind: kind.__name__)
def test_every_kafka_error_is_translated(kind: type[kafka_errors.KafkaError], transactional: bool) -> None:
    with (
        pytest.raises(StreamdriftError) as raised,
        translated_errors("reading input", transactional=transactional),
    ):
        raise build(kind)
    assert str(raised.value).startswith("reading input: ")
    assert isinstance(raised.value.__cause__, kind)


@pytest.mark.parametrize(
    ("error", "plain", "transactional"),
    [
        (kafka_errors.ProducerFencedError(), Fenced, Fenced),
        (kafka_errors.InvalidProducerEpochError(), Fenced, Fenced),
        # kafka-python reports a stored fence inside a bare KafkaError on the next send.
        (kafka_errors.KafkaError("Cannot send", kafka_errors.ProducerFencedError()), Fenced, Fenced),
        (kafka_errors.FencedInstanceIdError(), Fenced, Fenced),
        (kafka_errors.TopicAuthorizationFailedError(), FatalServiceError, FatalServiceError),
        (kafka_errors.TransactionalIdAuthorizationFailedError(), FatalServiceError, FatalServiceError),
        # … or only as text, in the words kafka-python's transaction manager uses.
        (kafka_errors.KafkaError(f"in an error state: {kafka_errors.ProducerFencedError()}"), Fenced, Fenced),
        (kafka_errors.KafkaError(f"error state: {kafka_errors.TransactionalIdAuthorizationFailedError()}"),
         FatalServiceError, FatalServiceError),
        (kafka_errors.MessageSizeTooLargeError(), FatalServiceError, FatalServiceError),
        (kafka_errors.CommitFailedError(), CheckpointRefused, CheckpointRefused),
        (kafka_errors.KafkaTimeoutError(), KafkaUnavailable, KafkaUnavailable),
        (kafka_errors.RequestTimedOutError(), KafkaUnavailable, KafkaUnavailable),
        # What a commit that timed out leaves: the producer in an error state, reported as a bare KafkaError.
        (kafka_errors.KafkaError("in an error state: KafkaError: [Error 7] RequestTimedOutError"),
         FatalServiceError, KafkaUnavailable),
        (kafka_errors.CorruptRecordError("damaged"), FatalServiceError, KafkaUnavailable),
    ],
)  # fmt: skip
def test_what_the_caller_must_do(
    error: kafka_errors.KafkaError, plain: type[StreamdriftError], transactional: type[StreamdriftError]
) -> None:
    """Fenced: exit (unless the broker's own transaction timeout did it: the runner checks); refused: exit;
    a refused commit: rejoin; unavailable: roll back and retry. A transactional call that failed for any
    other reason leaves its outcome to the broker: roll back with a new producer, never exit."""
    for flag, expected in ((False, plain), (True, transactional)):
        with pytest.raises(StreamdriftError) as raised, translated_errors("x", transactional=flag):
            raise error
        assert type(raised.value) is expected, (flag, raised.value)


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.TopicAuthorizationFailedError({"alerts"}),
        # The same refusal stored by the transactional producer and reported on the next send or commit.
        kafka_errors.KafkaError(
            "Cannot perform send because at least one previous transactional or idempotent request has "
            "failed with errors.",
            kafka_errors.TopicAuthorizationFailedError({"alerts"}),
        ),
        kafka_errors.KafkaError(
            "Cannot execute transactional method because we are in an error state: "
            f"{kafka_errors.TopicAuthorizationFailedError({'alerts'})}"
        ),
    ],
    ids=["raised", "stored-send", "stored-commit"],
)
def test_a_refusal_is_named_however_kafka_python_reports_it(error: kafka_errors.KafkaError) -> None:
    for transactional in (False, True):
        with pytest.raises(FatalServiceError) as raised, translated_errors("x", transactional=transactional):
            raise error
        assert str(raised.value) == (
            "x: not authorized (TOPIC_AUTHORIZATION_FAILED): grant this principal the ACLs the README lists"
        )


def run_cli(failure: BaseException) -> tuple[int, str, str]:
    """`streamdrift config schema`, its handler replaced by one that raises `failure`."""

    def handler(_args: argparse.Namespace) -> int:
        raise failure

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_config_schema", handler)  # build_parser binds the name when main() calls it
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code = cli.main(["config", "schema"])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.mark.parametrize("kind", KAFKA_ERRORS, ids=lambda kind: kind.__name__)
def test_the_command_ends_with_one_line_and_exit_1_for_every_kafka_error(
    kind: type[kafka_errors.KafkaError],
) -> None:
    try:
        with translated_errors("reading input"):
            raise build(kind)
    except StreamdriftError as translated:
        code, _, stderr = run_cli(translated)
    assert code == 1
    assert stderr.count("\n") == 1 and stderr.startswith("streamdrift: reading input: "), stderr


def test_an_unexpected_error_is_one_line_and_exit_1() -> None:
    """The traceback goes to the log (stdout here: logging is not configured), stderr gets one line."""
    code, stdout, stderr = run_cli(RuntimeError("a bug\nsomewhere"))
    assert code == 1
    assert stderr == "streamdrift: unexpected error: RuntimeError: a bug somewhere\n"
    assert "unexpected error" in stdout and "RuntimeError" in stdout
