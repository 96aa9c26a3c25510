"""The throughput baseline, run as a child: a bare kafka-python consumer reading and parsing one topic.

`python -m benchmarks.baseline --bootstrap HOST:PORT --topic T` reads every partition of T from the beginning
to its end (read_committed, 2000 records a poll, generous fetch sizes), `orjson.loads` every value, and
prints one JSON line per poll on stdout: `{"event": "progress", "events": <cumulative>, "t": <epoch s>}`,
then `{"event": "done", ...}`. Nothing else: this is the cost of reading the data.

`--batch-reader` reads record batches the way the service's consumers do (streamdrift/kafka/batches.py)
instead of kafka-python's own way: the cost of reading the data for the service, which tells how much of
the service's time detection takes.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from streamdrift.kafka.batches import read_batches_in_one_pass

STALL_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--batch-reader", action="store_true", help="read batches as the service does")
    args = parser.parse_args()
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id="streamdrift-bench-baseline",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    if args.batch_reader and not read_batches_in_one_pass(consumer):
        raise SystemExit("this kafka-python's fetcher is not the one the batch reader knows")
    out = sys.stdout
    loads = orjson.loads
    events = value_bytes = 0
    try:
        tps = [TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out.write(
            orjson.dumps({"event": "started", "t": time.time(), "end_offsets": sum(end.values())}).decode()
        )
        out.write("\n")
        last_progress = time.monotonic()
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                if time.monotonic() - last_progress > STALL_S:
                    out.write(orjson.dumps({"event": "stalled", "events": events}).decode() + "\n")
                    return 1
                continue
            last_progress = time.monotonic()
            for records in batch.values():
                for record in records:
                    loads(record.value)
                    value_bytes += len(record.value)
                events += len(records)
            out.write(orjson.dumps({"event": "progress", "events": events, "t": time.time()}).decode())
            out.write("\n")
        out.write(
            orjson.dumps(
                {"event": "done", "events": events, "value_bytes": value_bytes, "t": time.time()}
            ).decode()
        )
        out.write("\n")
        out.flush()
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
