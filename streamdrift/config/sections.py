"""Shared by every config section: unknown keys are errors, values are frozen, secrets may come from files."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Settings holding secrets: never echoed in errors or logs. Each may instead be read from a file named by
# `<key>_file` (a mounted secret), one of the two at most.
SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password", "state_key", "secret", "urls"})


def read_secret_files(data: object) -> object:
    """Replace each `<secret>_file: path` by `<secret>: <the file's content, without a final newline>`."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for secret in SECRET_KEYS:
        path = data.get(f"{secret}_file")
        if path is None:
            continue
        if data.get(secret) not in (None, ""):
            raise ValueError(f"give {secret} or {secret}_file, not both")
        try:
            data[secret] = Path(path).read_text(encoding="utf-8").removesuffix("\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ValueError(f"{secret}_file: cannot read {path}: {reason}") from None
    return data
