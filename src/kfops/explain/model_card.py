"""A short Markdown model card per registered version, rendered from typed facts.

The facts come from the version's lineage (registry), its data contract, its held-out metrics
and its permutation importance; nothing is read from disk here, so the card can be rendered in
a pipeline step, by the registry or by the dashboard alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfops.contract_model import Contract, FeatureSpec
from kfops.errors import KfopsError
from kfops.explain.importance import Importance

# The card's name in a model version (listed in its manifest like every file).
MODEL_CARD_FILE = "MODEL_CARD.md"
# Categories listed per feature before "... (+N more)".
MAX_DOMAIN_VALUES = 10
# Features listed in the importance table.
MAX_IMPORTANCE_ROWS = 15


@dataclass(frozen=True)
class VersionFacts:
    """What the card says about where a version came from (from its registry lineage)."""

    model: str
    version: str
    created_at: str | None = None
    data_uri: str | None = None
    data_fingerprint: str | None = None
    estimator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    test_size: float | None = None
    parent: str | None = None
    run_id: str | None = None
    kfops_version: str | None = None
    git_commit: str | None = None
    twin: str | None = None  # the ONNX twin's verdict, one line (kfops.twin.record)

    @classmethod
    def from_lineage(cls, lineage: Mapping[str, Any]) -> VersionFacts:
        """Read a registry ``lineage.json`` (missing keys stay None: older versions lack some)."""
        raw_code = lineage.get("code")
        code: Mapping[str, Any] = raw_code if isinstance(raw_code, Mapping) else {}
        params = lineage.get("params")
        if isinstance(params, str):  # lineage values may arrive as JSON text from KFP
            try:
                params = json.loads(params) if params.strip() else {}
            except json.JSONDecodeError:
                params = {"raw": params}
        return cls(
            model=str(lineage.get("model", "")),
            version=str(lineage.get("version", "")),
            created_at=_opt_str(lineage.get("created_at")),
            data_uri=_opt_str(lineage.get("data_uri")),
            data_fingerprint=_opt_str(lineage.get("data_fingerprint")),
            estimator=_opt_str(lineage.get("estimator")),
            params=dict(params) if isinstance(params, Mapping) else {},
            seed=_opt_int(lineage.get("seed")),
            test_size=_opt_float(lineage.get("test_size")),
            parent=_opt_str(lineage.get("parent")),
            run_id=_opt_str(lineage.get("run_id")),
            kfops_version=_opt_str(code.get("kfops_version")),
            git_commit=_opt_str(code.get("git_commit")),
            twin=_twin_line(lineage.get("twin")),
        )


def render_model_card(
    facts: VersionFacts,
    contract: Contract,
    metrics: Mapping[str, float],
    importance: Importance | None = None,
) -> str:
    """The model card as Markdown (KFP's Markdown artifact and the dashboard render it)."""
    title = f"{facts.model} {facts.version}".strip() or "model"
    lines = [f"# Model card: {_cell(title)}", ""]
    provenance = [
        ("created", facts.created_at),
        ("parent version", facts.parent),
        ("run", facts.run_id),
        ("kfops", facts.kfops_version),
        ("git commit", facts.git_commit),
    ]
    lines += [f"- {name}: `{_cell(value)}`" for name, value in provenance if value]
    lines += ["", "## Task", "", *_task_lines(contract), ""]
    fingerprint = facts.data_fingerprint or contract.fingerprint
    lines += ["## Data", ""]
    lines.append(f"- source: `{_cell(facts.data_uri)}`" if facts.data_uri else "- source: unknown")
    lines.append(
        f"- fingerprint: `{_cell(fingerprint)}`" if fingerprint else "- fingerprint: unknown"
    )
    if facts.test_size is not None:
        seed = f", seed {facts.seed}" if facts.seed is not None else ""
        lines.append(f"- held-out split: {facts.test_size:g} of the labeled rows{seed}")
    lines += ["", "## Estimator", ""]
    lines.append(f"- `{_cell(facts.estimator or 'unknown')}`")
    if facts.params:
        lines.append(f"- parameters: `{_cell(json.dumps(facts.params, sort_keys=True))}`")
    if facts.twin:
        lines.append(f"- ONNX twin: {_cell(facts.twin)}")
    lines += ["", "## Metrics (held-out split)", ""]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {_cell(name)} | {_number(value)} |" for name, value in metrics.items()]
    else:
        lines.append("No metrics recorded.")
    lines += ["", "## Feature importance", "", *_importance_lines(importance), ""]
    lines += ["## Inputs (data contract)", "", *_contract_lines(contract), ""]
    lines += ["## Known limits", "", *_limit_lines(contract, importance), ""]
    return "\n".join(lines)


def _task_lines(contract: Contract) -> list[str]:
    target = contract.target
    lines = [f"- {contract.task} of `{_cell(target.name)}`"]
    if target.classes:
        lines.append(f"- classes: {_domain(target.classes)}")
    if target.min is not None and target.max is not None:
        lines.append(f"- target range in training: {_number(target.min)} to {_number(target.max)}")
    return lines


def _importance_lines(importance: Importance | None) -> list[str]:
    if importance is None or not importance.features:
        return ["Not computed for this version."]
    lines = [
        f"Permutation importance on {importance.n_rows} held-out rows, {importance.n_repeats} "
        f"repeats: how much `{importance.metric}` worsens when a column is shuffled.",
        "",
        "| rank | feature | share | worsening (mean ± std) |",
        "| --- | --- | --- | --- |",
    ]
    for rank, f in enumerate(importance.features[:MAX_IMPORTANCE_ROWS], start=1):
        lines.append(
            f"| {rank} | {_cell(f.feature)} | {f.share:.1%} "
            f"| {_number(f.mean)} ± {_number(f.std)} |"
        )
    hidden = len(importance.features) - MAX_IMPORTANCE_ROWS
    if hidden > 0:
        lines += ["", f"{hidden} more features not listed."]
    return lines


def _contract_lines(contract: Contract) -> list[str]:
    lines = ["| feature | kind | nulls allowed | seen in training |", "| --- | --- | --- | --- |"]
    for spec in contract.features:
        lines.append(
            f"| {_cell(spec.name)} | {spec.kind} | {'yes' if spec.nullable else 'no'} "
            f"| {_seen(spec)} |"
        )
    return lines


def _seen(spec: FeatureSpec) -> str:
    if spec.categories is not None:
        return _domain(spec.categories)
    if spec.min is not None and spec.max is not None:
        return f"{_number(spec.min)} to {_number(spec.max)}"
    return "free text" if spec.kind == "text" else "-"


def _limit_lines(contract: Contract, importance: Importance | None) -> list[str]:
    lines = []
    for dropped in contract.dropped:
        lines.append(
            f"- column `{_cell(dropped.get('name'))}` is not used: "
            f"{_cell(dropped.get('reason', 'dropped'))}"
        )
    lines.append(
        "- values outside the training ranges above, and categories not seen in training, "
        "were never learned from: predictions there are extrapolation (unseen categories are "
        "treated as none of the known ones)"
    )
    if importance is not None and importance.features:
        unused = [f.feature for f in importance.features if f.share <= 0.0]
        if unused:
            names = ", ".join(f"`{_cell(n)}`" for n in unused)
            lines.append(
                f"- shuffling {names} did not worsen `{importance.metric}` on held-out rows: "
                "the model barely uses them (drift there matters little)"
            )
    return lines


def _domain(values: Any) -> str:
    values = list(values)
    shown = ", ".join(f"`{_cell(v)}`" for v in values[:MAX_DOMAIN_VALUES])
    more = len(values) - MAX_DOMAIN_VALUES
    return shown + (f" ... (+{more} more)" if more > 0 else "")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _cell(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell or inline code: one line, no pipe, no backtick."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("|", "\\|").replace("`", "'")


def _twin_line(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None  # a version registered before twins existed
    from kfops.twin.record import TwinRecord

    try:
        return TwinRecord.from_dict(record).summary()
    except KfopsError:
        return None


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(float(value))
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
