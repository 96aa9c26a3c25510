"""Snapshots that cannot be abused: a body signed with the state key still runs no code, allocates nothing
out of proportion, changes nothing outside what it builds and restores no state of another shape; a restore
uses each model's newest snapshot, signed for that model and that partition, whatever was written after it.

Hostile bodies are written here opcode by opcode and signed with the real key in `encode_snapshot`'s layout
(checked against it below), so only the decoder's own checks stand between them and the process. Expected
detections come from River's own detectors fed the same values; expected states from uninterrupted runs.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import pickletools
import random
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from river.drift import ADWIN, KSWIN, PageHinkley

from streamdrift.config import parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import DETECTOR_KINDS, RIVER_VERSION, Detector, DetectorSpec
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalPolicy
from streamdrift.core.scaling import Standardize
from streamdrift.core.snapshot import (
    ALLOWED_GLOBALS,
    MAGIC,
    REJECT_CLASS,
    REJECT_SHAPE,
    REJECT_VERSION,
    SnapshotHeader,
    SnapshotRejected,
    decode_snapshot,
    encode_snapshot,
)
from streamdrift.service.counters import AlertCounts, Counters
from streamdrift.service.state import RestoredModel, StateStore
from tests.river_runs import run_river
from tests.unit.test_core_snapshots import POLICIES, RECORDS, alerts_from, apply, first_cuts_in_each_state

HEADER = SnapshotHeader(model_id="m", topic="events", partition=0, offset=1, river_version=RIVER_VERSION)

# ---- pickles written by hand -------------------------------------------------------------------------


def text(value: str) -> bytes:
    data = value.encode()
    size = bytes([len(data)]) if len(data) < 256 else None
    return (b"\x8c" + size if size else b"X" + struct.pack("<I", len(data))) + data  # SHORT_BINUNICODE


def number(value: int) -> bytes:
    size = (value.bit_length() + 8) // 8
    return b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)  # LONG1: any int


def real(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)  # BINFLOAT


def raw(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data  # BINBYTES


def named(module: str, name: str) -> bytes:
    """STACK_GLOBAL, as protocol 4 and 5 write a global."""
    return text(module) + text(name) + b"\x93"


def old_named(module: str, name: str) -> bytes:
    """GLOBAL, as protocols 0 to 3 wrote a global."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(function: bytes, *args: bytes) -> bytes:
    """function(*args): MARK, the arguments, TUPLE, REDUCE."""
    return function + b"(" + b"".join(args) + b"tR"


def new(cls: bytes, *args: bytes) -> bytes:
    """cls.__new__(cls, *args): NEWOBJ, as pickle builds an instance of a class."""
    return cls + b"(" + b"".join(args) + b"t\x81"


def build(obj: bytes, attributes: dict[str, bytes], *, slots: bool = False) -> bytes:
    """BUILD: obj.__setstate__, else its __dict__ updated (a dict state) or setattr (the slot state)."""
    entries = b"}" + b"".join(text(name) + value + b"s" for name, value in attributes.items())
    return obj + (b"N" + entries + b"\x86" if slots else entries) + b"b"


def body(*ops: bytes) -> bytes:
    return b"\x80\x05" + b"".join(ops) + b"."


def sign(pickled: bytes, key: str, header: SnapshotHeader = HEADER) -> bytes:
    """A snapshot with this body, laid out and signed as `encode_snapshot` does (see the test of it)."""
    head = orjson.dumps(
        {
            "v": header.format_version, "river": header.river_version, "model_id": header.model_id,
            "topic": header.topic, "partition": header.partition, "offset": header.offset,
        }
    )  # fmt: skip
    signed = struct.pack(">I", len(head)) + head + pickled
    return MAGIC + hmac.digest(key.encode(), signed, hashlib.sha256) + signed


def rejection(value: bytes, key: str) -> str:
    with pytest.raises(SnapshotRejected) as caught:
        decode_snapshot(value, key.encode(), RIVER_VERSION)
    return caught.value.reason


def test_forged_snapshots_have_encode_snapshots_layout(state_key: str) -> None:
    state = {"features": [("x", (1, 2.5, "a"))], "n": None}
    assert sign(pickle.dumps(state, protocol=5), state_key) == encode_snapshot(
        HEADER, state, state_key.encode()
    )
    assert (
        decode_snapshot(sign(body(text("plain")), state_key), state_key.encode(), RIVER_VERSION)[1] == "plain"
    )


# ---- (a) no code runs ---------------------------------------------------------------------------------


def code_execution(marker: Path) -> dict[str, bytes]:
    command = f"touch {marker}"
    return {
        # Protocol 4 resolves a dotted name attribute by attribute: kswin imports random, random imports os.
        "random._os.system through a river module": body(
            call(named("river.drift.kswin", "random._os.system"), text(command))
        ),
        "_os.system through the random module": body(call(named("random", "_os.system"), text(command))),
        "the same with the GLOBAL opcode": body(
            call(old_named("river.drift.kswin", "random._os.system"), text(command))
        ),
        "os.system": body(call(named("os", "system"), text(command))),
        "posix.system": body(call(old_named("posix", "system"), text(command))),
        "builtins.eval": body(call(named("builtins", "eval"), text(f"__import__('os').system({command!r})"))),
        "builtins.exec": body(call(named("builtins", "exec"), text(f"__import__('os').system({command!r})"))),
    }


@pytest.mark.parametrize("attack", list(code_execution(Path("x"))))
def test_code_execution_is_refused_and_nothing_runs(attack: str, state_key: str, tmp_path: Path) -> None:
    # The payload is live: plain pickle runs it.
    proof = tmp_path / "with-plain-pickle"
    pickle.loads(code_execution(proof)[attack])
    assert proof.exists()

    marker = tmp_path / "ran"
    assert rejection(sign(code_execution(marker)[attack], state_key), state_key) == REJECT_CLASS
    assert not marker.exists()


# ---- (b) memory bombs, decoded in a child process with little memory -----------------------------------

LONG = "x" * 1_000_000
DEQUE = named("collections", "deque")
HUGE_SHAPE = b"(" + number(10**6) + number(10**6) + b"t"
REPEAT = call(named("river.drift.kswin", "itertools.repeat"), text("x"), number(10**10))


def window(buckets: int) -> bytes:
    """River's Rust ADWIN window as pickle builds it: NEWOBJ with (delta, clock, max_buckets, ...)."""
    args = (real(0.002), number(32), number(buckets), number(5), number(10))
    return new(named("river._river_rust.drift", "AdaptiveWindowing"), *args)


BOMBS: dict[str, bytes] = {
    "bytearray of 10**12 bytes": body(call(named("builtins", "bytearray"), number(10**12))),
    "itertools.repeat through a river module, into a deque": body(call(DEQUE, REPEAT)),
    "itertools.repeat": body(call(named("itertools", "repeat"), text("x"), number(10**12))),
    "numpy.ones of 10**6 x 10**6": body(call(named("numpy", "ones"), HUGE_SHAPE)),
    "numpy.ones through a river module": body(call(named("river.stats.mean", "np.ones"), HUGE_SHAPE)),
    # One string, memoised (MEMOIZE, POP), copied into 2000 deques of a list: 2000 x 1,000,000 items.
    "a deque copying one memoised string 2000 times": body(
        text(LONG), b"\x94", b"0", b"]", *(call(DEQUE, b"h\x00") + b"a" for _ in range(2000))
    ),
    # River's Rust ADWIN allocates max_buckets in its constructor: 10**12 of them, and no state after.
    "an ADWIN window constructed with 10**12 buckets": body(window(10**12)),
}


def adwin_window() -> Any:
    """A real ADWIN window with settings of its own, after values with a change in them."""
    detector = ADWIN(delta=0.01, clock=3, max_buckets=7)
    rng = random.Random(4)
    for i in range(3000):
        detector.update(rng.gauss(0.0 if i < 1500 else 2.0, 1.0))
    return detector._helper


CHILD = """
import resource, sys
from pathlib import Path
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.snapshot import SnapshotRejected, decode_snapshot

# Everything imported: from here on, 600 MB more address space at most.
size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + 600 * 2**20, size + 600 * 2**20))
key = sys.argv[1].encode()
for path in sys.argv[2:]:
    try:
        _, state = decode_snapshot(Path(path).read_bytes(), key, RIVER_VERSION)
    except SnapshotRejected as rejected:
        print(Path(path).name, "rejected", rejected.reason, flush=True)
    else:
        outcome = state.__getnewargs__() if hasattr(state, "__getnewargs__") else type(state).__name__
        print(Path(path).name, "decoded", repr(outcome), flush=True)
"""


@pytest.fixture(scope="module")
def decoded_with_little_memory(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a child process with 600 MB to spare says of each bomb (one child for all: imports are slow).
    A bomb that got through dies there, and its line is missing, rather than take this process with it."""
    key = "a-key-for-the-bombs-0123456789"
    folder = tmp_path_factory.mktemp("bombs")
    real_window = adwin_window()
    cases = {
        **BOMBS,
        # The same, then BUILD with a real window's state: the state decides, the pickle's arguments never.
        "an ADWIN window with 10**12 buckets, then a real state": body(
            window(10**12), raw(real_window.__getstate__()), b"b"
        ),
    }
    paths = []
    for i, case in enumerate(cases.values()):
        path = folder / f"case{i}"
        path.write_bytes(sign(case, key))
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, key, *paths], capture_output=True, text=True, timeout=120, check=False
    )
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    return {name: lines.get(f"case{i}", f"no answer: {result.stderr[-500:]}") for i, name in enumerate(cases)}


@pytest.mark.parametrize("bomb", [name for name in BOMBS if "ADWIN" not in name])
def test_memory_bombs_are_refused_before_allocating(
    bomb: str, decoded_with_little_memory: dict[str, str]
) -> None:
    assert decoded_with_little_memory[bomb] == f"rejected {REJECT_CLASS}"


def test_an_adwin_windows_constructor_never_sees_the_pickles_sizes(
    decoded_with_little_memory: dict[str, str],
) -> None:
    window = adwin_window()
    outcomes = decoded_with_little_memory
    # Without a state: a window of River's default settings, not of 10**12 buckets.
    assert outcomes["an ADWIN window constructed with 10**12 buckets"] == "decoded (0.002, 32, 5, 5, 10)"
    # With one: exactly the real window's settings (delta 0.01, clock 3, 7 buckets).
    assert window.__getnewargs__() == (0.01, 3, 7, 5, 10)
    assert (
        outcomes["an ADWIN window with 10**12 buckets, then a real state"]
        == f"decoded {window.__getnewargs__()!r}"
    )


# ---- (c) foreign classes, (d) other versions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("collections", "OrderedDict"),
        ("subprocess", "Popen"),
        ("river.stats.mean", "BayesianMean"),  # a River class, in a module the allowlist uses
        ("river.drift.kswin", "stats"),  # what a River module imports
        ("river.utils", "Rolling"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("copyreg", "_reconstructor"),
    ],
)
def test_classes_outside_the_allowlist_are_refused(
    module: str, name: str, state_key: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    forged = body(call(named(module, name), b"(" + text("touch") + text(str(marker)) + b"l"))
    assert rejection(sign(forged, state_key), state_key) == REJECT_CLASS
    assert not marker.exists()


def test_a_snapshot_of_another_river_or_format_version_is_incompatible(state_key: str) -> None:
    state = Detector(DetectorSpec.of("adwin")).export()
    for header in (
        SnapshotHeader(model_id="m", topic="events", partition=0, offset=1, river_version="0.19.0"),
        SnapshotHeader(
            model_id="m", topic="events", partition=0, offset=1, river_version=RIVER_VERSION, format_version=2
        ),
    ):
        assert rejection(encode_snapshot(header, state, state_key.encode()), state_key) == REJECT_VERSION


# ---- (e) getattr, and changing what is outside the snapshot ------------------------------------------------


@pytest.mark.parametrize(
    ("river_class", "attribute"),
    [
        (("river.drift.page_hinkley", "PageHinkley"), "update"),
        (("river.drift.page_hinkley", "PageHinkley"), "clone"),
        (("river.drift.page_hinkley", "PageHinkley"), "__class__"),
        (("river.drift.kswin", "KSWIN"), "_rng"),
        (("river.drift.adwin", "ADWIN"), "_test_both"),  # Page-Hinkley's method name, on another class
    ],
)
def test_getattr_yields_page_hinkleys_test_methods_and_nothing_else(
    river_class: tuple[str, str], attribute: str, state_key: str
) -> None:
    forged = body(call(named("builtins", "getattr"), new(named(*river_class)), text(attribute)))
    assert rejection(sign(forged, state_key), state_key) == REJECT_CLASS


def test_getattr_takes_the_method_from_the_class_not_from_what_the_pickle_set(state_key: str) -> None:
    # An instance whose __dict__ says "_test_both" is a deque: getattr still yields River's method.
    instance = build(
        new(named("river.drift.page_hinkley", "PageHinkley")), {"_test_both": named("collections", "deque")}
    )
    forged = body(call(named("builtins", "getattr"), instance, text("_test_both")))
    _, method = decode_snapshot(sign(forged, state_key), state_key.encode(), RIVER_VERSION)
    assert method.__func__ is PageHinkley._test_both
    assert type(method.__self__) is PageHinkley


@pytest.mark.parametrize(
    ("target", "attribute"),
    [
        (("river.drift.adwin", "ADWIN"), "update"),
        (("river._river_rust.drift", "AdaptiveWindowing"), "update"),
        (("random", "Random"), "random"),
        (("collections", "deque"), "__call__"),
        (("builtins", "getattr"), "__class__"),
    ],
)
def test_a_pickle_cannot_change_a_class_or_a_function_it_names(
    target: tuple[str, str], attribute: str, state_key: str
) -> None:
    """BUILD sets attributes on any object the pickle holds, a class it named included: with a real class,
    every detector of the process would run what the pickle put there."""
    module, name = target
    originals = {cls: vars(cls).get("update") for cls in (ADWIN, KSWIN, type(adwin_window()))}
    random_method = random.Random.random
    forged = body(build(named(module, name), {attribute: named("collections", "deque")}, slots=True))
    try:
        assert rejection(sign(forged, state_key), state_key) == REJECT_CLASS
        assert {cls: vars(cls).get("update") for cls in originals} == originals
        assert random.Random.random is random_method
    finally:  # should the test fail, the classes go back to what they were for the rest of the session
        for cls, update in originals.items():
            if update is not None and vars(cls).get("update") is not update:
                type.__setattr__(cls, "update", update)
        if random.Random.random is not random_method:
            del random.Random.random  # back to the inherited method


# ---- (f) a state of the wrong shape ----------------------------------------------------------------------

WRONG_SHAPES: dict[str, Any] = {
    "a list": [1, 2, 3],
    "an empty dict": {},
    "no tracks": {"features": [], "classes": []},
    "features that are a number": {"features": 5, "classes": [], "tracks": []},
    "a feature entry too short": {"features": [("x",)], "classes": [], "tracks": []},
    "a track tuple too short": {"features": [("x", ("adwin", ()), None)], "classes": [], "tracks": []},
    "a deque where River's detector belongs": {
        "features": [],
        "classes": [],
        "tracks": [("score", ("adwin", (), 0, 0, 0, False, [1.0]))],
    },
    "a track of no known signal": {"features": [], "classes": [], "tracks": [("nonsense", None)]},
}


@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
def test_a_state_of_the_wrong_shape_is_rejected_and_the_model_left_absent(shape: str, state_key: str) -> None:
    monitor = Monitor(Policies(), config_version="v")
    for i in range(50):
        for model_id in ("m", "other"):
            monitor.process(
                InferenceEvent(model_id=model_id, features={"x": float(i)}), RecordSource(offset=i)
            )
    other = pickle.dumps(monitor.export_model("other"))
    # A valid pickle, signed: only the shape is wrong.
    _, state = decode_snapshot(
        encode_snapshot(HEADER, WRONG_SHAPES[shape], state_key.encode()), state_key.encode(), RIVER_VERSION
    )
    with pytest.raises(SnapshotRejected) as caught:
        monitor.restore_model("m", state)
    assert caught.value.reason == REJECT_SHAPE
    assert "m" not in monitor.models
    assert pickle.dumps(monitor.export_model("other")) == other


# ---- what real snapshots need, and that they come back whole ---------------------------------------------


def page_hinkley_settings() -> list[dict[str, Any]]:
    return [{"mode": "up"}, {"mode": "down"}, {"mode": "both"}]


def river_values(kind: str, seed: int, length: int = 2000, change_at: int = 1000) -> list[float]:
    rng = random.Random(seed)
    if DETECTOR_KINDS[kind].binary:
        return [float(rng.random() < (0.1 if i < change_at else 0.5)) for i in range(length)]
    return [rng.gauss(0.0 if i < change_at else 2.0, 1.0) for i in range(length)]


def globals_and_methods(data: bytes) -> tuple[set[tuple[str, str]], set[str]]:
    """The (module, name) pairs a pickle names (GLOBAL, or STACK_GLOBAL after two strings, memoised or not)
    and the attribute names it passes to getattr."""
    found: set[tuple[str, str]] = set()
    strings: list[str] = []
    memo: dict[int, str] = {}
    for opcode, arg, _position in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, name = str(arg).split(" ", 1)
            found.add((module, name))
        elif opcode.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        elif opcode.name in {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}:
            strings.append(str(arg))
        elif opcode.name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif opcode.name in {"BINGET", "LONG_BINGET", "GET"} and int(str(arg)) in memo:
            strings.append(memo[int(str(arg))])
    methods = {s for s in strings if s in {"_test_increase", "_test_decrease", "_test_both"}}
    return found, methods


def test_the_allowlist_is_exactly_what_real_snapshots_name() -> None:
    """Every detector type, in several states and settings, and a whole model with every kind of signal: the
    globals their pickles name are the allowlist, no more, no less (a new River may need this updated)."""
    named_globals: set[tuple[str, str]] = set()
    methods: set[str] = set()
    settings = [(kind, {"seed": 5} if kind == "kswin" else {}) for kind in DETECTOR_KINDS]
    settings += [("page_hinkley", params) for params in page_hinkley_settings()]
    settings += [("fhddm", {"short_window_size": 20}), ("hddm_w", {"two_sided_test": False})]
    for kind, params in settings:
        detector = Detector(DetectorSpec.of(kind, **params), seed_key="m/x")
        for i, value in enumerate(river_values(kind, seed=1)):
            detector.update(value)
            if i in {0, 500, 1999}:
                globals_of, methods_of = globals_and_methods(pickle.dumps(detector.export(), protocol=5))
                named_globals |= globals_of
                methods |= methods_of
    monitor = Monitor(POLICIES, config_version="v")
    for record in RECORDS:
        apply(monitor, record)
    named_globals |= globals_and_methods(pickle.dumps(monitor.export_model("fraud"), protocol=5))[0]
    assert named_globals == ALLOWED_GLOBALS
    assert methods == {"_test_increase", "_test_decrease", "_test_both"}


def signed_round_trip(monitor: Monitor, model_id: str, key: str, policies: Policies) -> Monitor:
    """A new monitor holding `model_id` as `monitor` has it, through a signed snapshot decoded for real."""
    value = encode_snapshot(HEADER, monitor.export_model(model_id), key.encode())
    _, state = decode_snapshot(value, key.encode(), RIVER_VERSION)
    restored = Monitor(policies, config_version="v")
    assert restored.restore_model(model_id, state) == 0
    return restored


def only_features(spec: DetectorSpec) -> Policies:
    defaults = {kind: SignalPolicy(enabled=False) for kind in SIGNAL_KINDS}
    return Policies(defaults={**defaults, "features": SignalPolicy(detector=spec, resolve_after=0)})


@pytest.mark.parametrize("kind", list(DETECTOR_KINDS))
def test_every_detector_type_restored_detects_what_river_detects(kind: str, state_key: str) -> None:
    params: dict[str, Any] = {"seed": 5} if kind == "kswin" else {}
    values = river_values(kind, seed=7)
    expected = run_river(
        DETECTOR_KINDS[kind].river_class(**params), values, invert=DETECTOR_KINDS[kind].inverted
    )
    assert expected.drifts, f"River's {kind} found no change: the test would prove nothing"
    policies = only_features(DetectorSpec.of(kind, **params))

    def feed(monitor: Monitor, start: int, stop: int) -> list[tuple[int, str]]:
        found = []
        for i in range(start, stop):
            event = InferenceEvent(model_id="m", features={"x": values[i]})
            found += [(i, alert.level) for alert in monitor.process(event, RecordSource(offset=i))]
        return found

    # Cut fresh, mid-way, just after River's first drift (its reset is pending) and near the end.
    for cut in (1, 700, expected.drifts[0] + 1, len(values) - 3):
        before = Monitor(policies, config_version="v")
        alerts = feed(before, 0, cut)
        alerts += feed(signed_round_trip(before, "m", state_key, policies), cut, len(values))
        assert [i for i, level in alerts if level == "drift"] == expected.drifts, f"cut at {cut}"
        assert [i for i, level in alerts if level == "warning"] == expected.warnings, f"cut at {cut}"


SCALED = Policies(
    defaults={
        kind: SignalPolicy(resolve_after=200, standardize=Standardize(warmup=100)) for kind in SIGNAL_KINDS
    },
    categorical=POLICIES.categorical,
    ranges=POLICIES.ranges,
    model_alerts=POLICIES.model_alerts,
    labels=POLICIES.labels,
)


@pytest.mark.parametrize("policies", [POLICIES, SCALED], ids=["everything", "standardised"])
def test_the_whole_model_restored_from_a_signed_snapshot_continues_as_the_uninterrupted_run(
    policies: Policies, state_key: str
) -> None:
    """Categorical features, late labels pending, episodes and windows open, scalers learned: at cuts in each
    of those states, restored through the real decoder, the rest of the run is the uninterrupted run's."""

    def run_from(monitor: Monitor, start: int) -> list[bytes]:
        return [alert.to_json() for record in RECORDS[start:] for alert in apply(monitor, record)]

    uninterrupted = run_from(Monitor(policies, config_version="v"), 0)
    assert len(uninterrupted) >= 10, "the stream must alert for the comparison to mean anything"
    if policies is POLICIES:
        assert uninterrupted == alerts_from(0)
    cuts = sorted({*first_cuts_in_each_state().values(), 1, len(RECORDS) // 2, len(RECORDS) - 1})
    for cut in cuts:
        before = Monitor(policies, config_version="v")
        alerts = [alert.to_json() for record in RECORDS[:cut] for alert in apply(before, record)]
        alerts += run_from(signed_round_trip(before, "fraud", state_key, policies), cut)
        assert alerts == uninterrupted, f"cut at {cut}"


# ---- restoring a state partition: misplaced, stale and superseded snapshots --------------------------------


@dataclass(frozen=True, slots=True)
class StateRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class StatePartitions:
    """The state topic as `StateStore`'s consumer sees it: every record of a partition in one poll."""

    def __init__(self, records: dict[int, list[tuple[bytes | None, bytes | None]]]) -> None:
        self.records = {
            partition: [
                StateRecord(partition, offset, key, value) for offset, (key, value) in enumerate(items)
            ]
            for partition, items in records.items()
        }
        self.positions: dict[Any, int] = {}

    def reader(self, **_config: Any) -> StatePartitions:
        return self

    def assign(self, partitions: list[Any]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    def end_offsets(self, partitions: list[Any], timeout_s: float | None = None) -> dict[Any, int]:
        return {tp: len(self.records.get(tp.partition, [])) for tp in partitions}

    def position(self, tp: Any, timeout_s: float | None = None) -> int:
        return self.positions[tp]

    def poll(self, timeout_s: float) -> dict[Any, list[StateRecord]]:
        batch = {tp: self.records.get(tp.partition, [])[at:] for tp, at in self.positions.items()}
        self.positions = {tp: at + len(batch[tp]) for tp, at in self.positions.items()}
        return {tp: records for tp, records in batch.items() if records}

    def close(self) -> None:
        pass


STATE_CONFIG = """
kafka: {bootstrap_servers: "127.0.0.1:1"}
topics: {input: [events, more], state: state}
"""


def snapshot(
    model_id: str,
    offset: int,
    key: str,
    *,
    partition: int = 0,
    topic: str = "events",
    river: str = RIVER_VERSION,
) -> bytes:
    header = SnapshotHeader(
        model_id=model_id, topic=topic, partition=partition, offset=offset, river_version=river
    )
    return encode_snapshot(
        header, {"model": model_id, "offset": offset, "partition": partition}, key.encode()
    )


@dataclass(frozen=True, slots=True)
class Restore:
    models: dict[tuple[str, int], list[RestoredModel]]
    rejected: Counter[str]
    log: list[dict[str, Any]]
    store: StateStore


def restore(
    records: dict[int, list[tuple[bytes | None, bytes | None]]],
    key: str,
    wanted: set[tuple[str, int]] | None = None,
) -> Restore:
    store = StateStore(
        parse_config(STATE_CONFIG), StatePartitions(records), key.encode(),  # type: ignore[arg-type]
        Counters(alert_counts=AlertCounts(10)),
    )  # fmt: skip
    with structlog.testing.capture_logs() as log:
        models = store.restore(wanted or {("events", partition) for partition in records})
    return Restore(models, store.rejected, log, store)


def states(result: Restore, partition: int = 0) -> dict[str, Any]:
    return {model.model_id: model.state for model in result.models[("events", partition)]}


def test_of_a_models_snapshots_the_newest_offset_is_restored_not_the_last_written(state_key: str) -> None:
    old, newer = snapshot("a", 100, state_key), snapshot("a", 200, state_key)
    result = restore(
        {0: [(b"a", old), (b"b", snapshot("b", 5, state_key)), (b"a", newer), (b"a", old)]}, state_key
    )
    assert states(result) == {
        "a": {"model": "a", "offset": 200, "partition": 0},
        "b": {"model": "b", "offset": 5, "partition": 0},
    }
    assert result.models[("events", 0)][0].offset in {200, 5}
    assert result.rejected == Counter({"stale": 1})
    stale = [entry for entry in result.log if entry["event"] == "state snapshot rejected"]
    assert [(e["model_id"], e["reason"], e["record_offset"]) for e in stale] == [("a", "stale", 3)]


def test_a_later_snapshot_at_the_same_offset_replaces_the_earlier(state_key: str) -> None:
    """A late label changes a model without input: its next snapshot repeats the input offset."""
    first = snapshot("a", 100, state_key)
    header = SnapshotHeader(
        model_id="a", topic="events", partition=0, offset=100, river_version=RIVER_VERSION
    )
    second = encode_snapshot(header, {"labels": 1}, state_key.encode())
    result = restore({0: [(b"a", first), (b"a", second)]}, state_key)
    assert states(result) == {"a": {"labels": 1}}
    assert not result.rejected


def test_a_snapshot_under_another_models_key_or_in_another_partition_is_misplaced(state_key: str) -> None:
    a_here, b_here = snapshot("a", 100, state_key), snapshot("b", 50, state_key)
    result = restore(
        {
            0: [(b"a", a_here), (b"b", b_here), (b"b", snapshot("a", 900, state_key))],  # a's, copied under b
            1: [(b"a", snapshot("a", 950, state_key))],  # a's of partition 0, copied to partition 1
        },
        state_key,
    )
    assert states(result, 0) == {
        "a": {"model": "a", "offset": 100, "partition": 0},
        "b": {"model": "b", "offset": 50, "partition": 0},
    }
    assert states(result, 1) == {}
    assert result.rejected == Counter({"misplaced": 2})
    assert result.store.last_restore[0].rejected == Counter({"misplaced": 1})
    assert result.store.last_restore[1].rejected == Counter({"misplaced": 1})


def test_a_snapshot_of_an_input_topic_without_state_here_is_misplaced_one_of_another_replica_skipped(
    state_key: str,
) -> None:
    result = restore(
        {
            0: [
                (b"a", snapshot("a", 1, state_key, topic="elsewhere")),
                (b"b", snapshot("b", 1, state_key, topic="more")),
            ]
        },
        state_key,
        wanted={("events", 0)},
    )
    assert states(result) == {}
    assert result.rejected == Counter(
        {"misplaced": 1}
    )  # "more" is an input: its models are another replica's


def test_a_tombstone_deletes_and_a_later_snapshot_cannot_go_back_before_it(state_key: str) -> None:
    deleted = restore({0: [(b"a", snapshot("a", 100, state_key)), (b"a", None)]}, state_key)
    assert states(deleted) == {}
    assert not deleted.rejected
    again = restore(
        {0: [(b"a", snapshot("a", 100, state_key)), (b"a", None), (b"a", snapshot("a", 150, state_key))]},
        state_key,
    )
    assert states(again) == {"a": {"model": "a", "offset": 150, "partition": 0}}
    replayed = restore(
        {
            0: [
                (b"a", snapshot("a", 50, state_key)),
                (b"a", snapshot("a", 100, state_key)),
                (b"a", None),
                (b"a", snapshot("a", 50, state_key)),
            ]
        },
        state_key,
    )
    assert states(replayed) == {}
    assert replayed.rejected == Counter({"stale": 1})


def test_a_bad_record_after_a_valid_snapshot_does_not_hide_it(state_key: str) -> None:
    valid = snapshot("a", 100, state_key)
    tampered = bytearray(snapshot("a", 200, state_key))
    tampered[-3] ^= 0xFF
    result = restore({0: [(b"a", valid), (b"a", bytes(tampered)), (b"a", b"not a snapshot")]}, state_key)
    assert states(result) == {"a": {"model": "a", "offset": 100, "partition": 0}}
    assert result.rejected == Counter({"bad_signature": 1, "bad_format": 1})


def test_only_each_models_chosen_snapshot_is_unpickled(state_key: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = code_execution(marker)["random._os.system through a river module"]
    older_hostile = sign(
        hostile,
        state_key,
        SnapshotHeader(model_id="a", topic="events", partition=0, offset=10, river_version=RIVER_VERSION),
    )
    newest_hostile = sign(
        hostile,
        state_key,
        SnapshotHeader(model_id="b", topic="events", partition=0, offset=99, river_version=RIVER_VERSION),
    )
    result = restore(
        {
            0: [
                (b"a", older_hostile),
                (b"a", snapshot("a", 20, state_key)),
                (b"b", snapshot("b", 50, state_key)),
                (b"b", newest_hostile),
            ]
        },
        state_key,
    )
    assert states(result) == {"a": {"model": "a", "offset": 20, "partition": 0}}  # b starts fresh
    assert result.rejected == Counter({"disallowed_class": 1})  # a's older snapshot was never decoded
    assert not marker.exists()


def test_the_end_of_a_restore_sums_up_each_partition_with_the_river_versions_found(state_key: str) -> None:
    result = restore(
        {
            0: [
                (b"a", snapshot("a", 1, state_key, river="0.19.0")),
                (b"b", snapshot("b", 1, state_key, river="0.19.0")),
            ],
            1: [(b"c", snapshot("c", 1, state_key, partition=1))],
        },
        state_key,
    )
    assert result.rejected == Counter({"incompatible_version": 2})
    summaries = {
        e["partition"]: e for e in result.log if str(e["event"]).startswith("state partition restored")
    }
    assert summaries[0]["rejected_snapshots"] == {"incompatible_version": 2}
    assert summaries[0]["river_versions_found"] == {"0.19.0": 2}
    assert summaries[0]["river_version_running"] == RIVER_VERSION
    assert summaries[0]["log_level"] == "warning"
    assert summaries[1]["rejected_snapshots"] == {}
    assert summaries[1]["restored_models"] == 1
    assert "river_versions_found" not in summaries[1]


def test_a_shape_rejected_by_the_core_counts_in_its_partitions_summary(state_key: str) -> None:
    result = restore({0: [(b"a", snapshot("a", 1, state_key))]}, state_key)
    rejected = SnapshotRejected(REJECT_SHAPE, "a list")
    result.store.reject("a", rejected, partition=0)
    assert result.store.rejected == Counter({REJECT_SHAPE: 1})
    assert result.store.last_restore[0].rejected == Counter({REJECT_SHAPE: 1})
