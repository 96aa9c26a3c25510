"""Reading kafka-python's log for connection failures that no retry can fix."""

from __future__ import annotations

import logging
import re

from streamdrift.ports import ConnectionSettings


class ConnectionWatch(logging.Handler):
    """Reads kafka-python's log for connection failures that no retry can fix.

    kafka-python retries them like any network error until its bootstrap gives up, with nothing in the
    exception saying why; its log says why. The first such failure is kept as one readable line.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
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
