"""The ledger: which partitions this member holds and in what state, where each model lives, and which
offsets are processed, replayed and snapshotted. Pure: no Kafka, no clock of its own, no detectors.

Every change goes through a transition below; each returns what the caller must do to the clients and the
detectors (`Actions`). The state machine (docs/ARCHITECTURE.md, "The partition state machine"):

    (unassigned) --assigned--> ASSIGNED --restoring--> RESTORING --restored--> REPLAYING --caught up--> LIVE
                                  ^                                    \\-----------(nothing to replay)--^
    any held state --rollback-----/        LIVE/REPLAYING --revoked--> REVOKED --assigned again--> as before
                                           REVOKED --assigned elsewhere--> (dropped)
    ASSIGNED/RESTORING --revoked--> (forgotten until assigned again); any --lost--> (dropped)

ASSIGNED and RESTORING partitions are paused; REPLAYING ones are read from the oldest event their models do
not hold in a snapshot up to the committed offset (`replay_until`), bringing detectors up to date without
writing anything; LIVE ones are processed and committed. A REVOKED partition keeps its models until the
next assignment says whether it stays (eager rebalancing revokes everything first).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from streamdrift.ports import CommitOffset, TopicPartition

REPLAY_FROM_PREFIX = "streamdrift.replay_from="  # the committed offset's metadata: where a restore reads from


class State(enum.Enum):
    ASSIGNED = "assigned"  # paused until its models are restored
    RESTORING = "restoring"
    REPLAYING = "replaying"
    LIVE = "live"
    REVOKED = "revoked"  # revoked, models kept until the next assignment


HELD = (State.REPLAYING, State.LIVE)  # restored: their records are processed
WAITING = (State.ASSIGNED, State.RESTORING)


@dataclass(slots=True)
class Actions:
    """What a transition asks of the caller, in this order: drop, pause, seek, resume."""

    drop: set[TopicPartition] = field(default_factory=set)  # forget these partitions' buffers and positions
    models: list[str] = field(default_factory=list)  # forget these models' detectors
    pause: set[TopicPartition] = field(default_factory=set)
    resume: set[TopicPartition] = field(default_factory=set)


class FirstOffsets:
    """Per partition, the first offset of each model's events (or labels) that no snapshot holds yet.

    A partition's offsets come in increasing order (a restore or a rollback drops its models before it is
    read again), so its oldest entry is its lowest: the lowest per partition costs one look per partition
    at every checkpoint, not one per model. An entry below an earlier one (not expected) is noted, and that
    partition's lowest is then searched for."""

    __slots__ = ("_by_partition", "_latest", "_unordered")

    def __init__(self) -> None:
        self._by_partition: dict[TopicPartition, dict[str, int]] = {}
        self._latest: dict[TopicPartition, int] = {}  # the last first offset added per partition
        self._unordered: set[TopicPartition] = set()

    def add(self, tp: TopicPartition, model_id: str, offset: int) -> None:
        """The model's first offset outside a snapshot, unless it has one already (one label at a time: no
        batch built for it)."""
        models = self._by_partition.get(tp)
        if models is None:
            self._by_partition[tp] = models = {}
        if model_id not in models:
            models[model_id] = offset
            self._came(tp, offset, offset)

    def add_all(self, tp: TopicPartition, firsts: Mapping[str, int]) -> None:
        """`add` for each model of a batch, `firsts` in offset order (as a batch meets its models)."""
        models = self._by_partition.get(tp, {})
        fresh = [(model_id, offset) for model_id, offset in firsts.items() if model_id not in models]
        if not fresh:
            return
        self._by_partition[tp] = models  # a partition's first entries: its dict from here on
        models.update(fresh)
        self._came(tp, fresh[0][1], fresh[-1][1])

    def _came(self, tp: TopicPartition, lowest: int, highest: int) -> None:
        """New first offsets from `lowest` to `highest` were added to the partition: one below an earlier
        one makes its lowest a search from now on."""
        if lowest < self._latest.get(tp, lowest):
            self._unordered.add(tp)
        self._latest[tp] = highest

    def discard(self, tp: TopicPartition, model_id: str) -> None:
        models = self._by_partition.get(tp)
        if models is not None and models.pop(model_id, None) is not None and not models:
            self.drop(tp)

    def drop(self, tp: TopicPartition) -> None:
        self._by_partition.pop(tp, None)
        self._latest.pop(tp, None)
        self._unordered.discard(tp)

    def lowest(self) -> dict[TopicPartition, int]:
        return {
            tp: min(models.values()) if tp in self._unordered else next(iter(models.values()))
            for tp, models in self._by_partition.items()
            if models
        }

    def models(self) -> set[str]:
        return {model_id for models in self._by_partition.values() for model_id in models}


class Ledger:
    def __init__(self, *, labels_topic: str | None, forwards: Callable[[TopicPartition], bool]) -> None:
        """`forwards(tp)`: an input partition of repartition mode, holding no models (it only forwards)."""
        self.labels_topic = labels_topic
        self.forwards = forwards
        self.states: dict[TopicPartition, State] = {}
        self.replay_until: dict[TopicPartition, int] = {}  # REPLAYING: the committed offset to replay to
        self.pending: dict[TopicPartition, int] = {}  # next input offset to commit, per partition
        # Per model: its home partition (where it is snapshotted), the next offset its state reflects, and its
        # first event and first label not in a snapshot yet (a restore must read from there).
        self.home: dict[str, TopicPartition] = {}
        self.next_offset: dict[str, int] = {}
        self.unsnapshotted_from = FirstOffsets()  # by home partition
        self.unsnapshotted_labels_from = FirstOffsets()  # by labels-topic partition
        # Per model: when its last snapshot was sent, oldest first (the checkpoint's clock never goes back);
        # and the models without one, in the order they came.
        self.snapshot_at: dict[str, float] = {}
        self.never_snapshotted: dict[str, None] = {}

    # ---- queries ---------------------------------------------------------------------------------

    def partitions(self, *states: State) -> set[TopicPartition]:
        return {tp for tp, state in self.states.items() if state in states}

    @property
    def held(self) -> set[TopicPartition]:
        """Restored partitions (replaying or live) and revoked ones still keeping their models."""
        return self.partitions(State.REPLAYING, State.LIVE, State.REVOKED)

    @property
    def waiting(self) -> set[TopicPartition]:
        return self.partitions(*WAITING)

    def processes(self, tp: TopicPartition) -> bool:
        """Whether the partition's records are processed: restored, and not yet known to be gone."""
        return self.states.get(tp) in (State.REPLAYING, State.LIVE, State.REVOKED)

    def models_of(self, tp: TopicPartition) -> list[str]:
        return [model_id for model_id, home in self.home.items() if home == tp]

    # ---- rebalancing -----------------------------------------------------------------------------

    def assigned(self, assigned: set[TopicPartition]) -> Actions:
        """The whole new assignment: partitions no longer assigned are dropped; new ones (and every input
        partition of repartition mode, whose merge buffer is fetched again) wait for a restore; a label
        partition is read again whenever the models it serves are restored."""
        actions = Actions()
        for tp in set(self.states) - assigned:
            actions.drop.add(tp)
            actions.models += self._drop_models(tp)
            del self.states[tp]
            self.pending.pop(tp, None)
        held = self.held
        fresh = {tp for tp in assigned if tp not in held or self.forwards(tp)}
        renewed = {tp.partition for tp in fresh if tp.topic != self.labels_topic and not self.forwards(tp)}
        fresh |= {tp for tp in assigned if tp.topic == self.labels_topic and tp.partition in renewed}
        for tp in fresh & held:
            actions.drop.add(tp)
            actions.models += self._drop_models(tp)
        for tp in assigned - fresh:
            if self.states.get(tp) is State.REVOKED:
                self.states[tp] = State.REPLAYING if tp in self.replay_until else State.LIVE
        for tp in fresh:
            self.states[tp] = State.ASSIGNED
        actions.pause = fresh
        return actions

    def revoked(self, revoked: Collection[TopicPartition]) -> None:
        """After the revocation's checkpoint: held partitions keep their models until the next assignment;
        those not restored yet are forgotten (restoring them now would be wasted, they may go elsewhere)."""
        for tp in revoked:
            state = self.states.get(tp)
            if state in HELD:
                self.states[tp] = State.REVOKED
            elif state in WAITING:
                del self.states[tp]
                self.pending.pop(tp, None)

    def rollback(self) -> Actions:
        """Forget everything since the last checkpoint: every partition's models are dropped and every
        partition this member holds waits for a restore again."""
        self.pending.clear()
        actions = Actions(drop=set(self.states), pause=set(self.states))
        for tp in actions.drop:
            actions.models += self._drop_models(tp)
            self.states[tp] = State.ASSIGNED
        return actions

    def lost(self, lost: Collection[TopicPartition]) -> Actions:
        """Evicted: nothing can be committed; roll back, and the lost partitions are no longer ours."""
        actions = self.rollback()
        for tp in lost:
            self.states.pop(tp, None)
        return actions

    def left_group(self) -> None:
        """Rejoining after the group moved on (after a rollback): the next assignment says what is ours."""
        self.states.clear()

    # ---- restoring -------------------------------------------------------------------------------

    def start_restore(self, assignment: set[TopicPartition]) -> Actions:
        """The waiting partitions still assigned become RESTORING (`drop`: start them clean); waiting ones no
        longer assigned are forgotten."""
        waiting = self.waiting
        for tp in waiting - assignment:
            del self.states[tp]
        actions = Actions(drop=waiting & assignment)
        for tp in actions.drop:
            actions.models += self._drop_models(tp)
            self.states[tp] = State.RESTORING
        return actions

    def restored_model(self, model_id: str, tp: TopicPartition, next_offset: int) -> None:
        # No snapshot time: a restored model is snapshotted as soon as it changes (within the budget), so
        # that a service restarted more often than snapshot_interval_ms does not re-read an ever longer
        # stretch at each restart.
        self.home[model_id] = tp
        self.next_offset[model_id] = next_offset
        self.never_snapshotted[model_id] = None

    def restored(self, tp: TopicPartition, *, read_from: int | None, committed: int | None) -> None:
        """Restored and positioned at `read_from`; below `committed` it replays (nothing written again)."""
        if read_from is not None and committed is not None and read_from < committed:
            self.replay_until[tp] = committed
            self.states[tp] = State.REPLAYING
        else:
            self.replay_until.pop(tp, None)
            self.states[tp] = State.LIVE

    # ---- processing ------------------------------------------------------------------------------

    def replay_end(self, tp: TopicPartition) -> int:
        """The offset where the partition's replay ends (-1: live)."""
        return self.replay_until.get(tp, -1)

    def processed_up_to(self, tp: TopicPartition, end: int) -> None:
        """Everything before `end` is processed: commit it at the next checkpoint, unless still replaying."""
        if end >= self.replay_until.get(tp, -1):
            self.pending[tp] = end
            if self.replay_until.pop(tp, None) is not None and self.states.get(tp) is State.REPLAYING:
                self.states[tp] = State.LIVE

    def forwarded_up_to(self, tp: TopicPartition, end: int) -> None:
        self.pending[tp] = end

    def claim(self, model_id: str, tp: TopicPartition) -> TopicPartition:
        """The model's home partition: the first it arrived on."""
        home = self.home.get(model_id)
        if home is None:
            self.home[model_id] = home = tp
            self.never_snapshotted[model_id] = None
        return home

    def applied(self, tp: TopicPartition, firsts: Mapping[str, int], lasts: Mapping[str, int]) -> None:
        """A batch of home partition `tp`: each model's events from `firsts[m]` to `lasts[m]` are in its
        detectors (`firsts` in offset order)."""
        next_offset = self.next_offset
        for model_id, last in lasts.items():
            next_offset[model_id] = last + 1
        self.unsnapshotted_from.add_all(tp, firsts)

    def label_applied(self, model_id: str, offset: int) -> None:
        self.unsnapshotted_labels_from.add(self._labels_of(model_id), model_id, offset)

    def _labels_of(self, model_id: str) -> TopicPartition:
        """The labels-topic partition serving the model (the same number as its home partition)."""
        assert self.labels_topic is not None, "labels without a labels topic"
        return TopicPartition(self.labels_topic, self.home[model_id].partition)

    # ---- checkpointing ---------------------------------------------------------------------------

    def snapshots_due(
        self, changed: Collection[str], *, not_before: float, everything: bool, limit: int | None = None
    ) -> list[str]:
        """Changed models due a snapshot: never snapshotted, or not since `not_before` (every one when
        `everything`), at most `limit` of them: never snapshotted first, in the order they came, then those
        snapshotted longest ago. Deferring a model costs nothing but replay: the committed offsets carry
        where a restore must read from (`offsets_to_commit`), so a model without a recent snapshot is
        replayed from there. With a limit, the cost is the due models taken, not all the models."""
        if everything:
            return list(changed)
        snapshot_at = self.snapshot_at
        if limit is None:
            return [m for m in changed if m not in snapshot_at or snapshot_at[m] <= not_before]
        due: list[str] = []
        if limit <= 0:
            return due
        for model_id in self.never_snapshotted:
            if model_id in changed:
                due.append(model_id)
                if len(due) == limit:
                    return due
        for model_id, at in snapshot_at.items():
            if at > not_before:
                break
            if model_id in changed:
                due.append(model_id)
                if len(due) == limit:
                    break
        return due

    def snapshotted(self, model_id: str, now: float) -> None:
        self.never_snapshotted.pop(model_id, None)
        self.snapshot_at.pop(model_id, None)
        self.snapshot_at[model_id] = now  # last: the oldest stay first
        self._forget_unsnapshotted(model_id)

    def _forget_unsnapshotted(self, model_id: str) -> None:
        home = self.home.get(model_id)
        if home is not None:
            self.unsnapshotted_from.discard(home, model_id)
            if self.labels_topic is not None:
                self.unsnapshotted_labels_from.discard(self._labels_of(model_id), model_id)

    def offsets_to_commit(self) -> dict[TopicPartition, CommitOffset]:
        """The pending offsets, each carrying in its metadata where a restore must start reading again: the
        oldest event (or label) a model of that partition holds outside its snapshot."""
        watermarks = self.unsnapshotted_from.lowest() | self.unsnapshotted_labels_from.lowest()
        return {
            tp: CommitOffset(offset, f"{REPLAY_FROM_PREFIX}{watermarks.get(tp, offset)}")
            for tp, offset in self.pending.items()
        }

    def committed(self) -> None:
        self.pending.clear()

    # ---- dropping --------------------------------------------------------------------------------

    def _drop_models(self, tp: TopicPartition) -> list[str]:
        self.replay_until.pop(tp, None)
        models = self.models_of(tp)
        for model_id in models:
            if self.labels_topic is not None:
                self.unsnapshotted_labels_from.discard(self._labels_of(model_id), model_id)
            del self.home[model_id]
            self.next_offset.pop(model_id, None)
            self.snapshot_at.pop(model_id, None)
            self.never_snapshotted.pop(model_id, None)
        self.unsnapshotted_from.drop(tp)
        return models


def replay_from(committed: CommitOffset) -> int | None:
    """Where a restore must read from, recorded with a committed offset (None: not recorded, or not readable:
    the oldest snapshot then bounds it)."""
    if not committed.metadata.startswith(REPLAY_FROM_PREFIX):
        return None
    # A C client may store the metadata with its terminating NUL (librdkafka does, read by kafka-python).
    text = committed.metadata.removeprefix(REPLAY_FROM_PREFIX).rstrip("\x00")
    return min(committed.offset, int(text)) if text.isdigit() else None
