"""The `kafka:` section: how to reach the brokers, with which client library and credentials."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, model_validator

from streamdrift.config.sections import Strict, read_secret_files

# Settings that are not kafka-python keyword arguments: the group is the consumers' alone, the client id is
# added where a client is made, the secret files have been read into their secrets.
_NOT_KAFKA_PYTHON: Final = frozenset(
    {"client", "rebalance", "group_id", "client_id", "sasl_plain_password_file", "ssl_password_file"}
)

# Each connection setting (named as in kafka-python) and the librdkafka property that means the same.
_LIBRDKAFKA_PROPERTIES: Final = {
    "bootstrap_servers": "bootstrap.servers",
    "client_id": "client.id",
    "security_protocol": "security.protocol",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "request_timeout_ms": "socket.timeout.ms",  # kafka-python's timeout of any request to a broker
}


class KafkaSettings(Strict):
    """Connection settings, the same whichever client library connects."""

    bootstrap_servers: str | list[str] = Field(description="host:port, or a list of them")
    group_id: str = Field("streamdrift", description="consumer group shared by every instance")
    client_id: str = "streamdrift"
    client: Literal["kafka-python", "confluent"] = Field(
        "kafka-python",
        description="the Kafka client library: kafka-python, or confluent (confluent-kafka, on librdkafka; "
        "installed with pip install 'streamdrift[confluent]')",
    )
    rebalance: Literal["eager", "cooperative"] = Field(
        "eager",
        description="the group's rebalance protocol: eager (range assignor; every partition is revoked at a "
        "rebalance) or cooperative (cooperative-sticky: only moved partitions stop; not with topics.labels, "
        "whose partitions must go to the member holding the same input partition)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    sasl_plain_password_file: str | None = Field(None, description="read sasl_plain_password from this file")
    ssl_password_file: str | None = Field(None, description="read ssl_password from this file")
    request_timeout_ms: int = Field(30_000, gt=0)

    _secret_files = model_validator(mode="before")(read_secret_files)

    def security(self) -> dict[str, object]:
        """The settings every kafka-python client gets (secrets included; never log this)."""
        return self.model_dump(exclude=set(_NOT_KAFKA_PYTHON), exclude_none=True)

    def librdkafka(self) -> dict[str, str]:
        """The same connection settings as librdkafka configuration properties, client.id included
        (secrets included; never log this). Settings left unset are left out: librdkafka's defaults apply."""
        properties: dict[str, str] = {}
        for name, value in self.model_dump(include=set(_LIBRDKAFKA_PROPERTIES), exclude_none=True).items():
            listed = ",".join(value) if isinstance(value, list) else str(value)
            properties[_LIBRDKAFKA_PROPERTIES[name]] = listed
        # kafka-python checks that the broker's certificate names its host unless told not to; so does
        # librdkafka with "https", and "none" turns the check off.
        properties["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        return properties
