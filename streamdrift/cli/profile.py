"""`streamdrift profile build|merge`: reference profiles (core/reference.py) from a JSONL file or a topic
range, and the merge of profiles of two periods. With `reference.performance` in the config, `build` also
fits each selected model's CBPE reference from its labelled events (core/performance.py); a merge drops
those (an isotonic fit does not merge): build the merged period again for them."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from streamdrift.cli.replay import topic_records
from streamdrift.config import load_config
from streamdrift.config.reference import PerformanceSettings
from streamdrift.core.budget import attach_run_lengths
from streamdrift.core.event import EventDecoder
from streamdrift.core.performance import ReferenceSample
from streamdrift.core.reference import DEFAULT_BINS, DEFAULT_TOP_K, Profile, ProfileError
from streamdrift.errors import BadRecord, ConfigError

MAX_BINS = 1000


def add_profile_parser(commands: argparse._SubParsersAction[Any]) -> None:
    profile = commands.add_parser("profile", help="reference profiles: what a known-good period looked like")
    actions = profile.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="a profile per model and signal from a JSONL file or a topic")
    build.add_argument("--config", required=True, help="YAML config file (the event fields, the cluster)")
    build.add_argument("--input", help="JSONL file of events (the replay's input format)")
    build.add_argument("--topic", help="read this topic instead (read_committed)")
    build.add_argument("--from", dest="start", metavar="OFFSET|TIME", help="with --topic: first record")
    build.add_argument("--to", dest="stop", metavar="OFFSET|TIME", help="with --topic: stop before")
    build.add_argument("--output", required=True, help="the profile's JSON file")
    build.add_argument("--models", default="*", help="glob of the model ids to profile (default: all)")
    build.add_argument("--bins", type=int, default=DEFAULT_BINS, help="quantile bins per numeric signal")
    build.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="values kept per categorical signal")
    build.add_argument(
        "--segments",
        metavar="FEATURE,...",
        help="categorical features whose values (the top-k) get profiles of their own "
        "(default: the config's reference.segments)",
    )
    build.set_defaults(handler=_build)
    merge = actions.add_parser("merge", help="one profile of the periods of several")
    merge.add_argument("profiles", nargs="+", metavar="PROFILE", help="profile JSON files")
    merge.add_argument("--output", required=True, help="the merged profile's JSON file")
    merge.set_defaults(handler=_merge)


def _build(args: argparse.Namespace) -> int:
    config = load_config(args.config, read_profile=False)
    if (args.input is None) == (args.topic is None):
        raise ConfigError("give either --input FILE or --topic TOPIC")
    if args.topic is None and (args.start is not None or args.stop is not None):
        raise ConfigError("--from and --to need --topic")
    if not 1 <= args.bins <= MAX_BINS:
        raise ConfigError(f"--bins must be from 1 to {MAX_BINS}, got {args.bins}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    if args.segments is not None:
        segments = [name.strip() for name in args.segments.split(",") if name.strip()]
    else:
        segments = [] if config.reference is None else list(config.reference.segments)
    profile = Profile(models=args.models, bins=args.bins, top_k=args.top_k, segments=segments)
    performance = None if config.reference is None else config.reference.performance
    # Per model selected for estimated performance: its labelled events, for a CBPE reference.
    samples: dict[str, ReferenceSample] = {}
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    bad = 0
    if args.input is not None:
        path = Path(args.input)
        if not path.is_file():
            raise ConfigError(f"--input {args.input}: no such file")
        with path.open("rb") as lines:
            records: Iterable[tuple[bytes | None, bytes | None]] = (
                (None, line.rstrip(b"\r\n")) for line in lines if line.strip()
            )
            bad = _add(profile, decoder, records, samples, performance)
    else:
        from streamdrift.cli.bounds import parse_bound  # the Kafka adapter only when reading a topic

        start, stop = parse_bound("--from", args.start), parse_bound("--to", args.stop)
        read = topic_records(config, args.topic, start, stop)
        bad = _add(profile, decoder, ((record.key, record.value) for record in read), samples, performance)
    document = profile.document()
    calibrated = 0 if config.budget is None else attach_run_lengths(document, config.budget.budget().delta)
    estimated = 0 if performance is None else _attach_performance(document, samples, performance)
    _write(document, args.output)
    events = sum(model.events for model in profile.models.values())
    sys.stderr.write(
        f"profile: {len(profile.models)} models, {events} events, {bad} records not events"
        + (f", {calibrated} signals calibrated for the budget" if calibrated else "")
        + (f", {estimated} models with a CBPE reference" if performance is not None else "")
        + f" -> {args.output}\n"
    )
    return 0


def _attach_performance(
    document: dict[str, Any], samples: dict[str, ReferenceSample], settings: PerformanceSettings
) -> int:
    """Each sampled model's CBPE reference into its profile document; returns how many got one."""
    fitted = 0
    for model_id, sample in samples.items():
        reference = sample.fit(settings.window_events, settings.threshold)
        if reference is not None and model_id in document["models"]:
            document["models"][model_id]["performance"] = reference.to_dict()
            fitted += 1
    return fitted


def _add(
    profile: Profile,
    decoder: EventDecoder,
    records: Iterable[tuple[bytes | None, bytes | None]],
    samples: dict[str, ReferenceSample],
    performance: PerformanceSettings | None,
) -> int:
    """Feed the events to the profile (and those of models selected for estimated performance to their
    samples); returns how many records were not events (skipped, as the service dead-letters them)."""
    bad = 0
    for key, value in records:
        try:
            event = decoder.decode(key, value)
        except BadRecord:
            bad += 1
            continue
        profile.add(event)
        if performance is not None and fnmatch.fnmatchcase(event.model_id, performance.models):
            sample = samples.get(event.model_id)
            if sample is None:
                sample = samples[event.model_id] = ReferenceSample()
            sample.add(event)
    return bad


def _merge(args: argparse.Namespace) -> int:
    profiles = iter(_read(path) for path in args.profiles)
    merged = next(profiles)
    for path, profile in zip(args.profiles[1:], profiles, strict=True):
        try:
            merged.merge(profile)
        except ProfileError as error:
            raise ConfigError(f"{path}: {error}") from None
    _write(merged.document(), args.output)
    sys.stderr.write(
        f"profile: {len(args.profiles)} profiles, {len(merged.models)} models -> {args.output}\n"
    )
    return 0


def _read(path: str) -> Profile:
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{path}: not JSON ({error})") from None
    try:
        return Profile.from_document(document)
    except ProfileError as error:
        raise ConfigError(f"{path}: {error}") from None


def _write(document: dict[str, Any], path: str) -> None:
    try:
        Path(path).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as error:
        raise ConfigError(f"--output {path}: cannot write: {error.strerror}") from None
