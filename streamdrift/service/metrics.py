"""Prometheus metrics of one service, read from the counters the processing loop keeps anyway.

The loop never touches a Prometheus object per event: at scrape time `ServiceCollector` turns the loop's
plain counters into metric families (a dict copy is atomic under the GIL, so a scrape sees a consistent
snapshot of each counter without locking the loop). Only the histograms are observed by the loop: once per
checkpoint, once per fetched batch, and once per joined late label.

Label cardinality is bounded: topics, partitions, error kinds and skip reasons are few; alerts carry a
model_id label for the first `http.max_model_labels` models that alert, later ones share "_other".
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamdrift.core.monitor import Monitor
from streamdrift.service.counters import AlertCounts, Counters
from streamdrift.service.endpoints import Probe

__all__ = ["AlertCounts", "ServiceMetrics"]


class ServiceMetrics:
    """The registry served on /metrics, with the loop's two histograms."""

    def __init__(self, counters: Counters, monitor: Monitor, readiness: Probe) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.checkpoint_seconds = Histogram(
            "streamdrift_checkpoint_seconds",
            "Time to make an interval durable (transaction commit, or flush and offset commit)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.record_age_seconds = Histogram(
            "streamdrift_processing_latency_seconds",
            "Age of the newest record of each fetched batch when it is processed (now minus record time)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.label_delay_seconds = Histogram(
            "streamdrift_label_delay_seconds",
            "Record time from a prediction to its late label, for joined labels",
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400),
            registry=self.registry,
        )
        self.registry.register(ServiceCollector(counters, monitor, readiness))


class ServiceCollector(Collector):
    def __init__(self, counters: Counters, monitor: Monitor, readiness: Probe) -> None:
        self.counters = counters
        self.monitor = monitor
        self.readiness = readiness

    def collect(self) -> Iterator[Metric]:
        counters, monitor = self.counters, self.monitor
        totals = dict(counters.totals)

        def counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=[label])
            for value, count in sorted(values.items()):
                family.add_metric([value], count)
            return family

        def total(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield counter(
            "streamdrift_events", "Records consumed by topic (input, repartition, labels)", "topic",
            dict(counters.events_by_topic),
        )  # fmt: skip
        yield counter(
            "streamdrift_bytes", "Record value bytes consumed", "topic", dict(counters.bytes_by_topic)
        )
        yield counter(
            "streamdrift_dead_letters", "Records sent to the dead-letter topic, by error kind", "kind",
            dict(counters.dead_letters),
        )  # fmt: skip
        yield counter(
            "streamdrift_skipped_values", "Values not fed to a detector, by reason", "reason",
            dict(monitor.skipped),
        )  # fmt: skip
        yield counter(
            "streamdrift_suppressed_alerts", "Detections not published, by reason (cooldown, mute)", "reason",
            dict(monitor.suppressed),
        )  # fmt: skip
        alerts = CounterMetricFamily(
            "streamdrift_alerts",
            "Alerts published, by model (the first http.max_model_labels models; others: _other), "
            "signal, detector and level",
            labels=["model_id", "signal", "detector", "level"],
        )
        for key, count in sorted(dict(counters.alert_counts.counts).items()):
            alerts.add_metric(list(key), count)
        yield alerts
        yield counter(
            "streamdrift_rejected_snapshots", "State snapshots rejected on restore, by reason", "reason",
            dict(counters.rejected_snapshots),
        )  # fmt: skip
        yield counter(
            "streamdrift_labels",
            "Late-label join outcomes: joined, inline, expired_predictions, labels_without_prediction, "
            "duplicate_labels, duplicate_predictions",
            "outcome",
            dict(monitor.labels),
        )
        yield gauge(
            "streamdrift_labels_pending", "Predictions waiting for their label (or behind one that is)",
            sum(len(model.join.queue) for model in list(monitor.models.values()) if model.join is not None),
        )  # fmt: skip
        yield from _performance(monitor)
        yield total("streamdrift_snapshots", "Model snapshots written", totals.get("snapshots", 0))
        yield total(
            "streamdrift_snapshot_bytes", "Bytes of model snapshots written", totals.get("snapshot_bytes", 0)
        )
        yield total(
            "streamdrift_checkpoint_failures", "Checkpoints that failed", totals.get("checkpoint_failures", 0)
        )
        yield total(
            "streamdrift_transactions_aborted", "Transactions aborted", totals.get("transactions_aborted", 0)
        )
        yield total("streamdrift_replayed_events", "Events re-read to bring restored detectors up to date",
                    totals.get("replayed", 0))  # fmt: skip
        yield total("streamdrift_forwarded_events", "Events forwarded to the repartition topic",
                    totals.get("forwarded", 0))  # fmt: skip
        yield total(
            "streamdrift_restored_state_records", "State records read while restoring",
            counters.restored_records,
        )  # fmt: skip
        yield gauge(
            "streamdrift_restore_size_records",
            "State records the latest restore had to read", counters.records_to_restore,
        )  # fmt: skip
        yield gauge("streamdrift_models", "Models held", len(monitor.models))
        yield gauge("streamdrift_detectors", "Detectors held", monitor.detector_count())
        yield gauge(
            "streamdrift_assigned_partitions", "Partitions assigned and restored", counters.partitions_held
        )
        yield gauge(
            "streamdrift_restoring_partitions", "Partitions being restored", counters.partitions_waiting
        )
        yield gauge("streamdrift_ready", "1 when ready (see /readyz)", float(self.readiness()[0]))
        lag = GaugeMetricFamily(
            "streamdrift_consumer_lag",
            "Records behind the partition's high watermark at the last checkpoint (transaction markers "
            "count as records)",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(dict(counters.lag).items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag


def _performance(monitor: Monitor) -> Iterator[GaugeMetricFamily]:
    """Per model of `reference.performance`, its latest closed window's estimated and realized metrics.
    The monitor replaces a model's metrics whole, so copies of its dicts are consistent ones."""
    for name, doc, values in (
        ("streamdrift_estimated_performance", "The latest closed window's estimated (CBPE) metric",
         dict(monitor.estimated)),
        ("streamdrift_realized_performance",
         "The latest closed window's realized metric (every event labelled)", dict(monitor.realized)),
    ):  # fmt: skip
        family = GaugeMetricFamily(name, doc, labels=["model_id", "metric"])
        for model_id, metrics in sorted(values.items()):
            for metric, value in metrics.items():
                family.add_metric([model_id, metric], value)
        yield family
