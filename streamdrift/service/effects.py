"""Carrying out what a ledger transition returns (ledger.Actions) on the consumer, the detectors and the
forwarding buffers: the one place the ledger's decisions meet the clients."""

from __future__ import annotations

from typing import Protocol

from streamdrift.ports import GroupConsumer, TopicPartition
from streamdrift.service.counters import Counters
from streamdrift.service.ledger import Actions


class Models(Protocol):
    def drop_model(self, model_id: str) -> None: ...


class Buffers(Protocol):
    def drop(self, tp: TopicPartition) -> None: ...


class Effects:
    def __init__(self, models: Models, buffers: Buffers, counters: Counters) -> None:
        self.models = models
        self.buffers = buffers  # an input partition in repartition mode: its buffer is read again
        self.counters = counters
        self.consumer: GroupConsumer | None = None  # set once the consumer exists

    def apply(self, actions: Actions) -> None:
        for model_id in actions.models:
            self.models.drop_model(model_id)
        for tp in actions.drop:
            self.buffers.drop(tp)
            self.counters.positions.pop((tp.topic, tp.partition), None)
        if self.consumer is not None:
            if actions.pause:
                self.consumer.pause(actions.pause)
            if actions.resume:
                self.consumer.resume(actions.resume)
