"""The signals a tuning run names (`--signal feature:amount`), and where a `models:` entry sets each one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamdrift.core.plan import SignalKind
from streamdrift.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A signal as the monitor names it, and where its detector is set in a `models:` entry."""

    name: str  # feature:<name>, missing:<name>, prediction, prediction:<class>, score or error
    kind: SignalKind
    feature: str | None = None  # the feature's name, for feature:<name>

    @classmethod
    def parse(cls, text: str) -> Signal:
        """
        >>> Signal.parse("feature:amount")
        Signal(name='feature:amount', kind='features', feature='amount')
        >>> Signal.parse("missing:amount").kind
        'missing'
        """
        prefix, colon, rest = text.partition(":")
        if not colon and text in ("score", "error", "prediction"):
            return cls(name=text, kind=text)  # type: ignore[arg-type]
        if colon and rest:
            if prefix == "feature":
                return cls(name=text, kind="features", feature=rest)
            if prefix in ("missing", "prediction"):
                return cls(name=text, kind=prefix)  # type: ignore[arg-type]
        raise ConfigError(
            f"--signal {text}: not a signal (one of feature:<name>, missing:<name>, prediction, "
            "prediction:<class>, score, error)"
        )

    @property
    def config_key(self) -> str:
        """Where a `models:` entry sets this signal's detector: `features.<name>`, or the signal's kind
        (`missing` for every feature's missing signal, `prediction` for every class)."""
        return f"features.{self.feature}" if self.feature is not None else self.kind


def check_distinct_keys(signals: Sequence[Signal]) -> None:
    """One `models:` entry sets one detector per key: two signals under the same key cannot both be tuned.

    >>> check_distinct_keys([Signal.parse("missing:a"), Signal.parse("missing:b")])
    Traceback (most recent call last):
    ...
    streamdrift.errors.ConfigError: --signal missing:a and --signal missing:b are both set by `missing` \
in a models entry (one detector for both): tune one of them at a time
    """
    owners: dict[str, str] = {}
    for signal in signals:
        owner = owners.setdefault(signal.config_key, signal.name)
        if owner != signal.name:
            raise ConfigError(
                f"--signal {owner} and --signal {signal.name} are both set by `{signal.config_key}` "
                "in a models entry (one detector for both): tune one of them at a time"
            )
