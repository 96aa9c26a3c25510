"""How the service shows itself: the `http:` endpoints (metrics, health, readiness) and `logging:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamdrift.config.sections import Strict


class HttpSettings(Strict):
    """The HTTP endpoints: /metrics (Prometheus), /healthz (the loop is alive), /readyz (ready to work)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(9308, ge=0, le=65535, description="0: any free port (the log says which)")
    max_model_labels: int = Field(
        100,
        ge=1,
        description="alert metrics carry a model_id label for this many models; later ones share "
        '"_other", so a deployment with thousands of models cannot flood Prometheus',
    )


class LoggingSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    summary_interval_s: float = Field(10.0, gt=0)
