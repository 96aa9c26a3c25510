"""Model snapshots: the bytes of one model's detectors, authenticated, and decoded without running code.

Layout of a snapshot (the value of a state-topic record; the key is the model id):

    b"SDS1" | HMAC-SHA256(key, header_len | header | body) (32 bytes) | header_len (4 bytes, big endian)
    | header (JSON) | body (pickle, protocol 5)

The header says what the snapshot is (format version, river version, model, input topic/partition and the
next input offset it reflects) and can be read before the body. The body is decoded only when the HMAC
matches and the river version is the running one (River's ADWIN state is opaque bytes tied to its version),
and then by an unpickler that resolves only an allowlist of classes — River's detectors and statistics, a
deque, a `random.Random` — so nothing from a topic can run code on load.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import struct
from collections import deque
from dataclasses import dataclass
from random import Random
from typing import Any, Final

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
        return SnapshotHeader(
            model_id=head["model_id"],
            topic=head["topic"],
            partition=head["partition"],
            offset=head["offset"],
            river_version=head["river"],
            format_version=head["v"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SnapshotRejected(REJECT_FORMAT, f"unreadable header: {exc}") from None


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
    except Exception as exc:  # any malformed body is a rejected snapshot, never a crash
        raise SnapshotRejected(REJECT_FORMAT, f"undecodable body: {type(exc).__name__}: {exc}") from None
    return header, state


_RIVER_MODULES: Final = (
    "river.drift.adwin",
    "river.drift.page_hinkley",
    "river.drift.kswin",
    "river.drift.binary.ddm",
    "river.drift.binary.eddm",
    "river.drift.binary.hddm_a",
    "river.drift.binary.hddm_w",
    "river.drift.binary.fhddm",
    "river.stats.mean",
    "river.stats.var",
    "river.stats.ewmean",
    "river._river_rust.drift",
    "river._river_rust.stats",
)


def _safe_getattr(obj: Any, name: str) -> Any:
    """Pickle stores bound methods as getattr(instance, name); allow that, and nothing more."""
    if not isinstance(name, str) or name.startswith("__") or not type(obj).__module__.startswith("river."):
        raise SnapshotRejected(REJECT_CLASS, f"getattr({type(obj).__name__}, {name!r}) is not allowed")
    return getattr(obj, name)


def _safe_numpy_scalar(dtype: Any, *args: Any) -> Any:
    """KSWIN keeps its last p-value as a numpy float; allow plain numeric scalars only."""
    import numpy as np  # noqa: PLC0415 -- only snapshots of KSWIN need it

    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
        raise SnapshotRejected(REJECT_CLASS, f"numpy scalar of dtype {dtype!r} is not allowed")
    from numpy._core.multiarray import scalar  # noqa: PLC0415

    return scalar(dtype, *args)


_EXACT: Final[dict[tuple[str, str], Any]] = {
    ("collections", "deque"): deque,
    ("random", "Random"): Random,
    ("builtins", "getattr"): _safe_getattr,
    ("numpy._core.multiarray", "scalar"): _safe_numpy_scalar,
}


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        exact = _EXACT.get((module, name))
        if exact is not None:
            return exact
        if module == "numpy" and name == "dtype":
            import numpy as np  # noqa: PLC0415

            return np.dtype
        if module in _RIVER_MODULES and not name.startswith("_"):
            return super().find_class(module, name)
        raise SnapshotRejected(REJECT_CLASS, f"class {module}.{name} is not in the snapshot allowlist")
