"""The checkpoint (service/checkpoint.py) and its rollback, wired as the service wires it: a real ledger,
guarantee, alerts-topic sink, effects, state store and rebalance callbacks, over in-memory fakes of the ports.

Each test starts from a member holding events/0, events/1 and the label partitions serving them, restored with
nothing to replay and a producer started; `process_an_interval` then does what the loop does with a few
batches. Expected values are worked out by hand from the numbered steps in checkpoint.py.
"""

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Histogram

from streamdrift.config.model import StreamdriftConfig
from streamdrift.config.processing import ProcessingSettings
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.snapshot import read_header
from streamdrift.errors import (
    CheckpointRefused,
    FatalServiceError,
    Fenced,
    KafkaUnavailable,
    StreamdriftError,
)
from streamdrift.ports import CommitOffset, GroupConsumer, OutRecord, Producer, TopicPartition, Transport
from streamdrift.service import checkpoint as checkpoint_module
from streamdrift.service.checkpoint import Checkpoint, SnapshotBudget
from streamdrift.service.counters import AlertCounts, Counters
from streamdrift.service.effects import Effects
from streamdrift.service.guarantees import AtLeastOnce, ExactlyOnce
from streamdrift.service.ledger import Actions, Ledger, State
from streamdrift.service.rebalance import Rebalancing
from streamdrift.service.recovery import Recovery
from streamdrift.service.sinks import AlertsTopic
from streamdrift.service.state import StateStore
from tests.fakes import FakeConsumer, FakeProducer, FakeTransport

EVENTS, LABELS, ALERTS, STATE = "events", "labels", "alerts", "state"
E0, E1, E2 = (TopicPartition(EVENTS, p) for p in range(3))
L0, L1, L2 = (TopicPartition(LABELS, p) for p in range(3))
ASSIGNMENT = frozenset({E0, E1, L0, L1})
KEY = b"unit-test-state-key-0123456789"
TRANSACTIONAL_ID = "streamdrift-group-replica-0"
SNAPSHOT_INTERVAL_S = 5.0
SETTINGS = ProcessingSettings(snapshot_interval_ms=round(SNAPSHOT_INTERVAL_S * 1000), max_snapshots_per_s=0)
GUARANTEES = ["exactly_once", "at_least_once"]

ALERT = DriftAlert(
    alert_id="0123abcd", level="drift", model_id="a", model_version=None, signal="score",
    detector_type="adwin", detector_params={}, source=RecordSource(9, EVENTS, 0, 1_700_000_000_000),
    observations=10, stats={}, event_time_ms=None, config_version="v1",
)  # fmt: skip

# The offsets of the interval `process_an_interval` makes, with where a restore must read from: c's events
# from 10 are outside its snapshot once a and b are snapshotted; nothing else is.
INTERVAL_OFFSETS = {
    E0: CommitOffset(13, "streamdrift.replay_from=10"),
    E1: CommitOffset(5, "streamdrift.replay_from=5"),
    L0: CommitOffset(8, "streamdrift.replay_from=8"),
}


class FakeModels:
    """The detectors' side (checkpoint.ModelStates, effects.Models): changed models, states, drops."""

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.dropped: list[str] = []

    def export_model(self, model_id: str) -> dict[str, object]:
        return {"model_id": model_id}

    def drop_model(self, model_id: str) -> None:
        self.dropped.append(model_id)
        self.dirty.discard(model_id)


class FakeBuffers:
    def __init__(self) -> None:
        self.dropped: list[TopicPartition] = []

    def drop(self, tp: TopicPartition) -> None:
        self.dropped.append(tp)


@dataclass
class Rig:
    journal: list[str]
    transport: FakeTransport
    consumer: FakeConsumer
    counters: Counters
    ledger: Ledger
    models: FakeModels
    buffers: FakeBuffers
    guarantee: ExactlyOnce | AtLeastOnce
    sink: AlertsTopic
    registry: CollectorRegistry
    checkpoint: Checkpoint
    rebalancing: Rebalancing

    @property
    def producer(self) -> FakeProducer:
        return self.transport.producers[-1]

    def snapshots(self) -> list[OutRecord]:
        return sorted((r for r in self.producer.sent if r.topic == STATE), key=lambda r: r.key or b"")


def make_rig(guarantee: str = "exactly_once") -> Rig:
    journal: list[str] = []
    transport = FakeTransport(journal=journal)
    consumer = FakeConsumer(ASSIGNMENT, journal=journal)
    counters = Counters(alert_counts=AlertCounts(10))
    config = StreamdriftConfig.model_validate(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9092"},
            "topics": {"input": [EVENTS], "labels": LABELS, "alerts": ALERTS, "state": STATE},
        }
    )
    ledger = Ledger(labels_topic=LABELS, forwards=lambda tp: False)
    models, buffers = FakeModels(), FakeBuffers()
    effects = Effects(models, buffers, counters)
    effects.consumer = consumer
    chosen = (
        ExactlyOnce(
            transport, transactional_id=TRANSACTIONAL_ID, transaction_timeout_ms=60_000, counters=counters
        )
        if guarantee == "exactly_once"
        else AtLeastOnce(transport, counters=counters)
    )
    sink = AlertsTopic(ALERTS, chosen)
    registry = CollectorRegistry()
    checkpoint = Checkpoint(
        ledger=ledger, models=models, state=StateStore(config, transport, KEY, counters), guarantee=chosen,
        sinks=[sink], effects=effects, counters=counters,
        duration=Histogram("checkpoint_seconds", "Checkpoint duration", registry=registry),
        settings=lambda: SETTINGS,
    )  # fmt: skip
    rebalancing = Rebalancing(
        ledger=ledger, checkpoint=checkpoint, guarantee=chosen, effects=effects, counters=counters,
        lock=threading.RLock(), commit_offsets_on_revoke=guarantee == "exactly_once", stuck_after_s=30.0,
    )  # fmt: skip
    rebalancing.consumer = consumer
    # Assigned, restored with nothing to replay (as restore.py does it), a producer started.
    rebalancing.on_assigned(set(ASSIGNMENT))
    effects.apply(ledger.start_restore(consumer.assignment()))
    for tp in ASSIGNMENT:
        ledger.restored(tp, read_from=None, committed=None)
    effects.apply(Actions(resume=set(ASSIGNMENT)))
    chosen.start()
    # Model c's events 0..4 went into a snapshot at the last checkpoint, a moment ago.
    assert ledger.claim("c", E0) == E0
    ledger.applied(E0, {"c": 0}, {"c": 4})
    ledger.snapshotted("c", time.monotonic())
    consumer.pauses.clear()
    consumer.resumes.clear()
    buffers.dropped.clear()
    journal.clear()
    return Rig(
        journal, transport, consumer, counters, ledger, models, buffers, chosen, sink, registry, checkpoint,
        rebalancing,
    )  # fmt: skip


def process_an_interval(rig: Rig) -> None:
    """New models a (events 5..9) and b (events/1, 3..4), c's events 10..12, a label of a, an alert."""
    ledger, models = rig.ledger, rig.models
    for model_id, tp, first, last in (("a", E0, 5, 9), ("c", E0, 10, 12), ("b", E1, 3, 4)):
        assert ledger.claim(model_id, tp) == tp
        ledger.applied(tp, {model_id: first}, {model_id: last})
        models.dirty.add(model_id)
    ledger.label_applied("a", 7)
    rig.sink.add(ALERT)
    for tp, end in ((E0, 13), (E1, 5), (L0, 8)):
        ledger.processed_up_to(tp, end)
        rig.counters.positions[(tp.topic, tp.partition)] = end


def checkpoints_observed(rig: Rig) -> float | None:
    return rig.registry.get_sample_value("checkpoint_seconds_count")


def assert_rolled_back(rig: Rig, producer: FakeProducer, *, aborted: int) -> None:
    """The interval is undone: the producer abandoned, every model dropped, every partition waiting."""
    assert producer.abandoned
    assert not rig.guarantee.ready
    assert rig.counters.totals["transactions_aborted"] == aborted
    assert rig.counters.totals["producers_replaced"] == 1
    assert sorted(rig.models.dropped) == ["a", "b", "c"]
    assert rig.ledger.home == {}
    assert rig.ledger.pending == {}
    assert rig.counters.positions == {}
    assert rig.counters.totals["checkpoints"] == 0


def test_the_fakes_implement_the_ports() -> None:
    transport: Transport = FakeTransport()
    consumer: GroupConsumer = FakeConsumer()
    producer: Producer = transport.producer(transactional_id="t")
    assert isinstance(producer, FakeProducer)
    producer.init_transactions()
    with pytest.raises(AssertionError, match="outside a transaction"):
        producer.send(OutRecord(topic="t", key=None, value=None, headers=[]))
    producer.fail("begin_transaction", KafkaUnavailable("away"), at=2)
    producer.begin_transaction()
    producer.commit_transaction()
    with pytest.raises(KafkaUnavailable):
        producer.begin_transaction()
    producer.abandon()
    with pytest.raises(AssertionError, match="after abandon"):
        producer.close()
    assert producer.calls == [
        "init_transactions",
        "begin_transaction",
        "commit_transaction",
        "begin_transaction",  # raised
        "abandon",
    ]
    assert consumer.committed(E0) is None


# ---- the steps in order --------------------------------------------------------------------------


def test_exactly_once_writes_snapshots_and_offsets_in_the_interval_transaction() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    rig.checkpoint.run(rig.consumer)

    assert producer.calls == [
        "init_transactions",
        "begin_transaction",  # at the interval's first record: the alert
        "send",
        "send",  # snapshots of the new models a and b: due; c was snapshotted a moment ago
        "send",
        "send_offsets_to_transaction",
        "commit_transaction",
    ]
    assert producer.sent[0].topic == ALERTS
    snapshots = rig.snapshots()
    assert [(r.key, r.partition) for r in snapshots] == [(b"a", 0), (b"b", 1)]  # the home partitions
    headers = [read_header(r.value or b"", KEY) for r in snapshots]
    # Each holds the next input offset its model reflects.
    assert [(h.model_id, h.topic, h.partition, h.offset) for h in headers] == [
        ("a", EVENTS, 0, 10),
        ("b", EVENTS, 1, 5),
    ]
    [(offsets, group)] = producer.offsets
    assert offsets == INTERVAL_OFFSETS
    assert group is rig.consumer.metadata
    assert rig.consumer.commits == []
    assert rig.ledger.pending == {}
    assert rig.models.dirty == {"c"}
    totals = rig.counters.totals
    assert (totals["checkpoints"], totals["snapshots"]) == (1, 2)
    assert totals["snapshot_bytes"] == sum(len(r.value or b"") for r in snapshots)
    assert checkpoints_observed(rig) == 1.0


def test_nothing_is_committed_when_nothing_changed() -> None:
    rig = make_rig()
    rig.checkpoint.run(rig.consumer)
    assert rig.producer.calls == ["init_transactions"]

    process_an_interval(rig)
    rig.checkpoint.run(rig.consumer, all_snapshots=True)  # every changed model, c too
    assert [r.key for r in rig.snapshots()] == [b"a", b"b", b"c"]
    calls = list(rig.producer.calls)
    rig.checkpoint.run(rig.consumer)
    assert rig.producer.calls == calls
    assert rig.consumer.commits == []
    assert rig.counters.totals["checkpoints"] == 1


def test_at_least_once_flushes_then_commits_the_offsets_on_the_consumer() -> None:
    rig = make_rig("at_least_once")
    process_an_interval(rig)
    rig.checkpoint.run(rig.consumer)

    assert rig.journal == [
        "producer.send",  # the alert, as it came
        "producer.flush",  # durable before any snapshot that reflects its event
        "producer.send",  # the snapshots
        "producer.send",
        "producer.flush",
        "consumer.commit",
    ]
    assert [r.key for r in rig.snapshots()] == [b"a", b"b"]
    assert rig.consumer.commits == [INTERVAL_OFFSETS]
    assert rig.consumer.committed(E0) == CommitOffset(13, "streamdrift.replay_from=10")
    assert rig.ledger.pending == {}
    assert rig.counters.totals["checkpoints"] == 1


def test_at_least_once_revocation_flushes_and_commits_nothing_on_the_consumer() -> None:
    rig = make_rig("at_least_once")
    process_an_interval(rig)
    rig.rebalancing.on_revoked(set(ASSIGNMENT))

    assert rig.journal[-1] == "producer.flush"
    assert rig.consumer.commits == []
    assert [r.key for r in rig.snapshots()] == [b"a", b"b", b"c"]  # every changed model
    assert rig.rebalancing.fatal is None
    assert rig.ledger.states == dict.fromkeys(ASSIGNMENT, State.REVOKED)


# ---- failures and the rollback -------------------------------------------------------------------


def test_an_unavailable_commit_propagates_and_the_rollback_undoes_the_interval() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    producer.fail("commit_transaction", KafkaUnavailable("the coordinator did not answer"))
    with pytest.raises(KafkaUnavailable):
        rig.checkpoint.run(rig.consumer)
    # Not rolled back by the checkpoint: the loop does that (runner._recover).
    assert rig.guarantee.ready
    assert not producer.abandoned
    assert rig.models.dropped == []
    assert rig.ledger.pending == {E0: 13, E1: 5, L0: 8}

    rig.checkpoint.rollback()
    assert producer.calls[-2:] == ["commit_transaction", "abandon"]
    assert_rolled_back(rig, producer, aborted=1)
    assert rig.consumer.pauses == [ASSIGNMENT]
    assert rig.consumer.paused == ASSIGNMENT
    assert rig.ledger.states == dict.fromkeys(ASSIGNMENT, State.ASSIGNED)
    assert sorted(rig.buffers.dropped) == sorted(ASSIGNMENT)
    assert checkpoints_observed(rig) == 0.0


def test_a_refused_checkpoint_is_raised_and_rolled_back_by_the_recovery() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    producer.fail("send_offsets_to_transaction", CheckpointRefused("the group has rebalanced"))
    with pytest.raises(CheckpointRefused) as refused:
        rig.checkpoint.run(rig.consumer)
    assert "commit_transaction" not in producer.calls
    assert not producer.abandoned  # the checkpoint itself never rolls back
    assert rig.checkpoint.refused_since is None  # counted by the rejoin, not here
    make_recovery(rig).recover(refused.value)
    assert_rolled_back(rig, producer, aborted=1)


def test_at_least_once_refused_commit_is_raised_and_rolled_back_by_the_recovery() -> None:
    rig = make_rig("at_least_once")
    process_an_interval(rig)
    producer = rig.producer
    rig.consumer.fail("commit", CheckpointRefused("the group has rebalanced"))
    with pytest.raises(CheckpointRefused) as refused:
        rig.checkpoint.run(rig.consumer)
    make_recovery(rig).recover(refused.value)
    assert producer.calls == ["send", "flush", "send", "send", "flush", "abandon"]
    assert_rolled_back(rig, producer, aborted=0)
    assert rig.consumer.committed(E0) is None


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_nothing_is_written_between_a_rollback_and_a_new_producer(guarantee: str) -> None:
    rig = make_rig(guarantee)
    process_an_interval(rig)
    rig.checkpoint.rollback()
    with pytest.raises(KafkaUnavailable):
        rig.guarantee.write(OutRecord(topic=ALERTS, key=b"a", value=b"{}", headers=[]))
    with pytest.raises(KafkaUnavailable):
        rig.sink.add(ALERT)
    with pytest.raises(KafkaUnavailable):
        rig.guarantee.commit(INTERVAL_OFFSETS, rig.consumer, commit_offsets=True)
    rig.models.dirty.add("a")
    rig.checkpoint.run(rig.consumer)  # being replaced: nothing to do
    assert rig.transport.producers_made == 1


@pytest.mark.parametrize(
    ("guarantee", "first_calls"), [("exactly_once", ["init_transactions"]), ("at_least_once", [])]
)
def test_start_after_a_rollback_makes_a_new_producer(guarantee: str, first_calls: list[str]) -> None:
    rig = make_rig(guarantee)
    old = rig.producer
    rig.checkpoint.rollback()
    assert rig.transport.producers_made == 1
    rig.guarantee.start()
    assert rig.transport.producers_made == 2
    new = rig.producer
    assert new is not old
    assert new.calls == first_calls
    assert new.transactional_id == old.transactional_id
    assert new.transaction_timeout_ms == old.transaction_timeout_ms
    assert rig.guarantee.ready
    rig.guarantee.start()  # started already
    assert rig.transport.producers_made == 2
    rig.sink.add(ALERT)
    assert new.sent[-1].topic == ALERTS


def test_each_new_producer_clears_offsets_left_pending_by_the_one_it_replaced_before_a_restore() -> None:
    """An aborted transaction holding one offset commit, once per producer, and never inside an interval's
    transaction; at_least_once commits no transactional offsets, so it has nothing to clear."""
    rig = make_rig()
    rig.guarantee.settle(rig.consumer, set(ASSIGNMENT))
    settled = rig.producer.calls[-3:]
    assert settled == ["begin_transaction", "send_offsets_to_transaction", "abort_transaction"]
    ((offsets, _group),) = rig.producer.offsets
    assert offsets == {min(ASSIGNMENT): CommitOffset(0, "")}
    rig.guarantee.settle(rig.consumer, set(ASSIGNMENT))
    assert rig.producer.calls.count("abort_transaction") == 1  # once per producer
    rig.checkpoint.rollback()
    rig.guarantee.start()
    rig.sink.add(ALERT)  # an interval's transaction is open: its commit is the interval's
    rig.guarantee.settle(rig.consumer, set(ASSIGNMENT))
    assert "abort_transaction" not in rig.producer.calls
    at_least_once = make_rig("at_least_once")
    calls = list(at_least_once.producer.calls)
    at_least_once.guarantee.settle(at_least_once.consumer, set(ASSIGNMENT))
    assert at_least_once.producer.calls == calls


# ---- rebalancing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "fatal"),
    [
        ("commit_transaction", KafkaUnavailable("request timed out"), False),
        ("send_offsets_to_transaction", CheckpointRefused("the group has rebalanced"), False),
        ("send", FatalServiceError("not authorized to write to the state topic"), True),
        ("commit_transaction", FatalServiceError("the transaction was refused"), True),
        ("commit_transaction", Fenced("a newer producer has this transactional id"), True),
    ],
)
def test_a_revocation_whose_checkpoint_fails_rolls_back(
    call: str, error: StreamdriftError, fatal: bool
) -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    producer.fail(call, error)
    rig.rebalancing.on_revoked({E1, L1})

    assert rig.rebalancing.fatal is (error if fatal else None)  # raised by the loop, not by the consumer
    assert_rolled_back(rig, producer, aborted=1)
    assert rig.consumer.pauses == [ASSIGNMENT]  # rolled back once
    # The revoked partitions are not restored: they may go elsewhere. The others wait for their restore.
    assert rig.ledger.states == {E0: State.ASSIGNED, L0: State.ASSIGNED}
    assert rig.rebalancing.started_at is not None


def test_a_fence_after_the_transaction_timed_out_is_not_fatal_on_revocation() -> None:
    rig = make_rig()
    process_an_interval(rig)
    guarantee = rig.guarantee
    assert isinstance(guarantee, ExactlyOnce)
    assert guarantee.transaction_began is not None
    guarantee.transaction_began -= 61.0  # open past transaction_timeout_ms: the broker aborted it
    producer = rig.producer
    producer.fail("commit_transaction", Fenced("the producer's epoch was bumped"))
    rig.rebalancing.on_revoked({E1, L1})

    assert rig.rebalancing.fatal is None
    assert_rolled_back(rig, producer, aborted=1)
    assert rig.ledger.states == {E0: State.ASSIGNED, L0: State.ASSIGNED}


def test_assignment_after_a_revocation_keeps_the_models_of_partitions_held_again() -> None:
    rig = make_rig()
    process_an_interval(rig)
    rig.rebalancing.on_revoked(set(ASSIGNMENT))  # eager: everything first
    assert rig.producer.calls[-1] == "commit_transaction"
    assert [r.key for r in rig.snapshots()] == [b"a", b"b", b"c"]
    assert rig.ledger.states == dict.fromkeys(ASSIGNMENT, State.REVOKED)

    rig.consumer.assigned = {E0, L0, E2, L2}
    rig.rebalancing.on_assigned({E0, L0, E2, L2})
    assert rig.models.dropped == ["b"]
    assert sorted(rig.buffers.dropped) == [E1, L1]
    assert rig.ledger.home == {"a": E0, "c": E0}
    assert rig.ledger.states == {
        E0: State.LIVE,
        L0: State.LIVE,
        E2: State.ASSIGNED,
        L2: State.ASSIGNED,
    }
    assert rig.consumer.pauses == [{E2, L2}]  # only the new partitions wait for a restore
    assert rig.rebalancing.started_at is None
    assert rig.rebalancing.fatal is None
    assert rig.transport.producers_made == 1


def test_lost_partitions_roll_the_interval_back() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    rig.rebalancing.on_lost({E1, L1})

    assert "commit_transaction" not in producer.calls
    assert_rolled_back(rig, producer, aborted=1)
    assert rig.consumer.commits == []
    assert rig.consumer.paused == ASSIGNMENT
    assert rig.ledger.states == {E0: State.ASSIGNED, L0: State.ASSIGNED}


@pytest.mark.parametrize("leaving", ["revoked", "lost", "rejoined"])
def test_a_member_left_waiting_for_an_assignment_joins_again(leaving: str) -> None:
    """librdkafka was seen, after its session expired while the broker was frozen, never to complete its
    join: the member held nothing and waited for good. Past `stuck_after_s` it joins afresh, whichever way
    it came to hold nothing; an assignment ends the wait."""
    rig = make_rig()
    process_an_interval(rig)
    rebalancing = rig.rebalancing
    if leaving == "revoked":
        rebalancing.on_revoked(ASSIGNMENT)
    elif leaving == "lost":
        rebalancing.on_lost(ASSIGNMENT)
    else:
        rebalancing.rejoin(CheckpointRefused("the group has rebalanced"))
    rejoins = rig.consumer.calls.count("rejoin")
    started = rebalancing.started_at
    assert started is not None

    rebalancing.unstick(started + rebalancing.stuck_after_s - 1)
    assert rig.consumer.calls.count("rejoin") == rejoins  # not yet
    rebalancing.unstick(started + rebalancing.stuck_after_s + 1)
    assert rig.consumer.calls.count("rejoin") == rejoins + 1
    assert rig.counters.totals["rebalances_restarted"] == 1

    rebalancing.on_assigned(ASSIGNMENT)
    rebalancing.unstick(started + 10 * rebalancing.stuck_after_s)
    assert rig.consumer.calls.count("rejoin") == rejoins + 1  # assigned: nothing owed


# ---- recovery ------------------------------------------------------------------------------------


def make_recovery(rig: Rig) -> Recovery:
    return Recovery(
        transport=rig.transport, checkpoint=rig.checkpoint, guarantee=rig.guarantee,
        rebalancing=rig.rebalancing, counters=rig.counters, lock=rig.rebalancing.lock,
    )  # fmt: skip


def test_a_refused_checkpoint_is_redone_after_joining_again() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    producer.fail("send_offsets_to_transaction", CheckpointRefused("the group has rebalanced"))
    with pytest.raises(CheckpointRefused) as refused:
        rig.checkpoint.run(rig.consumer)
    assert make_recovery(rig).recover(refused.value) == 0.5

    assert_rolled_back(rig, producer, aborted=1)
    assert rig.consumer.calls[-1] == "rejoin"
    assert rig.ledger.states == {}  # the next assignment says what is ours
    assert rig.counters.totals["checkpoint_failures"] == 1
    assert rig.checkpoint.refused_since is not None


# ---- found by these tests, and fixed ----------------------------------------------------------------


def test_a_refusal_met_outside_the_checkpoint_rolls_the_interval_back() -> None:
    rig = make_rig()
    process_an_interval(rig)
    producer = rig.producer
    make_recovery(rig).recover(CheckpointRefused("reading input: the group is rebalancing"))  # from poll
    assert rig.consumer.calls[-1] == "rejoin"
    assert_rolled_back(rig, producer, aborted=1)


def test_at_least_once_alerts_are_durable_before_a_snapshot_reflecting_them() -> None:
    rig = make_rig("at_least_once")
    process_an_interval(rig)
    rig.checkpoint.run(rig.consumer)
    sent = iter(rig.producer.sent)
    steps = [next(sent).topic if entry == "producer.send" else entry for entry in rig.journal]
    assert steps[0] == ALERTS
    assert "producer.flush" in steps[: steps.index(STATE)]


def test_new_models_are_snapshotted_soon_after_the_host_booted(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig()
    process_an_interval(rig)
    clock = types.SimpleNamespace(monotonic=lambda: 2.0)  # 2 s after boot; snapshot interval 5 s
    monkeypatch.setattr(checkpoint_module, "time", clock)
    rig.checkpoint.run(rig.consumer)
    assert [r.key for r in rig.snapshots()] == [b"a", b"b"]


def test_the_snapshot_budget_defers_models_and_the_commit_says_where_to_replay_them_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make_rig()
    rig.checkpoint.settings = lambda: ProcessingSettings(snapshot_interval_ms=0, max_snapshots_per_s=1)
    process_an_interval(rig)
    booted = time.monotonic()  # c was snapshotted then
    clock = types.SimpleNamespace(monotonic=lambda: booted + 100.0)
    monkeypatch.setattr(checkpoint_module, "time", clock)
    rig.checkpoint.run(rig.consumer)
    # One second's worth: one model, of those never snapshotted (a, b) before c.
    (first,) = [r.key for r in rig.snapshots()]
    assert first in (b"a", b"b")
    # The deferred model's events are replayed on restore: a's from 5 on E0, or b's from 3 on E1.
    deferred, replay_from = (E0, 5) if first == b"b" else (E1, 3)
    committed, _group = rig.producer.offsets[-1]
    assert committed[deferred].metadata == f"streamdrift.replay_from={replay_from}"

    clock.monotonic = lambda: booted + 100.5  # half a second's worth: nothing yet
    rig.ledger.processed_up_to(E0, 14)
    rig.checkpoint.run(rig.consumer)
    assert len(rig.snapshots()) == 1
    clock.monotonic = lambda: booted + 101.5
    rig.checkpoint.run(rig.consumer)
    assert sorted(r.key for r in rig.snapshots()) == [b"a", b"b"]
    clock.monotonic = lambda: booted + 102.5
    rig.checkpoint.run(rig.consumer)
    assert sorted(r.key for r in rig.snapshots()) == [b"a", b"b", b"c"]
    assert rig.ledger.unsnapshotted_from.models() == set()


def test_the_budget_fills_a_second_at_most_and_zero_means_no_limit() -> None:
    rate = [10]
    budget = SnapshotBudget(lambda: rate[0])
    assert budget.allowance(50.0) == 10  # the first: a second's worth
    budget.spent(10)
    assert budget.allowance(50.25) == 2
    assert budget.allowance(60.0) == 10  # ten idle seconds fill one second's worth, not ten
    budget.spent(10)
    assert budget.allowance(60.0) == 0
    rate[0] = 0
    assert budget.allowance(60.1) is None
