"""Reading a config file: YAML, `${ENV}` substitution, validation, path-precise errors."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from streamdrift.config.model import SECRET_KEYS, StreamdriftConfig
from streamdrift.config.routes import RoutesConfig
from streamdrift.core.reference import ProfileError, check_profile
from streamdrift.errors import ConfigError

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, read_profile: bool = True
) -> StreamdriftConfig:
    """Read and validate a config file; raises `ConfigError` listing every problem. Without `read_profile`
    the reference profile is not read (building one must not need one): no model gets windows."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    return parse_config(text, env=env, origin=str(path), base_dir=path.parent, read_profile=read_profile)


def parse_config(
    text: bytes | str,
    env: Mapping[str, str] | None = None,
    origin: str = "<config>",
    base_dir: Path | None = None,
    *,
    read_profile: bool = True,
) -> StreamdriftConfig:
    """`base_dir`: where a relative `reference.profile` is (the config file's directory; default the
    working directory)."""
    raw = text.encode() if isinstance(text, str) else text
    document = _mapping(raw, origin, "the config must be a mapping of sections (kafka, topics, ...)")
    problems: list[str] = []
    if "config_version" in document:
        problems.append("config_version: unknown key (it is computed from the file's content)")
    document = _with_env(document, env, origin, problems)
    version = hashlib.sha256(raw)
    reference = document.get("reference")
    if read_profile and isinstance(reference, dict) and isinstance(reference.get("profile"), str):
        profile = _read_profile(Path(base_dir or ".") / reference["profile"], origin)
        version.update(profile)
        document["reference_version"] = hashlib.sha256(profile).hexdigest()[:12]
        document["reference_models"] = _profile_models(
            profile, reference["profile"], origin, reference.get("segments")
        )
    document["config_version"] = version.hexdigest()[:12]
    try:
        return StreamdriftConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError([f"{origin}: {line}" for line in describe_errors(exc)]) from None


def load_routes(path: str | Path, env: Mapping[str, str] | None = None) -> RoutesConfig:
    """Read and validate the routes file of `alerts route`; raises `ConfigError` listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the routes file: {exc.strerror}") from None
    document = _mapping(raw, str(path), "the routes file must be a mapping (kafka, alerts_topic, routes)")
    document = _with_env(document, env, str(path), [])
    try:
        return RoutesConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {line}" for line in describe_errors(exc)]) from None


def _mapping(raw: bytes, origin: str, not_a_mapping: str) -> dict[str, Any]:
    """The YAML document, which must be a mapping."""
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{origin}: not valid YAML{where}: {problem}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: {not_a_mapping}")
    return document


def _with_env(
    document: dict[str, Any], env: Mapping[str, str] | None, origin: str, problems: list[str]
) -> dict[str, Any]:
    """The document with its `${ENV}` references substituted; `ConfigError` with every problem found so
    far (`problems`) and by the substitution."""
    substituted = _substitute(document, os.environ if env is None else env, "", problems)
    if problems:
        raise ConfigError([f"{origin}: {problem}" for problem in problems])
    return dict(substituted)


def _read_profile(path: Path, origin: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{origin}: reference.profile: {path}: cannot read: {exc.strerror}") from None


def _profile_models(profile: bytes, name: str, origin: str, segments: object) -> dict[str, Any]:
    """The profile's models, once the document is one this version reads, built with the segments the
    config names."""
    try:
        document = orjson.loads(profile)
        models: dict[str, Any] = check_profile(document)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{origin}: reference.profile: {name}: not JSON ({exc})") from None
    except ProfileError as exc:
        raise ConfigError(f"{origin}: reference.profile: {name}: {exc}") from None
    if isinstance(segments, list):
        missing = [feature for feature in segments if feature not in (document.get("segments") or [])]
        if missing:
            raise ConfigError(
                f"{origin}: reference.segments: {name} has no segments by {', '.join(map(str, missing))}: "
                "build it again with them (`profile build` takes reference.segments from the config)"
            )
    return models


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem: `models[0].features.amount.detector: adwin has no parameter 'dleta' ...`."""
    lines: list[str] = []
    for error in exc.errors():
        path = _path(error["loc"])
        messages = [error["msg"].removeprefix("Value error, ")]
        if error["type"] == "extra_forbidden":
            messages = ["unknown key"]
        elif error["type"] == "value_error":
            messages = messages[0].split("; ")  # a validator's several problems, one line each
        elif (
            error["type"] != "missing"
            and "input" in error
            and not _may_show_a_secret(error["loc"], error["input"])
        ):
            messages = [f"{messages[0]} (got {error['input']!r})"]
        lines.extend(f"{path}: {message}" if path else message for message in messages)
    return lines


def _may_show_a_secret(location: tuple[int | str, ...], value: Any) -> bool:
    """Errors about a secret never echo its value, nor do errors about a value holding one (a whole
    section of the wrong type, say)."""
    if any(part in SECRET_KEYS for part in location):
        return True
    shown = repr(value)
    return any(key in shown for key in SECRET_KEYS)


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _substitute(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REFERENCE.sub(replace, node)
    if isinstance(node, dict):
        return {
            key: _substitute(value, env, f"{path}.{key}" if path else str(key), problems)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_substitute(item, env, f"{path}[{i}]", problems) for i, item in enumerate(node)]
    return node
