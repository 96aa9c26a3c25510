"""`streamdrift tune`: what it measures is what River and the production replay do on the same data.

Every expected number comes from River's detectors or from `streamdrift.replay.replay` run here, on the
tuner's own simulated streams or on fresh seeded streams; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from river.drift import PageHinkley
from river.drift.binary import DDM, FHDDM
from scipy.stats import binomtest, mannwhitneyu, poisson

from streamdrift.cli.tune import add_tune_parser
from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.detectors import DetectorSpec
from streamdrift.errors import ConfigError
from streamdrift.replay import replay
from streamdrift.tune import (
    EVENTS_PER_RATE,
    Change,
    ReferenceSample,
    Signal,
    Simulation,
    changes_for,
    default_grid,
    evaluate,
    parse_grid,
    read_reference,
    recommend,
    recommendation_yaml,
    simulated_runs,
)

MINIMAL = "kafka: {bootstrap_servers: '127.0.0.1:9'}\ntopics: {input: [events]}\n"
MODEL = "fraud-eu"
TARGET = 1.0  # false alarms per 10,000 events
RUNS = 50
LENGTH = 5000
CHANGE_AT = LENGTH // 2
REFERENCE_EVENTS = 20_000
FRESH_EVENTS = 200_000


# --- event streams -------------------------------------------------------------------------------------


def numeric_events(values: Sequence[float], model: str = MODEL) -> list[bytes]:
    return [orjson.dumps({"model_id": model, "features": {"x": float(v)}}) for v in values]


def labelled_events(errors: Sequence[float], rng: np.random.Generator, model: str = MODEL) -> list[bytes]:
    """Events of a classifier whose prediction is wrong exactly where `errors` is 1."""
    events = []
    for error, fraud in zip(errors, rng.random(len(errors)) < 0.3, strict=True):
        label = "fraud" if fraud else "ok"
        prediction = label if error == 0 else ("ok" if fraud else "fraud")
        events.append(orjson.dumps({"model_id": model, "prediction": prediction, "label": label}))
    return events


def normal_reference(seed: int = 1, count: int = REFERENCE_EVENTS) -> list[bytes]:
    return numeric_events(np.random.default_rng(seed).normal(size=count))


def error_reference(rate: float, seed: int = 2, count: int = REFERENCE_EVENTS) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return labelled_events((rng.random(count) < rate).astype(float), rng)


def sample_of(records: list[bytes], signal: str, detector_type: str) -> ReferenceSample:
    reference = read_reference(
        parse_config(MINIMAL), records, [Signal.parse(signal)], detector_type, model=MODEL
    )
    return reference.samples[signal]


# --- the production replay -----------------------------------------------------------------------------


def tuned_config(yaml_text: str) -> StreamdriftConfig:
    return parse_config(MINIMAL + yaml_text)


def replayed_drifts(config: StreamdriftConfig, records: list[bytes], signal: str) -> int:
    return sum(alert.signal == signal and alert.level == "drift" for alert in replay(config, records))


def replayed_delays(
    config: StreamdriftConfig, streams: Iterator[list[bytes]], signal: str
) -> list[int | None]:
    """Per stream: offset of the first drift alert at or after CHANGE_AT, minus CHANGE_AT (None: none)."""
    delays: list[int | None] = []
    for records in streams:
        delays.append(None)
        for alert in replay(config, records):
            if alert.signal == signal and alert.level == "drift" and alert.source.offset >= CHANGE_AT:
                delays[-1] = alert.source.offset - CHANGE_AT
                break
    return delays


def median_delay(delays: list[int | None]) -> float:
    return statistics.median(delay for delay in delays if delay is not None)


def detected_share(delays: Sequence[int | None]) -> float:
    return sum(delay is not None for delay in delays) / len(delays)


def assert_same_share(tuned: float, replayed: float, runs: int) -> None:
    """Two detection shares over `runs` runs each agree within three standard errors of their difference
    (plus one run, so that shares of 0 or 1 compare exactly up to a single run)."""
    pooled = (tuned + replayed) / 2
    tolerance = 3 * (2 * pooled * (1 - pooled) / runs) ** 0.5 + 1 / runs
    assert abs(tuned - replayed) <= tolerance, (tuned, replayed)


# --- page_hinkley on a numeric feature, re-measured by the production replay ---------------------------


def test_recommended_page_hinkley_keeps_its_false_alarms_and_delay_under_replay() -> None:
    sample = sample_of(normal_reference(), "feature:x", "page_hinkley")
    grid = parse_grid("page_hinkley", ["threshold=25,50,75,100,150,200"])
    evaluation = evaluate(sample, grid, changes_for(sample), Simulation(runs=RUNS, length=LENGTH, seed=0))
    recommendation = recommend(evaluation, TARGET)
    result = recommendation.result
    assert recommendation.meets_target
    assert result.false_alarms_per_10k <= TARGET
    # The grid straddles the target, so the choice is not trivially "the least sensitive".
    assert any(other.false_alarms_per_10k > TARGET for other in evaluation.results)

    config = tuned_config(recommendation_yaml([recommendation], MODEL))
    assert config.policies().plan_for(MODEL).feature("x").detector == result.spec

    # False alarms: the production replay over fresh N(0, 1) events.
    fresh = numeric_events(np.random.default_rng(1001).normal(size=FRESH_EVENTS))
    fresh_alarms = replayed_drifts(config, fresh, "feature:x")
    # Statistical slack, and why: the tuner's rate is an estimate from RUNS * LENGTH events, and the fresh
    # count is another Poisson sample; a setting whose true rate equals the target exceeds it on fresh data
    # about half the time. So the fresh count must not be *significantly* above the target (at most the
    # 99.9% quantile of a Poisson count at the target rate: a setting truly within the target fails this
    # one time in a thousand) and must agree with the tuner's own count (exact conditional test, 0.1%).
    at_target = TARGET * FRESH_EVENTS / EVENTS_PER_RATE
    assert fresh_alarms <= poisson.ppf(0.999, at_target), (fresh_alarms, at_target)
    share_tuned = result.events / (result.events + FRESH_EVENTS)
    total = result.false_alarms + fresh_alarms
    if total:
        assert binomtest(result.false_alarms, total, share_tuned).pvalue > 0.001, (result, fresh_alarms)

    # Delay: the production replay over fresh streams with a 1-sd mean shift at the middle.
    one_sd = next(o for o in result.outcomes if o.change == Change(kind="mean_shift", size=1.0))
    rng = np.random.default_rng(1002)
    shifted = (
        numeric_events(np.concatenate([rng.normal(0, 1, CHANGE_AT), rng.normal(1, 1, LENGTH - CHANGE_AT)]))
        for _ in range(RUNS)
    )
    delays = replayed_delays(config, shifted, "feature:x")
    assert one_sd.median_delay is not None
    assert abs(one_sd.median_delay - median_delay(delays)) <= 0.2 * median_delay(delays)
    assert_same_share(one_sd.detection_probability, detected_share(delays), RUNS)


def test_false_alarms_are_those_of_a_long_running_detector() -> None:
    """A quiet Page-Hinkley setting alarms about 0.5 times per 10k events in a long stream, but almost
    never in the first few thousand values after a start: measured on fresh short streams, its rate would
    be understated more than tenfold. The tuner's rate must agree with a long production replay."""
    sample = sample_of(normal_reference(), "feature:x", "page_hinkley")
    spec = DetectorSpec.of("page_hinkley", threshold=150)
    simulation = Simulation(runs=2 * RUNS, length=LENGTH, seed=0)
    result = evaluate(sample, [spec], changes_for(sample, shifts=[1]), simulation).results[0]

    detector = {"type": "page_hinkley", "threshold": 150}
    config = tuned_config(
        yaml.safe_dump({"models": [{"match": MODEL, "features": {"x": {"detector": detector}}}]})
    )
    fresh = numeric_events(np.random.default_rng(1004).normal(size=FRESH_EVENTS))
    fresh_alarms = replayed_drifts(config, fresh, "feature:x")
    assert fresh_alarms > 0  # the replay sees the alarms the tuner must account for
    # Same rate on both sides: conditional on the total, the tuner's count is binomial (0.1% level).
    share_tuned = result.events / (result.events + FRESH_EVENTS)
    total = result.false_alarms + fresh_alarms
    assert binomtest(result.false_alarms, total, share_tuned).pvalue > 0.001, (result, fresh_alarms)


# --- 0/1 signals: a rise in the error rate ---------------------------------------------------------------


@pytest.mark.parametrize("detector_type", ["ddm", "fhddm"])
def test_error_rate_rise_is_detected_as_the_replay_detects_it(detector_type: str) -> None:
    rate, rise = 0.1, 0.1
    sample = sample_of(error_reference(rate), "error", detector_type)
    assert sample.binary
    changes = changes_for(sample, rate_rises=[rise])
    assert changes == (Change(kind="rate_rise", size=rise),)
    evaluation = evaluate(
        sample, default_grid(detector_type, sample), changes, Simulation(runs=RUNS, length=LENGTH, seed=0)
    )
    recommendation = recommend(evaluation, TARGET)
    outcome = recommendation.result.outcomes[0]
    assert outcome.detection_probability > 0

    config = tuned_config(recommendation_yaml([recommendation], MODEL))
    assert config.policies().plan_for(MODEL).signal("error").detector == recommendation.result.spec
    rng = np.random.default_rng(1003)

    def stream() -> list[bytes]:
        before = rng.random(CHANGE_AT) < rate
        after = rng.random(LENGTH - CHANGE_AT) < rate + rise
        return labelled_events(np.concatenate([before, after]).astype(float), rng)

    delays = replayed_delays(config, (stream() for _ in range(RUNS)), "error")
    assert detected_share(delays) > 0
    assert_same_share(outcome.detection_probability, detected_share(delays), RUNS)
    # An error-rate detector's delay varies a lot from run to run (DDM's quartiles are a factor 2-3 apart,
    # its median over 50 runs moves by a third between seeds), so a fixed tolerance on the medians would
    # test the seed. Instead the tuner's delays and the replay's must look like one distribution: a
    # two-sided Mann-Whitney test rejects that wrongly one time in a thousand.
    tuned_delays = [delay for delay in outcome.delays if delay is not None]
    replay_delays = [delay for delay in delays if delay is not None]
    assert mannwhitneyu(tuned_delays, replay_delays).pvalue > 0.001, (outcome.median_delay, delays)


# --- exactness: the simulated runs fed to River itself ---------------------------------------------------


def river_on_runs(
    make: Callable[[], object],
    sample: ReferenceSample,
    changes: Sequence[Change],
    simulation: Simulation,
    feed: Callable[[float], float] = float,
) -> tuple[int, list[list[int | None]]]:
    """False alarms of one River detector fed every unchanged stream back to back, and per change the
    delays of a fresh River detector fed each whole changed stream."""
    alarms = 0
    delays: list[list[int | None]] = [[] for _ in changes]
    long_running = make()
    for run in simulated_runs(sample, changes, simulation):
        for value in run.baseline:
            long_running.update(feed(value))  # type: ignore[attr-defined]
            alarms += long_running.drift_detected  # type: ignore[attr-defined]
        for index, tail in enumerate(run.changed_tails):
            detector = make()
            stream = run.baseline[: simulation.change_at] + tail
            first = None
            for position, value in enumerate(stream):
                detector.update(feed(value))  # type: ignore[attr-defined]
                if detector.drift_detected and position >= simulation.change_at:  # type: ignore[attr-defined]
                    first = position - simulation.change_at
                    break
            delays[index].append(first)
    return alarms, delays


@pytest.mark.parametrize(
    ("detector_type", "params", "river", "feed"),
    [
        ("page_hinkley", {"threshold": 15}, lambda: PageHinkley(threshold=15), float),
        ("ddm", {"drift_threshold": 2.5}, lambda: DDM(drift_threshold=2.5), float),
        # River's FHDDM reads 1 as correct; streamdrift's 1 means an error, so River is fed 1 - x.
        ("fhddm", {"confidence_level": 1e-4}, lambda: FHDDM(confidence_level=1e-4), lambda x: 1 - x),
    ],
)
def test_measurements_are_rivers_detections_on_the_simulated_streams(
    detector_type: str, params: dict[str, float], river: Callable[[], object], feed: Callable[[float], float]
) -> None:
    if detector_type == "page_hinkley":
        sample = sample_of(normal_reference(count=2000), "feature:x", detector_type)
    else:
        sample = sample_of(error_reference(0.2, count=2000), "error", detector_type)
    changes = changes_for(sample)
    simulation = Simulation(runs=6, length=3000, seed=7)
    result = evaluate(sample, [DetectorSpec.of(detector_type, **params)], changes, simulation).results[0]

    alarms, delays = river_on_runs(river, sample, changes, simulation, feed)
    assert alarms + sum(d is not None for per_change in delays for d in per_change) > 0  # not vacuous
    assert result.false_alarms == alarms
    assert [list(outcome.delays) for outcome in result.outcomes] == delays
    assert result.events == simulation.runs * simulation.length


# --- the recommendation as config YAML ---------------------------------------------------------------------


def test_yaml_sets_each_signal_under_its_own_key_and_matches_names_literally() -> None:
    reference = [
        orjson.dumps(
            {"model_id": "fraud-[eu]", "features": {"amount*": float(i % 7), "flag": i % 3 == 0},
             "score": (i % 10) / 10, "prediction": "ok" if i % 4 else "fraud", "label": "ok"}
        )
        for i in range(300)
    ]  # fmt: skip
    signals = [
        Signal.parse(s) for s in ("feature:amount*", "missing:flag", "score", "error", "prediction:ok")
    ]
    config = parse_config(MINIMAL)
    samples = read_reference(config, reference, signals, "adwin", model="fraud-[eu]").samples
    simulation = Simulation(runs=2, length=200, seed=0)
    recommendations = []
    for signal in signals:
        sample = samples[signal.name]
        grid = parse_grid("adwin", ["delta=0.001,0.01"])
        recommendations.append(recommend(evaluate(sample, grid, changes_for(sample), simulation), TARGET))
    specs = {r.signal.name: r.result.spec for r in recommendations}

    tuned = tuned_config(recommendation_yaml(recommendations, "fraud-[eu]"))
    plan = tuned.policies().plan_for("fraud-[eu]")
    assert plan.feature("amount*").detector == specs["feature:amount*"]
    assert plan.signal("missing").detector == specs["missing:flag"]
    assert plan.signal("score").detector == specs["score"]
    assert plan.signal("error").detector == specs["error"]
    assert plan.signal("prediction").detector == specs["prediction:ok"]
    # Names are matched literally, not as globs: other models and features keep the defaults.
    default = tuned.policies().plan_for("other").signal("score").detector
    assert tuned.policies().plan_for("fraud-e").signal("score").detector == default
    assert plan.feature("amount_usd").detector == default

    anywhere = tuned_config(recommendation_yaml(recommendations[2:3], None))
    assert anywhere.models[0].match == "*"
    assert anywhere.policies().plan_for("any-model").signal("score").detector == specs["score"]


# --- the command -------------------------------------------------------------------------------------------


def tune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdrift")
    add_tune_parser(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL)
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(normal_reference(count=3000)) + b"\n")
    return {"config": config, "reference": reference, "dir": tmp_path}


def tune(files: dict[str, Path], *argv: str) -> int:
    base = ["tune", "--config", str(files["config"]), "--reference", str(files["reference"])]
    args = tune_parser().parse_args([*base, *argv])
    code: int = args.handler(args)
    return code


SMALL = ("--runs", "5", "--length", "1000")


def test_command_prints_the_table_and_writes_the_recommended_yaml(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    output = files["dir"] / "recommended.yaml"
    argv = ["--signal", "feature:x", "--model", MODEL, "--detector", "page_hinkley"]
    grid = ["--grid", "threshold=20,50,200", "--grid", "delta=0.005"]
    assert tune(files, *argv, *grid, *SMALL, "--output", str(output)) == 0
    table = capsys.readouterr().out
    for setting in ("delta=0.005 threshold=20", "delta=0.005 threshold=50", "delta=0.005 threshold=200"):
        assert setting in table
    assert "mean +0.5 sd" in table and "variance x2" in table
    assert "* recommended: " in table

    # The YAML is the evaluator's recommendation on the same arguments, and a valid config section.
    records = files["reference"].read_bytes().splitlines()
    sample = sample_of(records, "feature:x", "page_hinkley")
    specs = parse_grid("page_hinkley", ["threshold=20,50,200", "delta=0.005"])
    evaluation = evaluate(sample, specs, changes_for(sample), Simulation(runs=5, length=1000, seed=0))
    expected = recommendation_yaml([recommend(evaluation, TARGET)], MODEL)
    assert output.read_text() == expected
    tuned_config(output.read_text())

    # Without --output the YAML follows the table.
    assert tune(files, *argv, *grid, *SMALL) == 0
    assert capsys.readouterr().out == table + expected

    # When no setting meets the target, the table says so and the quietest one is recommended.
    assert tune(files, *argv, "--grid", "threshold=5,10", *SMALL) == 0
    out = capsys.readouterr().out
    assert "* no setting meets the target of 1 false alarms per 10k; fewest: threshold=10 " in out
    assert "NOT MET" in out and "detector: {type: page_hinkley, threshold: 10}" in out


def test_the_same_seed_gives_the_same_table(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--signal", "feature:x", "--detector", "page_hinkley", "--grid", "threshold=20,50", *SMALL]
    tables = []
    for seed in ("3", "3", "4"):
        tune(files, *argv, "--seed", seed)
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1]
    assert tables[0] != tables[2]


def test_the_default_grid_scales_page_hinkley_to_the_signal() -> None:
    records = numeric_events(np.random.default_rng(5).normal(0, 1000, size=2000))
    sample = sample_of(records, "feature:x", "page_hinkley")
    thresholds = {dict(spec.params)["threshold"] for spec in default_grid("page_hinkley", sample)}
    # River's default threshold of 50 assumes a standard deviation of about 1: here it is 1000.
    assert min(thresholds) > 1000
    assert {len(default_grid(kind, sample)) > 1 for kind in ("adwin", "kswin", "ddm", "fhddm")} == {True}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reference", "{dir}/absent.jsonl"], "--reference {dir}/absent.jsonl: cannot read: No such file"),
        (["--signal", "feature:y"], "--signal feature:y: no values in the 3000 reference events of model "
         "fraud-eu (signals present: feature:x, missing:x, quality:type_mismatch)"),
        (["--signal", "colour"], "--signal colour: not a signal"),
        (["--signal", "feature:x", "--detector", "ddm"], "--signal feature:x: none of its values in the "
         "3000 reference events of model fraud-eu can reach a ddm detector (skipped: not_binary=3000)"),
        (["--signal", "missing:x", "--signal", "missing:y"], "--signal missing:x and --signal missing:y are "
         "both set by `missing`"),
        (["--detector", "cusum"], "unknown detector type 'cusum'"),
        (["--grid", "threshold"], "--grid threshold: expected name=value[,value...]"),
        (["--grid", "threshold=10,,20"], "--grid threshold=10,,20: an empty value"),
        (["--grid", "treshold=10"], "--grid: page_hinkley has no parameter 'treshold' (it takes: "),
        (["--grid", "threshold=-1"], "--grid: page_hinkley.threshold must be a number > 0, got -1"),
        (["--grid", "threshold=1", "--grid", "threshold=2"], "--grid threshold: given twice"),
        (["--model", "nobody"], "--model nobody: no event of this model in the reference (it has: fraud-eu)"),
        (["--shift", "half"], "--shift half: expected numbers separated by commas"),
        (["--variance-ratio", "1"], "--variance-ratio 1: must be a number > 0 other than 1"),
        (["--runs", "0"], "--runs 0: must be at least 1"),
        (["--target-false-alarms", "-1"], "--target-false-alarms -1: must be a number >= 0"),
        (["--output", "{dir}"], "--output {dir}: cannot write: Is a directory"),
        (["--output", "{dir}/absent/out.yaml"], "--output {dir}/absent/out.yaml: cannot write: no directory"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_precise_line(files: dict[str, Path], argv: list[str], message: str) -> None:
    defaults = {
        "--config": str(files["config"]),
        "--reference": str(files["reference"]),
        "--signal": "feature:x",
        "--detector": "page_hinkley",
        "--model": MODEL,
    }
    given = [arg.format(dir=files["dir"]) for arg in argv]
    unset = [arg for option, value in defaults.items() if option not in given for arg in (option, value)]
    args = tune_parser().parse_args(["tune", *unset, *SMALL, *given])  # the last of a repeated option wins
    with pytest.raises(ConfigError) as raised:
        args.handler(args)
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith(message.format(dir=files["dir"])), raised.value.problems


def test_a_rate_that_cannot_rise_enough_is_refused() -> None:
    sample = sample_of(error_reference(0.95, count=500), "error", "ddm")
    with pytest.raises(ConfigError, match=r"--error-rise 0.1: error is 1 in 9\d\.\d% of the reference"):
        changes_for(sample, rate_rises=[0.1])


def test_too_few_reference_values_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--signal feature:x: only 60 values in the reference"):
        sample_of(normal_reference(count=60), "feature:x", "adwin")
