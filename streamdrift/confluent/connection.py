"""Reading librdkafka's error events for connection failures that no retry can fix.

librdkafka retries every failed connection, whatever the cause, and reports each attempt to the client's
error callback. Some causes never go away by waiting (rejected credentials, an untrusted certificate); the
first such one is kept as one readable line, worded as the kafka-python transport words it.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct

from confluent_kafka import KafkaError

from streamdrift.ports import ConnectionSettings

PROBE_TIMEOUT_S = 5.0
CLOSED_MEANING_NOT_TLS = 3
# "sasl_ssl://localhost:9093/bootstrap: SSL handshake failed: ..." — the broker an event is about.
_BROKER = re.compile(r"^(?:[a-z_]+://)?\[?(?P<host>[^\s/\[\]]+?)\]?:(?P<port>\d+)/\S*: ")
_AFTER = re.compile(r" \(after \d+ms in state \w+\)$")


class ConnectionWatch:
    """Shared by every client of a transport, as their `error_cb`; `cause` is the first failure no retry
    fixes, as one line, or None."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.cause: str | None = None
        self.connecting = True  # until the first connection succeeds (ConfluentTransport.connect)
        self.closed_during_tls = 0

    def on_error(self, error: KafkaError) -> None:
        if self.cause is None:
            self.cause = self.explain(error.code(), error.str())

    def explain(self, code: int, message: str) -> str | None:
        settings = self.settings
        credentials = f"the credentials of user {settings.sasl_plain_username!r} ({settings.sasl_mechanism})"
        if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            if any(sign in message for sign in _LOST_DURING_SASL):
                return None  # the connection broke during the exchange (a broker going away): an outage
            if "Unsupported SASL mechanism" in message or "not supported by broker" in message:
                return f"the broker does not enable SASL {settings.sasl_mechanism}: check sasl_mechanism"
            if "Authentication failed" in message or "invalid credentials" in message:
                return f"the broker rejected {credentials}: check sasl_plain_username and sasl_plain_password"
            return f"SASL authentication failed ({_detail(message)}): check the sasl_ settings"
        if code == KafkaError.UNSUPPORTED_SASL_MECHANISM:
            return f"the broker does not enable SASL {settings.sasl_mechanism}: check sasl_mechanism"
        if code == KafkaError._SSL and "certificate verify failed" in message:
            return self._untrusted(message)
        if code == KafkaError._TRANSPORT and "connecting to a PLAINTEXT broker listener" in message:
            # The listener closed the connection during the TLS handshake, as a plaintext one does; so does a
            # broker stopped at that moment, or a proxy whose broker is away. Several in a row before any
            # connection worked, and a plaintext Kafka request answered on that port, mean a plaintext one.
            self.closed_during_tls += 1
            broker = _BROKER.match(message)
            if (
                self.connecting
                and self.closed_during_tls >= CLOSED_MEANING_NOT_TLS
                and broker is not None
                and answers_plaintext_kafka(broker["host"], int(broker["port"]))
            ):
                return NOT_TLS
            return None
        if code == KafkaError._TRANSPORT:
            self.closed_during_tls = 0
            return None
        if code == KafkaError._SSL and self.connecting:
            return f"TLS handshake failed ({_detail(message)}): check the ssl_ settings and security_protocol"
        return None

    def _untrusted(self, message: str) -> str:
        """librdkafka says only that the certificate could not be verified; a TLS handshake of Python's own
        with the same CA file and host check says why (an unknown CA, or a certificate for another host)."""
        broker = _BROKER.match(message)
        reason = None
        if broker is not None:
            reason = certificate_problem(
                broker["host"], int(broker["port"]), self._cafile(), check_hostname=self._check_hostname()
            )
        if reason is not None and "mismatch" in reason:
            return (
                f"TLS: the broker's certificate does not name the host connected to ({reason}): use the "
                "host name the certificate was issued for in bootstrap_servers and the advertised listeners"
            )
        reason = reason or "the broker's certificate could not be verified"
        return f"TLS: the broker's certificate is not trusted ({reason}): check ssl_cafile"

    def _cafile(self) -> str | None:
        cafile = self.settings.security().get("ssl_cafile")
        return cafile if isinstance(cafile, str) else None

    def _check_hostname(self) -> bool:
        return self.settings.security().get("ssl_check_hostname", True) is not False


# An authentication error whose text says the connection itself failed: nothing about the credentials.
_LOST_DURING_SASL = ("Broker transport failure", "Disconnected", "Connection refused", "timed out")
NOT_TLS = "TLS handshake failed: the listener does not speak TLS; check security_protocol, port"
KEY_NOT_LOADED = (
    "TLS: cannot load the client certificate and key (ssl_certfile, ssl_keyfile): check "
    "ssl_password, the password of the key, and that both files are PEM"
)


def explain_construction(message: str) -> str | None:
    """Why librdkafka refused to create a client, when it is a file of the TLS settings it cannot load (a
    key it cannot decrypt, most often); None for another reason (its own message says it)."""
    if "ssl.key.location" in message or "ssl.certificate.location" in message:
        return KEY_NOT_LOADED
    if "ssl.ca.location" in message:
        return f"TLS: cannot load the CA certificates ({_detail(message)}): check ssl_cafile"
    return None


def certificate_problem(host: str, port: int, cafile: str | None, *, check_hostname: bool) -> str | None:
    """Why a TLS handshake with the broker fails to verify its certificate, in OpenSSL's words ("self-signed
    certificate in certificate chain"); None when it does not fail so, or the broker cannot be reached."""
    try:
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = check_hostname
        with (
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason
        return None if reason is None else str(reason)
    except (OSError, ValueError):  # unreachable, reset, a CA file Python cannot read: no better reason
        return None


def answers_plaintext_kafka(host: str, port: int) -> bool:
    """Whether a Kafka broker answers a plaintext ApiVersions request (v0) on this port."""
    client_id = b"streamdrift-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id  # ApiVersions v0, correlation id 1
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as connection:
            connection.sendall(struct.pack(">i", len(body)) + body)
            answer = b""
            while len(answer) < 8:
                chunk = connection.recv(8 - len(answer))
                if not chunk:
                    return False
                answer += chunk
    except OSError:
        return False
    correlation_id: int = struct.unpack(">i", answer[4:8])[0]
    return correlation_id == 1


def _detail(message: str) -> str:
    """librdkafka's text without the broker it names first and the connection state it ends with."""
    broker = _BROKER.match(message)
    text = message[broker.end() :] if broker else message
    return _AFTER.sub("", text)
