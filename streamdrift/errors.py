"""One exception root, classified by what the caller must do.

- `ConfigError`: the operator must fix a file or an argument; the CLI exits 2 with one line per problem.
- `BadRecord`: one input record cannot become an event; it goes to the dead-letter topic, never stops the run.
- `KafkaUnavailable`: the broker cannot be reached or refused us; retriable by waiting, fatal at startup.
- `FatalServiceError`: the service cannot go on (misconfigured cluster, writes refused); exit non-zero.
  `Fenced`, a kind of it: another instance took over this one's transactional id.
- `UnreadableBatch`: a fetched record batch cannot be read (CRC mismatch, damaged compression); the caller
  fetches it again a few times, then it is fatal with the coordinates an operator needs to move past it.
"""

from __future__ import annotations


class StreamdriftError(Exception):
    """Root of every error streamdrift raises on purpose."""


class ConfigError(StreamdriftError):
    """Invalid configuration or command-line arguments. `problems` holds one readable line each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class BadRecord(StreamdriftError):
    """An input record that cannot become an inference event. `kind` is a stable, countable label."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


class KafkaUnavailable(StreamdriftError):
    """The broker is unreachable or not ready; retriable."""


class FatalServiceError(StreamdriftError):
    """The service cannot continue (for example, a newer instance fenced this one)."""


class Fenced(FatalServiceError):
    """A newer producer with this transactional id exists: this instance is a zombie and must stop."""


class CheckpointRefused(StreamdriftError):
    """The group moved on (rebalance, eviction): the open interval cannot commit and must be redone."""


class UnreadableBatch(StreamdriftError):
    """A fetched record batch that cannot be read: its CRC does not match, or its records or compression are
    damaged. `offset` is where reading stopped; `end` the first offset after the batch, by its header (None
    when the header itself is unreadable)."""

    def __init__(self, topic: str, partition: int, offset: int, end: int | None, reason: str) -> None:
        self.topic, self.partition, self.offset, self.end, self.reason = topic, partition, offset, end, reason
        super().__init__(f"{topic} partition {partition} at offset {offset}: {reason}")
