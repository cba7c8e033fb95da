"""What every `make bench-*` script shares: the measuring protocol and how figures are summed up.

A benchmark compares "sides" (kfops and its baselines) on the same work. To make figures from a
shared, noisy 2-core machine comparable, every side gets the same untimed warm-up runs, then the
same number of timed rounds, in an order that alternates round by round (A B C, C B A, ...), so a
busy minute on the machine hits every side alike; each figure is the median over the rounds, and
the spread (min-max) is printed beside it. `Protocol.header` states exactly that at the top of
the output.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Protocol:
    """Warm-up runs and alternating rounds, identical for every side."""

    sides: tuple[str, ...]
    rounds: int
    warmup: int
    work: str  # what every side does in one run, in words
    parallelism: str = ""  # processes/cores each side may use, in words
    warmup_text: str = ""  # replaces "N untimed warm-up run(s) per side" when set
    summary: str = "figures are medians over the rounds, [min-max] beside them"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise SystemExit(f"--rounds must be at least 1, got {self.rounds}")
        if self.warmup < 0:
            raise SystemExit(f"--warmup must be 0 or more, got {self.warmup}")

    def order(self, round_index: int, items: Sequence[T]) -> list[T]:
        """Round 0 runs the sides as listed, round 1 reversed, and so on."""
        return list(items) if round_index % 2 == 0 else list(reversed(items))

    def header(self) -> str:
        warmup = self.warmup_text or f"{self.warmup} untimed warm-up run(s) per side"
        lines = [
            f"protocol: same work on every side ({self.work}); {warmup}, then {self.rounds} "
            "timed round(s), side order alternating each round (listed, reversed, ...); "
            + self.summary,
            "sides: " + "; ".join(self.sides),
        ]
        if self.parallelism:
            lines.append(f"parallelism: {self.parallelism}")
        return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = ".1f") -> str:
    """'median [min-max]' (just the value for a single round)."""
    med = format(median(values), fmt)
    if len(values) < 2:
        return med
    return f"{med} [{format(min(values), fmt)}-{format(max(values), fmt)}]"
