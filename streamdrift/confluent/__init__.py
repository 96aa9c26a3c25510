"""The confluent-kafka transport: the ports (streamdrift/ports.py) on librdkafka."""

from streamdrift.confluent.transport import ConfluentTransport

__all__ = ["ConfluentTransport"]
