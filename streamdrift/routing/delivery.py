"""One delivery attempt to a route's receiver: an HTTP POST, and what its answer means.

2xx: delivered. No answer, 408, 425, 429 and 5xx: the receiver is away or busy, so the route tries again
later (worker.py). Any other 4xx: the receiver refuses this alert for good (a payload it cannot take, a wrong
URL path): trying again cannot help and would hold the route for ever, so it is counted, logged with the
receiver's answer, and passed over. The standard library's HTTP client is enough for one POST with a timeout;
retrying is not done here but by the route's worker, so that a receiver that is away holds no other route.
"""

from __future__ import annotations

import enum
import urllib.error
import urllib.request
from collections.abc import Callable

import orjson

from streamdrift.config.routes import Route
from streamdrift.errors import ConfigError
from streamdrift.routing.payloads import (
    ALERT_ID_HEADER,
    SIGNATURE_HEADER,
    alertmanager_alert,
    fill,
    signature,
    template_fields,
    webhook_body,
)
from streamdrift.subscriber import Alert

TRY_AGAIN = frozenset({408, 425, 429})


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


class Attempt:
    """An attempt's outcome, and in one line why when it was not delivered."""

    def __init__(self, outcome: Outcome, reason: str = "") -> None:
        self.outcome, self.reason = outcome, reason


Send = Callable[[Alert], Attempt]


def sender(route: Route) -> Send:
    """The function that delivers one alert to the route's receiver."""
    if route.alertmanager is not None:
        receiver = route.alertmanager
        url = receiver.url.rstrip("/") + "/api/v2/alerts"

        def to_alertmanager(alert: Alert) -> Attempt:
            body = orjson.dumps([alertmanager_alert(alert, route, receiver)])
            return post(url, body, {"Content-Type": "application/json"}, receiver.timeout_s)

        return to_alertmanager
    if route.apprise is not None:
        return _apprise_sender(route, [url.get_secret_value() for url in route.apprise.urls])
    assert route.webhook is not None  # a route has exactly one receiver (RoutesConfig checks)
    hook = route.webhook

    def to_webhook(alert: Alert) -> Attempt:
        body = webhook_body(alert, route)
        headers = {**hook.headers, "Content-Type": "application/json", ALERT_ID_HEADER: alert.alert_id}
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = signature(hook.secret.get_secret_value(), body)
        return post(hook.url, body, headers, hook.timeout_s)

    return to_webhook


# The kind of notification each level is, for the services that show it (a colour, an icon).
APPRISE_TYPES = {"drift": "failure", "warning": "warning", "resolved": "success"}


def _apprise_sender(route: Route, urls: list[str]) -> Send:
    """Through apprise, which speaks each service's own API. It answers only whether every URL took the
    notification, so any failure is tried again (a URL that took it then sees it again)."""
    try:
        import apprise  # noqa: PLC0415 -- an optional extra
    except ImportError as exc:
        raise ConfigError(
            f"routes: {route.name}: apprise receivers need the apprise package: "
            "pip install 'streamdrift[apprise]'"
        ) from exc
    notifier = apprise.Apprise()
    for index, url in enumerate(urls):
        if not notifier.add(url):
            raise ConfigError(f"routes: {route.name}: apprise.urls[{index}]: not a URL apprise knows")

    def to_apprise(alert: Alert) -> Attempt:
        fields = template_fields(alert, route.name)
        result = notifier.notify(
            body=fill(route.text, fields),
            title=fill(route.title, fields),
            notify_type=APPRISE_TYPES[alert.level],
        )
        return (
            Attempt(Outcome.DELIVERED)
            if result
            else Attempt(Outcome.RETRY, "apprise: a service did not take it")
        )

    return to_apprise


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
    # The routes file admits http and https URLs only (config/routes.py).
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read()
        return Attempt(Outcome.DELIVERED)
    except urllib.error.HTTPError as exc:
        answer = exc.read(300).decode(errors="replace").strip()
        reason = f"HTTP {exc.code}: {answer}" if answer else f"HTTP {exc.code}"
        if exc.code in TRY_AGAIN or exc.code >= 500:
            return Attempt(Outcome.RETRY, reason)
        return Attempt(Outcome.REFUSED, reason)
    except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, name not found
        return Attempt(Outcome.RETRY, f"no answer: {getattr(exc, 'reason', None) or exc}")
