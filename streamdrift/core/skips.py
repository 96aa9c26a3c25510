"""Values that cannot reach a detector: why each is skipped, and a raw value made a detector's float.

One NaN fed to River's ADWIN disables it for good, so a value that is not a finite number (or, for a binary
detector, not 0 or 1) is skipped for its signal and counted by reason instead.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Final

from streamdrift.core.event import Scalar

# Skip reasons: metric labels, part of the documented contract.
NON_FINITE: Final = "non_finite"
NON_NUMERIC: Final = "non_numeric"
NOT_BINARY: Final = "not_binary"
TOO_MANY_SIGNALS: Final = "too_many_signals"
TYPE_MISMATCH: Final = "type_mismatch"
# multivariate:reconstruction: an event without every feature of its model's PCA as a finite number.
INCOMPLETE_ROW: Final = "incomplete_row"


def number(raw: Scalar, skipped: Counter[str]) -> float | None:
    """`raw` as a detector's value (bools as 0/1), or None when it cannot be one (counted in `skipped`)."""
    if isinstance(raw, float):
        if math.isfinite(raw):
            return raw
        skipped[NON_FINITE] += 1
        return None
    if isinstance(raw, int):  # bools included: True -> 1.0
        return float(raw)
    skipped[NON_NUMERIC] += 1
    return None
