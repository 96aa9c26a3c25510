"""Model snapshots: the bytes of one model's detectors, authenticated, and decoded without running code.

Layout of a snapshot (the value of a state-topic record; the key is the model id):

    b"SDS1" | HMAC-SHA256(key, header_len | header | body) (32 bytes) | header_len (4 bytes, big endian)
    | header (JSON) | body (pickle, protocol 5)

The header says what the snapshot is (format version, river version, model, input topic/partition and the
next input offset it reflects) and can be read before the body. The body is decoded only when the HMAC
matches and the river version is the running one (River's ADWIN state is opaque bytes tied to its version).

The signature says who wrote a snapshot, not that its body is harmless, so the body is decoded by an
unpickler that trusts nothing it names. It resolves exactly the globals that real snapshots use — found by
pickling every detector type and whole exported models in many states and listing the GLOBAL and
STACK_GLOBAL operands — and a dotted name (which pickle resolves attribute by attribute) never. Each
resolves to a stand-in, never to a real class or function:

- a class resolves to a sealed type whose construction makes an instance of the real class from no
  argument of the pickle's (River's Rust ADWIN allocates `max_buckets` in its constructor; BUILD's
  `__setstate__` then sets every field), and which nothing can modify: a pickle can run BUILD or setattr on
  any object it holds, a class included, and a real class modified so would change every detector of the
  process;
- `collections.deque` starts empty (its items come one by one: no iterable is copied, so memoised
  references cannot multiply memory);
- `getattr` yields only Page-Hinkley's three bound test methods, the only bound methods River pickles;
- numpy's dtype and scalar (KSWIN's p-value) accept numeric kinds only, a scalar exactly its item's bytes.

A snapshot signed with the key can still hold detector state that River will not accept later; its integrity
is the key's to guard. What decoding guarantees is that no body runs code, allocates out of proportion to its
own size or changes anything outside the objects it builds.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import io
import pickle
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from random import Random
from types import MethodType
from typing import Any, Final, NoReturn

import orjson

from streamdrift.errors import StreamdriftError

MAGIC: Final = b"SDS1"
FORMAT_VERSION: Final = 1
_DIGEST = 32
_PREFIX = len(MAGIC) + _DIGEST + 4

# Why a snapshot was rejected: metric labels.
REJECT_FORMAT: Final = "bad_format"
REJECT_AUTH: Final = "bad_signature"
REJECT_VERSION: Final = "incompatible_version"
REJECT_CLASS: Final = "disallowed_class"
REJECT_SHAPE: Final = "bad_state"  # decoded, but not the state `Monitor.export_model` makes
REJECT_MISPLACED: Final = "misplaced"  # signed for another model or partition than the record it is in
REJECT_STALE: Final = "stale"  # older than a snapshot of the same model read before it


class SnapshotRejected(StreamdriftError):
    """A state record that must not be used: the model starts fresh, and the rejection is counted."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotHeader:
    model_id: str
    topic: str
    partition: int
    offset: int  # the next input offset: every event before it is reflected in the state
    river_version: str
    format_version: int = FORMAT_VERSION


def encode_snapshot(header: SnapshotHeader, state: Any, key: bytes) -> bytes:
    head = orjson.dumps(
        {
            "v": header.format_version,
            "river": header.river_version,
            "model_id": header.model_id,
            "topic": header.topic,
            "partition": header.partition,
            "offset": header.offset,
        }
    )
    signed = struct.pack(">I", len(head)) + head + pickle.dumps(state, protocol=5)
    return MAGIC + hmac.digest(key, signed, hashlib.sha256) + signed


def read_header(value: bytes, key: bytes) -> SnapshotHeader:
    """Check the signature and parse the header; raises `SnapshotRejected`."""
    if len(value) < _PREFIX or not value.startswith(MAGIC):
        raise SnapshotRejected(REJECT_FORMAT, "not a streamdrift snapshot")
    digest, signed = value[len(MAGIC) : len(MAGIC) + _DIGEST], value[len(MAGIC) + _DIGEST :]
    if not hmac.compare_digest(digest, hmac.digest(key, signed, hashlib.sha256)):
        raise SnapshotRejected(REJECT_AUTH, "the HMAC does not match (tampered, or another state key)")
    (head_len,) = struct.unpack(">I", signed[:4])
    try:
        head = orjson.loads(signed[4 : 4 + head_len])
        model_id, topic, river = head["model_id"], head["topic"], head["river"]
        partition, offset, version = head["partition"], head["offset"], head["v"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SnapshotRejected(REJECT_FORMAT, f"unreadable header: {exc}") from None
    # Compared with record keys and partitions, and ordered by offset: each field must be of its type.
    texts, numbers = (model_id, topic, river), (partition, offset, version)
    if any(type(text) is not str for text in texts) or any(type(number) is not int for number in numbers):
        raise SnapshotRejected(REJECT_FORMAT, "a header field of the wrong type")
    return SnapshotHeader(
        model_id=model_id,
        topic=topic,
        partition=partition,
        offset=offset,
        river_version=river,
        format_version=version,
    )


def decode_snapshot(value: bytes, key: bytes, river_version: str) -> tuple[SnapshotHeader, Any]:
    """Authenticate, check versions, and decode with the class allowlist; raises `SnapshotRejected`."""
    header = read_header(value, key)
    if header.format_version != FORMAT_VERSION:
        raise SnapshotRejected(
            REJECT_VERSION, f"snapshot format {header.format_version}, expected {FORMAT_VERSION}"
        )
    if header.river_version != river_version:
        raise SnapshotRejected(
            REJECT_VERSION, f"written with river {header.river_version}, running river {river_version}"
        )
    signed = value[len(MAGIC) + _DIGEST :]
    (head_len,) = struct.unpack(">I", signed[:4])
    try:
        state = _AllowlistUnpickler(io.BytesIO(signed[4 + head_len :])).load()
    except SnapshotRejected:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    # Any malformed body is a rejected snapshot, never a crash; River's Rust state panics on bad bytes, and
    # its PanicException is a BaseException.
    except BaseException as exc:
        raise SnapshotRejected(REJECT_FORMAT, f"undecodable body: {type(exc).__name__}: {exc}") from None
    return header, state


# ---- the allowlist ------------------------------------------------------------------------------------

# Every global the snapshots of River 0.26.1 name, with protocol 5 (see the module docstring; the unit tests
# check this list against real snapshots): River's detectors and the statistics they hold, and what those
# hold (a deque, a Random, KSWIN's numpy p-value, Page-Hinkley's bound test method).
_RIVER_CLASSES: Final = (
    ("river.drift.adwin", "ADWIN"),
    ("river.drift.page_hinkley", "PageHinkley"),
    ("river.drift.kswin", "KSWIN"),
    ("river.drift.binary.ddm", "DDM"),
    ("river.drift.binary.eddm", "EDDM"),
    ("river.drift.binary.hddm_a", "HDDMA"),
    ("river.drift.binary.hddm_w", "HDDMW"),
    ("river.drift.binary.hddm_w", "SampleInfo"),
    ("river.drift.binary.fhddm", "FHDDM"),
    ("river.stats.mean", "Mean"),
    ("river.stats.var", "Var"),
    ("river.stats.ewmean", "EWMean"),
)
# River's Rust objects: pickled with constructor arguments, which their `__setstate__` then overrides.
_RUST_CLASSES: Final = (
    ("river._river_rust.drift", "AdaptiveWindowing"),
    ("river._river_rust.stats", "RsEWMean"),
)
_OTHERS: Final = (
    ("random", "Random"),
    ("collections", "deque"),
    ("builtins", "getattr"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "scalar"),
)
# The exact (module, name) pairs a snapshot may name: nothing else resolves.
ALLOWED_GLOBALS: Final = frozenset(_RIVER_CLASSES + _RUST_CLASSES + _OTHERS)
_PAGE_HINKLEY: Final = ("river.drift.page_hinkley", "PageHinkley")
# PageHinkley keeps `_test_drift`, one of these bound methods, chosen by its `mode`.
_PAGE_HINKLEY_TESTS: Final = frozenset({"_test_increase", "_test_decrease", "_test_both"})
_NUMERIC_KINDS: Final = "biuf"


def _refuse(what: str) -> NoReturn:
    # `what` quotes the pickle, which may make a name of any length: the log line stays short.
    raise SnapshotRejected(REJECT_CLASS, f"{what[:200]} is not allowed in a snapshot")


class _Sealed(type):
    """The metaclass of the stand-ins: no setattr, so no BUILD either, can change one."""

    def __setattr__(cls, name: str, value: object) -> None:
        _refuse(f"setting {name!r} on {cls.__name__}")

    def __delattr__(cls, name: str) -> None:
        _refuse(f"deleting {name!r} from {cls.__name__}")


class _Frozen:
    """A callable stand-in: no attributes, none settable (its class neither: `__class__` is one)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        _refuse(f"setting {name!r} on {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        _refuse(f"deleting {name!r} from {type(self).__name__}")


def _stand_in(real: type, make: Callable[..., object]) -> type:
    """A type that pickle's NEWOBJ (which needs a type) and REDUCE turn into `make(*args)`: an instance of
    `real` (not of the stand-in, so no `__init__` runs and the object pickles again exactly as before)."""

    def new(_cls: type, *args: object) -> object:
        return make(*args)

    return _Sealed(f"Snapshot{real.__name__}", (), {"__slots__": (), "__new__": new})


def _no_arguments(real: type) -> Callable[..., object]:
    def make(*args: object) -> object:
        if args:  # River pickles its Python objects with NEWOBJ and no arguments
            _refuse(f"constructing {real.__name__} with arguments")
        return object.__new__(real)  # what NEWOBJ does: River's Python classes keep object's

    return make


def _rust(real: type, placeholder: tuple[object, ...]) -> Callable[..., object]:
    def make(*_args: object) -> object:
        # The pickle's arguments never reach the constructor: `__setstate__` sets every field from the state
        # bytes, and River's ADWIN allocates `max_buckets` up front.
        return real.__new__(real, *placeholder)

    return make


def _random(*args: object) -> Random:
    if args:  # Random pickles as Random() then __setstate__
        _refuse("constructing Random with arguments")
    return Random()  # noqa: S311 -- KSWIN's sampling state, not a secret


class _Deque(_Frozen):
    __slots__ = ()

    def __call__(self, items: object = (), maxlen: object = None) -> deque[object]:
        # As deque pickles itself: empty, then APPENDS. An iterable here would be copied: a memo reference
        # to one long string would then cost its length in memory at every use.
        if type(items) is not tuple or items or not (maxlen is None or (type(maxlen) is int and maxlen >= 0)):
            _refuse(f"deque({type(items).__name__}, {type(maxlen).__name__})")
        return deque(maxlen=maxlen)


class _Getattr(_Frozen):
    __slots__ = ()

    def __call__(self, obj: object, name: object) -> object:
        """Page-Hinkley's bound test method, taken from its class: an attribute the pickle has set on the
        instance cannot answer for it."""
        page_hinkley = _resolved_class(*_PAGE_HINKLEY)
        if type(obj) is not page_hinkley or not isinstance(name, str) or name not in _PAGE_HINKLEY_TESTS:
            _refuse(f"getattr({type(obj).__name__}, {name!r})")
        return MethodType(vars(page_hinkley)[name], obj)


class _Dtype(_Frozen):
    __slots__ = ()

    def __call__(self, name: object, align: object = False, copy: object = True) -> object:
        import numpy as np  # noqa: PLC0415 -- only snapshots of KSWIN need it

        # As numpy pickles a dtype: a new copy (so BUILD's __setstate__ changes no shared dtype), unaligned.
        if type(name) is not str or align is not False or copy is not True:
            _refuse(f"dtype({name!r}, {align!r}, {copy!r})")
        try:
            dtype = np.dtype(name, align=False, copy=True)
        except (TypeError, ValueError):
            _refuse(f"dtype {name!r}")
        if dtype.kind not in _NUMERIC_KINDS or dtype.subdtype is not None or dtype.names is not None:
            _refuse(f"dtype {name!r}")
        return dtype


class _Scalar(_Frozen):
    __slots__ = ()

    def __call__(self, dtype: object, payload: object = None) -> object:
        """KSWIN keeps its last p-value as a numpy float: plain numeric scalars only, from exactly their bytes
        (a dtype's __setstate__ could have given it another shape since `_Dtype` made it)."""
        import numpy as np  # noqa: PLC0415 -- only snapshots of KSWIN need it
        from numpy._core.multiarray import scalar  # noqa: PLC0415

        if (
            not isinstance(dtype, np.dtype)
            or dtype.kind not in _NUMERIC_KINDS
            or dtype.subdtype is not None
            or dtype.names is not None
            or type(payload) is not bytes
            or len(payload) != dtype.itemsize
        ):
            _refuse(f"numpy scalar of dtype {dtype!r}")
        return scalar(dtype, payload)


@cache
def _resolved_class(module: str, name: str) -> type:
    """A real class of the allowlist (imported by name: only detectors.py imports River)."""
    found: type = getattr(importlib.import_module(module), name)
    return found


@cache
def _allowlist() -> dict[tuple[str, str], object]:
    """(module, name) -> what it resolves to; built at the first decode, when River is loaded anyway."""
    table: dict[tuple[str, str], object] = {}
    for module, name in _RIVER_CLASSES:
        real = _resolved_class(module, name)
        table[(module, name)] = _stand_in(real, _no_arguments(real))
    window, ewmean = (_resolved_class(module, name) for module, name in _RUST_CLASSES)
    table[_RUST_CLASSES[0]] = _stand_in(window, _rust(window, (0.002, 32, 5, 5, 10)))
    table[_RUST_CLASSES[1]] = _stand_in(ewmean, _rust(ewmean, (0.5,)))
    others = (_stand_in(Random, _random), _Deque(), _Getattr(), _Dtype(), _Scalar())
    table.update(zip(_OTHERS, others, strict=True))
    assert table.keys() == ALLOWED_GLOBALS
    return table


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if "." in name:
            # Protocol 4 resolves "a.b.c" attribute by attribute: through a module's imports to anything.
            _refuse(f"the dotted name {module}.{name}")
        found = _allowlist().get((module, name))
        if found is None:
            _refuse(f"{module}.{name} (not in the allowlist)")
        return found
