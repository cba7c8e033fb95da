"""Blessing: may a freshly trained model (the challenger) replace the champion?

A challenger is blessed when it meets every threshold and, if a champion exists, does not make
the primary metric worse by more than ``max_regression``. The champion must be evaluated on the
SAME held-out data as the challenger (the caller scores the champion's model on the new test
split); ``Evaluation.data_sha256`` lets us check that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfops.errors import ConfigError
from kfops.evaluation import HIGHER_IS_BETTER, METRICS_BY_TASK, PRIMARY_METRIC, Evaluation
from kfops.reports import fmt

# The thresholds used when none are given (kfops run, and retraining a champion whose lineage
# records no policy) are kfops.params.TASK_DEFAULTS[task].thresholds.

# Metrics whose scale depends on the data (target units, or unbounded): a tolerance in absolute
# units would mean different things on different datasets, so it is relative to the champion.
RELATIVE_REGRESSION: frozenset[str] = frozenset({"rmse", "mae", "mape", "log_loss"})


@dataclass(frozen=True)
class BlessingPolicy:
    """Thresholds are minimums for higher-is-better metrics and maximums for the others."""

    thresholds: dict[str, float] = field(default_factory=dict)
    max_regression: float = 0.01
    primary_metric: str | None = None

    def primary_for(self, task: str) -> str:
        return self.primary_metric or PRIMARY_METRIC[task]

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "max_regression": self.max_regression,
            "primary_metric": self.primary_metric,
        }


def _check_metric(name: str, task: str, what: str) -> None:
    known = METRICS_BY_TASK.get(task)
    if known is None:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(METRICS_BY_TASK)}")
    if name not in known:
        raise ConfigError(
            f"unknown {task} metric {name!r} in {what}; known metrics: {', '.join(known)}"
        )


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be a number, got {value!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return number


def parse_policy(
    thresholds: Mapping[str, Any] | None,
    max_regression: float | str = 0.01,
    task: str = "classification",
    primary_metric: str | None = None,
) -> BlessingPolicy:
    """Build a policy from ``{metric: threshold}``, checking every metric name and number."""
    if task not in METRICS_BY_TASK:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(METRICS_BY_TASK)}")
    raw = {} if thresholds is None else thresholds
    if not isinstance(raw, Mapping):
        raise ConfigError(f"blessing thresholds must be a mapping, got {thresholds!r}")
    checked: dict[str, float] = {}
    for name, value in raw.items():
        _check_metric(str(name), task, "blessing thresholds")
        checked[str(name)] = _number(value, f"threshold for {name!r}")
    regression = _number(max_regression, "max_regression")
    if regression < 0:
        raise ConfigError(f"max_regression must be >= 0, got {max_regression!r}")
    if primary_metric is not None:
        _check_metric(primary_metric, task, "primary_metric")
    return BlessingPolicy(checked, regression, primary_metric)


@dataclass
class BlessingDecision:
    blessed: bool
    reasons: list[str]
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    # The policy judged by (BlessingPolicy.to_dict()): registered in the version's lineage, so
    # a retrain started by an alert is held to the same bar (policy_of_lineage).
    policy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "challenger": dict(self.challenger),
            "champion": dict(self.champion) if self.champion is not None else None,
            "champion_version": self.champion_version,
            "policy": dict(self.policy) if self.policy is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlessingDecision:
        return cls(
            blessed=bool(data["blessed"]),
            reasons=list(data.get("reasons", [])),
            challenger=dict(data.get("challenger", {})),
            champion=data.get("champion"),
            champion_version=data.get("champion_version"),
            policy=data.get("policy"),
        )

    def to_markdown(self) -> str:
        verdict = "**BLESSED**" if self.blessed else "**NOT BLESSED**"
        versus = f" (champion {self.champion_version})" if self.champion_version else ""
        lines = [f"# Blessing: {verdict}{versus}", ""]
        names = list(self.challenger)
        if self.champion:
            names += [n for n in self.champion if n not in self.challenger]
            lines += ["| metric | challenger | champion |", "| --- | --- | --- |"]
            for name in names:
                new, old = self.challenger.get(name), self.champion.get(name)
                lines.append(f"| {name} | {_cell(new)} | {_cell(old)} |")
        else:
            lines += ["| metric | challenger |", "| --- | --- |"]
            lines += [f"| {name} | {_cell(self.challenger.get(name))} |" for name in names]
        lines += ["", "## Checks", ""]
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return fmt.number(value, missing="-")


def _fmt(value: float) -> str:
    return fmt.number(value, fmt.SHORT)


def bless(
    challenger: Evaluation,
    champion: Evaluation | None,
    policy: BlessingPolicy,
    champion_version: str | None = None,
) -> BlessingDecision:
    """Decide whether ``challenger`` may become the champion; every check adds a reason line."""
    reasons: list[str] = []
    passed = True
    for name, threshold in sorted(policy.thresholds.items()):
        value = challenger.metrics.get(name)
        if value is None or not math.isfinite(value):
            reasons.append(f"{name} not available for this model/data: fail")
            passed = False
            continue
        if HIGHER_IS_BETTER[name]:
            ok = value >= threshold
            sign, word = (">=" if ok else "<"), "threshold"
        else:
            ok = value <= threshold
            sign, word = ("<=" if ok else ">"), "maximum"
        verdict = "pass" if ok else "fail"
        reasons.append(f"{name} {_fmt(value)} {sign} {word} {_fmt(threshold)}: {verdict}")
        passed = passed and ok
    if not policy.thresholds:
        reasons.append("no thresholds configured")

    if champion is None:
        reasons.append("no champion: first model, judged on thresholds only")
    else:
        ok, reason = _compare(challenger, champion, policy, champion_version)
        reasons.extend(reason)
        passed = passed and ok

    return BlessingDecision(
        blessed=passed,
        reasons=reasons,
        challenger=dict(challenger.metrics),
        champion=dict(champion.metrics) if champion is not None else None,
        champion_version=champion_version,
        policy=policy.to_dict(),
    )


def policy_of_lineage(lineage: dict[str, Any], task: str) -> BlessingPolicy | None:
    """The policy a registered version was blessed under (lineage ``blessing.policy``), or None
    for versions registered before policies were recorded. Invalid content raises ConfigError."""
    blessing = lineage.get("blessing")
    recorded = blessing.get("policy") if isinstance(blessing, dict) else None
    if not isinstance(recorded, dict):
        return None
    return parse_policy(
        dict(recorded.get("thresholds") or {}),
        recorded.get("max_regression", 0.01),
        task,
        recorded.get("primary_metric"),
    )


def _compare(
    challenger: Evaluation, champion: Evaluation, policy: BlessingPolicy, version: str | None
) -> tuple[bool, list[str]]:
    label = f"champion {version}" if version else "champion"
    if challenger.task != champion.task:
        return False, [f"{label} is a {champion.task} model, challenger is {challenger.task}: fail"]
    if (
        challenger.data_sha256
        and champion.data_sha256
        and challenger.data_sha256 != champion.data_sha256
    ) or challenger.n_rows != champion.n_rows:
        return False, [
            f"{label} was evaluated on different held-out data ({champion.n_rows} rows) than the "
            f"challenger ({challenger.n_rows} rows); evaluate both on the same split: fail"
        ]
    metric = policy.primary_for(challenger.task)
    new, old = challenger.metrics.get(metric), champion.metrics.get(metric)
    if new is None or old is None:
        return False, [f"{metric} missing for {'challenger' if new is None else label}: fail"]
    # Positive = worse than the champion, whatever the metric's direction.
    worse = (old - new) if HIGHER_IS_BETTER[metric] else (new - old)
    if metric in RELATIVE_REGRESSION:
        base = abs(old) if old else 1.0
        rel = worse / base
        ok = rel <= policy.max_regression
        text = (
            f"{metric} regression {rel:.1%} of {_fmt(old)} {'<=' if ok else '>'} allowed "
            f"{policy.max_regression:.1%} versus {label}: {'pass' if ok else 'fail'}"
        )
    else:
        ok = worse <= policy.max_regression
        text = (
            f"{metric} regression {_fmt(worse)} {'<=' if ok else '>'} allowed "
            f"{_fmt(policy.max_regression)} versus {label}: {'pass' if ok else 'fail'}"
        )
    return ok, [text]
