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
from streamdrift.routing.payloads import (
    ALERT_ID_HEADER,
    SIGNATURE_HEADER,
    alertmanager_alert,
    signature,
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
    assert route.webhook is not None  # a route has exactly one receiver (RoutesConfig checks)
    hook = route.webhook

    def to_webhook(alert: Alert) -> Attempt:
        body = webhook_body(alert, route)
        headers = {**hook.headers, "Content-Type": "application/json", ALERT_ID_HEADER: alert.alert_id}
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = signature(hook.secret.get_secret_value(), body)
        return post(hook.url, body, headers, hook.timeout_s)

    return to_webhook


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
