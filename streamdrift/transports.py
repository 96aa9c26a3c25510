"""Choosing the transport: `kafka.client` names the client library every command talks to Kafka with
(docs/ARCHITECTURE.md §8, §9). Each adapter package is imported only when chosen, so that a machine without
confluent-kafka runs the default."""

from __future__ import annotations

from typing import Protocol

from streamdrift.errors import ConfigError
from streamdrift.ports import ConnectionSettings, Transport

CLIENTS = ("kafka-python", "confluent")
# A transactional call waits at most this long past the request timeout before the producer is abandoned.
CALL_GRACE_S = 10.0


class TransportSettings(ConnectionSettings, Protocol):
    @property
    def client(self) -> str: ...
    @property
    def rebalance(self) -> str: ...


def open_transport(settings: TransportSettings) -> Transport:
    call_timeout_s = settings.request_timeout_ms / 1000 + CALL_GRACE_S
    if settings.client == "confluent":
        try:
            from streamdrift.confluent.transport import ConfluentTransport  # noqa: PLC0415 -- an extra
        except ImportError as exc:
            raise ConfigError(
                "kafka.client: confluent needs the confluent-kafka package: "
                "pip install 'streamdrift[confluent]'"
            ) from exc
        return ConfluentTransport(settings, call_timeout_s=call_timeout_s, rebalance=settings.rebalance)
    from streamdrift.kafka.transport import KafkaPythonTransport  # noqa: PLC0415 -- kafka-python only now

    return KafkaPythonTransport(settings, call_timeout_s=call_timeout_s, rebalance=settings.rebalance)
