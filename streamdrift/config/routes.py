"""The routes file of `streamdrift alerts route`: which alerts go to which receiver (Prometheus Alertmanager,
a webhook, or chat and paging services through apprise), with retries, rate limits and text templates. A
file of its own, not a section of the service's config: editing a route must not change the
`config_version` the service's alerts carry.

    kafka: {bootstrap_servers: "kafka:9092"}      # the service's kafka section, as it is
    alerts_topic: drift-alerts
    routes:
      - name: oncall
        match: {models: ["fraud-*"], levels: [drift, resolved]}
        alertmanager: {url: "http://alertmanager:9093"}
      - name: audit
        webhook: {url: "https://audit.example/hooks/drift", secret_file: /run/secrets/audit}
"""

from __future__ import annotations

import fnmatch
import string
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from streamdrift.config.kafka_settings import KafkaSettings
from streamdrift.config.observability import HttpSettings, LoggingSettings
from streamdrift.config.sections import Strict, read_secret_files

Level = Literal["drift", "warning", "resolved"]
LEVELS: tuple[Level, ...] = ("drift", "warning", "resolved")
# The fields an alert's title and text templates may name (`{model_id}`, `{signal}`, ...).
TEMPLATE_FIELDS = frozenset(
    {"alert_id", "level", "model_id", "model_version", "signal", "detector", "observations", "event_time",
     "detected_at", "config_version", "episode_id", "topic", "partition", "offset", "route"}
)  # fmt: skip


class Match(Strict):
    """Which alerts a route takes: every list must match (globs, as in the service's `models:`)."""

    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    signals: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    levels: list[Level] = Field(default_factory=lambda: list(LEVELS), min_length=1)

    def takes(self, model_id: str, signal: str, level: str) -> bool:
        return (
            level in self.levels
            and any(fnmatch.fnmatchcase(model_id, glob) for glob in self.models)
            and any(fnmatch.fnmatchcase(signal, glob) for glob in self.signals)
        )


class Severity(Strict):
    """The `severity` label: a model-level alert (signal `model`) pages, a signal's own is information."""

    model: str = "page"
    signal: str = "info"
    warning: str = "info"


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ValueError("an http:// or https:// URL")
    return url


class AlertmanagerReceiver(Strict):
    url: str = Field(description="Alertmanager's base URL; alerts go to <url>/api/v2/alerts")
    severity: Severity = Field(default_factory=Severity)
    labels: dict[str, str] = Field(default_factory=dict, description="added to every alert's labels")
    active_for_s: float = Field(
        7 * 86400,
        gt=0,
        description="how long Alertmanager keeps a drift firing without its resolved alert (its endsAt)",
    )
    warning_for_s: float = Field(
        3600, gt=0, description="how long a warning fires (warnings have no resolved alert: they expire)"
    )
    timeout_s: float = Field(10, gt=0)

    _url = field_validator("url")(_http_url)


class WebhookReceiver(Strict):
    url: str
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key: the X-Streamdrift-Signature header")
    secret_file: str | None = Field(None, description="read the secret from this file")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(10, gt=0)

    _secret_files = model_validator(mode="before")(read_secret_files)
    _url = field_validator("url")(_http_url)


class AppriseReceiver(Strict):
    """Chat and paging services through apprise (`pip install 'streamdrift[apprise]'`): Slack, Teams,
    PagerDuty, e-mail, ... by URL (https://github.com/caronc/apprise/wiki). URLs carry their tokens: they are
    secrets, never logged."""

    urls: list[SecretStr] = Field(
        min_length=1, description="apprise URLs, e.g. slack://T/B/C, pagerduty://..."
    )


class Retry(Strict):
    """A failed delivery is tried again after `initial_s`, doubling up to `max_s`, for as long as it takes."""

    initial_s: float = Field(1.0, gt=0)
    max_s: float = Field(60.0, gt=0)


class Route(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    match: Match = Field(default_factory=Match)
    alertmanager: AlertmanagerReceiver | None = None
    webhook: WebhookReceiver | None = None
    apprise: AppriseReceiver | None = None
    title: str = "{model_id}: {signal} {level}"
    text: str = "{detector} after {observations} observations; {topic}/{partition}@{offset}"
    retry: Retry = Field(default_factory=Retry)
    per_minute: float | None = Field(None, gt=0, description="at most this many deliveries a minute")
    max_pending: int = Field(
        10_000, ge=1, description="alerts waiting for this route; when full, reading the topic pauses"
    )

    @model_validator(mode="after")
    def _one_receiver(self) -> Self:
        if sum(r is not None for r in (self.alertmanager, self.webhook, self.apprise)) != 1:
            raise ValueError("give exactly one receiver: alertmanager, webhook or apprise")
        return self

    @field_validator("title", "text")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        for _, name, _, _ in string.Formatter().parse(template):
            if name is not None and name not in TEMPLATE_FIELDS:
                known = ", ".join(sorted(TEMPLATE_FIELDS))
                raise ValueError(f"unknown field {{{name}}} (known: {known})")
        return template


class RouterHttp(HttpSettings):
    port: int = Field(9309, ge=0, le=65535, description="0: any free port (the log says which)")


class RoutesConfig(Strict):
    kafka: KafkaSettings
    alerts_topic: str = Field(min_length=1)
    group_id: str = Field("streamdrift-router", min_length=1)
    from_beginning: bool = Field(False, description="where a group with nothing committed starts")
    http: RouterHttp = Field(default_factory=RouterHttp)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    routes: list[Route] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [route.name for route in self.routes]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"route names must be unique: {', '.join(twice)}")
        return self
