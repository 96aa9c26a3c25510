"""Input written compressed with every codec Kafka has: the service reads it, and alerts where River does.

kcat (librdkafka, as Java, Go and C producers compress) writes the input in four chunks, one per codec. The
test checks on the wire that each chunk really arrived in its codec, then that the alerts of the running
service equal River's ADWIN fed the same values offline.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import TopicPartition
from kafka.record.default_records import DefaultRecordBatch

from tests.conftest import KafkaClients, TopicFactory, unique_name
from tests.integration.conftest import Service
from tests.integration.runs import committed_total, read_all, wait_for
from tests.river_runs import adwin_drifts

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

CODECS = ("gzip", "snappy", "lz4", "zstd")  # kcat's -z names, in the batch attribute's code order 1-4
PER_CHUNK = 2_500


def config_text(bootstrap: str, topic: str, tag: str) -> str:
    """One numeric feature per event, and nothing else that could alert."""
    return f"""
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: "{tag}-group"
  client: "${{STREAMDRIFT_TEST_KAFKA_CLIENT}}"
http: {{port: 0}}
topics: {{input: ["{topic}"], alerts: "{tag}-alerts", dead_letter: "{tag}-dead-letter", state: "{tag}-state"}}
processing: {{commit_interval_ms: 200}}
defaults:
  missing: {{enabled: false}}
  type_mismatch: {{enabled: false}}
logging: {{summary_interval_s: 1}}
"""


def values(seed: int) -> list[float]:
    """Four chunks whose mean moves at each chunk boundary, and once inside the third."""
    rng = np.random.default_rng(seed)
    levels = [0.0, 2.0, -1.0, 1.0]
    out: list[float] = []
    for chunk, level in enumerate(levels):
        for i in range(PER_CHUNK):
            shift = 3.0 if chunk == 2 and i >= PER_CHUNK // 2 else 0.0
            out.append(round(float(rng.normal(level + shift, 1.0)), 4))
    return out


@pytest.fixture
def batch_codecs() -> Iterator[dict[int, int]]:
    """Spy on kafka-python's batch reading in this process: each batch's base offset -> compression code."""
    seen: dict[int, int] = {}
    original = DefaultRecordBatch._maybe_uncompress

    def spy(batch: Any) -> None:
        seen[batch.base_offset] = batch.compression_type
        original(batch)

    DefaultRecordBatch._maybe_uncompress = spy
    try:
        yield seen
    finally:
        DefaultRecordBatch._maybe_uncompress = original


def test_input_compressed_with_every_codec_alerts_as_river_offline(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    kcat_path: str,
    tmp_path: Path,
    batch_codecs: dict[int, int],
) -> None:
    topic = new_topic(partitions=1)
    tag = unique_name("codecs")
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_text(bootstrap_servers, topic, tag))
    xs = values(seed=13)
    service = services(config_path, "codecs-1")
    service.start()
    for chunk, codec in enumerate(CODECS):
        lines = b"".join(
            b"m-1\t" + orjson.dumps({"model_id": "m-1", "features": {"x": x}}) + b"\n"
            for x in xs[chunk * PER_CHUNK : (chunk + 1) * PER_CHUNK]
        )
        written = subprocess.run(
            [kcat_path, "-b", bootstrap_servers, "-t", topic, "-P", "-K", "\t", "-z", codec,
             "-X", "batch.num.messages=500"],
            input=lines, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert written.returncode == 0, f"kcat -z {codec} failed: {written.stderr.decode()}"
    wait_for(service, lambda: committed_total(kafka_admin, f"{tag}-group") == len(xs), "every event read")
    assert service.stop() == 0

    # On the wire: each chunk's batches carry its codec (kafka-python's own reading, spied on).
    batch_codecs.clear()
    records = read_all(kafka_clients, topic)
    codecs = dict(batch_codecs)  # the input's batches only (other topics' base offsets would collide)
    assert [orjson.loads(r.value)["features"]["x"] for r in records] == xs
    codec_of_chunk: dict[int, set[int]] = {}
    for base_offset, code in codecs.items():
        if code != 0:  # librdkafka sends a batch uncompressed when compressing would not make it smaller
            codec_of_chunk.setdefault(base_offset // PER_CHUNK, set()).add(code)
    assert codec_of_chunk == {0: {1}, 1: {2}, 2: {3}, 3: {4}}, codecs

    alerts = [orjson.loads(r.value) for r in read_all(kafka_clients, f"{tag}-alerts")]
    drifts = [a["source"]["offset"] for a in alerts if a["level"] == "drift" and a["signal"] == "feature:x"]
    expected = adwin_drifts(xs)
    assert len(expected) >= 4, "the stream must drift for the test to mean anything"
    assert drifts == expected
    assert {a["source"]["partition"] for a in alerts} == {0}
    consumer = kafka_clients.consumer(isolation_level="read_committed")
    assert consumer.end_offsets([TopicPartition(f"{tag}-dead-letter", 0)]) == {
        TopicPartition(f"{tag}-dead-letter", 0): 0
    }
