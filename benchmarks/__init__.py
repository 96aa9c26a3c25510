"""streamdrift's benchmark harness: `make bench`, or `python -m benchmarks` with KAFKA_BOOTSTRAP_SERVERS set.

Every figure but the core's is measured against a real broker, with the service run as a subprocess exactly
as a user runs it (`streamdrift run --config FILE`), side by side with its baseline or target in the same run
(DESIGN §7):

- core: decoding and detection per event in this process, no Kafka, against `orjson.loads` alone;
- throughput: the service's events/s over one pre-filled topic, against a bare kafka-python consumer that
  reads and parses the same topic (`baseline.py`);
- fleet: the service next to what a user would write instead, on one partition whose events take turns
  among 100, then 10,000 models (`--fleet-models`): the bare consumer, a hand-written kafka-python + River
  consumer (`peer_kafka_python.py`) and a Quix Streams + River app (`peer_quix.py`, in a venv of its own
  that the harness makes in .cache/bench/peers-venv from `peers-requirements.txt`: quixstreams needs an
  older confluent-kafka than the project's); targets: kafka-python build ≥ 1.0 and confluent build ≥ 1.5
  times Quix;
- latency: produce-to-alert-visible percentiles at a steady input rate (`pacer.py` produces it);
- scale: memory, snapshot size and restore time with many models and detectors;
- scale-out: two instances against one over the same 2-partition topic.

Each measurement that runs the service runs it once per build, in turn within each round, and prints each
figure per build, then the ratios confluent / kafka-python and kafka-python after / before:

- `--transports kafka-python,confluent` (the default; either alone also works): the current code once per
  transport, the config's `kafka.client` set to it;
- `--before REF` (a git ref): also the code of that commit, on kafka-python, run first in each round
  (before, after, before, after... with `--repeat`): `git archive REF` is unpacked into
  .cache/bench/<run id>/before/ and put first on the service child's PYTHONPATH (same venv), with a config
  without `kafka.client`. Each child's `started` log line is checked: the current code names its transport
  there, the older code none.

`--repeat N` sets the rounds of throughput and scale-out (default 2, quick 1) and of latency and fleet
(default 1); scale runs each build once. Latency feeds every build the same rate (half the slowest build's
throughput).

One module per job: `events` makes the synthetic input, `broker` creates, fills, reads and deletes topics,
`processes` runs and watches child processes, `service` configures and drives streamdrift, `workspace`
scopes a measurement's children and topics (and removes them however it ends), `rates` turns progress
samples into rates and percentiles, `report` prints the table and writes the JSON, `machine` describes the
host and the code measured, `profiling` attaches py-spy, `variants` prepares the builds and compares them,
`passes` runs one process over a pre-filled topic, `peers_venv` makes the Quix peer's venv. `baseline`,
`pacer`, `peer_kafka_python` and `peer_quix` run as children. Each measurement is one module (`core`,
`throughput`, `fleet`, `latency`, `scale`, `scaleout`) with a `measure` function.
"""
