"""What a detector setting would do on a model's own data: false alarms, detection probability and delay.

An operator cannot guess what `threshold: 50` means for a feature whose standard deviation is 1, or 1000.
This module measures it, seeded and reproducible, from a reference sample of known-good events:

1. The signal's values are taken from the reference through the production path: each record is decoded
   by `EventDecoder` and fed to a `Monitor`, whose observer hands over exactly the values the core would
   feed a detector (bools as 0/1, NaN and text skipped, binary detectors fed 0/1 only).
2. Each run resamples `length` values i.i.d. from those values: a stream with the reference's
   distribution and no drift. Per setting, one `Detector` (the production wrapper: same parameter checks,
   same binary semantics) is fed every run's stream back to back, as a detector that runs for days sees
   them; every drift it reports is a false alarm. It is not restarted per run on purpose: a fresh detector
   is quieter than a long-running one (Page-Hinkley's statistic needs tens of thousands of values to build
   up), and short fresh streams understate the production rate by half or more.
3. Each run, with a change injected at `length // 2` (a mean shift or a variance change for numeric
   signals, a rise in the rate of 1s for 0/1 signals), is fed to a fresh detector per setting: the first
   drift at or after the change point and its delay measure detection. Drifts before the change point are
   not detections (false alarms are counted in step 2).
4. Among settings whose false-alarm rate is within the target, the one that best detects the smallest
   change is recommended, as a `models:` entry ready to paste into the config.

The steps' modules: signals.py (what `--signal` names), reference.py (1), grid.py (the settings measured),
changes.py and simulation.py (the streams of 2 and 3), evaluation.py (2, 3), recommendation.py (4).
"""

from streamdrift.tune.changes import Change, ChangeKind, changes_for
from streamdrift.tune.evaluation import (
    EVENTS_PER_RATE,
    ChangeOutcome,
    Evaluation,
    SettingResult,
    evaluate,
)
from streamdrift.tune.grid import default_grid, describe_setting, parse_grid
from streamdrift.tune.recommendation import (
    Recommendation,
    check_target,
    glob_literal,
    recommend,
    recommendation_yaml,
    recommended_models,
)
from streamdrift.tune.reference import (
    MIN_REFERENCE_VALUES,
    Reference,
    ReferenceSample,
    Values,
    read_reference,
)
from streamdrift.tune.signals import Signal, check_distinct_keys
from streamdrift.tune.simulation import SimulatedRun, Simulation, simulated_runs

__all__ = [
    "EVENTS_PER_RATE",
    "MIN_REFERENCE_VALUES",
    "Change",
    "ChangeKind",
    "ChangeOutcome",
    "Evaluation",
    "Recommendation",
    "Reference",
    "ReferenceSample",
    "SettingResult",
    "Signal",
    "SimulatedRun",
    "Simulation",
    "Values",
    "changes_for",
    "check_distinct_keys",
    "check_target",
    "default_grid",
    "describe_setting",
    "evaluate",
    "glob_literal",
    "parse_grid",
    "read_reference",
    "recommend",
    "recommendation_yaml",
    "recommended_models",
    "simulated_runs",
]
