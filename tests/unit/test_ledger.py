"""The ledger (service/ledger.py): the partition state machine, the offsets it hands the checkpoint with
where a restore must read from, and which changed models are due a snapshot.

Every expected value below follows from the rules in the ledger's docstrings, worked out by hand.
"""

from __future__ import annotations

import random

import pytest

from streamdrift.ports import CommitOffset, TopicPartition
from streamdrift.service.ledger import Actions, FirstOffsets, Ledger, State, replay_from

EVENTS, LABELS = "events", "labels"
RAW, REPARTITION = "raw", "repartition"  # repartition mode: raw input forwarded to the repartition topic
E0, E1, E2, E3 = (TopicPartition(EVENTS, p) for p in range(4))
L0, L1 = TopicPartition(LABELS, 0), TopicPartition(LABELS, 1)
I0, R0, R1 = TopicPartition(RAW, 0), TopicPartition(REPARTITION, 0), TopicPartition(REPARTITION, 1)

ASSIGNED, RESTORING, REPLAYING = State.ASSIGNED, State.RESTORING, State.REPLAYING
LIVE, REVOKED = State.LIVE, State.REVOKED


def make_ledger(*, labels: bool = False, forwarded: str | None = None) -> Ledger:
    return Ledger(labels_topic=LABELS if labels else None, forwards=lambda tp: tp.topic == forwarded)


def bring_live(ledger: Ledger, *partitions: TopicPartition) -> None:
    """Add the partitions to the assignment and restore them with nothing to replay."""
    assignment = set(ledger.states) | set(partitions)
    ledger.assigned(assignment)
    ledger.start_restore(assignment)
    for tp in partitions:
        ledger.restored(tp, read_from=None, committed=None)


def add_model(ledger: Ledger, model_id: str, tp: TopicPartition, first: int, last: int) -> None:
    """A model homed on `tp` whose events `first`..`last` are in its detectors."""
    assert ledger.claim(model_id, tp) == tp
    ledger.applied(tp, {model_id: first}, {model_id: last})


# ---- assignment and restore --------------------------------------------------------------------


def test_fresh_partitions_are_assigned_and_paused() -> None:
    ledger = make_ledger()
    assert ledger.assigned({E0, E1}) == Actions(pause={E0, E1})
    assert ledger.states == {E0: ASSIGNED, E1: ASSIGNED}
    assert ledger.waiting == {E0, E1}
    assert ledger.held == set()
    assert not ledger.processes(E0)


def test_start_restore_takes_the_waiting_partitions_still_assigned() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0)
    assert ledger.assigned({E0, E1, E2}) == Actions(pause={E1, E2})
    # E2 was taken away again before its restore began: forgotten; the live E0 is left alone.
    assert ledger.start_restore({E0, E1}) == Actions(drop={E1})
    assert ledger.states == {E0: LIVE, E1: RESTORING}
    # A restore started again starts clean: what an earlier attempt restored is dropped.
    ledger.restored_model("m", E1, 40)
    assert ledger.start_restore({E0, E1}) == Actions(drop={E1}, models=["m"])
    assert "m" not in ledger.home
    assert "m" not in ledger.next_offset
    assert ledger.states == {E0: LIVE, E1: RESTORING}


def test_restored_below_the_committed_offset_replays_up_to_it() -> None:
    ledger = make_ledger()
    ledger.assigned({E0, E1})
    ledger.start_restore({E0, E1})
    ledger.restored(E0, read_from=40, committed=50)
    ledger.restored(E1, read_from=0, committed=10)
    assert ledger.states == {E0: REPLAYING, E1: REPLAYING}
    assert (ledger.replay_end(E0), ledger.replay_end(E1)) == (50, 10)
    assert ledger.processes(E0)
    assert ledger.held == {E0, E1}

    ledger.processed_up_to(E0, 45)  # replayed: nothing to commit
    assert ledger.states[E0] is REPLAYING
    assert ledger.pending == {}
    assert ledger.offsets_to_commit() == {}

    ledger.processed_up_to(E0, 50)  # caught up with the committed offset
    assert ledger.states[E0] is LIVE
    assert ledger.replay_end(E0) == -1
    assert ledger.pending == {E0: 50}
    assert ledger.offsets_to_commit() == {E0: CommitOffset(50, "streamdrift.replay_from=50")}

    ledger.processed_up_to(E1, 25)  # one batch across the end of the replay
    assert ledger.states[E1] is LIVE
    assert ledger.pending == {E0: 50, E1: 25}


@pytest.mark.parametrize(
    ("read_from", "committed"), [(None, None), (None, 50), (50, None), (50, 50), (60, 50)]
)
def test_restored_with_nothing_to_replay_is_live(read_from: int | None, committed: int | None) -> None:
    ledger = make_ledger()
    ledger.assigned({E0})
    ledger.start_restore({E0})
    ledger.restored(E0, read_from=read_from, committed=committed)
    assert ledger.states == {E0: LIVE}
    assert ledger.replay_end(E0) == -1
    ledger.processed_up_to(E0, 70)
    assert ledger.pending == {E0: 70}


# ---- rebalancing -------------------------------------------------------------------------------


def test_eager_rebalance_giving_back_the_same_partitions_keeps_their_models() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0)
    ledger.assigned({E0, E1})
    ledger.start_restore({E0, E1})
    ledger.restored(E1, read_from=5, committed=10)
    add_model(ledger, "a", E0, 0, 9)
    add_model(ledger, "b", E1, 5, 7)
    ledger.processed_up_to(E0, 10)
    ledger.processed_up_to(E1, 8)  # E1 still replays
    ledger.committed()

    ledger.revoked({E0, E1})  # eager: everything first
    assert ledger.states == {E0: REVOKED, E1: REVOKED}
    assert ledger.held == {E0, E1}
    assert ledger.processes(E1)  # records fetched before the revocation are still processed

    assert ledger.assigned({E0, E1}) == Actions()  # nothing dropped, nothing to restore
    assert ledger.states == {E0: LIVE, E1: REPLAYING}
    assert ledger.replay_end(E1) == 10
    assert ledger.home == {"a": E0, "b": E1}
    assert ledger.next_offset == {"a": 10, "b": 8}


def test_eager_rebalance_giving_back_a_subset_drops_the_other_models() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0, E1)
    add_model(ledger, "a", E0, 0, 3)
    add_model(ledger, "b1", E1, 0, 1)
    add_model(ledger, "b2", E1, 2, 2)
    ledger.revoked({E0, E1})

    actions = ledger.assigned({E0, E2})
    assert actions.drop == {E1}
    assert sorted(actions.models) == ["b1", "b2"]
    assert actions.pause == {E2}
    assert actions.resume == set()
    assert ledger.states == {E0: LIVE, E2: ASSIGNED}
    assert ledger.home == {"a": E0}
    assert ledger.next_offset == {"a": 4}
    assert ledger.unsnapshotted_from.models() == {"a"}


def test_an_assignment_without_revocation_keeps_live_partitions_and_their_pending_offsets() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0, E1)
    add_model(ledger, "a", E0, 0, 3)
    add_model(ledger, "b", E1, 0, 5)
    ledger.processed_up_to(E0, 4)
    ledger.processed_up_to(E1, 6)

    assert ledger.assigned({E0, E2}) == Actions(drop={E1}, models=["b"], pause={E2})
    assert ledger.states == {E0: LIVE, E2: ASSIGNED}
    assert ledger.pending == {E0: 4}
    assert ledger.offsets_to_commit() == {E0: CommitOffset(4, "streamdrift.replay_from=0")}


def test_a_label_partition_is_read_again_when_its_stateful_partition_is_fresh() -> None:
    ledger = make_ledger(labels=True)
    bring_live(ledger, E1, L1)
    bring_live(ledger, L0)  # a label partition held before the stateful partition it serves
    add_model(ledger, "a", E1, 0, 4)
    ledger.label_applied("a", 3)

    actions = ledger.assigned({E0, L0, E1, L1})
    # E0 is new: its models are restored, and so must the labels they have seen be read again.
    assert actions == Actions(drop={L0}, pause={E0, L0})
    # E1 stays held, so does the label partition that serves it.
    assert ledger.states == {E0: ASSIGNED, L0: ASSIGNED, E1: LIVE, L1: LIVE}
    assert ledger.home == {"a": E1}


def test_repartition_input_partitions_are_always_fresh() -> None:
    ledger = Ledger(labels_topic=LABELS, forwards=lambda tp: tp.topic == RAW)
    bring_live(ledger, I0, R0, L0)
    add_model(ledger, "a", R0, 0, 4)
    ledger.forwarded_up_to(I0, 7)
    ledger.committed()

    ledger.revoked({I0, R0, L0})
    # The input partition's merge buffer is fetched again; the label partition is not renewed by it.
    assert ledger.assigned({I0, R0, L0}) == Actions(drop={I0}, pause={I0})
    assert ledger.states == {I0: ASSIGNED, R0: LIVE, L0: LIVE}
    assert ledger.home == {"a": R0}

    ledger.start_restore({I0, R0, L0})
    ledger.restored(I0, read_from=None, committed=7)
    assert ledger.states[I0] is LIVE
    # Live and never revoked (a cooperative rebalance adding R1): still fresh.
    assert ledger.assigned({I0, R0, R1, L0}) == Actions(drop={I0}, pause={I0, R1})
    assert ledger.states == {I0: ASSIGNED, R0: LIVE, R1: ASSIGNED, L0: LIVE}


def mixed_ledger() -> Ledger:
    """E0 live (model a, pending 10), E1 replaying (b), E2 revoked (c, pending 1), E3 restoring."""
    ledger = make_ledger()
    ledger.assigned({E0, E1, E2})
    ledger.start_restore({E0, E1, E2})
    ledger.restored(E0, read_from=None, committed=None)
    ledger.restored(E1, read_from=5, committed=10)
    ledger.restored(E2, read_from=None, committed=None)
    add_model(ledger, "a", E0, 0, 9)
    add_model(ledger, "b", E1, 5, 6)
    add_model(ledger, "c", E2, 0, 0)
    ledger.snapshotted("c", 1.0)
    ledger.processed_up_to(E0, 10)
    ledger.processed_up_to(E2, 1)
    ledger.assigned({E0, E1, E2, E3})
    ledger.start_restore({E0, E1, E2, E3})
    ledger.revoked({E2})
    assert ledger.states == {E0: LIVE, E1: REPLAYING, E2: REVOKED, E3: RESTORING}
    return ledger


def assert_nothing_held_of_the_interval(ledger: Ledger) -> None:
    assert ledger.pending == {}
    assert ledger.offsets_to_commit() == {}
    assert ledger.home == {}
    assert ledger.next_offset == {}
    assert ledger.unsnapshotted_from.models() == set()
    assert ledger.snapshot_at == {}
    assert ledger.replay_end(E1) == -1


def test_rollback_drops_every_model_and_pauses_every_partition() -> None:
    ledger = mixed_ledger()
    actions = ledger.rollback()
    assert actions.drop == {E0, E1, E2, E3}
    assert actions.pause == {E0, E1, E2, E3}
    assert sorted(actions.models) == ["a", "b", "c"]
    assert actions.resume == set()
    assert ledger.states == {E0: ASSIGNED, E1: ASSIGNED, E2: ASSIGNED, E3: ASSIGNED}
    assert ledger.waiting == {E0, E1, E2, E3}
    assert_nothing_held_of_the_interval(ledger)


def test_lost_is_a_rollback_without_the_lost_partitions() -> None:
    ledger = mixed_ledger()
    actions = ledger.lost({E0, E3})
    assert actions.drop == {E0, E1, E2, E3}
    assert actions.pause == {E0, E1, E2, E3}
    assert sorted(actions.models) == ["a", "b", "c"]
    assert ledger.states == {E1: ASSIGNED, E2: ASSIGNED}
    assert_nothing_held_of_the_interval(ledger)


def test_revoked_forgets_the_partitions_not_restored_yet() -> None:
    ledger = mixed_ledger()
    ledger.revoked({E0, E1, E3})
    assert ledger.states == {E0: REVOKED, E1: REVOKED, E2: REVOKED}
    assert sorted(ledger.home) == ["a", "b", "c"]


# ---- offsets and where a restore reads from ----------------------------------------------------


def test_a_batch_of_many_models_moves_each_ones_next_offset_and_keeps_older_first_offsets() -> None:
    """One batch of E0: a model pending since an earlier batch keeps its first offset, the others get theirs;
    each model's next offset follows its last event in the batch."""
    ledger = make_ledger()
    bring_live(ledger, E0)
    add_model(ledger, "a", E0, 10, 12)
    ledger.snapshotted("a", 1.0)
    add_model(ledger, "b", E0, 13, 13)
    for model_id in ("c", "d"):
        assert ledger.claim(model_id, E0) == E0
    ledger.applied(E0, {"c": 20, "b": 21, "a": 22, "d": 23}, {"c": 24, "b": 21, "a": 26, "d": 25})
    assert ledger.next_offset == {"a": 27, "b": 22, "c": 25, "d": 26}
    assert ledger.unsnapshotted_from.lowest() == {E0: 13}
    ledger.snapshotted("b", 2.0)
    assert ledger.unsnapshotted_from.lowest() == {E0: 20}  # c's first offset, the oldest left
    assert ledger.unsnapshotted_from.models() == {"a", "c", "d"}


def test_committed_offsets_carry_the_oldest_event_and_label_outside_a_snapshot() -> None:
    ledger = make_ledger(labels=True)
    bring_live(ledger, E0, E1, E2, L0, L1)
    add_model(ledger, "a", E0, 100, 104)
    ledger.applied(E0, {"a": 105}, {"a": 109})
    add_model(ledger, "b", E0, 120, 125)
    add_model(ledger, "c", E1, 7, 9)
    ledger.snapshotted("c", 1.0)  # c's events are all in a snapshot
    add_model(ledger, "d", E2, 3, 3)  # E2 has nothing pending: not committed at all
    ledger.label_applied("a", 30)
    ledger.label_applied("a", 35)
    ledger.label_applied("c", 12)  # a label c saw after its snapshot
    for tp, end in ((E0, 130), (E1, 10), (L0, 40), (L1, 20)):
        ledger.processed_up_to(tp, end)

    offsets = ledger.offsets_to_commit()
    assert offsets == {
        E0: CommitOffset(130, "streamdrift.replay_from=100"),
        E1: CommitOffset(10, "streamdrift.replay_from=10"),
        L0: CommitOffset(40, "streamdrift.replay_from=30"),
        L1: CommitOffset(20, "streamdrift.replay_from=12"),
    }
    assert {tp: replay_from(committed) for tp, committed in offsets.items()} == {
        E0: 100,
        E1: 10,
        L0: 30,
        L1: 12,
    }

    ledger.snapshotted("a", 2.0)  # b's events are now the oldest outside a snapshot on E0
    assert ledger.offsets_to_commit()[E0] == CommitOffset(130, "streamdrift.replay_from=120")
    assert ledger.offsets_to_commit()[L0] == CommitOffset(40, "streamdrift.replay_from=40")
    ledger.committed()
    assert ledger.offsets_to_commit() == {}


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        (CommitOffset(130, "streamdrift.replay_from=100"), 100),
        (CommitOffset(50, "streamdrift.replay_from=80"), 50),  # never after the committed offset
        (CommitOffset(50, "streamdrift.replay_from=50"), 50),
        (CommitOffset(50, ""), None),
        (CommitOffset(50, "committed by another tool"), None),
        # librdkafka stores the metadata with its C string's NUL; kafka-python reads it back so.
        (CommitOffset(130, "streamdrift.replay_from=100\x00"), 100),
        (CommitOffset(130, "streamdrift.replay_from=garbled"), None),
    ],
)
def test_replay_from_reads_the_committed_metadata(committed: CommitOffset, expected: int | None) -> None:
    assert replay_from(committed) == expected


# ---- snapshots due -----------------------------------------------------------------------------


def test_snapshots_due() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0, E1)
    for model_id in ("new", "recent", "old"):
        add_model(ledger, model_id, E0, 0, 0)
    ledger.snapshotted("recent", 100.0)
    ledger.snapshotted("old", 40.0)
    changed = ["old", "new", "recent"]

    assert ledger.snapshots_due(changed, not_before=50.0, everything=False) == ["old", "new"]
    assert ledger.snapshots_due(changed, not_before=100.0, everything=False) == changed
    assert ledger.snapshots_due(["recent"], not_before=99.0, everything=False) == []
    assert ledger.snapshots_due(changed, not_before=50.0, everything=True) == changed
    assert ledger.snapshots_due([], not_before=50.0, everything=True) == []
    # A first snapshot is never deferred, however recent the cut-off.
    assert ledger.snapshots_due(["new"], not_before=1e9, everything=False) == ["new"]
    # A restored model has no snapshot time: due as soon as it changes.
    ledger.restored_model("restored", E1, 7)
    assert ledger.snapshots_due(["restored"], not_before=50.0, everything=False) == ["restored"]
    # A dropped model forgets its snapshot time: on its return it is new again.
    ledger.assigned({E1})
    add_model(ledger, "recent", E1, 0, 0)
    assert ledger.snapshots_due(["recent"], not_before=50.0, everything=False) == ["recent"]


def test_a_limit_takes_the_models_snapshotted_longest_ago_first() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0)
    for model_id in ("a", "b", "c", "never"):
        add_model(ledger, model_id, E0, 0, 0)
    ledger.snapshotted("b", 10.0)
    ledger.snapshotted("c", 20.0)
    ledger.snapshotted("a", 30.0)
    changed = {"a", "b", "c", "never"}
    assert ledger.snapshots_due(changed, not_before=50.0, everything=False, limit=2) == ["never", "b"]
    assert ledger.snapshots_due(changed, not_before=50.0, everything=False, limit=3) == ["never", "b", "c"]
    everyone = ["never", "b", "c", "a"]
    assert ledger.snapshots_due(changed, not_before=50.0, everything=False, limit=9) == everyone
    assert ledger.snapshots_due(changed, not_before=50.0, everything=False, limit=0) == []
    assert ledger.snapshots_due(changed, not_before=25.0, everything=False, limit=9) == ["never", "b", "c"]
    assert ledger.snapshots_due({"a", "c"}, not_before=50.0, everything=False, limit=9) == ["c", "a"]
    # A snapshot moves a model to the back; a restored model has none yet.
    ledger.snapshotted("b", 40.0)
    ledger.restored_model("restored", E0, 7)
    changed |= {"restored"}
    assert ledger.snapshots_due(changed, not_before=50.0, everything=False, limit=9) == [
        "never", "restored", "c", "a", "b",
    ]  # fmt: skip
    # Revocation, reload and shutdown snapshot everything changed, whatever the limit.
    assert sorted(ledger.snapshots_due(changed, not_before=50.0, everything=True, limit=1)) == sorted(changed)


def test_a_first_snapshot_is_never_deferred_even_with_a_negative_cut_off() -> None:
    ledger = make_ledger()
    bring_live(ledger, E0)
    add_model(ledger, "new", E0, 0, 0)
    assert ledger.snapshots_due(["new"], not_before=-30.0, everything=False) == ["new"]


@pytest.mark.parametrize("seed", range(5))
def test_the_lowest_first_offsets_equal_a_search_of_every_model(seed: int) -> None:
    """FirstOffsets keeps the lowest per partition without a search when offsets come in order; in or out
    of order, it must equal the minimum over every model (the oracle: a plain dict searched in full)."""
    rng = random.Random(seed)
    kept, plain = FirstOffsets(), {}  # plain: (partition, model) -> offset
    latest = dict.fromkeys((E0, E1), 0)
    for _ in range(2_000):
        tp, model_id = rng.choice((E0, E1)), f"m{rng.randrange(50)}"
        action = rng.random()
        if action < 0.3:
            # Mostly in order; now and then an offset below the partition's latest.
            latest[tp] += rng.randrange(3)
            offset = latest[tp] - (rng.randrange(20) if rng.random() < 0.05 else 0)
            kept.add(tp, model_id, offset)
            plain.setdefault((tp, model_id), offset)
        elif action < 0.6:
            # A batch: its models' first offsets ascending, mostly above the partition's latest.
            start = latest[tp] - (rng.randrange(20) if rng.random() < 0.05 else 0)
            offsets = sorted(rng.sample(range(start + 1, start + 40), rng.randrange(1, 10)))
            firsts: dict[str, int] = {}  # as a batch builds it: each model's first offset, in offset order
            for offset in offsets:
                firsts.setdefault(f"m{rng.randrange(50)}", offset)
            latest[tp] = max(latest[tp], offsets[-1])
            kept.add_all(tp, firsts)
            for batch_model, offset in firsts.items():
                plain.setdefault((tp, batch_model), offset)
        elif action < 0.95:
            kept.discard(tp, model_id)
            plain.pop((tp, model_id), None)
        else:
            kept.drop(tp)
            plain = {key: offset for key, offset in plain.items() if key[0] != tp}
        expected: dict[TopicPartition, int] = {}
        for (where, _model), offset in plain.items():
            expected[where] = min(offset, expected.get(where, offset))
        assert kept.lowest() == expected
    assert kept.models() == {model_id for _tp, model_id in plain}
