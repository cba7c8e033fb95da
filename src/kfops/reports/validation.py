"""The validate step's dashboard report: what the data was validated against, the violations,
and the columns left out of the features."""

from __future__ import annotations

from kfops.contract import ValidationReport
from kfops.contract_model import Contract


def validation_markdown(
    report: ValidationReport, contract: Contract, champion_version: str | None
) -> str:
    lines = ["# Data validation", ""]
    if champion_version:
        lines.append(f"Validated against champion **{champion_version}**'s contract.")
    else:
        lines.append("No champion yet: validated against the contract inferred from this data.")
    lines += ["", report.to_markdown()]
    if contract.dropped:
        lines += ["", "## Columns not used as features", ""]
        lines += [f"- `{d['name']}`: {d['reason']}" for d in contract.dropped]
    return "\n".join(lines) + "\n"
