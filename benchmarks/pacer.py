"""The latency load, run as a child: events produced at a steady rate, some engineered to alert.

`python -m benchmarks.pacer --bootstrap HOST:PORT --topic T --rate R --seconds S` sends R events a second for
S seconds (in 10 ms ticks), each with the record timestamp set at send time, which the alert it triggers
carries back as `source.timestamp_ms`. The first `--jump-models` models get half the traffic and their `f0`
switches by 100 standard deviations every `--jump-every` of their events (see `events.Jumps`), so ADWIN
alerts a few dozen of their events after every switch. Prints a JSON progress line every second on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from kafka import KafkaProducer

from benchmarks.events import EventShape, EventStream, Jumps

TICK_S = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pacer")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--jump-models", type=int, default=10)
    parser.add_argument("--jump-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    stream = EventStream(
        EventShape(models=args.models, partitions=args.partitions),
        seed=args.seed,
        jumps=Jumps(models=args.jump_models, every=args.jump_every),
    )
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap, client_id="streamdrift-bench-pacer", acks="all", linger_ms=5
    )
    failures: list[BaseException] = []
    out = sys.stdout

    def report(event: str, sent: int, started: float) -> None:
        fields = {"event": event, "sent": sent, "t": time.time(), "seconds": time.monotonic() - started}
        out.write(orjson.dumps({**fields, "failures": len(failures)}).decode() + "\n")
        out.flush()

    started = time.monotonic()
    report("started", 0, started)
    sent = 0
    last_report = started
    try:
        while (elapsed := time.monotonic() - started) < args.seconds:
            due = int(args.rate * elapsed) - sent
            if due > 0:
                now_s = time.time()
                for key, value, partition in stream.batch(due, event_time_s=round(now_s, 3)):
                    future = producer.send(
                        args.topic, key=key, value=value, partition=partition,
                        timestamp_ms=int(time.time() * 1000),
                    )  # fmt: skip
                    future.add_errback(failures.append)
                sent += due
            if time.monotonic() - last_report >= 1.0:
                report("progress", sent, started)
                last_report = time.monotonic()
            time.sleep(TICK_S)  # pacing: the rate is the point, not synchronisation
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)
    report("done", sent, started)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
