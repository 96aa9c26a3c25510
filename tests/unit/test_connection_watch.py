"""The Kafka adapter's reading of kafka-python's log: failures no retry can fix become one line."""

from __future__ import annotations

import logging

from streamdrift.config.model import KafkaSettings
from streamdrift.kafka.clients import ConnectionWatch

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
