"""`python -m benchmarks [--only NAME] [--events N] [--quick] [--transports T,T] [--before REF] ...`: run
the measurements, print one table.

Needs KAFKA_BOOTSTRAP_SERVERS (`make bench` sets it through tools/with-kafka.sh). Writes every figure to
.cache/bench/<run id>.json and the children's logs and configs to .cache/bench/<run id>/, where the run id
is the start time (UTC) and a random suffix that also keeps the run's topic and group names apart. Exits 1
when a measurement could not be completed, for one build of the service or all, or for one of the fleet
measurement's peers (a target that is not met is a figure, not a failure), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import core, fleet, latency, scale, scaleout, throughput
from benchmarks.broker import BenchError, Broker
from benchmarks.machine import load_average, machine_info
from benchmarks.report import Outcome, format_table, write_json
from benchmarks.variants import TRANSPORTS, build_variants, parse_transports, resolve_commit
from benchmarks.workspace import Options, Workspace

MEASUREMENTS: dict[str, Callable[[Workspace], Outcome]] = {
    "core": core.measure,
    "throughput": throughput.measure,
    "fleet": fleet.measure,
    "latency": latency.measure,
    "scale": scale.measure,
    "scaleout": scaleout.measure,
}
# The core (no broker) first; latency uses the throughput figure; the heavy scale measurement goes last.
RUN_ORDER = ("core", "throughput", "fleet", "latency", "scaleout", "scale")
SERVICE_MEASUREMENTS = {"throughput", "fleet", "latency", "scaleout", "scale"}
REPO = Path(__file__).resolve().parent.parent


def _model_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of model counts, such as 100,10000")
    return counts


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="streamdrift benchmarks on a real broker: one table, JSON in .cache/bench/",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(MEASUREMENTS),
        help="run only this measurement (repeatable; default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run of each measurement")
    parser.add_argument(
        "--events",
        type=int,
        help="events per measurement (throughput, fleet and scale-out topics, scale's total)",
    )
    parser.add_argument(
        "--scale-models", type=int, help="models in the scale measurement (10 detectors each)"
    )
    parser.add_argument(
        "--fleet-models",
        type=_model_counts,
        metavar="N,N",
        help="fleet: the model counts, one topic each (default 100,10000)",
    )
    parser.add_argument("--rate", type=float, help="latency: events/s (default: half the service throughput)")
    parser.add_argument("--seconds", type=float, help="latency: seconds of production (default 60, quick 15)")
    parser.add_argument("--commit-interval-ms", type=int, default=500, help="the service's commit interval")
    parser.add_argument(
        "--snapshots-per-s",
        type=int,
        help="the service's processing.max_snapshots_per_s (default: the service's; not with --before)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="rounds of service runs: throughput and scale-out (default 2, quick 1), latency and fleet "
        "(default 1)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="throughput and fleet: also profile the service (py-spy)"
    )
    parser.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help=f"run the service once per transport, side by side (default {','.join(TRANSPORTS)})",
    )
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also run the service from this git commit (on kafka-python), interleaved with the current code",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.events is not None and args.events < 1000:
        parser.error("--events must be at least 1000")
    try:
        transports = parse_transports(args.transports)
        if args.before is not None:
            resolve_commit(REPO, args.before)
            if args.snapshots_per_s is not None:
                raise ValueError("--snapshots-per-s: the code of --before may not know that setting")
    except ValueError as exc:
        parser.error(str(exc))
    return Options(
        only=tuple(args.only or MEASUREMENTS),
        quick=args.quick,
        events=args.events,
        scale_models=args.scale_models,
        rate=args.rate,
        latency_seconds=args.seconds,
        commit_interval_ms=args.commit_interval_ms,
        snapshots_per_s=args.snapshots_per_s,
        repeat=args.repeat,
        profile=args.profile,
        seed=args.seed,
        transports=transports,
        before=args.before,
        fleet_models=args.fleet_models,
    )


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every scope: children stopped, topics deleted


def run(options: Options, bootstrap: str, run_id: str, machine: dict[str, Any]) -> list[Outcome]:
    broker = Broker(bootstrap)
    workspace = Workspace(bootstrap=bootstrap, options=options, repo=REPO, run_id=run_id, broker=broker)
    print(f"benchmarks: run {run_id}, logs in {workspace.run_dir}", file=sys.stderr)
    try:
        if SERVICE_MEASUREMENTS.intersection(options.only):
            workspace.variants = build_variants(REPO, workspace.run_dir, options.transports, options.before)
            machine["service_builds"] = [variant.as_dict() for variant in workspace.variants]
        for name in RUN_ORDER:
            if name not in options.only:
                continue
            print(f"== {name}", file=sys.stderr)
            started = time.monotonic()
            try:
                outcome = MEASUREMENTS[name](workspace)
            except Exception as exc:  # one failed measurement is reported; the others still run
                traceback.print_exc()
                outcome = Outcome(
                    name=name, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                )
                outcome.details["error"] = f"{type(exc).__name__}: {exc}"
            outcome.details["measurement_seconds"] = round(time.monotonic() - started, 1)
            workspace.outcomes[name] = outcome
    finally:
        for problem in broker.cleanup():
            print(f"benchmarks: cleanup: {problem}", file=sys.stderr)
        broker.close()
    return [workspace.outcomes[name] for name in MEASUREMENTS if name in workspace.outcomes]


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap:
        print("benchmarks: KAFKA_BOOTSTRAP_SERVERS is not set (run `make bench`)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    machine = machine_info(REPO)
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    try:
        outcomes = run(options, bootstrap, run_id, machine)
    except KeyboardInterrupt:
        print("benchmarks: interrupted; children stopped, topics deleted", file=sys.stderr)
        return 130
    except BenchError as exc:  # the builds to measure could not be prepared
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 1
    machine["load_average_at_end"] = load_average()
    print(format_table(outcomes, machine))
    profiles = [(o.name, o.details["profile"]) for o in outcomes if "profile" in o.details] + [
        (f"fleet, {models} models", by["profile"])
        for o in outcomes
        for models, by in o.details.get("by_models", {}).items()
        if "profile" in by
    ]
    for name, profile in profiles:
        print(f"\nservice profile, {name} ({profile['samples']} samples, {profile['file']}), top own time:")
        for frame, pct in profile["top_own"]:
            print(f"  {pct:5.1f}%  {frame}")
        print("top inclusive time:")
        for frame, pct in profile["top_inclusive"]:
            print(f"  {pct:5.1f}%  {frame}")
    path = write_json(REPO / ".cache" / "bench", run_id, outcomes, machine, options.as_dict())
    print(f"\nresults: {path}")
    failed = (o.error or o.details.get("failed_builds") or o.details.get("failed_peers") for o in outcomes)
    return 1 if any(failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
