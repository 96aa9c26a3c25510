"""Fleet: the service side by side with the programs a user would write instead, on a large fleet's traffic.

One topic with one partition, 1,000,000 events (quick: 100,000), at 100 and at 10,000 models
(`--fleet-models`), one model count after the other. Models take turns (`EventShape(order="round_robin")`:
event i belongs to model i % models), so consecutive events never share a model and nobody can batch a
model's events together. Each event has 8 numeric features, a numeric prediction and a score: with the
default signals, 19 ADWINs per event (8 features, 8 missing-value flags, the type-mismatch rate, prediction,
score). Every contestant reads the whole topic from its beginning, each in turn, in the same run:

- bare: `baseline.py`, kafka-python reading and parsing (read_committed): the cost of the data alone;
- hand-written: `peer_kafka_python.py`, kafka-python + River as a user writes it (at least once, commits
  every 500 ms, detectors lost on a restart);
- Quix: `peer_quix.py`, an idiomatic Quix Streams app + River (exactly once, commits every 0.5 s, detectors
  in a plain dict, lost on a restart), run in its own venv (`peers_venv.py`: quixstreams cannot share the
  project's confluent-kafka);
- the service, once per build (`variants.py`), exactly once, default signals, as throughput runs it.

Per model count the topic is filled once, then each round runs bare, hand-written, Quix and each build in
turn (`--repeat`, default 1: the topic is big); the figures are medians, each rate taken over the steady
middle of a run (`passes.py`). The targets (the issue's, stated at 100 and at 10,000 models, checked at every
model count run): the kafka-python build at least as fast as Quix, the confluent build 1.5 times as fast.
A peer that fails is reported (FAILED, `failed_peers` in the JSON) and the others still run.
"""

from __future__ import annotations

import statistics
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from importlib.metadata import version
from typing import Any, TypeVar

from benchmarks import profiling
from benchmarks.broker import BenchError, FillStats, fill_topic
from benchmarks.events import EventShape, EventStream
from benchmarks.passes import RunFigures, run_baseline, run_reader, run_service
from benchmarks.peers_venv import PeersVenv, ensure_peers_venv
from benchmarks.report import Outcome, Row, events_per_s, ratio
from benchmarks.variants import Variant, compare, succeeded, tagged
from benchmarks.workspace import Scope, Workspace

T = TypeVar("T")

DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 100_000
DEFAULT_MODELS = (100, 10_000)
DETECTORS_PER_EVENT = 19
# Service build / Quix Streams, at each model count (builds without one, such as --before, have none).
TARGETS_OVER_QUIX = {"kafka-python": 1.0, "confluent": 1.5}

BARE, HAND, QUIX = "bare", "hand_written", "quix"
PEERS = (BARE, HAND, QUIX)  # in their order in each round, before the service builds


def _titles(peers: PeersVenv | None) -> dict[str, str]:
    quix = f"Quix Streams {peers.versions['quixstreams']}" if peers else "Quix Streams"
    return {
        BARE: "bare read + orjson (kafka-python)",
        HAND: "hand-written kafka-python + River, at least once",
        QUIX: f"{quix} + River, exactly once",
    }


def _peer_topics(scope: Scope, label: str) -> tuple[str, str]:
    """A fresh consumer group and alerts topic for one peer run, deleted with the scope."""
    group = scope.prefix(label)
    alerts = f"{group}.alerts"
    scope.topic_names.add(alerts)
    scope.workspace.broker.create_topic(alerts, 1)
    scope.workspace.broker.own(groups=[group])
    return group, alerts


def run_hand_written(scope: Scope, topic: str, total: int, label: str) -> RunFigures:
    group, alerts = _peer_topics(scope, label)
    argv = [
        sys.executable, "-m", "benchmarks.peer_kafka_python",
        "--bootstrap", scope.bootstrap, "--topic", topic, "--group", group, "--alerts", alerts,
    ]  # fmt: skip
    return run_reader(scope, label, argv, total)


def run_quix(scope: Scope, peers: PeersVenv, topic: str, total: int, label: str) -> RunFigures:
    """The Quix child, by path with `-I`: the repository is not on its sys.path, only the peers venv is."""
    group, alerts = _peer_topics(scope, label)
    script = scope.workspace.repo / "benchmarks" / "peer_quix.py"
    argv = [
        str(peers.python), "-I", str(script),
        "--bootstrap", scope.bootstrap, "--topic", topic, "--group", group, "--alerts", alerts,
        "--state-dir", str(scope.dir / f"{label}-state"),
    ]  # fmt: skip
    return run_reader(scope, label, argv, total)


def _attempt(scope: Scope, failed: dict[str, str], key: str, work: Callable[[], T]) -> T | None:
    """`work` for one peer, or None when that peer has failed (now or before), as `Scope.attempt` does for
    the builds: the failure is noted, the children `work` started are stopped, the others still run."""
    if key in failed:
        return None
    started = len(scope.children.running)
    try:
        return work()
    except Exception as exc:  # reported with the figures; the other contestants still run
        traceback.print_exc()
        failed[key] = f"{type(exc).__name__}: {exc}"
        for child in scope.children.running[started:]:
            if child.exit is None:
                child.stop(timeout=15.0)
        return None


def _median(runs: list[RunFigures]) -> float | None:
    return statistics.median(run.steady.events_per_s for run in runs) if runs else None


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)


def _rates(runs: list[RunFigures]) -> str:
    return ", ".join(f"{run.steady.events_per_s:,.0f}" for run in runs)


def _peer_versions(peers: PeersVenv | None) -> dict[str, Any]:
    return {
        "hand_written": {name: version(name) for name in ("kafka-python", "river", "orjson")},
        "quix": None if peers is None else peers.versions,
        "quix_venv": None if peers is None else str(peers.python.parent.parent),
        "quix_venv_build_seconds": None
        if peers is None or peers.build_seconds is None
        else round(peers.build_seconds, 1),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Contest:
    """Every run over one model count's topic: each peer's and each build's, in round order."""

    models: int
    fill: FillStats
    peers: dict[str, list[RunFigures]]
    services: dict[str, list[RunFigures]]
    summaries: dict[str, list[dict[str, Any]]]  # each service run's last summary line
    profile: dict[str, Any] | None = None  # `--profile`: py-spy's top frames of one more service run


def contest(
    scope: Scope, peers: PeersVenv | None, models: int, total: int, failed_peers: dict[str, str]
) -> Contest:
    """Fill a topic with `models` models taking turns, then run every contestant over it, round by round."""
    options, variants = scope.workspace.options, scope.workspace.variants
    topic = scope.input_topic(f"m{models}", partitions=1)
    shape = EventShape(models=models, partitions=1, order="round_robin")
    fill = fill_topic(scope.bootstrap, topic, EventStream(shape, seed=options.seed), total)
    print(
        f"fleet: {models:,} models: {total:,} events ({fill.mean_value_bytes:.0f} B each) "
        f"produced in {fill.seconds:.1f} s",
        file=sys.stderr,
    )
    done = Contest(
        models=models,
        fill=fill,
        peers={key: [] for key in PEERS},
        services={variant.name: [] for variant in variants},
        summaries={variant.name: [] for variant in variants},
    )
    titles = _titles(peers)
    for i in range(1, (options.repeat or 1) + 1):
        tag = f"m{models}-{i}"
        work: dict[str, Callable[[], RunFigures]] = {
            BARE: partial(run_baseline, scope, topic, total, f"bare-{tag}"),
            HAND: partial(run_hand_written, scope, topic, total, f"hand-{tag}"),
        }
        if peers is not None:
            work[QUIX] = partial(run_quix, scope, peers, topic, total, f"quix-{tag}")
        for key, run in work.items():
            figures_ = _attempt(scope, failed_peers, key, run)
            if figures_ is not None:
                done.peers[key].append(figures_)
        for variant in variants:
            label = f"{variant.name}-{tag}"
            service = scope.attempt(variant, partial(run_service, scope, topic, total, label, variant))
            if service is not None:
                done.services[variant.name].append(service[0])
                done.summaries[variant.name].append(service[1])
        each = "; ".join(
            [f"{titles[key]} {_rates(done.peers[key]) or 'failed'}" for key in PEERS]
            + [f"service {v.title} {_rates(done.services[v.name]) or 'failed'}" for v in variants]
        )
        print(f"fleet: {models:,} models, round {i}: {each} ev/s", file=sys.stderr)
    if options.profile:  # where the service spends its time on this traffic, apart from the measured runs
        profiled = next(v for v in variants if v.ref is None)
        done = replace(done, profile=profiling.profile_service(scope, topic, total, profiled))
        print(f"fleet: {models:,} models, profiled {profiled.name}", file=sys.stderr)
    scope.drop_topics([topic])  # ~250 MB per million events: gone before the next model count's
    return done


def measure(workspace: Workspace) -> Outcome:
    options, variants = workspace.options, workspace.variants
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    model_counts = options.fleet_models or DEFAULT_MODELS
    outcome = Outcome(name="fleet")
    failed_peers: dict[str, str] = {}
    peers: PeersVenv | None = None
    try:
        peers = ensure_peers_venv(workspace.out_dir / "peers-venv")
    except BenchError as exc:  # the other contestants still run
        print(f"fleet: {exc}", file=sys.stderr)
        failed_peers[QUIX] = f"BenchError: {exc}"
    with workspace.scope("fleet") as scope:
        contests = [contest(scope, peers, models, total, failed_peers) for models in model_counts]
        failed = dict(scope.failed)
    outcome.details.update(
        {
            "events": total,
            "partitions": 1,
            "order": "round_robin",
            "model_counts": list(model_counts),
            "detectors_per_event": DETECTORS_PER_EVENT,
            "repeats": options.repeat or 1,
            "commit_interval_ms": options.commit_interval_ms,
            "run_order_per_round": [*PEERS, *(v.name for v in variants)],
            "peer_versions": _peer_versions(peers),
            "by_models": {},
        }
    )
    if failed_peers:
        outcome.details["failed_peers"] = dict(failed_peers)
    try:
        succeeded(outcome, variants, failed)  # a FAILED row per failed build
    except BenchError as exc:  # every build failed: the peers' figures still go to the JSON
        outcome.error = str(exc).splitlines()[0]
    targets: dict[str, dict[str, Any]] = {}
    for done in contests:
        details = _report(outcome, done, _titles(peers), failed_peers, variants)
        if done.profile is not None:
            details["profile"] = done.profile
        outcome.details["by_models"][str(done.models)] = details
        targets[str(done.models)] = {
            name: {
                "over_quix_at_least": target,
                "over_quix": details["services"].get(name, {}).get("over_quix"),
                "met": details["services"].get(name, {}).get("target_met"),  # None: not measured
            }
            for name, target in TARGETS_OVER_QUIX.items()
        }
    outcome.details["targets"] = targets
    return outcome


def _report(
    outcome: Outcome,
    done: Contest,
    titles: dict[str, str],
    failed: dict[str, str],
    variants: tuple[Variant, ...],
) -> dict[str, Any]:
    """The rows of one model count, and its details. A build without a run here has its FAILED row."""
    rates = {key: _median(done.peers[key]) for key in PEERS}
    details: dict[str, Any] = {
        "mean_value_bytes": round(done.fill.mean_value_bytes, 1),
        "fill_seconds": round(done.fill.seconds, 2),
        "peers": {
            key: {
                "title": titles[key],
                "runs": [run.as_dict() for run in done.peers[key]],
                "events_per_s": _rounded(rates[key]),
            }
            for key in PEERS
        },
        "services": {},
    }
    _peer_rows(outcome, done.models, titles, done.peers, rates, failed)
    build_rates: dict[str, float | None] = {}
    for variant in variants:
        runs = done.services[variant.name]
        if not runs:
            continue
        rate = build_rates[variant.name] = statistics.median(run.steady.events_per_s for run in runs)
        service: dict[str, Any] = {
            **variant.as_dict(),
            "runs": [run.as_dict() for run in runs],
            "last_summaries": done.summaries[variant.name],
            "events_per_s": _rounded(rate),
        }
        details["services"][variant.name] = service
        _service_rows(outcome, done.models, variant, runs, rate, rates, service)
    compare(outcome, _prefix(done.models), build_rates, events_per_s)
    return details


def _prefix(models: int) -> str:
    return f"fleet, {models:,} models"


def _label(models: int, what: str) -> str:
    return f"{_prefix(models)}: {what}"


def _peer_rows(
    outcome: Outcome,
    models: int,
    titles: dict[str, str],
    runs: dict[str, list[RunFigures]],
    rates: dict[str, float | None],
    failed: dict[str, str],
) -> None:
    bare = rates[BARE]
    for key in PEERS:
        rate = rates[key]
        if rate is None:
            error = failed.get(key, "no run").splitlines()[0]
            outcome.rows.append(Row(measurement=_label(models, titles[key]), figure=f"FAILED: {error}"))
            continue
        outcome.rows.append(
            Row(
                measurement=_label(models, titles[key]),
                figure=f"{events_per_s(rate)} (runs {_rates(runs[key])})",
                reference=f"reading alone (the others: {DETECTORS_PER_EVENT} ADWINs/event)"
                if key == BARE
                else (f"bare read {events_per_s(bare)}" if bare else ""),
                ratio="" if key == BARE or not bare else ratio(rate, bare),
            )
        )


def _service_rows(
    outcome: Outcome,
    models: int,
    variant: Variant,
    runs: list[RunFigures],
    rate: float,
    peer_rates: dict[str, float | None],
    details: dict[str, Any],
) -> None:
    """The build's rate, then its ratios to Quix (with the target) and to the hand-written peer."""
    bare, hand, quix = (peer_rates[key] for key in PEERS)
    outcome.rows.append(
        Row(
            measurement=tagged(_label(models, "service, exactly once"), variant),
            figure=f"{events_per_s(rate)} (runs {_rates(runs)})",
            reference=f"bare read {events_per_s(bare)}" if bare else "",
            ratio=ratio(rate, bare) if bare else "",
        )
    )
    if bare:
        details["over_bare"] = round(rate / bare, 3)
    target = TARGETS_OVER_QUIX.get(variant.name) if variant.ref is None else None
    if quix:
        met = None if target is None else rate / quix >= target
        details["over_quix"] = round(rate / quix, 3)
        details["target_over_quix"] = target
        details["target_met"] = met
        outcome.rows.append(
            Row(
                measurement=tagged(f"  {_label(models, 'service / Quix Streams')}", variant),
                figure=f"{events_per_s(rate)} / {events_per_s(quix)}",
                reference="" if target is None else f"target ≥ {target:.1f}",
                ratio=ratio(rate, quix),
                met=met,
            )
        )
    if hand:
        details["over_hand_written"] = round(rate / hand, 3)
        outcome.rows.append(
            Row(
                measurement=tagged(f"  {_label(models, 'service / hand-written')}", variant),
                figure=f"{events_per_s(rate)} / {events_per_s(hand)}",
                ratio=ratio(rate, hand),
            )
        )
