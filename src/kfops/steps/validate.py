"""Analyze and validate: infer the data contract; check the data against it and the champion's.

The contract is inferred from this data (kinds, nullability, ranges, domains, target). When the
model already has a champion, the data must also satisfy the champion's contract: a run cannot
silently retrain on data that the served model would reject. Blocking violations raise
ContractError with the whole report; nothing is written then.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from kfops import contract, data
from kfops.contract import ValidationReport
from kfops.contract_model import Contract
from kfops.errors import ContractError
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class ValidateInputs:
    snapshot_path: Path
    target: str
    task: str
    model_name: str  # whose champion's contract the data must satisfy too
    contract_path: Path  # where the inferred contract is written
    drop_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidateResult:
    contract: Contract
    report: ValidationReport
    statistics_markdown: str
    champion_version: str | None


def run(inputs: ValidateInputs, ctx: RunContext) -> ValidateResult:
    df = data.load_snapshot(inputs.snapshot_path)
    inferred = contract.infer_contract(
        df, inputs.target, inputs.task, drop=list(inputs.drop_columns)
    )
    report = contract.validate(df, inferred)
    champion = ctx.registry.verify(inputs.model_name, missing_ok=True)
    against = f"the contract inferred from this data ({len(inferred.features)} features)"
    if champion is not None:
        report = contract.validate(df, Contract.load(champion.file("contract.json")))
        against = f"the contract of champion {inputs.model_name} {champion.version}"
    ctx.record(
        "validate",
        {
            "target": inputs.target,
            "task": inputs.task,
            "features": inferred.feature_names,
            "dropped": list(inferred.dropped),
            "validation": report.to_dict(),
            "validated_against": against,
        },
    )
    if not report.ok:
        # One line for the terminal; the whole table is in the run record and the task log.
        print(report.to_markdown(), file=sys.stderr)
        details = "; ".join(v.message for v in report.errors)
        raise ContractError(
            f"data violates {against} ({len(report.errors)} errors): {details}", report=report
        )
    inferred.save(inputs.contract_path)
    return ValidateResult(
        contract=inferred,
        report=report,
        statistics_markdown=contract.describe(df, inferred),
        champion_version=champion.version if champion else None,
    )
