"""The confluent transport's reading of librdkafka's errors: each code becomes one of streamdrift's five error
classes, worded as the kafka-python transport words it; connection failures no retry fixes become one line;
the consumer's stream of messages and error events is sorted out. No broker: librdkafka's error objects are
built as librdkafka hands them out."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from streamdrift.config.model import KafkaSettings
from streamdrift.confluent import connection
from streamdrift.confluent.connection import ConnectionWatch, explain_construction
from streamdrift.confluent.errors import translate, translate_exception, translated_errors
from streamdrift.confluent.group import Heartbeat
from streamdrift.confluent.records import Fetched
from streamdrift.errors import (
    CheckpointRefused,
    FatalServiceError,
    Fenced,
    KafkaUnavailable,
    UnreadableBatch,
)
from streamdrift.ports import TopicPartition

E = KafkaError
FIVE = (KafkaUnavailable, CheckpointRefused, Fenced, FatalServiceError, UnreadableBatch)
FENCED = "fenced by a newer instance with the same transactional id (give every replica its own"
INSTANCE = "another member joined the group with this instance's id (give every replica its own"
ACLS = "grant this principal the ACLs the README lists"


def kafka_error(code: int, flags: dict[str, bool]) -> KafkaError:
    return KafkaError(
        code,
        None,
        fatal=flags.get("fatal", False),
        retriable=flags.get("retriable", False),
        txn_requires_abort=flags.get("txn_requires_abort", False),
    )


def every_code() -> list[int]:
    return sorted({getattr(E, name) for name in dir(E) if name.lstrip("_")[:1].isupper()})


# (code, flags of the KafkaError, transactional call, expected class, expected text after "<action>: ")
Fatal, Away, Refused = FatalServiceError, KafkaUnavailable, CheckpointRefused
CASES: list[tuple[int, dict[str, bool], bool, type[Exception], str]] = [
    (E.PRODUCER_FENCED, {"fatal": True}, True, Fenced, FENCED),
    (E._FENCED, {"fatal": True}, True, Fenced, FENCED),
    (E.INVALID_PRODUCER_EPOCH, {}, True, Fenced, FENCED),
    (E.INVALID_PRODUCER_EPOCH, {"txn_requires_abort": True}, False, Fenced, FENCED),
    (E.FENCED_INSTANCE_ID, {"fatal": True}, False, Fenced, INSTANCE),
    (E.ILLEGAL_GENERATION, {}, False, Refused, "ILLEGAL_GENERATION: "),
    (E.ILLEGAL_GENERATION, {"txn_requires_abort": True}, True, Refused, "ILLEGAL_GENERATION: "),
    (E.UNKNOWN_MEMBER_ID, {}, False, Refused, "UNKNOWN_MEMBER_ID: "),
    (E.UNKNOWN_MEMBER_ID, {"txn_requires_abort": True}, True, Refused, "UNKNOWN_MEMBER_ID: "),
    (E.REBALANCE_IN_PROGRESS, {"retriable": True}, False, Refused, "REBALANCE_IN_PROGRESS: "),
    (E.REBALANCE_IN_PROGRESS, {}, True, Refused, "REBALANCE_IN_PROGRESS: "),
    (E._ASSIGNMENT_LOST, {}, False, Refused, "_ASSIGNMENT_LOST: "),
    (E.TOPIC_AUTHORIZATION_FAILED, {}, False, Fatal, f"not authorized (TOPIC_AUTHORIZATION_FAILED): {ACLS}"),
    (E.GROUP_AUTHORIZATION_FAILED, {}, False, Fatal, f"not authorized (GROUP_AUTHORIZATION_FAILED): {ACLS}"),
    (E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, {"fatal": True}, True, Fatal, "not authorized (TRANSACTIONAL_"),
    (E.CLUSTER_AUTHORIZATION_FAILED, {"txn_requires_abort": True}, True, Fatal, "not authorized (CLUSTER_"),
    (E.MSG_SIZE_TOO_LARGE, {}, True, Fatal, "MSG_SIZE_TOO_LARGE: Broker: Message size too large"),
    (E.RECORD_LIST_TOO_LARGE, {}, False, Fatal, "RECORD_LIST_TOO_LARGE: "),
    (E.INVALID_TRANSACTION_TIMEOUT, {"fatal": True}, True, Fatal, "INVALID_TRANSACTION_TIMEOUT: "),
    (E.UNSUPPORTED_VERSION, {}, True, Fatal, "UNSUPPORTED_VERSION: "),
    (E.UNSUPPORTED_FOR_MESSAGE_FORMAT, {}, False, Fatal, "UNSUPPORTED_FOR_MESSAGE_FORMAT: "),
    (E.UNSUPPORTED_COMPRESSION_TYPE, {}, True, Fatal, "UNSUPPORTED_COMPRESSION_TYPE: "),
    (E._TIMED_OUT, {"retriable": True}, True, Away, "the broker is unreachable (_TIMED_OUT)"),
    (E._TIMED_OUT, {}, False, Away, "the broker is unreachable (_TIMED_OUT)"),
    (E._TRANSPORT, {}, False, Away, "the broker is unreachable (_TRANSPORT)"),
    (E._ALL_BROKERS_DOWN, {}, False, Away, "the broker is unreachable (_ALL_BROKERS_DOWN)"),
    (E._MSG_TIMED_OUT, {}, False, Away, "the broker is unreachable (_MSG_TIMED_OUT)"),
    (E.REQUEST_TIMED_OUT, {}, True, Away, "the broker is unreachable (REQUEST_TIMED_OUT)"),
    (E.NOT_COORDINATOR, {}, False, Away, "NOT_COORDINATOR: "),
    (E.COORDINATOR_LOAD_IN_PROGRESS, {}, True, Away, "COORDINATOR_LOAD_IN_PROGRESS: "),
    (E.CONCURRENT_TRANSACTIONS, {"retriable": True}, True, Away, "CONCURRENT_TRANSACTIONS: "),
    (E.INVALID_CONFIG, {"retriable": True}, False, Away, "INVALID_CONFIG: "),
    (E._INCONSISTENT, {"txn_requires_abort": True}, False, Away, "_INCONSISTENT: "),
    (E.INVALID_TXN_STATE, {}, True, Away, "INVALID_TXN_STATE: "),
    (E.INVALID_TXN_STATE, {"fatal": True}, False, Fatal, "INVALID_TXN_STATE: "),
    (E.OUT_OF_ORDER_SEQUENCE_NUMBER, {"fatal": True}, True, Away, "OUT_OF_ORDER_SEQUENCE_NUMBER: "),
    (E.OUT_OF_ORDER_SEQUENCE_NUMBER, {"fatal": True}, False, Fatal, "OUT_OF_ORDER_SEQUENCE_NUMBER: "),
    (E.INVALID_CONFIG, {}, False, Fatal, "INVALID_CONFIG: Broker: Configuration is invalid"),
    (E._BAD_MSG, {}, False, Fatal, "_BAD_MSG: "),
]  # fmt: skip


@pytest.mark.parametrize(("code", "flags", "transactional", "kind", "text"), CASES)
def test_each_error_becomes_the_class_the_caller_acts_on(
    code: int, flags: dict[str, bool], transactional: bool, kind: type[Exception], text: str
) -> None:
    action = "committing the transaction"
    error = translate(action, kafka_error(code, flags), transactional=transactional)
    assert type(error) is kind
    assert str(error).startswith(f"{action}: {text}"), str(error)
    with pytest.raises(kind) as raised, translated_errors(action, transactional=transactional):
        raise KafkaException(kafka_error(code, flags))
    assert str(raised.value) == str(error)
    assert isinstance(raised.value.__cause__, KafkaException)


@pytest.mark.parametrize("transactional", [False, True])
def test_every_code_librdkafka_defines_becomes_one_of_the_five(transactional: bool) -> None:
    codes = every_code()
    assert len(codes) > 150
    for code in codes:
        for flags in ({}, {"fatal": True}, {"retriable": True}, {"txn_requires_abort": True}):
            try:
                with translated_errors("reading input", transactional=transactional):
                    raise KafkaException(kafka_error(code, flags))
            except FIVE as exc:
                assert str(exc).startswith("reading input: "), (code, flags, str(exc))
            # anything else (a KafkaException) leaks, and fails the test


def test_a_fatal_error_is_translated_as_its_cause() -> None:
    """librdkafka reports a client's fatal error as _FATAL, the cause's text first."""
    fence = "Fatal error: Local: This instance has been fenced by a newer instance: details"
    instance = (
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id: "
        "Fatal consumer error: Broker: Static consumer fenced by other consumer with same group.instance.id"
    )
    assert isinstance(translate("sending a record", KafkaError(E._FATAL, fence, fatal=True)), Fenced)
    found = translate("reading input", KafkaError(E._FATAL, instance, fatal=True))
    assert isinstance(found, Fenced) and INSTANCE in str(found)
    unknown = translate(
        "sending a record", KafkaError(E._FATAL, "Unable to produce message: Local: Fatal error")
    )
    assert type(unknown) is FatalServiceError
    assert type(translate("sending", KafkaError(E._FATAL, "x"), transactional=True)) is KafkaUnavailable


def test_what_confluent_kafka_raises_besides_a_kafka_error() -> None:
    assert type(translate_exception("sending a record", BufferError("Local: Queue full"))) is KafkaUnavailable
    text = KafkaException("Consumer closed")
    assert type(translate_exception("reading input", text)) is FatalServiceError
    assert (
        type(translate_exception("committing the transaction", text, transactional=True)) is KafkaUnavailable
    )


def settings() -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="localhost:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="svc",
        sasl_plain_password="never-shown",
        ssl_cafile="/etc/ca.pem",
    )


# What librdkafka 2.x reports to the error callback, recorded against a SASL_SSL listener.
BROKER = "sasl_ssl://localhost:9093/bootstrap: "
REJECTED = (
    f"{BROKER}SASL authentication error: Authentication failed during authentication due to invalid "
    "credentials with SASL mechanism SCRAM-SHA-512 (after 315ms in state AUTH_REQ)"
)
NO_SUCH_MECHANISM = (
    f"{BROKER}SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported "
    "mechanisms: SCRAM-SHA-512,SCRAM-SHA-256 (after 301ms in state AUTH_HANDSHAKE)"
)
NOT_VERIFIED = (
    f"{BROKER}SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker "
    "certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA "
    "certificates are installed (install ca-certificates package) (after 10ms in state SSL_HANDSHAKE)"
)
PLAINTEXT_LISTENER = (
    "sasl_ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
    "peer: connecting to a PLAINTEXT broker listener? (after 6ms in state SSL_HANDSHAKE)"
)
REFUSED = f"{BROKER}Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state CONNECT)"
# A wrong ssl_password: librdkafka refuses to create the client.
KEY_NOT_DECRYPTED = "Failed to create consumer: ssl.key.location failed: error:0A080009:SSL routines::PEM lib"


def test_failures_no_retry_fixes_are_worded_as_the_kafka_python_transport_words_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probed: list[tuple[str, int, str | None, bool]] = []
    answer = {"reason": "self-signed certificate in certificate chain"}

    def probe(host: str, port: int, cafile: str | None, *, check_hostname: bool) -> str | None:
        probed.append((host, port, cafile, check_hostname))
        return answer["reason"]

    monkeypatch.setattr(connection, "certificate_problem", probe)
    for code, message, expected in [
        (E._AUTHENTICATION, REJECTED, "the broker rejected the credentials of user 'svc' (SCRAM-SHA-512)"),
        (E._AUTHENTICATION, NO_SUCH_MECHANISM, "the broker does not enable SASL SCRAM-SHA-512"),
        (E._SSL, NOT_VERIFIED, "TLS: the broker's certificate is not trusted (self-signed certificate in "),
    ]:
        watch = ConnectionWatch(settings())
        watch.on_error(KafkaError(code, message))
        assert watch.cause is not None and expected in watch.cause, (message, watch.cause)
        assert "never-shown" not in watch.cause
    assert probed == [("localhost", 9093, "/etc/ca.pem", True)]

    answer["reason"] = "IP address mismatch, certificate is not valid for '127.0.0.1'."
    watch = ConnectionWatch(settings())
    watch.on_error(KafkaError(E._SSL, NOT_VERIFIED))
    assert watch.cause is not None
    assert watch.cause.startswith(
        "TLS: the broker's certificate does not name the host connected to (IP address mismatch, certificate"
    )
    assert (explain_construction(KEY_NOT_DECRYPTED) or "").startswith(
        "TLS: cannot load the client certificate and key (ssl_certfile, ssl_keyfile)"
    )
    assert explain_construction('No such configuration property: "sasl.nope"') is None


def test_a_plaintext_listener_is_named_after_three_closed_handshakes_in_a_row_and_an_outage_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a plaintext Kafka request to the port gets: an answer from a plaintext listener, none from a
    # proxy whose broker is away (stood in for here: the real probe is tested against a broker).
    answers = {"value": False}
    probed: list[tuple[str, int]] = []

    def probe(host: str, port: int) -> bool:
        probed.append((host, port))
        return answers["value"]

    monkeypatch.setattr(connection, "answers_plaintext_kafka", probe)
    watch = ConnectionWatch(settings())
    for message in (PLAINTEXT_LISTENER, PLAINTEXT_LISTENER, REFUSED, PLAINTEXT_LISTENER, PLAINTEXT_LISTENER):
        watch.on_error(KafkaError(E._TRANSPORT, message))
    assert watch.cause is None  # a broker stopped during a handshake, then refusing: not in a row
    assert probed == []
    watch.on_error(KafkaError(E._TRANSPORT, PLAINTEXT_LISTENER))
    assert watch.cause is None  # three in a row, but no plaintext Kafka answers there: not named
    assert probed == [("127.0.0.1", 9092)]
    answers["value"] = True
    watch.on_error(KafkaError(E._TRANSPORT, PLAINTEXT_LISTENER))
    assert watch.cause is not None and "the listener does not speak TLS" in watch.cause

    down = ConnectionWatch(settings())
    for _ in range(10):
        down.on_error(KafkaError(E._TRANSPORT, REFUSED))
        down.on_error(KafkaError(E._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert down.cause is None


def message(offset: int, *, partition: int = 0, error: KafkaError | None = None) -> Message:
    if error is not None:
        return Message(topic="t", partition=partition, offset=offset, error=error)
    return Message(
        topic="t", partition=partition, offset=offset, key=b"k", value=b"value", headers=[("h", b"1")],
        timestamp=(1, 1_700_000_000_000),
    )  # fmt: skip


def test_a_damaged_batch_comes_after_the_records_before_it_and_the_partitions_end_is_noted() -> None:
    fetched = Fetched(
        [
            message(3),
            message(4),
            message(10, partition=1),
            message(5, error=KafkaError(E._BAD_MSG, "MessageSet at offset 5 failed CRC32 check")),
            message(0),  # what librdkafka reads after the damage is dropped (here: a reset to the start)
            message(11, partition=1, error=KafkaError(E._PARTITION_EOF, "end")),
            message(-1, partition=-1, error=KafkaError(E._TRANSPORT, "broker down")),  # retried: logged
        ]
    )
    assert {tp: [r.offset for r in records] for tp, records in fetched.records.items()} == {
        TopicPartition("t", 0): [3, 4],
        TopicPartition("t", 1): [10],
    }
    first = fetched.records[TopicPartition("t", 0)][0]
    assert (first.timestamp, first.serialized_value_size, first.headers) == (
        1_700_000_000_000,
        5,
        [("h", b"1")],
    )
    assert fetched.damaged is not None
    assert (fetched.damaged.topic, fetched.damaged.partition, fetched.damaged.offset) == ("t", 0, 5)
    assert fetched.damaged.end is None and "CRC32" in fetched.damaged.reason
    assert fetched.ends == {TopicPartition("t", 1): 11}


def test_a_fatal_event_in_the_stream_ends_the_run() -> None:
    instance = "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id: x"
    with pytest.raises(Fenced, match="reading input: another member joined the group"):
        Fetched([message(1), Message(error=KafkaError(E._FATAL, instance))])
    with pytest.raises(FatalServiceError, match="not authorized"):
        Fetched([Message(topic="t", error=KafkaError(E.TOPIC_AUTHORIZATION_FAILED))])


def test_the_heartbeat_is_the_group_coordinators_last_answer() -> None:
    heartbeat = Heartbeat()
    assert heartbeat.seconds_since() == float("inf")
    stats = {
        "ts": int(time.monotonic() * 1e6),
        "cgrp": {"state": "up"},
        "brokers": {"GroupCoordinator": {"state": "UP", "rxidle": 2_000_000}},
    }
    heartbeat.on_statistics(json.dumps({**stats, "cgrp": {"state": "wait-coord"}}))
    assert heartbeat.seconds_since() == float("inf")
    heartbeat.on_statistics(json.dumps(stats))
    assert 2.0 <= heartbeat.seconds_since() < 3.0
    heartbeat.on_statistics("not json")
    assert heartbeat.seconds_since() < 3.0
