"""The deployments the exactly-once tests run: an input stream with changes in it, the service's config, an
offline uninterrupted run to compare with, and ways to disturb the service (kill -9) while it works.
"""

from __future__ import annotations

import os
import pickle
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.core.performance import ReferenceSample
from streamdrift.core.reference import Profile
from streamdrift.core.snapshot import decode_snapshot
from streamdrift.errors import BadRecord
from tests.conftest import KafkaClients, unique_name
from tests.integration.conftest import Service

DEADLINE_S = 120.0
# `make soak` raises these: more kills over more events.
SOAK_KILLS = int(os.environ.get("STREAMDRIFT_SOAK_KILLS", "10"))
SOAK_EVENTS = int(os.environ.get("STREAMDRIFT_SOAK_EVENTS", "100800"))


def config_yaml(bootstrap: str, input_topic: str, tag: str, *, sections: str = "", **processing: Any) -> str:
    """The config of a run; `processing` adds or overrides settings of that section; `sections`: more
    top-level YAML sections."""
    settings = {"commit_interval_ms": 100, "session_timeout_ms": 6000, **processing}
    lines = "".join(f"\n  {key}: {value}" for key, value in settings.items())
    return f"""
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: "{tag}-group"
  client: "${{STREAMDRIFT_TEST_KAFKA_CLIENT}}"
http: {{port: 0}}
topics:
  input: ["{input_topic}"]
  alerts: "{tag}-alerts"
  dead_letter: "{tag}-dead-letter"
  state: "{tag}-state"
processing:{lines}
models:
  - match: "ph-*"
    features:
      x: {{detector: {{type: page_hinkley, threshold: 20}}}}
  - match: "ks-*"
    features:
      x: {{detector: {{type: kswin, alpha: 0.001, seed: 5}}}}
logging: {{summary_interval_s: 1}}
{sections}"""


def stream(models: int, per_model: int, seed: int) -> list[tuple[str, bytes]]:
    """Interleaved events of several models, each with two mean shifts and a missing-value burst."""
    rng = np.random.default_rng(seed)
    kinds = ("ad", "ph", "ks")
    names = [f"{kinds[i % 3]}-{i}" for i in range(models)]
    shifts = {name: sorted(rng.choice(np.arange(500, per_model - 500), 2, replace=False)) for name in names}
    out = []
    for i in range(per_model):
        for name in names:
            first, second = shifts[name]
            level = 0.0 + (i >= first) * 1.5 - (i >= second) * 1.5
            features: dict[str, Any] = {
                "x": round(float(rng.normal(level, 1.0)), 4),
                "y": round(float(rng.uniform()), 4),
            }
            if first <= i < first + 300 and rng.uniform() < 0.4:
                features["y"] = None
            event = {"model_id": name, "features": features, "score": round(float(rng.beta(2, 5)), 4)}
            out.append((name, orjson.dumps(event)))
    return out


def reference_section(
    tmp_path: Path,
    events: list[tuple[str, bytes]],
    window: str = "{events: 250}",
    segments: Sequence[str] = (),
    multivariate: bool = False,
    performance_window: int | None = None,
) -> str:
    """A `reference:` section whose profile (written to `tmp_path`, named by its absolute path) is built
    from `events`: numeric features tested by PSI and Wasserstein, categorical ones by chi-square; windows
    per value of the `segments` features too; with `multivariate`, every model's multivariate:reconstruction
    signal; with `performance_window`, every model's estimated performance in windows of that many events,
    its reference fitted on labels drawn from each event's score (a calibrated score, by construction)."""
    decoder = EventDecoder()
    profile = Profile(bins=10, top_k=5, segments=segments)
    decoded = [decoder.decode(model.encode(), value) for model, value in events]
    profile.add_all(decoded)
    document = profile.document()
    if performance_window is not None:
        draw = np.random.default_rng(len(events))
        samples: dict[str, ReferenceSample] = {}
        for event in decoded:
            label = int(draw.uniform() < float(event.score))  # type: ignore[arg-type]
            samples.setdefault(event.model_id, ReferenceSample()).add(replace(event, label=label))
        for model_id, sample in samples.items():
            fitted = sample.fit(performance_window, threshold=0.3)
            assert fitted is not None, (
                f"{model_id}: too few reference events for windows of {performance_window}"
            )
            document["models"][model_id]["performance"] = fitted.to_dict()
    path = tmp_path / "reference-profile.json"
    path.write_bytes(orjson.dumps(document))
    performance = f"  performance: {{window_events: {performance_window}, threshold: 0.3}}\n"
    return (
        f"""reference:
  profile: "{path}"
  window: {window}
  numeric: {{psi: 0.1, wasserstein: 0.15}}
  categorical: {{chi_square: 0.001}}
  segments: {orjson.dumps(list(segments)).decode()}
"""
        + ("  multivariate: {}\n" if multivariate else "")
        + (performance if performance_window else "")
    )


def with_bad_records(events: list[tuple[str, bytes]], every: int) -> list[tuple[str, bytes]]:
    """The events with a record that is not JSON after every `every`-th one (keyed by the model before it),
    each distinct: the service dead-letters them while it writes alerts, so that an interval's transaction
    holds output from its first records on, not only at its commit."""
    out: list[tuple[str, bytes]] = []
    for index, (model, value) in enumerate(events, start=1):
        out.append((model, value))
        if index % every == 0:
            out.append((model, b"not json %d" % index))
    return out


def read_all(clients: KafkaClients, topic: str) -> list[Any]:
    consumer = clients.consumer(isolation_level="read_committed", enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    if not partitions:
        return []  # the topic does not exist (yet)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    records: list[Any] = []
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        assert time.monotonic() < deadline, f"could not read {topic} to its end"
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def offline(config: StreamdriftConfig, records: list[Any]) -> tuple[list[bytes], Monitor]:
    """The uninterrupted run: the production core over the input records, partition by partition."""
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(config.policies(), config_version=config.config_version, limits=config.monitor_limits())
    alerts = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            event = decoder.decode(record.key, record.value)
        except BadRecord:  # the service dead-letters it
            continue
        source = RecordSource(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )
        alerts.extend(alert.to_json() for alert in monitor.process(event, source))
    return alerts, monitor


@dataclass(frozen=True, slots=True)
class Run:
    """One service deployment under test: its input topic, its own topic and group names, its config."""

    topic: str
    tag: str
    config_path: Path
    config: StreamdriftConfig

    @property
    def group(self) -> str:
        return f"{self.tag}-group"


def prepare_run(
    bootstrap: str, topic: str, tmp_path: Path, prefix: str, *, sections: str = "", **processing: Any
) -> Run:
    tag = unique_name(prefix)
    text = config_yaml(bootstrap, topic, tag, sections=sections, **processing)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(text)
    return Run(topic=topic, tag=tag, config_path=config_path, config=parse_config(text.encode()))


def assert_alerts_equal_offline(clients: KafkaClients, run: Run, at_least: int) -> Monitor:
    """The read_committed alerts topic equals the uninterrupted offline run: no duplicate, none missing."""
    expected, monitor = offline(run.config, read_all(clients, run.topic))
    alerts = [record.value for record in read_all(clients, f"{run.tag}-alerts")]
    assert len(expected) >= at_least, "the stream must produce alerts for the test to mean anything"
    assert len(alerts) == len(set(alerts)), "duplicate alerts"
    missing = sorted(set(expected) - set(alerts))
    extra = sorted(set(alerts) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} alerts missing, {len(extra)} not expected; first missing: {missing[:3]}; "
        f"first not expected: {extra[:3]}"
    )
    return monitor


def output_topics(config: StreamdriftConfig) -> list[str]:
    """The topics the service writes inside its transactions (besides the group's offsets)."""
    topics = [config.topics.alerts, config.topics.dead_letter, config.topics.state]
    if config.processing.repartition:
        topics.append(config.repartition_topic())
    return topics


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the broker: the input records that have arrived (the sum of the input topics' high
    watermarks), the output partitions' high watermarks, and those with a transaction open: (last stable
    offset, high watermark)."""

    arrived: int
    ends: dict[TopicPartition, int]
    open: dict[TopicPartition, tuple[int, int]]


class BrokerView:
    """What the broker itself says about a run, independent of the service: how much input has arrived, and
    where a transaction is open. A partition's last stable offset (end_offsets of a read_committed consumer)
    below its high watermark (end_offsets of a read_uncommitted one) holds records of an open transaction.
    Output topics are those the service creates: they are looked up until they exist."""

    def __init__(self, clients: KafkaClients, inputs: list[str], outputs: list[str]) -> None:
        self.inputs, self.outputs = inputs, outputs
        self.stable = clients.consumer(isolation_level="read_committed")
        self.uncommitted = clients.consumer(isolation_level="read_uncommitted")
        self.reader = clients.consumer(isolation_level="read_committed")
        self.known: dict[str, list[TopicPartition]] = {}

    def partitions(self, topics: list[str]) -> list[TopicPartition]:
        for topic in topics:
            if topic not in self.known and (found := self.uncommitted.partitions_for_topic(topic)):
                self.known[topic] = [TopicPartition(topic, p) for p in sorted(found)]
        return [tp for topic in topics for tp in self.known.get(topic, [])]

    def sample(self) -> Sample:
        outputs = self.partitions(self.outputs)
        # The stable offsets first: a partition found open was open at the latest when they were read, and
        # the input high watermarks, read after, count every input record its records came from.
        stable = self.stable.end_offsets(outputs) if outputs else {}
        inputs = self.partitions(self.inputs)
        ends = self.uncommitted.end_offsets(outputs + inputs)
        return Sample(
            arrived=sum(ends[tp] for tp in inputs),
            ends={tp: ends[tp] for tp in outputs},
            open={tp: (stable[tp], ends[tp]) for tp in outputs if stable[tp] < ends[tp]},
        )

    def arrived(self) -> int:
        inputs = self.partitions(self.inputs)
        return sum(self.uncommitted.end_offsets(inputs).values())

    def last_stable(self, tp: TopicPartition) -> int:
        return int(self.stable.end_offsets([tp])[tp])

    def committed_records(self, tp: TopicPartition, start: int, end: int) -> int:
        """How many records a read_committed reader finds in [start, end) of `tp` (once no transaction holds
        that range back: the caller waits for the last stable offset to pass `start`)."""
        self.reader.assign([tp])
        self.reader.seek(tp, start)
        found = 0
        deadline = time.monotonic() + 30
        while self.reader.position(tp) < end:
            assert time.monotonic() < deadline, f"could not read {tp} from {start} to {end}"
            for batch in self.reader.poll(timeout_ms=500).values():
                found += sum(1 for record in batch if record.offset < end)
        return found


@dataclass(slots=True)
class Kill:
    """One `kill -9`: the input committed and arrived at that moment, and the transactions it left open: per
    output partition (last stable offset, high watermark), seen just before the kill and still there just
    after it; `aborted`: the broker then aborted them (none of their records ever became readable)."""

    number: int
    targeted: bool  # aimed (see kill_repeatedly), else at a random moment with work in flight
    committed: int
    arrived: int
    open: dict[TopicPartition, tuple[int, int]]
    aborted: bool = False


AIM_WAIT_S = 10.0  # how long an aimed kill waits for its moment
RANDOM_MOMENT_EVERY = 4  # every 4th kill lands at a random moment: restores, replays, commits get kills too


def kill_repeatedly(
    service: Service,
    committed: Callable[[], int],
    total: int,
    kills: int,
    pause: tuple[float, float],
    view: BrokerView,
    *,
    transactional: bool = True,
    landed_share: float = 0.5,
) -> list[Kill]:
    """`kill -9` the service `kills` times while it has work in flight and input is still arriving, restarting
    it each time. `committed()` is the sum of the committed offsets of the input `view` watches; `total`, of
    the input there will be in the end. Asserts, at each kill, that less input was committed than had
    arrived, and that more input arrives after it (so the caller must still be producing).

    Each kill comes a random moment after the (re)started service made progress (`committed()` grew), once
    less input is committed than has arrived. With output topics in `view`, 3 kills in 4 are also aimed (for
    at most AIM_WAIT_S): `transactional`, at a transaction just opened on one (none was open at the broker's
    previous look, a few milliseconds before), else at a record just written to one (its high watermark grew
    since the previous look). With `transactional`, after each kill: whether the transactions seen open
    before it are still open (the same last stable offsets), and once the restarted service has fenced the
    killed one's producer, whether the broker aborted them; at least `landed_share` of the kills (half, by
    default) must have landed in a transaction that was open, then aborted.
    """
    rng = random.Random(kills)
    done: list[Kill] = []
    before = committed()
    for number in range(1, kills + 1):

        def progressed(before: int = before) -> bool:
            return committed() > before

        wait_for(service, progressed, f"progress before kill {number}")
        time.sleep(rng.uniform(*pause))  # a random moment to crash at, not a synchronisation
        aim = None
        if view.outputs and number % RANDOM_MOMENT_EVERY != 0:
            aim = _transaction_just_opened if transactional else _output_just_written
        kill = kill_in_flight(service, committed, view, number, aim)
        assert kill.committed < kill.arrived < total, (
            f"kill {number}: no work in flight (committed {kill.committed}, arrived {kill.arrived}, "
            f"total {total})"
        )
        assert view.arrived() < total, (
            f"kill {number}: all the input had arrived; none arrives after the kill"
        )
        service.start()
        if transactional and kill.open:
            kill.aborted = _aborted(service, view, kill)
        done.append(kill)
        before = kill.committed
    if transactional and view.outputs:
        landed = [kill for kill in done if kill.aborted]
        topics = Counter(tp.topic for kill in landed for tp in kill.open)
        print(
            f"{len(landed)} of {kills} kills landed in an open transaction; open partitions: {dict(topics)}"
        )
        assert len(landed) >= landed_share * kills, (
            f"only {len(landed)} of {kills} kills landed in an open transaction: {done}"
        )
    return done


def _transaction_just_opened(previous: Sample, sample: Sample) -> bool:
    return bool(sample.open) and not previous.open


def _output_just_written(previous: Sample, sample: Sample) -> bool:
    return any(end > previous.ends.get(tp, end) for tp, end in sample.ends.items())


def kill_in_flight(
    service: Service,
    committed: Callable[[], int],
    view: BrokerView,
    number: int,
    aim: Callable[[Sample, Sample], bool] | None,
) -> Kill:
    """Kill the service at the first moment less input is committed than has arrived and, with an `aim`, the
    broker shows the moment aimed at (after AIM_WAIT_S, any moment)."""
    started = time.monotonic()
    previous = None
    while True:
        sample = view.sample()
        waited = time.monotonic() - started
        if aim is None or (previous is not None and aim(previous, sample)) or waited > AIM_WAIT_S:
            now = committed()
            if now < sample.arrived:
                service.kill()
                break
        assert waited < DEADLINE_S, (
            f"kill {number}: the service never had work in flight; its last log lines:\n{service.log_tail()}"
        )
        previous = sample
    after = view.sample()
    still = {
        tp: (stable, after.open[tp][1])
        for tp, (stable, _end) in sample.open.items()
        if tp in after.open and after.open[tp][0] == stable
    }
    if still:  # the transaction holding the input after `now` was open at the kill: no more was committed
        assert committed() == now, f"kill {number}: input committed after the kill"
    return Kill(number, aim is not None, committed=now, arrived=sample.arrived, open=still)


def _aborted(service: Service, view: BrokerView, kill: Kill) -> bool:
    """Once the restarted service has fenced the killed one's producer (the broker then aborts its open
    transaction), whether no record of the open ranges became readable: the transaction was aborted."""
    for tp, (stable, _end) in kill.open.items():
        wait_for(
            service, lambda tp=tp, stable=stable: view.last_stable(tp) > stable,
            f"the transaction left open by kill {kill.number} on {tp} to end",
        )  # fmt: skip
    return all(view.committed_records(tp, stable, end) == 0 for tp, (stable, end) in kill.open.items())


def committed_total(admin: Any, group: str, topic: str | None = None) -> int:
    """The sum of the group's committed offsets (of one topic, when given)."""
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:  # e.g. the group's coordinator is still loading on a fresh broker: not yet
        return 0
    return sum(meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and topic in (None, tp.topic))


def wait_for(service: Service, condition: Callable[[], bool], what: str) -> None:
    """`wait_until`, with the service's last log lines in the failure message."""
    try:
        wait_until(condition, what)
    except AssertionError as error:
        raise AssertionError(f"{error}; the service's last log lines:\n{service.log_tail()}") from None


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling interval of a deadline-bounded wait


def final_state(clients: KafkaClients, topic: str, key: str) -> dict[str, bytes]:
    latest: dict[str, bytes] = {}
    for record in read_all(clients, topic):
        latest[record.key.decode()] = record.value
    return {
        model: pickle.dumps(decode_snapshot(value, key.encode(), RIVER_VERSION)[1])
        for model, value in latest.items()
    }


Outgoing = tuple[str, bytes | None, bytes, int | None, int | None]
"""A record to produce: topic, key, value, partition (None: by key) and timestamp_ms (None: now)."""


def keyed(topic: str, events: list[tuple[str, bytes]]) -> list[Outgoing]:
    """Events keyed by model id."""
    return [(topic, model.encode(), value, None, None) for model, value in events]


def chunked(records: list[Outgoing], size: int = 1000) -> list[list[Outgoing]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


class PacedProducer:
    """Produces chunks of records in order over about `seconds`, on a background thread (as a context
    manager; it waits for the thread at exit). Each chunk is acknowledged before the next is sent.

    With `hold_last`, the last chunk waits for `release()` (or `hurry()`): input arrives after the last fault
    of a crash test however long the faults took. `hurry()` also ends the pacing: the rest goes at once, so
    that it does not make the test wait. A failure in the `with` block stops the production.
    """

    def __init__(
        self, clients: KafkaClients, chunks: list[list[Outgoing]], seconds: float, *, hold_last: bool = False
    ) -> None:
        self.clients, self.chunks, self.seconds, self.hold_last = clients, chunks, seconds, hold_last
        self.total = sum(map(len, chunks))
        self.hurried = threading.Event()
        self.released = threading.Event()
        self.stopped = threading.Event()
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="paced producer")

    def release(self) -> None:
        self.released.set()

    def hurry(self) -> None:
        self.released.set()
        self.hurried.set()

    def produce(self) -> None:
        producer = self.clients.producer(linger_ms=5)
        started, sent = time.monotonic(), 0
        for number, chunk in enumerate(self.chunks, start=1):
            if self.hold_last and number == len(self.chunks):
                self.released.wait()
            if self.stopped.is_set():
                return
            for topic, key, value, partition, timestamp_ms in chunk:
                producer.send(topic, key=key, value=value, partition=partition, timestamp_ms=timestamp_ms)
            producer.flush()
            sent += len(chunk)
            ahead = sent / self.total * self.seconds - (time.monotonic() - started)
            if ahead > 0:
                self.hurried.wait(ahead)  # pacing the input so that kills land mid-run

    def _run(self) -> None:
        try:
            self.produce()
        except BaseException as exc:
            self.failures.append(exc)

    def __enter__(self) -> PacedProducer:
        self.thread.start()
        return self

    def __exit__(self, failed: type[BaseException] | None, *_exc: object) -> None:
        if failed is not None:
            self.stopped.set()
            self.hurry()
        self.thread.join()
        if self.failures and failed is None:
            raise self.failures[0]


def produce_paced(clients: KafkaClients, topic: str, events: list[tuple[str, bytes]], seconds: float) -> None:
    PacedProducer(clients, chunked(keyed(topic, events)), seconds).produce()


def producing(
    clients: KafkaClients,
    topic: str,
    events: list[tuple[str, bytes]],
    seconds: float,
    chunk: int = 1000,
    *,
    hold_last: bool = False,
) -> PacedProducer:
    """Produce `events` keyed by model over about `seconds` in the background (`with producing(...)`), `chunk`
    at a time; always waits for the producer at exit. See PacedProducer."""
    return PacedProducer(clients, chunked(keyed(topic, events), chunk), seconds, hold_last=hold_last)


# ---- short-lived views, for brokers that go away (no client stays open across the fault) ----------------


def open_transaction(bootstrap: str, topics: list[str]) -> bool:
    """Whether one of these topics has an open transaction: its last stable offset (what read_committed
    readers may read to) is below its high watermark."""
    ends = {}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends[isolation] = consumer.end_offsets(partitions)
        finally:
            consumer.close()
    return any(ends["read_committed"][tp] < ends["read_uncommitted"][tp] for tp in ends["read_committed"])


class PacedInput:
    """Produces the events in the background at a steady pace until `stop()`; the rest follow the fault.

    The last `held` events wait for `stop()` or `join()`: however slowly the service under test starts, input
    is still to come when the fault is injected (`stop()` leaves them unsent, `join()` sends them)."""

    def __init__(
        self, bootstrap: str, topic: str, events: list[tuple[str, bytes]], per_s: float, held: int = 5_000
    ) -> None:
        self.bootstrap, self.topic, self.events, self.per_s = bootstrap, topic, events, per_s
        self.held = min(held, len(events) - 1)
        self.stopping = threading.Event()
        self.releasing = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._produce)
        self.thread.start()

    def _produce(self) -> None:
        clients = KafkaClients(self.bootstrap)
        try:
            # Idempotent: a send retried across a frozen broker is written once.
            producer = clients.producer(linger_ms=5, enable_idempotence=True)
            started = time.monotonic()
            hold_at = len(self.events) - self.held
            for model, value in self.events:
                if self.sent == hold_at:
                    producer.flush()
                    while not (self.stopping.is_set() or self.releasing.wait(0.1)):
                        pass
                if self.stopping.is_set():
                    break
                producer.send(self.topic, key=model.encode(), value=value)
                self.sent += 1
                if self.sent % 500 == 0 and not self.releasing.is_set():
                    producer.flush()
                    ahead = self.sent / self.per_s - (time.monotonic() - started)
                    self.stopping.wait(max(0.0, ahead))  # the pace
            producer.flush()
        finally:
            clients.close()

    def stop(self) -> int:
        """Stop producing; returns how many events were written."""
        self.stopping.set()
        self.thread.join()
        return self.sent

    def join(self) -> int:
        """Produce the rest and wait until every event is written; returns how many were."""
        self.releasing.set()
        self.thread.join()
        return self.sent
