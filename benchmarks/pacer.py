"""The latency load, run as a child: events produced at a steady rate, some engineered to alert.

`python -m benchmarks.pacer --bootstrap HOST:PORT --topic T --rate R --seconds S` sends R events a second for
S seconds, in 10 ms ticks (every record is made beforehand). The first `--jump-models` models get half the
traffic and their `f0` switches by 100 standard deviations every `--jump-every` of their events (see
`events.Jumps`), so ADWIN alerts a few dozen of their events after every switch. Each record's timestamp is
set when it is produced, and the alert it triggers carries it back as `source.timestamp_ms`.

The sender is kcat (librdkafka) when it is on PATH — lines written to its stdin, produced at once, for a
fraction of kafka-python's CPU per record, which matters on a small machine the service shares — else a
kafka-python producer. Prints a JSON progress line every second on stdout.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import subprocess
import sys
import time
from typing import IO, Any

import orjson
from kafka import KafkaProducer

from benchmarks.events import EventShape, EventStream, Jumps, Record

TICK_S = 0.01


class KcatSender:
    """kcat -P reading `key<TAB>value` lines; librdkafka stamps each record as it produces it."""

    name = "kcat"

    def __init__(self, kcat: str, bootstrap: str, topic: str) -> None:
        self.process = subprocess.Popen(  # the harness's own arguments, never input
            [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-X", "linger.ms=5", "-X", "acks=all"],
            stdin=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        self.stdin: IO[bytes] = self.process.stdin

    def send(self, records: list[Record]) -> None:
        self.stdin.write(b"".join(key + b"\t" + value + b"\n" for key, value, _ in records))
        self.stdin.flush()

    def close(self) -> int:
        self.stdin.close()
        return self.process.wait(timeout=60)


class KafkaPythonSender:
    name = "kafka-python"

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer: Any = KafkaProducer(
            bootstrap_servers=bootstrap, client_id="streamdrift-bench-pacer", acks="all", linger_ms=5
        )
        self.failures: list[BaseException] = []

    def send(self, records: list[Record]) -> None:
        for key, value, partition in records:
            future = self.producer.send(
                self.topic, key=key, value=value, partition=partition, timestamp_ms=int(time.time() * 1000)
            )
            future.add_errback(self.failures.append)

    def close(self) -> int:
        self.producer.flush(timeout=60)
        self.producer.close(timeout=30)
        return 1 if self.failures else 0


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
    parser.add_argument("--sender", choices=["kcat", "kafka-python"], help="default: kcat when on PATH")
    args = parser.parse_args()
    stream = EventStream(
        EventShape(models=args.models, partitions=args.partitions),
        seed=args.seed,
        jumps=Jumps(models=args.jump_models, every=args.jump_every),
    )
    total = math.ceil(args.rate * args.seconds)
    # Each value is copied: the bytes orjson returns keep the buffer they were written into (~4 KiB each, on
    # orjson 3.13), which for a long run at a high rate is more memory than the machine has.
    records = [
        (key, bytes(memoryview(value)), partition)
        for size in stream.batches(total)
        for key, value, partition in stream.batch(size)
    ]
    kcat = shutil.which("kcat")
    sender: KcatSender | KafkaPythonSender = (
        KcatSender(kcat, args.bootstrap, args.topic)
        if kcat is not None and args.sender != "kafka-python"
        else KafkaPythonSender(args.bootstrap, args.topic)
    )
    out = sys.stdout

    def report(event: str, sent: int, started: float, **extra: object) -> None:
        fields = {"event": event, "sent": sent, "t": time.time(), "seconds": time.monotonic() - started}
        out.write(orjson.dumps({**fields, "sender": sender.name, **extra}).decode() + "\n")
        out.flush()

    # Stopped early (the harness ends a failed run): unwind, so that kcat gets its EOF and is waited for.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    started = time.monotonic()
    report("started", 0, started)
    sent = 0
    last_report = started
    code = 1
    try:
        while (elapsed := time.monotonic() - started) < args.seconds:
            due = min(int(args.rate * elapsed), total)
            if due > sent:
                sender.send(records[sent:due])
                sent = due
            if time.monotonic() - last_report >= 1.0:
                report("progress", sent, started)
                last_report = time.monotonic()
            time.sleep(TICK_S)  # pacing: the rate is the point, not synchronisation
        ended = time.monotonic() - started
    finally:
        code = sender.close()
    report("done", sent, started, sending_seconds=ended, sender_exit=code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
