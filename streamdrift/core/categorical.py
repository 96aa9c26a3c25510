"""Categorical features: which categories get a stream of their own, and which values are new.

A feature whose first non-null value is a string is categorical. Its first `warmup` values are counted (at
most `max_categories` distinct ones, so an id-like feature cannot exhaust memory). After the warm-up:

- the `top_k` most frequent categories (ties by value, so every run agrees) each get a 0/1 stream
  `category:<name>=<value>`, and every other value feeds `category:<name>=_other`: a shift in the category
  mix moves at least one of these rates;
- a value never seen during the warm-up raises one `new_category:<name>` alert, then counts as known. A
  feature with more than `max_categories` distinct values in its warm-up has no "new" to speak of:
  new-category detection is off for it, its streams still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

OTHER: Final = "_other"


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoricalPolicy:
    top_k: int = 5
    warmup: int = 1000
    max_categories: int = 1000
    new_category: bool = True  # alert once per category first seen after the warm-up


class CategoryProfile:
    """The warm-up counts of one categorical feature, then its streams' categories and its known values.

    >>> profile = CategoryProfile(CategoricalPolicy(top_k=1, warmup=3))
    >>> [profile.learn(v) for v in ("a", "b", "a")]
    [False, False, True]
    >>> profile.top, profile.is_new("a"), profile.is_new("c"), profile.is_new("c")
    (('a',), False, True, False)
    """

    __slots__ = ("counts", "known", "policy", "seen", "top")

    def __init__(self, policy: CategoricalPolicy) -> None:
        self.policy = policy
        self.seen = 0  # values counted during the warm-up
        self.counts: dict[str, int] | None = {}  # None once the warm-up is over
        self.top: tuple[str, ...] = ()
        # Values seen so far, for new-category detection; None when there are too many to call any "new".
        self.known: set[str] | None = None

    @property
    def warming_up(self) -> bool:
        return self.counts is not None

    def learn(self, value: str) -> bool:
        """Count a warm-up value; True when this value ended the warm-up (the streams start after it)."""
        counts = self.counts
        assert counts is not None
        self.seen += 1
        if value in counts:
            counts[value] += 1
        elif len(counts) <= self.policy.max_categories:  # one past the cap marks "too many"
            counts[value] = 1
        if self.seen < self.policy.warmup:
            return False
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.top = tuple(value for value, _count in ranked[: self.policy.top_k])
        self.known = set(counts) if len(counts) <= self.policy.max_categories else None
        self.counts = None
        return True

    def is_new(self, value: str) -> bool:
        """A value unseen until now (after the warm-up); it is known from then on."""
        known = self.known
        if known is None or value in known:
            return False
        if len(known) >= self.policy.max_categories:
            self.known = None  # too many categories to keep calling them new
            return False
        known.add(value)
        return True

    def export(self) -> tuple[Any, ...]:
        known = None if self.known is None else sorted(self.known)
        return self.seen, self.counts, self.top, known

    @classmethod
    def restored(cls, policy: CategoricalPolicy, saved: tuple[Any, ...]) -> CategoryProfile:
        profile = cls(policy)
        seen, counts, top, known = saved
        profile.seen, profile.counts, profile.top = seen, counts, tuple(top)
        profile.known = None if known is None else set(known)
        return profile
