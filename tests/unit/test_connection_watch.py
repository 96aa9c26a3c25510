"""The Kafka adapter's reading of kafka-python's log: failures no retry can fix become one line."""

from __future__ import annotations

import logging

from streamdrift.config.model import KafkaSettings
from streamdrift.kafka.connection import ConnectionWatch

# Lines kafka-python 3.0 logs, as recorded against a SASL_SSL listener.
REJECTED = (
    "Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
    "SaslAuthenticationFailedError: Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism SCRAM-SHA-512 (backoff 0.10 secs)"
)
LOST_DURING_SASL = (
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 3) (disconnected)>: Connection lost: "
    "KafkaConnectionError: socket disconnected"
)
UNTRUSTED = (
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
    "verify failed: self-signed certificate in certificate chain (_ssl.c:1006)"
)
WRONG_HOST = (
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
    "verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'. (_ssl.c:1006)"
)
REFUSED = "Connection failed: KafkaConnectionError: [Errno 111] Connection refused"
KEY_NOT_DECRYPTED = "Connection failed: [SSL] PEM lib (_ssl.c:3926)"  # a wrong ssl_password
# What kafka-python 3.0 logged (WARNING and up) when the broker was killed (kill -9) while the client's first
# connection was in its SASL exchange, and was down for the attempts after it: once an ApiVersions exchange
# has worked, every later connection of the client names the broker version, whatever stopped it.
BROKER_KILLED_DURING_SASL = [
    "<KafkaSSLTransport [none]>: socket disconnected",
    "<KafkaSSLTransport [none]>: Abort (KafkaConnectionError: socket disconnected)",
    LOST_DURING_SASL,
    "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected "
    "(backoff 0.06 secs)",
    "Bootstrap bootstrap-0 not ready; waiting 0.06 secs",
]
BROKER_DOWN = [
    "Connection failed: KafkaConnectionError: 111 ECONNREFUSED",
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 3) (disconnected)>: Connection lost: "
    "KafkaConnectionError: 111 ECONNREFUSED",
    "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: 111 ECONNREFUSED (backoff 0.19 secs)",
    "Bootstrap bootstrap-0 not ready; waiting 0.19 secs",
]
RESET_BY_A_PROXY = [
    "Connection failed: KafkaConnectionError: Handshake failed: [Errno 104] Connection reset by peer",
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 3) (disconnected)>: Connection lost: "
    "KafkaConnectionError: Handshake failed: [Errno 104] Connection reset by peer",
]
TIMED_OUT_DURING_SASL = [
    "<KafkaConnection node_id=bootstrap-0 host=[127.0.0.1:9093<-50000] broker_version=(4, 3) "
    "(initializing)>: Request timed out after 10000 ms. Closing connection.",
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 3) (disconnected)>: Connection lost: "
    "[Error 7] RequestTimedOutError: Request timed out after 10000 ms",
]


def watch() -> ConnectionWatch:
    return ConnectionWatch(
        KafkaSettings(
            bootstrap_servers="localhost:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="svc",
            sasl_plain_password="never-shown",
        )
    )


def emit(target: ConnectionWatch, message: str) -> None:
    target.emit(logging.LogRecord("kafka.net.manager", logging.WARNING, __file__, 1, message, None, None))


def test_explicit_rejection_untrusted_certificate_and_wrong_host_are_named() -> None:
    for message, expected in [
        (REJECTED, "the broker rejected the credentials of user 'svc' (SCRAM-SHA-512)"),
        (
            UNTRUSTED,
            "TLS: the broker's certificate is not trusted (self-signed certificate in certificate chain)",
        ),
        (
            WRONG_HOST,
            "does not name the host connected to (IP address mismatch, certificate is not valid for",
        ),
        (KEY_NOT_DECRYPTED, "TLS: cannot load the client certificate and key (ssl_certfile, ssl_keyfile)"),
    ]:
        target = watch()
        emit(target, message)
        assert target.cause is not None and expected in target.cause, (message, target.cause)
        assert "never-shown" not in target.cause


def test_three_connections_lost_during_sasl_before_any_worked_mean_rejected_credentials() -> None:
    target = watch()
    emit(target, LOST_DURING_SASL)
    emit(target, LOST_DURING_SASL)
    assert target.cause is None
    emit(target, LOST_DURING_SASL)
    assert target.cause is not None and "rejected the credentials of user 'svc'" in target.cause


def test_an_outage_is_not_a_misconfiguration() -> None:
    target = watch()
    emit(target, REFUSED)
    target.connecting = False  # once connected, lost connections are outages, retried forever
    for _ in range(5):
        emit(target, LOST_DURING_SASL)
    assert target.cause is None


def test_a_broker_going_away_during_sasl_again_and_again_is_not_a_rejection() -> None:
    """Killed during the SASL exchange of three attempts in a row, down (refused, or reset by a proxy in front
    of it) in between: three connections lost during SASL, but not in a row."""
    target = watch()
    for down in (BROKER_DOWN, RESET_BY_A_PROXY, BROKER_DOWN):
        for message in BROKER_KILLED_DURING_SASL + down * 3:
            emit(target, message)
    for message in BROKER_KILLED_DURING_SASL:
        emit(target, message)
    assert target.cause is None


def test_connections_that_failed_to_connect_or_timed_out_are_not_lost_during_sasl() -> None:
    """Refused, reset or timed out, with the broker version named: none is the broker closing a connection."""
    target = watch()
    for message in BROKER_DOWN * 5 + RESET_BY_A_PROXY * 5 + TIMED_OUT_DURING_SASL * 5:
        emit(target, message)
    assert target.cause is None
    assert target.lost_while_authenticating == 0


def test_three_closed_during_sasl_in_a_row_among_kafka_pythons_other_lines_are_a_rejection() -> None:
    """What a wrong password looks like when the broker's answer is lost: each attempt logs a bootstrap
    failure and a backoff besides the loss; none of that interrupts the row."""
    target = watch()
    for attempt in range(3):
        assert target.cause is None, attempt
        for message in BROKER_KILLED_DURING_SASL:
            emit(target, message)
    assert target.cause is not None and "rejected the credentials of user 'svc'" in target.cause
